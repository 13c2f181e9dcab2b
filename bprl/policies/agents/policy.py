"""Trained agents as policies: :func:`load_agent` reloads an agent folder as an :class:`AgentPolicy`.

An :class:`AgentPolicy` acts on *raw* environment observations (it applies the saved
normalisation and frame stacking itself) through the same ``predict`` protocol as the classical
calibrators, so :func:`bprl.policies.rollout` runs it like any other policy.

Security: an SB3 zip stores some objects (spaces, schedules, the policy class) with
cloudpickle. :func:`load_agent` never unpickles them: every pickled entry of the zip is
replaced by an object rebuilt from ``agent.json`` (``custom_objects``), the network weights are
read with ``torch.load(..., weights_only=True)`` by SB3, and normalisation statistics are
JSON. Still, only load agent folders from paths you trust and chose yourself.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from bprl.errors import ConfigError
from bprl.policies.agents.envs import space_from_json
from bprl.policies.agents.folder import AGENT_JSON, BEST_MODEL, FINAL_MODEL, VECNORM_BEST, VECNORM_FINAL
from bprl.policies.agents.hyperparameters import algorithm_class, parse_policy_kwargs

#: entries of an SB3 zip that only matter during training; reloaded as constant schedules
_TRAINING_SCHEDULES = ("lr_schedule", "learning_rate", "clip_range", "clip_range_vf", "exploration_schedule")


class AgentPolicy:
    """A trained SB3 agent behind the calibrator ``predict`` protocol, acting on raw env observations.

    It applies the saved ``VecNormalize`` observation statistics and frame stacking itself, so
    it plugs into :func:`bprl.policies.rollout` like any calibrator.

    ``state`` carries what persists between steps: ``None`` for a plain policy; otherwise a tuple
    ``(stacked_obs, *lstm_states)`` (frame stacking) or the LSTM states (recurrent, no stacking).
    Pass back what ``predict`` returned and set ``episode_start`` on the first step of each episode.

    Args:
        model: the SB3 model.
        meta: the ``agent.json`` dictionary.
        norm: the ``vecnormalize.json`` dictionary, or None without normalisation.
        name: policy name.

    Attributes:
        name: policy name (the agent folder's name unless given).
        algo: ``ppo``, ``dqn`` or ``recurrent_ppo``.
        model: the SB3 model.
        observation_space: the raw env observation space.
        action_space: the env action space.
        meta: the ``agent.json`` dictionary.
    """

    def __init__(self, model: Any, meta: dict[str, Any], norm: dict[str, Any] | None, name: str) -> None:
        self.model = model
        self.meta = meta
        self.name = name
        self.algo = str(meta["algo"])
        self.observation_space = space_from_json(meta["observation_space"], AGENT_JSON)
        self.action_space = space_from_json(meta["action_space"], AGENT_JSON)
        self.frame_stack = int(meta.get("frame_stack") or 0)
        self.recurrent = self.algo == "recurrent_ppo"
        self._norm = norm if norm and norm.get("norm_obs", True) else None
        if self._norm is not None:
            self._mean = np.asarray(norm["obs_mean"], dtype=np.float64)
            self._var = np.asarray(norm["obs_var"], dtype=np.float64)

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        """Normalise raw observations exactly as the training ``VecNormalize`` did (identity without it)."""
        obs = np.asarray(obs, dtype=self.observation_space.dtype)
        if self._norm is None:
            return obs
        z = np.clip(
            (obs - self._mean) / np.sqrt(self._var + self._norm["epsilon"]),
            -self._norm["clip_obs"],
            self._norm["clip_obs"],
        )
        return z.astype(np.float32)

    def predict(
        self,
        obs: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Action(s) for raw observation(s) ``obs`` (one, or a batch with a leading env axis).

        Args:
            obs: one raw observation, or a batch with a leading env axis.
            state: what the previous call returned (None on the first step).
            episode_start: True where an episode starts (resets stacking and LSTM states).
            deterministic: the most likely action instead of a sample.

        Returns:
            (action(s), state to pass to the next call).
        """
        obs = np.asarray(obs)
        single = obs.ndim == len(self.observation_space.shape)
        x = self.normalize_obs(obs[None] if single else obs)
        n = x.shape[0]
        starts = np.ones(n, dtype=bool) if state is None else np.zeros(n, dtype=bool)
        if episode_start is not None:
            starts = starts | np.asarray(episode_start, dtype=bool).reshape(n)
        lstm_state = None
        if self.frame_stack:
            dim = x.shape[-1]
            stacked = (
                np.zeros((n, dim * self.frame_stack), dtype=x.dtype)
                if state is None
                else np.array(state[0], copy=True)
            )
            stacked[starts] = 0
            stacked[:, :-dim] = stacked[:, dim:].copy()
            stacked[:, -dim:] = x
            x_in = stacked
            if self.recurrent and state is not None and len(state) > 1:
                lstm_state = tuple(state[1:])
        else:
            x_in = x
            lstm_state = state if self.recurrent else None
        if self.recurrent:
            action, new_lstm = self.model.predict(
                x_in, state=lstm_state, episode_start=starts, deterministic=deterministic
            )
        else:
            action, _ = self.model.predict(x_in, deterministic=deterministic)
            new_lstm = None
        if self.frame_stack:
            new_state: tuple[np.ndarray, ...] | None = (stacked, *(new_lstm or ()))
        else:
            new_state = tuple(new_lstm) if new_lstm is not None else None
        return (action[0] if single else action), new_state


def load_agent(
    agent_dir: str | os.PathLike[str], which: str = "best", name: str | None = None
) -> AgentPolicy:
    """Load an agent folder written by :func:`bprl.policies.agents.train_agent` as an :class:`AgentPolicy`.

    Nothing is unpickled (see the module docstring).

    Args:
        agent_dir: the folder (only load folders you trust).
        which: ``"best"`` (best validation model, default) or ``"final"``.
        name: policy name (default: the folder name).

    Returns:
        The policy.

    Raises:
        ConfigError: missing/invalid ``agent.json`` or model file.
    """
    root = Path(agent_dir)
    meta_path = root / AGENT_JSON
    meta = _read_meta(meta_path)
    if which not in ("best", "final"):
        raise ConfigError(f"load_agent: which must be 'best' or 'final', got {which!r}")
    model_path = root / (BEST_MODEL if which == "best" else FINAL_MODEL)
    norm_path = root / (VECNORM_BEST if which == "best" else VECNORM_FINAL)
    if not model_path.is_file():
        raise ConfigError(f"{model_path}: model file missing")
    cls = algorithm_class(meta["algo"], str(meta_path))
    if meta["policy"] not in cls.policy_aliases:
        raise ConfigError(
            f"{meta_path}: policy {meta['policy']!r} is not one of {sorted(cls.policy_aliases)}"
        )
    custom = _custom_objects(cls, meta, str(meta_path), model_path)
    model = cls.load(model_path, device="cpu", custom_objects=custom)
    norm = None
    if meta.get("normalize") is not None:
        if not norm_path.is_file():
            raise ConfigError(f"{norm_path}: normalisation statistics missing")
        norm = json.loads(norm_path.read_text(encoding="utf-8"))
    return AgentPolicy(model, meta, norm, name or root.name)


def _read_meta(meta_path: Path) -> dict[str, Any]:
    """``agent.json`` with the fields :func:`load_agent` needs; ConfigError naming the file otherwise."""
    if not meta_path.is_file():
        raise ConfigError(f"{meta_path}: not an agent folder (no {AGENT_JSON})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{meta_path}: invalid JSON: {exc}") from None
    for key in ("algo", "policy", "observation_space", "action_space"):
        if key not in meta:
            raise ConfigError(f"{meta_path}: missing field {key!r}")
    return meta


def _custom_objects(cls: type, meta: dict[str, Any], where: str, model_path: Path) -> dict[str, Any]:
    """A replacement for every cloudpickled entry of the model zip, rebuilt from ``agent.json``.

    Spaces and the policy class come from ``agent.json``; ``policy_kwargs`` and ``train_freq``
    from the recorded hyperparameters (parsed safely); training-only schedules become constants;
    training-time state (last observation, buffers, buffer classes) becomes None (SB3 rebuilds it).
    """
    from stable_baselines3.common.utils import ConstantSchedule

    try:
        with zipfile.ZipFile(model_path) as zf:
            data = json.loads(zf.read("data").decode("utf-8"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ConfigError(f"{model_path}: not a stable-baselines3 model zip ({exc})") from None
    hyperparameters = meta.get("agent_spec", {}).get("hyperparameters", {})
    replacements: dict[str, Any] = {
        "policy_class": cls.policy_aliases[meta["policy"]],
        "observation_space": _model_observation_space(meta, where),
        "action_space": space_from_json(meta["action_space"], where),
    }
    custom: dict[str, Any] = {}
    for key, item in data.items():
        if not (isinstance(item, dict) and ":serialized:" in item):
            continue
        if key in replacements:
            custom[key] = replacements[key]
        elif key == "policy_kwargs":
            custom[key] = parse_policy_kwargs(
                hyperparameters.get("policy_kwargs") or {}, f"{where} policy_kwargs"
            )
        elif key == "train_freq":
            tf = hyperparameters.get("train_freq", 4)
            custom[key] = tuple(tf) if isinstance(tf, list) else tf
        elif key in _TRAINING_SCHEDULES:
            custom[key] = ConstantSchedule(0.0)
        else:
            custom[key] = None
    return custom


def _model_observation_space(meta: dict[str, Any], where: str) -> gym.Space:
    """The observation space the model saw: the env's, tiled ``frame_stack`` times when stacked."""
    obs_space = space_from_json(meta["observation_space"], where)
    if meta.get("frame_stack"):
        k = int(meta["frame_stack"])
        obs_space = gym.spaces.Box(
            low=np.tile(obs_space.low, k), high=np.tile(obs_space.high, k), dtype=obs_space.dtype
        )
    return obs_space


def residual_policy(
    agent: AgentPolicy, env_spec: Any, env_overrides: dict[str, Any] | None = None, name: str | None = None
) -> Any:
    """A residual agent (``residual:`` in its entry) with its base rule, as a policy on raw observations.

    The base calibrator is fit again on the train split of ``env_spec`` (fitting is deterministic)
    and must come out as it did for training (``agent.json`` records what it fitted). When training
    kept the base rule (``best.chosen == "base"``: no learned model beat it on validation), the
    policy acts with a zero residual (:class:`~bprl.policies.residual.ZeroResidual`).

    Args:
        agent: the loaded agent (:func:`load_agent`); it acts on the residual env's observation.
        env_spec: the env spec the agent was trained with (its train split fits the base).
        env_overrides: the env overrides (e.g. the experiment's replay set).
        name: policy name (default: the agent's).

    Returns:
        A :class:`bprl.policies.residual.ResidualPolicy`.

    Raises:
        ConfigError: the agent is not a residual agent, or the base fits differently than it did
            for training (the train split changed).
    """
    from bprl.policies.agents.hyperparameters import jsonable
    from bprl.policies.agents.spec import ResidualSpec
    from bprl.policies.agents.train import residual_base
    from bprl.policies.residual import ResidualPolicy, ZeroResidual

    rec = agent.meta.get("residual")
    if not rec:
        raise ConfigError(
            f"agent {agent.name!r} was not trained as a residual agent (no 'residual' in agent.json)"
        )
    spec = ResidualSpec(**{k: v for k, v in rec.items() if k != "base_fitted"})
    base = residual_base(spec, env_spec, env_overrides)
    if json.dumps(jsonable(base.fitted), sort_keys=True) != json.dumps(
        rec.get("base_fitted"), sort_keys=True
    ):
        raise ConfigError(
            f"agent {agent.name!r}: its base {spec.base!r} fits differently on this train split than it did "
            "for training; evaluate it with the env spec and replay set it was trained with"
        )
    # the base rule beat every learned model on validation: deploy the base (a zero residual)
    actor = ZeroResidual() if (agent.meta.get("best") or {}).get("chosen") == "base" else agent
    return ResidualPolicy(
        actor, base, spec.max_residual_mmhg, spec.cuff, name=name or agent.name, ablation=spec.ablation
    )
