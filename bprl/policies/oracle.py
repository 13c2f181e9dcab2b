"""The oracle: an UPPER BOUND on what calibration can reach, never a baseline.

:class:`OracleCalibrator` is the only policy that reads privileged data: the reference BP of the
current window, from the one environment it is explicitly bound to with ``bind(env)``. Report it
as the ceiling of a comparison, not as a competitor; no other policy sees the reference.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from bprl.envs import BPCalibrationEnv
from bprl.errors import ConfigError
from bprl.policies.base import Calibrator

__all__ = ["OracleCalibrator"]


class OracleCalibrator(Calibrator):
    """UPPER BOUND, not a baseline: steers the offset to the true reference of the current window.

    The only policy that reads privileged data: it must be bound to the (single) environment it
    acts in with ``bind(env)`` (``rollout`` does this), and reads the current window's reference
    through :meth:`bprl.env.BPCalibrationEnv.reference_now`. It never requests a cuff. With the
    continuous action it reaches the exact offset when the bias jumps by at most
    ``max_offset_step_mmhg`` per step; with the discrete action it can only nudge (coarse).
    """

    name = "oracle"
    needs_cuff = False
    paced = False

    def __init__(self, **kw: Any) -> None:
        """See class docstring; call :meth:`bind` before predicting."""
        super().__init__(**kw)
        self._env: BPCalibrationEnv | None = None

    def bind(self, env: gym.Env) -> OracleCalibrator:
        """Attach to the environment whose reference the oracle may read (returns self)."""
        base = env.unwrapped
        if not isinstance(base, BPCalibrationEnv):
            raise ConfigError(f"oracle: can only bind a BPCalibrationEnv, got {type(base).__name__}")
        self._env = base
        return self

    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Wanted offset = reference - gain * estimate (keep the offset where there is no reference)."""
        if self._env is None:
            raise ConfigError("oracle: call bind(env) before predict (it reads the env's reference)")
        n = s["has_cuff"].shape[0]
        if n != 1:
            raise ConfigError("oracle: predicts for one bound environment at a time")
        ref_s, ref_d, est_s, est_d = self._env.reference_now()
        cur = np.array([[s["offset_sbp"][0], s["offset_dbp"][0]]])
        want = cur.copy()
        if not math.isnan(ref_s):
            want[0, 0] = ref_s - s["gain_sbp"][0] * est_s
        if not math.isnan(ref_d):
            want[0, 1] = ref_d - s["gain_dbp"][0] * est_d
        return np.zeros(1, bool), want
