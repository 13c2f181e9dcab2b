"""Plausibility of decoded signals: is a channel a sampled waveform, saturated, in range?

A record whose header does not describe its signal files (wrong format, wrong gain) can
decode to numbers that are not a waveform. :func:`channel_problems` applies the rules
below to one decoded ECG, PPG or ABP channel (thresholds documented in
``docs/guide/records.md``); :func:`with_problems` attaches the findings to the
channels of a record (``Channel.problems``), so that
:func:`bprl.sources.roles.order_channels` demotes them and readers report them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from bprl.sources.record import Channel

#: roles whose channels are checked for plausibility (respiration is often clipped on purpose)
CHECKED_ROLES: tuple[str, ...] = ("ecg", "ppg", "abp")
#: a channel whose lag-1 autocorrelation is below this looks like white noise, not a sampled
#: waveform. Real ECG/PPG/ABP at 62-500 Hz: >= 0.52 (noisiest: Challenge 2015 v102s lead V);
#: 16-bit data decoded as format 212: <= 0.11.
NOISE_AC1_MIN: float = 0.3
#: plausible arterial pressure (mmHg); an ABP channel with more than ABP_OUTSIDE_MAX_SHARE of
#: its samples outside is implausible (real records: <= 0.24, on the bad ABP of s25047 3234460_0017)
ABP_RANGE_MMHG: tuple[float, float] = (-50.0, 350.0)
ABP_OUTSIDE_MAX_SHARE: float = 0.5
#: a channel with more than this share of its samples at its minimum or maximum value is
#: saturated / clipped (real ECG/PPG/ABP: <= 0.22)
SATURATED_MAX_SHARE: float = 0.5
#: channels with fewer finite samples are not judged
MIN_CHECK_SAMPLES: int = 50
#: longer channels are judged on CHECK_BLOCKS evenly spaced contiguous blocks of this total
#: length (the rules are shares and a correlation: a large sample estimates them well)
CHECK_SAMPLES_MAX: int = 2**20
CHECK_BLOCKS: int = 16


def _excerpt(x: np.ndarray) -> np.ndarray:
    """``x``, or :data:`CHECK_BLOCKS` evenly spaced contiguous blocks of it when it is long."""
    if len(x) <= CHECK_SAMPLES_MAX:
        return x
    width = CHECK_SAMPLES_MAX // CHECK_BLOCKS
    starts = np.linspace(0, len(x) - width, CHECK_BLOCKS).astype(np.int64)
    return np.concatenate([x[a : a + width] for a in starts])


def _lag1_autocorrelation(x: np.ndarray) -> float:
    """Lag-1 autocorrelation over consecutive finite pairs (NaN when undefined)."""
    finite = np.isfinite(x)
    all_finite = bool(finite.all())
    n = len(x) if all_finite else int(finite.sum())
    if n < MIN_CHECK_SAMPLES:
        return float("nan")
    xc = np.array(x, dtype=np.float64)  # a copy: centred in place
    xc -= float(xc.mean() if all_finite else xc[finite].mean())
    if not all_finite:
        xc[~finite] = 0.0  # NaN samples drop out of both sums
    n_pairs = n - 1 if all_finite else int(np.count_nonzero(finite[:-1] & finite[1:]))
    var = float(np.dot(xc, xc)) / n
    if var <= 0.0 or n_pairs < MIN_CHECK_SAMPLES:
        return float("nan")
    return float(np.dot(xc[:-1], xc[1:])) / n_pairs / var


def channel_problems(name: str, role: str | None, units: str, samples: np.ndarray, where: str) -> list[str]:
    """Plausibility problems of one decoded channel (empty list: plausible, or not judged).

    Rules (ECG, PPG and ABP channels; channels that are entirely NaN or constant are
    left to the flat-lead demotion of :func:`bprl.sources.roles.order_channels`):

    - noise: lag-1 autocorrelation below :data:`NOISE_AC1_MIN` (0.3). A sampled ECG, PPG
      or ABP changes little from one sample to the next; data decoded with the wrong
      format (e.g. format-16 bytes read as format 212) is white noise.
    - saturated: more than :data:`SATURATED_MAX_SHARE` (50 %) of the samples sit at the
      channel's minimum or maximum value.
    - ABP range: more than :data:`ABP_OUTSIDE_MAX_SHARE` (50 %) of the samples outside
      :data:`ABP_RANGE_MMHG` (-50..350 mmHg).

    Channels longer than :data:`CHECK_SAMPLES_MAX` samples (about 70 min at 250 Hz) are
    judged on 16 evenly spaced contiguous blocks of that total length. Each message
    names ``where`` (the file), the channel and the numbers.

    Args:
        name: channel name.
        role: channel role (only ``"ecg"``, ``"ppg"`` and ``"abp"`` are judged).
        units: physical units of the samples (named in messages).
        samples: decoded physical samples (NaN: invalid).
        where: the file the channel was read from.

    Returns:
        One message per problem found.
    """
    if role not in CHECKED_ROLES:
        return []
    x = _excerpt(np.asarray(samples))
    finite = x[np.isfinite(x)]
    if finite.size < MIN_CHECK_SAMPLES:
        return []
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo <= 1e-9 * max(1.0, abs(hi)):
        return []
    out: list[str] = []
    label = f"{where}: channel {name!r} ({role})"
    ac1 = _lag1_autocorrelation(x)
    if np.isfinite(ac1) and ac1 < NOISE_AC1_MIN:
        out.append(
            f"{label} looks like noise, not a sampled waveform (lag-1 autocorrelation {ac1:.2f} "
            f"< {NOISE_AC1_MIN}): wrong signal format, sample layout or file in the header?"
        )
    at_ext = float(np.mean((finite == lo) | (finite == hi)))
    if at_ext > SATURATED_MAX_SHARE:
        out.append(
            f"{label} is saturated: {100 * at_ext:.0f} % of its samples sit at its minimum "
            f"{lo:.4g} or maximum {hi:.4g} {units}"
        )
    if role == "abp":
        a, b = ABP_RANGE_MMHG
        outside = float(np.mean((finite < a) | (finite > b)))
        if outside > ABP_OUTSIDE_MAX_SHARE:
            out.append(
                f"{label}: {100 * outside:.0f} % of its samples lie outside {a:g}..{b:g} mmHg "
                f"(units {units or '-'}; p50 {float(np.median(finite)):.4g}): wrong gain, units or format?"
            )
    return out


def with_problems(chans: list[Channel], where: Path) -> list[Channel]:
    """Channels with their plausibility problems filled in (:func:`channel_problems`).

    Args:
        chans: decoded channels of one record.
        where: the file they were read from (named in each message).

    Returns:
        The channels; those with problems are copies carrying them in ``problems``.
    """
    out = []
    for c in chans:
        found = channel_problems(c.name, c.role, c.units, c.samples, str(where))
        out.append(replace(c, problems=tuple(found)) if found else c)
    return out
