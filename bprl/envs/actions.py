"""The action vocabulary of the calibration environments: discrete codes and continuous components.

Both environments (:class:`bprl.envs.calibration_env.BPCalibrationEnv` and the batched
:class:`bprl.envs.vector_env.BPCalibrationVectorEnv`) and the calibrators read these tables, so
that an action index means the same thing everywhere.

>>> DISCRETE_ACTIONS.index("cuff")
1
>>> CONTINUOUS_ACTIONS[-1]
'cuff'
"""

from __future__ import annotations

__all__ = ["ACTION_TYPES", "CONTINUOUS_ACTIONS", "DISCRETE_ACTIONS"]

#: discrete actions: index -> meaning
DISCRETE_ACTIONS: tuple[str, ...] = (
    "hold",
    "cuff",  # request a cuff reading and recalibrate the offsets to it
    "sbp_up",  # offset_sbp += nudge_mmhg
    "sbp_down",
    "dbp_up",  # offset_dbp += nudge_mmhg
    "dbp_down",
)
#: continuous action components, each in [-1, 1]
CONTINUOUS_ACTIONS: tuple[str, ...] = ("d_offset_sbp", "d_offset_dbp", "d_gain_sbp", "d_gain_dbp", "cuff")
#: ``action_type`` values: ``discrete`` (``Discrete(6)``, for DQN) or ``continuous`` (``Box(-1, 1, (5,))``)
ACTION_TYPES: tuple[str, ...] = ("discrete", "continuous")
