"""Population (calibration-free) blood-pressure estimators: CNN-GRU on raw ECG + PPG, and a PAT linear model.

Every estimator shares one interface (:class:`Estimator`): ``predict_table(table, record)``
returns SBP and DBP per replay-table step, and ``fingerprint()`` identifies the fitted model
for caching.

- :class:`CnnGruEstimator` wraps :class:`CnnGruNet`, after Eom et al. (Sensors 2020,
  20(8):2338): a 1-D CNN over an 8-s window of ECG and PPG at 125 Hz (2 channels,
  each z-normalised per window), a bidirectional GRU, attention pooling over time
  and a regression head for SBP and DBP. The hybrid variant also receives the
  step's replay-table features (PAT, HR, PPG shape) through a linear path plus the
  network's residual, and is trained with a paired within-subject loss so that it tracks
  BP within a subject. A step's estimate is the median over its
  non-overlapping sub-windows. Trained by :func:`train_estimator` into a checkpoint
  folder (``model.pt``, ``config.json``, ``metrics.json``, ``train_log.csv``,
  ``MODEL_CARD.md``).
- :class:`PatLinearEstimator`: least squares SBP/DBP = a + b·ln(PAT_foot) + c·HR
  on training subjects' replay tables; saved as JSON. Cheap default for tests and
  environments.
- :class:`DeltaLinearEstimator`: slopes on PAT and HR fit within training subjects, the
  baseline of the tracking metrics.
- :func:`pretrained_path`: the shipped default CNN-GRU (``estimator.checkpoint: pretrained``).
- :class:`OnnxEstimator`: the CNN-GRU exported by :func:`export_onnx`, run with
  onnxruntime.

:func:`load_estimator` opens any of them from a path. :func:`add_estimates` fills
``est_sbp_mmhg`` / ``est_dbp_mmhg`` of a replay table; :func:`estimate_replay_table`
caches the result under the table's content hash plus the estimator fingerprint.

Modules:

* :mod:`bprl.estimator.config` -- :class:`ModelConfig`, :class:`TrainConfig` (:class:`bprl.config.Spec` models);
* :mod:`bprl.estimator.model` -- :class:`CnnGruNet`, :func:`count_parameters`;
* :mod:`bprl.estimator.windows` -- ECG/PPG on one time base, per-step windows, validity, normalisation;
* :mod:`bprl.estimator.dataset` -- :class:`WindowDataset`, :func:`build_window_dataset`, oversampling;
* :mod:`bprl.estimator.metrics` -- ME/SD/MAE/BHS/bias SD/MASE, evaluation on a split;
* :mod:`bprl.estimator.estimators` -- :class:`Estimator`, :class:`CnnGruEstimator`,
  :class:`OnnxEstimator`, :func:`load_estimator`, checkpoint file names;
* :mod:`bprl.tracking` -- within-subject tracking metrics (r, slope, SD ratio, trend error vs hold);
* :mod:`bprl.estimator.linear` -- :class:`PatLinearEstimator`, :class:`DeltaLinearEstimator`;
* :mod:`bprl.estimator.range_classifier` -- :class:`RangeClassifier` (BP range from replay-table
  features, e.g. the camera experiment's);
* :mod:`bprl.estimator.pretrained` -- :func:`pretrained_path`, :func:`train_pretrained`;
* :mod:`bprl.estimator.train` -- :func:`train_estimator`, :func:`save_state_dict`;
* :mod:`bprl.estimator.card` -- :func:`model_card`;
* :mod:`bprl.estimator.inference` -- :func:`add_estimates`, :func:`estimate_replay_table`, :func:`estimate_tables`;
* :mod:`bprl.estimator.export` -- :func:`export_onnx`.

>>> from bprl.estimator import ModelConfig, TrainConfig
>>> TrainConfig(model=ModelConfig(hybrid=True), epochs=3).to_dict()["model"]["hybrid"]
True
"""

from __future__ import annotations

from bprl.errors import EstimatorError
from bprl.estimator.card import model_card
from bprl.estimator.config import FEATURE_COLUMNS, ModelConfig, TrainConfig
from bprl.estimator.dataset import (
    SBP_BIN_EDGES_MMHG,
    WindowDataset,
    build_window_dataset,
    cohort_record_path,
    load_table,
    oversampling_weights,
    read_manifest,
    windows_from_table,
)
from bprl.estimator.estimators import (
    CARD_FILE,
    CHECKPOINT_FORMAT,
    CONFIG_FILE,
    LOG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    CnnGruEstimator,
    Estimator,
    OnnxEstimator,
    load_estimator,
)
from bprl.estimator.export import export_onnx
from bprl.estimator.inference import add_estimates, estimate_replay_table, estimate_tables, table_hash
from bprl.estimator.linear import DELTA_LINEAR_FORMAT, LINEAR_FORMAT, DeltaLinearEstimator, PatLinearEstimator
from bprl.estimator.metrics import (
    BHS_THRESHOLDS_MMHG,
    error_metrics,
    evaluate_estimator,
    evaluate_predictions,
    evaluate_steps,
    evaluate_table_estimator,
    evaluate_tracking,
    format_metrics,
    step_predictions,
)
from bprl.estimator.model import CnnGruNet, count_parameters
from bprl.estimator.pretrained import PretrainRecipe, pretrained_path, train_pretrained
from bprl.estimator.range_classifier import RangeClassifier
from bprl.estimator.train import save_state_dict, train_estimator
from bprl.estimator.windows import (
    StepWindows,
    normalise_windows,
    record_signals,
    step_windows,
    window_is_valid,
)
from bprl.tracking import (
    compare_tracking,
    estimator_tracking,
    format_tracking,
    pooled_tracking,
    predict_steps,
    subject_tracking,
)

__all__ = [
    "BHS_THRESHOLDS_MMHG",
    "CARD_FILE",
    "CHECKPOINT_FORMAT",
    "CONFIG_FILE",
    "DELTA_LINEAR_FORMAT",
    "FEATURE_COLUMNS",
    "LINEAR_FORMAT",
    "LOG_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "SBP_BIN_EDGES_MMHG",
    "CnnGruEstimator",
    "CnnGruNet",
    "DeltaLinearEstimator",
    "Estimator",
    "EstimatorError",
    "ModelConfig",
    "OnnxEstimator",
    "PatLinearEstimator",
    "PretrainRecipe",
    "RangeClassifier",
    "StepWindows",
    "TrainConfig",
    "WindowDataset",
    "add_estimates",
    "build_window_dataset",
    "cohort_record_path",
    "compare_tracking",
    "count_parameters",
    "error_metrics",
    "estimate_replay_table",
    "estimate_tables",
    "estimator_tracking",
    "evaluate_estimator",
    "evaluate_predictions",
    "evaluate_steps",
    "evaluate_table_estimator",
    "evaluate_tracking",
    "export_onnx",
    "format_metrics",
    "format_tracking",
    "load_estimator",
    "load_table",
    "model_card",
    "normalise_windows",
    "oversampling_weights",
    "pooled_tracking",
    "predict_steps",
    "pretrained_path",
    "read_manifest",
    "record_signals",
    "save_state_dict",
    "step_predictions",
    "step_windows",
    "subject_tracking",
    "table_hash",
    "train_estimator",
    "train_pretrained",
    "window_is_valid",
    "windows_from_table",
]
