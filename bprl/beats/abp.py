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

from bprl.beats._arrays import _parabolic, _segment_count, _segment_reduce, _Windows
from bprl.beats.filters import _deriv, signal_bandpass, signal_fill_nan

__all__ = ["ABP_REJECT_REASONS", "abp_beats"]

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

    Args:
        abp: arterial pressure samples in mmHg; NaN marks invalid samples.
        fs_hz: sampling rate of ``abp`` in Hz.
        r_times_s: R-peak times in s from the start of the signal (e.g. :func:`bprl.beats.ecg_peaks`).
        sbp_max_mmhg: SBP above this is a flush or artefact (``flush``).
        sbp_min_mmhg: SBP below this is not arterial (``low_sbp``).
        dbp_min_mmhg: DBP below this is not arterial (``low_dbp``).
        pp_min_mmhg: pulse pressure below this is a damped line (``damped``).
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
    mapv, nan_in, rng, stuck = _segment_checks(x, filled, nan_mask, i_tr, seg_end)
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
    reason = _first_reason(reasons, nr)
    res["t_upstroke_s"] = np.where(anyu, (i_up + _parabolic(d1, i_up)[0]) / fs_hz, np.nan)
    res["sbp_mmhg"] = np.where(anyu, sbp, np.nan)  # beats without an upstroke have no values
    res["dbp_mmhg"] = np.where(anyu, dbp, np.nan)
    res["map_mmhg"] = np.where(anyu, mapv, np.nan)
    res["valid"] = reason == ""
    res["reject_reason"] = reason.astype(str)
    return res


def _first_reason(reasons: list[tuple[str, np.ndarray]], nr: int) -> np.ndarray:
    """Per beat, the name of the first ``(name, mask)`` in ``reasons`` whose mask is True ("" for none)."""
    reason = np.full(nr, "", dtype=object)
    for name, mask in reversed(reasons):  # the first matching reason wins
        reason[mask] = name
    return reason


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
    x: np.ndarray, filled: np.ndarray, nan_mask: np.ndarray, i_tr: np.ndarray, seg_end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per beat, over trough -> beat end: ``(map_mmhg, has_nan, range_mmhg, stuck)``.

    MAP is the mean of ``[i_tr, seg_end)``; NaN samples, the pressure range and the samples stuck
    at the record's extreme (``stuck``: >= 3 such samples in a record that is not constant) are
    counted over ``[i_tr, seg_end]`` (``reduceat``, no loop over beats).
    """
    nr = len(i_tr)
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
    return mapv, nan_in, rng, stuck
