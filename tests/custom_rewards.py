"""Reward functions for tests/test_env_rewards.py, importable as ``custom_rewards`` (pytest puts
tests/ on ``sys.path``): the ``module:function`` form of a spec's ``reward``."""

from __future__ import annotations

from typing import Any

import numpy as np


def huber(err_sbp_mmhg: Any, err_dbp_mmhg: Any, params: Any) -> Any:
    """Minus a Huber penalty (knee at ``aami_band_mmhg``) per component, / ``reward_scale_mmhg``.

    Element-wise numpy operations only, so it works on floats and on arrays alike.
    """
    knee = params.aami_band_mmhg
    total = 0.0
    for err in (err_sbp_mmhg, err_dbp_mmhg):
        a = np.abs(np.nan_to_num(err, nan=0.0))  # no reference: no penalty
        total = total - np.where(a <= knee, 0.5 * a * a / knee, a - 0.5 * knee)
    return total / params.reward_scale_mmhg


def sbp_only(err_sbp_mmhg: Any, err_dbp_mmhg: Any, params: Any) -> Any:
    """Minus |SBP error| only (DBP ignored)."""
    return -np.abs(np.nan_to_num(err_sbp_mmhg, nan=0.0))


def not_finite(err_sbp_mmhg: Any, err_dbp_mmhg: Any, params: Any) -> Any:
    """A broken reward: NaN wherever there is no SBP reference."""
    return -np.abs(err_sbp_mmhg)


NOT_A_FUNCTION = 3.0
