"""Rhythm class of a short single-lead ECG in the PhysioNet/CinC Challenge 2017 sense: N, A, O, ~.

:func:`classify_rhythm` detects R peaks with :func:`bprl.beats.ecg_peaks`, computes
:data:`RHYTHM_FEATURE_NAMES` (the RR-irregularity features of :mod:`bprl.beats.rr_features`;
the median-beat morphology, P-wave and atrial-activity features and the signal-quality
measures of :mod:`bprl.beats.ecg_morphology`; the TQ f-wave, per-beat P-wave, RR-pattern,
second-template and noise features of :mod:`bprl.beats.ecg_atrial`; the medians and spreads of
the delineated beats' intervals, :func:`bprl.beats.intervals.interval_features`) and scores
them with a multi-class LightGBM model shipped with the package as a text file
(``bprl/beats/models/cinc2017.txt``, card ``cinc2017.json``; no pickle). Classes (Clifford
et al. 2017): ``N`` normal sinus rhythm, ``A`` atrial fibrillation, ``O`` another rhythm, ``~``
too noisy to classify.

The model was trained (:func:`train_rhythm_model`, class-balanced weights) on the 1731
records of the dev CinC 2017 training subset (AliveCor, 300 Hz, 9-61 s) and evaluated with
stratified 5-fold cross-validation, records as units (:func:`cross_validate_rhythm`); the
challenge score is the mean F1 of N, A and O (:func:`rhythm_scores`).
``python -m bprl.beats.train_rhythm`` rebuilds it.

Input rules. The ECG is one lead in mV. A record at another rate than 300 Hz is resampled to
300 Hz first (``scipy.signal.resample_poly``; the model has only seen 300 Hz). Unusable input
gets the label ``unknown`` with the reason in :attr:`RhythmResult.reason`, never a guess:

* sampling rate below :data:`MIN_FS_HZ` (100 Hz): the QRS (~ 80-100 ms) and the P wave are not
  resolved (a 50-Hz record);
* shorter than :data:`MIN_DURATION_S` (5 s): too few beats for any rhythm feature;
* a flat lead: SD of the 0.5-40 Hz ECG below :data:`FLAT_SD_MV` (10 µV) or more than half of
  the samples NaN.

A programming error (not a 1-D array, a non-finite or non-positive rate) raises
:class:`bprl.errors.FeatureError`. Records longer than the training records (61 s) are
classified as a whole; classify windows of them to follow a changing rhythm.

References:
    Clifford GD, Liu C, Moody B, et al. AF classification from a short single lead ECG
    recording: the PhysioNet/Computing in Cardiology Challenge 2017. CinC 44, 2017.
    Ke G, Meng Q, Finley T, et al. LightGBM: a highly efficient gradient boosting decision tree.
    NeurIPS 30, 2017.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bprl.beats._models import load_model_with_card
from bprl.beats.ecg import ecg_peaks
from bprl.beats.ecg_atrial import EXTRA_RHYTHM_FEATURE_NAMES, extra_rhythm_features
from bprl.beats.ecg_morphology import (
    MORPHOLOGY_FEATURE_NAMES,
    QUALITY_FEATURE_NAMES,
    morphology_features,
    signal_quality_features,
)
from bprl.beats.filters import signal_bandpass
from bprl.beats.intervals import INTERVAL_FEATURE_NAMES, interval_features
from bprl.beats.rhythm_data import cinc2017_reference, read_cinc2017_ecg
from bprl.beats.rr_features import RR_FEATURE_NAMES, rr_irregularity_features
from bprl.errors import FeatureError

__all__ = [
    "CINC_MODEL_PATH",
    "RHYTHM_CLASSES",
    "RHYTHM_FEATURE_NAMES",
    "RhythmResult",
    "cinc2017_feature_table",
    "classify_rhythm",
    "cross_validate_rhythm",
    "load_rhythm_model",
    "rhythm_features",
    "rhythm_scores",
    "train_rhythm_model",
    "unusable_reason",
]

#: Class order of the model's outputs (CinC 2017 labels).
RHYTHM_CLASSES: tuple[str, ...] = ("N", "A", "O", "~")
#: All model inputs, in order.
RHYTHM_FEATURE_NAMES: tuple[str, ...] = (
    RR_FEATURE_NAMES
    + MORPHOLOGY_FEATURE_NAMES
    + QUALITY_FEATURE_NAMES
    + EXTRA_RHYTHM_FEATURE_NAMES
    + INTERVAL_FEATURE_NAMES
)
#: The shipped model (LightGBM text format) and its card (same name, ``.json``).
CINC_MODEL_PATH = Path(__file__).resolve().parent / "models" / "cinc2017.txt"
MODEL_FS_HZ = 300.0
MIN_FS_HZ = 100.0
MIN_DURATION_S = 5.0
FLAT_SD_MV = 0.01
#: LightGBM parameters of the rhythm model (deterministic: fixed seed, 1 thread).
RHYTHM_PARAMS: dict[str, Any] = {
    "objective": "multiclass",
    "num_class": len(RHYTHM_CLASSES),
    "learning_rate": 0.1,
    "num_leaves": 8,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbose": -1,
}
RHYTHM_ROUNDS = 150


@dataclass(frozen=True)
class RhythmResult:
    """Rhythm class of one record.

    Attributes:
        label: ``N``, ``A``, ``O``, ``~`` or ``unknown`` (unusable input).
        probabilities: class -> model probability (empty when ``unknown``).
        reason: why the label is ``unknown``; for a model label, ``"model"``.
        n_beats: R peaks detected (0 when the input was not analysed).
    """

    label: str
    probabilities: dict[str, float] = field(default_factory=dict)
    reason: str = "model"
    n_beats: int = 0


def _check_input(ecg: np.ndarray, fs_hz: float) -> np.ndarray:
    """The ECG as a 1-D float64 array; FeatureError on a programming error."""
    x = np.asarray(ecg, dtype=np.float64)
    if x.ndim != 1:
        raise FeatureError(f"classify_rhythm: expected one ECG lead (1-D), got shape {x.shape}")
    if not np.isfinite(fs_hz) or fs_hz <= 0:
        raise FeatureError(f"classify_rhythm: sampling rate must be a positive number, got {fs_hz}")
    return x


def unusable_reason(ecg: np.ndarray, fs_hz: float) -> str | None:
    """Why an ECG cannot be classified (the ``unknown`` rules of this module), or None.

    Args:
        ecg: one ECG lead in mV (NaN = invalid).
        fs_hz: sampling rate in Hz.

    Returns:
        A sentence naming the problem, or None when the record is usable.

    Raises:
        FeatureError: not a 1-D array, or a non-finite / non-positive rate.
    """
    x = _check_input(ecg, fs_hz)
    if fs_hz < MIN_FS_HZ:
        return f"sampling rate {fs_hz:g} Hz is below {MIN_FS_HZ:g} Hz: QRS and P wave not resolved"
    dur = len(x) / fs_hz
    if dur < MIN_DURATION_S:
        return f"record is {dur:.1f} s long, shorter than {MIN_DURATION_S:g} s"
    if np.mean(~np.isfinite(x)) > 0.5:
        return "flat lead: more than half of the samples are missing (NaN)"
    sd = float(np.std(signal_bandpass(x, fs_hz, 0.5, 40.0)))
    if sd < FLAT_SD_MV:
        return f"flat lead: SD of the 0.5-40 Hz ECG is {sd * 1000:.1f} µV (< {FLAT_SD_MV * 1000:g} µV)"
    return None


def _to_model_rate(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """Resample to :data:`MODEL_FS_HZ` (polyphase, NaN interpolated first) when needed."""
    if abs(fs_hz - MODEL_FS_HZ) < 1e-9:
        return x
    from scipy.signal import resample_poly

    from bprl.beats.filters import signal_fill_nan

    frac = Fraction(MODEL_FS_HZ / fs_hz).limit_denominator(1000)
    filled, _ = signal_fill_nan(x)
    return resample_poly(filled, frac.numerator, frac.denominator)


def rhythm_features(ecg: np.ndarray, fs_hz: float) -> tuple[dict[str, float], int]:
    """The model's features of one usable ECG lead (at its own rate; no resampling here).

    RR intervals longer than 3 s (signal gaps) are left out of the RR features.

    Args:
        ecg: one ECG lead in mV.
        fs_hz: sampling rate in Hz.

    Returns:
        ``(features, n_beats)``: feature name -> value in the order of
        :data:`RHYTHM_FEATURE_NAMES`, and the number of R peaks detected.
    """
    x = _check_input(ecg, fs_hz)
    r = ecg_peaks(x, fs_hz)
    rr_ms = np.diff(r) * 1000.0
    feats = {
        **rr_irregularity_features(rr_ms[rr_ms <= 3000.0]),
        **morphology_features(x, fs_hz, r),
        **signal_quality_features(x, fs_hz, r),
        **extra_rhythm_features(x, fs_hz, r),
        **interval_features(x, fs_hz, r),
    }
    return {k: float(feats[k]) for k in RHYTHM_FEATURE_NAMES}, len(r)


def load_rhythm_model(path: str | Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Load a rhythm model (LightGBM text file) and its JSON card.

    Args:
        path: model file; default the shipped :data:`CINC_MODEL_PATH`.

    Returns:
        ``(booster, card)``.

    Raises:
        FeatureError: the file is missing or its features are not :data:`RHYTHM_FEATURE_NAMES`.
    """
    return load_model_with_card(
        Path(path) if path is not None else CINC_MODEL_PATH, RHYTHM_FEATURE_NAMES, "rhythm model"
    )


def classify_rhythm(ecg: np.ndarray, fs_hz: float, *, model_path: str | Path | None = None) -> RhythmResult:
    """Classify one single-lead ECG record as N, A, O or ~ (CinC 2017), or ``unknown``.

    Example:
        >>> import numpy as np
        >>> classify_rhythm(np.zeros(9000), 300.0).reason
        'flat lead: SD of the 0.5-40 Hz ECG is 0.0 µV (< 10 µV)'
        >>> classify_rhythm(np.zeros(500), 50.0).label
        'unknown'

    Args:
        ecg: one ECG lead in mV (NaN = invalid samples), 9-61 s like the training records.
        fs_hz: sampling rate in Hz (resampled to 300 Hz when different).
        model_path: another model file (default: the shipped one).

    Returns:
        The label, the class probabilities and, for ``unknown``, the reason.

    Raises:
        FeatureError: not a 1-D array, a non-finite / non-positive rate, or no model file.
    """
    reason = unusable_reason(ecg, fs_hz)
    if reason is not None:
        return RhythmResult(label="unknown", reason=reason)
    booster, _ = load_rhythm_model(model_path)
    x = _to_model_rate(_check_input(ecg, fs_hz), fs_hz)
    feats, n_beats = rhythm_features(x, MODEL_FS_HZ)
    prob = booster.predict(np.array([[feats[k] for k in RHYTHM_FEATURE_NAMES]]))[0]
    probs = {c: float(p) for c, p in zip(RHYTHM_CLASSES, prob, strict=True)}
    return RhythmResult(label=RHYTHM_CLASSES[int(np.argmax(prob))], probabilities=probs, n_beats=n_beats)


# ----------------------------------------------------------------------------- training
def cinc2017_feature_table(folder: str | Path, records: list[str] | None = None) -> pd.DataFrame:
    """Features and reference label of the CinC 2017 records in ``folder``.

    Args:
        folder: the ``cinc2017/training_subset`` folder.
        records: only these records (default: every record of the reference file).

    Returns:
        Columns ``record``, ``label``, ``n_beats``, ``duration_s`` and :data:`RHYTHM_FEATURE_NAMES`.
    """
    ref = cinc2017_reference(folder)
    if records is not None:
        ref = ref[ref["record"].isin(records)]
    rows = []
    for rec, label in zip(ref["record"], ref["label"], strict=True):
        x, fs = read_cinc2017_ecg(folder, rec)
        feats, n_beats = rhythm_features(_to_model_rate(x, fs), MODEL_FS_HZ)
        rows.append({"record": rec, "label": label, "n_beats": n_beats, "duration_s": len(x) / fs, **feats})
    return pd.DataFrame(rows)


def train_rhythm_model(
    table: pd.DataFrame, features: tuple[str, ...] = RHYTHM_FEATURE_NAMES, num_threads: int = 1, seed: int = 0
) -> Any:
    """Train the rhythm model with class-balanced weights (``n / (4 n_class)``).

    Args:
        table: rows of :func:`cinc2017_feature_table`.
        features: input columns (a subset gives e.g. the RR-only model of the benchmark).
        num_threads: LightGBM threads (results do not depend on it: ``deterministic=True``).
        seed: LightGBM seed.

    Returns:
        The trained ``lightgbm.Booster``.
    """
    import lightgbm as lgb

    y = table["label"].map({c: i for i, c in enumerate(RHYTHM_CLASSES)}).to_numpy()
    counts = np.bincount(y, minlength=len(RHYTHM_CLASSES))
    weight = (len(y) / (len(RHYTHM_CLASSES) * np.maximum(counts, 1)))[y]
    data = lgb.Dataset(
        table[list(features)].to_numpy(dtype=np.float64), label=y, weight=weight, feature_name=list(features)
    )
    params = {**RHYTHM_PARAMS, "num_threads": num_threads, "seed": seed}
    return lgb.train(params, data, num_boost_round=RHYTHM_ROUNDS)


def cross_validate_rhythm(
    table: pd.DataFrame,
    features: tuple[str, ...] = RHYTHM_FEATURE_NAMES,
    n_splits: int = 5,
    split_seed: int = 0,
    num_threads: int = 1,
) -> pd.DataFrame:
    """Stratified k-fold out-of-fold class probabilities, records as units.

    Args:
        table: :func:`cinc2017_feature_table` output (one row per record).
        features: input columns.
        n_splits: folds.
        split_seed: seed of the fold assignment (``StratifiedKFold(shuffle=True)``).
        num_threads: LightGBM threads.

    Returns:
        One row per record (index of ``table``): the probability of each class of
        :data:`RHYTHM_CLASSES`, plus ``fold`` and ``predicted``.
    """
    from sklearn.model_selection import StratifiedKFold

    out = pd.DataFrame(index=table.index, columns=[*RHYTHM_CLASSES, "fold"], dtype=float)
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=split_seed)
    for k, (tr, te) in enumerate(folds.split(np.zeros(len(table)), table["label"])):
        booster = train_rhythm_model(table.iloc[tr], features, num_threads=num_threads)
        out.iloc[te, : len(RHYTHM_CLASSES)] = booster.predict(table.iloc[te][list(features)].to_numpy(float))
        out.iloc[te, len(RHYTHM_CLASSES)] = k
    out["predicted"] = np.array(RHYTHM_CLASSES)[np.argmax(out[list(RHYTHM_CLASSES)].to_numpy(float), axis=1)]
    return out


def rhythm_scores(reference: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """CinC 2017 scores: F1 per class, the challenge F1 (mean of N, A, O) and the confusion matrix.

    Args:
        reference: reference labels (``N``, ``A``, ``O``, ``~``).
        predicted: predicted labels.

    Returns:
        ``f1`` (class -> F1), ``cinc_f1`` (mean F1 of N, A, O), ``f1_all`` (mean of the four),
        ``confusion`` (DataFrame, rows reference, columns predicted, classes in
        :data:`RHYTHM_CLASSES` order) and ``n``.
    """
    ref = np.asarray(reference, dtype=object)
    pred = np.asarray(predicted, dtype=object)
    conf = pd.DataFrame(0, index=list(RHYTHM_CLASSES), columns=list(RHYTHM_CLASSES))
    for r, p in zip(ref, pred, strict=True):
        if r in conf.index and p in conf.columns:
            conf.loc[r, p] += 1
    f1 = {}
    for c in RHYTHM_CLASSES:
        tp = conf.loc[c, c]
        den = conf.loc[c].sum() + conf[c].sum()
        f1[c] = float(2 * tp / den) if den else float("nan")
    return {
        "f1": f1,
        "cinc_f1": float(np.mean([f1[c] for c in ("N", "A", "O")])),
        "f1_all": float(np.mean(list(f1.values()))),
        "confusion": conf,
        "n": len(ref),
    }
