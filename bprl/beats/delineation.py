"""ECG wave delineation: P onset / peak / offset, QRS onset / offset, T peak / end per beat.

The method is the wavelet delineator of Martínez et al. (2004), the one ecgpuwave and
NeuroKit2's ``method="dwt"`` follow, with its thresholds, on a transform defined in
milliseconds so that it runs unchanged at any sampling rate:

* **Transform.** Martínez et al. use the à trous dyadic transform with a quadratic-spline
  wavelet, which is the derivative of a cubic-spline smoothing function; at scale ``2^k`` and
  250 Hz that function has an SD of 4.0 (k = 2), 8.9 (k = 3), 18.3 (k = 4) and 36.9 ms (k = 5).
  Here each scale is the derivative of a Gaussian with that SD (``scipy.ndimage.gaussian_filter1d``
  with ``order=1``): zero-phase, no lag, no resampling, the same scales in ms at 250-1000 Hz.
* **QRS** (scale 2^2, 4 ms). The significant slopes around each R peak are the local maxima of
  ``|W|`` above 6 % (before R) or 9 % (after R) of the largest within +-120 ms. The onset is
  found going back from the first of them: the first sample where ``|W|`` drops below 5 % of
  that slope (7 % when it runs against the R deflection: a Q wave) or has a local minimum; the
  offset going forward from the last one: below 12.5 % (a slope back towards the R side: an S
  upstroke) or 71 % (away from it: an R downstroke without S), or a local minimum. Two
  additions to Martínez's rules keep noisy 500 Hz leads (LUDB) from pulling in P or T slopes:
  the QRS is closed by the first 16 ms on either side of R where ``|W|`` stays quiet (below 5 %
  of the largest slope or 2 x the beat's noise level, the median ``|W|`` over +-500 ms), and a
  slope must also exceed 3 x that noise level.
* **Learned onset** (``qrs_onset="model"``, :mod:`bprl.beats.qrs_onset_model`): the onset above
  moved by a LightGBM correction trained on LUDB's per-lead marks, from the slope and the signal
  around it (at most 40 ms either way); the default stays the threshold rule.
* **Paced beats.** Pacemaker spikes (:mod:`bprl.beats.pacing`) are replaced by a 12-ms running
  median before the transforms, and a paced beat's QRS onset is not placed before the end of
  its spike's replaced stretch (annotators mark the onset of the paced complex, after the spike).
* **T wave** (scale 2^4, 18 ms; 2^5 when nothing is found). In a window from 100 ms after R (at
  least 20 ms after the QRS offset) to ``min(0.7 RR, 600 ms)``, the largest modulus maximum and
  the largest one of opposite sign form the wave; the T peak is the zero crossing of ``W``
  between them, the T end the first sample after the later one where ``|W|`` falls below 40 % of
  it or has a local minimum. A T wave whose largest slope is under 2.5 % of the QRS slope at the
  same scale is absent.
* **P wave** (scale 2^4). In a window from 300 ms before the QRS onset (not before the previous
  beat's T end, or half the previous RR after its R when that was not found) to the QRS onset, the same pairing; onset at 50 %, offset at 90 % of the first / last
  slope (Martínez's thresholds). A P wave needs both slopes, at least 3 % of the QRS slope, and
  its +-80 ms around the P peak must correlate >= 0.5 with the record's median P wave
  (P waves are time-locked to the QRS; AF f-waves are not, so in AF the P columns are NaN).

Boundaries are sub-sample: a threshold crossing is interpolated linearly, a local minimum and
the zero crossing parabolically / linearly. Polarity: slopes are signed against each beat's R
deflection, so an inverted lead gives the same boundaries. All beats are processed at once on
beat-aligned windows (numpy), a loop runs only over the few transform scales.

Sources: J. P. Martínez, R. Almeida, S. Olmos, A. P. Rocha, P. Laguna, "A wavelet-based ECG
delineator: evaluation on standard databases", IEEE TBME 51(4):570-581, 2004; P. Laguna,
R. Jané, P. Caminal, "Automatic detection of wave boundaries in multilead ECG signals:
validation with the CSE database", Comput. Biomed. Res. 27:45-60, 1994 (ecgpuwave).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
from scipy import ndimage

from bprl.beats._arrays import _window_index
from bprl.beats.ecg import ecg_peaks
from bprl.beats.filters import signal_fill_nan
from bprl.beats.pacing import blank_half_width, blank_spikes, pacing_spike_samples
from bprl.errors import FeatureError

__all__ = [
    "DELINEATION_COLUMNS",
    "MIN_DELINEATION_FS_HZ",
    "QRS_ONSET_METHODS",
    "ecg_delineate",
    "prepared_lead",
    "spike_floor_s",
]

#: columns of :func:`ecg_delineate`, times in s from the start of the signal
DELINEATION_COLUMNS = (
    "r_s",
    "p_onset_s",
    "p_peak_s",
    "p_offset_s",
    "qrs_onset_s",
    "qrs_offset_s",
    "t_peak_s",
    "t_end_s",
)
#: the ``qrs_onset`` choices of :func:`ecg_delineate`
QRS_ONSET_METHODS = ("wavelet", "model")
#: lowest sampling rate accepted (the QRS slopes need the 4 ms scale); 250-1000 Hz is tested
MIN_DELINEATION_FS_HZ = 100.0
#: SD (ms) of the Gaussian smoothing function of the dyadic scales 2^2, 2^4 and 2^5 at 250 Hz
SCALE_SD_MS = {2: 4.0, 4: 18.3, 5: 36.9}

_QRS_SEARCH_MS = 120.0  # significant QRS slopes within +-this of R
_QRS_BOUND_MS = 80.0  # the onset / offset within this of the first / last slope
_QUIET_FRAC, _QUIET_MS = 0.05, 16.0  # PR / ST segment: |W| below 5 % of the QRS slope for 16 ms
_QUIET_NOISE, _SIG_NOISE = 2.0, 3.0  # ... or below 2 x the noise level; slopes above 3 x it
_T_START_MS, _T_MAX_MS, _T_RR_FRAC = 100.0, 600.0, 0.7  # T-wave window after R
_T_END_MS = 160.0  # T end within this after the last T slope
_P_BACK_MS = 300.0  # P-wave window before the QRS onset
_P_BOUND_MS = 100.0  # P onset within this before the first P slope
_T_MIN_RATIO, _P_MIN_RATIO = 0.025, 0.03  # wave slope / QRS slope at the same scale
_PARTNER_RATIO = 0.1  # opposite slope at least this fraction of the largest one
_P_CORR_MIN, _P_CORR_HALF_MS = 0.5, 80.0  # P-wave consistency with the record's median P


def ecg_delineate(
    ecg: np.ndarray, fs_hz: float, r_times_s: np.ndarray | None = None, *, qrs_onset: str = "wavelet"
) -> pd.DataFrame:
    """Delineate every beat of an ECG lead: P, QRS and T boundaries (wavelet method, Martínez 2004).

    Method: see the module docstring (derivative-of-Gaussian scales of 4, 18 and 37 ms, the
    thresholds of Martínez et al. 2004, IEEE TBME 51:570). Windows are defined in ms, so the
    same beats sampled at 250, 360, 500 or 1000 Hz give the same boundaries within a few ms.

    Args:
        ecg: one ECG lead (any units, either polarity); NaN marks invalid samples.
        fs_hz: sampling rate in Hz (at least :data:`MIN_DELINEATION_FS_HZ`; tested 250-1000 Hz).
        r_times_s: R-peak times in s; by default :func:`bprl.beats.ecg_peaks` of ``ecg``.
        qrs_onset: ``"wavelet"`` (Martínez's threshold rule, the default) or ``"model"`` (that
            onset corrected by the shipped LUDB-trained model, :mod:`bprl.beats.qrs_onset_model`;
            the P wave is then searched before the corrected onset).

    Returns:
        One row per R peak (time order), columns :data:`DELINEATION_COLUMNS`: ``r_s`` and the
        ``p_onset_s``, ``p_peak_s``, ``p_offset_s``, ``qrs_onset_s``, ``qrs_offset_s``,
        ``t_peak_s``, ``t_end_s`` times in s from the start of the signal. NaN = not found:
        the wave is absent (no P wave in AF, a flat T), its search window runs past either end of
        the record or touches a NaN sample, or the slopes were too weak (a flat lead with given R
        times gives all-NaN rows). No R peaks (a flat lead, a record under 2 s with detection)
        give an empty frame with these columns.

    Raises:
        FeatureError: ``ecg`` is not 1-D, ``fs_hz`` is below :data:`MIN_DELINEATION_FS_HZ`
            (e.g. a 50 Hz record: the QRS boundaries cannot be resolved), or ``qrs_onset`` is
            not one of :data:`QRS_ONSET_METHODS`.
    """
    if qrs_onset not in QRS_ONSET_METHODS:
        raise FeatureError(
            f"ecg_delineate: qrs_onset must be one of {list(QRS_ONSET_METHODS)}, got {qrs_onset!r}"
        )
    x = np.asarray(ecg, dtype=np.float64)
    if x.ndim != 1:
        raise FeatureError(f"ecg_delineate: expected a 1-D ECG lead, got shape {x.shape}")
    if not np.isfinite(fs_hz) or fs_hz < MIN_DELINEATION_FS_HZ:
        raise FeatureError(
            f"ecg_delineate: sampling rate {fs_hz} Hz is below {MIN_DELINEATION_FS_HZ:g} Hz; "
            "QRS boundaries need the 4 ms wavelet scale (resample the ECG to >= 250 Hz)"
        )
    if r_times_s is None:
        r_times_s = ecg_peaks(x, fs_hz)
    r_s = np.sort(np.asarray(r_times_s, dtype=np.float64).ravel())
    r_s = r_s[np.isfinite(r_s)]
    out = {c: np.full(len(r_s), np.nan) for c in DELINEATION_COLUMNS}
    out["r_s"] = r_s
    if len(r_s) == 0 or len(x) < 3:
        return pd.DataFrame(out, columns=list(DELINEATION_COLUMNS))
    prepared, nan_mask, spikes = prepared_lead(x, fs_hz, r_s)
    ctx = _Context(prepared, nan_mask, fs_hz, r_s)
    ctx.after_spike = _after_spike(ctx, spikes)
    q_on, q_off = _in_blocks(ctx, _qrs_bounds)
    if qrs_onset == "model":
        from bprl.beats.qrs_onset_model import refine_qrs_onsets

        q_on = refine_qrs_onsets(ctx.x, fs_hz, ctx.r, q_on, q_off, ctx.after_spike)
    t_peak, t_end = _in_blocks(ctx, _t_wave, q_off)
    # the P window starts after the previous beat's T end (or half the previous RR after its R)
    prev_end = np.insert(t_end[:-1], 0, np.nan)
    prev_r = np.insert(ctx.r[:-1], 0, -np.inf) + 0.5 * ctx.rr_prev
    prev_bound = np.where(np.isfinite(prev_end), prev_end, np.nan_to_num(prev_r, nan=-np.inf))
    p_on, p_peak, p_off = _in_blocks(ctx, _p_wave, q_on, prev_bound)
    keep = _p_consistent(ctx, p_peak)
    p_on, p_peak, p_off = (np.where(keep, v, np.nan) for v in (p_on, p_peak, p_off))
    for name, v in zip(
        DELINEATION_COLUMNS[1:], (p_on, p_peak, p_off, q_on, q_off, t_peak, t_end), strict=True
    ):
        out[name] = v / fs_hz
    return pd.DataFrame(out, columns=list(DELINEATION_COLUMNS))


def prepared_lead(x: np.ndarray, fs_hz: float, r_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lead as the delineator reads it: NaN runs filled, pacing spikes near ``r_s`` blanked
    (a spike is not the start of the complex). Returns (signal, NaN mask, spike samples)."""
    filled, nan_mask = signal_fill_nan(x)
    spikes = pacing_spike_samples(filled, fs_hz, r_s)
    return blank_spikes(filled, fs_hz, spikes), nan_mask, spikes


def spike_floor_s(ecg: np.ndarray, fs_hz: float, r_s: np.ndarray) -> np.ndarray:
    """Per R peak: the time (s) before which its QRS onset is not placed, the end of a pacing
    spike's blanked stretch (-inf for an unpaced beat); see the module docstring."""
    r_s = np.asarray(r_s, dtype=np.float64)
    prepared, nan_mask, spikes = prepared_lead(np.asarray(ecg, dtype=np.float64), fs_hz, r_s)
    return _after_spike(_Context(prepared, nan_mask, fs_hz, r_s), spikes) / fs_hz


#: beats per block of the wave searches (bounds the beat-by-window matrices to a few MB)
_BLOCK = 2000


def _in_blocks(ctx: _Context, fn, *per_beat: np.ndarray) -> tuple[np.ndarray, ...]:
    """``fn(part, *per_beat[block])`` over blocks of :data:`_BLOCK` beats, results concatenated."""
    parts = [
        fn(ctx.part(slice(i, i + _BLOCK)), *(v[i : i + _BLOCK] for v in per_beat))
        for i in range(0, len(ctx.r), _BLOCK)
    ]
    return tuple(np.concatenate(col) for col in zip(*parts, strict=True))


class _Context:
    """Per-record arrays shared by the wave searches: signal, NaN mask, R samples, RR, transforms."""

    def __init__(self, x: np.ndarray, nan_mask: np.ndarray, fs_hz: float, r_s: np.ndarray) -> None:
        self.x, self.fs, self.n = x, float(fs_hz), len(x)
        self.r = r_s * fs_hz  # fractional sample of each R peak
        self.ri = np.clip(np.rint(self.r).astype(np.int64), 0, self.n - 1)
        rr = np.diff(self.r)
        med = float(np.median(rr)) if len(rr) else self.fs
        self.rr_next = np.append(rr, med)  # samples to the next R (median RR for the last beat)
        self.rr_prev = np.insert(rr, 0, np.nan)
        self.bad_cum = np.concatenate([[0], np.cumsum(nan_mask)])
        self.after_spike = np.full(len(r_s), -np.inf)  # end of a paced beat's blanked spike (sample)
        self._w: dict[int, np.ndarray] = {}

    def part(self, sl: slice) -> _Context:
        """The same record restricted to the beats ``sl`` (signal and transforms shared)."""
        out = copy.copy(self)
        out.r, out.ri, out.rr_next, out.rr_prev = self.r[sl], self.ri[sl], self.rr_next[sl], self.rr_prev[sl]
        out.after_spike = self.after_spike[sl]
        return out

    def ms(self, v: float | np.ndarray) -> np.ndarray | int:
        """Milliseconds to whole samples."""
        return np.rint(np.asarray(v) * self.fs / 1000.0).astype(np.int64)

    def w(self, k: int) -> np.ndarray:
        """Scale ``2^k``: derivative of the ECG smoothed by a Gaussian of SD ``SCALE_SD_MS[k]``."""
        if k not in self._w:
            sd = max(SCALE_SD_MS[k] * self.fs / 1000.0, 0.5)
            self._w[k] = ndimage.gaussian_filter1d(self.x, sd, order=1, mode="nearest", truncate=4.0)
        return self._w[k]

    def rows(self, y: np.ndarray, start: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Windows ``y[start + j]`` for ``j < width`` (one row per beat) and their in-record mask."""
        idx, ok = _window_index(start, width, self.n)
        return y[idx], ok

    def clean(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Per beat: ``[lo, hi]`` lies inside the record and holds no NaN sample."""
        inside = (lo >= 0) & (hi <= self.n - 1)
        lo_c, hi_c = np.clip(lo, 0, self.n - 1), np.clip(hi, 0, self.n - 1)
        return inside & (self.bad_cum[hi_c + 1] - self.bad_cum[lo_c] == 0)


def _local_max(a: np.ndarray) -> np.ndarray:
    """Interior local maxima of each row (plateaus count once, at their first sample)."""
    m = np.zeros(a.shape, dtype=bool)
    m[:, 1:-1] = (a[:, 1:-1] > a[:, :-2]) & (a[:, 1:-1] >= a[:, 2:])
    return m


def _peak_values(a: np.ndarray) -> np.ndarray:
    """``a`` with each interior local maximum replaced by the vertex of the parabola through it
    and its neighbours: slope maxima at their sub-sample height, so that thresholds relative to
    them do not depend on where the samples fall (at 250 Hz the 4 ms scale is one sample wide)."""
    out = a.copy()
    r, c = np.nonzero(_local_max(a))
    y0, y1, y2 = a[r, c - 1], a[r, c], a[r, c + 1]
    den = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.clip(np.where(den < 0, 0.5 * (y0 - y2) / den, 0.0), -0.5, 0.5)
    out[r, c] = y1 - 0.25 * (y0 - y2) * off
    return out


def _local_min(a: np.ndarray) -> np.ndarray:
    """Interior local minima of each row."""
    m = np.zeros(a.shape, dtype=bool)
    m[:, 1:-1] = (a[:, 1:-1] < a[:, :-2]) & (a[:, 1:-1] <= a[:, 2:])
    return m


def _take(a: np.ndarray, col: np.ndarray) -> np.ndarray:
    """``a[i, col[i]]`` with columns clipped to the row (callers mask invalid rows)."""
    return a[np.arange(len(a)), np.clip(col, 0, a.shape[1] - 1)]


def _boundary(
    a: np.ndarray, start: np.ndarray, thr: np.ndarray, limit: np.ndarray, forward: bool
) -> np.ndarray:
    """Fractional column of the boundary next to ``start`` (a slope maximum of ``|W|`` ``a``).

    Backward (``forward=False``): the last column ``j < start`` (not before ``limit``) where
    ``a[j] <= thr`` or ``a`` has a local minimum; forward: the first ``j > start`` (not after
    ``limit``). A threshold crossing is interpolated linearly between ``j`` and its neighbour
    towards ``start``, a local minimum by the vertex of the parabola through it. NaN: none found.
    """
    b, width = a.shape
    cols = np.arange(width)[None, :]
    cand = (a <= thr[:, None]) | _local_min(a)
    if forward:
        cand &= (cols > start[:, None]) & (cols <= limit[:, None])
        j = np.where(cand, cols, width).min(axis=1)
        found = j < width
    else:
        cand &= (cols < start[:, None]) & (cols >= limit[:, None])
        j = np.where(cand, cols, -1).max(axis=1)
        found = j >= 0
    j = np.clip(j, 1, width - 2)
    rows = np.arange(b)
    here, prev, nxt = a[rows, j], a[rows, j - 1], a[rows, j + 1]
    toward = nxt if not forward else prev
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = (thr - here) / (toward - here)  # fraction of a sample towards ``start``
        den = prev - 2 * here + nxt
        vertex = np.clip(np.where(np.abs(den) > 0, 0.5 * (prev - nxt) / den, 0.0), -0.5, 0.5)
    is_cross = (here <= thr) & (toward > thr)
    frac = np.where(is_cross, (1.0 if not forward else -1.0) * np.clip(cross, 0.0, 1.0), vertex)
    return np.where(found, j + frac, np.nan)


def _zero_cross(w: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """Fractional column of the first sign change of each row of ``w`` in ``[c0, c1]`` (NaN: none)."""
    width = w.shape[1]
    cols = np.arange(width - 1)[None, :]
    change = (np.sign(w[:, :-1]) != np.sign(w[:, 1:])) & (cols >= c0[:, None]) & (cols < c1[:, None])
    j = np.where(change, cols, width).min(axis=1)
    found = j < width - 1
    j = np.clip(j, 0, width - 2)
    rows = np.arange(len(w))
    y0, y1 = w[rows, j], w[rows, j + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip(np.where(y0 != y1, y0 / (y0 - y1), 0.0), 0.0, 1.0)
    return np.where(found, j + frac, np.nan)


def _polarity(ctx: _Context) -> np.ndarray:
    """+1 / -1 per beat: the sign of the R deflection from the median of the +-150 ms around it."""
    h = int(ctx.ms(150))
    seg, _ = ctx.rows(ctx.x, ctx.ri - h, 2 * h + 1)
    s = np.sign(seg[:, h] - np.median(seg, axis=1))
    return np.where(s == 0, 1.0, s)


def _qrs_bounds(ctx: _Context) -> tuple[np.ndarray, np.ndarray]:
    """QRS onset and offset (fractional samples, NaN = not found) at scale 2^2 (Martínez 2004)."""
    s = _polarity(ctx)
    h, half = int(ctx.ms(_QRS_SEARCH_MS + _QRS_BOUND_MS)), int(ctx.ms(_QRS_SEARCH_MS))
    start = ctx.ri - h
    w, _ = ctx.rows(ctx.w(2), start, 2 * h + 1)
    w *= s[:, None]
    a = np.abs(w)
    c0 = ctx.r - start  # fractional column of R
    cols = np.arange(2 * h + 1)[None, :]
    near = np.abs(cols - c0[:, None]) <= half
    pk = _peak_values(a)
    big = np.where(near, pk, 0.0).max(axis=1, keepdims=True)
    noise = _noise(ctx, 2)[:, None]
    lm = _local_max(a) & near & (big > 0)
    quiet = a < np.maximum(_QUIET_FRAC * big, _QUIET_NOISE * noise)
    lo_bar, hi_bar = _quiet_barriers(quiet, c0, int(ctx.ms(_QUIET_MS)))
    spike_end = ctx.after_spike - start  # paced beats: nothing of the QRS before the spike's end
    spike_bar = np.where(np.isfinite(spike_end), spike_end, -1).astype(np.int64)
    lm &= (cols > np.maximum(lo_bar, spike_bar)[:, None]) & (cols < hi_bar[:, None])
    pre = lm & (cols <= c0[:, None]) & (pk >= np.maximum(0.06 * big, _SIG_NOISE * noise))
    post = lm & (cols >= c0[:, None]) & (pk >= np.maximum(0.09 * big, _SIG_NOISE * noise))
    n_first = np.where(pre, cols, 2 * h + 1).min(axis=1)
    n_last = np.where(post, cols, -1).max(axis=1)
    ok_f, ok_l = n_first <= 2 * h, n_last >= 0
    wf, wl = _take(w, n_first), _take(w, n_last)
    pf, pl = _take(pk, n_first), _take(pk, n_last)
    bound = int(ctx.ms(_QRS_BOUND_MS))
    on = _boundary(
        a, n_first, pf * np.where(wf > 0, 0.05, 0.07), np.maximum(n_first - bound, spike_bar), forward=False
    )
    paced = np.isfinite(spike_end) & (spike_end < n_first)
    on = np.where(np.isnan(on) & paced, spike_end, on)  # the complex starts as the spike's stretch ends
    off = _boundary(a, n_last, pl * np.where(wl < 0, 0.71, 0.125), n_last + bound, forward=True)
    clean = ctx.clean(start, start + 2 * h)
    on = np.where(ok_f & clean, on + start, np.nan)
    off = np.where(ok_l & clean, off + start, np.nan)
    return on, off


def _after_spike(ctx: _Context, spikes: np.ndarray) -> np.ndarray:
    """Per beat: the last sample of the blanked stretch of the latest pacing spike within the QRS
    search window before its R (-inf: none, an unpaced beat)."""
    out = np.full(len(ctx.r), -np.inf)
    if len(spikes) == 0:
        return out
    j = np.searchsorted(spikes, ctx.ri, side="right") - 1
    ok = j >= 0
    before = np.where(ok, spikes[np.clip(j, 0, None)], -(10**9))
    near = ok & (ctx.ri - before <= int(ctx.ms(_QRS_SEARCH_MS)))
    out[near] = before[near] + blank_half_width(ctx.fs)
    return out


def _quiet_barriers(quiet: np.ndarray, c0: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns that close the QRS on either side of ``c0``: the end of the last run of ``k``
    quiet samples before it and the start of the first such run after it (-1 / width: none).

    A QRS is one burst of slope; the PR and ST segments are runs of small ``|W|`` that separate it
    from the P and T slopes, which can exceed the significance threshold at scale 2^2.
    """
    b, width = quiet.shape
    k = max(k, 1)
    cs = np.concatenate([np.zeros((b, 1), dtype=np.int64), np.cumsum(quiet, axis=1)], axis=1)
    cols = np.arange(width)[None, :]
    ends = np.zeros(quiet.shape, dtype=bool)  # a quiet run of k samples ends at this column
    ends[:, k - 1 :] = (cs[:, k:] - cs[:, :-k]) == k
    starts = np.zeros(quiet.shape, dtype=bool)  # ... starts at this column
    starts[:, : width - k + 1] = ends[:, k - 1 :]
    lo = np.where(ends & (cols < c0[:, None]), cols, -1).max(axis=1)
    hi = np.where(starts & (cols > c0[:, None]), cols, width).min(axis=1)
    return lo, hi


def _pair(w: np.ndarray, a: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The wave's two slopes in each row: the largest local maximum of ``|W|`` among ``allowed``
    columns, and the largest one of opposite sign (at least :data:`_PARTNER_RATIO` of it).

    Returns (first column, last column, whether a partner was found); columns of rows without
    any maximum are -1.
    """
    lm = _local_max(a) & allowed
    m1 = np.where(lm, a, -1.0).argmax(axis=1)
    has = lm.any(axis=1)
    a1, w1 = _take(a, m1), _take(w, m1)
    opp = lm & (w * w1[:, None] < 0) & (a >= _PARTNER_RATIO * a1[:, None])
    m2 = np.where(opp, a, -1.0).argmax(axis=1)
    has2 = opp.any(axis=1) & has
    first = np.where(has2, np.minimum(m1, m2), m1)
    last = np.where(has2, np.maximum(m1, m2), m1)
    bad = ~has
    first[bad], last[bad] = -1, -1
    return first, last, has2


def _noise(ctx: _Context, k: int) -> np.ndarray:
    """Noise level of scale 2^k around each beat: the median of ``|W|`` over +-500 ms (mostly
    isoelectric line, so for white noise about 0.67 of its SD), from every 2nd ms at most."""
    h = int(ctx.ms(500))
    step = max(1, int(ctx.ms(2)))
    idx = np.clip(ctx.ri[:, None] + np.arange(-h, h + 1, step)[None, :], 0, ctx.n - 1)
    return np.median(np.abs(ctx.w(k)[idx]), axis=1)


def _qrs_slope(ctx: _Context, k: int) -> np.ndarray:
    """Largest ``|W|`` at scale 2^k within +-60 ms of each R (the reference for wave presence)."""
    h = int(ctx.ms(60))
    seg, _ = ctx.rows(np.abs(ctx.w(k)), ctx.ri - h, 2 * h + 1)
    return seg.max(axis=1)


def _t_wave(ctx: _Context, q_off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T peak and T end (fractional samples) at scale 2^4, else 2^5 (Martínez 2004)."""
    peak = np.full(len(ctx.r), np.nan)
    end = np.full(len(ctx.r), np.nan)
    for k in (4, 5):
        todo = np.isnan(end)
        if not todo.any():
            break
        p, e = _t_at_scale(ctx, q_off, k)
        peak[todo], end[todo] = p[todo], e[todo]
    return peak, end


def _t_at_scale(ctx: _Context, q_off: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_t_wave` at one scale."""
    lo = np.maximum(ctx.ms(_T_START_MS), np.nan_to_num(q_off - ctx.ri, nan=-1e9) + ctx.ms(20))
    hi = np.minimum(ctx.ms(_T_MAX_MS), np.rint(_T_RR_FRAC * ctx.rr_next).astype(np.int64))
    width = int(ctx.ms(_T_MAX_MS + _T_END_MS)) + 1
    w, _ = ctx.rows(ctx.w(k), ctx.ri, width)
    a = np.abs(w)
    cols = np.arange(width)[None, :]
    allowed = (cols >= lo[:, None]) & (cols <= hi[:, None])
    first, last, paired = _pair(w, a, allowed)
    big = np.maximum(_take(a, np.maximum(first, 0)), _take(a, np.maximum(last, 0)))
    present = (first >= 0) & (big >= _T_MIN_RATIO * _qrs_slope(ctx, k))
    peak = _zero_cross(w, first, last)
    peak = np.where(paired & present, peak, np.nan)
    limit = np.minimum(last + ctx.ms(_T_END_MS), np.rint(ctx.rr_next).astype(np.int64) - ctx.ms(80))
    end = _boundary(a, last, 0.4 * _take(a, np.maximum(last, 0)), limit, forward=True)
    end = np.where(present, end, np.nan)
    clean = ctx.clean(ctx.ri, ctx.ri + np.nan_to_num(end, nan=0).astype(np.int64) + ctx.ms(40))
    return np.where(clean, peak + ctx.ri, np.nan), np.where(clean, end + ctx.ri, np.nan)


def _p_wave(
    ctx: _Context, q_on: np.ndarray, prev_bound: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P onset, peak and offset (fractional samples) at scale 2^4 (Martínez 2004), NaN when the
    wave is absent or not consistent with the record's median P wave."""
    anchor = np.where(np.isfinite(q_on), q_on, ctx.r - ctx.ms(40))
    back = int(ctx.ms(_P_BACK_MS + _P_BOUND_MS))
    start = np.rint(anchor).astype(np.int64) - back
    width = back + 1
    w, _ = ctx.rows(ctx.w(4), start, width)
    a = np.abs(w)
    cols = np.arange(width)[None, :]
    lo = np.maximum(anchor - ctx.ms(_P_BACK_MS), np.maximum(prev_bound, -1e9)) - start
    hi = anchor - start
    allowed = (cols >= lo[:, None]) & (cols <= hi[:, None])
    first, last, paired = _pair(w, a, allowed)
    big = np.maximum(_take(a, np.maximum(first, 0)), _take(a, np.maximum(last, 0)))
    present = paired & (big >= _P_MIN_RATIO * _qrs_slope(ctx, 4))
    peak = _zero_cross(w, first, last)
    on_lim = np.maximum(first - ctx.ms(_P_BOUND_MS), np.floor(lo - ctx.ms(40)).astype(np.int64))
    on = _boundary(a, first, 0.5 * _take(a, np.maximum(first, 0)), on_lim, forward=False)
    off_lim = np.floor(hi).astype(np.int64)
    off = _boundary(a, last, 0.9 * _take(a, np.maximum(last, 0)), off_lim, forward=True)
    present &= ctx.clean(start, start + width - 1) & np.isfinite(peak)
    res = [np.where(present, v + start, np.nan) for v in (on, peak, off)]
    return res[0], res[1], res[2]


def _p_consistent(ctx: _Context, p_peak: np.ndarray) -> np.ndarray:
    """Whether each P candidate looks like the record's P wave: the Pearson correlation of the
    ECG within +-80 ms of the beat's P peak (mean removed) with the template, the median of the
    same window placed at the median R-to-P distance over (at most ~1000 evenly spaced) beats
    with a P candidate, is at least 0.5."""
    ok = np.isfinite(p_peak)
    if ok.sum() < 3:
        return ok
    h = int(ctx.ms(_P_CORR_HALF_MS))
    cand = np.flatnonzero(ok)
    lag = float(np.median(ctx.r[cand] - p_peak[cand]))
    pick = cand[:: max(1, len(cand) // 1000)]
    seg, inside = ctx.rows(ctx.x, np.rint(ctx.r[pick] - lag).astype(np.int64) - h, 2 * h + 1)
    seg = seg[inside.all(axis=1)]
    if len(seg) == 0:
        return np.zeros(len(p_peak), dtype=bool)
    tmpl = np.median(seg - seg.mean(axis=1, keepdims=True), axis=0)
    corr = np.zeros(len(p_peak))
    for i in range(0, len(cand), _BLOCK):
        at = cand[i : i + _BLOCK]
        own, _ = ctx.rows(ctx.x, np.rint(p_peak[at]).astype(np.int64) - h, 2 * h + 1)
        own -= own.mean(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr[at] = np.nan_to_num(own @ tmpl / (np.linalg.norm(own, axis=1) * np.linalg.norm(tmpl)))
    return ok & (corr >= _P_CORR_MIN)
