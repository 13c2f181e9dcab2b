"""Environments for agent training: env builders, SB3 vector envs, the validation cycle, space records.

:func:`env_builder` turns an env spec (YAML file, dict, or a registered Gymnasium id) into a
factory of one environment of a split; :func:`make_vec_env` wraps factories into the SB3 vector
env an agent trains or is evaluated on (``Monitor``, ``VecNormalize``, ``VecFrameStack``);
:class:`CycleSubjects` makes a validation env visit every validation subject once per
evaluation. Spaces and ``VecNormalize`` statistics are written as JSON (never pickled), so that
an agent folder can be reloaded without unpickling anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from bprl.envs import ENV_ID, ENV_ID_CONTINUOUS, make_env_from_spec
from bprl.errors import ConfigError
from bprl.policies.agents.hyperparameters import jsonable
from bprl.policies.agents.spec import AgentSpec

#: env id used for a bprl environment, by its action space type
BPRL_ENV_IDS = {"discrete": ENV_ID, "continuous": ENV_ID_CONTINUOUS}


def is_gym_id(env_spec: Any) -> bool:
    """Whether ``env_spec`` names a registered Gymnasium id (not a YAML file or an existing path)."""
    if not isinstance(env_spec, str) or Path(env_spec).suffix in (".yaml", ".yml") or Path(env_spec).exists():
        return False
    import bprl  # noqa: F401  (registers the bprl ids)

    return env_spec in gym.registry


def env_builder(
    env_spec: str | os.PathLike[str] | Mapping[str, Any],
    split: str,
    overrides: Mapping[str, Any] | None = None,
) -> Callable[[], gym.Env]:
    """A no-argument factory of one environment of ``split``.

    Args:
        env_spec: an env YAML file or dict (built with :func:`bprl.envs.make_env_from_spec`)
            or a registered Gymnasium id such as ``bprl/BPCalibration-v1`` or ``CartPole-v1``.
        split: ``train``, ``val`` or ``test`` (passed as a keyword only for bprl ids).
        overrides: keyword overrides for the environment.

    Returns:
        A function that builds a fresh environment on each call.
    """
    overrides = dict(overrides or {})
    if is_gym_id(env_spec):
        env_id = str(env_spec)
        kwargs = {**overrides, "split": split} if env_id.startswith("bprl/") else overrides
        return lambda: gym.make(env_id, **kwargs)
    spec = dict(env_spec) if isinstance(env_spec, Mapping) else env_spec
    return lambda: make_env_from_spec(spec, split=split, **overrides)


def env_id_of(env: gym.Env) -> str:
    """The Gymnasium id of ``env`` (bprl envs built from a spec: by action-space type)."""
    spec_id = getattr(getattr(env, "spec", None), "id", None)
    if spec_id:
        return str(spec_id)
    space = env.action_space
    return BPRL_ENV_IDS["discrete" if isinstance(space, gym.spaces.Discrete) else "continuous"]


def env_spec_record(env_spec: Any) -> dict[str, Any]:
    """What ``agent.json`` records of the env spec: the dict, the gym id, or the file path and content."""
    if isinstance(env_spec, Mapping):
        return {"kind": "dict", "spec": jsonable(dict(env_spec))}
    if is_gym_id(env_spec):
        return {"kind": "gym_id", "id": str(env_spec)}
    path = Path(env_spec)
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        content = None
    return {"kind": "file", "path": str(path), "spec": jsonable(content)}


# --------------------------------------------------------------------------- JSON records of spaces
def space_to_json(space: gym.Space) -> dict[str, Any]:
    """A Box or Discrete space as JSON.

    Raises:
        ConfigError: any other space.
    """
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    raise ConfigError(f"unsupported space {space!r}: bprl agents handle Box and Discrete spaces")


def space_from_json(d: Mapping[str, Any], where: str) -> gym.Space:
    """The space written by :func:`space_to_json`; ConfigError naming ``where`` otherwise."""
    if d.get("type") == "Discrete":
        return gym.spaces.Discrete(int(d["n"]), start=int(d.get("start", 0)))
    if d.get("type") == "Box":
        dtype = np.dtype(d["dtype"])
        return gym.spaces.Box(
            low=np.asarray(d["low"], dtype=dtype),
            high=np.asarray(d["high"], dtype=dtype),
            shape=tuple(d["shape"]),
            dtype=dtype,
        )
    raise ConfigError(f"{where}: unsupported space description {d!r}")


def normalize_to_json(venv: Any) -> dict[str, Any]:
    """The settings and running statistics of an SB3 ``VecNormalize`` as JSON (``vecnormalize.json``)."""
    return {
        "norm_obs": bool(venv.norm_obs),
        "norm_reward": bool(venv.norm_reward),
        "clip_obs": float(venv.clip_obs),
        "clip_reward": float(venv.clip_reward),
        "epsilon": float(venv.epsilon),
        "gamma": float(venv.gamma),
        "obs_mean": np.asarray(venv.obs_rms.mean).tolist(),
        "obs_var": np.asarray(venv.obs_rms.var).tolist(),
        "obs_count": float(venv.obs_rms.count),
        "ret_mean": float(np.asarray(venv.ret_rms.mean)),
        "ret_var": float(np.asarray(venv.ret_rms.var)),
        "ret_count": float(venv.ret_rms.count),
    }


# --------------------------------------------------------------------------- SB3 vector envs
def make_vec_env(
    factory: Callable[[], gym.Env], n_envs: int, seed: int, spec: AgentSpec, training: bool
) -> Any:
    """``n_envs`` copies of ``factory()`` as an SB3 vector env, wrapped as ``spec`` says.

    Args:
        factory: builds one environment.
        n_envs: number of copies (``DummyVecEnv``, each in a ``Monitor``; with ``vec_env: batched``
            one :class:`~bprl.policies.agents.batched_vec_env.BatchedVecEnv` for training envs).
        seed: env ``i`` is reset with ``seed + i`` and its action space seeded with ``seed + i``.
        spec: the agent spec (``normalize`` -> ``VecNormalize``, ``frame_stack`` -> ``VecFrameStack``).
        training: False for evaluation envs (statistics frozen, rewards not normalised).

    Returns:
        The (wrapped) SB3 ``VecEnv``.
    """
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecNormalize

    if spec.vec_env == "batched" and training:
        from bprl.policies.agents.batched_vec_env import batched_vec_env

        venv = batched_vec_env(factory(), n_envs)
        venv.seed(seed)
    else:
        venv = DummyVecEnv([lambda: Monitor(factory()) for _ in range(n_envs)])
        venv.seed(seed)
        for i, env in enumerate(venv.envs):
            env.action_space.seed(seed + i)
    if spec.normalize is not None:
        kwargs = dict(spec.normalize)
        if not training:
            kwargs["norm_reward"] = False
        venv = VecNormalize(venv, training=training, **kwargs)
    if spec.frame_stack:
        venv = VecFrameStack(venv, n_stack=spec.frame_stack)
    return venv


class CycleSubjects(gym.Wrapper):
    """Reset a bprl env to its subjects in a fixed cyclic order, whole records (used for validation).

    Each ``reset`` without an explicit ``subject_id`` takes the next id of ``subject_ids`` and
    ``whole_record=True``, so an evaluation of ``len(subject_ids)`` episodes sees every subject once.
    A ``reset`` with a ``seed`` restarts the cycle at the first subject: reseeding replays the
    same sequence of episodes.

    Args:
        env: a bprl calibration env (or a wrapper of one).
        subject_ids: the subjects to cycle through, in order.
    """

    def __init__(self, env: gym.Env, subject_ids: list[str]) -> None:
        super().__init__(env)
        self.subject_ids = list(subject_ids)
        self._k = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset to the next subject of the cycle (an explicit ``options['subject_id']`` wins)."""
        options = dict(options or {})
        if seed is not None:
            self._k = 0
        if "subject_id" not in options:
            options["subject_id"] = self.subject_ids[self._k % len(self.subject_ids)]
            self._k += 1
        options.setdefault("whole_record", True)
        return self.env.reset(seed=seed, options=options)
