"""Training of the CNN-GRU estimator into a checkpoint folder: :func:`train_estimator`.

The run is a chain of named steps:

1. data: :func:`_training_data` -- the window dataset (given, or built from a cohort folder),
   checked for subject-disjoint splits, enough training windows and finite inputs;
2. model: :func:`_init_model` -- the seeded network with label (and feature) normalisation
   from the training windows; :func:`_train_loader` -- the seeded (optionally oversampling)
   loader;
3. epoch loop: :class:`_EpochLoop` -- Adam steps, validation after each epoch or every
   ``eval_every_steps`` steps, one log row per validation;
4. early stopping: :class:`_EarlyStopping` -- keeps the weights of the best validation and
   stops after ``patience`` validations without improvement;
5. saving: :func:`_checkpoint_info` and :func:`_write_checkpoint` -- ``model.pt`` (written
   byte-reproducibly by :func:`save_state_dict`), ``config.json``, ``train_log.csv``,
   ``metrics.json`` and ``MODEL_CARD.md``, each atomically.

Same data, config and seed give the same ``model.pt`` bytes.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from bprl.cache_versions import STAMP_KEY, cache_versions
from bprl.errors import EstimatorError
from bprl.estimator.card import model_card
from bprl.estimator.config import TrainConfig
from bprl.estimator.dataset import WindowDataset, build_window_dataset, oversampling_weights
from bprl.estimator.estimators import (
    CARD_FILE,
    CHECKPOINT_FORMAT,
    CONFIG_FILE,
    LOG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    CnnGruEstimator,
)
from bprl.estimator.metrics import evaluate_estimator, evaluate_tracking
from bprl.estimator.model import CnnGruNet, count_parameters
from bprl.estimator.ranges import bp_range
from bprl.io import atomic_output, write_text_atomic
from bprl.provenance import CACHE_PACKAGES, package_versions

__all__ = ["save_state_dict", "train_estimator"]


# ------------------------------------------------------------------ 1. data
def _training_data(
    data: WindowDataset | str | os.PathLike[str],
    config: TrainConfig,
    feature_config: Any,
    cache_dir: str | os.PathLike[str] | None,
    progress: bool,
) -> tuple[WindowDataset, WindowDataset, WindowDataset, WindowDataset]:
    """The dataset and its train, val and test parts, checked for training.

    Raises:
        EstimatorError: windows cut for another rate or length, subjects in two splits,
            fewer than 2 training windows, non-finite features (hybrid) or inputs.
    """
    if isinstance(data, WindowDataset):
        ds = data
        if ds.config != config.model:
            if (ds.config.fs_hz, ds.config.window_s) != (config.model.fs_hz, config.model.window_s):
                raise EstimatorError(
                    "dataset windows were cut for a different fs_hz/window_s than the model config"
                )
            if config.model.hybrid and ds.config.feature_columns != config.model.feature_columns:
                raise EstimatorError(
                    f"dataset features are {list(ds.config.feature_columns)}, the model reads "
                    f"{list(config.model.feature_columns)}: build the dataset with the model config"
                )
            ds = dataclasses.replace(ds, config=config.model)
    else:
        ds = build_window_dataset(
            data,
            config.model,
            feature_config,
            cache_dir,
            max_windows_per_step=config.max_windows_per_step,
            progress=progress,
        )
    ds.check_disjoint()
    train, val, test = ds.subset("train"), ds.subset("val"), ds.subset("test")
    if len(train) < 2:
        raise EstimatorError(f"{ds.source or 'dataset'}: only {len(train)} training windows")
    if config.model.hybrid:
        ok = np.isfinite(train.feats).all() and np.isfinite(val.feats).all() and np.isfinite(test.feats).all()
        if not ok:
            raise EstimatorError(
                f"{ds.source or 'dataset'}: hybrid model needs finite PAT/HR for every window"
            )
    if not (np.isfinite(train.x).all() and np.isfinite(train.y).all()):
        raise EstimatorError(f"{ds.source or 'dataset'}: training windows or labels contain NaN")
    return ds, train, val, test


# ------------------------------------------------------------------ 2. model
@contextlib.contextmanager
def _deterministic_algorithms() -> Iterator[None]:
    """Run the block with ``torch.use_deterministic_algorithms(True)``, restoring the setting after."""
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev)


def _label_normalisation(train: WindowDataset) -> tuple[np.ndarray, np.ndarray]:
    """Training label mean and SD (at least 1 mmHg) per target, float64, mmHg."""
    return train.y.mean(axis=0), np.maximum(train.y.std(axis=0), 1.0)


def _init_model(config: TrainConfig, train: WindowDataset, seed: int) -> CnnGruNet:
    """The network seeded with ``seed``, its label (and, hybrid, feature) normalisation from ``train``.

    Labels are normalised by their training mean and SD (at least 1 mmHg), features by theirs
    (SD at least 1e-3).
    """
    torch.manual_seed(seed)
    model = CnnGruNet(config.model)
    label_mean, label_sd = _label_normalisation(train)
    model.label_mean.copy_(torch.as_tensor(label_mean, dtype=torch.float32))
    model.label_sd.copy_(torch.as_tensor(label_sd, dtype=torch.float32))
    if config.model.hybrid:
        model.feat_mean.copy_(torch.as_tensor(train.feats.mean(axis=0), dtype=torch.float32))
        model.feat_sd.copy_(torch.as_tensor(np.maximum(train.feats.std(axis=0), 1e-3), dtype=torch.float32))
    return model


def _train_loader(train: WindowDataset, config: TrainConfig, seed: int) -> torch.utils.data.DataLoader:
    """Seeded loader of batches of training-window indices; weighted by SBP range when oversampling."""
    tds = torch.utils.data.TensorDataset(torch.arange(len(train)))
    gen = torch.Generator().manual_seed(seed)
    sampler = None
    if config.oversample:
        w = torch.as_tensor(oversampling_weights(train.y[:, 0]), dtype=torch.double)
        sampler = torch.utils.data.WeightedRandomSampler(w, len(w), replacement=True, generator=gen)
    return torch.utils.data.DataLoader(
        tds,
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        generator=gen if sampler is None else None,
        num_workers=0,
        drop_last=len(tds) > config.batch_size,
    )


class _Batches:
    """Tensors of training windows by index, and a seeded partner of each from the same subject.

    Args:
        train: the training windows.
        seed: seed of the partner draws.
    """

    def __init__(self, train: WindowDataset, seed: int) -> None:
        label_mean, label_sd = _label_normalisation(train)
        self.x = torch.from_numpy(train.x)
        self.feats = torch.from_numpy(train.feats.astype(np.float32))
        self.y = torch.from_numpy(((train.y - label_mean) / label_sd).astype(np.float32))
        self.ranges = torch.from_numpy(bp_range(train.y[:, 0], train.y[:, 1]))
        codes = np.unique(train.subject_id.astype(str), return_inverse=True)[1]
        self._order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes)
        self._start = np.concatenate([[0], np.cumsum(counts)[:-1]])[codes]
        self._size = counts[codes]
        self._rng = np.random.default_rng(seed)

    def get(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(windows, features, normalised labels) of the windows ``idx``."""
        t = torch.from_numpy(idx)
        return self.x[t], self.feats[t], self.y[t]

    def range_codes(self, idx: np.ndarray) -> torch.Tensor:
        """BP-range codes (:func:`bprl.estimator.ranges.bp_range`) of the windows ``idx``."""
        return self.ranges[torch.from_numpy(idx)]

    def partners(self, idx: np.ndarray) -> np.ndarray:
        """For each window of ``idx`` a random window of the same subject (possibly itself)."""
        pick = (self._rng.random(len(idx)) * self._size[idx]).astype(np.int64)
        return self._order[self._start[idx] + pick]


# ------------------------------------------------------------------ 3. epoch loop, 4. early stopping
def _predict_outputs(model: CnnGruNet, ds: WindowDataset) -> tuple[np.ndarray, np.ndarray | None]:
    """The (n, 2) predictions (mmHg, float64) of ``model`` on the windows of ``ds``, and with a range
    head its (n, 4) BP-range logits (else None); puts the model in eval mode."""
    return CnnGruEstimator(model, {}).outputs(ds.x, ds.feats)


def _predict(model: CnnGruNet, ds: WindowDataset) -> np.ndarray:
    """The (n, 2) predictions (mmHg, float64) of ``model`` on the windows of ``ds``."""
    return _predict_outputs(model, ds)[0]


def _val_loss(model: CnnGruNet, ds: WindowDataset, config: TrainConfig) -> tuple[float, np.ndarray]:
    """The training loss on ``ds`` without sampling, and the (n, 2) predictions (mmHg).

    The loss is ``absolute_weight`` x the label-normalised MSE plus ``pair_weight`` x twice the
    within-subject variance of the normalised error (the expected squared difference of the
    errors of two random windows of one subject: what the paired term estimates), plus
    ``range_weight`` x the range head's cross-entropy.
    """
    pred, logits = _predict_outputs(model, ds)
    if not len(pred):
        return math.nan, pred
    err = (pred - ds.y) / model.label_sd.numpy()
    within = err - pd.DataFrame(err).groupby(ds.subject_id.astype(str)).transform("mean").to_numpy()
    loss = config.absolute_weight * np.mean(err**2) + config.pair_weight * 2.0 * np.mean(within**2)
    if config.range_weight > 0 and logits is not None:
        codes = torch.from_numpy(bp_range(ds.y[:, 0], ds.y[:, 1]))
        loss += config.range_weight * float(nn.functional.cross_entropy(torch.from_numpy(logits), codes))
    return float(loss), pred


def _clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's state dict."""
    return {k: v.clone() for k, v in model.state_dict().items()}


@dataclass
class _EarlyStopping:
    """The validation log, the best validation so far and its weights.

    Attributes:
        patience: validations without improvement before stopping.
        best_state: weights of the best validation (at first: the initial weights).
        best_index: index in ``rows`` of the best validation (-1: none improved on infinity).
        best_loss: its loss.
        rows: one log row per validation.
    """

    patience: int
    best_state: dict[str, torch.Tensor]
    best_index: int = -1
    best_loss: float = math.inf
    rows: list[dict[str, Any]] = field(default_factory=list)

    def update(self, row: dict[str, Any], model: nn.Module) -> bool:
        """Log ``row``; keep the weights when its ``val_loss`` is the best; True when patience is exhausted."""
        self.rows.append(row)
        index = len(self.rows) - 1
        if row["val_loss"] < self.best_loss:
            self.best_loss, self.best_index = row["val_loss"], index
            self.best_state = _clone_state(model)
            return False
        return index - self.best_index >= self.patience


def _tensorboard_writer(out: Path) -> Any:
    """A TensorBoard writer into ``out/tensorboard``, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / "tensorboard"))


class _EpochLoop:
    """Adam steps over the loader's batches, validated after each epoch or every ``eval_every_steps`` steps."""

    def __init__(
        self,
        model: CnnGruNet,
        loader: torch.utils.data.DataLoader,
        batches: _Batches,
        monitor: WindowDataset,
        config: TrainConfig,
        out: Path,
        progress: bool,
    ) -> None:
        from tqdm.auto import tqdm

        self.model = model
        self.loader = loader
        self.batches = batches
        self.monitor = monitor
        self.config = config
        self.opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.writer = _tensorboard_writer(out)
        self.stopping = _EarlyStopping(config.patience, _clone_state(model))
        self.t_start = time.perf_counter()
        self.bar = tqdm(range(config.epochs), desc="estimator", unit="epoch", disable=not progress)
        self.global_step = 0
        self.losses: list[float] = []

    def step(self, idx: np.ndarray) -> None:
        """One optimiser step on the windows ``idx`` (and, with ``pair_weight``, their partners).

        The loss is ``absolute_weight`` x the label-normalised MSE plus ``pair_weight`` x the MSE of
        the within-subject differences (est_a - est_b) - (ref_a - ref_b), plus ``range_weight`` x
        the range head's cross-entropy; gradient norm clipped at 5.
        """
        cfg = self.config
        hybrid = cfg.model.hybrid
        xb, fb, yb = self.batches.get(idx)
        all_idx = idx
        if cfg.pair_weight > 0:
            partners = self.batches.partners(idx)
            x2, f2, y2 = self.batches.get(partners)
            all_idx = np.concatenate([idx, partners])
            out, logits = self.model.forward_with_ranges(
                torch.cat([xb, x2]), torch.cat([fb, f2]) if hybrid else None
            )
            o1, o2 = out[: len(idx)], out[len(idx) :]
            absolute = 0.5 * (nn.functional.mse_loss(o1, yb) + nn.functional.mse_loss(o2, y2))
            loss = cfg.absolute_weight * absolute + cfg.pair_weight * nn.functional.mse_loss(o1 - o2, yb - y2)
        else:
            out, logits = self.model.forward_with_ranges(xb, fb if hybrid else None)
            loss = cfg.absolute_weight * nn.functional.mse_loss(out, yb)
        if cfg.range_weight > 0 and logits is not None:
            loss = loss + cfg.range_weight * nn.functional.cross_entropy(
                logits, self.batches.range_codes(all_idx)
            )
        self.opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.opt.step()
        self.losses.append(loss.item())
        self.global_step += 1

    def validate(self, epoch: int) -> bool:
        """Validate, log a row (losses, MAE, within-subject tracking), keep the best weights.

        Returns:
            True when patience is exhausted.
        """
        vloss, vpred = _val_loss(self.model, self.monitor, self.config)
        self.model.train()
        vmae = np.abs(vpred - self.monitor.y).mean(axis=0) if len(vpred) else [math.nan, math.nan]
        row = {
            "epoch": epoch,
            "step": self.global_step,
            "train_loss": float(np.mean(self.losses)) if self.losses else math.nan,
            "val_loss": vloss,
            "val_mae_sbp_mmhg": float(vmae[0]),
            "val_mae_dbp_mmhg": float(vmae[1]),
            **_tracking_row(self.monitor, vpred),
            "elapsed_s": round(time.perf_counter() - self.t_start, 2),
        }
        _warn_if_collapsed(row)
        self.losses = []
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("epoch", "step", "elapsed_s"):
                    self.writer.add_scalar(k, v, self.global_step)
        self.bar.set_postfix(train=f"{row['train_loss']:.3f}", val=f"{vloss:.3f}")
        return self.stopping.update(row, self.model)

    def run(self) -> _EarlyStopping:
        """Train until ``epochs`` or early stopping; load the best weights, eval mode; return the log."""
        cfg = self.config
        stop = False
        for epoch in self.bar:
            self.model.train()
            for i, (idx,) in enumerate(self.loader):
                if cfg.max_steps_per_epoch is not None and i >= cfg.max_steps_per_epoch:
                    break
                self.step(idx.numpy())
                if cfg.eval_every_steps and self.global_step % cfg.eval_every_steps == 0:
                    stop = self.validate(epoch)
                    if stop:
                        break
            if stop or (not cfg.eval_every_steps and self.validate(epoch)):
                break
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
        self.model.load_state_dict(self.stopping.best_state)
        self.model.eval()
        return self.stopping


#: a validation whose median within-subject estimate SD is below this share of the reference's
#: has collapsed to a (near) constant per subject
COLLAPSE_SD_RATIO = 0.2


def _tracking_row(ds: WindowDataset, pred: np.ndarray) -> dict[str, float]:
    """Median within-subject r, estimate SD / reference SD and trend MAE / hold MAE (SBP, DBP) on ``ds``."""
    from bprl.estimator.metrics import step_predictions
    from bprl.tracking import pooled_tracking, subject_tracking

    if not len(pred):
        return {}
    pooled = pooled_tracking(subject_tracking(step_predictions(ds, pred)), n_boot=0)  # medians only
    return {
        f"val_{col}_{target}": pooled[target][col]["median"]
        for target in ("sbp", "dbp")
        for col in ("r", "sd_ratio", "trend_ratio")
    }


def _warn_if_collapsed(row: dict[str, Any]) -> None:
    """Warn (``logging``, ``bprl.estimator`` logger) when a validation's estimate has collapsed."""
    for target in ("sbp", "dbp"):
        ratio = row.get(f"val_sd_ratio_{target}", math.nan)
        if math.isfinite(ratio) and ratio < COLLAPSE_SD_RATIO:
            logging.getLogger("bprl.estimator").warning(
                "epoch %s: the estimate has COLLAPSED: median within-subject %s SD is %.0f %% of the "
                "reference's (below %.0f %%); the model outputs a near-constant per subject",
                row["epoch"],
                target.upper(),
                100 * ratio,
                100 * COLLAPSE_SD_RATIO,
            )


def _recentre(model: CnnGruNet, train: WindowDataset) -> list[float]:
    """Shift the output so that the mean error on the training windows is zero; returns the shift (mmHg).

    The paired loss fixes the output only up to a constant per subject, and a small absolute
    weight moves the level slowly: this sets the population level exactly without touching
    the within-subject changes (it changes ``label_mean``, a buffer, not a weight).
    """
    bias = (_predict(model, train) - train.y).mean(axis=0)
    model.label_mean.sub_(torch.as_tensor(bias, dtype=torch.float32))
    return [float(-b) for b in bias]


GAIN_BOUNDS = (0.5, 2.0)  # the within-subject gain's bounds (a gain outside them: a broken fit)


def _within_subject_gain(model: CnnGruNet, val: WindowDataset) -> list[float]:
    """Scale the output's within-subject changes by the validation subjects' least-squares gain;
    returns the gains (SBP, DBP).

    Per target, at step level (median over a step's windows), the deviations of the reference from
    each subject's mean are regressed through the origin on the estimate's: ``g = sum(e r) /
    sum(e e)``. An estimator trained with weight decay and stopped early under-states changes
    (slope of estimate on reference below 1), and ``g`` is the gain that minimises the squared
    error of the within-subject changes on subjects the weights were not fitted on. It multiplies
    ``label_sd`` (a buffer, not a weight); :func:`_recentre` then sets the level. ``g`` is
    clipped to :data:`GAIN_BOUNDS`; it is 1 when the validation set has no within-subject change.
    """
    from bprl.estimator.metrics import step_predictions

    steps = step_predictions(val, _predict(model, val))
    gains = []
    for target in ("sbp", "dbp"):
        by_subject = steps.groupby("subject_id")
        e = (steps[f"est_{target}_mmhg"] - by_subject[f"est_{target}_mmhg"].transform("mean")).to_numpy()
        r = (steps[f"ref_{target}_mmhg"] - by_subject[f"ref_{target}_mmhg"].transform("mean")).to_numpy()
        ok = np.isfinite(e) & np.isfinite(r)
        gain = float(np.sum(e[ok] * r[ok]) / np.sum(e[ok] ** 2)) if np.any(e[ok] != 0) else 1.0
        if not GAIN_BOUNDS[0] <= gain <= GAIN_BOUNDS[1]:
            logging.getLogger("bprl.estimator").warning(
                "within-subject %s gain %.3f outside %s: clipped", target.upper(), gain, GAIN_BOUNDS
            )
            gain = float(np.clip(gain, *GAIN_BOUNDS))
        gains.append(gain)
    model.label_sd.mul_(torch.as_tensor(gains, dtype=torch.float32))
    return gains


# ------------------------------------------------------------------ 5. saving
def save_state_dict(state: dict[str, torch.Tensor], path: str | os.PathLike[str]) -> Path:
    """Write a state dict with ``torch.save`` to ``path`` atomically, byte-reproducibly.

    torch names the zip archive's root folder after the file it writes to; saving through an open
    file object fixes that name (``archive/``), so the bytes do not depend on the temporary name,
    and the same weights always give the same ``model.pt`` (and the same checkpoint fingerprint).

    Returns:
        ``path``.
    """
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)
    return Path(path)


def _checkpoint_info(
    config: TrainConfig,
    seed: int,
    model: CnnGruNet,
    ds: WindowDataset,
    train: WindowDataset,
    val: WindowDataset,
    log: _EarlyStopping,
) -> dict[str, Any]:
    """The ``config.json`` contents: format, configs, seed, normalisation, data, best validation, versions."""
    label_mean, label_sd = _label_normalisation(train)
    best = log.best_index
    return {
        "format": CHECKPOINT_FORMAT,
        "model": config.model.to_dict(),
        "train": config.to_dict(),
        "seed": seed,
        "n_parameters": count_parameters(model),
        "normalisation": {
            "windows": "per-window per-channel z-score",
            "label_mean_mmhg": [float(v) for v in label_mean],
            "label_sd_mmhg": [float(v) for v in label_sd],
            "feature_columns": list(config.model.feature_columns),
            "feat_mean": model.feat_mean.tolist(),
            "feat_sd": model.feat_sd.tolist(),
        },
        "data": ds.describe(),
        "best_epoch": log.rows[best]["epoch"] if best >= 0 else None,
        "best_step": log.rows[best]["step"] if best >= 0 else None,
        "epochs_run": log.rows[-1]["epoch"] + 1,
        "validations": len(log.rows),
        "early_stopping_on": "val" if len(val) else "train",
        # major versions the weights were made under (checked by CnnGruEstimator.load), and the full ones
        STAMP_KEY: cache_versions(),
        "versions": package_versions(CACHE_PACKAGES),
    }


def _write_checkpoint(
    out: Path, model: CnnGruNet, info: dict[str, Any], log_rows: list[dict[str, Any]], ds: WindowDataset
) -> None:
    """Write ``model.pt``, ``config.json``, ``train_log.csv``, then ``metrics.json`` (val, test) and the card."""
    save_state_dict(model.state_dict(), out / MODEL_FILE)
    write_text_atomic(json.dumps(info, indent=2), out / CONFIG_FILE)
    with atomic_output(out / LOG_FILE) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(log_rows[0]))
        w.writeheader()
        w.writerows(log_rows)
    est = CnnGruEstimator(model, info, out)
    metrics: dict[str, Any] = {"history": log_rows, "skipped_records": ds.skipped}
    for sp in ("val", "test"):
        if len(ds.subset(sp)):
            metrics[sp] = evaluate_estimator(est, ds, sp)
    if len(ds.subset("test")):
        metrics["test_tracking"] = evaluate_tracking(est, ds, "test")
    write_text_atomic(json.dumps(metrics, indent=2, default=float), out / METRICS_FILE)
    write_text_atomic(model_card(info, metrics), out / CARD_FILE)


# ------------------------------------------------------------------ the whole run
def train_estimator(
    data: WindowDataset | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    seed: int = 0,
    feature_config: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Train the CNN-GRU on the train split, stop early on the val split, evaluate on test; return the checkpoint.

    Same data, config and seed give identical weights and the same ``model.pt`` bytes.

    Args:
        data: a :class:`~bprl.estimator.dataset.WindowDataset`, or a cohort folder (built with
            :func:`~bprl.estimator.dataset.build_window_dataset`).
        out_dir: the checkpoint folder to write (created when missing).
        config: training settings (None: defaults).
        seed: seed of the weights, the batch order and dropout.
        feature_config: replay-table settings when ``data`` is a folder.
        cache_dir: replay-table cache folder when ``data`` is a folder.
        progress: show progress bars.

    Returns:
        ``out_dir``, holding ``model.pt`` (state dict), ``config.json``, ``metrics.json``,
        ``train_log.csv`` and ``MODEL_CARD.md``, each written atomically.

    Raises:
        EstimatorError: unusable data (see :func:`_training_data`).
    """
    config = config or TrainConfig()
    ds, train, val, _test = _training_data(data, config, feature_config, cache_dir, progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _deterministic_algorithms():
        model = _init_model(config, train, seed)
        loader = _train_loader(train, config, seed)
        batches = _Batches(train, seed)
        monitor = val if len(val) else train
        log = _EpochLoop(model, loader, batches, monitor, config, out, progress).run()
        gain = _within_subject_gain(model, val) if config.within_subject_gain and len(val) else None
        shift = _recentre(model, train)
    info = _checkpoint_info(config, seed, model, ds, train, val, log)
    info["normalisation"]["within_subject_gain"] = gain
    info["normalisation"]["recentred_by_mmhg"] = shift
    _write_checkpoint(out, model, info, log.rows, ds)
    return out
