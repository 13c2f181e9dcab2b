"""The experiment file's schema: :class:`ExperimentConfig` and its sections.

One configuration layer: every section is a :class:`bprl.config.Spec` (unknown fields are
errors, every field is described) and the sections of the stages are the stages' own specs,
nested: ``features`` is :class:`bprl.features.FeatureConfig`, ``estimator.train`` is
:class:`bprl.estimator.TrainConfig`, ``cohort.virtual.params`` is
:class:`bprl.cohort.CohortSpec`. A YAML file and a Python mapping go through the same model.

The experiment's own sections are *strict*: ``true`` is not a number, ``1.0`` or ``"1e9"`` is not
an integer, ``"2"`` is not a number, and infinite or NaN floats are refused. Sizes are bounded
(:data:`LIMITS`) so that a typo cannot start a run that fills the disk or never ends.

>>> cfg = ExperimentConfig.model_validate(
...     {"name": "demo", "cohort": {"virtual": {"subjects": 10, "hours": 0.5}}, "policies": ["none"]}
... )
>>> cfg.features.window_s, cfg.estimator.train.epochs, [p.label for p in cfg.policies]
(30.0, 30, ['none'])
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictInt,
    field_validator,
    model_serializer,
    model_validator,
)

from bprl.cohort.spec import CohortSpec
from bprl.config import Spec
from bprl.estimator.config import MAX_EPOCHS, TrainConfig
from bprl.features.config import FeatureConfig
from bprl.policies.agents.spec import MAX_SEED, MAX_TIMESTEPS  # seeds: 0..2**31-1; steps: <= 1e9
from bprl.splits import SPLITS

__all__ = [
    "LIMITS",
    "MAX_HOURS_PER_SUBJECT",
    "MAX_RESAMPLES",
    "MAX_SEED",
    "MAX_SUBJECTS",
    "MAX_TIMESTEPS",
    "MAX_WORKERS",
    "NAME_PATTERN",
    "BackendSpec",
    "BudgetSpec",
    "CohortSourcesSpec",
    "EnvSpec",
    "EstimatorSpec",
    "EvaluationSpec",
    "ExperimentConfig",
    "PlainName",
    "PolicySpec",
    "Seed",
    "SplitSpec",
    "StrictSpec",
    "VirtualCohortSpec",
]

#: most virtual subjects: ISO 81060-2 asks for 85, the largest public cuffless data sets hold a few
#: thousand; a virtual subject is a few MB of WFDB plus its replay table per hour
MAX_SUBJECTS = 10_000
#: longest virtual recording per subject in hours: two days (24-h ambulatory monitoring twice over);
#: a subject's waveforms are generated in memory
MAX_HOURS_PER_SUBJECT = 48.0
#: most processes of the local pool / CPUs of a local Ray instance: more than one machine has,
#: and each spawned worker holds its own torch (~0.3 GB)
MAX_WORKERS = 256
#: most bootstrap resamples: percentile intervals settle after a few thousand; memory is
#: resamples x subjects
MAX_RESAMPLES = 100_000

#: the upper bounds of the experiment file, documented in docs/guide/experiments.md
#: (``epochs`` is :data:`bprl.estimator.config.MAX_EPOCHS`, the bound of ``TrainConfig.epochs``)
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

#: a seed anywhere in the experiment file: an integer from 0 to :data:`MAX_SEED`
Seed = Annotated[StrictInt, Field(ge=0, le=MAX_SEED)]


class StrictSpec(Spec):
    """Base of the experiment file's own sections: a :class:`~bprl.config.Spec` with strict types.

    Strict: ``true`` is not a number, ``1.0`` or ``"1e9"`` is not an integer, ``"2"`` is not a
    number; infinite and NaN floats are refused. Nested stage specs keep their own rules.
    """

    model_config = ConfigDict(strict=True, allow_inf_nan=False)


class VirtualCohortSpec(StrictSpec):
    """A virtual cohort built by :func:`bprl.cohort.make_cohort`."""

    subjects: StrictInt = Field(ge=2, le=MAX_SUBJECTS, description="number of virtual subjects")
    hours: float = Field(gt=0, le=MAX_HOURS_PER_SUBJECT, description="recording length per subject, h")
    seed: Seed = Field(0, description="cohort seed")
    spec: str | None = Field(
        None, description="cohort parameter file (YAML of bprl.cohort.CohortSpec fields)"
    )
    params: CohortSpec | None = Field(
        None, description="cohort parameters given inline (bprl.cohort.CohortSpec); instead of `spec`"
    )
    video: bool = Field(
        False,
        description="a camera cohort: render virtual-camera skin-region clips (the spec's video_* fields) "
        "and take the features from the video (camera replay tables, no PAT); needs estimator.kind "
        "camera_linear",
    )

    @model_validator(mode="after")
    def _file_or_inline(self) -> VirtualCohortSpec:
        if self.spec is not None and self.params is not None:
            raise ValueError("give the cohort parameters as a file (`spec`) or inline (`params`), not both")
        return self

    @model_serializer(mode="wrap")
    def _omit_no_video(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The fields, without ``video`` when it is false: fingerprints (and resolved files) of
        experiments without video stay as they were before the field existed."""
        data = handler(self)
        if not self.video:
            data.pop("video", None)
        return data


class CohortSourcesSpec(StrictSpec):
    """Where the subjects come from: a virtual cohort, folders of real records, or both."""

    virtual: VirtualCohortSpec | None = Field(None, description="a virtual cohort made for the experiment")
    records: list[str] | None = Field(None, description="folders searched recursively for WFDB headers")
    require: list[Literal["ecg", "ppg", "abp", "resp"]] = Field(
        default_factory=lambda: ["ecg", "ppg", "abp"],
        description="channel roles a real record must have to be used",
    )
    min_duration_s: float = Field(60.0, ge=0, description="real records shorter than this are left out, s")
    min_reference_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="real records with a smaller share of steps with arterial reference are left out, 0..1",
    )

    @model_validator(mode="after")
    def _one_source(self) -> CohortSourcesSpec:
        if self.virtual is None and not self.records:
            raise ValueError("give `virtual` and/or `records`")
        return self


class SplitSpec(StrictSpec):
    """How subjects are assigned to train / val / test.

    Each split is either a fraction of the subjects (assigned by a seeded
    permutation of the sorted subject ids, :func:`bprl.splits.assign_splits`) or an
    explicit list of subject ids. ``records_to`` sends every real-record subject to one
    split (the fractions then apply to virtual subjects only).
    """

    train: float | list[str] = Field(0.6, description="share of the subjects, 0..1, or a list of subject ids")
    val: float | list[str] = Field(0.2, description="share of the subjects, 0..1, or a list of subject ids")
    test: float | list[str] = Field(0.2, description="share of the subjects, 0..1, or a list of subject ids")
    seed: Seed = Field(0, description="seed of the permutation")
    records_to: Literal["train", "val", "test"] | None = Field(
        None, description="the split every real-record subject goes to (fractions: virtual subjects only)"
    )

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

    def fractions(self) -> dict[str, float] | None:
        """``{"train": ..., "val": ..., "test": ...}`` for fraction splits, ``None`` for subject lists."""
        if isinstance(self.train, list):
            return None
        return {"train": float(self.train), "val": float(self.val), "test": float(self.test)}  # type: ignore[arg-type]


class EstimatorSpec(StrictSpec):
    """The population estimator: a CNN-GRU trained on the train split, or the PAT-linear baseline."""

    kind: Literal["cnn_gru", "pat_linear", "camera_linear"] = Field(
        "cnn_gru",
        description="which estimator (camera_linear: the within-subject linear model on camera features, "
        "for a cohort with `video: true`)",
    )
    train: TrainConfig = Field(
        default_factory=TrainConfig,
        description="training settings of the CNN-GRU (bprl.estimator.TrainConfig; `model`: ModelConfig)",
    )
    checkpoint: str | None = Field(
        None,
        description="use this trained estimator instead of training one: `pretrained` (the shipped "
        "default CNN-GRU), a checkpoint folder, or a PAT-linear .json / .onnx file",
    )
    seed: Seed = Field(0, description="training seed")
    range_classifier: bool = Field(
        False,
        description="camera_linear only: also fit BP-range classifiers on the camera features "
        "(bprl.estimator.range_classifier; with and without range-stratified oversampling) and score "
        "them on the test split beside the majority range (the CNN-GRU has train.model.range_head)",
    )

    @model_validator(mode="after")
    def _train_only_for_cnn_gru(self) -> EstimatorSpec:
        if self.range_classifier and self.kind != "camera_linear":
            raise ValueError(
                "`range_classifier` is for the camera_linear estimator; the CNN-GRU's range head is "
                "train.model.range_head"
            )
        if self.kind in ("pat_linear", "camera_linear") and self.train != TrainConfig():
            raise ValueError(f"`train`: the {self.kind} estimator takes no training settings")
        if self.kind == "camera_linear" and self.checkpoint is not None:
            raise ValueError(
                "`checkpoint`: the camera_linear estimator is fit on the train split, not loaded"
            )
        if self.checkpoint is not None and "train" in self.model_fields_set:
            raise ValueError("give `checkpoint` (use a trained estimator) or `train` (train one), not both")
        return self

    @model_serializer(mode="wrap")
    def _omit_no_range_classifier(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The fields, without ``range_classifier`` when it is false: fingerprints (and resolved
        files) of experiments without it stay as they were before the field existed."""
        data = handler(self)
        if not self.range_classifier:
            data.pop("range_classifier", None)
        return data


class EnvSpec(StrictSpec):
    """The environment: a spec file in ``envs/`` plus overrides of its fields."""

    spec: str = Field("envs/default.yaml", description="environment spec file (YAML)")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="fields of the spec file replaced for this experiment"
    )


class PolicySpec(StrictSpec):
    """One policy to compare: a classical calibrator or an RL agent.

    ``calibrator`` is a built-in name, the name of a plugin (entry-point group
    ``bprl.calibrators``) or a ``module:Class`` / ``path/to/file.py:Class`` spec
    (:func:`bprl.policies.make_calibrator`). A bare string is a calibrator.
    """

    calibrator: str | None = Field(None, description="calibrator name, plugin name or 'module:Class' spec")
    agent: str | None = Field(None, description="agent spec file, e.g. agents/ppo.yaml")
    params: dict[str, Any] = Field(
        default_factory=dict, description="calibrator parameters / agent hyperparameter overrides"
    )
    timesteps: StrictInt | None = Field(
        None, ge=1, le=MAX_TIMESTEPS, description="training timesteps (agents; default budgets.timesteps)"
    )
    name: PlainName | None = Field(
        None, description="label in logs and reports (default: the calibrator name, class or agent-file stem)"
    )

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
        if self.name is None and not _NAME_RE.match(self.label):
            raise ValueError(f"the policy label {self.label!r} is not a plain name: set `name:`")
        return self

    @property
    def label(self) -> str:
        """The policy name used in logs: ``name``, else the calibrator name (the class of a
        ``module:Class`` spec) or the agent-file stem."""
        if self.name:
            return self.name
        if self.calibrator is not None:
            return self.calibrator.rpartition(":")[2]
        return Path(str(self.agent)).stem


class BudgetSpec(StrictSpec):
    """Budgets: cuff readings per episode or per hour (passed to the environment), a cuff-rate
    sweep, and default agent training steps."""

    cuff_budget: StrictInt | None = Field(
        None, ge=0, description="most cuff readings per episode (None: the environment's)"
    )
    cuffs_per_h: float | None = Field(
        None,
        gt=0,
        le=60,
        description="paced cuff budget, readings per hour (the env's cuff.budget_per_h; None: the environment's)",
    )
    sweep_cuffs_per_h: list[Annotated[float, Field(gt=0, le=60)]] | None = Field(
        None,
        min_length=1,
        description="Pareto sweep: every paced calibrator runs once per budget in this list (readings "
        "per hour), and every agent is trained and run once per budget (a cuff price steered to it), "
        "labelled <name>@<rate>; other policies run once",
    )

    @field_validator("sweep_cuffs_per_h")
    @classmethod
    def _distinct_rates(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and len({f"{r:g}" for r in v}) != len(v):
            raise ValueError(f"rates repeated (labels <name>@<rate> print rates with 6 digits): {v}")
        return v

    timesteps: StrictInt = Field(
        20_000, ge=1, le=MAX_TIMESTEPS, description="agent training steps unless a policy sets `timesteps`"
    )


class EvaluationSpec(StrictSpec):
    """Settings of the standards evaluation (:mod:`bprl.evaluation`)."""

    n_resamples: StrictInt = Field(
        1000, ge=1, le=MAX_RESAMPLES, description="bootstrap resamples (subjects, seeds)"
    )
    confidence: float = Field(0.95, gt=0, lt=1, description="level of the bootstrap intervals")
    seed: Seed = Field(0, description="seed of the bootstrap")


class BackendSpec(StrictSpec):
    """Default backend of the experiment (overridden by the CLI / ``run_experiment`` arguments)."""

    name: Literal["local", "ray"] = Field("local", description="local process pool or Ray")
    workers: StrictInt = Field(2, ge=1, le=MAX_WORKERS, description="processes / Ray CPUs")
    ray_address: str | None = Field(None, description="Ray cluster address (None: a local instance)")


class ExperimentConfig(StrictSpec):
    """A validated experiment file."""

    name: PlainName = Field(description="results go to results/<name>/")
    description: str = Field("", description="free text, shown in the report")
    cohort: CohortSourcesSpec = Field(description="where the subjects come from")
    splits: SplitSpec = Field(default_factory=SplitSpec, description="train / val / test assignment")
    features: FeatureConfig = Field(
        default_factory=FeatureConfig,
        description="beat pipeline and replay windows (bprl.features.FeatureConfig)",
    )
    estimator: EstimatorSpec = Field(default_factory=EstimatorSpec, description="the population estimator")
    env: EnvSpec = Field(default_factory=EnvSpec, description="the environment spec and its overrides")
    policies: Annotated[list[PolicySpec], Field(min_length=1)] = Field(
        description="the policies to compare, in report order"
    )
    seeds: Annotated[list[Seed], Field(min_length=1)] = Field(
        default_factory=lambda: [0], description="seeds of agent training and rollouts (distinct)"
    )
    budgets: BudgetSpec = Field(default_factory=BudgetSpec, description="cuff and training budgets")
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec, description="bootstrap settings")
    backend: BackendSpec = Field(default_factory=BackendSpec, description="where the units run")

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds repeated: {v}")
        return v

    @property
    def camera(self) -> bool:
        """Whether the experiment is a camera experiment (virtual video, camera features)."""
        return self.cohort.virtual is not None and self.cohort.virtual.video

    @model_validator(mode="after")
    def _camera_consistent(self) -> ExperimentConfig:
        camera_est = self.estimator.kind == "camera_linear"
        if self.camera and not camera_est:
            raise ValueError(
                "cohort.virtual.video: a camera cohort has no ECG (no PAT) and no WFDB camera records: "
                "set estimator.kind: camera_linear"
            )
        if camera_est and not self.camera:
            raise ValueError(
                "estimator.kind camera_linear needs camera features: set cohort.virtual.video: true"
            )
        if self.camera and self.cohort.records:
            raise ValueError(
                "cohort.records: real records have no video; a camera experiment takes virtual subjects only"
            )
        return self

    @model_validator(mode="after")
    def _unique_policies(self) -> ExperimentConfig:
        labels = [p.label for p in self.policies]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"policies: names {dup} used twice (set `name:` to tell them apart)")
        return self
