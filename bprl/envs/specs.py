"""Environment specs: the ``envs/*.yaml`` files researchers edit, turned into environments.

An env spec names a registered id (which sets the action type), the data (a replay-set folder or a
virtual cohort), the subjects, the observed features, the cuff model, the reward and the action
settings; :class:`EnvSpec` lists its fields. :func:`make_env_from_spec` builds a
:class:`~bprl.envs.calibration_env.BPCalibrationEnv` from a file or a dict plus overrides;
:func:`env_kwargs_from_spec` gives the keyword arguments (also used for the vector environment).

>>> kw = env_kwargs_from_spec({"id": "bprl/BPCalibrationContinuous-v1", "reward": {"name": "squared"}})
>>> kw["action_type"], kw["reward"], kw["split"]
('continuous', 'squared', 'train')
>>> env_kwargs_from_spec({"reward": {"name": "mae", "scale": 5}})
Traceback (most recent call last):
...
bprl.errors.ConfigError: env spec: reward: unknown field(s) ['scale']; valid: name, scale_mmhg, band_mmhg
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from bprl.config import Spec, format_validation_error, read_yaml
from bprl.envs.calibration_env import BPCalibrationEnv
from bprl.envs.cuff import CuffModel
from bprl.envs.registration import ENV_ID, ENV_ID_CONTINUOUS
from bprl.envs.replay_sets import replay_set_for_cohort
from bprl.envs.rewards import check_reward
from bprl.errors import ConfigError

__all__ = [
    "SPEC_FIELDS",
    "EnvSpec",
    "env_kwargs_from_spec",
    "load_env_spec",
    "make_env_from_spec",
    "replay_set_for_cohort",
]

#: fields of a spec's ``actions:`` block (EnvParams fields; may also be given at the top level as overrides)
ACTION_FIELDS: tuple[str, ...] = (
    "nudge_mmhg",
    "max_offset_step_mmhg",
    "max_gain_step",
    "offset_limit_mmhg",
    "gain_min",
    "gain_max",
    "recalibrate_on_cuff",
    "recalibration",
    "kalman_q_mmhg2_per_h",
)
_ACTION_FIELDS = ACTION_FIELDS  # the old private name


class EnvSpec(Spec):
    """The top-level fields of an env spec (``envs/*.yaml``).

    :func:`load_env_spec` checks a spec's fields and their shapes with this model; the values
    are validated by the environment (:class:`~bprl.envs.params.EnvParams`,
    :class:`~bprl.envs.cuff.CuffModel`) after overrides, with messages naming the spec and the field.
    """

    id: str | None = Field(
        None,
        description="registered id this spec is a variant of (informational; sets action_type when given)",
    )
    description: str | None = Field(None, description="free text")
    replay_set: str | Path | None = Field(
        None, description="replay-set folder (relative paths: to the YAML file, else the working directory)"
    )
    cohort: str | Path | None = Field(
        None,
        description="virtual-cohort folder; its replay set is built once with PatLinearEstimator and cached",
    )
    split: str | None = Field(
        None, description="train / val / test (make_env_from_spec's split argument overrides it)"
    )
    subject_ids: list[str | int] | None = Field(None, description="explicit subject list (overrides split)")
    features: list[str] | None = Field(
        None, description="observed feature columns (a list; bprl.schemas.REPLAY_FEATURES)"
    )
    action_type: str | None = Field(None, description="discrete or continuous")
    cuff: dict[str, Any] | CuffModel | None = Field(
        None, description="CuffModel fields: duration_s, sd_sbp_mmhg, sd_dbp_mmhg, cost, budget"
    )
    reward: str | dict[str, Any] | None = Field(
        None,
        description="reward name (mae, squared, aami_band, 'module:function' or a bprl.rewards plugin), "
        "or {name, scale_mmhg, band_mmhg}",
    )
    max_steps: int | None = Field(None, description="step limit per episode (null: whole record)")
    start: str | None = Field(None, description="zero or random")
    actions: dict[str, Any] | None = Field(None, description="a mapping of " + ", ".join(ACTION_FIELDS))


#: top-level fields of an env spec (envs/*.yaml) and their meaning
SPEC_FIELDS: dict[str, str] = {name: f.description or "" for name, f in EnvSpec.model_fields.items()}


def load_env_spec(path_or_dict: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Read an env spec (YAML file or mapping) and check its top-level fields against :class:`EnvSpec`.

    Args:
        path_or_dict: a YAML file or a mapping of spec fields.

    Returns:
        The spec as a dict; for a file, ``_path`` holds its path, and relative ``replay_set`` /
        ``cohort`` folders that exist next to it are made relative to it.

    Raises:
        ConfigError: naming the file (or ``env spec``) and the field: file not found, not YAML, not a
            mapping, unknown fields, values of the wrong shape.
    """
    base: Path | None = None
    if isinstance(path_or_dict, Mapping):
        spec = dict(path_or_dict)
    else:
        path = Path(path_or_dict)
        if not path.is_file():
            raise ConfigError(f"{path}: env spec file not found")
        spec = read_yaml(path)  # ConfigError naming the file: unreadable, not YAML, not a mapping
        base = path.parent
        spec["_path"] = str(path)
    where = spec.get("_path", "env spec")
    unknown = sorted(str(k) for k in spec if k not in SPEC_FIELDS and k != "_path")
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; valid: {sorted(SPEC_FIELDS)}")
    try:
        EnvSpec.model_validate({k: v for k, v in spec.items() if k != "_path"})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(where), "env spec")) from None
    for key in ("replay_set", "cohort"):
        if spec.get(key) is not None and base is not None:
            p = Path(os.path.expandvars(str(spec[key]))).expanduser()
            if not p.is_absolute() and (base / p).exists():
                spec[key] = str(base / p)
    return spec


def _merged(spec: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with ``overrides`` (top-level fields replaced; ``cuff`` and ``actions`` mappings merged)."""
    out = dict(spec)
    for k, v in overrides.items():
        if k in ("cuff", "actions") and isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def _action_type_kwargs(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``action_type`` from the spec's ``id`` (overridden by an explicit ``action_type``)."""
    kw: dict[str, Any] = {}
    env_id = spec.get("id")
    if env_id is not None:
        if env_id not in (ENV_ID, ENV_ID_CONTINUOUS):
            hint = (
                " (the v0 ids were replaced by v1, whose observation has 4 more fields: change the id and "
                "retrain agents)"
                if str(env_id).endswith("-v0")
                else ""
            )
            raise ConfigError(
                f"{where}: id: unknown env id {env_id!r}; valid: {[ENV_ID, ENV_ID_CONTINUOUS]}{hint}"
            )
        kw["action_type"] = "discrete" if env_id == ENV_ID else "continuous"
    if "action_type" in spec:
        kw["action_type"] = spec["action_type"]
    return kw


def _data_kwargs(spec: Mapping[str, Any], split: str | None, where: str) -> dict[str, Any]:
    """The data and subject arguments: replay set (or cohort), tables, split, subjects, features."""
    kw: dict[str, Any] = {}
    if spec.get("replay_set") is not None and spec.get("cohort") is not None:
        raise ConfigError(f"{where}: give either replay_set or cohort, not both")
    if spec.get("replay_set") is not None:
        kw["replay_set"] = os.path.expandvars(str(spec["replay_set"]))
    elif spec.get("cohort") is not None:
        kw["replay_set"] = replay_set_for_cohort(spec["cohort"])
    if "tables" in spec:
        kw["tables"] = spec["tables"]
    kw["split"] = spec.get("split", split) if split is None else split
    if spec.get("subject_ids") is not None:
        kw["subject_ids"] = [str(s) for s in spec["subject_ids"]]
    if spec.get("features") is not None:
        if not isinstance(spec["features"], list | tuple):
            raise ConfigError(f"{where}: features: expected a list of feature names")
        kw["features"] = tuple(spec["features"])
    return kw


def _reward_kwargs(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``reward`` (a name, or ``{name, scale_mmhg, band_mmhg}``), checked, and its scales."""
    kw: dict[str, Any] = {}
    reward = spec.get("reward")
    if isinstance(reward, Mapping):
        unknown = sorted(set(reward) - {"name", "scale_mmhg", "band_mmhg"})
        if unknown:
            raise ConfigError(
                f"{where}: reward: unknown field(s) {unknown}; valid: name, scale_mmhg, band_mmhg"
            )
        kw["reward"] = reward.get("name", "mae")
        if "scale_mmhg" in reward:
            kw["reward_scale_mmhg"] = reward["scale_mmhg"]
        if "band_mmhg" in reward:
            kw["aami_band_mmhg"] = reward["band_mmhg"]
    elif reward is not None:
        kw["reward"] = reward
    if "reward" in kw:
        try:
            check_reward(kw["reward"])
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return kw


def _action_kwargs(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The ``actions:`` block, then top-level reward scales and action fields (overrides) over it."""
    actions = spec.get("actions") or {}
    if not isinstance(actions, Mapping):
        raise ConfigError(f"{where}: actions: expected a mapping")
    unknown = sorted(set(actions) - set(ACTION_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: actions: unknown field(s) {unknown}; valid: {list(ACTION_FIELDS)}")
    kw = dict(actions)
    for k in ("reward_scale_mmhg", "aami_band_mmhg", *ACTION_FIELDS):
        if k in spec:
            kw[k] = spec[k]
    return kw


def env_kwargs_from_spec(
    spec: Mapping[str, Any], split: str | None = "train", **overrides: Any
) -> dict[str, Any]:
    """Translate a checked spec plus overrides into BPCalibrationEnv keyword arguments.

    Args:
        spec: a spec from :func:`load_env_spec` (or a mapping of its fields).
        split: the subjects' split; ``None``: the spec's own split, else all subjects.
        **overrides: top-level spec fields to replace (``cuff`` and ``actions`` mappings are merged),
            plus ``tables`` and top-level action fields.

    Returns:
        Keyword arguments of :class:`~bprl.envs.calibration_env.BPCalibrationEnv`.

    Raises:
        ConfigError: naming the spec and the field: unknown id, reward or action field, both
            ``replay_set`` and ``cohort``, features not a list.
    """
    spec = dict(spec)
    where = spec.pop("_path", "env spec")
    spec = _merged(spec, overrides)
    kw = _action_type_kwargs(spec, where)
    kw.update(_data_kwargs(spec, split, where))
    if spec.get("cuff") is not None:
        kw["cuff"] = spec["cuff"]
    kw.update(_reward_kwargs(spec, where))
    if "max_steps" in spec:
        kw["max_steps"] = spec["max_steps"]
    if spec.get("start") is not None:
        kw["start"] = spec["start"]
    kw.update(_action_kwargs(spec, where))
    return kw


def make_env_from_spec(
    path_or_dict: str | os.PathLike[str] | Mapping[str, Any],
    split: str | None = "train",
    **overrides: Any,
) -> BPCalibrationEnv:
    """Build a :class:`~bprl.envs.calibration_env.BPCalibrationEnv` from an env spec (``envs/*.yaml`` or a dict).

    ``split`` selects the subjects (``None``: the spec's own split, else all). ``overrides`` replace
    top-level spec fields (``cuff`` and ``actions`` mappings are merged), e.g.
    ``make_env_from_spec("envs/default.yaml", split="test", reward="squared", cuff={"budget": 4})``.

    Raises:
        ConfigError: naming the spec and the field: unknown field, unknown reward, empty split,
            bad value.
    """
    spec = load_env_spec(path_or_dict)
    where = spec.get("_path", "env spec")
    kw = env_kwargs_from_spec(spec, split, **overrides)
    try:
        return BPCalibrationEnv(**kw)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
