"""Beat-level signal processing: filters, ECG R peaks, PPG fiducials, ABP beats and beat quality.

Everything here works on plain numpy arrays (samples, NaN = invalid) and a sampling rate,
so it serves WFDB records, MIMIC records and the virtual cohort alike. All filters are
zero-phase (``scipy.signal.sosfiltfilt``) so fiducial times carry no filter lag; times are
refined on the lightly filtered signal and interpolated below one sample (parabolic fit).
The code is vectorised (numpy / scipy); Python loops run over gaps or blocks, never samples.

Fiducial definitions (all times in seconds from the start of the signal):

- **R peak**: extremum of the QRS complex in the lightly filtered ECG (45 Hz low-pass, local
  median removed), on the dominant polarity of the record, parabolically interpolated.
- **PPG max slope**: maximum of the first derivative of the 0-12 Hz low-passed PPG on the
  upstroke caused by the beat (searched 100-600 ms after the R peak), parabolic fit.
- **PPG foot**: intersecting tangents: the horizontal line through the pulse minimum that
  precedes the upstroke, crossed with the tangent at the max-slope point:
  ``t_foot = t_maxslope - (y(t_maxslope) - y_min) / slope_max``.
- **PPG systolic peak**: maximum of the pulse after the max-slope point (parabolic fit).
- **PPG diastolic peak**: first local maximum after the systolic peak (>= 80 ms later)
  and before the next foot; NaN when the pulse has none.
- **ABP beat**: upstroke = max dP/dt 30-450 ms after the R peak; DBP = minimum in the
  300 ms before the upstroke; SBP = maximum between the upstroke and the next beat's
  trough; MAP = mean pressure from this trough to the next.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage, signal

from bprl.errors import FeatureError

__all__ = [
    "abp_beats",
    "beat_sqi",
    "ecg_peaks",
    "ppg_fiducials",
    "signal_bandpass",
    "signal_fill_nan",
]

#: ABP beat reject reasons (``reject_reason`` column of :func:`abp_beats`; empty string = accepted)
ABP_REJECT_REASONS: tuple[str, ...] = (
    "nan",
    "flat",
    "saturated",
    "flush",
    "damped",
    "low_sbp",
    "low_dbp",
    "wide_pulse_pressure",
    "dbp_ge_sbp",
    "no_upstroke",
)


# --------------------------------------------------------------------------- helpers
def signal_fill_nan(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(filled, nan_mask)``: NaN samples linearly interpolated (edges held), as float64.

    An all-NaN input gives zeros. Without NaN, ``filled`` may be the input array itself (no copy).
    Only the NaN runs and their two neighbouring valid samples are interpolated (cost ~ one pass).
    """
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    if not bad.any():
        return x, bad  # no copy: callers never write into the result
    if bad.all():
        return np.zeros_like(x), bad
    out = x.copy()
    bi = np.flatnonzero(bad)
    # run bounds: first and last bad sample of each NaN run; the valid samples around them
    brk = np.flatnonzero(np.diff(bi) > 1)
    first = bi[np.concatenate([[0], brk + 1])]
    last = bi[np.concatenate([brk, [len(bi) - 1]])]
    xp = np.unique(np.concatenate([first - 1, last + 1]))
    xp = xp[(xp >= 0) & (xp < len(x))]
    out[bi] = np.interp(bi, xp, x[xp])
    return out, bad


def signal_bandpass(
    x: np.ndarray, fs_hz: float, low_hz: float | None, high_hz: float | None, order: int = 2
) -> np.ndarray:
    """Zero-phase Butterworth filter (``sosfiltfilt``): band-pass, low-pass (``low_hz=None``) or high-pass.

    NaN samples are interpolated before filtering (the caller keeps its own NaN mask).
    """
    x, _ = signal_fill_nan(x)
    nyq = fs_hz / 2.0
    if high_hz is not None and high_hz >= nyq * 0.98:
        high_hz = None
    if low_hz is None and high_hz is None:
        return x
    if low_hz is None:
        if 1 <= order <= 3 and len(x) > 3 * (2 * ((order + 1) // 2) + 1):
            # low order low-pass: transfer-function form is accurate and ~2x faster than sos
            b, a = signal.butter(order, high_hz / nyq, btype="lowpass")
            return _filtfilt_ba(b, a, x)
        sos = signal.butter(order, high_hz / nyq, btype="lowpass", output="sos")
    elif high_hz is None:
        sos = signal.butter(order, low_hz / nyq, btype="highpass", output="sos")
    else:
        sos = signal.butter(order, [low_hz / nyq, high_hz / nyq], btype="bandpass", output="sos")
    if len(x) <= 3 * (2 * len(sos) + 1):
        return x - np.mean(x) if low_hz is not None else x
    return signal.sosfiltfilt(sos, x)


def _filtfilt_ba(b: np.ndarray, a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Zero-phase ``lfilter`` forward and backward with odd extension and steady-state initial
    conditions, the padding of ``sosfiltfilt`` for the same filter (``3 * (order + 1)`` samples)."""
    pad = 3 * max(len(a), len(b))
    ext = np.concatenate([2.0 * x[0] - x[pad:0:-1], x, 2.0 * x[-1] - x[-2 : -pad - 2 : -1]])
    zi = signal.lfilter_zi(b, a)
    y, _ = signal.lfilter(b, a, ext, zi=zi * ext[0])
    y = y[::-1]
    y, _ = signal.lfilter(b, a, y, zi=zi * y[0])
    return np.ascontiguousarray(y[-pad - 1 : pad - 1 : -1])


def _nan_runs(bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index of each run of True in ``bad`` (1-D)."""
    bi = np.flatnonzero(bad)
    if len(bi) == 0:
        return bi, bi
    brk = np.flatnonzero(np.diff(bi) > 1)
    return bi[np.concatenate([[0], brk + 1])], bi[np.concatenate([brk, [len(bi) - 1]])]


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(lo[i], hi[i])`` over ``i`` (empty ranges allowed), without a loop."""
    ln = np.maximum(hi - lo, 0)
    tot = int(ln.sum())
    if tot == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(ln)
    return np.arange(tot) + np.repeat(lo - (ends - ln), ln)


def _near(mask: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """For each sample index in ``idx``: is a True sample of ``mask`` within ``k`` samples?
    (the mask dilated by ``k`` samples, read at ``idx``, without building the dilated mask.)"""
    bi = np.flatnonzero(mask)
    j = np.searchsorted(bi, idx - k, side="left")
    hit = j < len(bi)
    hit[hit] = bi[j[hit]] <= idx[hit] + k
    return hit


def _parabolic(y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-sample vertex of the parabola through ``y[idx-1], y[idx], y[idx+1]``: (offset in samples, value)."""
    idx = np.clip(idx, 1, len(y) - 2)
    a, b, c = y[idx - 1], y[idx], y[idx + 1]
    den = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / den, 0.0)
    off = np.clip(off, -0.5, 0.5)
    val = b - 0.25 * (a - c) * off
    return off, val


def _window_index(starts: np.ndarray, width: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index matrix ``starts[:, None] + arange(width)`` clipped to ``[0, n-1]`` and its in-range mask."""
    idx = starts[:, None] + np.arange(width)[None, :]
    ok = (idx >= 0) & (idx < n)
    np.maximum(idx, 0, out=idx)
    np.minimum(idx, n - 1, out=idx)
    return idx, ok


class _Windows:
    """Beat-aligned windows of one signal without index matrices.

    The signal is padded once with its edge values; the window of ``width`` samples starting
    at sample ``start`` (which may lie outside the signal) is a row of a
    ``sliding_window_view`` of the padded signal, so ``rows(starts, width)`` equals
    ``y[clip(starts[:, None] + arange(width), 0, n - 1)]`` while only the gathered values are
    materialised. ``masked(...)`` sets the samples whose absolute index lies outside
    ``[lo, hi)`` to a fill value, touching only the rows that have such samples.
    """

    def __init__(self, y: np.ndarray, pad: int) -> None:
        self.n = len(y)
        self.pad = int(pad)
        self.ypad = np.concatenate([np.repeat(y[:1], self.pad), y, np.repeat(y[-1:], self.pad)])

    def rows(self, starts: np.ndarray, width: int) -> np.ndarray:
        """Values of the windows (one row per start, a copy)."""
        view = np.lib.stride_tricks.sliding_window_view(self.ypad, width)
        s = np.clip(starts, -self.pad, self.n + self.pad - width) + self.pad
        return view[s]

    def masked(
        self, starts: np.ndarray, width: int, fill, lo=0, hi=None, values: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, has_any)``: the windows (or ``values``, written in place) with samples outside
        ``[lo, hi)`` (clipped to the signal) set to ``fill``, and whether a row has any sample inside."""
        vals = self.rows(starts, width) if values is None else values
        hi = self.n if hi is None else np.minimum(hi, self.n)
        lo_c = np.maximum(lo, 0) - starts
        hi_c = hi - starts
        part = (lo_c > 0) | (hi_c < width)
        if part.any():
            c = np.arange(width)[None, :]
            keep = (c >= lo_c[part, None]) & (c < hi_c[part, None])
            sub = vals[part]
            sub[~keep] = fill
            vals[part] = sub
        return vals, np.maximum(lo_c, 0) < np.minimum(hi_c, width)

    def index(self, starts: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Absolute sample index of column ``j`` of each window, clipped to the signal."""
        return np.clip(starts + j, 0, self.n - 1)


def _deriv(y: np.ndarray, fs_hz: float) -> np.ndarray:
    """``np.gradient(y) * fs_hz`` (central differences, one-sided at the ends) in two passes."""
    d = np.empty_like(y)
    np.subtract(y[2:], y[:-2], out=d[1:-1])
    d[1:-1] *= 0.5 * fs_hz
    d[0] = (y[1] - y[0]) * fs_hz
    d[-1] = (y[-1] - y[-2]) * fs_hz
    return d


def _ecg_energy(ecg: np.ndarray, fs_hz: float) -> np.ndarray:
    """QRS energy: centred boxcar band-pass (20 ms minus 100 ms moving average, about 5-25 Hz,
    zero-phase), derivative squared, 100 ms centred moving average.

    The derivative (``np.gradient``) of a centred moving mean of width ``w`` is a difference of
    two sums of adjacent sample pairs divided by ``2 w``, so the band-passed derivative comes
    straight from one pair-sum array of the edge-padded ECG (no moving-average pass).
    """
    x = np.asarray(ecg, dtype=np.float64)
    n = len(x)
    w1, w2 = max(1, round(0.02 * fs_hz)), max(3, round(0.10 * fs_hz))
    pad = max(w1, w2) + 2
    xe = np.concatenate([np.full(pad, x[0]), x, np.full(pad, x[-1])])
    p = xe[:-1] + xe[1:]  # p[j] = xe[j] + xe[j + 1]
    d = np.empty(n)
    tmp = np.empty(n)
    for k, w in enumerate((w1, w2)):
        lo, hi = w // 2, w - 1 - w // 2  # uniform_filter1d window: [i - lo, i + hi]
        np.subtract(p[pad + hi : pad + hi + n], p[pad - lo - 1 : pad - lo - 1 + n], out=tmp)
        tmp *= 0.5 * fs_hz / w
        if k == 0:
            d, tmp = tmp, d
        else:
            d -= tmp
    if n > 1:  # np.gradient's one-sided differences at the two ends

        def bp(i: int) -> float:
            return sum(
                s * np.sum(xe[pad + i - w // 2 : pad + i + w - w // 2]) / w for w, s in ((w1, 1), (w2, -1))
            )

        d[0] = (bp(1) - bp(0)) * fs_hz
        d[-1] = (bp(n - 1) - bp(n - 2)) * fs_hz
    d *= d
    return ndimage.uniform_filter1d(d, max(1, round(0.10 * fs_hz)), mode="nearest")


def _rolling_quantile_of_points(t: np.ndarray, v: np.ndarray, half_window_s: float, q: float) -> np.ndarray:
    """For each point ``t[i]``, about the ``q`` quantile of ``v`` over the points within ``+-half_window_s``.

    Computed with a running percentile filter over the point sequence whose length is the
    number of points expected in the window at the mean point rate (linear cost, C speed).
    """
    if len(t) == 0:
        return np.zeros(0)
    span = max(float(t[-1] - t[0]), 1e-9)
    rate = len(t) / span
    size = max(3, 2 * round(half_window_s * rate) + 1)
    size = min(size, 2 * (len(t) // 2) + 1 if len(t) > 2 else 1)
    return ndimage.percentile_filter(np.asarray(v, dtype=np.float64), 100.0 * q, size=size, mode="nearest")


def ecg_peaks(ecg: np.ndarray, fs_hz: float, return_times: bool = True) -> np.ndarray:
    """Detect ECG R peaks.

    Steps: NaN gaps interpolated and masked; QRS energy (5-25 Hz zero-phase band-pass,
    squared derivative, 100 ms moving average); candidate energy peaks at least 200 ms apart;
    adaptive threshold = 0.12 x the local (+-8 s) 90th percentile of candidate heights;
    T-wave rejection (a candidate < 360 ms after a beat with < 40 % of its energy); noise
    pruning (a detection that splits a normal RR interval into two short ones and is weaker
    than its neighbours; a premature ectopic beat is kept because a long pause follows it);
    search-back with half the threshold in RR gaps > 1.6 x the local median RR; refinement to
    the R extremum (+-60 ms) of the 45 Hz low-passed ECG minus its local median, on the
    record's dominant QRS polarity, and parabolic sub-sample interpolation.

    Args:
        ecg: ECG samples (any units); NaN marks invalid samples.
        fs_hz: sampling rate (tested 125-500 Hz).
        return_times: return float R-peak times in seconds (sub-sample); else integer sample indices.

    Returns:
        Sorted R-peak times in s (float64) or sample indices (int64). Peaks in NaN gaps are dropped.
    """
    x = np.asarray(ecg, dtype=np.float64)
    if x.ndim != 1:
        raise FeatureError(f"ecg_peaks: expected a 1-D signal, got shape {x.shape}")
    if fs_hz <= 0:
        raise FeatureError(f"ecg_peaks: sampling rate must be positive, got {fs_hz}")
    if len(x) < int(2 * fs_hz):
        return np.zeros(0, dtype=np.float64 if return_times else np.int64)
    filled, nan_mask = signal_fill_nan(x)
    return _ecg_peaks_filled(filled, nan_mask, fs_hz, return_times)


def _ecg_peaks_filled(
    filled: np.ndarray, nan_mask: np.ndarray, fs_hz: float, return_times: bool
) -> np.ndarray:
    """:func:`ecg_peaks` on an already NaN-filled ECG (``signal_fill_nan`` output)."""
    empty = np.zeros(0, dtype=np.float64 if return_times else np.int64)
    if len(filled) < int(2 * fs_hz) or nan_mask.all():
        return empty
    energy = _ecg_energy(filled, fs_hz)
    if nan_mask.any():  # no beats from interpolated stretches (dilate the gap by 100 ms)
        first, last = _nan_runs(nan_mask)
        k = max(1, round(0.1 * fs_hz))
        energy[_ranges(np.maximum(first - k, 0), np.minimum(last + k + 1, len(energy)))] = 0.0
    dist = max(1, round(0.2 * fs_hz))
    cand, props = signal.find_peaks(energy, distance=dist, height=0.0)
    if len(cand) == 0:
        return empty
    h = props["peak_heights"]
    t = cand / fs_hz
    level = _rolling_quantile_of_points(t, h, 8.0, 0.9)
    glob = np.quantile(h, 0.9)
    level = np.maximum(level, 0.02 * glob)  # flat stretches: do not accept noise as beats
    thr = 0.12 * level
    beats = cand[h >= thr]
    hb = h[h >= thr]
    # T-wave rejection: a candidate soon after a larger beat with much less energy
    if len(beats) > 2:
        keep = np.ones(len(beats), dtype=bool)
        close = np.diff(beats) < 0.36 * fs_hz
        weak = hb[1:] < 0.4 * hb[:-1]
        drop = np.flatnonzero(close & weak) + 1
        keep[drop] = False
        beats = beats[keep]
        hb = hb[keep]
    # noise pruning: a detection that splits a normal RR interval into two short ones and is
    # weaker than a neighbour is noise (premature ectopic beats are followed by a long pause)
    for _ in range(2):
        if len(beats) < 5:
            break
        rr = np.diff(beats).astype(np.float64)
        med = ndimage.percentile_filter(rr, 60, size=15, mode="nearest")
        d_prev, d_next = rr[:-1], rr[1:]
        m_i = med[1:]
        hmin = np.minimum(hb[:-2], hb[2:])
        short = (d_prev < 0.7 * m_i) & (d_next < 0.7 * m_i)
        split = d_prev + d_next < 1.1 * m_i
        bad = short & (
            (split & (hb[1:-1] < hmin)) | ((d_prev + d_next < 1.3 * m_i) & (hb[1:-1] < 0.5 * hmin))
        )
        if not bad.any():
            break
        keep = np.ones(len(beats), dtype=bool)
        keep[np.flatnonzero(bad) + 1] = False
        beats, hb = beats[keep], hb[keep]
    # search-back over long RR gaps with half the threshold
    if len(beats) > 3:
        rr = np.diff(beats)
        med = ndimage.median_filter(rr.astype(np.float64), size=9, mode="nearest")
        gaps = np.flatnonzero(rr > 1.6 * med)
        extra = []
        for g in gaps:
            lo, hi = beats[g] + round(0.25 * fs_hz), beats[g + 1] - round(0.25 * fs_hz)
            sel = (cand > lo) & (cand < hi) & (h >= 0.5 * thr)
            if sel.any():
                c = cand[sel]
                extra.append(c[np.argmax(h[sel])])
        if extra:
            beats = np.unique(np.concatenate([beats, np.asarray(extra)]))
    return _ecg_refine(filled, fs_hz, beats, nan_mask, return_times)


def _light_at(x: np.ndarray, idx: np.ndarray, m: int) -> np.ndarray:
    """``ndimage.uniform_filter1d(x, 2 * m + 1, mode="nearest")[idx]`` for indices in ``[0, n-1]``,
    summing only the ``2 * m + 1`` samples around each requested index."""
    n = len(x)
    acc = x[idx].copy()
    for k in range(1, m + 1):
        acc += x[np.minimum(idx + k, n - 1)]
        acc += x[np.maximum(idx - k, 0)]
    if m:
        acc *= 1.0 / (2 * m + 1)
    return acc


def _ecg_refine(
    x: np.ndarray, fs_hz: float, beats: np.ndarray, nan_mask: np.ndarray, return_times: bool
) -> np.ndarray:
    """Move each detection to the R extremum of the lightly filtered ECG (dominant polarity), sub-sample."""
    # light smoothing: centred (zero-phase) 3-sample boxcar at 250 Hz (~10 ms, odd length), evaluated
    # only on the beat windows; baseline removed per window below
    m = round(0.004 * fs_hz)
    hw = max(2, round(0.06 * fs_hz))
    n = len(x)
    idx, ok = _window_index(beats - hw, 2 * hw + 1, n)
    seg = _light_at(x, idx, m)  # out-of-range samples repeat the edge value (idx is clipped)
    dev = seg - np.median(seg, axis=1, keepdims=True)
    pos = dev.max(axis=1)
    neg = -dev.min(axis=1)
    # polarity of the record = sign of the larger median excursion; a beat whose opposite excursion
    # is more than twice as large (e.g. a PVC of opposite polarity) keeps its own polarity
    sign_rec = 1.0 if np.median(pos) >= np.median(neg) else -1.0
    own = np.where(pos >= neg, 1.0, -1.0)
    dom = np.where(sign_rec > 0, pos, neg)
    other = np.where(sign_rec > 0, neg, pos)
    sign = np.where(other > 2.0 * dom, own, sign_rec)
    j = np.argmax(np.where(ok, dev * sign[:, None], -np.inf), axis=1)
    peak = idx[np.arange(len(beats)), j]
    peak = np.unique(peak)
    # drop duplicates closer than 200 ms (keep the first) and peaks inside NaN gaps
    if len(peak) > 1:
        keep = np.concatenate([[True], np.diff(peak) >= 0.2 * fs_hz])
        peak = peak[keep]
    peak = peak[~nan_mask[peak]]
    if not return_times:
        return peak.astype(np.int64)
    # sub-sample: vertex of the parabola through the three samples around each peak
    if len(peak) == 0:
        return np.zeros(0)
    pc = np.clip(peak, 1, n - 2)
    light3 = _light_at(x, np.stack([pc - 1, pc, pc + 1], axis=1), m)
    off = _parabolic(light3.ravel(), np.arange(len(peak)) * 3 + 1)[0]
    return (peak + off) / fs_hz


# --------------------------------------------------------------------------- PPG
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
    n = len(y)
    # upstroke candidates: local maxima of d1 above 30 % of the local (+-5 s) 95th percentile of d1
    cand, _ = signal.find_peaks(d1, distance=max(1, round(0.25 * fs_hz)))
    if nan_mask.any():
        cand = cand[~_near(nan_mask, cand, max(1, round(0.3 * fs_hz)))]
    if len(cand) == 0:
        return out
    scale = _rolling_quantile_of_points(cand / fs_hz, d1[cand], 5.0, 0.9)
    cand = cand[d1[cand] >= 0.3 * scale]
    if len(cand) == 0:
        return out
    off, dmax = _parabolic(d1, cand)
    tc = (cand + off) / fs_hz
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
    ok = choice >= 0
    ci = choice[ok]
    t_ms = tc[ci]
    slope = dmax[ci]
    i_ms = cand[ci]
    # value at the max-slope time (linear interpolation)
    pos = t_ms * fs_hz
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, n - 2)
    y_ms = y[i0] + (pos - i0) * (y[i0 + 1] - y[i0])
    # foot level: minimum of the pulse in the 300 ms before the max slope (parabolic vertex)
    w_pre = max(3, round(0.3 * fs_hz))
    w_post = max(3, round(0.4 * fs_hz))
    w_dia = max(3, round(0.5 * fs_hz))
    w_dn = max(3, round(1.0 * fs_hz))
    w_up = w_pre + 1 + round(0.4 * fs_hz)
    g = max(1, round(0.08 * fs_hz))
    win = _Windows(y, max(w_pre, w_post, w_dia + g, w_dn, w_up) + 1)
    s_pre = i_ms - w_pre
    j = np.argmin(win.masked(s_pre, w_pre + 1, np.inf)[0], axis=1)
    i_min = win.index(s_pre, j)
    _, y_min = _parabolic(y, i_min)  # same vertex as the minimum's parabola on -y
    with np.errstate(divide="ignore", invalid="ignore"):
        t_foot = t_ms - (y_ms - y_min) / slope
    # systolic peak: maximum in the 400 ms after the max slope, stopping before the next upstroke
    nxt = np.full(len(i_ms), n)
    pos = np.searchsorted(cand, i_ms, side="right")
    has_next = pos < len(cand)
    nxt[has_next] = cand[pos[has_next]] - max(1, round(0.05 * fs_hz))
    vals, anyp = win.masked(i_ms, w_post, -np.inf, 0, nxt)
    jp = np.argmax(vals, axis=1)
    i_pk = win.index(i_ms, jp)
    off_pk, y_pk = _parabolic(y, i_pk)
    t_pk = (i_pk + off_pk) / fs_hz
    # diastolic peak: first local maximum of y at least 80 ms after the systolic peak, before the next upstroke
    locmax = np.zeros(n, dtype=bool)
    locmax[1:-1] = (y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:])
    s_dia = i_pk + g
    m3, _ = _Windows(locmax, win.pad).masked(s_dia, w_dia, False, 0, nxt)
    has_dia = m3.any(axis=1)
    i_dia = win.index(s_dia, np.argmax(m3, axis=1))
    off_d, y_d = _parabolic(y, i_dia)
    t_dia = np.where(has_dia, (i_dia + off_d) / fs_hz, np.nan)
    y_d = np.where(has_dia, y_d, np.nan)
    # width at half amplitude: first crossing of the half level on the upstroke and on the downslope
    half = y_min + 0.5 * (y_pk - y_min)
    above, _ = win.masked(s_pre, w_up, False, i_min, values=win.rows(s_pre, w_up) >= half[:, None])
    i_up = win.index(s_pre, np.argmax(above, axis=1))
    below, _ = win.masked(i_pk, w_dn, False, values=win.rows(i_pk, w_dn) < half[:, None])
    has_dn = below.any(axis=1)
    i_dn = win.index(i_pk, np.argmax(below, axis=1))
    t_up = _crossing_time(y, i_up, half, fs_hz)
    t_dn = _crossing_time(y, i_dn, half, fs_hz)
    width = np.where(has_dn & above.any(axis=1), (t_dn - t_up) * 1000.0, np.nan)
    # sanity: a pulse must rise, have a foot before its max slope and lie outside NaN stretches
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
    for c, v in vals.items():
        col = out[c]
        col[np.flatnonzero(ok)] = np.where(good, v, np.nan)
    return out


def _crossing_time(y: np.ndarray, i_after: np.ndarray, level: np.ndarray, fs_hz: float) -> np.ndarray:
    """Time (s) where ``y`` crosses ``level`` between samples ``i_after-1`` and ``i_after`` (linear)."""
    i0 = np.clip(i_after - 1, 0, len(y) - 1)
    y0, y1 = y[i0], y[i_after]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(np.abs(y1 - y0) > 1e-12, (level - y0) / (y1 - y0), 0.0)
    return (i0 + np.clip(frac, 0.0, 1.0)) / fs_hz


# --------------------------------------------------------------------------- ABP
def abp_beats(
    abp: np.ndarray,
    fs_hz: float,
    r_times_s: np.ndarray,
    sbp_max_mmhg: float = 250.0,
    sbp_min_mmhg: float = 50.0,
    dbp_min_mmhg: float = 20.0,
    pp_min_mmhg: float = 10.0,
    pp_max_mmhg: float = 150.0,
) -> pd.DataFrame:
    """Arterial-pressure beats (SBP, DBP, MAP) for each R peak, with a validity flag.

    Per R peak: upstroke = maximum of dP/dt (0-15 Hz low-passed ABP) 30-450 ms after the R peak;
    DBP = minimum (the pre-upstroke trough) in the 300 ms before the upstroke; SBP = maximum from
    the upstroke to the next beat's trough (at most 600 ms); MAP = mean pressure from this trough
    to the next. Values are read on the unfiltered pressure (parabolic vertex for SBP and DBP).

    A beat is rejected (``valid`` False, ``reject_reason`` set) when it is not trustworthy
    arterial pressure: NaN samples (``nan``), no pulse (``flat``: pressure range < 2 mmHg),
    values stuck at the record's extreme for >= 3 samples (``saturated``), SBP > ``sbp_max_mmhg``
    (``flush``), pulse pressure < ``pp_min_mmhg`` (``damped``), SBP < ``sbp_min_mmhg``
    (``low_sbp``), DBP < ``dbp_min_mmhg`` (``low_dbp``), pulse pressure > ``pp_max_mmhg``
    (``wide_pulse_pressure``), DBP >= SBP (``dbp_ge_sbp``) or no upstroke found (``no_upstroke``).
    A rejected beat keeps its measured values but must never be used as a reference.

    Returns:
        DataFrame, one row per R peak: ``t_upstroke_s``, ``sbp_mmhg``, ``dbp_mmhg``, ``map_mmhg``,
        ``valid`` (bool), ``reject_reason`` (str, empty when valid).
    """
    r = np.asarray(r_times_s, dtype=np.float64)
    nr = len(r)
    x = np.asarray(abp, dtype=np.float64)
    n = len(x)
    res = pd.DataFrame(
        {
            "t_upstroke_s": np.full(nr, np.nan),
            "sbp_mmhg": np.full(nr, np.nan),
            "dbp_mmhg": np.full(nr, np.nan),
            "map_mmhg": np.full(nr, np.nan),
            "valid": np.zeros(nr, dtype=bool),
            "reject_reason": np.full(nr, "nan", dtype=object),
        }
    )
    if nr == 0 or n < int(fs_hz):
        return res
    filled, nan_mask = signal_fill_nan(x)
    if nan_mask.all():
        return res
    lp = signal_bandpass(filled, fs_hz, None, 15.0, order=2)
    d1 = _deriv(lp, fs_hz)
    r_idx = np.round(r * fs_hz).astype(np.int64)
    a0, w = round(0.03 * fs_hz), max(3, round(0.42 * fs_hz))
    wb = max(3, round(0.3 * fs_hz))
    ws = max(3, round(0.6 * fs_hz))
    pad = max(w, wb + 1, ws) + 1
    win_d1, win_x = _Windows(d1, pad), _Windows(filled, pad)
    s_up = r_idx + a0
    vals, anyu = win_d1.masked(s_up, w, -np.inf, 0, np.where((s_up >= 0) & (s_up < n), n, -1))
    ju = np.argmax(vals, axis=1)
    i_up = win_d1.index(s_up, ju)
    # trough before the upstroke
    s_b = i_up - wb
    jb = np.argmin(win_x.masked(s_b, wb + 1, np.inf)[0], axis=1)
    i_tr = win_x.index(s_b, jb)
    _, dbp = _parabolic(filled, i_tr)
    # next trough: the trough of the next beat when valid, else upstroke + 600 ms
    i_end = np.minimum(i_up + round(0.6 * fs_hz), n - 1)
    nxt_tr = np.concatenate([i_tr[1:], [n - 1]])
    use_next = (nxt_tr > i_up) & (nxt_tr - i_tr < round(2.0 * fs_hz))
    i_end = np.where(use_next, np.minimum(nxt_tr, i_end + round(1.0 * fs_hz)), i_end)
    js = np.argmax(win_x.masked(i_up, ws, -np.inf, 0, np.maximum(i_end, i_up + 2))[0], axis=1)
    i_sp = win_x.index(i_up, js)
    _, sbp = _parabolic(filled, i_sp)
    # MAP: mean over trough -> next trough; NaN and stuck samples counted per beat (reduceat, no loop)
    seg_end = np.where(use_next, nxt_tr, i_end)
    seg_len = np.maximum(seg_end - i_tr, 1)
    mapv = _segment_reduce(np.add, filled, i_tr, i_tr + seg_len) / seg_len
    nan_in = _segment_count(nan_mask, i_tr, seg_end + 1) > 0 if nan_mask.any() else np.zeros(nr, dtype=bool)
    rng = _segment_reduce(np.maximum, filled, i_tr, seg_end + 1) - _segment_reduce(
        np.minimum, filled, i_tr, seg_end + 1
    )
    hi_val = np.nanmax(x)
    lo_val = np.nanmin(x)
    at_ext = ((filled == hi_val) | (filled == lo_val)) & ~nan_mask
    stuck = _segment_count(at_ext, i_tr, seg_end + 1) >= 3
    stuck &= (hi_val - lo_val) > 0
    pp = sbp - dbp
    reasons = [
        ("no_upstroke", ~anyu),
        ("nan", nan_in),
        ("flat", rng < 2.0),
        ("saturated", stuck & (rng >= 2.0)),
        ("flush", sbp > sbp_max_mmhg),
        ("dbp_ge_sbp", dbp >= sbp),
        ("damped", pp < pp_min_mmhg),
        ("low_sbp", sbp < sbp_min_mmhg),
        ("low_dbp", dbp < dbp_min_mmhg),
        ("wide_pulse_pressure", pp > pp_max_mmhg),
    ]
    reason = np.full(nr, "", dtype=object)
    for name, mask in reversed(reasons):  # the first matching reason wins
        reason[mask] = name
    res["t_upstroke_s"] = np.where(anyu, (i_up + _parabolic(d1, i_up)[0]) / fs_hz, np.nan)
    res["sbp_mmhg"] = np.where(anyu, sbp, np.nan)  # beats without an upstroke have no values
    res["dbp_mmhg"] = np.where(anyu, dbp, np.nan)
    res["map_mmhg"] = np.where(anyu, mapv, np.nan)
    res["valid"] = reason == ""
    res["reject_reason"] = reason.astype(str)
    return res


def _segment_reduce(ufunc: np.ufunc, x: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """``ufunc.reduce(x[start:stop])`` per segment via ``ufunc.reduceat`` on interleaved bounds.

    Bounds are clipped to the array; an empty segment reduces over its first sample.
    """
    n = len(x)
    if len(start) == 0:
        return np.zeros(0, dtype=x.dtype)
    s0 = np.clip(start, 0, n - 1)
    s1 = np.clip(np.maximum(stop, s0 + 1), 1, n)
    # reduceat needs indices < n: a segment reaching the end stops one short and takes x[-1] after
    at_end = (s1 == n) & (s0 < n - 1)
    bounds = np.empty(2 * len(s0), dtype=np.int64)
    bounds[0::2], bounds[1::2] = s0, np.minimum(s1, n - 1)
    out = ufunc.reduceat(x, bounds)[0::2]
    if at_end.any():
        out[at_end] = ufunc(out[at_end], x[-1])
    return out


def _segment_count(mask: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Number of True samples of ``mask`` in ``[start, stop)`` per segment, bounds clipped as in
    :func:`_segment_reduce` (counted from the positions of the True samples, no pass per segment)."""
    n = len(mask)
    if len(start) == 0:
        return np.zeros(0, dtype=np.int64)
    s0 = np.clip(start, 0, n - 1)
    s1 = np.clip(np.maximum(stop, s0 + 1), 1, n)
    pos = np.flatnonzero(mask)
    return np.searchsorted(pos, s1, side="left") - np.searchsorted(pos, s0, side="left")


# --------------------------------------------------------------------------- quality
def _block_median(b: np.ndarray) -> np.ndarray:
    """``np.median(b, axis=1)`` of a (blocks, beats, samples) array, partitioning contiguous rows
    (the beats axis moved last) instead of strided columns."""
    t = np.ascontiguousarray(np.swapaxes(b, 1, 2))
    k = t.shape[-1]
    if k % 2:
        return np.partition(t, k // 2, axis=-1)[..., k // 2]
    p = np.partition(t, [k // 2 - 1, k // 2], axis=-1)
    return 0.5 * (p[..., k // 2 - 1] + p[..., k // 2])


def beat_sqi(
    x: np.ndarray, fs_hz: float, times_s: np.ndarray, before_s: float, after_s: float, n_template: int = 31
) -> np.ndarray:
    """Per-beat signal quality: Pearson correlation of each beat with a running median template.

    Beats are cut ``before_s..after_s`` around ``times_s`` from the signal (NaN interpolated;
    beats touching NaN score 0); the template of a beat is the sample-wise median of its block
    of ``n_template`` consecutive beats (a running template that follows slow morphology
    change); beats are sampled at ``fs_hz // 100``-sample steps. Returns values clipped to
    0..1 (NaN for NaN times).
    """
    t = np.asarray(times_s, dtype=np.float64)
    if np.isfinite(t).sum() < 3:
        return np.full(len(t), np.nan)
    filled, nan_mask = signal_fill_nan(x)
    return _beat_sqi_filled(filled, nan_mask, fs_hz, t, before_s, after_s, n_template)


def _beat_sqi_filled(
    filled: np.ndarray,
    nan_mask: np.ndarray,
    fs_hz: float,
    t: np.ndarray,
    before_s: float,
    after_s: float,
    n_template: int = 31,
) -> np.ndarray:
    """:func:`beat_sqi` on an already NaN-filled signal."""
    t = np.asarray(t, dtype=np.float64)
    q = np.full(len(t), np.nan)
    fin = np.isfinite(t)
    if fin.sum() < 3:
        return q
    b, a = round(before_s * fs_hz), max(2, round(after_s * fs_hz))
    centre = np.round(t[fin] * fs_hz).astype(np.int64)
    step = max(1, int(fs_hz // 100))  # beats compared at ~100-200 Hz: enough for a correlation
    n = len(filled)
    cols = np.arange(0, a + b, step)
    start = centre - b
    ok = (start >= 0) & (start + cols[-1] < n)
    # beat segments: rows of a strided window view of the edge-padded signal (no index matrix)
    pad = a + b + 1
    xp = np.concatenate([np.repeat(filled[:1], pad), filled, np.repeat(filled[-1:], pad)])
    view = np.lib.stride_tricks.sliding_window_view(xp, a + b)[:, ::step]
    seg = view[np.clip(start, -pad, n) + pad].astype(np.float32)
    seg -= seg.mean(axis=1, keepdims=True)
    # template: sample-wise median of consecutive blocks of n_template beats (one median pass)
    nb = len(seg)
    blk = max(1, min(n_template, nb))
    n_full = nb // blk
    parts = []
    if n_full:
        full = _block_median(seg[: n_full * blk].reshape(n_full, blk, seg.shape[1]))
        parts.append(np.repeat(full, blk, axis=0))
    rest = nb - n_full * blk
    if rest:  # the last, partial block borrows the preceding beats to reach n_template
        parts.append(np.repeat(_block_median(seg[None, nb - blk :]), rest, axis=0))
    tmpl = np.concatenate(parts)
    num = (seg * tmpl).sum(axis=1)
    den = np.sqrt((seg * seg).sum(axis=1) * (tmpl * tmpl).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(den > 0, num / den, 0.0)
    c = np.clip(c, 0.0, 1.0)
    if nan_mask.any():
        ok &= _segment_count(nan_mask, centre - b, centre + a) == 0
    c[~ok] = 0.0
    q[fin] = c
    return q
