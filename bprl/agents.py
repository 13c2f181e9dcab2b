"""Reinforcement-learning agents: agent YAML specs, SB3 training, saving and loading.

Agents are PPO and DQN from stable-baselines3 and RecurrentPPO from sb3-contrib, optionally
with observation normalisation (``VecNormalize``) and frame stacking (``VecFrameStack``).
Their settings live in YAML files in ``agents/`` laid out like rl-baselines3-zoo's
``hyperparams/<algo>.yml``: the top-level key is an environment id (or ``default``), and
each entry holds ``n_timesteps``, ``policy``, ``n_envs``, ``normalize``, ``frame_stack``,
``policy_kwargs`` and the algorithm's constructor arguments. The same files therefore
work unchanged with ``python -m rl_zoo3.train -conf agents/ppo.yaml``.

:func:`train_agent` trains on the training subjects of an environment spec, evaluates on
the validation subjects (SB3 ``EvalCallback``, best model kept) and writes an agent folder::

    best_model.zip          SB3 model with the best validation return (the one load_agent uses)
    final_model.zip         SB3 model at the end of training
    vecnormalize.json       observation-normalisation statistics of best_model (when used)
    vecnormalize_final.json the same for final_model
    agent.json              algorithm, hyperparameters, env spec, seed, spaces, versions, git commit
    evaluations.npz         SB3 EvalCallback history (timesteps, returns, episode lengths)

:func:`load_agent` returns a :class:`AgentPolicy` that acts on *raw* environment
observations (it applies the saved normalisation and frame stacking itself) through the
same ``predict`` protocol as the classical calibrators.

Security: an SB3 zip stores some objects (spaces, schedules, the policy class) with
cloudpickle. :func:`load_agent` never unpickles them: every pickled entry of the zip is
replaced by an object rebuilt from ``agent.json`` (``custom_objects``), the network weights are
read with ``torch.load(..., weights_only=True)`` by SB3, and normalisation statistics are
JSON. Still, only load agent folders from paths you trust and chose yourself.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from bprl.errors import ConfigError
from bprl.tables import atomic_output, write_text_atomic

#: algorithm name (as in the agent file name ``agents/<algo>.yaml``) -> "module:Class"
ALGORITHMS: dict[str, str] = {
    "ppo": "stable_baselines3:PPO",
    "dqn": "stable_baselines3:DQN",
    "recurrent_ppo": "sb3_contrib:RecurrentPPO",
}

#: keys of an agent entry handled by bprl/rl_zoo3 rather than passed to the algorithm
WRAPPER_KEYS: tuple[str, ...] = (
    "n_timesteps",
    "policy",
    "n_envs",
    "normalize",
    "frame_stack",
    "policy_kwargs",
    "env_kwargs",
)

#: constructor arguments never taken from a file (set by train_agent)
_RESERVED = {
    "self",
    "policy",
    "env",
    "seed",
    "device",
    "verbose",
    "tensorboard_log",
    "_init_setup_model",
    "policy_kwargs",
}

#: hyperparameters that may be given as a zoo schedule string ``lin_<start>``
_SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")

#: names allowed inside a ``policy_kwargs`` string (activation functions and optimizers)
_SAFE_NAMES: dict[str, str] = {
    **{
        f"{p}{a}": f"torch.nn:{a}"
        for p in ("nn.", "th.nn.", "torch.nn.")
        for a in ("Tanh", "ReLU", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid")
    },
    **{
        f"{p}{o}": f"torch.optim:{o}"
        for p in ("optim.", "th.optim.", "torch.optim.")
        for o in ("Adam", "AdamW", "RMSprop", "SGD")
    },
}

#: largest seed accepted anywhere in bprl (experiment files, ``bprl train``, :func:`train_agent`).
#: numpy's legacy seeding (SB3's ``set_random_seed``, gymnasium's ``Space.seed``) needs seeds
#: below 2**32, and :func:`train_agent` adds offsets (training env ``i``: ``seed + i``;
#: evaluation env: ``seed + EVAL_SEED_OFFSET``); the signed 32-bit range leaves room for both.
MAX_SEED = 2**31 - 1

#: offset of the evaluation environment's seed from the training seed
EVAL_SEED_OFFSET = 10_000

#: most training steps accepted for one agent (1e9 steps: days of CPU at a few thousand steps/s)
MAX_TIMESTEPS = 1_000_000_000

AGENT_JSON = "agent.json"
BEST_MODEL = "best_model.zip"
FINAL_MODEL = "final_model.zip"
VECNORM_BEST = "vecnormalize.json"
VECNORM_FINAL = "vecnormalize_final.json"

#: env id used for a bprl environment, by its action space type
BPRL_ENV_IDS = {"discrete": "bprl/BPCalibration-v0", "continuous": "bprl/BPCalibrationContinuous-v0"}


def _import(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def algorithm_class(algo: str, where: str = "agent spec") -> type:
    """The SB3 class of ``algo`` (``ppo``, ``dqn``, ``recurrent_ppo``); ConfigError for an unknown name."""
    if algo not in ALGORITHMS:
        raise ConfigError(f"{where}: unknown algorithm {algo!r}; known: {sorted(ALGORITHMS)}")
    return _import(ALGORITHMS[algo])


def valid_hyperparameters(algo: str) -> list[str]:
    """Names accepted in an agent entry for ``algo``: the zoo wrapper keys plus the algorithm's constructor arguments."""
    import inspect

    cls = algorithm_class(algo)
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in _RESERVED]
    return sorted({*WRAPPER_KEYS, *params})


def check_seed(seed: Any, where: str = "seed") -> int:
    """``seed`` as an int when it is an integer from 0 to :data:`MAX_SEED`; else a ConfigError naming ``where``.

    Booleans and floats (``1.0``, ``1e9``) are refused: a seed is an integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"{where}: must be an integer from 0 to {MAX_SEED} (2**31 - 1), got {seed!r}")
    return int(seed)


def check_timesteps(timesteps: Any, where: str = "timesteps") -> int:
    """``timesteps`` as an int when it is an integer from 1 to :data:`MAX_TIMESTEPS`; else a ConfigError."""
    if (
        isinstance(timesteps, bool)
        or not isinstance(timesteps, int | np.integer)
        or not 1 <= int(timesteps) <= MAX_TIMESTEPS
    ):
        raise ConfigError(f"{where}: must be an integer from 1 to {MAX_TIMESTEPS:_}, got {timesteps!r}")
    return int(timesteps)


# --------------------------------------------------------------------------- safe literal parsing
def _eval_node(node: ast.AST, where: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        items = [_eval_node(e, where) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {
            _eval_node(k, where): _eval_node(v, where) for k, v in zip(node.keys, node.values, strict=True)
        }
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval_node(node.operand, where)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
    ):
        return {kw.arg: _eval_node(kw.value, where) for kw in node.keywords}
    if isinstance(node, ast.Attribute | ast.Name):
        name = ast.unparse(node)
        if name in _SAFE_NAMES:
            return _import(_SAFE_NAMES[name])
        raise ConfigError(f"{where}: name {name!r} is not allowed; allowed names: {sorted(_SAFE_NAMES)}")
    raise ConfigError(
        f"{where}: unsupported expression {ast.unparse(node)!r} (only literals, dict(...) and torch activations)"
    )


def parse_kwargs_string(text: str, where: str) -> dict[str, Any]:
    """Parse a zoo-style kwargs string such as ``"dict(net_arch=[64, 64], activation_fn=nn.Tanh)"`` without ``eval``.

    Only literals, ``dict(...)``/``{...}``, lists and a fixed set of torch activation/optimizer
    names are accepted; anything else raises ConfigError naming ``where``.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"{where}: cannot parse {text!r}: {exc.msg}") from None
    value = _eval_node(tree.body, where)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a dict, got {text!r}")
    return value


def _parse_policy_kwargs(value: Any, where: str) -> dict[str, Any]:
    """policy_kwargs from a zoo string or a YAML dict (string values naming torch activations are resolved)."""
    if isinstance(value, str):
        return parse_kwargs_string(value, where)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: policy_kwargs must be a dict or a 'dict(...)' string, got {value!r}")
    return {
        k: _import(_SAFE_NAMES[v]) if isinstance(v, str) and v in _SAFE_NAMES else v for k, v in value.items()
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------- agent spec
@dataclass
class AgentSpec:
    """One validated entry of an agent YAML file.

    Attributes:
        algo: ``ppo``, ``dqn`` or ``recurrent_ppo``.
        env_key: the top-level key the entry came from (an env id or ``default``).
        n_timesteps: training budget in environment steps (summed over ``n_envs``).
        policy: SB3 policy alias (``MlpPolicy``, ``MlpLstmPolicy``, ...).
        n_envs: parallel training environments.
        normalize: ``VecNormalize`` keyword arguments, or ``None`` for no normalisation.
        frame_stack: number of stacked observations, or ``None``.
        policy_kwargs: parsed policy keyword arguments (Python objects).
        hyperparams: remaining algorithm constructor arguments as written in the file.
        env_kwargs: overrides passed to the environment builder.
        raw: the entry exactly as read (JSON-serialisable), for ``agent.json``.
        source: the file (or ``"<dict>"``) it came from.
    """

    algo: str
    env_key: str
    n_timesteps: int
    policy: str
    n_envs: int = 1
    normalize: dict[str, Any] | None = None
    frame_stack: int | None = None
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    source: str = "<dict>"

    def algorithm_kwargs(self) -> dict[str, Any]:
        """Constructor keyword arguments for the SB3 class (schedules built, policy_kwargs parsed)."""
        from stable_baselines3.common.utils import LinearSchedule

        kwargs = dict(self.hyperparams)
        for key in _SCHEDULE_KEYS:
            value = kwargs.get(key)
            if isinstance(value, str):
                kind, _, start = value.partition("_")
                try:
                    start_f = float(start)
                except ValueError:
                    start_f = float("nan")
                if kind != "lin" or not np.isfinite(start_f):
                    raise ConfigError(
                        f"{self.source}: [{self.env_key}] {key}: schedule {value!r} must look like 'lin_0.0003'"
                    )
                kwargs[key] = LinearSchedule(start_f, 0.0, 1.0)
        if "train_freq" in kwargs and isinstance(kwargs["train_freq"], list):
            kwargs["train_freq"] = tuple(kwargs["train_freq"])
        if self.policy_kwargs:
            kwargs["policy_kwargs"] = dict(self.policy_kwargs)
        return kwargs


def _read_agent_file(
    agent_spec: str | os.PathLike[str] | Mapping[str, Any],
) -> tuple[dict[str, Any], str, str | None]:
    """(document, source name, algorithm from file name or 'algo' key)."""
    if isinstance(agent_spec, Mapping):
        doc = dict(agent_spec)
        algo = doc.pop("algo", None)
        return doc, "<dict>", algo
    path = Path(agent_spec)
    if not path.is_file():
        raise ConfigError(f"{path}: agent file not found")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(doc, dict) or not doc:
        raise ConfigError(f"{path}: expected a mapping of env id -> hyperparameters")
    algo = doc.pop("algo", None) or path.stem
    return doc, str(path), algo


def load_agent_spec(
    agent_spec: str | os.PathLike[str] | Mapping[str, Any],
    env_id: str | None = None,
    algo: str | None = None,
) -> AgentSpec:
    """Read and validate one entry of an agent YAML file (rl-baselines3-zoo layout).

    Args:
        agent_spec: path of ``agents/<algo>.yaml`` or a dict in the same layout (a dict may
            carry an ``algo`` key; a file takes the algorithm from its name).
        env_id: which top-level entry to use; falls back to ``default``, then to the only entry.
        algo: overrides the algorithm name.

    Raises:
        ConfigError: unknown algorithm, missing entry, unknown hyperparameter or policy, bad values.
    """
    doc, source, file_algo = _read_agent_file(agent_spec)
    algo = algo or file_algo
    if algo is None:
        raise ConfigError(f"{source}: no algorithm given (name the file <algo>.yaml or add 'algo')")
    cls = algorithm_class(str(algo), source)
    if env_id is not None and env_id in doc:
        key = env_id
    elif "default" in doc:
        key = "default"
    elif env_id is None and len(doc) == 1:
        key = next(iter(doc))
    else:
        raise ConfigError(
            f"{source}: no entry for env id {env_id!r} and no 'default' entry; entries: {sorted(doc)}"
        )
    entry = doc[key]
    where = f"{source}: [{key}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping of hyperparameters, got {type(entry).__name__}")
    valid = valid_hyperparameters(str(algo))
    unknown = sorted(set(entry) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown hyperparameter(s) {unknown} for {algo}; valid: {valid}")
    n_timesteps = entry.get("n_timesteps")
    if isinstance(n_timesteps, float) and n_timesteps.is_integer():
        n_timesteps = int(n_timesteps)
    if not isinstance(n_timesteps, int) or isinstance(n_timesteps, bool) or n_timesteps <= 0:
        raise ConfigError(
            f"{where}: n_timesteps must be a positive integer, got {entry.get('n_timesteps')!r}"
        )
    check_timesteps(n_timesteps, f"{where} n_timesteps")
    policy = entry.get("policy")
    if policy not in cls.policy_aliases:
        raise ConfigError(f"{where}: policy {policy!r} is not one of {sorted(cls.policy_aliases)} for {algo}")
    n_envs = entry.get("n_envs", 1)
    if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
        raise ConfigError(f"{where}: n_envs must be an integer >= 1, got {n_envs!r}")
    frame_stack = entry.get("frame_stack")
    if frame_stack is not None and (
        not isinstance(frame_stack, int) or isinstance(frame_stack, bool) or frame_stack < 1
    ):
        raise ConfigError(f"{where}: frame_stack must be an integer >= 1, got {frame_stack!r}")
    normalize = entry.get("normalize", False)
    if isinstance(normalize, str):
        normalize = parse_kwargs_string(normalize, f"{where} normalize")
    if normalize is True:
        normalize = {}
    elif normalize is False or normalize is None:
        normalize = None
    elif isinstance(normalize, dict):
        allowed = {"norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon"}
        bad = sorted(set(normalize) - allowed)
        if bad:
            raise ConfigError(f"{where} normalize: unknown key(s) {bad}; valid: {sorted(allowed)}")
    else:
        raise ConfigError(
            f"{where}: normalize must be true/false, a dict or a 'dict(...)' string, got {normalize!r}"
        )
    if normalize is not None and "gamma" in entry and "gamma" not in normalize:
        normalize = {**normalize, "gamma": entry["gamma"]}  # as rl_zoo3 does
    if (
        algo == "dqn"
        and frame_stack
        and frame_stack > 1
        and normalize is not None
        and normalize.get("norm_obs", True)
    ):
        raise ConfigError(
            f"{where}: frame_stack with normalize (norm_obs) is not supported for DQN: SB3 stores the "
            "un-normalised, un-stacked observations in the replay buffer; use one of the two"
        )
    policy_kwargs = _parse_policy_kwargs(entry.get("policy_kwargs") or {}, f"{where} policy_kwargs")
    env_kwargs = entry.get("env_kwargs") or {}
    if isinstance(env_kwargs, str):
        env_kwargs = parse_kwargs_string(env_kwargs, f"{where} env_kwargs")
    hyperparams = {k: v for k, v in entry.items() if k not in WRAPPER_KEYS}
    spec = AgentSpec(
        algo=str(algo),
        env_key=str(key),
        n_timesteps=n_timesteps,
        policy=str(policy),
        n_envs=n_envs,
        normalize=normalize,
        frame_stack=frame_stack if frame_stack and frame_stack > 1 else None,
        policy_kwargs=policy_kwargs,
        hyperparams=hyperparams,
        env_kwargs=dict(env_kwargs),
        raw=_jsonable(entry),
        source=source,
    )
    spec.algorithm_kwargs()  # validates schedule strings now
    return spec


# --------------------------------------------------------------------------- environments
def _is_gym_id(env_spec: Any) -> bool:
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

    ``env_spec`` is an env YAML file or dict (built with :func:`bprl.env.make_env_from_spec`)
    or a registered Gymnasium id such as ``bprl/BPCalibration-v0`` or ``CartPole-v1``
    (``split`` is then passed as a keyword only for bprl ids).
    """
    overrides = dict(overrides or {})
    if _is_gym_id(env_spec):
        env_id = str(env_spec)
        kwargs = {**overrides, "split": split} if env_id.startswith("bprl/") else overrides
        return lambda: gym.make(env_id, **kwargs)
    from bprl.env import make_env_from_spec

    spec = dict(env_spec) if isinstance(env_spec, Mapping) else env_spec
    return lambda: make_env_from_spec(spec, split=split, **overrides)


def env_id_of(env: gym.Env) -> str:
    """The Gymnasium id of ``env`` (bprl envs built from a spec: by action-space type)."""
    spec_id = getattr(getattr(env, "spec", None), "id", None)
    if spec_id:
        return str(spec_id)
    space = env.action_space
    return BPRL_ENV_IDS["discrete" if isinstance(space, gym.spaces.Discrete) else "continuous"]


def _space_to_json(space: gym.Space) -> dict[str, Any]:
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


def _space_from_json(d: Mapping[str, Any], where: str) -> gym.Space:
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


def _normalize_to_json(venv: Any) -> dict[str, Any]:
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


def _make_vec_env(
    factory: Callable[[], gym.Env], n_envs: int, seed: int, spec: AgentSpec, training: bool
) -> Any:
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecNormalize

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
        if "subject_id" not in options:
            options["subject_id"] = self.subject_ids[self._k % len(self.subject_ids)]
            self._k += 1
        options.setdefault("whole_record", True)
        return self.env.reset(seed=seed, options=options)


# --------------------------------------------------------------------------- provenance
def package_versions() -> dict[str, str]:
    """Versions of the packages an agent depends on (bprl, torch, SB3, sb3-contrib, gymnasium, numpy)."""
    out = {}
    for name in ("bprl", "torch", "stable-baselines3", "sb3-contrib", "gymnasium", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(path: str | os.PathLike[str] | None = None) -> str | None:
    """The commit hash of the git work tree containing ``path`` (default: the bprl source), or None."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def _env_spec_record(env_spec: Any) -> dict[str, Any]:
    if isinstance(env_spec, Mapping):
        return {"kind": "dict", "spec": _jsonable(dict(env_spec))}
    if _is_gym_id(env_spec):
        return {"kind": "gym_id", "id": str(env_spec)}
    path = Path(env_spec)
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        content = None
    return {"kind": "file", "path": str(path), "spec": _jsonable(content)}


# --------------------------------------------------------------------------- training
def train_agent(
    env_spec: str | os.PathLike[str] | Mapping[str, Any],
    agent_spec: str | os.PathLike[str] | Mapping[str, Any] | AgentSpec,
    seed: int,
    out_dir: str | os.PathLike[str],
    *,
    timesteps: int | None = None,
    env_overrides: Mapping[str, Any] | None = None,
    eval_freq: int | None = None,
    n_eval_episodes: int | None = None,
    verbose: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Train an SB3 agent on the training split, evaluating on the validation split; return ``out_dir``.

    Args:
        env_spec: env YAML file / dict (``bprl.env.make_env_from_spec``) or a registered env id.
        agent_spec: agent YAML file (``agents/ppo.yaml``), dict, or :class:`AgentSpec`; the entry is
            chosen by the env's id (``bprl/BPCalibration-v0`` / ``bprl/BPCalibrationContinuous-v0``).
        seed: seeds SB3/torch/numpy (``set_random_seed``), the training envs (``seed + i``) and the
            evaluation env (``seed + 10_000``); an integer from 0 to :data:`MAX_SEED`.
        out_dir: the agent folder to write (created; files written atomically).
        timesteps: overrides ``n_timesteps`` of the entry (1 to :data:`MAX_TIMESTEPS`).
        env_overrides: extra keyword overrides for the env builder (merged over ``env_kwargs``).
        eval_freq: evaluate every this many environment steps (default: a tenth of the budget).
        n_eval_episodes: validation episodes per evaluation (default: number of validation
            subjects for bprl envs, at most 10; else 5).
        verbose: SB3 verbosity.
        progress: called with short progress messages (the CLI prints them).

    SB3 logs through a logger without a folder (stdout only when ``verbose``), so training
    leaves no ``SB3-*`` folder in the system temporary directory.

    Raises:
        ConfigError: invalid agent/env spec, seed or timesteps (checked before any work), or an
            algorithm that cannot act in the env's action space.
    """
    seed = check_seed(seed)
    if timesteps is not None:
        timesteps = check_timesteps(timesteps)
    import torch
    from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.utils import set_random_seed

    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_random_seed(seed)

    # Resolve which entry of the agent file applies: probe one env for its id.
    probe_env = env_builder(env_spec, "train", env_overrides)()
    env_id = env_id_of(probe_env)
    obs_space, act_space = probe_env.observation_space, probe_env.action_space
    is_bprl = hasattr(probe_env.unwrapped, "subject_ids")
    probe_env.close()
    if isinstance(agent_spec, AgentSpec):
        algo, source = agent_spec.algo, agent_spec.source
    else:
        _doc, source, algo = _read_agent_file(agent_spec)
    if algo == "dqn" and not isinstance(act_space, gym.spaces.Discrete):
        raise ConfigError(
            f"{source}: DQN needs a discrete action space but env {env_id} has {act_space}; "
            f"use a discrete env spec ({BPRL_ENV_IDS['discrete']})"
        )
    spec = agent_spec if isinstance(agent_spec, AgentSpec) else load_agent_spec(agent_spec, env_id=env_id)
    overrides = {**spec.env_kwargs, **dict(env_overrides or {})}
    n_timesteps = timesteps if timesteps is not None else spec.n_timesteps
    eval_freq = int(eval_freq) if eval_freq else max(n_timesteps // 10, 1)

    # Validation: every validation subject once per evaluation, whole records, in a fixed order.
    eval_split = "val"
    val_ids: list[str] = []
    if is_bprl:
        try:
            val_env = env_builder(env_spec, "val", overrides)()
            val_ids = list(val_env.unwrapped.subject_ids)
            val_env.close()
        except ConfigError as exc:
            say(f"no validation subjects ({exc}); evaluating on the training split instead")
            eval_split = "train"
    else:
        eval_split = "train"
    if n_eval_episodes is None:
        n_eval_episodes = len(val_ids) if val_ids else 5
    n_eval_episodes = int(n_eval_episodes)
    eval_factory = env_builder(env_spec, eval_split, overrides)
    if val_ids:
        base_factory = eval_factory

        def eval_factory() -> gym.Env:
            return CycleSubjects(base_factory(), val_ids)

    train_env = _make_vec_env(
        env_builder(env_spec, "train", overrides), spec.n_envs, seed, spec, training=True
    )
    eval_env = _make_vec_env(eval_factory, 1, seed + EVAL_SEED_OFFSET, spec, training=False)

    cls = algorithm_class(spec.algo, spec.source)
    try:
        model = cls(
            spec.policy, train_env, seed=seed, device="cpu", verbose=verbose, **spec.algorithm_kwargs()
        )
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"{spec.source}: [{spec.env_key}] cannot build {spec.algo}: {exc}") from exc
    model.set_logger(_quiet_logger(verbose))

    class _SaveNormOnBest(BaseCallback):
        def _on_step(self) -> bool:
            if spec.normalize is not None:
                write_text_atomic(
                    json.dumps(_normalize_to_json(model.get_vec_normalize_env())), out / VECNORM_BEST
                )
            say(f"new best validation return {eval_cb.best_mean_reward:.3f} at step {self.num_timesteps}")
            return True

    with atomic_output(out / "evaluations.npz") as tmp_eval:
        log_dir = tmp_eval.parent / f".eval-{os.getpid()}"
        eval_cb = EvalCallback(
            eval_env,
            n_eval_episodes=n_eval_episodes,
            eval_freq=max(eval_freq // spec.n_envs, 1),
            log_path=str(log_dir),
            best_model_save_path=str(log_dir),
            deterministic=True,
            callback_on_new_best=_SaveNormOnBest(),
            verbose=0,
        )
        say(
            f"training {spec.algo} ({spec.policy}, {spec.n_envs} env(s)) on {env_id} for {n_timesteps} steps, "
            f"seed {seed}, evaluating every {eval_freq} steps on {n_eval_episodes} '{eval_split}' episode(s)"
        )
        model.learn(total_timesteps=n_timesteps, callback=[eval_cb, _progress_callback(n_timesteps, say)])
        # Final evaluation: keep the final model as best if it is at least as good (or no evaluation ran).
        if spec.normalize is not None:
            from stable_baselines3.common.vec_env import sync_envs_normalization

            sync_envs_normalization(train_env, eval_env)
        final_mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=n_eval_episodes, deterministic=True)
        with atomic_output(out / FINAL_MODEL) as tmp:
            model.save(tmp.with_suffix(".zip"))
            os.replace(tmp.with_suffix(".zip"), tmp)
        if spec.normalize is not None:
            write_text_atomic(
                json.dumps(_normalize_to_json(model.get_vec_normalize_env())), out / VECNORM_FINAL
            )
        best_from_eval = log_dir / "best_model.zip"
        if best_from_eval.is_file() and eval_cb.best_mean_reward > final_mean:
            best_mean = float(eval_cb.best_mean_reward)
            with atomic_output(out / BEST_MODEL) as tmp:
                shutil.copyfile(best_from_eval, tmp)
            best_is = "eval_callback"
        else:
            best_mean = float(final_mean)
            with atomic_output(out / BEST_MODEL) as tmp:
                shutil.copyfile(out / FINAL_MODEL, tmp)
            if spec.normalize is not None:
                shutil.copyfile(out / VECNORM_FINAL, out / VECNORM_BEST)
            best_is = "final"
        if (log_dir / "evaluations.npz").is_file():
            shutil.copyfile(log_dir / "evaluations.npz", tmp_eval)
        else:
            np.savez(tmp_eval, timesteps=np.zeros(0), results=np.zeros((0, 0)), ep_lengths=np.zeros((0, 0)))
        shutil.rmtree(log_dir, ignore_errors=True)

    meta = {
        "format": "bprl-agent/1",
        "algo": spec.algo,
        "policy": spec.policy,
        "env_id": env_id,
        "agent_spec": {"source": spec.source, "entry": spec.env_key, "hyperparameters": spec.raw},
        "n_timesteps": n_timesteps,
        "n_envs": spec.n_envs,
        "normalize": spec.normalize,
        "frame_stack": spec.frame_stack,
        "env_spec": _env_spec_record(env_spec),
        "env_overrides": _jsonable(overrides),
        "seed": seed,
        "observation_space": _space_to_json(obs_space),
        "action_space": _space_to_json(act_space),
        "model": BEST_MODEL,
        "best": {"chosen": best_is, "val_mean_return": best_mean, "final_val_mean_return": float(final_mean)},
        "eval": {"split": eval_split, "eval_freq": eval_freq, "n_eval_episodes": n_eval_episodes},
        "torch_num_threads": torch.get_num_threads(),
        "versions": package_versions(),
        "git_commit": git_commit(),
    }
    write_text_atomic(json.dumps(_jsonable(meta), indent=2, sort_keys=True), out / AGENT_JSON)
    train_env.close()
    eval_env.close()
    say(f"saved {spec.algo} agent to {out} (best validation return {best_mean:.3f}, from {best_is})")
    return out


def _quiet_logger(verbose: int) -> Any:
    """An SB3 logger with no folder: stdout when ``verbose``, else nothing.

    Without one, ``learn()`` calls ``configure()``, which makes an empty ``SB3-<date>`` folder
    in the system temporary directory on every training run.
    """
    from stable_baselines3.common.logger import HumanOutputFormat, Logger

    return Logger(folder=None, output_formats=[HumanOutputFormat(sys.stdout)] if verbose >= 1 else [])


def _progress_callback_class() -> type:
    from stable_baselines3.common.callbacks import BaseCallback

    class ProgressCallback(BaseCallback):
        """Report steps done and speed every tenth of the budget."""

        def __init__(self, total: int, say: Callable[[str], None]) -> None:
            super().__init__()
            self.total, self.say, self.next_at = total, say, max(total // 10, 1)

        def _on_training_start(self) -> None:
            import time

            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_at:
                import time

                rate = self.num_timesteps / max(time.perf_counter() - self.t0, 1e-9)
                self.say(f"{self.num_timesteps}/{self.total} steps ({rate:.0f} steps/s)")
                self.next_at += max(self.total // 10, 1)
            return True

    return ProgressCallback


def _progress_callback(total: int, say: Callable[[str], None]) -> Any:
    return _progress_callback_class()(total, say)


# --------------------------------------------------------------------------- loading
class AgentPolicy:
    """A trained SB3 agent behind the calibrator ``predict`` protocol, acting on raw env observations.

    It applies the saved ``VecNormalize`` observation statistics and frame stacking itself, so
    it plugs into ``bprl.calibrators.rollout`` like any calibrator.

    ``state`` carries what persists between steps: ``None`` for a plain policy; otherwise a tuple
    ``(stacked_obs, *lstm_states)`` (frame stacking) or the LSTM states (recurrent, no stacking).
    Pass back what ``predict`` returned and set ``episode_start`` on the first step of each episode.

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
        self.observation_space = _space_from_json(meta["observation_space"], AGENT_JSON)
        self.action_space = _space_from_json(meta["action_space"], AGENT_JSON)
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
        """Action(s) for raw observation(s) ``obs`` (one, or a batch with a leading env axis)."""
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
    """Load an agent folder written by :func:`train_agent` as an :class:`AgentPolicy`.

    Args:
        agent_dir: the folder (only load folders you trust; see the module docstring).
        which: ``"best"`` (best validation model, default) or ``"final"``.
        name: policy name (default: the folder name).

    Raises:
        ConfigError: missing/invalid ``agent.json`` or model file.
    """
    from stable_baselines3.common.utils import ConstantSchedule

    root = Path(agent_dir)
    meta_path = root / AGENT_JSON
    if not meta_path.is_file():
        raise ConfigError(f"{meta_path}: not an agent folder (no {AGENT_JSON})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{meta_path}: invalid JSON: {exc}") from None
    for key in ("algo", "policy", "observation_space", "action_space"):
        if key not in meta:
            raise ConfigError(f"{meta_path}: missing field {key!r}")
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
    obs_space = _space_from_json(meta["observation_space"], str(meta_path))
    if meta.get("frame_stack"):
        k = int(meta["frame_stack"])
        obs_space = gym.spaces.Box(
            low=np.tile(obs_space.low, k), high=np.tile(obs_space.high, k), dtype=obs_space.dtype
        )
    # Every cloudpickled entry of the zip is replaced by a rebuilt object: nothing is unpickled.
    try:
        with zipfile.ZipFile(model_path) as zf:
            data = json.loads(zf.read("data").decode("utf-8"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ConfigError(f"{model_path}: not a stable-baselines3 model zip ({exc})") from None
    replacements: dict[str, Any] = {
        "policy_class": cls.policy_aliases[meta["policy"]],
        "observation_space": obs_space,
        "action_space": _space_from_json(meta["action_space"], str(meta_path)),
    }
    custom: dict[str, Any] = {}
    for key, item in data.items():
        if isinstance(item, dict) and ":serialized:" in item:
            if key in replacements:
                custom[key] = replacements[key]
            elif key == "policy_kwargs":
                raw_pk = meta.get("agent_spec", {}).get("hyperparameters", {}).get("policy_kwargs") or {}
                custom[key] = _parse_policy_kwargs(raw_pk, f"{meta_path} policy_kwargs")
            elif key == "train_freq":
                tf = meta.get("agent_spec", {}).get("hyperparameters", {}).get("train_freq", 4)
                custom[key] = tuple(tf) if isinstance(tf, list) else tf
            elif key in (
                "lr_schedule",
                "learning_rate",
                "clip_range",
                "clip_range_vf",
                "exploration_schedule",
            ):
                custom[key] = ConstantSchedule(0.0)  # training-only schedules
            else:
                custom[key] = (
                    None  # training-time state (last obs, buffers, buffer classes): SB3 rebuilds defaults
                )
    model = cls.load(model_path, device="cpu", custom_objects=custom)
    norm = None
    if meta.get("normalize") is not None:
        if not norm_path.is_file():
            raise ConfigError(f"{norm_path}: normalisation statistics missing")
        norm = json.loads(norm_path.read_text(encoding="utf-8"))
    return AgentPolicy(model, meta, norm, name or root.name)
