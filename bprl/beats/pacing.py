"""Pacemaker spikes in an ECG lead: detection (:func:`ecg_pacing_spikes`) and their removal before
delineation.

A pacing stimulus is recorded as a spike of a few ms, much narrower than any wave of the heart,
followed after a latency of 10-40 ms by the paced P wave or QRS complex. The wavelet scales of the
delineator (:mod:`bprl.beats.delineation`, 4 ms and more) spread a spike over ±10 ms and take it
for the start of the complex; annotators (LUDB, QTDB) mark the onset of the depolarisation after
it. Detection, on the residual of the ECG after a 12-ms running median (which passes a spike and
little else):

* a spike is a peak of the residual's magnitude at least :data:`_MIN_AMPLITUDE` x the lead's
  median QRS peak-to-peak amplitude (±60 ms around each R peak), narrow (below half its height
  2.5 ms either side, rounded up to whole samples), at least :data:`_MIN_ISOLATION` x the largest residual 6-30 ms before and after it
  (the sharp corners of a QRS leave residuals of comparable size next to each other; a spike
  stands alone), and sharp: the sample deviates from the mean of its two neighbours by at least
  :data:`_MIN_SHARPNESS` of its residual (a spike of one or two samples by 0.6-1.0 of it; the
  apex of a narrow R wave, whose residual can be as isolated, by 0.33-0.49 on LUDB);
* the lead counts as paced only when spikes are found in at least half as many places as there
  are beats; otherwise none are returned (an isolated artefact spike in an unpaced lead is left to
  the delineator's own rules).

Removal replaces ±6 ms around each spike by the running median, which keeps the baseline under it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["ecg_pacing_spikes"]

_MEDIAN_MS = 12.0  # running median that removes a spike and keeps the waves of the heart
_MAX_WIDTH_MS = 5.0  # widest spike at half its height
_RING_MS = (6.0, 30.0)  # where the residual must stay small around a spike
_MIN_ISOLATION = 8.0  # spike residual over the largest residual in the ring
_MIN_AMPLITUDE = 0.1  # spike residual over the lead's median QRS peak-to-peak amplitude
_MIN_SHARPNESS = 0.55  # the sample's deviation from its two neighbours' mean over its residual
_MIN_PER_BEAT = 0.5  # spikes per beat for a lead to count as paced
_BLANK_MS = 6.0  # half width of the stretch replaced around each spike
_MIN_FS_HZ = 200.0  # below this a QRS is a few samples and looks like a spike: no detection


def _median_width(fs_hz: float) -> int:
    """Samples of the running median: :data:`_MEDIAN_MS`, odd, at least 3."""
    return max(3, round(_MEDIAN_MS * fs_hz / 1000.0) | 1)


def _running_median(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """Running median of ``x`` over :func:`_median_width` samples, edges held."""
    return ndimage.median_filter(x, size=_median_width(fs_hz), mode="nearest")


def _qrs_amplitude(x: np.ndarray, fs_hz: float, r_idx: np.ndarray) -> float:
    """Median peak-to-peak amplitude of ``x`` within +-60 ms of (at most 200 of) the R peaks."""
    half = max(1, round(0.06 * fs_hz))
    sel = r_idx[:: max(1, len(r_idx) // 200)]
    idx = np.clip(sel[:, None] + np.arange(-half, half + 1)[None, :], 0, len(x) - 1)
    return float(np.median(np.ptp(x[idx], axis=1)))


def _spike_samples(x: np.ndarray, fs_hz: float, r_idx: np.ndarray) -> np.ndarray:
    """Sample indices of the spikes of a lead (empty unless the lead is paced; see the module).

    A cheap screen first: a spike's sample deviates from the mean of its two neighbours by at
    least :data:`_MIN_SHARPNESS` x :data:`_MIN_AMPLITUDE` x the QRS amplitude (sharpness times
    height), which a wave of the heart rarely does. The running-median tests are then computed
    for those samples only, all at once (each candidate's residual over +-30 ms from the
    medians of its own windows), so a clean hour costs a few ms.
    """
    if len(r_idx) == 0 or len(x) < 5 or fs_hz < _MIN_FS_HZ:
        return np.zeros(0, dtype=np.int64)
    qrs_amp = _qrs_amplitude(x, fs_hz, r_idx)
    if not qrs_amp > 0:
        return np.zeros(0, dtype=np.int64)
    # |x[i] - (x[i-1] + x[i+1]) / 2| for the inner samples, one whole-record temporary
    inner = np.add(x[:-2], x[2:])
    inner *= -0.5
    inner += x[1:-1]
    np.abs(inner, out=inner)
    cand = np.flatnonzero(inner >= _MIN_SHARPNESS * _MIN_AMPLITUDE * qrs_amp) + 1
    dev_at = inner[cand - 1]
    if len(cand) < _MIN_PER_BEAT * len(r_idx) or len(cand) > 20 * len(r_idx):
        return np.zeros(0, dtype=np.int64)  # too few to be paced, or noise everywhere
    g0 = max(1, round(_RING_MS[0] * fs_hz / 1000.0))
    g1 = max(g0 + 1, round(_RING_MS[1] * fs_hz / 1000.0))
    half_w = _median_width(fs_hz) // 2
    half_h = max(1, int(np.ceil(0.5 * _MAX_WIDTH_MS * fs_hz / 1000.0)))
    window = np.arange(-half_w, half_w + 1)

    def residual(at: np.ndarray) -> np.ndarray:  # |x - running median| at the samples ``at`` (any shape)
        near = x[np.clip(at[..., None] + window, 0, len(x) - 1)]
        return np.abs(x[np.clip(at, 0, len(x) - 1)] - np.partition(near, half_w, axis=-1)[..., half_w])

    # tests at the candidate itself first (height, sharpness), then the ring for the survivors
    peak = residual(cand)
    first = (peak >= _MIN_AMPLITUDE * qrs_amp) & (dev_at >= _MIN_SHARPNESS * peak)
    cand, peak = cand[first], peak[first]
    if len(cand) < _MIN_PER_BEAT * len(r_idx):
        return np.zeros(0, dtype=np.int64)
    offsets = np.arange(-g1, g1 + 1)
    mag = residual(cand[:, None] + offsets[None, :])
    ring = np.abs(offsets) >= g0
    keep = (
        (peak >= mag[:, g1 - 1])
        & (peak >= mag[:, g1 + 1])
        & (mag[:, g1 - half_h] < 0.5 * peak)
        & (mag[:, g1 + half_h] < 0.5 * peak)
        & (peak >= _MIN_ISOLATION * mag[:, ring].max(axis=1))
    )
    spikes = cand[keep]
    if len(spikes) < _MIN_PER_BEAT * len(r_idx):
        return np.zeros(0, dtype=np.int64)
    return spikes


def ecg_pacing_spikes(ecg: np.ndarray, fs_hz: float, r_times_s: np.ndarray) -> np.ndarray:
    """Times (s) of the pacemaker spikes of a paced ECG lead; empty for an unpaced lead.

    Args:
        ecg: one ECG lead, NaN-free (``bprl.beats.filters.signal_fill_nan``), any units.
        fs_hz: sampling rate; below 200 Hz nothing is returned (a QRS is then a few samples and
            a spike cannot be told from it).
        r_times_s: the lead's R-peak times in s (for its QRS amplitude and beat count).

    Returns:
        Spike times in s, sorted.

    >>> fs = 500.0
    >>> x = np.zeros(5000)
    >>> r = np.arange(0.5, 10.0, 1.0)
    >>> for t in r:  # a smooth 100-ms QRS 40 ms after a 2-ms pacing spike
    ...     i = int(t * fs)
    ...     x[i - 20 : i - 19] = 0.8
    ...     x[i - 25 : i + 25] -= np.hanning(50)
    >>> np.round(ecg_pacing_spikes(x, fs, r), 3)[:3].tolist()
    [0.46, 1.46, 2.46]
    """
    return pacing_spike_samples(np.asarray(ecg, dtype=np.float64), fs_hz, r_times_s) / fs_hz


def remove_pacing_spikes(x: np.ndarray, fs_hz: float, r_times_s: np.ndarray) -> np.ndarray:
    """``x`` with ±:data:`_BLANK_MS` around each pacing spike replaced by the running median (a
    copy; ``x`` itself when the lead is not paced)."""
    return blank_spikes(x, fs_hz, pacing_spike_samples(x, fs_hz, r_times_s))


def pacing_spike_samples(x: np.ndarray, fs_hz: float, r_times_s: np.ndarray) -> np.ndarray:
    """Sample indices of the pacing spikes of ``x`` (empty for an unpaced lead)."""
    r_idx = np.rint(np.asarray(r_times_s, dtype=np.float64) * fs_hz).astype(np.int64)
    return _spike_samples(x, fs_hz, np.clip(r_idx, 0, max(len(x) - 1, 0)))


def blank_half_width(fs_hz: float) -> int:
    """Samples blanked on either side of a spike (:data:`_BLANK_MS`)."""
    return max(1, round(_BLANK_MS * fs_hz / 1000.0))


def blank_spikes(x: np.ndarray, fs_hz: float, spikes: np.ndarray) -> np.ndarray:
    """``x`` with ±:data:`_BLANK_MS` around each of the ``spikes`` (sample indices) replaced by the
    running median (a copy; ``x`` itself when there are none)."""
    if len(spikes) == 0:
        return x
    k = blank_half_width(fs_hz)
    m = k + round(_MEDIAN_MS * fs_hz / 1000.0) + 1
    out = x.copy()
    for p in spikes.tolist():
        a, b = max(0, p - m), min(len(x), p + m + 1)
        med = _running_median(x[a:b], fs_hz)
        lo, hi = max(0, p - k), min(len(x), p + k + 1)
        out[lo:hi] = med[lo - a : hi - a]
    return out
