"""Experiment files, the resumable experiment runner, and its local / Ray backends.

An experiment file (YAML) names a cohort, how its subjects are split, the
feature and estimator settings, an environment spec, the policies to compare
and the seeds. :func:`load_experiment` validates it (pydantic, ``extra="forbid"``)
and raises :class:`bprl.errors.ConfigError` naming the bad field before any
work starts. :func:`run_experiment` then builds whatever is missing as a chain
of *units* and writes a results folder::

    results/<name>/
      .bprl-results             marks the folder as the runner's own (--no-resume clears only such folders)
      config.resolved.yaml      the validated experiment, paths resolved
      provenance.json           package versions, git commit, python, platform, stage timings
      failures.csv              units skipped after a BprlError (unit, error)
      logs/<policy>__seed<k>.parquet   episode logs on the test subjects
      metrics.csv, metrics.json        from bprl.evaluation.compare_policies
      figures/, report.html, report.md from bprl.reports.write_report
      work/                     cohort/, features/ (replay-table cache), estimator/, replay_set/, agents/
      state/<stage>/<unit>.json completion markers (fingerprint, status, seconds)

Every unit (the cohort, one record's replay table, the estimator, the replay
set, one agent per (agent, seed), one rollout per (policy, seed)) writes its
output to a temporary path that is renamed into place, then a completion
marker holding a fingerprint of its inputs. A run started again skips every
unit whose marker and output exist with the same fingerprint, so a killed run
resumes where it stopped and ends with the same results as an uninterrupted
one. Units of a stage run in parallel on a backend: a local process pool
(``workers`` processes; 1 = in-process) or a Ray cluster.

The results folder is identified by its resolved path (``results/x``,
``$PWD/results/x`` and a symlink to it are one folder); a run removes the
temporary files and folders that killed units left behind (``.<name>.*.tmp*``,
``.cohort-view-*``) before it starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from tqdm.auto import tqdm

from bprl.agents import MAX_SEED, MAX_TIMESTEPS
from bprl.cache_versions import STAMP_KEY, cache_versions, log_rebuild, stale_reason
from bprl.errors import BprlError, ConfigError
from bprl.tables import (
    SPLITS,
    atomic_output,
    concat_records,
    make_temp_dir,
    write_parquet_atomic,
    write_replay_set,
    write_text_atomic,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

#: calibrator names accepted when :mod:`bprl.calibrators` cannot be imported (kept in sync by hand)
_FALLBACK_CALIBRATORS: tuple[str, ...] = ()

#: most virtual subjects: ISO 81060-2 asks for 85, the largest public cuffless data sets hold a few
#: thousand; a virtual subject is a few MB of WFDB plus its replay table per hour
MAX_SUBJECTS = 10_000
#: longest virtual recording per subject in hours: two days (24-h ambulatory monitoring twice over);
#: a subject's waveforms are generated in memory
MAX_HOURS_PER_SUBJECT = 48.0
#: most estimator training epochs: the CNN-GRU stops early after tens of epochs
MAX_EPOCHS = 10_000
#: most processes of the local pool / CPUs of a local Ray instance: more than one machine has,
#: and each spawned worker holds its own torch (~0.3 GB)
MAX_WORKERS = 256
#: most bootstrap resamples: percentile intervals settle after a few thousand; memory is
#: resamples x subjects
MAX_RESAMPLES = 100_000

#: the upper bounds of the experiment file, documented in docs/readme/80-experiments.md
LIMITS: dict[str, int | float] = {
    "subjects": MAX_SUBJECTS,
    "hours_per_subject": MAX_HOURS_PER_SUBJECT,
    "epochs": MAX_EPOCHS,
    "timesteps": MAX_TIMESTEPS,
    "workers": MAX_WORKERS,
    "n_resamples": MAX_RESAMPLES,
    "seed": MAX_SEED,
}

#: an experiment or policy name: a plain file name that cannot be ``.``/``..`` or start with ``-``
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"

_NAME_RE = re.compile(NAME_PATTERN)


def _plain_name(value: str) -> str:
    """``value`` when it matches :data:`NAME_PATTERN`; else a ValueError saying what a name may be."""
    if not _NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a plain name: 1 to 128 letters, digits, '_', '.', '-', "
            "starting with a letter, digit or '_' (so never '.', '..' or a path)"
        )
    return value


#: a name used as a file or folder name (experiment, policy)
PlainName = Annotated[str, AfterValidator(_plain_name)]

#: a seed anywhere in the experiment file
Seed = Annotated[StrictInt, Field(ge=0, le=MAX_SEED)]

#: file in a results folder saying the runner made it (``--no-resume`` clears only such folders)
RESULTS_MARKER = ".bprl-results"

# =============================================================== schema helpers
_ENV_RE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def expand_path(text: str, base_dirs: Iterable[Path] = ()) -> Path:
    """Expand ``${VAR}`` / ``${VAR:-default}`` and ``~`` in ``text`` and resolve it.

    A relative path is tried against the current directory, then each of
    ``base_dirs`` in order; the first that exists wins (the current directory
    when none does).
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


class _Model(BaseModel):
    """Base of every experiment-file section: unknown fields are errors, types are strict.

    Strict: ``true`` is not a number, ``1.0`` or ``"1e9"`` is not an integer, ``"2"`` is not a
    number; infinite and NaN floats are refused.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class VirtualCohortSpec(_Model):
    """A virtual cohort built by :func:`bprl.cohort.make_cohort`."""

    subjects: StrictInt = Field(ge=2, le=MAX_SUBJECTS, description="number of virtual subjects")
    hours: float = Field(gt=0, le=MAX_HOURS_PER_SUBJECT, description="recording length per subject in hours")
    seed: Seed = Field(0, description="cohort seed")
    spec: str | None = Field(None, description="optional cohort parameter file (YAML)")


class CohortSpec(_Model):
    """Where the subjects come from: a virtual cohort, folders of real records, or both."""

    virtual: VirtualCohortSpec | None = None
    records: list[str] | None = Field(None, description="folders searched recursively for WFDB headers")
    require: list[Literal["ecg", "ppg", "abp", "resp"]] = Field(
        default_factory=lambda: ["ecg", "ppg", "abp"],
        description="channel roles a real record must have to be used",
    )
    min_duration_s: float = Field(60.0, ge=0, description="real records shorter than this are left out")
    min_reference_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="real records with a smaller share of steps with arterial reference are left out",
    )

    @model_validator(mode="after")
    def _one_source(self) -> CohortSpec:
        if self.virtual is None and not self.records:
            raise ValueError("give `virtual` and/or `records`")
        return self


class SplitSpec(_Model):
    """How subjects are assigned to train / val / test.

    Each split is either a fraction of the subjects (assigned by a seeded
    permutation of the sorted subject ids) or an explicit list of subject ids.
    ``records_to`` sends every real-record subject to one split (the
    fractions then apply to virtual subjects only).
    """

    train: float | list[str] = 0.6
    val: float | list[str] = 0.2
    test: float | list[str] = 0.2
    seed: Seed = 0
    records_to: Literal["train", "val", "test"] | None = None

    @field_validator("train", "val", "test", mode="before")
    @classmethod
    def _number_or_list(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float | list):
            raise ValueError(f"give a fraction in [0, 1] or a list of subject ids, got {v!r}")
        return v

    @field_validator("train", "val", "test")
    @classmethod
    def _fraction_or_ids(cls, v: float | list[str]) -> float | list[str]:
        if isinstance(v, list):
            if not v:
                raise ValueError("a split with no subjects (empty list)")
            if len(set(v)) != len(v):
                raise ValueError("subject ids repeated")
        elif not 0 <= v <= 1:
            raise ValueError(f"fraction {v} is not in [0, 1]")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SplitSpec:
        values = [self.train, self.val, self.test]
        kinds = {isinstance(v, list) for v in values}
        if len(kinds) > 1:
            raise ValueError("give all three splits as fractions or all three as subject lists")
        if not isinstance(self.train, list):
            total = float(sum(values))  # type: ignore[arg-type]
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"fractions train+val+test sum to {total:g}, not 1")
        else:
            seen: dict[str, str] = {}
            for name, ids in zip(SPLITS, values, strict=True):
                for sid in ids:  # type: ignore[union-attr]
                    if sid in seen:
                        raise ValueError(f"subject {sid!r} is in both {seen[sid]} and {name}")
                    seen[sid] = name
        return self


class EstimatorSpec(_Model):
    """The population estimator: a CNN-GRU trained on the train split, or the PAT-linear baseline."""

    kind: Literal["cnn_gru", "pat_linear"] = "cnn_gru"
    train: dict[str, Any] = Field(default_factory=dict, description="training settings for train_estimator")
    checkpoint: str | None = Field(None, description="use this trained estimator instead of training one")
    seed: Seed = 0


class EstimatorTrainSpec(_Model):
    """Types and bounds of ``estimator.train`` (the fields of :class:`bprl.estimator.TrainConfig`).

    Only validates: the runner passes the mapping on as written (``model`` is checked by
    ``ModelConfig.from_dict``); which keys exist is checked against ``TrainConfig`` itself.
    """

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    model: dict[str, Any] = Field(default_factory=dict, description="ModelConfig fields")
    epochs: StrictInt = Field(30, ge=1, le=MAX_EPOCHS, description="maximum number of epochs")
    batch_size: StrictInt = Field(64, ge=1, le=65_536, description="windows per optimiser step")
    lr: float = Field(2e-3, gt=0, le=10, description="Adam learning rate")
    weight_decay: float = Field(1e-4, ge=0, le=10, description="Adam weight decay")
    patience: StrictInt = Field(5, ge=0, le=MAX_EPOCHS, description="validations without improvement")
    oversample: StrictBool = Field(False, description="oversample rare SBP ranges")
    max_windows_per_step: StrictInt | None = Field(None, ge=1, le=1_000_000)
    max_steps_per_epoch: StrictInt | None = Field(None, ge=1, le=MAX_TIMESTEPS)
    eval_every_steps: StrictInt | None = Field(None, ge=1, le=MAX_TIMESTEPS)


class EnvSpec(_Model):
    """The environment: a spec file in ``envs/`` plus overrides of its fields."""

    spec: str = "envs/default.yaml"
    overrides: dict[str, Any] = Field(default_factory=dict)


class PolicySpec(_Model):
    """One policy to compare: a classical calibrator or an RL agent."""

    calibrator: str | None = None
    agent: str | None = Field(None, description="agent spec file, e.g. agents/ppo.yaml")
    params: dict[str, Any] = Field(
        default_factory=dict, description="calibrator parameters / agent overrides"
    )
    timesteps: StrictInt | None = Field(
        None, ge=1, le=MAX_TIMESTEPS, description="training timesteps (agents)"
    )
    name: PlainName | None = Field(None, description="label in logs and reports")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"calibrator": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_kind(self) -> PolicySpec:
        if (self.calibrator is None) == (self.agent is None):
            raise ValueError("give exactly one of `calibrator` or `agent`")
        if self.calibrator is not None and self.timesteps is not None:
            raise ValueError("`timesteps` applies to agents only")
        return self

    @property
    def label(self) -> str:
        """The policy name used in logs: ``name`` or the calibrator / agent-file stem."""
        if self.name:
            return self.name
        return self.calibrator if self.calibrator is not None else Path(str(self.agent)).stem


class BudgetSpec(_Model):
    """Budgets: cuff readings per episode (passed to the environment) and default agent training steps."""

    cuff_budget: StrictInt | None = Field(None, ge=0)
    timesteps: StrictInt = Field(20_000, ge=1, le=MAX_TIMESTEPS)


class EvaluationSpec(_Model):
    """Settings of the standards evaluation (:mod:`bprl.evaluation`)."""

    n_resamples: StrictInt = Field(
        1000, ge=1, le=MAX_RESAMPLES, description="bootstrap resamples (subjects, seeds)"
    )
    confidence: float = Field(0.95, gt=0, lt=1, description="level of the bootstrap intervals")
    seed: Seed = Field(0, description="seed of the bootstrap")


class BackendSpec(_Model):
    """Default backend of the experiment (overridden by the CLI / ``run_experiment`` arguments)."""

    name: Literal["local", "ray"] = "local"
    workers: StrictInt = Field(2, ge=1, le=MAX_WORKERS)
    ray_address: str | None = None


class ExperimentConfig(_Model):
    """A validated experiment file."""

    name: PlainName = Field(description="results go to results/<name>/")
    description: str = ""
    cohort: CohortSpec
    splits: SplitSpec = Field(default_factory=SplitSpec)
    features: dict[str, Any] = Field(default_factory=dict)
    estimator: EstimatorSpec = Field(default_factory=EstimatorSpec)
    env: EnvSpec = Field(default_factory=EnvSpec)
    policies: Annotated[list[PolicySpec], Field(min_length=1)]
    seeds: Annotated[list[Seed], Field(min_length=1)] = Field(default_factory=lambda: [0])
    budgets: BudgetSpec = Field(default_factory=BudgetSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    backend: BackendSpec = Field(default_factory=BackendSpec)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds repeated: {v}")
        return v

    @model_validator(mode="after")
    def _unique_policies(self) -> ExperimentConfig:
        labels = [p.label for p in self.policies]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"policies: names {dup} used twice (set `name:` to tell them apart)")
        return self


# ============================================================ loading / checks
def _format_validation(exc: ValidationError, source: str, prefix: str = "") -> str:
    """``source: invalid experiment file`` then one ``  field.path: problem (got value)`` line per error."""
    lines = [f"{source}: invalid experiment file"]
    for err in exc.errors():
        loc = prefix + ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field missing"
        elif isinstance(err.get("input"), bool | int | float | str) and not err["type"].startswith(
            "value_error"
        ):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"  {loc.rstrip('.')}: {msg}")
    return "\n".join(lines)


def known_calibrators() -> list[str]:
    """Names accepted by :func:`bprl.calibrators.make_calibrator` (empty when that module is absent)."""
    try:
        mod = importlib.import_module("bprl.calibrators")
    except ModuleNotFoundError:
        return list(_FALLBACK_CALIBRATORS)
    for attr in ("calibrator_names", "list_calibrators"):
        fn = getattr(mod, attr, None)
        if callable(fn):
            return sorted(fn())
    for attr in ("CALIBRATORS", "REGISTRY", "_REGISTRY", "CALIBRATOR_CLASSES"):
        reg = getattr(mod, attr, None)
        if isinstance(reg, dict):
            return sorted(reg)
    return list(_FALLBACK_CALIBRATORS)


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
        cohort_spec: resolved virtual-cohort parameter file or ``None``.
        estimator_checkpoint: resolved estimator file or ``None``.
    """

    config: ExperimentConfig
    source: str
    base_dirs: list[Path]
    record_dirs: list[Path] = field(default_factory=list)
    env_spec: Path | None = None
    agent_specs: dict[str, Path] = field(default_factory=dict)
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
        for p in d["policies"]:
            label = p["name"] or p["calibrator"] or Path(str(p["agent"])).stem
            p["name"] = label
            if p["agent"] is not None:
                p["agent"] = str(self.agent_specs[label])
        if self.estimator_checkpoint is not None:
            d["estimator"]["checkpoint"] = str(self.estimator_checkpoint)
        return d


def load_experiment(source: str | os.PathLike[str] | dict[str, Any] | Experiment) -> Experiment:
    """Read and validate an experiment file (or dict); ConfigError naming the field and problem.

    Checks, before any work: the schema (unknown fields, types, seeds are
    integers, splits non-empty), that every policy names a known calibrator or
    an existing agent file, that the environment spec and record folders exist,
    and that fraction splits give every split at least one subject.
    """
    if isinstance(source, Experiment):
        return source
    if isinstance(source, dict):
        raw, label, base_dirs = source, "<dict>", [REPO_ROOT]
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{path}: experiment file not found")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: an experiment file must be a YAML mapping")
        label = str(path)
        base_dirs = [path.resolve().parent.parent, path.resolve().parent, REPO_ROOT]
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, label)) from None
    exp = Experiment(cfg, label, base_dirs)
    _check_references(exp)
    return exp


def _existing(text: str, exp: Experiment, where: str, want_dir: bool = False) -> Path:
    path = expand_path(text, exp.base_dirs)
    ok = path.is_dir() if want_dir else path.is_file()
    if not ok:
        kind = "folder" if want_dir else "file"
        raise ConfigError(f"{exp.source}: {where}: {kind} {text!r} not found (looked at {path})")
    return path


def _check_references(exp: Experiment) -> None:
    cfg = exp.config
    if cfg.cohort.records:
        exp.record_dirs = [
            _existing(r, exp, f"cohort.records.{i}", want_dir=True) for i, r in enumerate(cfg.cohort.records)
        ]
    if cfg.cohort.virtual is not None and cfg.cohort.virtual.spec:
        exp.cohort_spec = _existing(cfg.cohort.virtual.spec, exp, "cohort.virtual.spec")
    exp.env_spec = _existing(cfg.env.spec, exp, "env.spec")
    if cfg.estimator.checkpoint:
        exp.estimator_checkpoint = _existing(cfg.estimator.checkpoint, exp, "estimator.checkpoint")
    _check_settings(exp)
    valid = known_calibrators()
    for i, pol in enumerate(cfg.policies):
        if pol.agent is not None:
            exp.agent_specs[pol.label] = _existing(pol.agent, exp, f"policies.{i}.agent")
        elif valid and pol.calibrator not in valid:
            raise ConfigError(
                f"{exp.source}: policies.{i}.calibrator: unknown policy {pol.calibrator!r}; "
                f"valid calibrators: {', '.join(valid)}; or an agent: {{agent: agents/<name>.yaml}}"
            )
    # fraction splits: every split must receive a subject, checked on the virtual count when known
    sp = cfg.splits
    if not isinstance(sp.train, list):
        n = None
        if cfg.cohort.virtual is not None and (not cfg.cohort.records or sp.records_to is not None):
            n = cfg.cohort.virtual.subjects
        if n is not None:
            counts = split_counts(n, {"train": sp.train, "val": sp.val, "test": sp.test})  # type: ignore[dict-item]
            empty = [s for s in SPLITS if counts[s] == 0 and s != sp.records_to]
            if empty:
                raise ConfigError(
                    f"{exp.source}: splits: split(s) {empty} get no subjects "
                    f"({n} virtual subjects, fractions train={sp.train}, val={sp.val}, test={sp.test})"
                )


def _check_settings(exp: Experiment) -> None:
    """``features`` and ``estimator.train`` against FeatureConfig / TrainConfig (when those rooms exist)."""
    cfg = exp.config
    if cfg.features:
        try:
            from bprl.features import FeatureConfig
        except ImportError:  # pragma: no cover - features room absent
            FeatureConfig = None
        if FeatureConfig is not None:
            names = {f.name for f in dataclasses.fields(FeatureConfig)}
            for key in cfg.features:
                if key not in names:
                    raise ConfigError(
                        f"{exp.source}: features.{key}: unknown field; valid: {', '.join(sorted(names))}"
                    )
            try:
                FeatureConfig(**cfg.features)
            except (BprlError, TypeError, ValueError) as exc:
                raise ConfigError(f"{exp.source}: features: {exc}") from None
    if cfg.estimator.kind == "cnn_gru" and not cfg.estimator.checkpoint:
        try:
            from bprl.estimator import TrainConfig
        except ImportError:  # pragma: no cover - estimator room absent
            return
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        for key in cfg.estimator.train:
            if key not in names:
                raise ConfigError(
                    f"{exp.source}: estimator.train.{key}: unknown field; valid: {', '.join(sorted(names))}"
                )
        try:
            EstimatorTrainSpec.model_validate(cfg.estimator.train)
        except ValidationError as exc:
            raise ConfigError(_format_validation(exc, exp.source, prefix="estimator.train.")) from None
        try:
            train_config(cfg.estimator.train)
        except (BprlError, TypeError, ValueError) as exc:
            raise ConfigError(f"{exp.source}: estimator.train: {exc}") from None
    elif cfg.estimator.kind == "pat_linear" and cfg.estimator.train:
        raise ConfigError(
            f"{exp.source}: estimator.train: the pat_linear estimator takes no training settings"
        )


def split_counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Subjects per split for ``n`` subjects: test and val rounded, train gets the rest."""
    n_test = round(fractions["test"] * n)
    n_val = round(fractions["val"] * n)
    if fractions["test"] > 0:
        n_test = max(n_test, 1)
    if fractions["val"] > 0:
        n_val = max(n_val, 1)
    return {"train": max(n - n_test - n_val, 0), "val": n_val, "test": n_test}


def assign_splits(subjects: pd.DataFrame, spec: SplitSpec, source: str = "experiment") -> dict[str, str]:
    """Map each subject id to a split.

    Args:
        subjects: one row per subject with columns ``subject_id`` and ``origin`` (``virtual``/``records``).
        spec: the experiment's split rule.
        source: name used in error messages.

    Raises:
        ConfigError: a listed subject does not exist, or a split ends up empty.
    """
    ids = sorted(subjects["subject_id"].astype(str).unique())
    out: dict[str, str] = {}
    if isinstance(spec.train, list):
        for name in SPLITS:
            for sid in getattr(spec, name):
                if sid not in ids:
                    raise ConfigError(f"{source}: splits.{name}: subject {sid!r} is not in the cohort")
                out[sid] = name
    else:
        pool = ids
        if spec.records_to is not None:
            rec = sorted(subjects.loc[subjects["origin"] == "records", "subject_id"].astype(str).unique())
            out.update(dict.fromkeys(rec, spec.records_to))
            pool = [s for s in ids if s not in out]
        fr = {"train": spec.train, "val": spec.val, "test": spec.test}
        counts = split_counts(len(pool), fr)  # type: ignore[arg-type]
        order = [pool[i] for i in np.random.default_rng(spec.seed).permutation(len(pool))]
        bounds = {"test": (0, counts["test"]), "val": (counts["test"], counts["test"] + counts["val"])}
        for i, sid in enumerate(order):
            out[sid] = next((s for s, (a, b) in bounds.items() if a <= i < b), "train")
    given = {s for s in SPLITS if isinstance(getattr(spec, s), list) or getattr(spec, s) > 0}
    given |= {spec.records_to} if spec.records_to else set()
    empty = [s for s in SPLITS if s in given and s not in out.values()]
    if empty:
        raise ConfigError(
            f"{source}: splits: split(s) {empty} have no subjects ({len(ids)} subjects in the cohort)"
        )
    for s in ("train", "test"):
        if s not in out.values():
            raise ConfigError(f"{source}: splits: the {s} split has no subjects")
    return out


# ===================================================================== backends
def _init_worker() -> None:
    """Worker initialiser: one BLAS/torch thread per process (the workers already run in parallel)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


@dataclass
class UnitResult:
    """What a unit reports back to the runner."""

    key: str
    status: str  # "done", "skipped" (BprlError, recorded), "cached"
    seconds: float = 0.0
    error: str = ""
    result: Any = None
    run_id: str = ""  # changes whenever the unit is executed; downstream fingerprints include it


class Backend:
    """Runs a stage's units and reports each as it finishes (base class: in-process)."""

    name = "local"
    workers = 1

    def map_units(self, units: list[Unit], desc: str, progress: bool = True) -> list[UnitResult]:
        """Run ``units`` (all of one stage); raise the first non-BprlError a unit raised."""
        results = []
        for unit in tqdm(units, desc=desc, unit="unit", disable=not progress or not units, leave=False):
            results.append(execute_unit(unit))
        return results

    def close(self) -> None:
        """Release workers."""


class LocalBackend(Backend):
    """A local process pool (``spawn`` processes; ``workers=1`` runs in-process)."""

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise ConfigError(f"backend: workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=get_context("spawn"), initializer=_init_worker
            )
        return self._pool

    def map_units(self, units: list[Unit], desc: str, progress: bool = True) -> list[UnitResult]:
        """Run the units on the pool (in-process when one worker or one unit)."""
        if self.workers == 1 or len(units) <= 1:
            return super().map_units(units, desc, progress)
        pool = self._get_pool()
        futures = {pool.submit(execute_unit, u): i for i, u in enumerate(units)}
        results: list[UnitResult | None] = [None] * len(units)
        with tqdm(total=len(units), desc=desc, unit="unit", disable=not progress, leave=False) as bar:
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        results[futures[fut]] = fut.result()
                        bar.update(1)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                wait(pending)  # let running units finish writing (their markers stay valid)
                raise
        return [r for r in results if r is not None]

    def close(self) -> None:
        """Shut the pool down."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayBackend(Backend):
    """Runs units as Ray tasks on a cluster (``address``) or a local instance started here."""

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None) -> None:
        try:
            import ray
        except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "backend 'ray' needs the optional dependency ray: pip install 'bprl[ray]'"
            ) from exc
        self._ray = ray
        self.workers = workers
        self._started = False
        if not ray.is_initialized():
            env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
            if address:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, runtime_env=env, log_to_driver=False)
            self._started = True
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_ray_execute)

    def map_units(self, units: list[Unit], desc: str, progress: bool = True) -> list[UnitResult]:
        """Submit every unit as a Ray task and gather them as they finish."""
        if not units:
            return []
        ray = self._ray
        refs = {self._remote.remote(u): i for i, u in enumerate(units)}
        results: list[UnitResult | None] = [None] * len(units)
        pending = list(refs)
        with tqdm(total=len(units), desc=desc, unit="unit", disable=not progress, leave=False) as bar:
            try:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    for ref in done:
                        try:
                            results[refs[ref]] = ray.get(ref)
                        except ray.exceptions.RayTaskError as exc:
                            raise exc.as_instanceof_cause() from None
                        bar.update(1)
            except BaseException:
                with contextlib.suppress(Exception):
                    ray.wait(pending, num_returns=len(pending))
                raise
        return [r for r in results if r is not None]

    def close(self) -> None:
        """Shut down the Ray instance if this backend started it."""
        if self._started:
            self._ray.shutdown()
            self._started = False


def _ray_execute(unit: Unit) -> UnitResult:
    _init_worker()
    return execute_unit(unit)


def make_backend(name: str, workers: int = 2, ray_address: str | None = None) -> Backend:
    """A backend by name: ``"local"`` (process pool) or ``"ray"``."""
    if name == "local":
        return LocalBackend(workers)
    if name == "ray":
        return RayBackend(workers, ray_address)
    raise ConfigError(f"backend: unknown backend {name!r}; valid: local, ray")


# ======================================================================== units
@dataclass
class Unit:
    """One resumable piece of work.

    Attributes:
        key: ``<stage>/<name>``, unique in the run; also the marker's file name.
        fn: module-level callable (picklable); called as ``fn(**kwargs)`` plus
            ``out=<temporary path>`` when ``output`` is set.
        kwargs: its arguments (picklable).
        output: final output path (file or folder) or ``None``; the unit writes
            to a temporary sibling that is renamed onto it on success.
        marker: completion-marker path.
        fingerprint: hash of the unit's inputs; a marker with another fingerprint is stale.
        output_is_dir: the output is a folder.
    """

    key: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    output: Path | None
    marker: Path
    fingerprint: str
    output_is_dir: bool = False


def unit_is_complete(unit: Unit) -> bool:
    """Whether ``unit`` has a marker with its fingerprint (and its output exists when it succeeded)."""
    if not unit.marker.is_file():
        return False
    try:
        info = json.loads(unit.marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if info.get("fingerprint") != unit.fingerprint:
        return False
    return info.get("status") != "done" or unit.output is None or unit.output.exists()


def execute_unit(unit: Unit) -> UnitResult:
    """Run one unit: output to a temporary path, rename into place, then write the marker.

    A :class:`BprlError` is recorded (marker status ``skipped``) instead of
    raised, so a batch goes on without the bad record / policy; any other
    exception propagates and leaves no marker, so the unit reruns on resume.
    """
    t0 = time.perf_counter()
    kwargs = dict(unit.kwargs)
    tmp: Path | None = None
    if unit.output is not None:
        unit.output.parent.mkdir(parents=True, exist_ok=True)
        if unit.output_is_dir:
            # renamed into place as a result folder: 0o777 & ~umask, not mkdtemp's 0700
            tmp = make_temp_dir(unit.output.parent, prefix=f".{unit.output.name}.")
        else:
            fd, name = tempfile.mkstemp(
                prefix=f".{unit.output.stem}.", suffix=f".tmp{unit.output.suffix}", dir=unit.output.parent
            )
            os.close(fd)
            tmp = Path(name)
            tmp.unlink()
        kwargs["out"] = tmp
    try:
        try:
            result = unit.fn(**kwargs)
        except BprlError as exc:
            res = UnitResult(unit.key, "skipped", time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
            res.run_id = uuid.uuid4().hex
        else:
            if unit.output is not None and tmp is not None:
                if not tmp.exists():
                    raise RuntimeError(f"unit {unit.key}: wrote nothing to its output {tmp}")
                if unit.output.is_dir() and not unit.output.is_symlink():
                    shutil.rmtree(unit.output)
                elif unit.output.exists():
                    unit.output.unlink()
                os.replace(tmp, unit.output)
            res = UnitResult(
                unit.key, "done", time.perf_counter() - t0, "", _jsonable(result), uuid.uuid4().hex
            )
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    marker = {"key": unit.key, "fingerprint": unit.fingerprint, "status": res.status, "error": res.error}
    marker |= {"seconds": round(res.seconds, 3), "result": res.result, "run_id": res.run_id}
    marker[STAMP_KEY] = cache_versions()  # the fingerprint includes them; kept readable to say why on rerun
    write_text_atomic(json.dumps(marker, indent=2, sort_keys=True, default=str), unit.marker)
    return res


def _jsonable(obj: Any) -> Any:
    try:
        json.dumps(obj)
        return obj
    except (TypeError, ValueError):
        return repr(obj)[:200]


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able ``parts`` (dict keys sorted) and of the major versions of numpy,
    pandas and torch (:func:`bprl.cache_versions.cache_versions`): a unit built under others reruns."""
    text = json.dumps([cache_versions(), *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ======================================================================= stages
@dataclass(frozen=True)
class Stages:
    """The functions the runner calls for each unit; module-level so that they pickle.

    Tests replace some of them (with :func:`dataclasses.replace`) to exercise
    scheduling, markers and resume without the heavy rooms.

    Attributes:
        cohort: ``(out, n_subjects, hours, seed, spec, workers) -> None``: build a virtual cohort in ``out``.
        list_virtual: ``(cohort_dir) -> DataFrame[subject_id, record_id, record_path]``.
        list_real: ``(folders, require, min_duration_s) -> (DataFrame[subject_id, record_id, record_path], skipped)``.
        features: ``(record_path, features, cache_dir) -> dict``: build one record's replay table in the cache.
        estimator: ``(out, kind, train, seed, records, features, cache_dir, checkpoint) -> None``;
            ``records`` are dicts ``subject_id, record_id, record_path, split``.
        replay_set: ``(out, estimator_dir, records, splits, features, cache_dir) -> None``.
        agent: ``(out, env, agent_spec, seed, timesteps, params) -> None``.
        rollout: ``(out, policy, env, subject_ids, seed, agent_dir) -> None``: write an episode log (Parquet).
        evaluate: ``(logs, n_resamples, confidence, seed) -> dict[str, DataFrame]`` with at least ``"metrics"``.
        report: ``(results_dir, logs, tables, config, problems) -> None``.

    A unit with an output gets ``out``: an empty temporary folder (folder outputs)
    or a path that does not exist yet (file outputs), renamed onto the final path
    when the function returns.
    """

    cohort: Callable[..., Any]
    list_virtual: Callable[..., pd.DataFrame]
    list_real: Callable[..., tuple[pd.DataFrame, list[tuple[str, str]]]]
    features: Callable[..., Any]
    estimator: Callable[..., Any]
    replay_set: Callable[..., Any]
    agent: Callable[..., Any]
    rollout: Callable[..., Any]
    evaluate: Callable[..., dict[str, pd.DataFrame]]
    report: Callable[..., Any]


# ------------------------------------------------------------- default stages
def stage_cohort(
    out: Path, n_subjects: int, hours: float, seed: int, spec: str | None, workers: int
) -> dict[str, Any]:
    """Build a virtual cohort with :func:`bprl.cohort.make_cohort`."""
    from bprl.cohort import make_cohort

    make_cohort(
        out, n_subjects=n_subjects, hours=hours, seed=seed, spec=spec, workers=workers, progress=False
    )
    return {"subjects": n_subjects}


def stage_list_virtual(cohort_dir: Path) -> pd.DataFrame:
    """Records of a virtual cohort from its manifest: ``subject_id, record_id, record_path``."""
    from bprl.cohort import load_manifest

    man = load_manifest(cohort_dir)
    rows = [
        {
            "subject_id": str(r.subject_id),
            "record_id": str(r.record_id),
            "record_path": str(
                Path(cohort_dir) / "waves" / str(r.subject_id) / str(r.record_id) / f"{r.record_id}.hea"
            ),
        }
        for r in man.itertuples()
    ]
    return pd.DataFrame(rows, columns=["subject_id", "record_id", "record_path"])


def stage_list_real(
    folders: list[str], require: list[str], min_duration_s: float
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Find real records under ``folders`` that have the required channel roles (headers only).

    Uses :func:`bprl.records.scan_records` (multi-segment records count once;
    subject ids from the header comment or the ``p<id>`` folder). Returns the
    usable records (``subject_id, record_id, record_path``) and the others as
    ``(path, reason)``.
    """
    from bprl.records import scan_records

    rows, skipped = [], []
    for folder in folders:
        scan = scan_records(folder)
        for r in scan.itertuples(index=False):
            missing = [role for role in require if not bool(getattr(r, f"has_{role}"))]
            if r.error:
                skipped.append((str(r.path), str(r.error)))
            elif missing:
                skipped.append((str(r.path), f"no {'/'.join(missing)} channel"))
            elif float(r.duration_s) < min_duration_s:
                skipped.append(
                    (str(r.path), f"{float(r.duration_s):.1f} s < min_duration_s {min_duration_s:g}")
                )
            else:
                rows.append(
                    {
                        "subject_id": str(r.subject_id),
                        "record_id": str(r.record_id),
                        "record_path": str(r.path),
                    }
                )
    return pd.DataFrame(rows, columns=["subject_id", "record_id", "record_path"]), skipped


def _feature_config(features: dict[str, Any]) -> Any:
    """A :class:`bprl.features.FeatureConfig` from the experiment's ``features`` section (None: defaults)."""
    if not features:
        return None
    from bprl.features import FeatureConfig

    return FeatureConfig(**features)


def _feature_code_version() -> str:
    """Version of the beat/feature code (part of the features fingerprint), '' when unknown."""
    try:
        from bprl.features import feature_code_version
    except ImportError:  # pragma: no cover - features room absent
        return ""
    return str(feature_code_version())


def stage_features(record_path: str, features: dict[str, Any], cache_dir: str) -> dict[str, Any]:
    """Build (or find cached) one record's replay table with :func:`bprl.features.load_replay_table`."""
    from bprl.features import load_replay_table

    table = load_replay_table(record_path, _feature_config(features), cache_dir)
    n_ref = int(table["ref_sbp_mmhg"].notna().sum()) if "ref_sbp_mmhg" in table else 0
    return {"rows": len(table), "rows_with_reference": n_ref}


def _cohort_view(root: Path, records: list[dict[str, str]]) -> Path:
    """A folder in the virtual-cohort layout (manifest + ``waves/<sid>/<rid>`` links) over any records.

    :func:`bprl.estimator.train_estimator` reads a cohort folder; the view gives it
    the experiment's own split assignment and lets it read real records in place.
    """
    root.mkdir(parents=True, exist_ok=True)
    for r in records:
        link = root / "waves" / r["subject_id"] / r["record_id"]
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink(Path(r["record_path"]).resolve().parent, link, target_is_directory=True)
    man = pd.DataFrame(records)[["subject_id", "record_id", "split"]]
    write_parquet_atomic(man, root / "manifest.parquet")
    return root


def stage_estimator(
    out: Path,
    kind: str,
    train: dict[str, Any],
    seed: int,
    records: list[dict[str, str]],
    features: dict[str, Any],
    cache_dir: str,
    checkpoint: str | None,
) -> dict[str, Any]:
    """Train the population estimator on the train split (or copy a given checkpoint) into ``out``.

    ``cnn_gru``: :func:`bprl.estimator.train_estimator` with ``TrainConfig(**train)``
    (``train.model`` gives the :class:`~bprl.estimator.ModelConfig`), early stopping on
    the val split. ``pat_linear``: :class:`~bprl.estimator.PatLinearEstimator` fitted on
    the train split's replay tables, saved as ``pat_linear.json``.
    """
    from bprl import estimator as est

    out.mkdir(parents=True, exist_ok=True)
    if checkpoint:
        src = Path(checkpoint)
        if src.is_dir():
            shutil.copytree(src, out, dirs_exist_ok=True)
        else:
            shutil.copy2(src, out / src.name)
        return {"checkpoint": str(src)}
    fc = _feature_config(features)
    if kind == "pat_linear":
        tables = [est.load_table(r["record_path"], fc, cache_dir) for r in records if r["split"] == "train"]
        model = est.PatLinearEstimator().fit(tables)
        model.save(out / "pat_linear.json")
        return {"n_steps": model.info.get("n_steps"), "residual_sd_mmhg": model.info.get("residual_sd_mmhg")}
    with tempfile.TemporaryDirectory(prefix=".cohort-view-", dir=out.parent) as tmp:
        view = _cohort_view(Path(tmp), records)
        est.train_estimator(
            view,
            out,
            config=train_config(train),
            seed=seed,
            feature_config=fc,
            cache_dir=cache_dir,
            progress=False,
        )
    metrics = json.loads((out / est.METRICS_FILE).read_text()) if (out / est.METRICS_FILE).is_file() else {}
    summary: dict[str, Any] = {}
    for split in ("val", "test"):
        with contextlib.suppress(KeyError, TypeError):
            summary[split] = {f"{bp}_mae_mmhg": metrics[split][bp]["model"]["mae"] for bp in ("sbp", "dbp")}
    return summary


def train_config(train: dict[str, Any]) -> Any:
    """:class:`bprl.estimator.TrainConfig` from an experiment's ``estimator.train`` mapping."""
    from bprl.estimator import ModelConfig, TrainConfig

    kw = dict(train)
    model = ModelConfig.from_dict(kw.pop("model", {}) or {}, where="estimator.train.model")
    return TrainConfig(model=model, **kw)


def _estimator_path(estimator_dir: Path) -> Path:
    from bprl.estimator import MODEL_FILE

    root = Path(estimator_dir)
    if (root / MODEL_FILE).is_file():
        return root
    for pattern in ("*.json", "*.onnx"):
        found = sorted(p for p in root.glob(pattern) if not p.name.startswith("."))
        if found:
            return found[0]
    raise BprlError(f"{root}: no estimator checkpoint (model.pt, *.json or *.onnx)")


def stage_replay_set(
    out: Path,
    estimator_dir: str,
    records: list[dict[str, str]],
    splits: dict[str, str],
    features: dict[str, Any],
    cache_dir: str,
) -> dict[str, Any]:
    """Fill the estimator columns of every record's replay table and write the replay set.

    A subject with several records gets one table: its records in record-id
    order, steps renumbered and times shifted so they follow one another.
    Records whose estimates fail are left out (listed in ``replay_set.json``).
    """
    from bprl import estimator as est

    model_path = _estimator_path(Path(estimator_dir))
    model = est.load_estimator(model_path)
    fc = _feature_config(features)
    by_subject: dict[str, list[pd.DataFrame]] = {}
    failed: list[dict[str, str]] = []
    for r in sorted(records, key=lambda r: (r["subject_id"], r["record_id"])):
        try:
            table = est.estimate_replay_table(r["record_path"], model, cache_dir, fc)
        except BprlError as exc:
            failed.append({"record": r["record_path"], "error": str(exc)})
            continue
        by_subject.setdefault(r["subject_id"], []).append(table)
    tables = {}
    for sid, parts in by_subject.items():
        tables[sid] = concat_records(parts).assign(subject_id=sid)
    info = {
        "estimator": str(model_path),
        "estimator_fingerprint": model.fingerprint(),
        "features": features,
        "records": [r["record_path"] for r in records],
        "failed": failed,
    }
    write_replay_set(out, tables, {s: splits[s] for s in tables}, info)
    return {"subjects": len(tables), "failed": len(failed)}


def _agent_spec_with(agent_spec: str, params: dict[str, Any]) -> str | dict[str, Any]:
    """The agent file, or a dict in the same layout with ``params`` set in every entry."""
    if not params:
        return agent_spec
    doc = yaml.safe_load(Path(agent_spec).read_text(encoding="utf-8")) or {}
    algo = doc.pop("algo", None) or Path(agent_spec).stem
    return {"algo": algo, **{k: ({**v, **params} if isinstance(v, dict) else v) for k, v in doc.items()}}


def stage_agent(
    out: Path, env: dict[str, Any], agent_spec: str, seed: int, timesteps: int, params: dict[str, Any]
) -> dict[str, Any]:
    """Train one RL agent with :func:`bprl.agents.train_agent` (``params`` override its hyperparameters)."""
    from bprl.agents import train_agent

    train_agent(
        env["spec"],
        _agent_spec_with(agent_spec, params),
        seed=seed,
        out_dir=out,
        timesteps=timesteps,
        env_overrides=env["overrides"],
    )
    meta = json.loads((out / "agent.json").read_text())
    return {"timesteps": timesteps, "best": meta.get("best")}


def stage_rollout(
    out: Path,
    policy: dict[str, Any],
    env: dict[str, Any],
    subject_ids: list[str],
    seed: int,
    agent_dir: str | None,
) -> dict[str, Any]:
    """Run one policy on the test subjects for one seed; write its episode log (Parquet)."""
    from bprl.calibrators import make_calibrator, rollout
    from bprl.env import make_env_from_spec

    if agent_dir is not None:
        from bprl.agents import load_agent

        pol = load_agent(agent_dir, name=policy["name"])
    live = make_env_from_spec(env["spec"], split="test", **env["overrides"])
    if agent_dir is None:
        action_type = live.unwrapped.params.action_type
        pol = make_calibrator(policy["calibrator"], action_type=action_type, **policy.get("params", {}))
    try:
        log = rollout(pol, live, subject_ids, seed=seed, policy_name=policy["name"])
    finally:
        live.close()
    write_parquet_atomic(log, out)
    return {"rows": len(log)}


def stage_evaluate(
    logs: pd.DataFrame, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """Standards metrics: per policy (``metrics``), per (policy, seed), per subject, by BP change."""
    from bprl import evaluation as ev

    boot = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    return {
        "metrics": ev.compare_policies(logs, **boot),
        "per_seed": ev.evaluate_log(logs, **boot),
        "per_subject": ev.evaluate_subjects(logs),
        "change_bins": ev.evaluate_change_bins(logs),
    }


def stage_report(
    results_dir: Path, logs: pd.DataFrame, tables: dict[str, pd.DataFrame], config: dict, problems: list[str]
) -> Any:
    """Write figures and the HTML/Markdown report (:func:`bprl.reports.write_report`)."""
    from bprl.reports import write_report

    boot = (config or {}).get("evaluation") or {}
    return write_report(
        results_dir,
        logs,
        tables["metrics"],
        config=config,
        problems=problems,
        seed=int(boot.get("seed", 0)),
        n_resamples=int(boot.get("n_resamples", 1000)),
    )


def default_stages() -> Stages:
    """The real stage functions (cohort, features, estimator, agents, calibrators, evaluation, reports)."""
    return Stages(
        cohort=stage_cohort,
        list_virtual=stage_list_virtual,
        list_real=stage_list_real,
        features=stage_features,
        estimator=stage_estimator,
        replay_set=stage_replay_set,
        agent=stage_agent,
        rollout=stage_rollout,
        evaluate=stage_evaluate,
        report=stage_report,
    )


# ======================================================================= runner
@dataclass
class RunState:
    """Book-keeping of one run: timings and recorded failures."""

    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)


@contextlib.contextmanager
def _timed(state: RunState, stage: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    state.timings[stage] = round(state.timings.get(stage, 0.0) + time.perf_counter() - t0, 3)


def _run_stage(
    backend: Backend, units: list[Unit], stage: str, state: RunState, progress: bool
) -> dict[str, UnitResult]:
    todo = [u for u in units if not unit_is_complete(u)]
    _log_version_reruns(todo, stage)
    with _timed(state, stage):
        fresh = {r.key: r for r in backend.map_units(todo, desc=stage, progress=progress)}
    out: dict[str, UnitResult] = {}
    for u in units:
        if u.key in fresh:
            out[u.key] = fresh[u.key]
        else:
            info = json.loads(u.marker.read_text())
            status = "cached" if info["status"] == "done" else info["status"]
            out[u.key] = UnitResult(
                u.key, status, 0.0, info["error"], info.get("result"), info.get("run_id", "")
            )
        if out[u.key].status == "skipped":
            state.failures.append((u.key, out[u.key].error))
    state.counts[stage] = {
        "units": len(units),
        "run": len(fresh),
        "cached": len(units) - len(fresh),
        "skipped": sum(r.status == "skipped" for r in out.values()),
    }
    return out


def _log_version_reruns(todo: list[Unit], stage: str) -> None:
    """One log line per reason for units that rerun because their marker was made under other major versions."""
    reasons: dict[str, int] = {}
    for u in todo:
        try:
            recorded = json.loads(u.marker.read_text()).get(STAMP_KEY)
        except (OSError, ValueError, AttributeError):
            continue
        why = stale_reason(recorded) if recorded is not None else None
        if why is not None:
            reasons[why] = reasons.get(why, 0) + 1
    for why, n in reasons.items():
        log_rebuild(f"stage {stage}", f"{n} unit(s) rerun: {why}")


def _ok(results: dict[str, UnitResult], key: str) -> bool:
    return results[key].status in ("done", "cached")


def env_settings(exp: Experiment, replay_set: Path | None) -> dict[str, Any]:
    """The environment spec handed to agents and rollouts: spec file, overrides, budget, replay set."""
    cfg = exp.config
    overrides = dict(cfg.env.overrides)
    if cfg.budgets.cuff_budget is not None:
        overrides["cuff"] = {**dict(overrides.get("cuff") or {}), "budget": cfg.budgets.cuff_budget}
    if replay_set is not None:
        overrides["replay_set"] = str(replay_set)
    return {"spec": str(exp.env_spec), "overrides": overrides}


def provenance() -> dict[str, Any]:
    """Package versions, git commit, Python and platform of this run."""
    pkgs = {}
    for name in (
        "bprl",
        "numpy",
        "pandas",
        "pyarrow",
        "scipy",
        "torch",
        "gymnasium",
        "stable-baselines3",
        "sb3-contrib",
        "wfdb",
        "pydantic",
        "ray",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            pkgs[name] = importlib.metadata.version(name)
    git: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        git["commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        git["dirty"] = bool(dirty.strip())
    return {
        "packages": pkgs,
        "git": git,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


#: names of temporary files and folders the runner's atomic writes make (``tempfile`` with a
#: ``.<name>.`` prefix and a ``.tmp`` / ``.tmp<suffix>`` suffix) and the estimator's cohort views
_TEMP_NAME = re.compile(r"^\.(?:cohort-view-.+|.+\.tmp(?:\.[A-Za-z0-9]+)?)$")


def _is_results_folder(results: Path) -> bool:
    """Whether ``results`` carries the runner's marker, or is a results folder written before the marker existed."""
    if (results / RESULTS_MARKER).is_file():
        return True
    resolved = results / "config.resolved.yaml"
    if not (results / "state").is_dir() or not resolved.is_file():
        return False
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return resolved.read_text(encoding="utf-8").startswith("# resolved from ")
    return False


def _prepare_results(results: Path, root: Path, name: str) -> None:
    """Make ``results`` (a resolved path strictly inside ``root``) the runner's own folder.

    A new or empty folder gets the marker :data:`RESULTS_MARKER`; a results folder of an
    earlier run is used as it is (a legacy one gets the marker); anything else is refused.

    Raises:
        ConfigError: ``results`` is ``root`` itself or outside it, a file, or a non-empty
            folder that the runner did not make.
    """
    how = "choose a new or empty folder (--results / results_dir)"
    if results == root or root not in results.parents:
        raise ConfigError(f"results folder {results}: must be a folder inside {root}; {how}")
    if results.exists() and not results.is_dir():
        raise ConfigError(f"results folder {results}: is a file, not a folder; {how}")
    if results.is_dir() and not _is_results_folder(results) and any(results.iterdir()):
        raise ConfigError(
            f"results folder {results}: not a bprl results folder (not empty and no {RESULTS_MARKER} "
            f"file); the runner writes only into folders it made; {how}"
        )
    results.mkdir(parents=True, exist_ok=True)
    if not (results / RESULTS_MARKER).is_file():
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        info = {"format": "bprl-results/1", "experiment": name, "created_utc": created}
        write_text_atomic(json.dumps(info, indent=2) + "\n", results / RESULTS_MARKER)


def remove_temp_leftovers(results: Path) -> list[Path]:
    """Delete the temporary files and folders killed units left in ``results``; return them.

    Matches only the runner's own temporary names (``.<name>.<random>.tmp``,
    ``.<stem>.<random>.tmp.<suffix>``, ``.cohort-view-<random>``); symlinks are removed,
    never followed. Do not run two runs on one results folder at the same time.
    """
    removed: list[Path] = []
    for folder, dirs, files in os.walk(results):
        base = Path(folder)
        for d in list(dirs):
            if _TEMP_NAME.match(d):
                dirs.remove(d)
                path = base / d
                if path.is_symlink():
                    path.unlink()
                else:
                    shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        for f in files:
            if _TEMP_NAME.match(f):
                (base / f).unlink(missing_ok=True)
                removed.append(base / f)
    return removed


def _clear_results(results: Path, root: Path) -> None:
    """Delete a results folder's earlier outputs (``--no-resume``); keep ``config.resolved.yaml`` and the marker.

    Raises:
        BprlError: refusing, unless ``results`` is a folder strictly inside ``root`` that
            carries the runner's marker (or is a results folder of an earlier version).
    """
    results, root = Path(results).resolve(), Path(root).resolve()
    if results == root or root not in results.parents or not _is_results_folder(results):
        raise BprlError(
            f"refusing to clear {results}: not a bprl results folder inside {root} (no {RESULTS_MARKER})"
        )
    for name in ("state", "work", "logs", "figures"):
        if (results / name).is_dir():
            shutil.rmtree(results / name)
    for path in results.glob("metrics*.csv"):
        path.unlink()
    for name in (
        "metrics.json",
        "report.html",
        "report.md",
        "failures.csv",
        "provenance.json",
    ):
        (results / name).unlink(missing_ok=True)


def run_experiment(
    path_or_config: str | os.PathLike[str] | dict[str, Any] | Experiment,
    results_dir: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    workers: int | None = None,
    resume: bool = True,
    ray_address: str | None = None,
    stages: Stages | None = None,
    progress: bool = True,
) -> Path:
    """Run an experiment end to end and return its results folder.

    Builds whatever is missing (cohort, replay tables, estimator, replay set,
    agents), evaluates every policy on the test subjects for every seed, and
    writes logs, metrics and the report. Units already finished (markers with
    the same input fingerprint) are skipped when ``resume`` is true; with
    ``resume=False`` the results folder's previous outputs are deleted first.

    Args:
        path_or_config: experiment file, dict, or loaded :class:`Experiment`.
        results_dir: results folder (default ``results/<name>/``); identified by its resolved
            path. It must be new, empty, or a results folder of an earlier run.
        backend: ``"local"`` or ``"ray"`` (default: the file's ``backend.name``).
        workers: processes / Ray CPUs, 1 to :data:`MAX_WORKERS` (default: the file's ``backend.workers``).
        resume: skip finished units (temporary leftovers of killed units are removed either way).
        ray_address: Ray cluster address (default: the file's, else a local instance).
        stages: the unit functions (default :func:`default_stages`; tests substitute stubs).
        progress: show tqdm progress bars.

    Returns:
        The resolved results folder.

    Raises:
        ConfigError: invalid experiment, workers or results folder (before any work).
    """
    exp = load_experiment(path_or_config)
    cfg = exp.config
    stages = stages or default_stages()
    # one folder, one identity: relative, absolute and symlinked spellings resume the same units
    if results_dir is None:
        root = Path("results").expanduser().resolve()
        results = root / cfg.name
    else:
        results = Path(results_dir).expanduser().resolve()
        root = results.parent
    backend_name = backend or cfg.backend.name
    n_workers = workers if workers is not None else cfg.backend.workers
    address = ray_address or cfg.backend.ray_address
    if backend_name not in ("local", "ray"):
        raise ConfigError(f"backend: unknown backend {backend_name!r}; valid: local, ray")
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or not 1 <= n_workers <= MAX_WORKERS:
        raise ConfigError(f"workers: must be an integer from 1 to {MAX_WORKERS}, got {n_workers!r}")
    _prepare_results(results, root, cfg.name)
    if not resume:
        _clear_results(results, root)
    remove_temp_leftovers(results)
    work, state_dir = results / "work", results / "state"
    resolved = exp.resolved_dict()
    resolved["backend"] = {"name": backend_name, "workers": n_workers, "ray_address": address}
    header = f"# resolved from {exp.source}; a valid experiment file itself (bprl run this file)\n"
    write_text_atomic(header + yaml.safe_dump(resolved, sort_keys=False), results / "config.resolved.yaml")

    def marker(stage: str, name: str) -> Path:
        return state_dir / stage / f"{name}.json"

    state = RunState()
    t_start = time.perf_counter()
    be = make_backend(backend_name, n_workers, address)
    stage_bar = tqdm(total=7, desc=f"{cfg.name}", unit="stage", disable=not progress)
    try:
        # 1. cohort ----------------------------------------------------------------
        records = []
        cohort_run = ""
        cohort_dir = work / "cohort"
        if cfg.cohort.virtual is not None:
            v = cfg.cohort.virtual
            spec = str(exp.cohort_spec) if exp.cohort_spec else None
            fp = fingerprint("cohort", v.model_dump(), spec)
            unit = Unit(
                "cohort/virtual",
                stages.cohort,
                {
                    "n_subjects": v.subjects,
                    "hours": v.hours,
                    "seed": v.seed,
                    "spec": spec,
                    "workers": n_workers,
                },
                cohort_dir,
                marker("cohort", "virtual"),
                fp,
                output_is_dir=True,
            )
            res = _run_stage(Backend(), [unit], "cohort", state, progress)
            if not _ok(res, unit.key):
                raise BprlError(f"{exp.source}: cohort could not be built: {res[unit.key].error}")
            cohort_run = res[unit.key].run_id
            virt = stages.list_virtual(cohort_dir).assign(origin="virtual")
            records.append(virt)
        cohort_fp = fingerprint(
            "cohort", cfg.cohort.model_dump(), [str(p) for p in exp.record_dirs], cohort_run
        )
        if exp.record_dirs:
            real, skipped = stages.list_real(
                [str(p) for p in exp.record_dirs], list(cfg.cohort.require), cfg.cohort.min_duration_s
            )
            state.failures.extend((f"records/{p}", why) for p, why in skipped)
            if real.empty:
                raise ConfigError(
                    f"{exp.source}: cohort.records: no record with channels {cfg.cohort.require} "
                    f"in {[str(p) for p in exp.record_dirs]}"
                )
            records.append(real.assign(origin="records"))
        rec = pd.concat(records, ignore_index=True).sort_values(
            ["subject_id", "record_id"], ignore_index=True
        )
        splits = assign_splits(rec, cfg.splits, exp.source)
        rec["split"] = rec["subject_id"].map(splits)
        stage_bar.update(1)

        # 2. replay tables, one unit per record -----------------------------------
        cache_dir = work / "features"
        feat_fp = fingerprint("features", cfg.features, cohort_fp, _feature_code_version())
        units = [
            Unit(
                f"features/{r.subject_id}__{r.record_id}",
                stages.features,
                {"record_path": r.record_path, "features": cfg.features, "cache_dir": str(cache_dir)},
                None,
                marker("features", f"{r.subject_id}__{r.record_id}"),
                fingerprint(feat_fp, r.record_path),
            )
            for r in rec.itertuples()
        ]
        res = _run_stage(be, units, "features", state, progress)
        keep = []
        for u, origin in zip(units, rec["origin"], strict=True):
            ok = _ok(res, u.key)
            info = res[u.key].result if isinstance(res[u.key].result, dict) else {}
            if ok and origin == "records" and info.get("rows_with_reference") is not None:
                share = info["rows_with_reference"] / max(int(info.get("rows", 0)), 1)
                if share < cfg.cohort.min_reference_share:
                    state.failures.append(
                        (
                            u.key,
                            f"only {share:.0%} of steps have an arterial reference "
                            f"(< cohort.min_reference_share {cfg.cohort.min_reference_share:g}); left out",
                        )
                    )
                    ok = False
            keep.append(ok)
        rec = rec[keep].reset_index(drop=True)
        features_run = fingerprint(sorted(r.run_id for r in res.values()))
        splits = {s: sp for s, sp in splits.items() if s in set(rec["subject_id"])}
        for need in ("train", "test"):
            if need not in splits.values():
                raise BprlError(
                    f"{exp.source}: no {need} subject has a usable replay table (see failures.csv)"
                )
        stage_bar.update(1)

        # 3. estimator --------------------------------------------------------------
        est_dir = work / "estimator"
        rec_list = rec[["subject_id", "record_id", "record_path", "split"]].to_dict("records")
        ckpt = str(exp.estimator_checkpoint) if exp.estimator_checkpoint else None
        est_fp = fingerprint("estimator", cfg.estimator.model_dump(), ckpt, feat_fp, rec_list, features_run)
        unit = Unit(
            "estimator/estimator",
            stages.estimator,
            {
                "kind": cfg.estimator.kind,
                "train": cfg.estimator.train,
                "seed": cfg.estimator.seed,
                "records": rec_list,
                "features": cfg.features,
                "cache_dir": str(cache_dir),
                "checkpoint": ckpt,
            },
            est_dir,
            marker("estimator", "estimator"),
            est_fp,
            output_is_dir=True,
        )
        res = _run_stage(Backend(), [unit], "estimator", state, progress)
        if not _ok(res, unit.key):
            raise BprlError(f"{exp.source}: estimator failed: {res[unit.key].error}")
        est_run = res[unit.key].run_id
        stage_bar.update(1)

        # 4. replay set -----------------------------------------------------------
        rs_dir = work / "replay_set"
        rs_fp = fingerprint("replay_set", est_fp, rec_list, est_run)
        unit = Unit(
            "replay_set/replay_set",
            stages.replay_set,
            {
                "estimator_dir": str(est_dir),
                "records": rec_list,
                "splits": splits,
                "features": cfg.features,
                "cache_dir": str(cache_dir),
            },
            rs_dir,
            marker("replay_set", "replay_set"),
            rs_fp,
            output_is_dir=True,
        )
        res = _run_stage(Backend(), [unit], "replay_set", state, progress)
        if not _ok(res, unit.key):
            raise BprlError(f"{exp.source}: replay set failed: {res[unit.key].error}")
        rs_run = res[unit.key].run_id
        env = env_settings(exp, rs_dir.resolve())
        env_fp = fingerprint(
            "env", rs_fp, rs_run, Path(env["spec"]).read_text(), {**env["overrides"], "replay_set": None}
        )
        stage_bar.update(1)

        # 5. agents, one unit per (agent policy, seed) -------------------------------
        agent_units: dict[tuple[str, int], Unit] = {}
        for pol in cfg.policies:
            if pol.agent is None:
                continue
            steps = pol.timesteps or cfg.budgets.timesteps
            spec = str(exp.agent_specs[pol.label])
            for seed in cfg.seeds:
                name = f"{pol.label}__seed{seed}"
                agent_units[(pol.label, seed)] = Unit(
                    f"agents/{name}",
                    stages.agent,
                    {"env": env, "agent_spec": spec, "seed": seed, "timesteps": steps, "params": pol.params},
                    work / "agents" / name,
                    marker("agents", name),
                    fingerprint(env_fp, Path(spec).read_text(), steps, pol.params, seed),
                    output_is_dir=True,
                )
        res_agents = _run_stage(be, list(agent_units.values()), "agents", state, progress)
        stage_bar.update(1)

        # 6. rollouts, one unit per (policy, seed) ---------------------------------
        test_ids = sorted(s for s, sp in splits.items() if sp == "test")
        units = []
        for pol in cfg.policies:
            pdict = {
                "name": pol.label,
                "calibrator": pol.calibrator,
                "agent": pol.agent,
                "params": pol.params,
            }
            for seed in cfg.seeds:
                name = f"{pol.label}__seed{seed}"
                agent_dir = None
                if pol.agent is not None:
                    au = agent_units[(pol.label, seed)]
                    if not _ok(res_agents, au.key):
                        continue
                    agent_dir = str(au.output)
                upstream = env_fp
                if pol.agent is not None:
                    au = agent_units[(pol.label, seed)]
                    upstream = fingerprint(au.fingerprint, res_agents[au.key].run_id)
                units.append(
                    Unit(
                        f"rollouts/{name}",
                        stages.rollout,
                        {
                            "policy": pdict,
                            "env": env,
                            "subject_ids": test_ids,
                            "seed": seed,
                            "agent_dir": agent_dir,
                        },
                        results / "logs" / f"{name}.parquet",
                        marker("rollouts", name),
                        fingerprint(upstream, pdict, test_ids, seed),
                    )
                )
        res = _run_stage(be, units, "rollouts", state, progress)
        log_paths = [u.output for u in units if _ok(res, u.key) and u.output is not None]
        stage_bar.update(1)

        # 7. evaluation and report -------------------------------------------------
        _write_run_info(results, state, backend_name, n_workers)  # the report shows it
        with _timed(state, "report"):
            if log_paths:
                problems = [f"{unit}: {err}" for unit, err in state.failures]
                write_results(results, log_paths, resolved, stages, problems)
        stage_bar.update(1)
    finally:
        stage_bar.close()
        be.close()
        state.timings["total"] = round(time.perf_counter() - t_start, 3)
        _write_run_info(results, state, backend_name, n_workers)
    if not log_paths:
        raise BprlError(f"{exp.source}: no policy produced an episode log (see {results / 'failures.csv'})")
    return results


def _write_run_info(results: Path, state: RunState, backend: str, workers: int) -> None:
    prov = provenance() | {
        "backend": backend,
        "workers": workers,
        "stage_seconds": state.timings,
        "units": state.counts,
        "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_text_atomic(json.dumps(prov, indent=2, sort_keys=True), results / "provenance.json")
    fails = pd.DataFrame(state.failures, columns=["unit", "error"])
    with atomic_output(results / "failures.csv") as tmp:
        fails.to_csv(tmp, index=False)


def read_logs(paths: Iterable[Path]) -> pd.DataFrame:
    """Concatenate episode logs in the given order (policies appear in the metrics in that order)."""
    frames = [pd.read_parquet(p) for p in paths]
    if not frames:
        raise BprlError("no episode logs to evaluate")
    return pd.concat(frames, ignore_index=True)


def write_results(
    results: Path,
    log_paths: Iterable[Path],
    config: dict[str, Any],
    stages: Stages | None = None,
    problems: Iterable[str] = (),
) -> dict[str, pd.DataFrame]:
    """Evaluate the episode logs and write the metrics, figures and the report.

    ``metrics.csv`` is the per-policy comparison, ``metrics_<table>.csv`` each
    further table of the evaluation (per seed, per subject, by BP change), and
    ``metrics.json`` all of them; ``problems`` (skipped units) are noted in the report.
    """
    stages = stages or default_stages()
    logs = read_logs(log_paths)
    tables = stages.evaluate(logs, **((config or {}).get("evaluation") or {}))
    if "metrics" not in tables:
        raise BprlError(f"{results}: evaluation returned no 'metrics' table (got {sorted(tables)})")
    for name, df in tables.items():
        target = results / ("metrics.csv" if name == "metrics" else f"metrics_{name}.csv")
        with atomic_output(target) as tmp:
            df.to_csv(tmp, index=not isinstance(df.index, pd.RangeIndex))
    payload = {
        name: json.loads(df.reset_index().to_json(orient="records", double_precision=10))
        if not isinstance(df.index, pd.RangeIndex)
        else json.loads(df.to_json(orient="records", double_precision=10))
        for name, df in tables.items()
        if isinstance(df, pd.DataFrame)
    }
    write_text_atomic(json.dumps(payload, indent=2, sort_keys=True), results / "metrics.json")
    stages.report(results, logs, tables, config, list(problems))
    return tables


def _rollout_status(results: Path, name: str) -> str | None:
    """Status in the rollout marker ``state/rollouts/<name>.json`` (``None``: no readable marker)."""
    try:
        return str(json.loads((results / "state" / "rollouts" / f"{name}.json").read_text())["status"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def current_logs(results: Path, config: dict[str, Any] | None) -> list[Path]:
    """The episode logs of the experiment's current policies and seeds, in the experiment's order.

    ``logs/`` may still hold logs of policies or seeds removed from the experiment file since
    (they are kept, not deleted) and of rollouts whose latest attempt was skipped; neither is
    current. Without policies and seeds in ``config`` every log is used.
    """
    logs = sorted((results / "logs").glob("*.parquet"))
    order = [str(p.get("name")) for p in (config or {}).get("policies", []) if isinstance(p, dict)]
    seeds = [int(s) for s in (config or {}).get("seeds", [])]
    if order and seeds:
        wanted = {f"{p}__seed{s}": (i, j) for i, p in enumerate(order) for j, s in enumerate(seeds)}
        logs = [p for p in logs if p.stem in wanted and _rollout_status(results, p.stem) in (None, "done")]
        return sorted(logs, key=lambda p: wanted[p.stem])
    return logs


def rebuild_report(results_dir: str | os.PathLike[str], stages: Stages | None = None) -> Path:
    """Recompute metrics and rewrite the report from a results folder's saved episode logs.

    Only the logs of the policies and seeds in ``config.resolved.yaml`` are used (see
    :func:`current_logs`), as in the run that wrote the folder.
    """
    results = Path(results_dir)
    cfg_path = results / "config.resolved.yaml"
    config = yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else {}
    logs = current_logs(results, config)
    if not logs:
        if any((results / "logs").glob("*.parquet")):
            raise BprlError(
                f"{results}: no episode logs of the experiment's policies and seeds under logs/ "
                f"(see {cfg_path.name} and failures.csv)"
            )
        raise BprlError(f"{results}: no episode logs under logs/ (is this a bprl results folder?)")
    problems: list[str] = []
    if (results / "failures.csv").is_file():
        fails = pd.read_csv(results / "failures.csv", dtype=str).fillna("")
        problems = [f"{u}: {e}" for u, e in zip(fails["unit"], fails["error"], strict=True)]
    write_results(results, logs, config or {}, stages, problems)
    return results


__all__ = [
    "Backend",
    "ExperimentConfig",
    "LocalBackend",
    "RayBackend",
    "Stages",
    "Unit",
    "current_logs",
    "default_stages",
    "execute_unit",
    "load_experiment",
    "make_backend",
    "rebuild_report",
    "remove_temp_leftovers",
    "run_experiment",
    "write_results",
]
