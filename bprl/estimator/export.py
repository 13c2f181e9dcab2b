"""Export of a CNN-GRU checkpoint to ONNX, run later by :class:`~bprl.estimator.estimators.OnnxEstimator`."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from bprl.estimator.estimators import CnnGruEstimator
from bprl.io import atomic_output

__all__ = ["export_onnx"]


def export_onnx(checkpoint_dir: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Export a CNN-GRU checkpoint to ONNX (opset 17, dynamic batch); config stored as metadata.

    The metadata holds the model config (``bprl_model_config``), the training mean
    (``bprl_train_mean_mmhg``) and the checkpoint's fingerprint (``bprl_checkpoint_sha256``).

    Args:
        checkpoint_dir: the checkpoint folder.
        out_path: the ``.onnx`` file to write (atomically).

    Returns:
        ``out_path``.

    Raises:
        EstimatorError: the checkpoint cannot be loaded.
    """
    import onnx

    est = CnnGruEstimator.load(checkpoint_dir)
    model = est.model.eval()
    cfg = est.config
    x = torch.zeros(2, 2, cfg.window_len)
    args: tuple[torch.Tensor, ...] = (x,)
    names = ["x"]
    if cfg.hybrid:
        args = (x, torch.zeros(2, len(cfg.feature_columns)))
        names.append("feats")
    out_path = Path(out_path)
    with atomic_output(out_path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            args,
            str(tmp),
            input_names=names,
            output_names=["bp_mmhg"],
            dynamic_axes={n: {0: "batch"} for n in [*names, "bp_mmhg"]},
            opset_version=17,
            dynamo=False,
        )
        proto = onnx.load(str(tmp))
        meta = {
            "bprl_model_config": json.dumps(cfg.to_dict()),
            "bprl_train_mean_mmhg": json.dumps(list(est.train_mean_mmhg)),
            "bprl_checkpoint_sha256": est.fingerprint(),
        }
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, str(tmp))
    return out_path
