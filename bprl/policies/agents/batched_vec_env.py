"""An SB3 ``VecEnv`` over the batched calibration environment: every training env in one numpy step.

stable-baselines3 steps a ``DummyVecEnv`` of single environments one after the other, in Python;
:class:`BatchedVecEnv` steps :class:`bprl.envs.BPCalibrationVectorEnv` instead, which advances all
sub-environments with a fixed number of numpy calls (millions of subject-steps per second, see
``python -m benchmarks env``). It translates between the two autoreset conventions: Gymnasium's
vector env resets a truncated sub-environment on its *next* step, SB3 expects the reset in the
*same* step with the last observation in ``infos[i]["terminal_observation"]``; so after a step in
which some sub-environments ended, exactly those are reset at once (``reset_mask``), as a
``DummyVecEnv`` would. Sub-environment ``i`` is seeded with ``seed + i`` (``VecEnv.seed``), as in
``DummyVecEnv``, and draws its episodes from its own generator, so the episodes equal those of a
``DummyVecEnv`` of single environments for the same seeds and actions (tested).

Episode statistics for SB3's logger come from ``VecMonitor`` (:func:`batched_vec_env` wraps it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from bprl.envs import BPCalibrationEnv, BPCalibrationVectorEnv
from bprl.errors import ConfigError

__all__ = ["BatchedVecEnv", "batched_vec_env"]


class BatchedVecEnv(VecEnv):
    """SB3 ``VecEnv`` stepping a :class:`~bprl.envs.BPCalibrationVectorEnv` (see the module docstring).

    Args:
        venv: the batched environment; its ``num_envs`` sub-environments are this VecEnv's envs.
    """

    def __init__(self, venv: BPCalibrationVectorEnv) -> None:
        """Wrap ``venv``."""
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        """Reset every sub-environment (with the seeds of :meth:`seed`, once)."""
        seeds = None
        if any(s is not None for s in self._seeds):
            seeds = [None if s is None else int(s) for s in self._seeds]
        obs, _ = self.venv.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions of the next :meth:`step_wait`."""
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """One batched step; sub-environments that ended are reset in the same step (SB3 convention)."""
        obs, reward, terminated, truncated, _ = self.venv.step(self._actions)
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done.any():
            ended = np.flatnonzero(done)
            for i in ended:
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            fresh, _ = self.venv.reset(options={"reset_mask": done})
            obs = obs.copy()
            obs[ended] = fresh[ended]
        return obs, reward.astype(np.float32), done, infos

    def close(self) -> None:
        """Close the batched environment."""
        self.venv.close()

    # -- the rest of the VecEnv interface: one shared environment behind every index
    def _indices(self, indices: Any) -> Sequence[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """The batched env's attribute ``attr_name``, once per index (the settings are shared)."""
        value = getattr(self.venv, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set an attribute of the batched env (shared by every index)."""
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        """Not available: the sub-environments are columns of one array environment."""
        raise ConfigError(
            f"BatchedVecEnv: env_method({method_name!r}) needs single environments (vec_env: dummy)"
        )

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        """No sub-environment is wrapped."""
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """No rendering."""
        return [None for _ in range(self.num_envs)]


def batched_vec_env(template: gym.Env, n_envs: int) -> VecEnv:
    """``n_envs`` sub-environments with ``template``'s data and settings, as a monitored SB3 VecEnv.

    Args:
        template: a bprl calibration environment (as the env spec builds it; only Gymnasium's own
            checker and order wrappers may wrap it, since the batched env cannot reproduce others).
        n_envs: number of sub-environments.

    Raises:
        ConfigError: ``template`` is not a bprl calibration env, or is wrapped by something else.
    """
    base = template.unwrapped
    if not isinstance(base, BPCalibrationEnv):
        raise ConfigError(f"vec_env batched: needs a bprl calibration env, got {type(base).__name__}")
    env: gym.Env = template
    while isinstance(env, gym.Wrapper):
        name = type(env).__name__
        if name not in ("OrderEnforcing", "PassiveEnvChecker", "TimeLimit") or (
            name == "TimeLimit" and env.spec is not None and env.spec.max_episode_steps is not None
        ):
            raise ConfigError(
                f"vec_env batched: the env is wrapped by {name}, which the batched env cannot apply"
            )
        env = env.env
    venv = BPCalibrationVectorEnv(
        n_envs, data=base.data, features=base.data.features, cuff=base.cuff, **base.params.model_dump()
    )
    return VecMonitor(BatchedVecEnv(venv))
