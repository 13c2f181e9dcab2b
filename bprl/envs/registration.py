"""Gymnasium ids of the calibration environments and their registration.

``import bprl`` registers both ids (with entry-point strings, so nothing heavy is imported);
:func:`register_envs` does the same explicitly and is idempotent. A variant with different
semantics gets a new versioned id (``bprl/BPCalibration-v2``), registered with
:func:`register_variant`; a variant that only changes settings is an ``envs/*.yaml`` spec instead
(``docs/how-to/add-env-variant.md``).

>>> import gymnasium
>>> gymnasium.spec(ENV_ID).entry_point == ENTRY_POINT
True
"""

from __future__ import annotations

from typing import Any

import gymnasium

__all__ = [
    "ENTRY_POINT",
    "ENV_ID",
    "ENV_IDS",
    "ENV_ID_CONTINUOUS",
    "VECTOR_ENTRY_POINT",
    "register_envs",
    "register_variant",
]

ENV_ID = "bprl/BPCalibration-v1"
ENV_ID_CONTINUOUS = "bprl/BPCalibrationContinuous-v1"
#: registered id -> action type
ENV_IDS: dict[str, str] = {ENV_ID: "discrete", ENV_ID_CONTINUOUS: "continuous"}
#: where Gymnasium finds the environments (also written in bprl/__init__.py, which must stay light)
ENTRY_POINT = "bprl.envs.calibration_env:BPCalibrationEnv"
VECTOR_ENTRY_POINT = "bprl.envs.vector_env:BPCalibrationVectorEnv"


def register_envs() -> None:
    """Register ``bprl/BPCalibration-v1`` and ``bprl/BPCalibrationContinuous-v1`` (idempotent).

    ``import bprl`` already does this; entry points are strings, so it stays light.
    """
    for env_id, action_type in ENV_IDS.items():
        register_variant(env_id, action_type=action_type)


def register_variant(env_id: str, **kwargs: Any) -> None:
    """Register ``env_id`` for the calibration environments with default keyword arguments (idempotent).

    Args:
        env_id: a versioned Gymnasium id, ``"namespace/Name-vN"``.
        **kwargs: default arguments of :class:`~bprl.envs.calibration_env.BPCalibrationEnv` (and of
            the vector environment) under this id, e.g. ``action_type="continuous", reward="squared"``;
            ``gymnasium.make(env_id, **more)`` overrides them.
    """
    if env_id not in gymnasium.registry:
        gymnasium.register(
            id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT, kwargs=dict(kwargs)
        )
