"""Reading and checking an experiment file: :func:`load_experiment` and :class:`Experiment`.

:func:`load_experiment` validates a YAML file or a mapping with :class:`ExperimentConfig` and then
checks what the schema alone cannot, all before any work starts: that every file and folder it
names exists (``${VAR}``, ``${VAR:-default}`` and ``~`` expanded, relative paths tried against
the current directory, the experiment folder's parent, the experiment folder and the repository),
that the cohort parameter file is a valid :class:`bprl.cohort.CohortSpec`, that every calibrator
is known (a built-in, a plugin, or a ``module:Class`` spec that imports and names a policy), and
that fraction splits give every split a subject. Problems raise :class:`bprl.errors.ConfigError`
naming the file and the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bprl.cohort.spec import load_spec as load_cohort_spec
from bprl.config import format_validation_error, read_yaml
from bprl.errors import BprlError, CohortError, ConfigError
from bprl.experiments.schema import ExperimentConfig, PolicySpec
from bprl.experiments.subject_splits import check_split_sizes
from bprl.policies import known_calibrators, resolve_calibrator

__all__ = ["REPO_ROOT", "Experiment", "expand_path", "format_experiment_error", "load_experiment"]

#: the repository (or installed tree) root: relative paths of an experiment are tried against it last
REPO_ROOT = Path(__file__).resolve().parents[2]

_ENV_RE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def expand_path(text: str, base_dirs: Iterable[Path] = ()) -> Path:
    """Expand ``${VAR}`` / ``${VAR:-default}`` and ``~`` in ``text`` and resolve it.

    A relative path is tried against the current directory, then each of
    ``base_dirs`` in order; the first that exists wins (the current directory
    when none does).

    Raises:
        ConfigError: ``${VAR}`` names an unset environment variable and gives no default.
    """

    def _sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group("name"))
        if value is None:
            if m.group("default") is None:
                raise ConfigError(f"path {text!r}: environment variable {m.group('name')} is not set")
            value = m.group("default")
        return value

    path = Path(os.path.expanduser(_ENV_RE.sub(_sub, text)))
    if path.is_absolute():
        return path
    candidates = [Path.cwd() / path, *(Path(b) / path for b in base_dirs)]
    for cand in candidates:
        if cand.exists():
            return cand.resolve()
    return candidates[0].resolve()


def format_experiment_error(exc: ValidationError, source: str) -> str:
    """``source: invalid experiment file`` then one ``  field.path: problem (got value)`` line per error."""
    return format_validation_error(exc, source, "experiment file")


@dataclass
class Experiment:
    """A validated experiment with every path resolved.

    Attributes:
        config: the validated file.
        source: where it came from (file path or ``"<dict>"``).
        base_dirs: folders relative paths are resolved against (after the current directory).
        record_dirs: resolved ``cohort.records`` folders.
        env_spec: resolved environment spec file.
        agent_specs: policy label -> resolved agent spec file.
        calibrators: policy label -> calibrator as the rollouts get it (a ``file.py:Class``
            spec with its file resolved; other names as written).
        cohort_spec: resolved virtual-cohort parameter file or ``None``.
        estimator_checkpoint: resolved estimator file or ``None``.
    """

    config: ExperimentConfig
    source: str
    base_dirs: list[Path]
    record_dirs: list[Path] = field(default_factory=list)
    env_spec: Path | None = None
    agent_specs: dict[str, Path] = field(default_factory=dict)
    calibrators: dict[str, str] = field(default_factory=dict)
    cohort_spec: Path | None = None
    estimator_checkpoint: Path | None = None

    @property
    def name(self) -> str:
        """Experiment name."""
        return self.config.name

    def resolved_dict(self) -> dict[str, Any]:
        """The configuration with resolved paths, as written to ``config.resolved.yaml``."""
        d = self.config.model_dump(mode="json")
        if self.record_dirs:
            d["cohort"]["records"] = [str(p) for p in self.record_dirs]
        if self.cohort_spec is not None:
            d["cohort"]["virtual"]["spec"] = str(self.cohort_spec)
        if self.env_spec is not None:
            d["env"]["spec"] = str(self.env_spec)
        for p, pol in zip(d["policies"], self.config.policies, strict=True):
            p["name"] = pol.label
            if pol.agent is not None:
                p["agent"] = str(self.agent_specs[pol.label])
            else:
                p["calibrator"] = self.calibrators.get(pol.label, pol.calibrator)
        if self.estimator_checkpoint is not None:
            d["estimator"]["checkpoint"] = str(self.estimator_checkpoint)
        if self.config.estimator.kind in ("pat_linear", "camera_linear"):
            del d["estimator"]["train"]  # the CNN-GRU's settings; the linear models take none
        return d


def _read_source(source: str | os.PathLike[str] | dict[str, Any]) -> tuple[dict[str, Any], str, list[Path]]:
    """The raw mapping, its label for messages, and the folders relative paths are tried against."""
    if isinstance(source, dict):
        return source, "<dict>", [REPO_ROOT]
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{path}: experiment file not found")
    raw = read_yaml(path)
    return raw, str(path), [path.resolve().parent.parent, path.resolve().parent, REPO_ROOT]


def load_experiment(source: str | os.PathLike[str] | dict[str, Any] | Experiment) -> Experiment:
    """Read and validate an experiment file (or dict); ConfigError naming the field and problem.

    Checks, before any work: the schema (unknown fields, types, bounds, seeds are
    integers, splits non-empty; ``features`` and ``estimator.train`` by their own specs),
    that every policy names a known calibrator or an existing agent file, that the
    environment spec, cohort parameter file and record folders exist, and that fraction
    splits give every split at least one subject.

    Args:
        source: an experiment YAML file, a mapping of the same content, or an
            :class:`Experiment` (returned as is).

    Returns:
        The experiment with its paths resolved.

    Raises:
        ConfigError: naming the file and the field.
    """
    if isinstance(source, Experiment):
        return source
    raw, label, base_dirs = _read_source(source)
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_experiment_error(exc, label)) from None
    exp = Experiment(cfg, label, base_dirs)
    _check_references(exp)
    check_split_sizes(cfg, exp.source)
    return exp


def _existing(text: str, exp: Experiment, where: str, want_dir: bool = False) -> Path:
    """``text`` resolved against the experiment's folders; ConfigError naming ``where`` when absent."""
    path = expand_path(text, exp.base_dirs)
    ok = path.is_dir() if want_dir else path.is_file()
    if not ok:
        kind = "folder" if want_dir else "file"
        raise ConfigError(f"{exp.source}: {where}: {kind} {text!r} not found (looked at {path})")
    return path


def _checkpoint_path(text: str, exp: Experiment) -> Path:
    """``estimator.checkpoint``: ``pretrained`` (the shipped default), a checkpoint folder or a file."""
    from bprl.estimator.pretrained import PRETRAINED_NAME, pretrained_path

    if text == PRETRAINED_NAME:
        try:
            return pretrained_path()
        except BprlError as exc:
            raise ConfigError(f"{exp.source}: estimator.checkpoint: {exc}") from None
    path = expand_path(text, exp.base_dirs)
    if not path.exists():
        raise ConfigError(
            f"{exp.source}: estimator.checkpoint: {text!r} not found (looked at {path}); give a "
            "checkpoint folder, a .json or .onnx file, or `pretrained`"
        )
    return path


def _check_references(exp: Experiment) -> None:
    """Resolve and check every file and folder the experiment names, and its calibrators."""
    cfg = exp.config
    if cfg.cohort.records:
        exp.record_dirs = [
            _existing(r, exp, f"cohort.records.{i}", want_dir=True) for i, r in enumerate(cfg.cohort.records)
        ]
    if cfg.cohort.virtual is not None and cfg.cohort.virtual.spec:
        exp.cohort_spec = _existing(cfg.cohort.virtual.spec, exp, "cohort.virtual.spec")
        try:
            load_cohort_spec(exp.cohort_spec)
        except CohortError as exc:
            raise ConfigError(f"{exp.source}: cohort.virtual.spec: {exc}") from None
    exp.env_spec = _existing(cfg.env.spec, exp, "env.spec")
    if cfg.estimator.checkpoint:
        exp.estimator_checkpoint = _checkpoint_path(cfg.estimator.checkpoint, exp)
    for i, pol in enumerate(cfg.policies):
        if pol.agent is not None:
            exp.agent_specs[pol.label] = _existing(pol.agent, exp, f"policies.{i}.agent")
        else:
            exp.calibrators[pol.label] = _check_calibrator(pol, exp, f"policies.{i}.calibrator")


def _check_calibrator(pol: PolicySpec, exp: Experiment, where: str) -> str:
    """The calibrator of ``pol`` as rollouts get it; ConfigError when it is unknown or unusable.

    A ``module:Class`` spec is imported now (so a typo fails before any work); the file of a
    ``path/to/file.py:Class`` spec is resolved like the experiment's other paths. Plain names
    must be built-ins or installed plugins (:func:`bprl.policies.known_calibrators`).
    """
    name = str(pol.calibrator)
    if ":" not in name:
        valid = known_calibrators()
        if name not in valid:
            raise ConfigError(
                f"{exp.source}: {where}: unknown policy {name!r}; valid calibrators: {', '.join(valid)}; "
                "or a 'module:Class' spec; or an agent: {agent: agents/<name>.yaml}"
            )
        return name
    module_part, _, attr = name.rpartition(":")
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        name = f"{_existing(module_part, exp, where)}:{attr}"
    try:
        resolve_calibrator(name)
    except ConfigError as exc:
        raise ConfigError(f"{exp.source}: {where}: {exc}") from None
    return name
