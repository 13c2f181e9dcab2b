"""Estimator speed: inference windows per second (PyTorch vs onnxruntime) and training throughput.

Usage: ``python -m benchmarks estimator`` or
``python -m benchmarks.bench_estimator [--windows N] [--batch B] [--threads T] [--random]``.
The model is the shipped pretrained default (``--random``: the default architecture with
seeded random weights; speed does not depend on the weights). Training throughput is measured
live (optimiser steps of the paired within-subject loss on random windows); the training time
of the shipped model is the one its ``evaluation.json`` recorded when ``make pretrained`` built it.
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
from bprl.estimator.pretrained import pretrained_path
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
    ap.add_argument("--random", action="store_true", help="random weights instead of the pretrained model")
    ap.add_argument("--train-steps", type=int, default=30, help="optimiser steps timed for training")
    args = ap.parse_args(argv if argv is not None else [])

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.random:
            torch.manual_seed(0)
            ckpt = _save_checkpoint(CnnGruNet(ModelConfig()).eval(), Path(tmp) / "ckpt")
        else:
            ckpt = pretrained_path()
        torch_est = CnnGruEstimator.load(ckpt)
        cfg = torch_est.config
        x = normalise_windows(rng.standard_normal((args.windows, 2, cfg.window_len)).astype(np.float32))
        feats = np.column_stack(
            [rng.uniform(lo, hi, args.windows) for lo, hi in _FEATURE_RANGES[: len(cfg.feature_columns)]]
        ).astype(np.float32)
        onnx_est = OnnxEstimator(export_onnx(ckpt, Path(tmp) / "model.onnx"))
        diff = float(np.max(np.abs(torch_est.predict_windows(x, feats) - onnx_est.predict_windows(x, feats))))
        print(
            f"model: {'random' if args.random else 'pretrained default'} CNN-GRU (hybrid: {cfg.hybrid}), "
            f"{count_parameters(torch_est.model)} parameters, window {cfg.window_s:g} s x {cfg.fs_hz:g} Hz x 2 "
            f"channels; threads={args.threads}; max |torch - onnx| = {diff:.2e} mmHg"
        )
        print("| batch | torch windows/s | onnxruntime windows/s | onnx / torch |")
        print("| --- | --- | --- | --- |")
        for b in args.batch:
            n = min(len(x), 128) if b == 1 else len(x)
            rt = _rate(torch_est.predict_windows, x[:n], feats[:n], b, args.repeats)
            ro = _rate(onnx_est.predict_windows, x[:n], feats[:n], b, args.repeats)
            print(f"| {b} | {rt:,.0f} | {ro:,.0f} | {ro / rt:.2f} |")
        print()
        print(_training_table(cfg, args.train_steps, None if args.random else ckpt))


#: plausible ranges of the default hybrid features (pat_foot_ms, pat_peak_ms, hr_bpm, rise, width)
_FEATURE_RANGES = ((180, 320), (250, 450), (50, 110), (80, 200), (250, 500))


def _training_table(cfg: ModelConfig, steps: int, ckpt: Path | None) -> str:
    """Training windows/s of the paired loss (live), and the recorded training time of the shipped model."""
    import json

    from bprl.estimator.config import TrainConfig
    from bprl.estimator.dataset import WindowDataset
    from bprl.estimator.train import _Batches, _EpochLoop

    n = 64 * steps
    rng = np.random.default_rng(1)
    ds = WindowDataset(
        x=normalise_windows(rng.standard_normal((n, 2, cfg.window_len)).astype(np.float32)),
        feats=rng.uniform(100, 300, (n, len(cfg.feature_columns))).astype(np.float32),
        y=rng.normal(120, 15, (n, 2)).astype(np.float32),
        subject_id=np.repeat(np.arange(n // 64).astype(str), 64).astype(object),
        record_id=np.zeros(n, dtype=object),
        step=np.arange(n),
        split=np.full(n, "train", dtype=object),
        config=cfg,
    )
    torch.manual_seed(0)
    model = CnnGruNet(cfg)
    tcfg = TrainConfig(model=cfg)
    with tempfile.TemporaryDirectory() as tmp:
        loop = _EpochLoop(model, None, _Batches(ds, 0), ds, tcfg, Path(tmp), progress=False)  # type: ignore[arg-type]
        order = np.random.default_rng(2).permutation(n)
        t0 = time.perf_counter()
        for a in range(0, n, 64):
            loop.step(order[a : a + 64])
        dt = time.perf_counter() - t0
    lines = ["| training | value |", "| --- | --- |"]
    lines.append(f"| paired-loss training, windows/s (batch 64, {steps} steps, live) | {n / dt:,.0f} |")
    if ckpt is not None and (ckpt / "evaluation.json").is_file():
        ev = json.loads((ckpt / "evaluation.json").read_text())
        info = json.loads((ckpt / "config.json").read_text())
        n_train = info["data"]["splits"]["train"]["n_windows"]
        lines.append(
            f"| shipped model: training time recorded by `make pretrained`, s | {ev['timing_s']['training']:.0f} |"
        )
        lines.append(f"| shipped model: training windows x epochs run | {n_train:,} x {info['epochs_run']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
