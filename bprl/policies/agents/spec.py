"""The agent spec: one validated entry of an agent YAML file (rl-baselines3-zoo layout), and its limits.

Agent files live in ``agents/<algo>.yaml`` laid out like rl-baselines3-zoo's
``hyperparams/<algo>.yml``: the top-level key is an environment id (or ``default``), and each
entry holds ``n_timesteps``, ``policy``, ``n_envs``, ``normalize``, ``frame_stack``,
``policy_kwargs``, ``env_kwargs`` and the algorithm's constructor arguments, all at one level.
:func:`load_agent_spec` picks the entry for an env id and validates it with :class:`AgentSpec`,
the same model that validates Python keyword arguments (``load_spec(AgentSpec, {...})``).
Messages name the file, the entry and the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from bprl.config import Spec
from bprl.envs.randomization import DomainRandomizationSpec
from bprl.errors import ConfigError
from bprl.policies.agents.hyperparameters import (
    ALGORITHMS,
    NORMALIZE_KEYS,
    SCHEDULE_KEYS,
    WRAPPER_KEYS,
    UnsafeExpression,
    algorithm_arguments,
    algorithm_class,
    build_schedules,
    jsonable,
    parse_kwargs_dict,
    policy_kwargs_objects,
    schedule_start,
    valid_hyperparameters,
)

#: largest seed accepted anywhere in bprl (experiment files, ``bprl train``, ``train_agent``).
#: numpy's legacy seeding (SB3's ``set_random_seed``, gymnasium's ``Space.seed``) needs seeds
#: below 2**32, and ``train_agent`` adds offsets (training env ``i``: ``seed + i``;
#: evaluation env: ``seed + EVAL_SEED_OFFSET``); the signed 32-bit range leaves room for both.
MAX_SEED = 2**31 - 1

#: offset of the evaluation environment's seed from the training seed
EVAL_SEED_OFFSET = 10_000

#: most training steps accepted for one agent (1e9 steps: days of CPU at a few thousand steps/s)
MAX_TIMESTEPS = 1_000_000_000


def check_seed(seed: Any, where: str = "seed") -> int:
    """``seed`` as an int when it is an integer from 0 to :data:`MAX_SEED`.

    Booleans and floats (``1.0``, ``1e9``) are refused: a seed is an integer.

    Raises:
        ConfigError: naming ``where``, for anything else.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"{where}: must be an integer from 0 to {MAX_SEED} (2**31 - 1), got {seed!r}")
    return int(seed)


def check_timesteps(timesteps: Any, where: str = "timesteps") -> int:
    """``timesteps`` as an int when it is an integer from 1 to :data:`MAX_TIMESTEPS`.

    Raises:
        ConfigError: naming ``where``, for anything else.
    """
    if (
        isinstance(timesteps, bool)
        or not isinstance(timesteps, int | np.integer)
        or not 1 <= int(timesteps) <= MAX_TIMESTEPS
    ):
        raise ConfigError(f"{where}: must be an integer from 1 to {MAX_TIMESTEPS:_}, got {timesteps!r}")
    return int(timesteps)


def _is_count(value: Any, least: int) -> bool:
    """Whether ``value`` is an int (not a bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _kwargs_dict(value: Any, name: str) -> dict[str, Any]:
    """A dict from a ``'dict(...)'`` string (parsed without eval) or a mapping; ValueError naming ``name``."""
    if isinstance(value, str):
        try:
            return parse_kwargs_dict(value)
        except UnsafeExpression as exc:
            raise ValueError(f"{name}: {exc}") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict or a 'dict(...)' string, got {value!r}")
    return dict(value)


class ResidualSpec(Spec):
    """A residual agent's base rule: see :class:`bprl.policies.residual.ResidualCalibrationEnv`.

    The base is fit on the env's train split before training (and again, identically, before
    evaluation: fitting is deterministic).
    """

    base: str = Field(
        description="the base calibrator: a registry name (kalman_ou, rls_gain, ...) or 'module:Class'"
    )
    base_params: dict[str, Any] = Field(default_factory=dict, description="the base calibrator's parameters")
    max_residual_mmhg: float = Field(10.0, gt=0, le=80, description="largest residual correction, mmHg")
    cuff: Literal["base", "agent", "either"] = Field("base", description="who decides when to read")
    ablation: Literal["none", "no_feature_changes", "shuffled_features"] = Field(
        "none",
        description="observation ablation, a control against leaks through the features "
        "(bprl.policies.residual.ABLATIONS): none, no_feature_changes or shuffled_features",
    )


class CuffPriceSpec(Spec):
    """A Lagrangian cuff price (:mod:`bprl.policies.agents.cuff_price`): readings cost a price that
    training adapts until the agent reads ``target_per_h`` times an hour."""

    target_per_h: float = Field(gt=0, le=60, description="cuff readings per hour the price steers to")
    initial: float = Field(0.5, ge=0, description="price of a reading at the start, reward units")
    lr: float = Field(0.1, gt=0, description="step of the price per rollout, per unit of relative rate error")


class ValidationSpec(Spec):
    """How training evaluates its checkpoints on the validation subjects (and the base rule of a
    residual agent), which decides the model that is kept.

    With the defaults, each evaluation replays every validation subject once, and the evaluation
    env's random stream runs on from one evaluation to the next: two evaluations see different
    cuff noise, so a checkpoint can be kept for a lucky draw. ``common_random_numbers`` replays
    the same episodes (same subjects, same noise) for every checkpoint, the final model and the
    base rule, so they are compared on equal terms; ``passes`` evaluates each subject that many
    times (different draws within one evaluation), which averages the noise out of the return;
    ``significance`` keeps a residual agent over its base rule only when its validation gain is
    more than chance.
    """

    passes: int = Field(1, ge=1, le=100, description="episodes per validation subject in one evaluation")
    common_random_numbers: bool = Field(
        False,
        description="reseed the evaluation env before every evaluation, so that every checkpoint, the "
        "final model and a residual agent's base rule are scored on the same episodes",
    )
    significance: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="a residual agent is kept over its base rule only if a one-sided paired t-test of "
        "its validation returns against the base's, episode by episode, is below this level (needs "
        "common_random_numbers); null: a higher mean return is enough",
    )

    @model_validator(mode="after")
    def _paired(self) -> ValidationSpec:
        if self.significance is not None and not self.common_random_numbers:
            raise ValueError(
                "significance pairs the agent's and the base's validation episodes: it needs "
                "common_random_numbers: true"
            )
        return self


class AgentSpec(Spec):
    '''One validated agent entry: algorithm, policy, budget, wrappers and hyperparameters.

    The fields hold what one entry of ``agents/<algo>.yaml`` says (the zoo layout keeps them all
    at one level; :meth:`from_entry` sorts the algorithm's arguments into :attr:`hyperparams`).
    ``policy_kwargs`` and ``normalize`` may be zoo strings such as ``"dict(net_arch=[64, 64],
    activation_fn=nn.Tanh)"``: they are parsed without ``eval`` (literals and a fixed set of
    torch activations and optimizers only).

    The content of ``agents/ppo.yaml`` (its discrete-action entry):

    >>> import yaml
    >>> doc = yaml.safe_load("""
    ... bprl/BPCalibration-v1:
    ...   n_timesteps: 100000
    ...   policy: MlpPolicy
    ...   n_envs: 4
    ...   normalize: "dict(norm_obs=True, norm_reward=True)"
    ...   n_steps: 512
    ...   batch_size: 256
    ...   n_epochs: 10
    ...   gamma: 0.98
    ...   gae_lambda: 0.95
    ...   learning_rate: lin_3e-4
    ...   clip_range: 0.2
    ...   ent_coef: 0.01
    ...   policy_kwargs: "dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=nn.Tanh)"
    ... """)
    >>> spec = load_agent_spec({"algo": "ppo", **doc}, env_id="bprl/BPCalibration-v1")
    >>> spec.algo, spec.policy, spec.n_timesteps, spec.n_envs
    ('ppo', 'MlpPolicy', 100000, 4)
    >>> spec.normalize  # the entry's gamma is passed on to VecNormalize, as rl_zoo3 does
    {'norm_obs': True, 'norm_reward': True, 'gamma': 0.98}
    >>> spec.policy_kwargs["activation_fn"]
    <class 'torch.nn.modules.activation.Tanh'>
    >>> spec.hyperparams["learning_rate"], sorted(spec.algorithm_kwargs())[:3]
    ('lin_3e-4', ['batch_size', 'clip_range', 'ent_coef'])

    A bad value is a ConfigError naming the file, the entry and the field:

    >>> bad = {"algo": "ppo", "default": {"n_timesteps": 10, "policy": "MlpPolicy", "n_envs": 0}}
    >>> load_agent_spec(bad)
    Traceback (most recent call last):
    ...
    bprl.errors.ConfigError: <dict>: [default]: n_envs must be an integer >= 1, got 0
    '''

    algo: str = Field(..., description="algorithm: ppo, dqn or recurrent_ppo (the agent file's name)")
    env_key: str = Field(
        "default", description="top-level key of the agent file the entry came from: an env id or 'default'"
    )
    n_timesteps: int = Field(
        ...,
        ge=1,
        le=MAX_TIMESTEPS,
        description=f"training budget in environment steps, summed over n_envs (1 to {MAX_TIMESTEPS:_})",
    )
    policy: str = Field(
        ..., description="SB3 policy alias: MlpPolicy (ppo, dqn), MlpLstmPolicy (recurrent_ppo), ..."
    )
    n_envs: int = Field(1, ge=1, description="parallel training environments (>= 1)")
    hyperparams: dict[str, Any] = Field(
        default_factory=dict,
        description="the algorithm's constructor arguments (n_steps, gamma, ...) as written; "
        "learning_rate, clip_range and clip_range_vf may be 'lin_<start>' schedules",
    )
    normalize: dict[str, Any] | None = Field(
        None,
        description="VecNormalize keyword arguments (norm_obs, norm_reward, clip_obs, clip_reward, gamma, "
        "epsilon) as a dict or 'dict(...)' string; true = defaults, false/null = no normalisation",
    )
    frame_stack: int | None = Field(
        None, ge=1, description="number of stacked observations (VecFrameStack); null or 1 = no stacking"
    )
    residual: ResidualSpec | None = Field(
        None,
        description="train the agent as a residual on a classical calibrator (bprl.policies.residual; "
        "continuous envs only; bprl-only key)",
    )
    cuff_price: CuffPriceSpec | None = Field(
        None,
        description="a Lagrangian cuff price steering the agent to a cuff rate (bprl-only key; "
        "bprl.policies.agents.cuff_price)",
    )
    domain_randomization: DomainRandomizationSpec | None = Field(
        None,
        description="perturb the training episodes' estimate and PAT features (timing-offset steps, "
        "estimator gain/offset/noise, dropouts; bprl.envs.randomization; training envs only, not with "
        "vec_env: batched; bprl-only key)",
    )
    validation: ValidationSpec = Field(
        default_factory=ValidationSpec,
        description="how checkpoints are evaluated on the validation subjects: passes per subject, "
        "common random numbers, and the significance a residual agent needs to replace its base "
        "(bprl-only key)",
    )
    vec_env: Literal["dummy", "batched"] = Field(
        "dummy",
        description="training envs: dummy (SB3 DummyVecEnv of single envs) or batched (one "
        "BPCalibrationVectorEnv stepping all n_envs in numpy; bprl-only key, rl_zoo3 does not know it)",
    )
    policy_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="policy keyword arguments as a dict or zoo 'dict(...)' string (parsed without eval; "
        "torch activations such as nn.Tanh allowed); held as Python objects",
    )
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="keyword overrides passed to the environment builder"
    )
    raw: dict[str, Any] = Field(
        default_factory=dict,
        description="the entry exactly as written (JSON), recorded in agent.json; built from the fields if empty",
    )
    source: str = Field("<dict>", description="the file (or '<dict>') the entry came from, named in messages")

    @model_validator(mode="before")
    @classmethod
    def _record_raw(cls, data: Any) -> Any:
        """Without ``raw``, record the fields as a zoo entry (what agent.json keeps and reloads from)."""
        if isinstance(data, Mapping) and not data.get("raw"):
            entry = {k: data[k] for k in WRAPPER_KEYS if data.get(k) is not None}
            hyperparams = data.get("hyperparams")
            entry.update(hyperparams if isinstance(hyperparams, Mapping) else {})
            data = {**data, "raw": jsonable(entry)}
        return data

    @field_validator("algo", mode="before")
    @classmethod
    def _known_algo(cls, value: Any) -> Any:
        if value not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {value!r}; known: {sorted(ALGORITHMS)}")
        return value

    @field_validator("n_timesteps", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> int:
        n = int(value) if isinstance(value, float) and value.is_integer() else value
        if not _is_count(n, 1):
            raise ValueError(f"n_timesteps must be a positive integer, got {value!r}")
        try:
            return check_timesteps(n, "n_timesteps")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("policy", mode="before")
    @classmethod
    def _known_policy(cls, value: Any, info: ValidationInfo) -> Any:
        algo = info.data.get("algo")
        if algo is not None:
            aliases = algorithm_class(algo).policy_aliases
            if not isinstance(value, str) or value not in aliases:
                raise ValueError(f"policy {value!r} is not one of {sorted(aliases)} for {algo}")
        return value

    @field_validator("n_envs", mode="before")
    @classmethod
    def _n_envs(cls, value: Any) -> Any:
        if not _is_count(value, 1):
            raise ValueError(f"n_envs must be an integer >= 1, got {value!r}")
        return value

    @field_validator("hyperparams", mode="before")
    @classmethod
    def _algorithm_arguments(cls, value: Any, info: ValidationInfo) -> Any:
        value = {} if value is None else value
        if not isinstance(value, Mapping):
            raise ValueError(f"hyperparams must be a mapping of argument -> value, got {value!r}")
        algo = info.data.get("algo")
        if algo is not None:
            unknown = sorted(set(value) - set(algorithm_arguments(algo)))
            if unknown:
                raise ValueError(
                    f"unknown hyperparameter(s) {unknown} for {algo}; valid: {valid_hyperparameters(algo)}"
                )
        for key in SCHEDULE_KEYS:
            if isinstance(value.get(key), str):
                try:
                    schedule_start(value[key])
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return value

    @field_validator("normalize", mode="before")
    @classmethod
    def _normalize(cls, value: Any, info: ValidationInfo) -> dict[str, Any] | None:
        if value is True:
            value = {}
        elif value is False or value is None:
            return None
        elif isinstance(value, str):
            value = _kwargs_dict(value, "normalize")
        elif not isinstance(value, Mapping):
            raise ValueError(f"normalize must be true/false, a dict or a 'dict(...)' string, got {value!r}")
        bad = sorted(set(value) - NORMALIZE_KEYS)
        if bad:
            raise ValueError(f"normalize: unknown key(s) {bad}; valid: {sorted(NORMALIZE_KEYS)}")
        gamma = (info.data.get("hyperparams") or {}).get("gamma")
        if gamma is not None and "gamma" not in value:
            value = {**value, "gamma": gamma}  # as rl_zoo3 does
        return dict(value)

    @field_validator("frame_stack", mode="before")
    @classmethod
    def _frame_stack(cls, value: Any) -> int | None:
        if value is not None and not _is_count(value, 1):
            raise ValueError(f"frame_stack must be an integer >= 1, got {value!r}")
        return value if value and value > 1 else None

    @field_validator("policy_kwargs", mode="before")
    @classmethod
    def _policy_objects(cls, value: Any) -> dict[str, Any]:
        try:
            return policy_kwargs_objects(value or {})
        except UnsafeExpression as exc:
            raise ValueError(f"policy_kwargs: {exc}") from None

    @field_validator("env_kwargs", mode="before")
    @classmethod
    def _env_kwargs(cls, value: Any) -> dict[str, Any]:
        return _kwargs_dict(value or {}, "env_kwargs")

    @model_validator(mode="after")
    def _dqn_replay_buffer(self) -> AgentSpec:
        if self.algo == "dqn" and self.frame_stack and self.normalize is not None:
            if self.normalize.get("norm_obs", True):
                raise ValueError(
                    "frame_stack with normalize (norm_obs) is not supported for DQN: SB3 stores the "
                    "un-normalised, un-stacked observations in the replay buffer; use one of the two"
                )
        return self

    @classmethod
    def from_entry(
        cls, entry: Any, *, algo: str, env_key: str = "default", source: str = "<dict>"
    ) -> AgentSpec:
        """Validate one zoo-layout entry (wrapper keys and algorithm arguments at one level).

        Args:
            entry: the mapping under one top-level key of an agent file.
            algo: ``ppo``, ``dqn`` or ``recurrent_ppo``.
            env_key: the top-level key (named in messages and recorded).
            source: the file it came from (named in messages and recorded).

        Raises:
            ConfigError: ``<source>: [<env_key>]: <field> ...``, one line per invalid field.
        """
        where = f"{source}: [{env_key}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a mapping of hyperparameters, got {type(entry).__name__}")
        data = {k: entry[k] for k in WRAPPER_KEYS if k in entry}
        data["hyperparams"] = {k: v for k, v in entry.items() if k not in WRAPPER_KEYS}
        data.update(algo=algo, env_key=env_key, source=source, raw=jsonable(dict(entry)))
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_entry_error(exc, where)) from None

    def algorithm_kwargs(self) -> dict[str, Any]:
        """Constructor keyword arguments for the SB3 class (schedules built, policy_kwargs parsed)."""
        kwargs = build_schedules(self.hyperparams)
        if self.policy_kwargs:
            kwargs["policy_kwargs"] = dict(self.policy_kwargs)
        return kwargs


def _entry_error(exc: ValidationError, where: str) -> str:
    """One line per invalid field, each starting with ``where`` (bprl's messages name their field)."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "value_error":
            msg = str(err["ctx"]["error"])
        elif err["type"] == "missing":
            msg = f"{loc}: required field missing"
        else:
            msg = f"{loc}: {err['msg']}"
        lines.append(f"{where}: {msg}")
    return "\n".join(lines)


def read_agent_file(
    agent_spec: str | os.PathLike[str] | Mapping[str, Any],
) -> tuple[dict[str, Any], str, str | None]:
    """An agent file or dict as (document, source name, algorithm from the file name or ``algo`` key).

    Raises:
        ConfigError: missing file, invalid YAML, or not a mapping of env id -> entry.
    """
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


def _entry_key(doc: Mapping[str, Any], env_id: str | None, source: str) -> str:
    """The top-level key that applies to ``env_id``: itself, else ``default``, else the only entry."""
    if env_id is not None and env_id in doc:
        return env_id
    if "default" in doc:
        return "default"
    if env_id is None and len(doc) == 1:
        return next(iter(doc))
    raise ConfigError(
        f"{source}: no entry for env id {env_id!r} and no 'default' entry; entries: {sorted(doc)}"
    )


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

    Returns:
        The validated :class:`AgentSpec`.

    Raises:
        ConfigError: unknown algorithm, missing entry, unknown hyperparameter or policy, bad values.
    """
    doc, source, file_algo = read_agent_file(agent_spec)
    algo = algo or file_algo
    if algo is None:
        raise ConfigError(f"{source}: no algorithm given (name the file <algo>.yaml or add 'algo')")
    algorithm_class(str(algo), source)
    key = _entry_key(doc, env_id, source)
    return AgentSpec.from_entry(doc[key], algo=str(algo), env_key=str(key), source=source)
