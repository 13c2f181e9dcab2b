"""Settings of the CNN-GRU estimator: :class:`ModelConfig` (architecture, input) and :class:`TrainConfig`.

Both are :class:`bprl.config.Spec` models: unknown fields are errors, every field is documented
(with its unit in the name where it has one), and the same model validates Python keyword
arguments (``TrainConfig(**mapping)``, as the CLI and the experiment runner call it), the
``estimator.train`` mapping of an experiment file (:func:`bprl.config.load_spec`, which raises
:class:`~bprl.errors.ConfigError` naming the file and the field) and the ``model`` entry of a
checkpoint's ``config.json`` (:meth:`ModelConfig.from_dict`, which raises
:class:`~bprl.errors.EstimatorError` naming the file and the field).

>>> ModelConfig().window_len
1000
>>> TrainConfig(epochs=3, model={"hybrid": True}).model.n_features
5
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, PositiveInt, ValidationError, model_validator

from bprl.config import Spec, format_validation_error
from bprl.errors import EstimatorError

__all__ = [
    "FEATURE_COLUMNS",
    "HYBRID_FEATURE_COLUMNS",
    "MAX_BATCH_SIZE",
    "MAX_EPOCHS",
    "MAX_OPTIMISER_STEPS",
    "MAX_WINDOWS_PER_STEP",
    "ModelConfig",
    "TrainConfig",
]

#: replay-table columns the PAT linear model reads
FEATURE_COLUMNS: tuple[str, ...] = ("pat_foot_ms", "hr_bpm")

#: replay-table columns the hybrid CNN-GRU reads by default: PAT at the foot and the peak, heart
#: rate, PPG rise time and width (step medians; present wherever a step has PAT; the stiffness
#: index is left out: it is missing on ~60 % of virtual steps, where no diastolic peak is found)
HYBRID_FEATURE_COLUMNS: tuple[str, ...] = (
    "pat_foot_ms",
    "pat_peak_ms",
    "hr_bpm",
    "ppg_rise_time_ms",
    "ppg_width_ms",
)

# Bounds of TrainConfig (an experiment file's ``estimator.train``): integers are strict (``64.0``,
# ``"1e9"`` and ``true`` are refused), so that a typo cannot start a run that never ends.
#: most training epochs: the CNN-GRU stops early after tens of epochs
MAX_EPOCHS = 10_000
#: most windows per optimiser step
MAX_BATCH_SIZE = 65_536
#: most sub-windows kept per replay step
MAX_WINDOWS_PER_STEP = 1_000_000
#: most optimiser steps per epoch / between validations
MAX_OPTIMISER_STEPS = 1_000_000_000


class ModelConfig(Spec):
    """Architecture and input layout of the CNN-GRU estimator.

    The three ``conv_*``/``pools`` tuples describe one CNN block per entry (conv, batch norm,
    ReLU, max-pool) and must have the same non-zero length; the window must be at least as
    long as the product of the pools.

    >>> cfg = ModelConfig(window_s=4.0, conv_channels=[8, 8], conv_kernels=[5, 3], pools=[4, 4])
    >>> cfg.window_len, cfg.conv_channels, cfg.n_features
    (500, (8, 8), 5)
    >>> ModelConfig.from_dict({"n_layers": 3}, "ckpt/config.json")
    Traceback (most recent call last):
    ...
    bprl.errors.EstimatorError: ckpt/config.json: unknown model config fields ['n_layers']
    """

    fs_hz: float = Field(
        125.0, gt=0, description="sampling rate of the model input, Hz (ECG is resampled to it)"
    )
    window_s: float = Field(8.0, gt=0, description="window length, s (fs_hz * window_s samples)")
    conv_channels: tuple[PositiveInt, ...] = Field(
        (16, 32, 32), description="output channels of each CNN block (conv, batch norm, ReLU, max-pool)"
    )
    conv_kernels: tuple[PositiveInt, ...] = Field(
        (7, 5, 3), description="kernel size of each CNN block, samples"
    )
    pools: tuple[PositiveInt, ...] = Field((4, 4, 2), description="max-pool factor of each CNN block")
    gru_hidden: PositiveInt = Field(32, description="hidden units per direction of the bidirectional GRU")
    head_hidden: PositiveInt = Field(32, description="hidden units of the regression head")
    dropout: float = Field(0.1, ge=0, le=1, description="dropout probability before the last layer")
    hybrid: bool = Field(True, description="also feed the step's replay-table features to the head")
    feature_columns: tuple[str, ...] = Field(
        HYBRID_FEATURE_COLUMNS,
        min_length=1,
        description="replay-table columns the hybrid head reads (the step's medians: PAT, HR, PPG shape)",
    )
    range_head: bool = Field(
        False,
        description="also classify the BP range (hypotension / normal / stage 1 / stage 2, "
        "bprl.estimator.ranges) from the same features: seed 002's range-aware head",
    )
    feature_skip: bool = Field(
        True,
        description="hybrid only: a linear path from the normalised features to the output, the "
        "CNN-GRU head (last layer zero at start) adding a residual to it",
    )

    @model_validator(mode="after")
    def _check_layout(self) -> ModelConfig:
        if (
            not (len(self.conv_channels) == len(self.conv_kernels) == len(self.pools))
            or not self.conv_channels
        ):
            raise ValueError("conv_channels, conv_kernels and pools must have the same non-zero length")
        if self.window_len // math.prod(self.pools) < 1:
            raise ValueError(f"window of {self.window_len} samples is shorter than the pooling {self.pools}")
        return self

    @property
    def window_len(self) -> int:
        """Samples per window: ``round(fs_hz * window_s)``."""
        return round(self.fs_hz * self.window_s)

    @property
    def n_features(self) -> int:
        """Number of tabular features the head receives (0 unless hybrid)."""
        return len(self.feature_columns) if self.hybrid else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (tuples as lists), as stored in a checkpoint's ``config.json``."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "model config") -> ModelConfig:
        """Build from :meth:`to_dict` output.

        Args:
            d: the mapping of field: value.
            where: the file or setting ``d`` came from, named in error messages.

        Returns:
            the validated config.

        Raises:
            EstimatorError: ``d`` is not a mapping, has unknown fields, or invalid values
                (the message names ``where`` and each field).
        """
        if not isinstance(d, dict):
            raise EstimatorError(f"{where}: model config must be a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.model_fields))
        if unknown:
            raise EstimatorError(f"{where}: unknown model config fields {unknown}")
        try:
            return cls.model_validate(d)
        except ValidationError as exc:
            raise EstimatorError(format_validation_error(exc, where, cls.__name__)) from None


class TrainConfig(Spec):
    """Training settings of :func:`bprl.estimator.train.train_estimator`.

    ``model`` accepts a :class:`ModelConfig` or its mapping.

    >>> from bprl.config import load_spec
    >>> load_spec(TrainConfig, {"epochs": 0}, source_name="exp.yaml")
    Traceback (most recent call last):
    ...
    bprl.errors.ConfigError: exp.yaml: invalid TrainConfig
      epochs: Input should be greater than or equal to 1 (got 0)
    """

    model: ModelConfig = Field(default_factory=ModelConfig, description="the architecture")
    epochs: int = Field(30, ge=1, le=MAX_EPOCHS, strict=True, description="maximum number of epochs")
    batch_size: int = Field(
        64, ge=1, le=MAX_BATCH_SIZE, strict=True, description="windows per optimiser step"
    )
    lr: float = Field(2e-3, gt=0, le=10, strict=True, allow_inf_nan=False, description="Adam learning rate")
    weight_decay: float = Field(
        1e-4, ge=0, le=10, strict=True, allow_inf_nan=False, description="Adam weight decay"
    )
    patience: int = Field(
        5,
        ge=0,
        le=MAX_EPOCHS,
        strict=True,
        description="validations without improvement before stopping early",
    )
    absolute_weight: float = Field(
        0.02,
        ge=0,
        le=1000,
        allow_inf_nan=False,
        description="weight of the absolute error (label-normalised MSE) in the loss",
    )
    pair_weight: float = Field(
        1.0,
        ge=0,
        le=1000,
        allow_inf_nan=False,
        description="weight of the within-subject error: each window is paired with a random "
        "window of the same subject and the MSE of (est_a - est_b) - (ref_a - ref_b) is added "
        "(0: absolute error only, the original training)",
    )
    range_weight: float = Field(
        0.0,
        ge=0,
        le=1000,
        allow_inf_nan=False,
        description="weight of the range head's cross-entropy in the loss (needs model.range_head)",
    )
    oversample: bool = Field(
        False,
        strict=True,
        description="draw training windows with weights inverse to their SBP-range frequency "
        "(bins SBP_BIN_EDGES_MMHG), so rare hypo/hypertensive ranges are seen more",
    )
    within_subject_gain: bool = Field(
        False,
        strict=True,
        description="after training, scale the output's within-subject changes by the least-squares "
        "gain of the validation subjects' reference changes on the estimate's (step level): undoes "
        "the shrinkage towards each subject's mean that regularisation and early stopping leave",
    )
    max_windows_per_step: int | None = Field(
        None,
        ge=1,
        le=MAX_WINDOWS_PER_STEP,
        strict=True,
        description="keep at most this many sub-windows per replay step (None: all)",
    )
    max_steps_per_epoch: int | None = Field(
        None,
        ge=1,
        le=MAX_OPTIMISER_STEPS,
        strict=True,
        description="cap on optimiser steps per epoch (None: one pass over the data)",
    )
    eval_every_steps: int | None = Field(
        None,
        ge=1,
        le=MAX_OPTIMISER_STEPS,
        strict=True,
        description="validate every this many optimiser steps (None: after each epoch); "
        "early stopping and the kept weights follow these validations",
    )

    @model_validator(mode="after")
    def _check_loss(self) -> TrainConfig:
        if self.absolute_weight == 0 and self.pair_weight == 0:
            raise ValueError("absolute_weight and pair_weight are both 0: nothing to train on")
        if self.range_weight > 0 and not self.model.range_head:
            raise ValueError("range_weight > 0 needs model.range_head: true")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (``model`` as :meth:`ModelConfig.to_dict`), as stored in ``config.json``."""
        return self.model_dump(mode="json")
