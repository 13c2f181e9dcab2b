"""Pulse-wave model of the virtual cohort (PPG and ABP): template, synthesis and its foot.

A beat runs from its *start* (the pre-upstroke minimum) to the next beat's start. The
upstroke is a raised cosine of duration ``rise_s``; the decay is the cubic Hermite
``(1-v)^2 (1+2v)`` plus a dicrotic wave, reaching the next beat's diastolic level with zero
slope. Hence the minimum before the upstroke is the start itself, the maximum is the end of
the upstroke, and the intersecting-tangents foot lies :func:`pulse_tangent_offset_s` after
the start. Whole pulse trains are evaluated in one vectorised pass.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["pulse_decay", "pulse_synthesize", "pulse_tangent_offset_s", "tangent_foot_s"]


def pulse_tangent_offset_s(rise_s: np.ndarray | float) -> np.ndarray | float:
    """Intersecting-tangents foot of the raised-cosine upstroke, measured from the pulse start.

    The upstroke ``0.5 (1 - cos(pi tau / T))`` has its steepest slope ``pi / (2 T)`` at
    ``tau = T/2`` (value 0.5); that tangent meets the horizontal tangent at the minimum
    (value 0 at ``tau = 0``) at ``tau = T (1/2 - 1/pi)``.
    """
    return rise_s * (0.5 - 1.0 / math.pi)


def pulse_decay(v: np.ndarray, dicrotic: np.ndarray | float, notch: np.ndarray | float) -> np.ndarray:
    """Decay shape from 1 (``v = 0``, systolic peak) to 0 (``v = 1``, next start), zero slope at both ends.

    Cubic Hermite ``H(u) = (1-u)^2 (1+2u)`` of the warped phase ``u = v^0.75`` (a faster
    fall after the peak, as in real pulses) plus a reflected (dicrotic) wave of relative
    size ``dicrotic`` centred at ``notch`` (fraction of the decay), windowed by
    ``16 v^2 (1-v)^2`` so both ends stay flat. Stays within [0, 1] for ``dicrotic <= 0.35``
    and ``notch >= 0.15``.
    """
    u = v**0.75
    base = (1.0 - u) ** 2 * (1.0 + 2.0 * u)
    win = 16.0 * v * v * (1.0 - v) ** 2
    return base + dicrotic * win * np.exp(-0.5 * ((v - notch) / 0.09) ** 2)


def pulse_synthesize(
    starts_s: np.ndarray,
    rise_s: np.ndarray,
    low: np.ndarray,
    peak: np.ndarray,
    n_samples: int,
    fs_hz: float,
    dicrotic: np.ndarray | float,
    notch: np.ndarray | float,
    end_low: float | None = None,
) -> np.ndarray:
    """Noiseless pulse train: beat ``k`` rises from ``low[k]`` at ``starts_s[k]`` to ``peak[k]`` and decays to ``low[k+1]``.

    Each sample finds its beat with ``searchsorted`` and evaluates the template there
    (phase-variable interpolation, no per-beat loop). Samples before the first start hold
    ``low[0]``; the last beat decays to ``end_low`` (default ``low[-1]``) over one median beat.
    ``notch`` (per beat or one value) places the reflected wave and ``dicrotic`` (per beat or
    one value) sizes it, see :func:`pulse_decay`.
    """
    t = np.arange(n_samples) / fs_hz
    k = np.searchsorted(starts_s, t, side="right") - 1
    nxt_start = np.append(
        starts_s[1:], starts_s[-1] + np.median(np.diff(starts_s)) if len(starts_s) > 1 else starts_s[-1] + 1.0
    )
    nxt_low = np.append(low[1:], low[-1] if end_low is None else end_low)
    out = np.full(n_samples, float(low[0]))
    m = k >= 0
    kk = k[m]
    tau = t[m] - starts_s[kk]
    rise = rise_s[kk]
    up = tau < rise
    x = np.empty(len(kk))
    x[up] = low[kk[up]] + (peak[kk[up]] - low[kk[up]]) * 0.5 * (1.0 - np.cos(np.pi * tau[up] / rise[up]))
    dn = ~up
    kd = kk[dn]
    v = np.clip((tau[dn] - rise[dn]) / (nxt_start[kd] - starts_s[kd] - rise[dn]), 0.0, 1.0)
    notch_k = notch[kd] if np.ndim(notch) else notch
    dicrotic_k = dicrotic[kd] if np.ndim(dicrotic) else dicrotic
    x[dn] = nxt_low[kd] + (peak[kd] - nxt_low[kd]) * pulse_decay(v, dicrotic_k, notch_k)
    out[m] = x
    return out


def tangent_foot_s(t_s: np.ndarray, x: np.ndarray) -> float:
    """Intersecting-tangents foot of one sampled upstroke (for checks): min level vs. steepest tangent."""
    i_min = int(np.argmin(x[: int(np.argmax(x)) + 1]))
    slope = np.gradient(x, t_s)
    i_ms = i_min + int(np.argmax(slope[i_min:]))
    return float(t_s[i_ms] - (x[i_ms] - x[i_min]) / slope[i_ms])
