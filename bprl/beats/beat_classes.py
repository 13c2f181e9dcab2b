"""Per-beat classes N / S / V / Q (AAMI EC57) from RR context and QRS morphology, for PAT gating.

Classes (ANSI/AAMI EC57 beat classes, as used by de Chazal et al. 2004):

* ``"N"``: normal or bundle-branch-block beat (MIT-BIH symbols N, L, R, e, j);
* ``"S"``: supraventricular ectopic beat (A, a, J, S): premature, QRS like the record's own;
* ``"V"``: ventricular ectopic beat (V, E): QRS unlike the record's own, usually premature and
  followed by a compensatory pause;
* ``"Q"``: unknown: no pre-RR interval (first beat), the beat window leaves the signal or touches
  a NaN gap, no QRS in it, or the ECG around it is noisy; every beat of a record with fewer than
  :data:`MIN_BEATS` beats or without a QRS complex (a flat lead, mains hum) is ``"Q"``.

EC57's fusion class F is not produced (fusion beats come out as N or V).

Method. The ECG is band-passed 0.5-40 Hz (2nd-order Butterworth, zero-phase) and every beat is
read on a fixed grid of -280..+440 ms around its R time at 4 ms steps (linear interpolation), so
all windows are in ms and the features do not depend on the sampling rate. The record's own
**template** is the sample-wise median of the beats in a regular RR context (pre- and post-RR
within 15 % of the local mean), refined once by keeping the half of them that correlate best
with the first median. Features (:func:`beat_class_features`):

* RR context (:func:`beat_rr_features`): pre-RR, post-RR, the local mean of the 10 surrounding RR
  intervals, prematurity (pre-RR / local), post-RR / local, compensatory pause (post-RR / pre-RR),
  local / record median RR, and an RR irregularity (atrial fibrillation) measure;
* QRS morphology against the template, in -100..+120 ms: the best Pearson correlation over shifts
  of up to +-40 ms, the zero-shift correlation, the slope-energy width (ms holding the central
  80 % of the squared slope in -150..+200 ms) and its ratio, peak-to-peak amplitude, energy and
  mean-frequency ratios, polarity ((max + min) / (max - min) around the window median) and its
  difference; the P-wave (-280..-90 ms) and ST-T (+140..+440 ms) correlations;
* the same correlations and RR ratios of the previous and the next beat;
* noise: RMS of the ECG in 1-10 Hz and in 15-40 Hz over +-2 s around the beat, QRS complexes
  (+-100 ms) left out, over the template's QRS amplitude.

Classifier (:func:`ecg_beat_classes`). **V**: a LightGBM binary model (V against N and S) on the
RR and morphology features above, trained on the annotated MIT-BIH and QTDB dev records
(:mod:`bprl.beats.train_beat_classes`; text model ``models/beat_classes.txt``), V when its
probability is at least 0.5. **S**: a rule, because the dev records hold too few and too
peculiar S beats to learn from (MIT-BIH 232, 680 of them, is runs of atrial premature beats
among sinus pauses; a model trained without it misses 95 % of them): a beat that is not V,
premature (pre-RR < 0.85 x the local mean RR), with a QRS like the template (correlation >= 0.8)
and in a regular rhythm (RR irregularity < 0.12; in atrial fibrillation every beat would look
premature, and EC57 labels AF beats N). **Q**: the rules in the list above. ``method="rules"``
replaces the model by a documented V rule (QRS correlation < 0.7, or < 0.85 with a wide, slow,
re-polarised or much larger / smaller QRS): it generalises worse under leave-one-record-out
evaluation (``python -m benchmarks beat_classes``), so it is not the default.

Uses: :func:`ectopic_mask` marks the ectopic beats and the ``post`` beats after each one, the
beats that pulse-arrival-time (PAT) and morphology features leave out.

References:
    de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG
    morphology and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206, 2004.
    ANSI/AAMI EC57:2012. Testing and reporting performance results of cardiac rhythm and ST
    segment measurement algorithms.
    Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. IEEE Eng Med Biol
    20(3):45-50, 2001.
    Ke G et al. LightGBM: a highly efficient gradient boosting decision tree. NeurIPS 2017.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import ndimage

from bprl.beats._arrays import _ranges
from bprl.beats._models import load_booster
from bprl.beats.filters import signal_bandpass, signal_fill_nan
from bprl.errors import FeatureError

if TYPE_CHECKING:
    import lightgbm

__all__ = [
    "BEAT_CLASSES",
    "MODEL_FEATURES",
    "beat_class_features",
    "beat_rr_features",
    "ecg_beat_classes",
    "ectopic_mask",
]

#: The classes :func:`ecg_beat_classes` returns.
BEAT_CLASSES = ("N", "S", "V", "Q")
#: Beat window grid relative to the R time (ms).
GRID_STEP_MS = 4.0
GRID_MS = np.arange(-280.0, 440.0 + GRID_STEP_MS / 2, GRID_STEP_MS)
QRS_MS = (-100.0, 120.0)  # correlation, amplitude, energy, polarity, mean frequency
WIDTH_MS = (-150.0, 200.0)  # slope-energy width
P_MS = (-280.0, -90.0)  # P wave and PR segment
T_MS = (140.0, 440.0)  # ST segment and T wave
PROMINENCE_MS = (-50.0, 50.0)  # template QRS against the rest of the window
MAX_LAG_MS = 40.0  # QRS correlation: best over shifts up to +-40 ms
N_LOCAL_RR = 10  # RR intervals in the local mean around a beat
BAND_HZ = (0.5, 40.0)  # morphology band-pass
NOISE_LF_HZ, NOISE_HF_HZ = (1.0, 10.0), (15.0, 40.0)
NOISE_HALF_S, NOISE_QRS_S = 2.0, 0.1  # noise window +-2 s, QRS +-100 ms left out
MIN_FS_HZ = 100.0  # below this the QRS morphology is not resolved: FeatureError
MIN_BEATS = 8  # fewer beats in a record: all "Q"
#: Q thresholds (noise over the template QRS amplitude, template QRS prominence, beat amplitude).
MAX_NOISE_LF, MAX_NOISE_HF, MIN_PROMINENCE, MIN_AMP_RATIO = 0.3, 0.035, 4.0, 0.1
#: S rule: prematurity below, QRS correlation at least, RR irregularity below.
S_PREMATURITY, S_MIN_CORR, S_MAX_IRREGULARITY = 0.85, 0.8, 0.12
#: Probability of V from the model at or above which a beat is V.
V_PROBABILITY = 0.5
MODEL_PATH = Path(__file__).resolve().parent / "models" / "beat_classes.txt"
_NEIGHBOUR = ("prematurity", "pause_ratio", "qrs_corr")
#: Features of the V model, in its column order.
MODEL_FEATURES = (
    "prematurity",
    "post_ratio",
    "pause_ratio",
    "rr_record_ratio",
    "rr_irregularity",
    "qrs_corr",
    "qrs_corr0",
    "width_ms",
    "width_ratio",
    "amp_ratio",
    "energy_ratio",
    "freq_ratio",
    "polarity",
    "polarity_diff",
    "p_corr",
    "t_corr",
    *(f"{side}_{name}" for name in _NEIGHBOUR for side in ("prev", "next")),
)


def beat_rr_features(r_times_s: np.ndarray, n_local: int = N_LOCAL_RR) -> pd.DataFrame:
    """RR-context features of each beat (one row per R time; NaN where undefined).

    With ``rr[j] = t[j+1] - t[j]``: ``pre_rr_s[i] = rr[i-1]`` (NaN for the first beat),
    ``post_rr_s[i] = rr[i]`` (NaN for the last), ``local_rr_s[i]`` = mean of ``rr[j]`` for ``j`` in
    ``[i - n_local // 2, i - n_local // 2 + n_local)`` clipped to the record (the ``n_local``
    intervals centred on beat ``i``), ``prematurity = pre_rr_s / local_rr_s``, ``post_ratio =
    post_rr_s / local_rr_s``, ``pause_ratio = post_rr_s / pre_rr_s`` (compensatory pause: about 2
    after a premature ventricular beat with a full pause), ``rr_record_ratio = local_rr_s /
    median(rr)``, and ``rr_irregularity``: for lags ``k`` = 1, 2, 3 the running median (over
    ``n_local + 1`` values) of ``|rr[j] - rr[j-k]|``, the smallest of the three over ``local_rr_s``
    (near 0 in sinus rhythm, with isolated ectopic beats, bigeminy and trigeminy; large in
    atrial fibrillation, whose RR intervals are irregularly irregular).

    Args:
        r_times_s: R times in s, increasing.
        n_local: number of RR intervals in the local mean.

    Returns:
        DataFrame with the columns named above, one row per beat.
    """
    t = np.asarray(r_times_s, dtype=np.float64)
    n = len(t)
    rr = np.diff(t)
    pre, post, local, irr = (np.full(n, np.nan) for _ in range(4))
    med = np.nan
    if n > 1:
        pre[1:] = rr
        post[:-1] = rr
        half = n_local // 2
        cs = np.concatenate([[0.0], np.cumsum(rr)])
        lo = np.clip(np.arange(n) - half, 0, len(rr))
        hi = np.clip(np.arange(n) - half + n_local, 0, len(rr))
        local = (cs[hi] - cs[lo]) / np.maximum(hi - lo, 1)
        med = float(np.median(rr))
    if n > 4:
        runs = []
        for k in (1, 2, 3):
            dd = np.abs(rr[k:] - rr[:-k])  # dd[m] pairs rr[m + k] with rr[m]: beats m + 1 .. m + k + 1
            m = ndimage.median_filter(dd, size=n_local + 1, mode="nearest")
            runs.append(np.interp(np.arange(n), np.arange(len(dd)) + (k + 1) / 2, m))
        irr = np.min(runs, axis=0) / local
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame(
            {
                "pre_rr_s": pre,
                "post_rr_s": post,
                "local_rr_s": local,
                "prematurity": pre / local,
                "post_ratio": post / local,
                "pause_ratio": post / pre,
                "rr_record_ratio": local / med,
                "rr_irregularity": irr,
            }
        )


def _sel(lo_hi: tuple[float, float]) -> slice:
    """Columns of :data:`GRID_MS` within ``lo_hi`` (ms, both ends included)."""
    return slice(
        int(np.searchsorted(GRID_MS, lo_hi[0] - 1e-9)), int(np.searchsorted(GRID_MS, lo_hi[1] + 1e-9))
    )


def _beat_windows(
    bp: np.ndarray, bad: np.ndarray, fs_hz: float, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Beats of the band-passed ECG on :data:`GRID_MS` (linear interpolation), and a per-beat flag:
    the window leaves the signal or touches an invalid sample."""
    n = len(bp)
    pos = (t[:, None] + GRID_MS[None, :] / 1000.0) * fs_hz
    w = np.interp(pos.ravel(), np.arange(n), bp).reshape(pos.shape)
    lo = np.floor(pos[:, 0]).astype(np.int64)
    hi = np.ceil(pos[:, -1]).astype(np.int64)
    cbad = np.concatenate([[0], np.cumsum(bad)])
    nbad = cbad[np.clip(hi + 1, 0, n)] - cbad[np.clip(lo, 0, n)]
    return w, (lo < 0) | (hi > n - 1) | (nbad > 0)


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of ``a`` (beats, k) with ``b`` (k,); 0 where either is flat."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    num = np.sum(a * b, axis=-1)
    den = np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, 0.0)


def _qrs_stats(w: np.ndarray) -> dict[str, np.ndarray]:
    """Peak-to-peak amplitude, energy, polarity, mean frequency (1/step) and slope-energy width (ms)."""
    x = w[:, _sel(QRS_MS)]
    xc = x - np.median(w, axis=-1, keepdims=True)
    mx, mn = xc.max(axis=-1), xc.min(axis=-1)
    p2p = mx - mn
    xm = x - x.mean(axis=-1, keepdims=True)
    energy = np.sum(xm * xm, axis=-1)
    slope = np.sum(np.diff(x, axis=-1) ** 2, axis=-1)
    c = np.cumsum(np.diff(w[:, _sel(WIDTH_MS)], axis=-1) ** 2, axis=-1)
    c = c / np.where(c[:, -1:] > 0, c[:, -1:], 1.0)
    width = (np.argmax(c >= 0.9, axis=-1) - np.argmax(c >= 0.1, axis=-1) + 1) * GRID_STEP_MS
    with np.errstate(divide="ignore", invalid="ignore"):
        pol = np.where(p2p > 0, (mx + mn) / p2p, 0.0)
        freq = np.sqrt(np.where(energy > 0, slope / energy, 0.0))
    return {"p2p": p2p, "energy": energy, "polarity": pol, "freq": freq, "width": width}


def _template(w: np.ndarray, usable: np.ndarray, regular: np.ndarray) -> np.ndarray:
    """Record template: median of the usable beats in a regular RR context (of all usable beats when
    fewer than :data:`MIN_BEATS`), then the median of the half of those closest to it."""
    cand = usable & regular
    if cand.sum() < MIN_BEATS:
        cand = usable
    tw = w[cand]
    r = _pearson(tw[:, _sel(QRS_MS)], np.median(tw, axis=0)[_sel(QRS_MS)])
    return np.median(tw[r >= np.median(r)], axis=0)


def _prominence(tpl: np.ndarray) -> float:
    """Mean squared slope of the template within :data:`PROMINENCE_MS` over that of the rest of the
    window (a real QRS: > 20; mains hum or a flat lead: about 1 or 0)."""
    d = np.diff(tpl) ** 2
    mid = 0.5 * (GRID_MS[:-1] + GRID_MS[1:])
    q = (mid >= PROMINENCE_MS[0]) & (mid <= PROMINENCE_MS[1])
    rest = float(d[~q].mean())
    return float(d[q].mean()) / rest if rest > 0 else 0.0


def _lagged_corr(w: np.ndarray, tpl: np.ndarray) -> np.ndarray:
    """Best QRS correlation with the template over shifts of up to :data:`MAX_LAG_MS`."""
    s = _sel(QRS_MS)
    k = round(MAX_LAG_MS / GRID_STEP_MS)
    best = np.full(len(w), -1.0)
    for lag in range(-k, k + 1):
        if 0 <= s.start + lag and s.stop + lag <= w.shape[1]:
            best = np.maximum(best, _pearson(w[:, s.start + lag : s.stop + lag], tpl[s]))
    return best


def _noise(filled: np.ndarray, fs_hz: float, t: np.ndarray, amp: float) -> tuple[np.ndarray, np.ndarray]:
    """RMS of the ECG in :data:`NOISE_LF_HZ` and :data:`NOISE_HF_HZ` within +-:data:`NOISE_HALF_S`
    of each beat, the +-:data:`NOISE_QRS_S` around every R left out, over ``amp``."""
    n = len(filled)
    idx = np.round(t * fs_hz).astype(np.int64)
    k = round(NOISE_QRS_S * fs_hz)
    keep = np.ones(n, bool)
    keep[_ranges(np.clip(idx - k, 0, n), np.clip(idx + k + 1, 0, n))] = False
    half = round(NOISE_HALF_S * fs_hz)
    lo, hi = np.clip(idx - half, 0, n), np.clip(idx + half + 1, 0, n)
    ck = np.concatenate([[0], np.cumsum(keep)])
    cnt = np.maximum(ck[hi] - ck[lo], 1)
    out = []
    for band in (NOISE_LF_HZ, NOISE_HF_HZ):
        y = signal_bandpass(filled, fs_hz, *band)
        c = np.concatenate([[0.0], np.cumsum(np.where(keep, y * y, 0.0))])
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.sqrt((c[hi] - c[lo]) / cnt) / amp)
    return out[0], out[1]


def _check(ecg: np.ndarray, fs_hz: float, r_times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(ecg, dtype=np.float64)
    t = np.asarray(r_times_s, dtype=np.float64)
    if x.ndim != 1 or t.ndim != 1:
        raise FeatureError(f"beat classes: expected 1-D ECG and R times, got shapes {x.shape}, {t.shape}")
    if not fs_hz >= MIN_FS_HZ:
        raise FeatureError(
            f"beat classes: sampling rate {fs_hz} Hz is below {MIN_FS_HZ:.0f} Hz (QRS not resolved)"
        )
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise FeatureError("beat classes: R times must be finite and strictly increasing")
    return x, t


def beat_class_features(ecg: np.ndarray, fs_hz: float, r_times_s: np.ndarray) -> pd.DataFrame:
    """Per-beat features of :func:`ecg_beat_classes` (method in the module docstring).

    Args:
        ecg: one ECG lead (any units); NaN marks invalid samples.
        fs_hz: sampling rate in Hz (at least :data:`MIN_FS_HZ`).
        r_times_s: R times in s from the start of ``ecg`` (e.g. :func:`bprl.beats.ecg_peaks`).

    Returns:
        One row per beat: the RR columns of :func:`beat_rr_features`, the morphology columns of
        :data:`MODEL_FEATURES`, ``noise_lf`` and ``noise_hf``, ``window_bad`` (window outside the
        signal or touching NaN) and ``prominence`` (the record template's QRS prominence, one
        value repeated). Morphology columns are NaN when fewer than :data:`MIN_BEATS` beats are usable.

    Raises:
        FeatureError: not 1-D, sampling rate below :data:`MIN_FS_HZ`, R times not increasing.
    """
    x, t = _check(ecg, fs_hz, r_times_s)
    filled, bad = signal_fill_nan(x)
    feats = beat_rr_features(t)
    morph = [c for c in MODEL_FEATURES if c not in feats.columns] + ["noise_lf", "noise_hf", "prominence"]
    feats = feats.assign(**dict.fromkeys(morph, np.nan), window_bad=True)
    if len(t) == 0:
        return feats
    w, wbad = _beat_windows(signal_bandpass(filled, fs_hz, *BAND_HZ), bad, fs_hz, t)
    feats["window_bad"] = wbad
    if (~wbad).sum() < MIN_BEATS:
        return feats
    regular = (feats["prematurity"].between(0.85, 1.15) & feats["post_ratio"].between(0.85, 1.15)).to_numpy()
    tpl = _template(w, ~wbad, regular)
    st, tt = _qrs_stats(w), _qrs_stats(tpl[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        feats["qrs_corr"] = _lagged_corr(w, tpl)
        feats["qrs_corr0"] = _pearson(w[:, _sel(QRS_MS)], tpl[_sel(QRS_MS)])
        feats["width_ms"] = st["width"]
        feats["width_ratio"] = st["width"] / tt["width"][0]
        feats["amp_ratio"] = st["p2p"] / tt["p2p"][0]
        feats["energy_ratio"] = st["energy"] / tt["energy"][0]
        feats["freq_ratio"] = st["freq"] / tt["freq"][0]
        feats["polarity"] = st["polarity"]
        feats["polarity_diff"] = st["polarity"] - tt["polarity"][0]
        feats["p_corr"] = _pearson(w[:, _sel(P_MS)], tpl[_sel(P_MS)])
        feats["t_corr"] = _pearson(w[:, _sel(T_MS)], tpl[_sel(T_MS)])
    feats.loc[wbad, [c for c in morph if c not in ("noise_lf", "noise_hf", "prominence")]] = np.nan
    for name in _NEIGHBOUR:
        feats[f"prev_{name}"] = feats[name].shift(1)
        feats[f"next_{name}"] = feats[name].shift(-1)
    feats["noise_lf"], feats["noise_hf"] = _noise(filled, fs_hz, t, float(tt["p2p"][0]))
    feats["prominence"] = _prominence(tpl)
    return feats


def _shipped_booster() -> lightgbm.Booster:
    if not MODEL_PATH.is_file():
        raise FeatureError(
            f"beat classes: model file {MODEL_PATH} missing (python -m bprl.beats.train_beat_classes)"
        )
    return load_booster(MODEL_PATH)


def _v_rule(f: pd.DataFrame) -> np.ndarray:
    """The model-free V rule of ``method="rules"`` (thresholds in the module docstring)."""
    odd = (
        (f["width_ratio"] > 1.3)
        | (f["freq_ratio"] < 0.75)
        | (f["polarity_diff"].abs() > 0.5)
        | (f["energy_ratio"] > 2.5)
        | (f["energy_ratio"] < 0.4)
    )
    return (((f["qrs_corr"] < 0.85) & odd) | (f["qrs_corr"] < 0.7)).to_numpy()


def _unknown_mask(f: pd.DataFrame) -> np.ndarray:
    """Beats :func:`ecg_beat_classes` calls ``"Q"`` from its features (rules in the module docstring)."""
    q = f["window_bad"].to_numpy(bool) | f["pre_rr_s"].isna().to_numpy()
    q |= ~(f["noise_lf"] <= MAX_NOISE_LF).to_numpy() | ~(f["noise_hf"] <= MAX_NOISE_HF).to_numpy()
    q |= ~(f["amp_ratio"] >= MIN_AMP_RATIO).to_numpy()
    if len(f) < MIN_BEATS or not (f["prominence"] >= MIN_PROMINENCE).any():
        q[:] = True
    return q


def ecg_beat_classes(
    ecg: np.ndarray,
    fs_hz: float,
    r_times_s: np.ndarray,
    method: str = "model",
    booster: lightgbm.Booster | None = None,
) -> np.ndarray:
    """Classify each beat N / S / V / Q (AAMI EC57 classes; method and sources in the module docstring).

    Args:
        ecg: one ECG lead (any units); NaN marks invalid samples.
        fs_hz: sampling rate in Hz (at least 100; tested at 250-1000 Hz).
        r_times_s: R times in s from the start of ``ecg`` (:func:`bprl.beats.ecg_peaks`), increasing.
        method: ``"model"`` (LightGBM V model, the default) or ``"rules"`` (model-free V rule).
        booster: a ``lightgbm.Booster`` over :data:`MODEL_FEATURES` to use instead of the shipped
            model (leave-one-record-out evaluation); ``method="model"`` only.

    Returns:
        One of ``"N"``, ``"S"``, ``"V"``, ``"Q"`` per R time (numpy ``<U1`` array). A record with
        fewer than :data:`MIN_BEATS` beats, or whose template has no QRS (flat lead, mains hum),
        gives all ``"Q"``; no beats give an empty array.

    Raises:
        FeatureError: ECG or R times not 1-D, sampling rate below 100 Hz, R times not finite and
            increasing, or the shipped model file missing.
    """
    f = beat_class_features(ecg, fs_hz, r_times_s)
    out = np.full(len(f), "N", dtype="<U1")
    q = _unknown_mask(f)
    if q.all():
        out[:] = "Q"
        return out
    if method == "model":
        b = booster if booster is not None else _shipped_booster()
        # one thread: the same probabilities (trees are evaluated per row), less CPU time than
        # LightGBM's default thread pool on a few thousand rows
        x = f.loc[:, list(MODEL_FEATURES)].to_numpy(np.float64)
        v = np.asarray(b.predict(x, num_threads=1)) >= V_PROBABILITY
    elif method == "rules":
        v = _v_rule(f)
    else:
        raise FeatureError(f"beat classes: unknown method {method!r} (model, rules)")
    s = (
        ~v
        & (f["prematurity"] < S_PREMATURITY).to_numpy()
        & (f["qrs_corr"] >= S_MIN_CORR).to_numpy()
        & (f["rr_irregularity"] < S_MAX_IRREGULARITY).to_numpy()
    )
    out[v] = "V"
    out[s] = "S"
    out[q] = "Q"
    return out


def ectopic_mask(classes: np.ndarray, post: int = 1, unknown: bool = False) -> np.ndarray:
    """Beats to leave out of PAT and morphology features: each ectopic beat (S or V) and the ``post``
    beats after it (a post-ectopic beat follows a compensatory pause: its filling, stroke volume and
    PAT are not those of the rhythm).

    Args:
        classes: per-beat classes (``"N"``, ``"S"``, ``"V"``, ``"Q"``; :func:`ecg_beat_classes`).
        post: number of beats after each ectopic beat also marked (0: the ectopic beats only).
        unknown: also mark ``"Q"`` beats (and the ``post`` beats after them).

    Returns:
        Boolean array, True where the beat is ectopic or within ``post`` beats after one.

    Raises:
        FeatureError: ``post`` negative.
    """
    c = np.asarray(classes).astype(str)
    if post < 0:
        raise FeatureError(f"ectopic_mask: post must be >= 0, got {post}")
    hit = np.isin(c, ["S", "V", "Q"] if unknown else ["S", "V"])
    out = hit.copy()
    for k in range(1, post + 1):
        out[k:] |= hit[:-k] if k < len(hit) else False
    return out
