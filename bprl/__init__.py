"""bprl: reinforcement-learning calibration of cuffless blood-pressure estimators."""

from __future__ import annotations

#: the package version; pyproject.toml reads it from here (``bprl --version`` prints it)
__version__ = "0.1.0"


def _register_envs() -> None:
    """Register the Gymnasium ids ``bprl/BPCalibration-v1`` and ``bprl/BPCalibrationContinuous-v1``.

    Entry points are strings (nothing heavy is imported here); they are
    :data:`bprl.envs.registration.ENTRY_POINT` and ``VECTOR_ENTRY_POINT`` (see :mod:`bprl.envs`).
    """
    import gymnasium

    for env_id, action_type in (
        ("bprl/BPCalibration-v1", "discrete"),
        ("bprl/BPCalibrationContinuous-v1", "continuous"),
    ):
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="bprl.envs.calibration_env:BPCalibrationEnv",
                vector_entry_point="bprl.envs.vector_env:BPCalibrationVectorEnv",
                kwargs={"action_type": action_type},
            )


_register_envs()
