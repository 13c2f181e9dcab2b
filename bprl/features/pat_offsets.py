"""PPG timing offsets: steps of PAT that no physiological change explains (issue 16, item 5).

PAT = R peak -> PPG foot mixes the pre-ejection period, the arterial transit time and any timing
offset between the ECG and PPG channels of the monitor. A real change of blood pressure moves PAT
together with heart rate or with the R peak -> ABP upstroke delay (``r_abp_delay_ms``: the ABP
upstroke sits on the same arterial tree, the pre-ejection period is in both); a device or
segment timing offset moves PAT alone, in one step. :func:`pat_offset_steps` looks for such steps
at every step of a replay table, including the boundaries between records that
:func:`bprl.features.replay_set.concat_records` joined, and returns the estimated offset on the
first step after the break (NaN elsewhere): the ``pat_offset_ms`` column of
:data:`bprl.schemas.REPLAY_TIMING`.

Rule (thresholds below, each with its reasoning): at step ``i``, ``dPAT`` = median PAT of the
``HALF_WINDOW_STEPS`` steps from ``i`` minus the median of the ``HALF_WINDOW_STEPS`` steps before
``i`` (never reaching past the neighbouring record boundaries); the same for HR and the R->ABP
delay. A step is an offset when ``|dPAT| > PAT_STEP_MIN_MS`` and ``|dPAT|`` exceeds
``NOISE_FACTOR`` x the robust spread of PAT around the two medians, in PAT to the foot or to the
systolic peak (``PAT_COLUMNS``), while HR does not explain it (``|dHR| < HR_STEP_MAX_BPM``, or
``|dPAT| > PAT_STEP_MIN_MS + PAT_PER_BPM_MS x |dHR|``: more than any HR change accounts for) and
``|d delay| < DELAY_STEP_MAX_MS`` (the delay test is skipped where either side has no ABP). Of
adjacent qualifying steps only the one with the largest ``|dPAT|`` is kept.

A step in PAT to the peak with the foot unchanged is a change of the PPG pulse's shape (shorter
rise time) rather than of the channel's clock; it is flagged all the same, since the PAT a
calibrator or estimator reads jumps there (real p10020306 ``_0006`` -> ``_0012``: foot +12 ms,
peak -107 ms with HR +15 bpm, which explains at most ~46 ms).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "DELAY_STEP_MAX_MS",
    "HALF_WINDOW_STEPS",
    "HR_STEP_MAX_BPM",
    "NOISE_FACTOR",
    "PAT_COLUMNS",
    "PAT_PER_BPM_MS",
    "PAT_STEP_MIN_MS",
    "pat_offset_steps",
]

#: smallest PAT step called an offset (ms): the step-to-step spread of window medians on real
#: ICU records is ~10-20 ms, and 30 ms of PAT is ~15-30 mmHg of SBP, a change that is never silent
PAT_STEP_MIN_MS: float = 30.0
#: largest change of the R->ABP upstroke delay (ms) still counted as "unchanged": that delay
#: shares the pre-ejection period with PAT, so a real PAT change of >= 30 ms moves it by tens of
#: ms; 10 ms is about its window-to-window noise
DELAY_STEP_MAX_MS: float = 10.0
#: largest heart-rate change (bpm) still counted as "unchanged": PAT falls with HR (shorter
#: pre-ejection period), so a PAT step next to a large HR change is physiology, not an offset
HR_STEP_MAX_BPM: float = 10.0
#: steps compared on each side (5 windows = 2.5 min at the default 30 s hop): medians of 5 are
#: robust to 2 outlying windows while a change-point is still located to the window
HALF_WINDOW_STEPS: int = 5
#: fewest windows with a finite value needed on each side
MIN_SIDE_STEPS: int = 2
#: a step must also exceed this multiple of PAT's robust spread (1.4826 x MAD) about the two medians
NOISE_FACTOR: float = 3.0
#: most PAT (ms) a heart-rate change of 1 bpm explains: the pre-ejection period shortens by about
#: 0.4 ms/bpm (Weissler) and the PPG upstroke (in PAT to the systolic peak) by about 1 ms/bpm;
#: 3 ms/bpm is a generous bound, so a PAT step beyond ``PAT_STEP_MIN_MS + 3 x |dHR|`` is not HR's
PAT_PER_BPM_MS: float = 3.0
#: the PAT columns tested (those present): a step in either is a break for a calibrator
PAT_COLUMNS: tuple[str, ...] = ("pat_foot_ms", "pat_peak_ms")


def pat_offset_steps(table: pd.DataFrame, pat_col: str | tuple[str, ...] = PAT_COLUMNS) -> np.ndarray:
    """Estimated PAT step (ms) on the first step after each detected break, NaN elsewhere.

    Args:
        table: a replay table in step order (the PAT column(s), ``hr_bpm``; ``r_abp_delay_ms`` and
            ``record_id`` when present: records are the segments the windows never cross).
        pat_col: the PAT column, or columns, tested (absent ones are skipped). The first is
            tested at every step; the others (PAT to the systolic peak, whose detector can also
            switch between two peaks of one pulse inside a record) only at record boundaries.
            A step in any of them is a break and the largest ``|dPAT|`` is reported.

    Returns:
        float64 array, one value per row: ``dPAT`` (ms, positive = PAT longer after the break)
        where a step qualifies, NaN elsewhere.
    """
    n = len(table)
    out = np.full(n, np.nan)
    cols = [c for c in ((pat_col,) if isinstance(pat_col, str) else pat_col) if c in table]
    if n < 2 * MIN_SIDE_STEPS or not cols:
        return out
    pats = [table[c].to_numpy(np.float64) for c in cols]
    hr = table["hr_bpm"].to_numpy(np.float64)
    nan = np.full(n, np.nan)
    delay = table["r_abp_delay_ms"].to_numpy(np.float64) if "r_abp_delay_ms" in table else nan
    left, right = _side_indices(_segment_starts(table), n)
    at_boundary = np.zeros(n, bool)
    at_boundary[_segment_starts(table)[1:]] = True  # first steps of the later records
    d = np.full(n, np.nan)  # the largest qualifying PAT step of each step (first column on ties)
    for c, pat in zip(cols, pats, strict=True):
        step = _steps(pat, left, right)
        if c != cols[0]:
            step[~at_boundary] = np.nan
        take = np.isfinite(step) & ~(np.abs(step) <= np.abs(d))
        d[take] = step[take]
    d_hr = _side_changes(hr, left, right)
    d_delay = _side_changes(delay, left, right)
    with np.errstate(invalid="ignore"):
        hr_explains = ~np.isfinite(d_hr) | (
            (np.abs(d_hr) >= HR_STEP_MAX_BPM) & (np.abs(d) <= PAT_STEP_MIN_MS + PAT_PER_BPM_MS * np.abs(d_hr))
        )
        delay_moves = np.isfinite(d_delay) & (np.abs(d_delay) >= DELAY_STEP_MAX_MS)
    d_pat = np.where(hr_explains | delay_moves, np.nan, d)
    d_pat[0] = np.nan
    for i in np.flatnonzero(np.isfinite(d_pat)):
        before = np.abs(d_pat[max(0, i - HALF_WINDOW_STEPS) : i])
        after = np.abs(d_pat[i + 1 : i + HALF_WINDOW_STEPS + 1])
        if not (np.abs(d_pat[i]) <= before).any() and not (np.abs(d_pat[i]) < after).any():
            out[i] = d_pat[i]  # the largest step of its neighbourhood (the first one on ties)
    return out


def _steps(pat: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``dPAT`` at each step where it is large (> :data:`PAT_STEP_MIN_MS`) and clear of the noise
    (> :data:`NOISE_FACTOR` x the robust spread), else NaN."""
    a, b = _side_values(pat, left), _side_values(pat, right)
    ma, mb = _row_medians(a), _row_medians(b)
    d = mb - ma
    ok = (np.sum(np.isfinite(a), axis=1) >= MIN_SIDE_STEPS) & (
        np.sum(np.isfinite(b), axis=1) >= MIN_SIDE_STEPS
    )
    dev = np.abs(np.concatenate([a - ma[:, None], b - mb[:, None]], axis=1))
    with np.errstate(invalid="ignore"):
        ok &= ~(np.abs(d) <= PAT_STEP_MIN_MS) & ~(np.abs(d) <= NOISE_FACTOR * (1.4826 * _row_medians(dev)))
    return np.where(ok, d, np.nan)


def _segment_starts(table: pd.DataFrame) -> np.ndarray:
    """Row indices where a record starts (0 and every change of ``record_id``)."""
    if "record_id" not in table or not len(table):
        return np.array([0])
    rid = table["record_id"].astype(str).to_numpy()
    return np.concatenate([[0], np.flatnonzero(rid[1:] != rid[:-1]) + 1])


def _side_indices(starts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (``n`` x :data:`HALF_WINDOW_STEPS`, -1 = none) of the steps before and from each
    step ``i`` compared at ``i``, not reaching past neighbouring boundaries.

    At a record boundary the left side is the end of the previous record; inside a record both
    sides stay in the record.
    """
    i = np.arange(n)
    k = np.searchsorted(starts, i, side="right") - 1  # record containing i
    seg_start = starts[k]
    seg_end = np.append(starts, n)[k + 1]
    left_floor = np.where((i == seg_start) & (k > 0), starts[np.maximum(k - 1, 0)], seg_start)
    off = np.arange(HALF_WINDOW_STEPS)
    left = i[:, None] - HALF_WINDOW_STEPS + off  # i-5 .. i-1
    right = i[:, None] + off  # i .. i+4
    left = np.where(left >= left_floor[:, None], left, -1)
    right = np.where(right < seg_end[:, None], right, -1)
    return left, right


def _side_values(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``x`` at the side indices ``idx`` (-1: NaN), non-finite values as NaN."""
    v = np.where(idx >= 0, x[np.maximum(idx, 0)], np.nan)
    v[~np.isfinite(v)] = np.nan
    return v


def _row_medians(v: np.ndarray) -> np.ndarray:
    """Median of the finite values of each row of ``v`` (NaN = missing), exactly as ``np.median``
    of them (the mean of the two middle values for an even count); NaN for an empty row."""
    s = np.sort(v, axis=1)  # NaN last
    k = np.sum(np.isfinite(s), axis=1)
    rows = np.arange(len(s))
    hi = s[rows, np.minimum(k // 2, s.shape[1] - 1)]
    lo = s[rows, np.maximum(k // 2 - 1, 0)]
    return np.where(k == 0, np.nan, np.where(k % 2 == 1, hi, (lo + hi) / 2.0))


def _side_changes(x: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Median of ``x`` on the right side minus median on the left (finite values) at each step,
    NaN when a side has fewer than :data:`MIN_SIDE_STEPS`."""
    a, b = _side_values(x, left), _side_values(x, right)
    few = (np.sum(np.isfinite(a), axis=1) < MIN_SIDE_STEPS) | (
        np.sum(np.isfinite(b), axis=1) < MIN_SIDE_STEPS
    )
    return np.where(few, np.nan, _row_medians(b) - _row_medians(a))
