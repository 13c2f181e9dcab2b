"""Estimator inference speed: windows per second, PyTorch vs onnxruntime, same CNN-GRU weights.

Usage: ``python -m benchmarks estimator`` or
``python -m benchmarks.bench_estimator [--windows N] [--batch B] [--threads T] [--hybrid]``.
The model has the default architecture with random (seeded) weights; speed does not
depend on the values of the weights.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bprl.estimator.config import ModelConfig
from bprl.estimator.estimators import CHECKPOINT_FORMAT, CnnGruEstimator, OnnxEstimator
from bprl.estimator.export import export_onnx
from bprl.estimator.model import CnnGruNet, count_parameters
from bprl.estimator.windows import normalise_windows


def _save_checkpoint(model: CnnGruNet, out: Path) -> Path:
    """A minimal checkpoint folder (model.pt + config.json) for export."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "model.pt")
    (out / "config.json").write_text(
        json.dumps({"format": CHECKPOINT_FORMAT, "model": model.config.to_dict()})
    )
    return out


def _rate(fn, x: np.ndarray, feats: np.ndarray, batch: int, repeats: int) -> float:
    """Best-of-``repeats`` windows per second of ``fn`` over ``x`` in batches."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for a in range(0, len(x), batch):
            fn(x[a : a + batch], feats[a : a + batch])
        best = min(best, time.perf_counter() - t0)
    return len(x) / best


def main(argv: list[str] | None = None) -> None:
    """Print a table of windows/second for torch and onnxruntime and their ratio."""
    ap = argparse.ArgumentParser(prog="bench_estimator")
    ap.add_argument("--windows", type=int, default=512)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hybrid", action="store_true")
    args = ap.parse_args(argv if argv is not None else [])

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = ModelConfig(hybrid=args.hybrid)
    model = CnnGruNet(cfg).eval()
    rng = np.random.default_rng(0)
    x = normalise_windows(rng.standard_normal((args.windows, 2, cfg.window_len)).astype(np.float32))
    feats = np.column_stack([rng.uniform(180, 320, args.windows), rng.uniform(50, 110, args.windows)]).astype(
        np.float32
    )
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = _save_checkpoint(model, Path(tmp) / "ckpt")
        torch_est = CnnGruEstimator.load(ckpt)
        onnx_est = OnnxEstimator(export_onnx(ckpt, Path(tmp) / "model.onnx"))
        diff = float(np.max(np.abs(torch_est.predict_windows(x, feats) - onnx_est.predict_windows(x, feats))))
        print(
            f"model: default CNN-GRU{' (hybrid)' if cfg.hybrid else ''}, {count_parameters(model)} parameters, "
            f"window {cfg.window_s:g} s x {cfg.fs_hz:g} Hz x 2 channels; threads={args.threads}; "
            f"max |torch - onnx| = {diff:.2e} mmHg"
        )
        print("| batch | torch windows/s | onnxruntime windows/s | onnx / torch |")
        print("| --- | --- | --- | --- |")
        for b in args.batch:
            n = min(len(x), 128) if b == 1 else len(x)
            rt = _rate(torch_est.predict_windows, x[:n], feats[:n], b, args.repeats)
            ro = _rate(onnx_est.predict_windows, x[:n], feats[:n], b, args.repeats)
            print(f"| {b} | {rt:,.0f} | {ro:,.0f} | {ro / rt:.2f} |")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
