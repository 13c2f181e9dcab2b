"""Private vectorised array helpers shared by the beat detectors (ECG, PPG, ABP, quality).

Index ranges without loops, NaN runs, parabolic sub-sample vertices, beat-aligned windows
over an edge-padded signal (:class:`_Windows`), per-segment reductions and a running
quantile over a point sequence. Nothing here is public API: the functions work on sample
indices and raw arrays, and their callers own the units.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


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


def _rolling_quantile_of_points(
    t: np.ndarray, v: np.ndarray, half_window_s: float, q: float, mode: str = "nearest"
) -> np.ndarray:
    """For each point ``t[i]``, about the ``q`` quantile of ``v`` over the points within ``+-half_window_s``.

    Computed with a running percentile filter over the point sequence whose length is the
    number of points expected in the window at the mean point rate (linear cost, C speed);
    ``mode`` is the filter's edge mode (``"mirror"`` keeps a low quantile from being the
    first point's value repeated when the window reaches past a short record's ends).
    """
    if len(t) == 0:
        return np.zeros(0)
    span = max(float(t[-1] - t[0]), 1e-9)
    rate = len(t) / span
    size = max(3, 2 * round(half_window_s * rate) + 1)
    size = min(size, 2 * (len(t) // 2) + 1 if len(t) > 2 else 1)
    return ndimage.percentile_filter(np.asarray(v, dtype=np.float64), 100.0 * q, size=size, mode=mode)


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


def _window_extreme_at(ufunc: np.ufunc, y: np.ndarray, idx: np.ndarray, size: int) -> np.ndarray:
    """``ndimage.maximum_filter1d(y, size)[idx]`` (``ufunc`` ``np.maximum``; ``np.minimum`` for the
    minimum filter) at the samples ``idx`` only: ``ufunc`` over ``y[i - size // 2 : i - size // 2 + size]``
    clipped to the signal (the filters' default ``reflect`` edges add no other values), by one
    ``reduceat``; the whole-signal filter when the windows would cover more than twice the signal."""
    if len(idx) * size > 2 * len(y):
        filt = ndimage.maximum_filter1d if ufunc is np.maximum else ndimage.minimum_filter1d
        return filt(y, size)[idx]
    lo = idx - size // 2
    return _segment_reduce(ufunc, y, lo, lo + size)
