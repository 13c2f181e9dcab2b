"""Atrial fibrillation per window (30 s by default) from R-peak times: features, shipped model, training.

:func:`af_windows` cuts a series of R-peak times into consecutive windows, computes the
RR-irregularity features of :mod:`bprl.beats.rr_features` in each window, adds the same
features of the previous and next window as context, and scores each window with a
gradient-boosted tree model (LightGBM) shipped with the package as a text file
(``bprl/beats/models/af_rr.txt``, its card ``af_rr.json``; no pickle). The model was trained on
the 30-s windows of the 17 MIT-BIH AF Database records of the dev data (Moody & Mark 1983,
automatic beat annotations, manual rhythm reference) by :func:`train_af_model`, and evaluated
with leave-one-record-out cross-validation (:func:`cross_validate_af`): never trained and
tested on the same record. ``python -m bprl.beats.train_rhythm`` rebuilds it.

Labels: ``AF`` when the model's probability is at least the threshold (0.5), ``non-AF`` below,
``unknown`` when the window is shorter than ``min_window_s`` or has fewer than ``min_beats``
usable RR intervals (the features are then undefined or too noisy). RR intervals longer than
``gap_s`` (3 s: a signal gap or a missed-beat run, not a rhythm) are dropped. Context features
are NaN at the ends of the series, and the model was also trained with them NaN, so a single
30-s window is scored too (slightly less accurately: see docs/guide/rhythm.md).

Atrial flutter is not a separate output: with fixed conduction its RR series is regular, so RR
alone cannot tell it from sinus rhythm; windows that the reference annotates as flutter are left
out of training and scored separately in the benchmark. The dev AFDB copy has no ECG signals, so
the model is RR-only; the ECG morphology (P-wave absence) is used by the rhythm-class model
(:mod:`bprl.beats.rhythm_classes`).

References:
    Moody GB, Mark RG. A new method for detecting atrial fibrillation using R-R intervals.
    Computers in Cardiology 10:227-230, 1983.
    Lake DE, Moorman JR. Accurate estimation of entropy in very short physiological time series.
    Am J Physiol Heart Circ Physiol 300:H319-H325, 2011 (COSEn, the baseline rule, AF > -1.4).
    Ke G, Meng Q, Finley T, et al. LightGBM: a highly efficient gradient boosting decision tree.
    NeurIPS 30, 2017.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bprl.beats._models import load_model_with_card
from bprl.beats.rhythm_data import afdb_record_names, read_afdb_rr, rhythm_fraction
from bprl.beats.rr_features import RR_FEATURE_NAMES, rr_irregularity_features
from bprl.errors import FeatureError

__all__ = [
    "AF_FEATURE_NAMES",
    "AF_MODEL_PATH",
    "af_scores",
    "af_window_features",
    "af_windows",
    "afdb_window_table",
    "cross_validate_af",
    "load_af_model",
    "train_af_model",
]

MODELS_DIR = Path(__file__).resolve().parent / "models"
#: The shipped AF model (LightGBM text format) and its card.
AF_MODEL_PATH = MODELS_DIR / "af_rr.txt"
#: RR features whose previous- and next-window values are context features.
CONTEXT_FEATURES: tuple[str, ...] = (
    "cosen",
    "nrmssd",
    "mad_drr_ratio",
    "frac_drr_10pct",
    "tpr",
    "shannon_entropy",
    "lorenz_occupancy",
    "ac1",
)
_CONTEXT_NAMES = tuple(f"{side}_{f}" for f in CONTEXT_FEATURES for side in ("prev", "next"))
#: Model inputs, in order: the window's RR features, then the neighbours' context features.
AF_FEATURE_NAMES: tuple[str, ...] = RR_FEATURE_NAMES + _CONTEXT_NAMES
#: LightGBM parameters of the AF model (deterministic: fixed seed, 1 thread).
AF_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbose": -1,
}
AF_ROUNDS = 300
AF_THRESHOLD = 0.5
#: Windows whose reference is AF for more than this share of their duration are AF.
AF_MAJORITY = 0.5


def _window_grid(r: np.ndarray, window_s: float, t_start_s: float, t_end_s: float | None) -> np.ndarray:
    """Window edges ``t_start_s, t_start_s + window_s, ...`` up to ``t_end_s`` (default: the last beat);
    the last window may be shorter."""
    end = t_end_s if t_end_s is not None else (float(r[-1]) if len(r) else t_start_s)
    if end <= t_start_s:
        return np.array([t_start_s])
    n = int(np.ceil((end - t_start_s) / window_s - 1e-9))
    edges = t_start_s + window_s * np.arange(n + 1)
    edges[-1] = min(edges[-1], end)
    return edges


def af_window_features(
    r_times_s: np.ndarray,
    window_s: float = 30.0,
    t_start_s: float = 0.0,
    t_end_s: float | None = None,
    gap_s: float = 3.0,
) -> pd.DataFrame:
    """RR features per consecutive window, with the previous and next window's context features.

    The RR interval of a beat (from the beat before it) belongs to the window of the beat;
    intervals over ``gap_s`` are dropped.

    Args:
        r_times_s: R-peak times in s (sorted; NaN dropped).
        window_s: window length in s.
        t_start_s: start of the first window in s.
        t_end_s: end of the last window in s (default: the last R peak).
        gap_s: RR intervals longer than this (s) are gaps, not rhythm.

    Returns:
        One row per window: ``t_start_s``, ``t_end_s``, ``n_beats`` (R peaks in the window),
        ``n_rr`` (usable RR intervals) and the columns of :data:`AF_FEATURE_NAMES`.

    Raises:
        FeatureError: ``window_s`` not positive or times not sorted.
    """
    if window_s <= 0:
        raise FeatureError(f"af_window_features: window_s must be positive, got {window_s}")
    r = np.asarray(r_times_s, dtype=np.float64).ravel()
    r = r[np.isfinite(r)]
    if np.any(np.diff(r) < 0):
        raise FeatureError("af_window_features: R-peak times must be sorted")
    edges = _window_grid(r, window_s, t_start_s, t_end_s)
    lo, hi = edges[:-1], edges[1:]
    first, stop = np.searchsorted(r, lo), np.searchsorted(r, hi)
    if len(edges) > 1 and t_end_s is None:
        stop[-1] = len(r)  # the last beat closes the last window
    rr_ms = np.diff(r) * 1000.0
    rows = []
    for a, b in zip(first, stop, strict=True):
        seg = rr_ms[max(a - 1, 0) : max(b - 1, 0)]
        seg = seg[seg <= gap_s * 1000.0]
        rows.append({"n_beats": int(b - a), "n_rr": len(seg), **rr_irregularity_features(seg)})
    out = pd.DataFrame(rows, columns=["n_beats", "n_rr", *RR_FEATURE_NAMES])
    out.insert(0, "t_end_s", hi)
    out.insert(0, "t_start_s", lo)
    return _add_context(out)


def _add_context(table: pd.DataFrame, group: str | None = None) -> pd.DataFrame:
    """Columns ``prev_<f>`` / ``next_<f>``: feature ``f`` of the previous / next row (within ``group``)."""
    src = table.groupby(group, sort=False) if group else table
    ctx = {}
    for f in CONTEXT_FEATURES:
        ctx[f"prev_{f}"] = src[f].shift(1)
        ctx[f"next_{f}"] = src[f].shift(-1)
    return pd.concat([table.drop(columns=list(_CONTEXT_NAMES), errors="ignore"), pd.DataFrame(ctx)], axis=1)


def load_af_model(path: str | Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Load an AF model (LightGBM text file) and its JSON card (same name, ``.json``).

    Args:
        path: model file; default the shipped :data:`AF_MODEL_PATH`.

    Returns:
        ``(booster, card)``: a ``lightgbm.Booster`` and the card (``feature_names``,
        ``threshold``, training data and cross-validated scores).

    Raises:
        FeatureError: the file is missing or its features are not :data:`AF_FEATURE_NAMES`.
    """
    return load_model_with_card(
        Path(path) if path is not None else AF_MODEL_PATH, AF_FEATURE_NAMES, "AF model"
    )


def af_windows(
    r_times_s: np.ndarray,
    window_s: float = 30.0,
    *,
    t_start_s: float = 0.0,
    t_end_s: float | None = None,
    min_beats: int = 12,
    min_window_s: float = 10.0,
    threshold: float = AF_THRESHOLD,
    model_path: str | Path | None = None,
) -> pd.DataFrame:
    """AF or not per consecutive window of an R-peak series (the shipped RR model).

    The model was trained and cross-validated on 30-s windows; other lengths run but are not
    validated.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> regular = np.cumsum(np.full(75, 0.8))                 # 75 bpm for 60 s
        >>> irregular = regular[-1] + np.cumsum(rng.uniform(0.4, 1.0, 130))
        >>> out = af_windows(np.concatenate([regular, irregular]))
        >>> print(out[["t_start_s", "t_end_s", "n_beats", "label"]].round(1).to_string(index=False))
         t_start_s  t_end_s  n_beats   label
               0.0     30.0       37  non-AF
              30.0     60.0       38  non-AF
              60.0     90.0       41      AF
              90.0    120.0       43      AF
             120.0    150.0       40      AF
             150.0    153.5        6 unknown

    Args:
        r_times_s: R-peak times in s from the start of the signal (e.g. :func:`bprl.beats.ecg_peaks`).
        window_s: window length in s.
        t_start_s: start of the first window in s.
        t_end_s: end of the last window in s (default: the last R peak).
        min_beats: fewer usable RR intervals than this in a window -> ``unknown``.
        min_window_s: a window shorter than this (the last one) -> ``unknown``.
        threshold: AF when the probability is at least this.
        model_path: another model file (default: the shipped one).

    Returns:
        One row per window: ``t_start_s``, ``t_end_s``, ``n_beats``, ``af_probability`` (NaN when
        unknown), ``af`` (bool; False when unknown) and ``label`` (``AF``, ``non-AF`` or ``unknown``).

    Raises:
        FeatureError: bad arguments (non-positive window, unsorted times) or no model file.
    """
    booster, _ = load_af_model(model_path)
    feats = af_window_features(r_times_s, window_s, t_start_s, t_end_s)
    usable = (feats["n_rr"] >= min_beats) & (feats["t_end_s"] - feats["t_start_s"] >= min_window_s)
    prob = np.full(len(feats), np.nan)
    if usable.any():
        x = feats.loc[usable, list(AF_FEATURE_NAMES)].to_numpy()
        prob[usable.to_numpy()] = booster.predict(x, num_threads=1)  # one thread: same values, less CPU
    af = np.nan_to_num(prob, nan=-1.0) >= threshold
    label = np.where(~usable.to_numpy(), "unknown", np.where(af, "AF", "non-AF"))
    return pd.DataFrame(
        {
            "t_start_s": feats["t_start_s"],
            "t_end_s": feats["t_end_s"],
            "n_beats": feats["n_beats"],
            "af_probability": prob,
            "af": af,
            "label": label,
        }
    )


# ----------------------------------------------------------------------------- training
def afdb_window_table(folder: str | Path, window_s: float = 30.0) -> pd.DataFrame:
    """Features and reference of every window of every AFDB record in ``folder``.

    Windows start at 0 s of each record and end at its last beat. The reference share of each
    rhythm comes from the manual annotations (:func:`bprl.beats.rhythm_data.rhythm_fraction`).

    Args:
        folder: the ``afdb_rr_rhythm`` folder.
        window_s: window length in s.

    Returns:
        :func:`af_window_features` columns plus ``record``, ``af_share``, ``afl_share`` and
        ``af_ref`` (AF for more than half of the window).

    Raises:
        FeatureError: no AFDB record in ``folder``.
    """
    names = afdb_record_names(folder)
    if not names:
        raise FeatureError(f"no AFDB record (atrNNNNN.txt + qrsNNNNN.txt.gz) in {folder}")
    parts = []
    for name in names:
        rec = read_afdb_rr(folder, name)
        t = af_window_features(rec.r_times_s, window_s)
        lo, hi = t["t_start_s"].to_numpy(), t["t_end_s"].to_numpy()
        t.insert(0, "record", name)
        t["af_share"] = rhythm_fraction(rec, lo, hi, "AFIB")
        t["afl_share"] = rhythm_fraction(rec, lo, hi, "AFL")
        t["af_ref"] = t["af_share"] > AF_MAJORITY
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def _trainable(table: pd.DataFrame, min_beats: int = 12) -> pd.DataFrame:
    """Windows used for training: enough beats, full length, not mostly flutter."""
    full = (table["t_end_s"] - table["t_start_s"]) >= 10.0
    return table[(table["n_rr"] >= min_beats) & full & (table["afl_share"] <= AF_MAJORITY)]


def train_af_model(table: pd.DataFrame, num_threads: int = 1, seed: int = 0) -> Any:
    """Train the AF model on windows of :func:`afdb_window_table`.

    Every window (>= 12 RR intervals, >= 10 s, not mostly flutter) appears twice: with its
    context features and with them NaN, so that the model also scores a window without
    neighbours.

    Args:
        table: rows of :func:`afdb_window_table` (any subset of records).
        num_threads: LightGBM threads (results do not depend on it: ``deterministic=True``).
        seed: LightGBM seed.

    Returns:
        The trained ``lightgbm.Booster``.
    """
    import lightgbm as lgb

    tr = _trainable(table)
    bare = tr.copy()
    bare.loc[:, list(_CONTEXT_NAMES)] = np.nan
    both = pd.concat([tr, bare], ignore_index=True)
    params = {**AF_PARAMS, "num_threads": num_threads, "seed": seed}
    data = lgb.Dataset(
        both[list(AF_FEATURE_NAMES)].to_numpy(),
        label=both["af_ref"].astype(int).to_numpy(),
        feature_name=list(AF_FEATURE_NAMES),
        free_raw_data=True,
    )
    return lgb.train(params, data, num_boost_round=AF_ROUNDS)


def cross_validate_af(table: pd.DataFrame, num_threads: int = 1, context: bool = True) -> pd.Series:
    """Leave-one-record-out AF probabilities: each record scored by a model trained on the others.

    Args:
        table: :func:`afdb_window_table` output.
        num_threads: LightGBM threads.
        context: score with the neighbours' context features (False: as single windows).

    Returns:
        Out-of-fold probability per row of ``table`` (NaN for windows with < 12 RR intervals or
        shorter than 10 s: ``unknown``).
    """
    prob = pd.Series(np.nan, index=table.index, name="af_probability")
    usable = (table["n_rr"] >= 12) & ((table["t_end_s"] - table["t_start_s"]) >= 10.0)
    for rec in sorted(table["record"].unique()):
        booster = train_af_model(table[table["record"] != rec], num_threads=num_threads)
        test = table[(table["record"] == rec) & usable].copy()
        if not context:
            test.loc[:, list(_CONTEXT_NAMES)] = np.nan
        prob[test.index] = booster.predict(test[list(AF_FEATURE_NAMES)].to_numpy())
    return prob


def af_scores(reference: np.ndarray, detected: np.ndarray) -> dict[str, float]:
    """Window-level AF detection scores.

    Args:
        reference: reference AF per window (bool).
        detected: detected AF per window (bool).

    Returns:
        ``n``, ``n_af``, ``se`` (sensitivity), ``sp`` (specificity), ``ppv`` and ``acc``, as
        fractions (NaN where a denominator is 0).
    """
    y = np.asarray(reference, dtype=bool)
    d = np.asarray(detected, dtype=bool)
    tp, fn = int(np.sum(y & d)), int(np.sum(y & ~d))
    tn, fp = int(np.sum(~y & ~d)), int(np.sum(~y & d))

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {
        "n": len(y),
        "n_af": int(y.sum()),
        "se": ratio(tp, tp + fn),
        "sp": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "acc": ratio(tp + tn, len(y)),
    }
