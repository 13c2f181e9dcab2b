"""QRS onset refinement: a learned correction of the wavelet QRS onset, trained on LUDB.

The wavelet delineator (:mod:`bprl.beats.delineation`) puts the QRS onset where the 4 ms slope
falls below a fixed share (5 %, 7 % before a Q wave) of the first QRS slope: Martínez's rule.
Cardiologists mark the first visible deflection, and where that lies against the threshold
crossing depends on the shape of the complex's start (a slow initial r, a notch, noise on the PR
segment): on LUDB lead II the rule's error has an SD of about 15 ms, most of it an offset that
differs from record to record. :func:`refine_qrs_onsets` learns that dependence: a gradient-boosted
regression (LightGBM, Huber loss) reads the slope and the signal around the wavelet onset and
predicts the cardiologists' mark minus the wavelet onset; the refined onset is the wavelet onset
plus that correction, bounded to +-:data:`MAX_SHIFT_MS`, not before a paced beat's spike end and
not after R. ``ecg_delineate(..., qrs_onset="model")`` uses it (the P-wave search then ends at the
refined onset).

Features (:data:`ONSET_FEATURES`, all free of the signal's units and sampling rate), per beat:

* ``w_m40_ms`` ... ``w_p20_ms``: the 4 ms-scale slope (the delineator's derivative of a Gaussian)
  at -40 to +20 ms in 2 ms steps from the wavelet onset, over the largest slope within +-60 ms of
  R, signed so that the R deflection is upward;
* ``x_m40_ms`` ... ``x_p20_ms``: the ECG smoothed by a 2 ms Gaussian at the same instants minus
  its value at the onset, over the QRS peak-to-peak amplitude (+-60 ms around R), same sign;
* ``noise_rel`` (median 4 ms slope over +-500 ms, over the largest slope), ``r_minus_onset_ms``,
  ``qrs_ms`` (wavelet offset - onset), ``rr_prev_ms`` and ``log_slope_per_amplitude`` (log of the
  largest slope over the amplitude, in 1/s).

The model (``models/qrs_onset.txt``, a LightGBM text file, and its JSON card) is trained by
:mod:`bprl.beats.train_qrs_onset` on the 12 leads of the LUDB dev records, each lead against its
own marks. Its accuracy is measured out of sample, in ``python -m benchmarks qrs_onset``: on LUDB
by 5-fold cross-validation with records as units, and on QTDB, which it was not trained on (the
delineation guide has the tables). It learned LUDB's convention, each lead's own first
deflection, from standard 12-lead ECGs at rest; a reference with another convention (QTDB's
global onset) or very different leads may need the wavelet rule or retraining.

Sources: J. P. Martínez et al., IEEE TBME 51(4):570-581, 2004 (the wavelet rule); A. I.
Kalyakulina et al., "LUDB: a new open-access validation tool for electrocardiogram delineation
algorithms", IEEE Access 8:186181-186190, 2020; G. Ke et al., "LightGBM", NeurIPS 2017.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from bprl.beats._arrays import _window_index
from bprl.beats._models import MODELS_DIR, load_model_with_card
from bprl.errors import FeatureError

__all__ = ["MAX_SHIFT_MS", "MODEL_PATH", "ONSET_FEATURES", "qrs_onset_features", "refine_qrs_onsets"]

#: instants (ms from the wavelet onset) where the slope and the signal are read
OFFSETS_MS = np.arange(-40.0, 21.0, 2.0)
#: the largest correction applied (ms, either way); the model is trained on errors within it
MAX_SHIFT_MS = 40.0
#: the shipped model file (its JSON card beside it)
MODEL_PATH = MODELS_DIR / "qrs_onset.txt"
_SLOPE_SD_MS, _SMOOTH_SD_MS = 4.0, 2.0  # the delineator's QRS scale; light smoothing of the ECG
_R_HALF_MS, _NOISE_HALF_MS, _POLARITY_HALF_MS = 60.0, 500.0, 150.0


def _offset_name(prefix: str, ms: float) -> str:
    return f"{prefix}_{'m' if ms < 0 else 'p'}{abs(int(ms))}_ms"


#: the model's inputs, in order
ONSET_FEATURES: tuple[str, ...] = (
    *(_offset_name("w", o) for o in OFFSETS_MS),
    *(_offset_name("x", o) for o in OFFSETS_MS),
    "noise_rel",
    "r_minus_onset_ms",
    "qrs_ms",
    "rr_prev_ms",
    "log_slope_per_amplitude",
)


def onset_feature_matrix(
    x: np.ndarray, fs_hz: float, r: np.ndarray, onset: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    """:data:`ONSET_FEATURES` per beat (rows) of a prepared lead (NaN filled, pacing spikes
    blanked, as the delineator sees it); ``r``, ``onset`` and ``offset`` in fractional samples.
    Rows of beats without an onset, or of a flat stretch around R, are NaN."""
    n, fs = len(x), float(fs_hz)
    onset = np.asarray(onset, dtype=np.float64)
    out = np.full((len(r), len(ONSET_FEATURES)), np.nan)
    if len(r) == 0 or n < 3:
        return out

    def samples(ms: float) -> int:
        return max(round(ms * fs / 1000.0), 1)

    w = ndimage.gaussian_filter1d(x, max(_SLOPE_SD_MS * fs / 1000.0, 0.5), order=1, mode="nearest")
    xs = ndimage.gaussian_filter1d(x, max(_SMOOTH_SD_MS * fs / 1000.0, 0.5), mode="nearest")
    ri = np.clip(np.rint(r).astype(np.int64), 0, n - 1)
    h = samples(_R_HALF_MS)
    idx, _ = _window_index(ri - h, 2 * h + 1, n)
    big = np.abs(w[idx]).max(axis=1)
    amp = np.ptp(xs[idx], axis=1)
    hn, step = samples(_NOISE_HALF_MS), samples(2.0)
    nidx = np.clip(ri[:, None] + np.arange(-hn, hn + 1, step)[None, :], 0, n - 1)
    noise = np.median(np.abs(w[nidx]), axis=1)
    hp = samples(_POLARITY_HALF_MS)
    pidx, _ = _window_index(ri - hp, 2 * hp + 1, n)
    sign = np.sign(x[ri] - np.median(x[pidx], axis=1))
    sign = np.where(sign == 0, 1.0, sign)
    ok = np.isfinite(onset) & (big > 0) & (amp > 0)
    if not ok.any():
        return out
    t = np.arange(n, dtype=np.float64)
    on = np.where(ok, onset, 0.0)
    at = on[:, None] + OFFSETS_MS[None, :] * fs / 1000.0
    s_big = (sign / np.where(ok, big, 1.0))[:, None]
    s_amp = (sign / np.where(ok, amp, 1.0))[:, None]
    slope = np.interp(at, t, w) * s_big
    level = (np.interp(at, t, xs) - np.interp(on, t, xs)[:, None]) * s_amp
    rr_prev = np.insert(np.diff(np.asarray(r, dtype=np.float64)), 0, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        extra = np.column_stack(
            [
                noise / big,
                (r - on) * 1000.0 / fs,
                (offset - on) * 1000.0 / fs,
                rr_prev * 1000.0 / fs,
                np.log(big * fs / amp),
            ]
        )
    out[ok] = np.hstack([slope, level, extra])[ok]
    return out


def qrs_onset_features(ecg: np.ndarray, fs_hz: float, delineation: pd.DataFrame) -> pd.DataFrame:
    """The refinement model's inputs for each beat of a wavelet delineation of one lead.

    Args:
        ecg: the delineated lead (any units, either polarity; NaN = invalid samples).
        fs_hz: its sampling rate in Hz.
        delineation: ``ecg_delineate(ecg, fs_hz)`` (the default ``qrs_onset="wavelet"``).

    Returns:
        One row per row of ``delineation``, columns :data:`ONSET_FEATURES` (NaN where the beat
        has no QRS onset).

    Raises:
        FeatureError: ``ecg`` is not 1-D or ``delineation`` lacks ``r_s``, ``qrs_onset_s`` or
            ``qrs_offset_s``.
    """
    from bprl.beats.delineation import prepared_lead

    x = np.asarray(ecg, dtype=np.float64)
    if x.ndim != 1:
        raise FeatureError(f"qrs_onset_features: expected a 1-D ECG lead, got shape {x.shape}")
    missing = [c for c in ("r_s", "qrs_onset_s", "qrs_offset_s") if c not in delineation]
    if missing:
        raise FeatureError(f"qrs_onset_features: delineation lacks column(s) {missing}")
    r_s = delineation["r_s"].to_numpy(np.float64)
    prepared, _, _ = prepared_lead(x, fs_hz, r_s)
    f = onset_feature_matrix(
        prepared,
        fs_hz,
        r_s * fs_hz,
        delineation["qrs_onset_s"].to_numpy(np.float64) * fs_hz,
        delineation["qrs_offset_s"].to_numpy(np.float64) * fs_hz,
    )
    return pd.DataFrame(f, columns=list(ONSET_FEATURES), index=delineation.index)


def shift_onsets(
    onset: np.ndarray, shift_ms: np.ndarray, fs_hz: float, r: np.ndarray, not_before: np.ndarray
) -> np.ndarray:
    """``onset + shift_ms`` (fractional samples), the shift bounded to +-:data:`MAX_SHIFT_MS`, the
    result not before ``not_before`` (a paced beat's spike end; -inf: none) nor after ``r``; NaN
    shifts leave the onset as it is."""
    shift = np.clip(np.nan_to_num(shift_ms, nan=0.0), -MAX_SHIFT_MS, MAX_SHIFT_MS) * fs_hz / 1000.0
    moved = np.minimum(onset + shift, r)
    moved = np.maximum(moved, np.minimum(not_before, onset))  # never before a spike the rule respected
    return np.where(np.isfinite(onset), moved, onset)


def refine_qrs_onsets(
    x: np.ndarray,
    fs_hz: float,
    r: np.ndarray,
    onset: np.ndarray,
    offset: np.ndarray,
    not_before: np.ndarray,
    model_path: str | Path | None = None,
) -> np.ndarray:
    """Refined QRS onsets (fractional samples) of a prepared lead: the wavelet ``onset`` plus the
    shipped model's correction (module docstring); ``not_before`` is each beat's pacing-spike
    end (-inf for unpaced beats). ``model_path`` overrides the shipped model (a model trained
    without some records, for out-of-sample evaluation).

    Raises:
        FeatureError: the model file is missing or was trained on other features.
    """
    booster, _ = load_model_with_card(
        MODEL_PATH if model_path is None else Path(model_path),
        ONSET_FEATURES,
        "QRS onset model",
        rebuild="python -m bprl.beats.train_qrs_onset",
    )
    f = onset_feature_matrix(x, fs_hz, r, onset, offset)
    have = np.isfinite(onset) & np.isfinite(f).any(axis=1)
    shift = np.full(len(onset), np.nan)
    if have.any():
        shift[have] = booster.predict(f[have])
    return shift_onsets(onset, shift, fs_hz, r, not_before)
