"""Per-beat signal quality (SQI): correlation of each beat with a running median template.

Used for both ECG (around R peaks) and PPG (around max-slope points). :func:`beat_sqi` is the
public entry point; :func:`_beat_sqi_filled` is the same on a signal already NaN-filled by
:func:`bprl.beats.filters.signal_fill_nan`.
"""

from __future__ import annotations

import numpy as np

from bprl.beats._arrays import _segment_count
from bprl.beats.filters import signal_fill_nan

__all__ = ["beat_sqi"]


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

    Args:
        x: 1-D samples (any units); NaN marks invalid samples.
        fs_hz: sampling rate in Hz.
        times_s: beat times in s from the start of the signal (NaN = no beat).
        before_s: length of the beat segment before each beat time, in s.
        after_s: length of the beat segment after each beat time, in s.
        n_template: number of consecutive beats whose median is the template.

    Returns:
        One quality value in 0..1 per beat time; NaN for NaN times, or for every beat when fewer
        than 3 times are finite; 0 for beats whose segment leaves the signal or touches NaN.
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
    seg = _beat_segments(filled, start, a + b, step)
    tmpl = _running_template(seg, n_template)
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


def _beat_segments(filled: np.ndarray, start: np.ndarray, width: int, step: int) -> np.ndarray:
    """Mean-removed float32 beat segments: ``width`` samples from each ``start`` (edge values repeated
    outside the signal), every ``step``-th sample; rows of a strided window view (no index matrix)."""
    n = len(filled)
    pad = width + 1
    xp = np.concatenate([np.repeat(filled[:1], pad), filled, np.repeat(filled[-1:], pad)])
    view = np.lib.stride_tricks.sliding_window_view(xp, width)[:, ::step]
    seg = view[np.clip(start, -pad, n) + pad].astype(np.float32)
    seg -= seg.mean(axis=1, keepdims=True)
    return seg


def _running_template(seg: np.ndarray, n_template: int) -> np.ndarray:
    """Template of each beat (row of ``seg``): the sample-wise median of its block of ``n_template``
    consecutive beats (one median pass); the last, partial block borrows the preceding beats."""
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
    return np.concatenate(parts)
