"""Estimators that run on waveforms, and opening any estimator from a path.

Every estimator satisfies :class:`Estimator`: ``predict_table(table, record)`` returns SBP and
DBP per replay-table step, and ``fingerprint()`` identifies the fitted model for caching.

- :class:`CnnGruEstimator`: a trained checkpoint folder of :class:`~bprl.estimator.model.CnnGruNet`
  (``model.pt``, ``config.json``, ``metrics.json``, ``train_log.csv``, ``MODEL_CARD.md``);
  a step's estimate is the median over its valid non-overlapping sub-windows.
- :class:`OnnxEstimator`: the CNN-GRU exported by :func:`bprl.estimator.export.export_onnx`,
  run with onnxruntime.
- :class:`~bprl.estimator.linear.PatLinearEstimator` (its own module): PAT/HR least squares.

:func:`load_estimator` opens any of them from a path. A checkpoint's fingerprint is the
sha256 of ``model.pt`` and ``config.json``, which are written byte-reproducibly.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from bprl.cache_versions import STAMP_KEY, stale_reason
from bprl.cache_versions import logger as cache_logger
from bprl.errors import EstimatorError
from bprl.estimator.config import ModelConfig
from bprl.estimator.linear import DELTA_LINEAR_FORMAT, DeltaLinearEstimator, PatLinearEstimator
from bprl.estimator.model import CnnGruNet
from bprl.estimator.windows import step_windows
from bprl.io import sha256_files
from bprl.sources import Record

__all__ = [
    "CARD_FILE",
    "CHECKPOINT_FORMAT",
    "CONFIG_FILE",
    "LOG_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "CnnGruEstimator",
    "Estimator",
    "OnnxEstimator",
    "estimator_files",
    "load_estimator",
]

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
LOG_FILE = "train_log.csv"
CARD_FILE = "MODEL_CARD.md"
CHECKPOINT_FORMAT = "bprl-cnngru-2"
#: earlier checkpoint formats, refused with a request to retrain
_OLD_FORMATS = {"bprl-cnngru-1": "an earlier bprl (two hybrid features, no feature skip, absolute loss only)"}


class Estimator(Protocol):
    """What environments and the replay-table builder need from an estimator."""

    kind: str
    train_mean_mmhg: tuple[float, float]

    def predict_table(
        self, table: pd.DataFrame, record: Record | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """SBP and DBP (mmHg) per table row; NaN where the step has no usable input."""
        ...

    def fingerprint(self) -> str:
        """sha256 identifying the fitted model (for caches)."""
        ...


class _WindowEstimator:
    """Shared step-level inference of window models: sub-window predictions, median per step."""

    kind = "window"
    config: ModelConfig
    train_mean_mmhg: tuple[float, float]

    def predict_windows(self, x: np.ndarray, feats: np.ndarray | None = None) -> np.ndarray:
        """(n, 2) SBP/DBP of z-normalised windows (n, 2, window_len)."""
        raise NotImplementedError

    def predict_table(
        self, table: pd.DataFrame, record: Record | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """SBP and DBP per table row: median over the step's valid sub-windows; NaN when none."""
        if record is None:
            raise EstimatorError(f"{self.kind} estimator needs the record's ECG and PPG, got record=None")
        sw = step_windows(table, record, self.config)
        sbp = np.full(len(table), np.nan)
        dbp = np.full(len(table), np.nan)
        keep = np.ones(len(sw.row), dtype=bool)
        if self.config.hybrid:
            keep = np.isfinite(sw.feats).all(axis=1)
        if keep.any():
            pred = self.predict_windows(sw.x[keep], sw.feats[keep])
            df = pd.DataFrame({"row": sw.row[keep], "sbp": pred[:, 0], "dbp": pred[:, 1]})
            med = df.groupby("row").median()
            sbp[med.index.to_numpy()] = med["sbp"].to_numpy()
            dbp[med.index.to_numpy()] = med["dbp"].to_numpy()
        return sbp, dbp


def estimator_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files that identify a saved estimator: a checkpoint folder's ``model.pt`` and
    ``config.json``, or the file itself (``.onnx``, linear-model ``.json``)."""
    path = Path(path)
    return [path / MODEL_FILE, path / CONFIG_FILE] if path.is_dir() else [path]


class CnnGruEstimator(_WindowEstimator):
    """A trained CNN-GRU checkpoint folder, ready for inference (:meth:`load`).

    Args:
        model: the network (put in eval mode).
        info: the checkpoint's ``config.json`` contents.
        path: the checkpoint folder (None: not saved; the fingerprint hashes the weights).
    """

    kind = "cnn-gru"

    def __init__(self, model: CnnGruNet, info: dict[str, Any], path: Path | None = None) -> None:
        self.model = model.eval()
        self.config = model.config
        self.info = info
        self.path = path
        # the training labels' mean (the mean predictor); label_mean itself carries the re-centring shift
        mean = (info.get("normalisation") or {}).get("label_mean_mmhg") or model.label_mean.tolist()
        self.train_mean_mmhg = (float(mean[0]), float(mean[1]))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CnnGruEstimator:
        """Open a checkpoint folder (``model.pt`` + ``config.json``).

        A checkpoint made under other major versions of numpy, pandas or torch is loaded with
        a warning on the ``bprl.cache`` logger.

        Raises:
            EstimatorError: naming the file on missing, corrupt or incompatible content.
        """
        path = Path(path)
        cfg_path, model_path = path / CONFIG_FILE, path / MODEL_FILE
        for p in (cfg_path, model_path):
            if not p.is_file():
                raise EstimatorError(f"{p}: missing checkpoint file")
        try:
            info = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EstimatorError(f"{cfg_path}: not valid JSON: {exc}") from exc
        if isinstance(info, dict) and info.get("format") in _OLD_FORMATS:
            raise EstimatorError(
                f"{cfg_path}: checkpoint format {info['format']!r} was written by "
                f"{_OLD_FORMATS[info['format']]}; retrain it (bprl estimator train) or use the "
                "pretrained default (estimator.checkpoint: pretrained)"
            )
        if not isinstance(info, dict) or info.get("format") != CHECKPOINT_FORMAT:
            raise EstimatorError(
                f"{cfg_path}: not a bprl CNN-GRU checkpoint (format != {CHECKPOINT_FORMAT!r})"
            )
        config = ModelConfig.from_dict(info.get("model", {}), str(cfg_path))
        if STAMP_KEY in info and (why := stale_reason(info[STAMP_KEY])) is not None:
            # a given checkpoint is an input, not a cache: say so (the experiment runner retrains its own)
            cache_logger.warning("%s: checkpoint %s; retrain it here if its estimates differ", path, why)
        try:
            state = torch.load(model_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError on corrupt files
            raise EstimatorError(f"{model_path}: corrupt or unreadable state dict: {exc}") from exc
        if not isinstance(state, dict):
            raise EstimatorError(f"{model_path}: expected a state dict, got {type(state).__name__}")
        model = CnnGruNet(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0:3]
            raise EstimatorError(
                f"{model_path}: weights do not match the architecture in {cfg_path.name}: {' '.join(first)}"
            ) from exc
        return cls(model, info, path)

    def predict_windows(
        self, x: np.ndarray, feats: np.ndarray | None = None, batch_size: int = 256
    ) -> np.ndarray:
        """(n, 2) SBP/DBP in mmHg of z-normalised windows (n, 2, window_len).

        Raises:
            EstimatorError: the windows have the wrong shape or contain NaN or inf.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (2, self.config.window_len):
            raise EstimatorError(f"windows must have shape (n, 2, {self.config.window_len}), got {x.shape}")
        if len(x) == 0:
            return np.zeros((0, 2))
        if not np.isfinite(x).all():
            raise EstimatorError("windows contain NaN or inf; drop invalid windows before inference")
        return self.outputs(x, feats, batch_size)[0]

    def outputs(
        self, x: np.ndarray, feats: np.ndarray | None = None, batch_size: int = 256
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, 2) SBP/DBP in mmHg (float64) of valid z-normalised windows, and with a range head the
        (n, 4) BP-range logits (else None): one batched pass, no input checks."""
        x = np.asarray(x, dtype=np.float32)
        f = np.zeros((len(x), len(self.config.feature_columns)), np.float32) if feats is None else feats
        preds, logits = [], []
        with torch.no_grad():
            for a in range(0, len(x), batch_size):
                fb = (
                    torch.from_numpy(np.asarray(f[a : a + batch_size], np.float32))
                    if self.config.hybrid
                    else None
                )
                out, lg = self.model.forward_with_ranges(torch.from_numpy(x[a : a + batch_size]), fb)
                preds.append((out * self.model.label_sd + self.model.label_mean).numpy())
                if lg is not None:
                    logits.append(lg.numpy())
        pred = (np.concatenate(preds) if preds else np.zeros((0, 2), np.float32)).astype(np.float64)
        return pred, (np.concatenate(logits) if logits else None)

    def predict_ranges(
        self, x: np.ndarray, feats: np.ndarray | None = None, batch_size: int = 256
    ) -> np.ndarray:
        """(n, 4) BP-range logits (:data:`bprl.estimator.ranges.BP_RANGES`) of z-normalised windows.

        Raises:
            EstimatorError: the model has no range head.
        """
        if not self.config.range_head:
            raise EstimatorError(
                f"{self.path or 'this CNN-GRU'}: the model has no range head (model.range_head)"
            )
        logits = self.outputs(x, feats, batch_size)[1]
        return np.zeros((0, 4)) if logits is None else logits

    def fingerprint(self) -> str:
        """sha256 of ``model.pt`` and ``config.json`` (of the state when not saved)."""
        if self.path is not None:
            return sha256_files(estimator_files(self.path))
        buf = io.BytesIO()
        torch.save(self.model.state_dict(), buf)
        return hashlib.sha256(buf.getvalue() + json.dumps(self.config.to_dict()).encode()).hexdigest()


class OnnxEstimator(_WindowEstimator):
    """The CNN-GRU exported by :func:`~bprl.estimator.export.export_onnx`, run with onnxruntime.

    The model config and training mean are read from the ONNX metadata.

    Args:
        path: the ``.onnx`` file.

    Raises:
        EstimatorError: the file is missing, not loadable, or not exported by bprl.
    """

    kind = "onnx"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise EstimatorError(f"{self.path}: no such ONNX file")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EstimatorError(f"{self.path}: not a loadable ONNX model: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if "bprl_model_config" not in meta:
            raise EstimatorError(
                f"{self.path}: ONNX file has no bprl_model_config metadata (not exported by bprl)"
            )
        self.config = ModelConfig.from_dict(json.loads(meta["bprl_model_config"]), str(self.path))
        self.train_mean_mmhg = tuple(json.loads(meta.get("bprl_train_mean_mmhg", "[NaN, NaN]")))
        self._inputs = [i.name for i in self.session.get_inputs()]

    def predict_windows(self, x: np.ndarray, feats: np.ndarray | None = None) -> np.ndarray:
        """(n, 2) SBP/DBP in mmHg of z-normalised windows (n, 2, window_len)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, 2))
        feed = {"x": x}
        if "feats" in self._inputs:
            f = np.zeros((len(x), 2), np.float32) if feats is None else np.asarray(feats, np.float32)
            feed["feats"] = np.ascontiguousarray(f)
        return self.session.run(None, feed)[0].astype(np.float64)

    def fingerprint(self) -> str:
        """sha256 of the ONNX file."""
        return sha256_files(estimator_files(self.path))


def load_estimator(
    path: str | os.PathLike[str],
) -> CnnGruEstimator | PatLinearEstimator | DeltaLinearEstimator | OnnxEstimator:
    """Open an estimator: a checkpoint folder (CNN-GRU), a ``.onnx`` file, or a linear model's ``.json``.

    A ``.json`` file is a :class:`~bprl.estimator.linear.DeltaLinearEstimator` when its format says
    so, else a :class:`~bprl.estimator.linear.PatLinearEstimator`.

    Raises:
        EstimatorError: ``path`` is none of these, or its content is unusable.
    """
    path = Path(path)
    if path.is_dir():
        return CnnGruEstimator.load(path)
    if path.suffix == ".onnx":
        return OnnxEstimator(path)
    if path.suffix == ".json" and path.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError, json.JSONDecodeError):
            if json.loads(path.read_text(encoding="utf-8")).get("format") == DELTA_LINEAR_FORMAT:
                return DeltaLinearEstimator.load(path)
        return PatLinearEstimator.load(path)
    raise EstimatorError(f"{path}: not an estimator (expected a checkpoint folder, a .onnx or a .json file)")
