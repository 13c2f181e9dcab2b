"""Pulse feet of a camera PPG without an ECG: max-slope points and intersecting-tangents feet.

A finger PPG in bprl is delineated beat by beat from ECG R peaks (:mod:`bprl.beats.ppg`). A
camera has no ECG, so the upstrokes are found in the pulse itself:

1. the pulse is interpolated ``upsample`` times (``scipy.signal.resample_poly``: band-limited
   interpolation, exact for a pulse band-passed far below the frame rate's Nyquist frequency);
2. the **max-slope points** are the peaks of the first derivative at least 0.55 of a beat apart
   (the beat period from the clip's heart rate) and above 30 % of the median peak height;
3. the **foot** of each upstroke is the intersecting-tangents point (the horizontal line
   through the minimum in the preceding 0.6 beat, crossed with the tangent at the max-slope
   point: ``t_foot = t_ms - (y_ms - y_min) / slope_ms``), the definition used for the finger
   PPG (:mod:`bprl.beats.ppg`) and for the virtual cohort's ``ppg_foot_s``.

The heart-rate chain band-passes its pulse to 0.7-3.5 Hz, which removes the harmonics that make
the upstroke steep and moves the tangent foot earlier; :func:`wideband_pulse` is the same POS
pulse band-passed 0.5-8 Hz (capped at 0.45 x the frame rate), for timing and morphology.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import signal

from bprl.sources.camera.rppg import (
    WINDOW_S,
    _overlap_add,
    _pos_window,
    _prepare,
    _unit,
    bandpass,
    hr_from_pulse,
)

__all__ = ["WIDE_BAND_HZ", "match_feet", "pulse_feet", "wideband_pulse"]

#: band of :func:`wideband_pulse`, Hz
WIDE_BAND_HZ = (0.5, 8.0)


def wideband_pulse(rgb: np.ndarray, fs_hz: float, band_hz: tuple[float, float] = WIDE_BAND_HZ) -> np.ndarray:
    """POS pulse (rises with blood volume, unit SD) band-passed ``band_hz`` instead of 0.7-3.5 Hz.

    Args:
        rgb: ``(N, 3)`` mean RGB per frame of one region.
        fs_hz: frame rate, Hz.
        band_hz: pass band, Hz (the upper edge is capped at 0.45 ``fs_hz``).
    """
    return _unit(bandpass(_overlap_add(_prepare(rgb), fs_hz, WINDOW_S, _pos_window), fs_hz, band_hz))


def pulse_feet(
    pulse: np.ndarray, fs_hz: float, hr_bpm: float | None = None, upsample: int = 8
) -> pd.DataFrame:
    """Feet and max-slope points of every upstroke of a pulse signal that rises with blood volume.

    Args:
        pulse: the pulse, one sample per frame (e.g. ``VideoPPG.pulse``).
        fs_hz: its sampling rate (the frame rate), Hz.
        hr_bpm: the clip's heart rate (sets the minimum beat spacing); ``None``: from its spectrum.
        upsample: interpolation factor before the derivative.

    Returns:
        DataFrame, one row per upstroke: ``t_foot_s``, ``t_maxslope_s``, ``t_peak_s`` (maximum
        within the next half beat), ``amplitude`` (peak - foot level), ``slope_max`` (units/s).
    """
    cols = ["t_foot_s", "t_maxslope_s", "t_peak_s", "amplitude", "slope_max"]
    x = np.nan_to_num(np.asarray(pulse, dtype=np.float64))
    if len(x) < 4 * fs_hz:
        return pd.DataFrame({c: np.zeros(0) for c in cols})
    if hr_bpm is None or not np.isfinite(hr_bpm) or hr_bpm <= 0:
        hr_bpm, _ = hr_from_pulse(x, fs_hz)
    fs_up = fs_hz * upsample
    y = signal.resample_poly(x, upsample, 1)
    d = np.gradient(y) * fs_up
    period = 60.0 / hr_bpm * fs_up
    peaks, props = signal.find_peaks(d, distance=max(int(0.55 * period), 1), height=0.0)
    if len(peaks) == 0:
        return pd.DataFrame({c: np.zeros(0) for c in cols})
    peaks = peaks[props["peak_heights"] >= 0.3 * np.median(props["peak_heights"])]
    back, ahead = int(0.6 * period), int(0.5 * period)
    rows = []
    for i in peaks:
        lo = max(i - back, 0)
        i_min = lo + int(np.argmin(y[lo : i + 1]))
        hi = min(i + ahead, len(y) - 1)
        i_pk = i + int(np.argmax(y[i : hi + 1]))
        t_foot = (i - (y[i] - y[i_min]) / d[i] * fs_up) / fs_up
        rows.append((t_foot, i / fs_up, i_pk / fs_up, y[i_pk] - y[i_min], d[i]))
    return pd.DataFrame(rows, columns=cols)


def match_feet(detected_s: np.ndarray, truth_s: np.ndarray, tolerance_s: float = 0.25) -> np.ndarray:
    """Error ``detected - truth`` (s) of the detected foot nearest each true foot; NaN beyond ``tolerance_s``."""
    det = np.sort(np.asarray(detected_s, dtype=np.float64))
    truth = np.asarray(truth_s, dtype=np.float64)
    if len(det) == 0:
        return np.full(len(truth), np.nan)
    j = np.clip(np.searchsorted(det, truth), 1, max(len(det) - 1, 1))
    cand = np.stack([det[j - 1], det[np.minimum(j, len(det) - 1)]])
    best = cand[np.argmin(np.abs(cand - truth), axis=0), np.arange(len(truth))]
    err = best - truth
    return np.where(np.abs(err) <= tolerance_s, err, np.nan)
