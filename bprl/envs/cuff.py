"""The oscillometric cuff: what a requested reading measures, how noisy it is and what it costs.

:class:`CuffModel` holds the settings (a :class:`bprl.config.Spec`, the ``cuff:`` block of an env
spec); :func:`cuff_reference` computes, once per replay table, the reference a reading taken at each
step would average (the environments add the seeded reading noise at run time).

>>> CuffModel(budget=6).cost
0.5
>>> CuffModel.from_any({"sd_sbp_mmhg": -1})
Traceback (most recent call last):
...
bprl.errors.ConfigError: cuff.sd_sbp_mmhg: must be a finite number >= 0, got -1
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from bprl.envs._validation import SettingsSpec
from bprl.errors import ConfigError

__all__ = ["CuffModel", "cuff_reference"]


class CuffModel(SettingsSpec):
    """Oscillometric cuff: what a requested reading returns and costs.

    A reading taken at step t averages the reference SBP/DBP over the ``duration_s`` seconds ending
    at the end of window t (rows weighted by their overlap with that interval) and adds Gaussian
    error with SD ``sd_sbp_mmhg`` / ``sd_dbp_mmhg`` (defaults 5 / 4 mmHg, typical of validated
    oscillometric devices against intra-arterial BP; ISO 81060-2 accepts an error SD up to 8 mmHg).
    The reading fails (NaN) when rows with a valid reference cover less than half of the interval;
    a failed attempt still counts against the budget and costs ``cost`` (the cuff still inflated).
    With a ``budget`` (readings per episode), requests beyond it are refused: no reading, no cost.

    During atrial fibrillation oscillometric readings are less reliable: automated devices agree
    with manual readings less well in AF, for DBP more than for SBP (meta-analysis of 12
    validations: the SD of the differences exceeded 8 mmHg in half of them; Stergiou et al., J
    Hypertens 2012;30:2074), and devices differ widely (mean differences from -3.1 to +6.1 / -4.6 to
    +9.0 mmHg; Clark et al., J Hum Hypertens 2019;33:352). A step whose replay row has an AF share
    ``a`` (the ``af_share`` column of rhythm-aware replay tables; 0 without it) reads with SD
    ``sqrt(sd**2 + a * af_sd**2)`` and fails with probability ``a * af_failure_prob``. The defaults
    (0) keep the cuff of ``bprl/BPCalibration-v1`` rhythm-blind, as it was; ``envs/rhythm.yaml``
    sets +5 / +6 mmHg in full AF (about 7.1 / 7.2 mmHg in all, the order of the meta-analyses above)
    and 5 % failures (an assumption: no pooled figure was found).

    With ``budget_per_h`` the budget is paced: readings accrue at that rate, ``budget_start`` of them
    available at the episode's start, so that after ``h`` hours at most
    ``floor(budget_start + budget_per_h * h)`` requests can have been charged (a token bucket that
    never overflows: readings not used stay available). A request beyond that is refused like one
    beyond ``budget``; both limits apply when both are set. A policy cannot spend a whole
    subject's readings in the first hour, and readings saved for later stay available.

    :meth:`from_any` (what the environments use) raises :class:`~bprl.errors.ConfigError` naming
    the field (``cuff.budget: ...``) for invalid values.
    """

    error_prefix: ClassVar[str] = "cuff."

    duration_s: float = Field(
        45.0, gt=0, allow_inf_nan=False, strict=True, description="measurement duration, s"
    )
    sd_sbp_mmhg: float = Field(
        5.0, ge=0, allow_inf_nan=False, strict=True, description="SD of the SBP reading error, mmHg"
    )
    sd_dbp_mmhg: float = Field(
        4.0, ge=0, allow_inf_nan=False, strict=True, description="SD of the DBP reading error, mmHg"
    )
    cost: float = Field(
        0.5, ge=0, allow_inf_nan=False, strict=True, description="reward subtracted per charged request"
    )
    budget: int | None = Field(
        None, ge=0, strict=True, description="hard limit on charged requests per episode; null: unlimited"
    )
    budget_per_h: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        strict=True,
        description="paced budget: readings accrue at this rate per hour; null: no pacing",
    )
    budget_start: int = Field(
        1, ge=0, strict=True, description="readings available at the episode start with budget_per_h"
    )

    af_sd_sbp_mmhg: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        strict=True,
        description="extra SBP error SD in atrial fibrillation, mmHg",
    )
    af_sd_dbp_mmhg: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        strict=True,
        description="extra DBP error SD in atrial fibrillation, mmHg",
    )
    af_failure_prob: float = Field(
        0.0,
        ge=0,
        le=1,
        allow_inf_nan=False,
        strict=True,
        description="probability that a reading fails in atrial fibrillation (scaled by the step's AF share)",
    )

    def reading_sd(self, af_share: np.ndarray) -> np.ndarray:
        """Reading-error SD (SBP, DBP) of steps with AF shares ``af_share``: shape ``(..., 2)``, mmHg.

        >>> CuffModel(af_sd_sbp_mmhg=5.0, af_sd_dbp_mmhg=6.0).reading_sd(np.array([0.0, 1.0])).round(2).tolist()
        [[5.0, 4.0], [7.07, 7.21]]
        """
        a = np.clip(np.nan_to_num(np.asarray(af_share, np.float64)), 0.0, 1.0)
        sbp = np.sqrt(self.sd_sbp_mmhg**2 + a * self.af_sd_sbp_mmhg**2)
        dbp = np.sqrt(self.sd_dbp_mmhg**2 + a * self.af_sd_dbp_mmhg**2)
        return np.stack([sbp, dbp], axis=-1)

    def failure_prob(self, af_share: np.ndarray) -> np.ndarray:
        """Probability that a reading fails at steps with AF shares ``af_share`` (beyond a missing reference)."""
        a = np.clip(np.nan_to_num(np.asarray(af_share, np.float64)), 0.0, 1.0)
        return a * self.af_failure_prob

    def available(self, used: int, elapsed_h: float) -> float:
        """Readings a request could use after ``used`` charged ones, ``elapsed_h`` hours into the episode.

        ``min(budget - used, floor(budget_start + budget_per_h * elapsed_h) - used)``, at least 0;
        ``inf`` when neither limit is set. The environments use exactly this arithmetic.

        >>> CuffModel(budget_per_h=2.0).available(used=1, elapsed_h=0.6)
        1.0
        >>> CuffModel(budget=3).available(used=3, elapsed_h=5.0)
        0.0
        """
        left = math.inf if self.budget is None else float(self.budget - used)
        if self.budget_per_h is not None:
            left = min(left, float(math.floor(self.budget_start + self.budget_per_h * elapsed_h) - used))
        return max(left, 0.0)

    @classmethod
    def from_any(cls, value: CuffModel | Mapping[str, Any] | None) -> CuffModel:
        """A CuffModel from an instance, a mapping of its fields, or None (defaults).

        Raises:
            ConfigError: not a mapping, an unknown field or an invalid value (naming the field).
        """
        if value is None:
            return cls()
        if isinstance(value, CuffModel):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"cuff: expected a mapping of cuff settings, got {type(value).__name__}")
        return cls.checked(**{str(k): v for k, v in value.items()})


def cuff_reference(ref: np.ndarray, t0: np.ndarray, t1: np.ndarray, duration_s: float) -> np.ndarray:
    """Overlap-weighted mean reference over ``[t1[t] - duration_s, t1[t]]`` for every step t of one subject.

    Args:
        ref: (T, 2) reference SBP/DBP per replay row, mmHg (NaN where none).
        t0: (T,) window start times, s.
        t1: (T,) window end times, s.
        duration_s: the cuff's measurement duration, s.

    Returns:
        (T, 2) the reference a reading at each step measures, NaN where rows with a valid reference
        cover less than half of the interval (the reading fails).
    """
    n = len(t1)
    out = np.full((n, 2), np.nan)
    if n == 0:
        return out
    lo = t1 - duration_s
    cover = np.zeros(n)
    valid_w = np.zeros(n)
    acc = np.zeros((n, 2))
    finite = np.isfinite(ref).all(axis=1)
    for k in range(n):  # lag k: row t-k against the interval of row t; stops when no row overlaps
        idx = np.arange(k, n)
        j = idx - k
        ov = np.clip(np.minimum(t1[j], t1[idx]) - np.maximum(t0[j], lo[idx]), 0.0, None)
        if not ov.any():
            if k > 0:
                break
            continue
        cover[idx] += ov
        w = np.where(finite[j], ov, 0.0)
        valid_w[idx] += w
        acc[idx] += w[:, None] * np.where(finite[j, None], ref[j], 0.0)
    ok = (cover > 0) & (valid_w >= 0.5 * cover) & (valid_w > 0)
    out[ok] = acc[ok] / valid_w[ok, None]
    return out
