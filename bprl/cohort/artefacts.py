"""Noise and artefact episodes of the virtual cohort: band-limited noise, Poisson episodes, masks.

Artefacts (motion, dropouts, low perfusion, line flushes, zeroing, damping) are Poisson
episodes of log-uniform duration (:func:`artefact_segments`); they enter a waveform through a
sample mask (:func:`segments_mask`) or a ramped 0..1 envelope (:func:`segments_envelope`), and
the beats they touch are flagged with :func:`interval_touched`.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

__all__ = ["artefact_segments", "interval_touched", "noise_band", "segments_envelope", "segments_mask"]


def noise_band(
    rng: np.random.Generator, n: int, fs_hz: float, lo_hz: float | None, hi_hz: float, sd: float
) -> np.ndarray:
    """Gaussian noise band-limited to [lo_hz, hi_hz] (4th-order Butterworth), scaled to SD ``sd``."""
    hi = min(hi_hz, 0.45 * fs_hz)
    warm = int(max(4.0, 3.0 / (lo_hz or hi)) * fs_hz)  # let the filter settle before the kept part
    w = rng.standard_normal(n + warm)
    if lo_hz:
        sos = signal.butter(2, [lo_hz, hi], btype="bandpass", fs=fs_hz, output="sos")
    else:
        sos = signal.butter(2, hi, btype="lowpass", fs=fs_hz, output="sos")
    y = signal.sosfilt(sos, w)[warm:]
    s = float(np.std(y))
    return y * (sd / s) if s > 0 else y


def artefact_segments(
    rng: np.random.Generator, rate_per_h: float, duration_s: float, min_s: float, max_s: float
) -> np.ndarray:
    """Poisson artefact episodes: array of shape (n, 2) with (start_s, end_s), log-uniform durations, sorted."""
    n = int(rng.poisson(max(rate_per_h, 0.0) * duration_s / 3600.0))
    start = np.sort(rng.uniform(0.0, duration_s, n))
    dur = np.exp(rng.uniform(np.log(min_s), np.log(max_s), n))
    return np.column_stack([start, np.minimum(start + dur, duration_s)]) if n else np.zeros((0, 2))


def segments_mask(segments: np.ndarray, n_samples: int, fs_hz: float) -> np.ndarray:
    """Boolean sample mask that is True inside any of ``segments`` (start_s, end_s)."""
    d = np.zeros(n_samples + 1, np.int64)
    if len(segments):
        i0 = np.clip(np.floor(segments[:, 0] * fs_hz).astype(np.int64), 0, n_samples)
        i1 = np.clip(np.ceil(segments[:, 1] * fs_hz).astype(np.int64), 0, n_samples)
        np.add.at(d, i0, 1)
        np.add.at(d, i1, -1)
    return np.cumsum(d[:-1]) > 0


def segments_envelope(segments: np.ndarray, n_samples: int, fs_hz: float, ramp_s: float) -> np.ndarray:
    """0..1 envelope that is 1 inside ``segments`` with linear ramps of ``ramp_s`` at both ends."""
    t = np.arange(n_samples) / fs_hz
    env = np.zeros(n_samples)
    for a, b in segments:  # few episodes per hour
        i0, i1 = max(0, int((a - ramp_s) * fs_hz)), min(n_samples, int((b + ramp_s) * fs_hz) + 1)
        tt = t[i0:i1]
        env[i0:i1] = np.maximum(
            env[i0:i1], np.clip(np.minimum(tt - a + ramp_s, b + ramp_s - tt) / ramp_s, 0.0, 1.0)
        )
    return env


def interval_touched(mask: np.ndarray, fs_hz: float, start_s: np.ndarray, end_s: np.ndarray) -> np.ndarray:
    """Per interval [start_s, end_s): whether any sample of ``mask`` inside it is True (cumulative sums)."""
    cs = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    n = len(mask)
    i0 = np.clip(np.floor(start_s * fs_hz).astype(np.int64), 0, n)
    i1 = np.clip(np.ceil(end_s * fs_hz).astype(np.int64) + 1, 0, n)
    return (cs[np.maximum(i1, i0)] - cs[i0]) > 0
