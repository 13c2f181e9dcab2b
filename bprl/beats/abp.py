"""Arterial blood pressure (ABP) beats: SBP, DBP and MAP per R peak, with a reject reason.

**ABP beat**: upstroke = max dP/dt 30-450 ms after the R peak; DBP = minimum in the 300 ms
before the upstroke; SBP = maximum between the upstroke and the next beat's trough; MAP =
mean pressure from this trough to the next. Pressures in mmHg, times in seconds from the
start of the signal. A beat that is not trustworthy arterial pressure keeps its values but
is flagged invalid with one of :data:`ABP_REJECT_REASONS`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage

from bprl.beats._arrays import (
    _nan_runs,
    _parabolic,
    _ranges,
    _segment_count,
    _segment_reduce,
    _window_extreme_at,
    _Windows,
)
from bprl.beats.filters import _deriv, signal_bandpass, signal_fill_nan

__all__ = ["ABP_REJECT_REASONS", "abp_beats"]

#: ABP beat reject reasons (``reject_reason`` column of :func:`abp_beats`; empty string = accepted)
ABP_REJECT_REASONS: tuple[str, ...] = (
    "nan",
    "flat",
    "zeroed",
    "saturated",
    "flush",
    "no_pulse",
    "damped",
    "unstable",
    "isolated",
    "low_sbp",
    "low_dbp",
    "wide_pulse_pressure",
    "dbp_ge_sbp",
    "no_upstroke",
)


def abp_beats(
    abp: np.ndarray,
    fs_hz: float,
    r_times_s: np.ndarray,
    sbp_max_mmhg: float = 250.0,
    sbp_min_mmhg: float = 50.0,
    dbp_min_mmhg: float = 20.0,
    pp_min_mmhg: float = 10.0,
    pp_max_mmhg: float = 150.0,
    dbp_max_mmhg: float = 140.0,
    zero_max_mmhg: float = 10.0,
) -> pd.DataFrame:
    """Arterial-pressure beats (SBP, DBP, MAP) for each R peak, with a validity flag.

    Per R peak: upstroke = maximum of dP/dt (0-15 Hz low-passed ABP) 30-450 ms after the R peak;
    DBP = minimum (the pre-upstroke trough) in the 300 ms before the upstroke; SBP = maximum from
    the upstroke to the next beat's trough (at most 600 ms); MAP = mean pressure from this trough
    to the next. Values are read on the unfiltered pressure (parabolic vertex for SBP and DBP).

    A beat is rejected (``valid`` False, ``reject_reason`` set, first match in this order) when it
    is not trustworthy arterial pressure. Artefacts are caught by shape and context, not by global
    thresholds: no upstroke (``no_upstroke``); NaN samples (``nan``); no pulse (``flat``: range
    < 2 mmHg); a line near 0 (``zeroed``); a clipped run at a local extreme (``saturated``, see
    :func:`_clipped`); a flush square wave or plateau and its edges (``flush``, see :func:`_flush`);
    DBP >= SBP (``dbp_ge_sbp``); a beat without ejection (``no_pulse``: pulse pressure
    < ``pp_min_mmhg`` / 4); a damped line (``damped``: a low or falling local pulse pressure with a
    stable mean, see :func:`_damped`); a moving baseline (``unstable``); a remnant inside an
    artefact stretch (``isolated``: >= 60 % of the +-5, then +-15, then +-40 neighbouring beats
    rejected, so a run of up to ~15 plausible beats inside a long artefact stretch is not
    trusted either); SBP < ``sbp_min_mmhg`` (``low_sbp``), DBP < ``dbp_min_mmhg``
    (``low_dbp``), pulse pressure > ``pp_max_mmhg`` (``wide_pulse_pressure``). Beat-to-beat pulse
    pressure variability in AF or ectopy (one small beat among normal neighbours) is kept.
    A rejected beat keeps its measured values but must never be used as a reference.

    Args:
        abp: arterial pressure samples in mmHg; NaN marks invalid samples.
        fs_hz: sampling rate of ``abp`` in Hz.
        r_times_s: R-peak times in s from the start of the signal (e.g. :func:`bprl.beats.ecg_peaks`).
        sbp_max_mmhg: SBP above this is a flush or artefact (``flush``).
        dbp_max_mmhg: DBP above this is a flush plateau (``flush``).
        zero_max_mmhg: |MAP| below this with SBP below twice it is a zeroed line (``zeroed``).
        sbp_min_mmhg: SBP below this is not arterial (``low_sbp``).
        dbp_min_mmhg: DBP below this is not arterial (``low_dbp``).
        pp_min_mmhg: a local pulse pressure (or >= 4 consecutive beats) below this is a damped
            line (``damped``); a single beat below a quarter of it has no pulse (``no_pulse``).
        pp_max_mmhg: pulse pressure above this is implausible (``wide_pulse_pressure``).

    Returns:
        DataFrame, one row per R peak: ``t_upstroke_s``, ``sbp_mmhg``, ``dbp_mmhg``, ``map_mmhg``,
        ``valid`` (bool), ``reject_reason`` (str, empty when valid).
    """
    r = np.asarray(r_times_s, dtype=np.float64)
    nr = len(r)
    x = np.asarray(abp, dtype=np.float64)
    n = len(x)
    res = _abp_frame(nr)
    if nr == 0 or n < int(fs_hz):
        return res
    filled, nan_mask = signal_fill_nan(x)
    if nan_mask.all():
        return res
    lp = signal_bandpass(filled, fs_hz, None, 15.0, order=2)
    d1 = _deriv(lp, fs_hz)
    w = _AbpWindows.at(fs_hz)
    win_d1, win_x = _Windows(d1, w.pad), _Windows(filled, w.pad)
    i_up, anyu = _upstrokes(win_d1, r, fs_hz, w)
    i_tr, dbp = _troughs(filled, win_x, i_up, w)
    seg_end, sbp = _systoles(filled, win_x, i_up, i_tr, w, fs_hz)
    mapv, nan_in, rng, stuck, top = _segment_checks(x, filled, nan_mask, i_tr, seg_end, fs_hz)
    t_tr = i_tr / fs_hz
    pp = sbp - dbp
    hard = (~anyu) | nan_in | (rng < 2.0) | stuck | (dbp >= sbp) | (pp < 0.25 * pp_min_mmhg)
    hard |= (sbp > sbp_max_mmhg) | (dbp > dbp_max_mmhg) | (sbp < sbp_min_mmhg) | (dbp < dbp_min_mmhg)
    bad = hard | (pp > pp_max_mmhg)
    flush = _flush(t_tr, sbp, dbp, mapv, top, _refs(dbp, mapv, bad), sbp_max_mmhg, dbp_max_mmhg)
    ctx = _context(sbp, dbp, mapv, bad | flush)  # damping and stability judged without the flushes
    reasons = [
        ("no_upstroke", ~anyu),
        ("nan", nan_in),
        ("flat", rng < 2.0),
        ("zeroed", (np.abs(mapv) < zero_max_mmhg) & (sbp < 2 * zero_max_mmhg)),
        ("saturated", stuck),
        ("flush", flush),
        ("dbp_ge_sbp", dbp >= sbp),
        ("no_pulse", pp < 0.25 * pp_min_mmhg),
        ("damped", _damped(pp, mapv, ctx, pp_min_mmhg)),
        ("unstable", _unstable(pp, ctx)),
        ("low_sbp", sbp < sbp_min_mmhg),
        ("low_dbp", dbp < dbp_min_mmhg),
        ("wide_pulse_pressure", pp > pp_max_mmhg),
    ]
    reason = _first_reason(reasons, nr)
    # remnants between rejected beats, then in a longer artefact stretch, then a short run of
    # plausible-looking beats inside a long one (MIMIC-IV p10020306 _0022, 465-472 s: 15 beats of
    # a manipulated line between a damped line and a flush, MAP ~137 against ~100 before)
    for half in _ISOLATED_HALVES:
        reason[(reason == "") & _isolated(reason != "", half)] = "isolated"
    res["t_upstroke_s"] = np.where(anyu, (i_up + _parabolic(d1, i_up)[0]) / fs_hz, np.nan)
    res["sbp_mmhg"] = np.where(anyu, sbp, np.nan)  # beats without an upstroke have no values
    res["dbp_mmhg"] = np.where(anyu, dbp, np.nan)
    res["map_mmhg"] = np.where(anyu, mapv, np.nan)
    res["valid"] = reason == ""
    res["reject_reason"] = reason.astype(str)
    return res


#: neighbourhoods (+-beats) of the successive ``isolated`` passes (see :func:`_isolated`)
_ISOLATED_HALVES: tuple[int, ...] = (5, 15, 40)


def _first_reason(reasons: list[tuple[str, np.ndarray]], nr: int) -> np.ndarray:
    """Per beat, the name of the first ``(name, mask)`` in ``reasons`` whose mask is True ("" for none)."""
    reason = np.full(nr, "", dtype=object)
    for name, mask in reversed(reasons):  # the first matching reason wins
        reason[mask] = name
    return reason


def _isolated(rejected: np.ndarray, half: int = 5) -> np.ndarray:
    """Beats whose +-``half`` neighbours (itself left out) are >= 60 % rejected: remnants inside an
    artefact stretch (line manipulation, sampling, recovery after a flush) are not trusted."""
    k = np.ones(2 * half + 1)
    k[half] = 0.0
    n_rej = ndimage.convolve1d(rejected.astype(float), k, mode="constant")
    n_all = ndimage.convolve1d(np.ones(len(rejected)), k, mode="constant")
    return n_rej >= 0.6 * np.maximum(n_all, 1.0)


def _abp_frame(nr: int) -> pd.DataFrame:
    """The result of :func:`abp_beats` for ``nr`` beats before measurement: NaN values, all rejected as ``nan``."""
    return pd.DataFrame(
        {
            "t_upstroke_s": np.full(nr, np.nan),
            "sbp_mmhg": np.full(nr, np.nan),
            "dbp_mmhg": np.full(nr, np.nan),
            "map_mmhg": np.full(nr, np.nan),
            "valid": np.zeros(nr, dtype=bool),
            "reject_reason": np.full(nr, "nan", dtype=object),
        }
    )


class _AbpWindows(NamedTuple):
    """Search-window lengths (samples) around one ABP beat."""

    delay: int  # the upstroke search starts 30 ms after the R peak
    up: int  # ... and spans 420 ms
    pre: int  # the trough (DBP) lies in the 300 ms before the upstroke
    sys: int  # the systolic peak lies in the 600 ms after the upstroke

    @classmethod
    def at(cls, fs_hz: float) -> _AbpWindows:
        """The windows at sampling rate ``fs_hz`` (Hz)."""
        return cls(
            delay=round(0.03 * fs_hz),
            up=max(3, round(0.42 * fs_hz)),
            pre=max(3, round(0.3 * fs_hz)),
            sys=max(3, round(0.6 * fs_hz)),
        )

    @property
    def pad(self) -> int:
        """Edge padding (samples) that holds every window."""
        return max(self.up, self.pre + 1, self.sys) + 1


def _upstrokes(
    win_d1: _Windows, r: np.ndarray, fs_hz: float, w: _AbpWindows
) -> tuple[np.ndarray, np.ndarray]:
    """Upstroke of each beat: the sample of maximum dP/dt in the upstroke window after its R peak
    (``r`` in s), and whether the window starts inside the signal (``found``)."""
    n = win_d1.n
    r_idx = np.round(r * fs_hz).astype(np.int64)
    s_up = r_idx + w.delay
    vals, anyu = win_d1.masked(s_up, w.up, -np.inf, 0, np.where((s_up >= 0) & (s_up < n), n, -1))
    ju = np.argmax(vals, axis=1)
    i_up = win_d1.index(s_up, ju)
    return i_up, anyu


def _troughs(
    filled: np.ndarray, win_x: _Windows, i_up: np.ndarray, w: _AbpWindows
) -> tuple[np.ndarray, np.ndarray]:
    """Trough before each upstroke: its sample and its pressure (DBP, parabolic vertex, mmHg)."""
    s_b = i_up - w.pre
    jb = np.argmin(win_x.masked(s_b, w.pre + 1, np.inf)[0], axis=1)
    i_tr = win_x.index(s_b, jb)
    _, dbp = _parabolic(filled, i_tr)
    return i_tr, dbp


def _systoles(
    filled: np.ndarray, win_x: _Windows, i_up: np.ndarray, i_tr: np.ndarray, w: _AbpWindows, fs_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """End of each beat and its SBP (mmHg, parabolic vertex of the maximum after the upstroke).

    A beat ends at the next beat's trough when that trough follows the upstroke and lies within
    2 s of this trough, else 600 ms after the upstroke; the SBP search stops there (at most 1 s
    beyond 600 ms). Returns ``(seg_end, sbp)``, ``seg_end`` a sample index.
    """
    n = len(filled)
    i_end = np.minimum(i_up + round(0.6 * fs_hz), n - 1)
    nxt_tr = np.concatenate([i_tr[1:], [n - 1]])
    use_next = (nxt_tr > i_up) & (nxt_tr - i_tr < round(2.0 * fs_hz))
    i_end = np.where(use_next, np.minimum(nxt_tr, i_end + round(1.0 * fs_hz)), i_end)
    js = np.argmax(win_x.masked(i_up, w.sys, -np.inf, 0, np.maximum(i_end, i_up + 2))[0], axis=1)
    i_sp = win_x.index(i_up, js)
    _, sbp = _parabolic(filled, i_sp)
    seg_end = np.where(use_next, nxt_tr, i_end)
    return seg_end, sbp


def _segment_checks(
    x: np.ndarray,
    filled: np.ndarray,
    nan_mask: np.ndarray,
    i_tr: np.ndarray,
    seg_end: np.ndarray,
    fs_hz: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per beat, over trough -> beat end: ``(map_mmhg, has_nan, range_mmhg, stuck, flat_top)``.

    MAP is the mean of ``[i_tr, seg_end)``; NaN samples, the pressure range, ``stuck`` (a run of
    >= 40 ms of identical samples at the extreme of the surrounding 10 s: clipping) and
    ``flat_top`` (a plateau: >= 150 ms and >= 30 % of the beat within 5 % of the beat's range
    below its maximum) are counted over ``[i_tr, seg_end]`` (``reduceat``, no loop over beats).
    """
    nr, n = len(i_tr), len(filled)
    seg_len = np.maximum(seg_end - i_tr, 1)
    mapv = _segment_reduce(np.add, filled, i_tr, i_tr + seg_len) / seg_len
    nan_in = _segment_count(nan_mask, i_tr, seg_end + 1) > 0 if nan_mask.any() else np.zeros(nr, dtype=bool)
    hi = _segment_reduce(np.maximum, filled, i_tr, seg_end + 1)
    rng = hi - _segment_reduce(np.minimum, filled, i_tr, seg_end + 1)
    clip = _clipped(filled, nan_mask, fs_hz)  # sorted sample indices
    s0 = np.clip(i_tr, 0, n - 1)
    s1 = np.clip(np.maximum(seg_end + 1, s0 + 1), 1, n)  # bounds as in _segment_count
    stuck = np.searchsorted(clip, s1) > np.searchsorted(clip, s0)
    ln = np.maximum(seg_end + 1 - i_tr, 0)
    near_top = filled[_ranges(i_tr, seg_end + 1)] >= np.repeat(hi - np.maximum(0.05 * rng, 0.5), ln)
    n_top = np.zeros(nr, dtype=np.int64)
    some = ln > 0
    if some.any():
        n_top[some] = np.add.reduceat(near_top, (np.cumsum(ln) - ln)[some], dtype=np.int64)
    flat_top = (n_top >= 0.15 * fs_hz) & (n_top >= 0.3 * ln)
    return mapv, nan_in, rng, stuck, flat_top


def _clipped(filled: np.ndarray, nan_mask: np.ndarray, fs_hz: float) -> np.ndarray:
    """Indices (sorted) of the samples in a run of >= 40 ms (>= 3 samples) of identical values at the
    maximum of the surrounding 10 s, or at its minimum below 10 mmHg (a saturated or clipped
    transducer; a local, not a record-wide, extreme; a flat diastolic run at normal pressure is not
    a clip). The 10 s extremes are taken only at the samples of such runs."""
    k = max(3, round(0.04 * fs_hz))
    size = max(3, round(10.0 * fs_hz))
    same = np.diff(filled) == 0
    if np.count_nonzero(same) > 0.25 * len(filled):  # mostly flat runs (a held or upsampled signal)
        low = (filled <= ndimage.minimum_filter1d(filled, size)) & (filled < 10.0)  # a flat diastole: no clip
        at_ext = (filled >= ndimage.maximum_filter1d(filled, size)) | low
        run_id = np.cumsum(np.concatenate([[1], ~same]))  # runs of identical samples
        return np.flatnonzero((np.bincount(run_id)[run_id] >= k) & at_ext & ~nan_mask)
    first, last = _nan_runs(same)  # runs of identical samples: [first, last + 1]
    long = last + 2 - first >= k
    cand = _ranges(first[long], last[long] + 2)
    cand = cand[~nan_mask[cand]]  # few: the local extremes are looked for only here
    at_ext = filled[cand] >= _window_extreme_at(np.maximum, filled, cand, size)
    low = ~at_ext & (filled[cand] < 10.0)  # a flat diastole is no clip
    at_ext[low] = filled[cand[low]] <= _window_extreme_at(np.minimum, filled, cand[low], size)
    return cand[at_ext]


class _Context(NamedTuple):
    """Running medians over the neighbouring beats (rejected beats left out), one value per beat."""

    pp: np.ndarray  # pulse pressure, 75th percentile of +-5 beats
    map: np.ndarray  # MAP, +-4 beats
    pp_ref: np.ndarray  # 75th percentile of ``pp``, +-150 beats
    map_long: np.ndarray  # MAP, +-150 beats
    map_span: np.ndarray  # max - min of MAP, +-3 beats


def _roll(v: np.ndarray, bad: np.ndarray, half: int, q: float = 0.5) -> np.ndarray:
    """Running ``q`` quantile of ``v`` over +-``half`` beats, ``bad`` beats left out (NaN where all are)."""
    s = pd.Series(np.where(bad, np.nan, v)).rolling(2 * half + 1, center=True, min_periods=1)
    if q == 1.0 or q == 0.0:  # the extreme order statistics, exactly as quantile(1.0) / quantile(0.0)
        return (s.max() if q == 1.0 else s.min()).to_numpy()
    return s.quantile(q).to_numpy()


def _refs(dbp: np.ndarray, mapv: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference MAP and DBP of each beat: medians of +-30 neighbouring beats (``bad`` left out)."""
    return _roll(mapv, bad, 30), _roll(dbp, bad, 30)


def _context(sbp: np.ndarray, dbp: np.ndarray, mapv: np.ndarray, bad: np.ndarray) -> _Context:
    """Local and reference running medians of each beat's neighbours (``bad`` beats left out)."""
    pp_loc = _roll(sbp - dbp, bad, 5, 0.75)
    span = _roll(mapv, bad, 3, 1.0) - _roll(mapv, bad, 3, 0.0)
    pp_ref = pd.Series(pp_loc).rolling(301, center=True, min_periods=1).quantile(0.75).to_numpy()
    return _Context(pp_loc, _roll(mapv, bad, 4), pp_ref, _roll(mapv, bad, 150), span)


def _flush(
    t: np.ndarray,
    sbp: np.ndarray,
    dbp: np.ndarray,
    mapv: np.ndarray,
    top: np.ndarray,
    refs: tuple[np.ndarray, np.ndarray],
    sbp_max: float,
    dbp_max: float,
) -> np.ndarray:
    """Flush / fast-flush square wave: SBP above ``sbp_max`` or DBP above ``dbp_max`` (a plateau at
    high pressure), or a beat whose MAP jumps > 30 mmHg above the median of the surrounding 30 beats
    with a flat top (square wave) or a DBP raised as much (a pulse riding on the plateau); and
    every beat from 0.5 s before to 2 s after such a beat (edges, ringing and recovery of the line).
    ``t``: beat times (s, increasing)."""
    map_ref, dbp_ref = refs  # medians of the surrounding 30 beats (see :func:`_refs`)
    jump = np.nan_to_num(mapv - map_ref, nan=0.0) > 30.0
    raised = np.nan_to_num(dbp - dbp_ref, nan=0.0) > 30.0
    core = (sbp > sbp_max) | (dbp > dbp_max) | (jump & (top | raised))
    tf = t[core]
    if len(tf) == 0:
        return core
    j = np.clip(np.searchsorted(tf, t - 2.0), 0, len(tf) - 1)  # first flush beat >= t - 2 s
    return core | ((tf[j] >= t - 2.0) & (tf[j] <= t + 0.5))


def _damped(pp: np.ndarray, mapv: np.ndarray, ctx: _Context, pp_min: float) -> np.ndarray:
    """Damped line: the local pulse pressure (75th percentile of +-5 beats) below ``pp_min``, or
    below 45 % of its reference (75th percentile over +-150 beats) while the local mean stays
    within 20 % of its long median (a falling pulse pressure with a stable mean), or a run of >= 4
    consecutive beats below ``pp_min``. One small beat among normal neighbours (a short RR interval
    in AF, an ectopic beat) is kept."""
    loc = np.nan_to_num(ctx.pp, nan=pp)
    falling = loc < 0.45 * ctx.pp_ref
    stable = np.abs(np.nan_to_num(ctx.map, nan=mapv) - ctx.map_long) < 0.2 * np.abs(ctx.map_long)
    small = pp < pp_min
    run_id = np.cumsum(np.concatenate([[1], small[1:] != small[:-1]])) if len(pp) else np.zeros(0, int)
    sustained = small & (np.bincount(run_id)[run_id] >= 4)
    return (loc < pp_min) | (falling & stable) | sustained


def _unstable(pp: np.ndarray, ctx: _Context) -> np.ndarray:
    """A moving baseline (line manipulation, transducer moved, sampling): the beats' MAP spans more
    than 20 mmHg and more than the local pulse pressure within +-3 beats. Beat-to-beat changes of
    real pressure in AF or ectopy stay within one pulse pressure."""
    return np.nan_to_num(ctx.map_span, nan=0.0) > np.maximum(20.0, np.nan_to_num(ctx.pp, nan=pp))
