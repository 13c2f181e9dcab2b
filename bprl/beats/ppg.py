"""PPG pulse fiducials: foot, max slope, systolic and diastolic peaks and width of each beat's pulse.

Fiducial definitions (all times in seconds from the start of the signal):

- **PPG max slope**: maximum of the first derivative of the 0-12 Hz low-passed PPG on the
  upstroke caused by the beat (searched 100-600 ms after the R peak), parabolic fit.
- **PPG foot**: intersecting tangents: the horizontal line through the pulse minimum that
  precedes the upstroke, crossed with the tangent at the max-slope point:
  ``t_foot = t_maxslope - (y(t_maxslope) - y_min) / slope_max``.
- **PPG systolic peak**: maximum of the pulse after the max-slope point (parabolic fit).
- **PPG diastolic peak**: first local maximum after the systolic peak (>= 80 ms later)
  and before the next foot; NaN when the pulse has none.

:func:`ppg_fiducials` is the public entry point; :func:`_ppg_fiducials_filled` is the same on a
PPG already NaN-filled by :func:`bprl.beats.filters.signal_fill_nan`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage, signal

from bprl.beats._arrays import _near, _parabolic, _rolling_quantile_of_points, _Windows
from bprl.beats.filters import _deriv, signal_bandpass, signal_fill_nan

__all__ = ["ppg_fiducials"]

_PPG_COLUMNS = (
    "t_foot_s",
    "t_maxslope_s",
    "t_peak_s",
    "t_dia_s",
    "y_foot",
    "y_peak",
    "y_dia",
    "slope_max",
    "width_ms",
)


def ppg_fiducials(
    ppg: np.ndarray,
    fs_hz: float,
    r_times_s: np.ndarray,
    pat_min_ms: float = 100.0,
    pat_max_ms: float = 600.0,
) -> pd.DataFrame:
    """PPG pulse fiducials of the pulse caused by each R peak.

    The upstroke of beat *k* is the maximum of the PPG first derivative (0-12 Hz zero-phase
    low-pass) whose time lies ``pat_min_ms..pat_max_ms`` after R peak *k*. Upstroke candidates
    are local derivative maxima above 30 % of the local derivative scale; when a window holds
    several (high heart rate: the upstroke of beat *k-1* or *k+1* also falls inside it), the
    candidate closest to the running median PAT of unambiguous beats is taken, never simply the
    next one.

    Returns:
        DataFrame, one row per R peak, times in s: ``t_foot_s`` (intersecting tangents),
        ``t_maxslope_s``, ``t_peak_s`` (systolic), ``t_dia_s`` (diastolic peak, NaN if none),
        ``y_foot``, ``y_peak``, ``y_dia`` (record units), ``slope_max`` (units/s) and
        ``width_ms`` (pulse width at half amplitude). NaN where no pulse was found.
    """
    r = np.asarray(r_times_s, dtype=np.float64)
    filled, nan_mask = signal_fill_nan(ppg)
    return pd.DataFrame(_ppg_fiducials_filled(filled, nan_mask, fs_hz, r, pat_min_ms, pat_max_ms))


def _ppg_fiducials_filled(
    filled: np.ndarray,
    nan_mask: np.ndarray,
    fs_hz: float,
    r: np.ndarray,
    pat_min_ms: float = 100.0,
    pat_max_ms: float = 600.0,
) -> dict[str, np.ndarray]:
    """:func:`ppg_fiducials` on an already NaN-filled PPG; columns as a dict of arrays."""
    r = np.asarray(r, dtype=np.float64)
    out = {c: np.full(len(r), np.nan) for c in _PPG_COLUMNS}
    if len(r) == 0 or len(filled) < int(fs_hz) or len(filled) - np.count_nonzero(nan_mask) < int(fs_hz):
        return out
    y = signal_bandpass(filled, fs_hz, None, 12.0, order=3)
    d1 = _deriv(y, fs_hz)
    cand = _upstroke_candidates(d1, nan_mask, fs_hz)
    if len(cand) == 0:
        return out
    off, dmax = _parabolic(d1, cand)
    tc = (cand + off) / fs_hz
    choice = _pair_upstrokes(tc, r, pat_min_ms, pat_max_ms)
    ok = choice >= 0
    ci = choice[ok]
    vals, good = _pulse_fiducials(y, nan_mask, fs_hz, cand, cand[ci], tc[ci], dmax[ci])
    for c, v in vals.items():
        col = out[c]
        col[np.flatnonzero(ok)] = np.where(good, v, np.nan)
    return out


def _upstroke_candidates(d1: np.ndarray, nan_mask: np.ndarray, fs_hz: float) -> np.ndarray:
    """Upstroke candidates (sample indices): local maxima of ``d1`` at least 250 ms apart, not
    within 300 ms of a NaN sample, above 30 % of the local (+-5 s) 90th percentile of ``d1``."""
    cand, _ = signal.find_peaks(d1, distance=max(1, round(0.25 * fs_hz)))
    if nan_mask.any():
        cand = cand[~_near(nan_mask, cand, max(1, round(0.3 * fs_hz)))]
    if len(cand) == 0:
        return cand
    scale = _rolling_quantile_of_points(cand / fs_hz, d1[cand], 5.0, 0.9)
    return cand[d1[cand] >= 0.3 * scale]


def _pair_upstrokes(tc: np.ndarray, r: np.ndarray, pat_min_ms: float, pat_max_ms: float) -> np.ndarray:
    """Index into the candidate times ``tc`` (s) of the upstroke of each R peak ``r`` (s); -1 for none.

    A beat with one candidate ``pat_min_ms..pat_max_ms`` after its R peak takes it; a beat with
    several takes the one closest to the reference PAT, the running median (61 beats) of the
    unambiguous beats' PAT at the beat's time.
    """
    lo = np.searchsorted(tc, r + pat_min_ms / 1000.0, side="left")
    hi = np.searchsorted(tc, r + pat_max_ms / 1000.0, side="right")
    count = hi - lo
    choice = np.full(len(r), -1, dtype=np.int64)
    one = count == 1
    choice[one] = lo[one]
    if (count > 1).any():
        # reference PAT: running median (61 beats) of the unambiguous beats, at each beat's time
        pat_one = tc[lo[one]] - r[one]
        if len(pat_one):
            run = ndimage.median_filter(pat_one, size=min(61, 2 * (len(pat_one) // 2) + 1), mode="nearest")
            ref = np.interp(r, r[one], run)
        else:
            ref = np.full(len(r), (pat_min_ms + pat_max_ms) / 2000.0)
        for i in np.flatnonzero(count > 1):  # loop over ambiguous beats only
            k = np.arange(lo[i], hi[i])
            choice[i] = k[np.argmin(np.abs(tc[k] - r[i] - ref[i]))]
    return choice


class _PulseWindows(NamedTuple):
    """Search-window lengths (samples) around one pulse."""

    pre: int  # foot: the 300 ms before the max slope
    post: int  # systolic peak: the 400 ms after the max slope
    dia: int  # diastolic peak: 500 ms from ``gap`` after the systolic peak
    down: int  # half-amplitude crossing on the downslope: 1 s after the systolic peak
    up: int  # half-amplitude crossing on the upstroke: from the foot window start to 400 ms after the max slope
    gap: int  # the diastolic peak lies at least 80 ms after the systolic peak

    @classmethod
    def at(cls, fs_hz: float) -> _PulseWindows:
        """The windows at sampling rate ``fs_hz`` (Hz)."""
        pre = max(3, round(0.3 * fs_hz))
        return cls(
            pre=pre,
            post=max(3, round(0.4 * fs_hz)),
            dia=max(3, round(0.5 * fs_hz)),
            down=max(3, round(1.0 * fs_hz)),
            up=pre + 1 + round(0.4 * fs_hz),
            gap=max(1, round(0.08 * fs_hz)),
        )

    @property
    def pad(self) -> int:
        """Edge padding (samples) that holds every window."""
        return max(self.pre, self.post, self.dia + self.gap, self.down, self.up) + 1


def _pulse_fiducials(
    y: np.ndarray,
    nan_mask: np.ndarray,
    fs_hz: float,
    cand: np.ndarray,
    i_ms: np.ndarray,
    t_ms: np.ndarray,
    slope: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Fiducials of the paired pulses, given their max-slope sample ``i_ms``, time ``t_ms`` (s) and
    slope (units/s) on the low-passed PPG ``y``; ``cand`` are all upstroke candidates (samples).

    Returns the fiducial columns (one value per paired pulse) and whether each pulse is sane: it
    rises, has a foot up to 300 ms before its max slope and lies outside NaN stretches.
    """
    n = len(y)
    w = _PulseWindows.at(fs_hz)
    win = _Windows(y, w.pad)
    s_pre = i_ms - w.pre
    i_min, y_min, t_foot = _foot(y, win, s_pre, w.pre, t_ms, slope, fs_hz)
    nxt = _next_upstroke_limit(cand, i_ms, n, fs_hz)
    i_pk, y_pk, t_pk, anyp = _systolic_peak(y, win, i_ms, nxt, w.post, fs_hz)
    t_dia, y_d = _diastolic_peak(y, win, i_pk, nxt, w, fs_hz)
    width = _half_width_ms(y, win, s_pre, i_min, i_pk, y_min, y_pk, w, fs_hz)
    good = anyp & (slope > 0) & (y_pk > y_min) & (t_foot <= t_ms) & (t_foot > t_ms - 0.3)
    good &= ~nan_mask[np.clip(i_pk, 0, n - 1)] & ~nan_mask[np.clip(i_min, 0, n - 1)]
    vals = {
        "t_foot_s": t_foot,
        "t_maxslope_s": t_ms,
        "t_peak_s": t_pk,
        "t_dia_s": t_dia,
        "y_foot": y_min,
        "y_peak": y_pk,
        "y_dia": y_d,
        "slope_max": slope,
        "width_ms": width,
    }
    return vals, good


def _foot(
    y: np.ndarray,
    win: _Windows,
    s_pre: np.ndarray,
    w_pre: int,
    t_ms: np.ndarray,
    slope: np.ndarray,
    fs_hz: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foot by intersecting tangents: ``(i_min, y_min, t_foot_s)``, the pulse minimum in the
    ``w_pre + 1`` samples from ``s_pre`` (parabolic vertex) and the tangent crossing time (s)."""
    # value at the max-slope time (linear interpolation)
    pos = t_ms * fs_hz
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, len(y) - 2)
    y_ms = y[i0] + (pos - i0) * (y[i0 + 1] - y[i0])
    # foot level: minimum of the pulse in the 300 ms before the max slope (parabolic vertex)
    j = np.argmin(win.masked(s_pre, w_pre + 1, np.inf)[0], axis=1)
    i_min = win.index(s_pre, j)
    _, y_min = _parabolic(y, i_min)  # same vertex as the minimum's parabola on -y
    with np.errstate(divide="ignore", invalid="ignore"):
        t_foot = t_ms - (y_ms - y_min) / slope
    return i_min, y_min, t_foot


def _next_upstroke_limit(cand: np.ndarray, i_ms: np.ndarray, n: int, fs_hz: float) -> np.ndarray:
    """Per pulse, the sample 50 ms before the next upstroke candidate (``n`` after the last one)."""
    nxt = np.full(len(i_ms), n)
    pos = np.searchsorted(cand, i_ms, side="right")
    has_next = pos < len(cand)
    nxt[has_next] = cand[pos[has_next]] - max(1, round(0.05 * fs_hz))
    return nxt


def _systolic_peak(
    y: np.ndarray, win: _Windows, i_ms: np.ndarray, nxt: np.ndarray, w_post: int, fs_hz: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Systolic peak: maximum in the ``w_post`` samples after the max slope, stopping before the next
    upstroke. Returns ``(i_pk, y_pk, t_pk_s, found)``."""
    vals, anyp = win.masked(i_ms, w_post, -np.inf, 0, nxt)
    jp = np.argmax(vals, axis=1)
    i_pk = win.index(i_ms, jp)
    off_pk, y_pk = _parabolic(y, i_pk)
    t_pk = (i_pk + off_pk) / fs_hz
    return i_pk, y_pk, t_pk, anyp


def _diastolic_peak(
    y: np.ndarray, win: _Windows, i_pk: np.ndarray, nxt: np.ndarray, w: _PulseWindows, fs_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Diastolic peak: first local maximum of ``y`` at least ``w.gap`` samples after the systolic peak,
    before the next upstroke. Returns ``(t_dia_s, y_dia)``, NaN where the pulse has none."""
    n = len(y)
    locmax = np.zeros(n, dtype=bool)
    locmax[1:-1] = (y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:])
    s_dia = i_pk + w.gap
    m3, _ = _Windows(locmax, win.pad).masked(s_dia, w.dia, False, 0, nxt)
    has_dia = m3.any(axis=1)
    i_dia = win.index(s_dia, np.argmax(m3, axis=1))
    off_d, y_d = _parabolic(y, i_dia)
    t_dia = np.where(has_dia, (i_dia + off_d) / fs_hz, np.nan)
    y_d = np.where(has_dia, y_d, np.nan)
    return t_dia, y_d


def _half_width_ms(
    y: np.ndarray,
    win: _Windows,
    s_pre: np.ndarray,
    i_min: np.ndarray,
    i_pk: np.ndarray,
    y_min: np.ndarray,
    y_pk: np.ndarray,
    w: _PulseWindows,
    fs_hz: float,
) -> np.ndarray:
    """Pulse width (ms) at half amplitude: first crossing of the half level on the upstroke (from the
    foot) and on the downslope (after the systolic peak); NaN when either crossing is missing."""
    half = y_min + 0.5 * (y_pk - y_min)
    above, _ = win.masked(s_pre, w.up, False, i_min, values=win.rows(s_pre, w.up) >= half[:, None])
    i_up = win.index(s_pre, np.argmax(above, axis=1))
    below, _ = win.masked(i_pk, w.down, False, values=win.rows(i_pk, w.down) < half[:, None])
    has_dn = below.any(axis=1)
    i_dn = win.index(i_pk, np.argmax(below, axis=1))
    t_up = _crossing_time(y, i_up, half, fs_hz)
    t_dn = _crossing_time(y, i_dn, half, fs_hz)
    return np.where(has_dn & above.any(axis=1), (t_dn - t_up) * 1000.0, np.nan)


def _crossing_time(y: np.ndarray, i_after: np.ndarray, level: np.ndarray, fs_hz: float) -> np.ndarray:
    """Time (s) where ``y`` crosses ``level`` between samples ``i_after-1`` and ``i_after`` (linear)."""
    i0 = np.clip(i_after - 1, 0, len(y) - 1)
    y0, y1 = y[i0], y[i_after]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(np.abs(y1 - y0) > 1e-12, (level - y0) / (y1 - y0), 0.0)
    return (i0 + np.clip(frac, 0.0, 1.0)) / fs_hz
