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
    """
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    if not bad.any():
        return x, bad  # no copy: callers never write into the result
    if bad.all():
        return np.zeros_like(x), bad
    idx = np.arange(len(x))
    out = x.copy()
    out[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
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
        sos = signal.butter(order, high_hz / nyq, btype="lowpass", output="sos")
    elif high_hz is None:
        sos = signal.butter(order, low_hz / nyq, btype="highpass", output="sos")
    else:
        sos = signal.butter(order, [low_hz / nyq, high_hz / nyq], btype="bandpass", output="sos")
    if len(x) <= 3 * (2 * len(sos) + 1):
        return x - np.mean(x) if low_hz is not None else x
    return signal.sosfiltfilt(sos, x)


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


def _masked_argmax(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise argmax of ``values`` where ``mask``; second output says whether a row had any allowed entry."""
    v = np.where(mask, values, -np.inf)
    j = np.argmax(v, axis=1)
    return j, mask.any(axis=1)


# --------------------------------------------------------------------------- ECG
def _ecg_energy(ecg: np.ndarray, fs_hz: float) -> np.ndarray:
    """QRS energy: centred boxcar band-pass (20 ms minus 100 ms moving average, about 5-25 Hz,
    zero-phase), derivative squared, 100 ms centred moving average."""
    x = np.asarray(ecg, dtype=np.float64)
    bp = ndimage.uniform_filter1d(x, max(1, round(0.02 * fs_hz)), mode="nearest")
    bp -= ndimage.uniform_filter1d(x, max(3, round(0.10 * fs_hz)), mode="nearest")
    d = np.gradient(bp) * fs_hz
    e = d * d
    return ndimage.uniform_filter1d(e, max(1, round(0.10 * fs_hz)), mode="nearest")


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
    n = len(x)
    empty = np.zeros(0, dtype=np.float64 if return_times else np.int64)
    if n < int(2 * fs_hz):
        return empty
    filled, nan_mask = signal_fill_nan(x)
    if nan_mask.all():
        return empty
    energy = _ecg_energy(filled, fs_hz)
    if nan_mask.any():  # no beats from interpolated stretches (dilate the gap by 100 ms)
        gap = ndimage.binary_dilation(nan_mask, iterations=max(1, round(0.1 * fs_hz)))
        energy[gap] = 0.0
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


def _ecg_refine(
    x: np.ndarray, fs_hz: float, beats: np.ndarray, nan_mask: np.ndarray, return_times: bool
) -> np.ndarray:
    """Move each detection to the R extremum of the lightly filtered ECG (dominant polarity), sub-sample."""
    # light smoothing: centred (zero-phase) boxcar of ~10 ms, odd length; baseline removed per window below
    light = ndimage.uniform_filter1d(x, 2 * round(0.004 * fs_hz) + 1, mode="nearest")
    hw = max(2, round(0.06 * fs_hz))
    idx, ok = _window_index(beats - hw, 2 * hw + 1, len(light))
    seg = light[idx]  # out-of-range samples repeat the edge value (idx is clipped)
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
    off = _parabolic(light, peak)[0] if len(peak) else np.zeros(0)
    return (peak + off) / fs_hz


# --------------------------------------------------------------------------- PPG
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
    cols = [
        "t_foot_s",
        "t_maxslope_s",
        "t_peak_s",
        "t_dia_s",
        "y_foot",
        "y_peak",
        "y_dia",
        "slope_max",
        "width_ms",
    ]
    out = {c: np.full(len(r), np.nan) for c in cols}
    x = np.asarray(ppg, dtype=np.float64)
    if len(r) == 0 or len(x) < int(fs_hz) or np.isfinite(x).sum() < int(fs_hz):
        return pd.DataFrame(out)
    filled, nan_mask = signal_fill_nan(x)
    y = signal_bandpass(filled, fs_hz, None, 12.0, order=3)
    d1 = np.gradient(y) * fs_hz
    n = len(y)
    # upstroke candidates: local maxima of d1 above 30 % of the local (+-5 s) 95th percentile of d1
    cand, _ = signal.find_peaks(d1, distance=max(1, round(0.25 * fs_hz)))
    if nan_mask.any():
        cand = cand[~ndimage.binary_dilation(nan_mask, iterations=max(1, round(0.3 * fs_hz)))[cand]]
    if len(cand) == 0:
        return pd.DataFrame(out)
    scale = _rolling_quantile_of_points(cand / fs_hz, d1[cand], 5.0, 0.9)
    cand = cand[d1[cand] >= 0.3 * scale]
    if len(cand) == 0:
        return pd.DataFrame(out)
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
    idx, inr = _window_index(i_ms - w_pre, w_pre + 1, n)
    j = np.argmin(np.where(inr, y[idx], np.inf), axis=1)
    i_min = idx[np.arange(len(i_ms)), j]
    _, y_min = _parabolic(-y, i_min)
    y_min = -y_min
    with np.errstate(divide="ignore", invalid="ignore"):
        t_foot = t_ms - (y_ms - y_min) / slope
    # systolic peak: maximum in the 400 ms after the max slope, stopping before the next upstroke
    w_post = max(3, round(0.4 * fs_hz))
    idx2, inr2 = _window_index(i_ms, w_post, n)
    nxt = np.full(len(i_ms), n)
    pos = np.searchsorted(cand, i_ms, side="right")
    has_next = pos < len(cand)
    nxt[has_next] = cand[pos[has_next]] - max(1, round(0.05 * fs_hz))
    inr2 &= idx2 < nxt[:, None]
    jp, anyp = _masked_argmax(y[idx2], inr2)
    i_pk = idx2[np.arange(len(i_ms)), jp]
    off_pk, y_pk = _parabolic(y, i_pk)
    t_pk = (i_pk + off_pk) / fs_hz
    # diastolic peak: first local maximum of y at least 80 ms after the systolic peak, before the next upstroke
    locmax = np.zeros(n, dtype=bool)
    locmax[1:-1] = (y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:])
    g = max(1, round(0.08 * fs_hz))
    w_dia = max(3, round(0.5 * fs_hz))
    idx3, inr3 = _window_index(i_pk + g, w_dia, n)
    inr3 &= idx3 < nxt[:, None]
    m3 = locmax[idx3] & inr3
    has_dia = m3.any(axis=1)
    jd = np.argmax(m3, axis=1)
    i_dia = idx3[np.arange(len(i_ms)), jd]
    off_d, y_d = _parabolic(y, i_dia)
    t_dia = np.where(has_dia, (i_dia + off_d) / fs_hz, np.nan)
    y_d = np.where(has_dia, y_d, np.nan)
    # width at half amplitude: first crossing of the half level on the upstroke and on the downslope
    half = y_min + 0.5 * (y_pk - y_min)
    up_idx, up_ok = _window_index(i_ms - w_pre, w_pre + 1 + round(0.4 * fs_hz), n)
    above = (y[up_idx] >= half[:, None]) & up_ok & (up_idx >= i_min[:, None])
    k_up = np.argmax(above, axis=1)
    i_up = up_idx[np.arange(len(i_ms)), k_up]
    w_dn = max(3, round(1.0 * fs_hz))
    dn_idx, dn_ok = _window_index(i_pk, w_dn, n)
    below = (y[dn_idx] < half[:, None]) & dn_ok
    has_dn = below.any(axis=1)
    k_dn = np.argmax(below, axis=1)
    i_dn = dn_idx[np.arange(len(i_ms)), k_dn]
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
    return pd.DataFrame(out)


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
    d1 = np.gradient(lp) * fs_hz
    r_idx = np.round(r * fs_hz).astype(np.int64)
    a0, w = round(0.03 * fs_hz), max(3, round(0.42 * fs_hz))
    idx, inr = _window_index(r_idx + a0, w, n)
    inr &= (r_idx[:, None] + a0 >= 0) & (r_idx[:, None] + a0 < n)
    ju, anyu = _masked_argmax(d1[idx], inr)
    i_up = idx[np.arange(nr), ju]
    # trough before the upstroke
    wb = max(3, round(0.3 * fs_hz))
    idx_b, inr_b = _window_index(i_up - wb, wb + 1, n)
    jb = np.argmin(np.where(inr_b, filled[idx_b], np.inf), axis=1)
    i_tr = idx_b[np.arange(nr), jb]
    _, dbp = _parabolic(-filled, i_tr)
    dbp = -dbp
    # next trough: the trough of the next beat when valid, else upstroke + 600 ms
    i_end = np.minimum(i_up + round(0.6 * fs_hz), n - 1)
    nxt_tr = np.concatenate([i_tr[1:], [n - 1]])
    use_next = (nxt_tr > i_up) & (nxt_tr - i_tr < round(2.0 * fs_hz))
    i_end = np.where(use_next, np.minimum(nxt_tr, i_end + round(1.0 * fs_hz)), i_end)
    ws = max(3, round(0.6 * fs_hz))
    idx_s, inr_s = _window_index(i_up, ws, n)
    inr_s &= idx_s < np.maximum(i_end, i_up + 2)[:, None]
    js, _ = _masked_argmax(filled[idx_s], inr_s)
    i_sp = idx_s[np.arange(nr), js]
    _, sbp = _parabolic(filled, i_sp)
    # MAP: mean over trough -> next trough; NaN and stuck samples counted per beat (reduceat, no loop)
    seg_end = np.where(use_next, nxt_tr, i_end)
    seg_len = np.maximum(seg_end - i_tr, 1)
    mapv = _segment_reduce(np.add, filled, i_tr, i_tr + seg_len) / seg_len
    nan_in = (
        _segment_reduce(np.add, nan_mask.astype(np.int32), i_tr, seg_end + 1) > 0
        if nan_mask.any()
        else np.zeros(nr, dtype=bool)
    )
    rng = _segment_reduce(np.maximum, filled, i_tr, seg_end + 1) - _segment_reduce(
        np.minimum, filled, i_tr, seg_end + 1
    )
    hi_val = np.nanmax(x)
    lo_val = np.nanmin(x)
    at_ext = (((filled == hi_val) | (filled == lo_val)) & ~nan_mask).astype(np.int32)
    stuck = _segment_reduce(np.add, at_ext, i_tr, seg_end + 1) >= 3
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
    if len(start) == 0:
        return np.zeros(0, dtype=x.dtype)
    s0 = np.clip(start, 0, len(x) - 1)
    s1 = np.clip(np.maximum(stop, s0 + 1), 1, len(x))
    xe = np.append(x, x[-1:])  # reduceat needs a valid index at len(x)
    bounds = np.empty(2 * len(s0), dtype=np.int64)
    bounds[0::2], bounds[1::2] = s0, s1
    return ufunc.reduceat(xe, bounds)[0::2]


# --------------------------------------------------------------------------- quality
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
    q = np.full(len(t), np.nan)
    fin = np.isfinite(t)
    if fin.sum() < 3:
        return q
    filled, nan_mask = signal_fill_nan(np.asarray(x, dtype=np.float64))
    b, a = round(before_s * fs_hz), max(2, round(after_s * fs_hz))
    centre = np.round(t[fin] * fs_hz).astype(np.int64)
    step = max(1, int(fs_hz // 100))  # beats compared at ~100-200 Hz: enough for a correlation
    n = len(filled)
    idx = (centre - b)[:, None] + np.arange(0, a + b, step)[None, :]
    ok = ((idx >= 0) & (idx < n)).all(axis=1)
    np.clip(idx, 0, n - 1, out=idx)
    seg = filled[idx].astype(np.float32)
    seg -= seg.mean(axis=1, keepdims=True)
    # template: sample-wise median of consecutive blocks of n_template beats (one median pass)
    nb = len(seg)
    blk = max(1, min(n_template, nb))
    n_full = nb // blk
    parts = []
    if n_full:
        full = np.median(seg[: n_full * blk].reshape(n_full, blk, seg.shape[1]), axis=1)
        parts.append(np.repeat(full, blk, axis=0))
    rest = nb - n_full * blk
    if rest:  # the last, partial block borrows the preceding beats to reach n_template
        parts.append(np.repeat(np.median(seg[nb - blk :], axis=0, keepdims=True), rest, axis=0))
    tmpl = np.concatenate(parts)
    num = (seg * tmpl).sum(axis=1)
    den = np.sqrt((seg * seg).sum(axis=1) * (tmpl * tmpl).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(den > 0, num / den, 0.0)
    c = np.clip(c, 0.0, 1.0)
    if nan_mask.any():
        ok &= _segment_reduce(np.add, nan_mask.astype(np.int32), centre - b, centre + a) == 0
    c[~ok] = 0.0
    q[fin] = c
    return q
