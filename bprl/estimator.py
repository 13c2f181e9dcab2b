"""Population (calibration-free) blood-pressure estimators: CNN-GRU on raw ECG + PPG, and a PAT linear model.

Two estimators share one interface (:class:`Estimator`): ``predict_table(table, record)``
returns SBP and DBP per replay-table step, and ``fingerprint()`` identifies the
fitted model for caching.

- :class:`CnnGruEstimator` wraps :class:`CnnGruNet`, after Eom et al. (Sensors 2020,
  20(8):2338): a 1-D CNN over an 8-s window of ECG and PPG at 125 Hz (2 channels,
  each z-normalised per window), a bidirectional GRU, attention pooling over time
  and a regression head for SBP and DBP. The hybrid variant also receives the
  step's PAT (foot) and heart rate. A step's estimate is the median over its
  non-overlapping sub-windows. Trained by :func:`train_estimator` into a checkpoint
  folder (``model.pt``, ``config.json``, ``metrics.json``, ``train_log.csv``,
  ``MODEL_CARD.md``).
- :class:`PatLinearEstimator`: least squares SBP/DBP = a + b·ln(PAT_foot) + c·HR
  on training subjects' replay tables; saved as JSON. Cheap default for tests and
  environments.
- :class:`OnnxEstimator`: the CNN-GRU exported by :func:`export_onnx`, run with
  onnxruntime.

:func:`load_estimator` opens any of them from a path. :func:`add_estimates` fills
``est_sbp_mmhg`` / ``est_dbp_mmhg`` of a replay table; :func:`estimate_replay_table`
caches the result under the table's content hash plus the estimator fingerprint.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from scipy.signal import resample_poly
from torch import nn

from bprl.cache_versions import (
    STAMP_KEY,
    cache_versions,
    package_version,
    read_stamped_parquet,
    stale_reason,
    write_stamped_parquet,
)
from bprl.cache_versions import logger as cache_logger
from bprl.errors import BprlError, EstimatorError
from bprl.records import Record
from bprl.tables import REPLAY_ESTIMATE, SPLITS, atomic_output, write_text_atomic

#: replay-table columns the hybrid model and the linear model read
FEATURE_COLUMNS: tuple[str, ...] = ("pat_foot_ms", "hr_bpm")
#: BHS thresholds (cumulative share of |error| <= t mmHg)
BHS_THRESHOLDS_MMHG: tuple[int, ...] = (5, 10, 15)
#: SBP bin edges for range-stratified oversampling (hypotensive ... stage-2 hypertensive)
SBP_BIN_EDGES_MMHG: tuple[float, ...] = (90.0, 110.0, 130.0, 150.0, 170.0)

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
LOG_FILE = "train_log.csv"
CARD_FILE = "MODEL_CARD.md"
CHECKPOINT_FORMAT = "bprl-cnngru-1"
LINEAR_FORMAT = "bprl-pat-linear-1"


# =============================================================== configuration
@dataclass
class ModelConfig:
    """Architecture and input layout of the CNN-GRU estimator.

    Attributes:
        fs_hz: sampling rate of the model input (ECG is resampled to it).
        window_s: window length in seconds (``fs_hz * window_s`` samples).
        conv_channels: output channels of the CNN blocks (conv, batch norm, ReLU, max-pool).
        conv_kernels: kernel size of each CNN block.
        pools: max-pool factor of each CNN block.
        gru_hidden: hidden units per direction of the bidirectional GRU.
        head_hidden: hidden units of the regression head.
        dropout: dropout before the last layer.
        hybrid: also feed the step's ``pat_foot_ms`` and ``hr_bpm`` to the head.
    """

    fs_hz: float = 125.0
    window_s: float = 8.0
    conv_channels: tuple[int, ...] = (16, 32, 32)
    conv_kernels: tuple[int, ...] = (7, 5, 3)
    pools: tuple[int, ...] = (4, 4, 2)
    gru_hidden: int = 32
    head_hidden: int = 32
    dropout: float = 0.1
    hybrid: bool = False

    @property
    def window_len(self) -> int:
        """Samples per window."""
        return round(self.fs_hz * self.window_s)

    @property
    def n_features(self) -> int:
        """Number of tabular features the head receives (0 unless hybrid)."""
        return len(FEATURE_COLUMNS) if self.hybrid else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        d = dataclasses.asdict(self)
        for k in ("conv_channels", "conv_kernels", "pools"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "model config") -> ModelConfig:
        """Build from :meth:`to_dict` output; EstimatorError naming ``where`` on unknown or bad fields."""
        if not isinstance(d, dict):
            raise EstimatorError(f"{where}: model config must be a mapping, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise EstimatorError(f"{where}: unknown model config fields {unknown}")
        kw = dict(d)
        for k in ("conv_channels", "conv_kernels", "pools"):
            if k in kw:
                kw[k] = tuple(int(v) for v in kw[k])
        cfg = cls(**kw)
        if not (len(cfg.conv_channels) == len(cfg.conv_kernels) == len(cfg.pools)) or not cfg.conv_channels:
            raise EstimatorError(
                f"{where}: conv_channels, conv_kernels and pools must have the same non-zero length"
            )
        if cfg.window_len // math.prod(cfg.pools) < 1:
            raise EstimatorError(
                f"{where}: window of {cfg.window_len} samples is shorter than the pooling {cfg.pools}"
            )
        return cfg


@dataclass
class TrainConfig:
    """Training settings of :func:`train_estimator`.

    Attributes:
        model: the architecture.
        epochs: maximum number of epochs.
        batch_size: windows per optimiser step.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        patience: validations without improvement before stopping early.
        oversample: draw training windows with weights inverse to their SBP-range frequency
            (bins :data:`SBP_BIN_EDGES_MMHG`), so rare hypo/hypertensive ranges are seen more.
        max_windows_per_step: keep at most this many sub-windows per replay step (None: all).
        max_steps_per_epoch: cap on optimiser steps per epoch (None: one pass over the data).
        eval_every_steps: validate every this many optimiser steps (None: after each epoch);
            early stopping and the kept weights follow these validations.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 5
    oversample: bool = False
    max_windows_per_step: int | None = None
    max_steps_per_epoch: int | None = None
    eval_every_steps: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d


# ======================================================================= model
class CnnGruNet(nn.Module):
    """CNN feature extractor + bidirectional GRU + attention pooling + SBP/DBP regression head.

    ``forward(x, feats)`` takes per-window z-normalised signals ``x`` of shape
    (batch, 2, window_len) (channel 0 ECG, 1 PPG) and, for the hybrid variant,
    raw features ``feats`` (batch, 2) = (pat_foot_ms, hr_bpm); it returns
    (batch, 2) = (SBP, DBP) in mmHg. Label and feature normalisation live in
    buffers, so a saved state dict (and an ONNX export) is self-contained.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        c_in = 2
        for c_out, k, p in zip(config.conv_channels, config.conv_kernels, config.pools, strict=True):
            blocks += [
                nn.Conv1d(c_in, c_out, k, padding=k // 2),
                nn.BatchNorm1d(c_out),
                nn.ReLU(),
                nn.MaxPool1d(p),
            ]
            c_in = c_out
        self.cnn = nn.Sequential(*blocks)
        self.gru = nn.GRU(c_in, config.gru_hidden, batch_first=True, bidirectional=True)
        d = 2 * config.gru_hidden
        self.attention = nn.Sequential(nn.Linear(d, d // 2), nn.Tanh(), nn.Linear(d // 2, 1))
        self.head = nn.Sequential(
            nn.Linear(d + config.n_features, config.head_hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.head_hidden, 2),
        )
        self.register_buffer("label_mean", torch.zeros(2))
        self.register_buffer("label_sd", torch.ones(2))
        self.register_buffer("feat_mean", torch.zeros(max(config.n_features, 1)))
        self.register_buffer("feat_sd", torch.ones(max(config.n_features, 1)))

    def forward_normalised(self, x: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        """Output in label-normalised units ((y - label_mean) / label_sd)."""
        h = self.cnn(x).transpose(1, 2)  # (B, T, C)
        h0 = torch.zeros(2, h.shape[0], self.config.gru_hidden, dtype=h.dtype, device=h.device)
        out, _ = self.gru(h, h0)  # (B, T, 2H)
        w = torch.softmax(self.attention(out), dim=1)  # (B, T, 1)
        pooled = (w * out).sum(dim=1)
        if self.config.hybrid:
            if feats is None:
                raise EstimatorError("hybrid CNN-GRU model needs the PAT/HR features")
            pooled = torch.cat([pooled, (feats - self.feat_mean) / self.feat_sd], dim=1)
        return self.head(pooled)

    def forward(self, x: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        """SBP and DBP in mmHg, shape (batch, 2)."""
        return self.forward_normalised(x, feats) * self.label_sd + self.label_mean


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ===================================================================== windows
def _rate_fraction(fs_in: float, fs_out: float) -> Fraction:
    """Resampling ratio ``up/down`` ~ fs_out / fs_in with small integers (denominator <= 1000)."""
    return Fraction(fs_out / fs_in).limit_denominator(1000)


def _resample_channel(samples: np.ndarray, frac: Fraction) -> np.ndarray:
    """Resample by ``frac`` with :func:`scipy.signal.resample_poly`; NaN gaps stay NaN (slightly widened)."""
    x = np.asarray(samples, dtype=np.float64)
    if frac == 1:
        return x.astype(np.float32)
    nan = np.isnan(x)
    if nan.all():
        n_out = int(len(x) * frac.numerator // frac.denominator)
        return np.full(n_out, np.nan, dtype=np.float32)
    if nan.any():  # fill gaps linearly so the polyphase filter does not ring, then restore them
        idx = np.arange(len(x))
        x = x.copy()
        x[nan] = np.interp(idx[nan], idx[~nan], x[~nan])
    y = resample_poly(x, frac.numerator, frac.denominator)
    if nan.any():
        # an output sample is invalid when any input sample within one input period of it is NaN
        t_out = np.arange(len(y)) * (frac.denominator / frac.numerator)
        lo = np.clip(np.floor(t_out).astype(np.int64) - 1, 0, len(x) - 1)
        hi = np.clip(np.ceil(t_out).astype(np.int64) + 1, 0, len(x) - 1)
        csum = np.concatenate([[0], np.cumsum(nan)])
        y[(csum[hi + 1] - csum[lo]) > 0] = np.nan
    return y.astype(np.float32)


def record_signals(record: Record, fs_hz: float = 125.0) -> tuple[np.ndarray, float]:
    """ECG and PPG of ``record`` at (about) ``fs_hz``: array (2, n), NaN where invalid, and its exact rate.

    The PPG is resampled by the small-integer ratio nearest ``fs_hz / fs_ppg`` and the ECG
    onto the PPG's resulting rate, so both channels share one exact time base
    (MIMIC-IV: Pleth 124.945 Hz stays as it is, ECG 249.89 Hz is halved); windows are
    placed with the returned rate, never assuming exactly ``fs_hz``.
    Raises EstimatorError naming the record when it lacks an ECG or PPG channel.
    """
    try:
        ecg, ppg = record.channel("ecg"), record.channel("ppg")
    except BprlError as exc:
        raise EstimatorError(f"{record.path}: the estimator needs ECG and PPG: {exc}") from exc
    frac_ppg = _rate_fraction(float(ppg.fs_hz), fs_hz)
    fs_eff = float(ppg.fs_hz) * frac_ppg.numerator / frac_ppg.denominator
    frac_ecg = _rate_fraction(float(ecg.fs_hz), fs_eff)
    chans = [_resample_channel(ecg.samples, frac_ecg), _resample_channel(ppg.samples, frac_ppg)]
    n = min(len(c) for c in chans)
    return np.stack([c[:n] for c in chans]), fs_eff


def window_is_valid(window: np.ndarray, min_sd: float = 1e-4, max_clip_share: float = 0.2) -> bool:
    """Whether a raw (2, n) window is usable: no NaN, no flat channel, no channel clipped at its extremes.

    A channel is flat when its SD is below ``min_sd`` (record units) and clipped when
    more than ``max_clip_share`` of its samples sit at its minimum or at its maximum
    (saturation). Repeated consecutive values alone are allowed: MIMIC-IV Pleth is
    sample-and-hold at 125 Hz.
    """
    if not np.isfinite(window).all():
        return False
    for ch in window:
        if float(np.std(ch)) < min_sd:
            return False
        lo, hi = float(ch.min()), float(ch.max())
        tol = 1e-6 * max(hi - lo, 1e-12)
        if max(np.mean(ch >= hi - tol), np.mean(ch <= lo + tol)) > max_clip_share:
            return False
    return True


def normalise_windows(windows: np.ndarray) -> np.ndarray:
    """Per-window, per-channel z-normalisation of (n, 2, L) windows (float32)."""
    w = np.asarray(windows, dtype=np.float32)
    mu = w.mean(axis=-1, keepdims=True)
    sd = w.std(axis=-1, keepdims=True)
    return ((w - mu) / np.maximum(sd, 1e-6)).astype(np.float32)


@dataclass
class StepWindows:
    """Sub-windows of the steps of one replay table.

    Attributes:
        x: z-normalised windows, shape (n_windows, 2, window_len); only valid windows.
        feats: (n_windows, 2) ``pat_foot_ms``, ``hr_bpm`` of the window's step (NaN when missing).
        row: index (0..len(table)-1) of the table row each window belongs to.
        n_candidates: sub-windows per row before dropping invalid ones.
    """

    x: np.ndarray
    feats: np.ndarray
    row: np.ndarray
    n_candidates: np.ndarray


def step_windows(
    table: pd.DataFrame, record: Record, config: ModelConfig, max_windows_per_step: int | None = None
) -> StepWindows:
    """Cut each step's [t_start_s, t_end_s) into non-overlapping windows; drop NaN or flat ones.

    Raises EstimatorError naming the record when it lacks ECG or PPG, or the table lacks timing columns.
    """
    for col in ("t_start_s", "t_end_s"):
        if col not in table.columns:
            raise EstimatorError(f"replay table of {record.path}: missing column {col!r}")
    sig, fs_eff = record_signals(record, config.fs_hz)
    L = config.window_len
    feats_all = np.full((len(table), len(FEATURE_COLUMNS)), np.nan, dtype=np.float32)
    for j, col in enumerate(FEATURE_COLUMNS):
        if col in table.columns:
            feats_all[:, j] = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float64)
    xs: list[np.ndarray] = []
    rows: list[int] = []
    n_cand = np.zeros(len(table), dtype=np.int64)
    t0 = table["t_start_s"].to_numpy(dtype=np.float64)
    t1 = table["t_end_s"].to_numpy(dtype=np.float64)
    for i in range(len(table)):
        if not (np.isfinite(t0[i]) and np.isfinite(t1[i])):
            continue
        s0 = round(t0[i] * fs_eff)
        k = int(max(0, round(t1[i] * fs_eff) - s0) // L)
        if max_windows_per_step is not None:
            k = min(k, max_windows_per_step)
        n_cand[i] = k
        for j in range(k):
            a = s0 + j * L
            if a < 0 or a + L > sig.shape[1]:
                continue
            w = sig[:, a : a + L]
            if window_is_valid(w):
                xs.append(w)
                rows.append(i)
    x = normalise_windows(np.stack(xs)) if xs else np.zeros((0, 2, L), dtype=np.float32)
    row = np.asarray(rows, dtype=np.int64)
    return StepWindows(x=x, feats=feats_all[row], row=row, n_candidates=n_cand)


# ===================================================================== dataset
@dataclass
class WindowDataset:
    """Labelled windows of a cohort, one entry per valid sub-window of a replay step.

    Attributes:
        x: (n, 2, window_len) z-normalised ECG/PPG windows, float32.
        feats: (n, 2) ``pat_foot_ms``, ``hr_bpm`` of the window's step.
        y: (n, 2) reference SBP, DBP of the window's step in mmHg.
        subject_id: (n,) subject of each window.
        record_id: (n,) record of each window.
        step: (n,) replay step of each window.
        split: (n,) ``train`` / ``val`` / ``test``.
        config: the model layout the windows were cut for.
        source: description of where the data came from (cohort folder, ...).
        skipped: records that could not be used, as ``{"record": ..., "error": ...}``.
    """

    x: np.ndarray
    feats: np.ndarray
    y: np.ndarray
    subject_id: np.ndarray
    record_id: np.ndarray
    step: np.ndarray
    split: np.ndarray
    config: ModelConfig
    source: str = ""
    skipped: list[dict[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, split: str) -> WindowDataset:
        """Windows of one split."""
        m = self.split == split
        return dataclasses.replace(
            self,
            x=self.x[m],
            feats=self.feats[m],
            y=self.y[m],
            subject_id=self.subject_id[m],
            record_id=self.record_id[m],
            step=self.step[m],
            split=self.split[m],
        )

    def subjects(self, split: str | None = None) -> list[str]:
        """Sorted subject ids (of one split)."""
        sid = self.subject_id if split is None else self.subject_id[self.split == split]
        return sorted(set(sid.tolist()))

    def check_disjoint(self) -> None:
        """Raise EstimatorError when a subject appears in more than one split."""
        seen: dict[str, str] = {}
        for sid, sp in set(zip(self.subject_id.tolist(), self.split.tolist(), strict=True)):
            if sid in seen and seen[sid] != sp:
                raise EstimatorError(
                    f"{self.source or 'dataset'}: subject {sid} is in splits {seen[sid]!r} and {sp!r}"
                )
            seen[sid] = sp

    def describe(self) -> dict[str, Any]:
        """Subjects and windows per split, for config.json and the model card."""
        out: dict[str, Any] = {"source": self.source, "n_windows": len(self), "splits": {}}
        for sp in SPLITS:
            m = self.split == sp
            out["splits"][sp] = {
                "subjects": self.subjects(sp),
                "n_subjects": len(self.subjects(sp)),
                "n_windows": int(m.sum()),
            }
        out["n_skipped_records"] = len(self.skipped)
        return out


def read_manifest(cohort_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The cohort manifest (``manifest.parquet``): subject_id, record_id, split, ...; EstimatorError when unusable."""
    path = Path(cohort_dir) / "manifest.parquet"
    if not path.is_file():
        raise EstimatorError(f"{path}: no cohort manifest")
    try:
        man = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types on corrupt files
        raise EstimatorError(f"{path}: cannot read manifest: {exc}") from exc
    missing = [c for c in ("subject_id", "record_id", "split") if c not in man.columns]
    if missing:
        raise EstimatorError(f"{path}: manifest lacks columns {missing}")
    man = man.assign(subject_id=man["subject_id"].astype(str), record_id=man["record_id"].astype(str))
    bad = sorted(set(man["split"].astype(str)) - set(SPLITS))
    if bad:
        raise EstimatorError(f"{path}: unknown split values {bad} (expected {list(SPLITS)})")
    per_subject = man.groupby("subject_id")["split"].nunique()
    shared = per_subject[per_subject > 1].index.tolist()
    if shared:
        raise EstimatorError(f"{path}: subjects {shared} are in more than one split")
    return man


def cohort_record_path(cohort_dir: str | os.PathLike[str], subject_id: str, record_id: str) -> Path:
    """Header path of a cohort record: ``waves/<sid>/<rid>/<rid>.hea``."""
    return Path(cohort_dir) / "waves" / subject_id / record_id / f"{record_id}.hea"


def load_table(
    record_path: str | os.PathLike[str],
    feature_config: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
    record: Record | None = None,
) -> pd.DataFrame:
    """The replay table of a record from :mod:`bprl.features` (cached when ``cache_dir`` is given).

    Errors of the feature pipeline are re-raised as they are (FeatureError / RecordError).
    """
    from bprl import features

    if cache_dir is not None or record is None:
        return features.load_replay_table(record_path, feature_config, cache_dir)
    return features.build_replay_table(record, feature_config)


def windows_from_table(
    table: pd.DataFrame, record: Record, config: ModelConfig, max_windows_per_step: int | None = None
) -> tuple[StepWindows, np.ndarray]:
    """Valid windows of labelled steps and their labels (n, 2); steps without reference BP are dropped."""
    for col in ("ref_sbp_mmhg", "ref_dbp_mmhg"):
        if col not in table.columns:
            raise EstimatorError(f"replay table of {record.path}: missing column {col!r}")
    sw = step_windows(table, record, config, max_windows_per_step)
    ref = table[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy(dtype=np.float64)[sw.row]
    keep = np.isfinite(ref).all(axis=1)
    if config.hybrid:
        keep &= np.isfinite(sw.feats).all(axis=1) & (sw.feats[:, 0] > 0)
    sw = StepWindows(sw.x[keep], sw.feats[keep], sw.row[keep], sw.n_candidates)
    return sw, ref[keep].astype(np.float32)


def build_window_dataset(
    cohort_dir: str | os.PathLike[str],
    config: ModelConfig | None = None,
    feature_config: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
    splits: Sequence[str] = SPLITS,
    max_windows_per_step: int | None = None,
    progress: bool = False,
) -> WindowDataset:
    """Labelled windows of every record of a virtual cohort (or any folder with the same layout).

    Reads ``manifest.parquet``, builds (or loads from ``cache_dir``) each record's
    replay table with :mod:`bprl.features`, and cuts windows aligned with the
    table's steps. Records that fail are skipped and listed in ``skipped``.
    """
    from bprl.records import read_record

    config = config or ModelConfig()
    cohort_dir = Path(cohort_dir)
    man = read_manifest(cohort_dir)
    man = man[man["split"].isin(list(splits))].sort_values(["subject_id", "record_id"])
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "feats", "y", "sid", "rid", "step", "split")}
    skipped: list[dict[str, str]] = []
    from tqdm.auto import tqdm

    rows = tqdm(list(man.itertuples(index=False)), desc="windows", unit="record", disable=not progress)
    for row in rows:
        path = cohort_record_path(cohort_dir, row.subject_id, row.record_id)
        try:
            record = read_record(path)
            table = load_table(path, feature_config, cache_dir, record)
            sw, y = windows_from_table(table, record, config, max_windows_per_step)
        except BprlError as exc:
            skipped.append({"record": str(path), "error": str(exc)})
            continue
        n = len(y)
        parts["x"].append(sw.x)
        parts["feats"].append(sw.feats)
        parts["y"].append(y)
        parts["sid"].append(np.full(n, row.subject_id, dtype=object))
        parts["rid"].append(np.full(n, row.record_id, dtype=object))
        parts["step"].append(table["step"].to_numpy(dtype=np.int64)[sw.row] if "step" in table else sw.row)
        parts["split"].append(np.full(n, str(row.split), dtype=object))
    if not parts["x"]:
        raise EstimatorError(f"{cohort_dir}: no usable records ({len(skipped)} skipped: {skipped[:3]})")
    ds = WindowDataset(
        x=np.concatenate(parts["x"]),
        feats=np.concatenate(parts["feats"]),
        y=np.concatenate(parts["y"]),
        subject_id=np.concatenate(parts["sid"]),
        record_id=np.concatenate(parts["rid"]),
        step=np.concatenate(parts["step"]),
        split=np.concatenate(parts["split"]),
        config=config,
        source=str(cohort_dir),
        skipped=skipped,
    )
    ds.check_disjoint()
    return ds


def oversampling_weights(sbp_mmhg: np.ndarray, edges: Sequence[float] = SBP_BIN_EDGES_MMHG) -> np.ndarray:
    """Sampling weight per window, inverse to the frequency of its SBP range bin (mean weight 1)."""
    bins = np.digitize(np.asarray(sbp_mmhg, dtype=np.float64), edges)
    counts = np.bincount(bins, minlength=len(edges) + 1).astype(np.float64)
    w = 1.0 / counts[bins]
    return w / w.mean()


# ==================================================================== metrics
def error_metrics(est: np.ndarray, ref: np.ndarray, subject_id: np.ndarray | None = None) -> dict[str, float]:
    """ME, SD, MAE, BHS cumulative percentages and (with subjects) the SD of per-subject mean errors."""
    est = np.asarray(est, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    m = np.isfinite(est) & np.isfinite(ref)
    e = est[m] - ref[m]
    out: dict[str, float] = {"n": int(m.sum())}
    if not len(e):
        return out | {"me": math.nan, "sd": math.nan, "mae": math.nan}
    out["me"] = float(e.mean())
    out["sd"] = float(e.std(ddof=1)) if len(e) > 1 else 0.0
    out["mae"] = float(np.abs(e).mean())
    for t in BHS_THRESHOLDS_MMHG:
        out[f"bhs_le{t}_pct"] = float(100.0 * np.mean(np.abs(e) <= t))
    if subject_id is not None:
        bias = pd.Series(e).groupby(np.asarray(subject_id)[m]).mean()
        out["n_subjects"] = len(bias)
        out["bias_sd"] = float(bias.std(ddof=1)) if len(bias) > 1 else math.nan
        out["bias_mean_abs"] = float(bias.abs().mean())
    return out


def evaluate_predictions(
    est: np.ndarray, ref: np.ndarray, subject_id: np.ndarray, train_mean_mmhg: Sequence[float]
) -> dict[str, Any]:
    """Calibration-free metrics of (n, 2) step estimates vs references, with the training-mean predictor and MASE."""
    out: dict[str, Any] = {}
    for j, name in enumerate(("sbp", "dbp")):
        model = error_metrics(est[:, j], ref[:, j], subject_id)
        mean_pred = error_metrics(np.full(len(ref), float(train_mean_mmhg[j])), ref[:, j], subject_id)
        mase = model["mae"] / mean_pred["mae"] if mean_pred.get("mae") else math.nan
        out[name] = {"model": model, "mean_predictor": mean_pred, "mase": float(mase)}
    return out


def format_metrics(metrics: dict[str, Any]) -> str:
    """Markdown table of :func:`evaluate_predictions` output."""
    cols = ["n", "me", "sd", "mae", "bhs_le5_pct", "bhs_le10_pct", "bhs_le15_pct", "bias_sd"]
    lines = [
        "| target | predictor | " + " | ".join(cols) + " | MASE |",
        "|" + " --- |" * (len(cols) + 3),
    ]
    for name in ("sbp", "dbp"):
        if name not in metrics:
            continue
        m = metrics[name]
        for who in ("model", "mean_predictor"):
            vals = [m[who].get(c, math.nan) for c in cols]
            cells = [str(v) if isinstance(v, int) else f"{v:.2f}" for v in vals]
            mase = f"{m['mase']:.3f}" if who == "model" else "1"
            lines.append(
                f"| {name.upper()} | {who.replace('_', ' ')} | " + " | ".join(cells) + f" | {mase} |"
            )
    return "\n".join(lines)


# ================================================================ estimators
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


def _sha256_files(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda q: q.name):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


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
            keep = np.isfinite(sw.feats).all(axis=1) & (sw.feats[:, 0] > 0)
        if keep.any():
            pred = self.predict_windows(sw.x[keep], sw.feats[keep])
            df = pd.DataFrame({"row": sw.row[keep], "sbp": pred[:, 0], "dbp": pred[:, 1]})
            med = df.groupby("row").median()
            sbp[med.index.to_numpy()] = med["sbp"].to_numpy()
            dbp[med.index.to_numpy()] = med["dbp"].to_numpy()
        return sbp, dbp


def _checkpoint_files(path: Path) -> list[Path]:
    return [path / MODEL_FILE, path / CONFIG_FILE]


class CnnGruEstimator(_WindowEstimator):
    """A trained CNN-GRU checkpoint folder, ready for inference (:meth:`load`)."""

    kind = "cnn-gru"

    def __init__(self, model: CnnGruNet, info: dict[str, Any], path: Path | None = None) -> None:
        self.model = model.eval()
        self.config = model.config
        self.info = info
        self.path = path
        self.train_mean_mmhg = (float(model.label_mean[0]), float(model.label_mean[1]))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CnnGruEstimator:
        """Open a checkpoint folder; EstimatorError naming the file on missing, corrupt or incompatible content."""
        path = Path(path)
        cfg_path, model_path = path / CONFIG_FILE, path / MODEL_FILE
        for p in (cfg_path, model_path):
            if not p.is_file():
                raise EstimatorError(f"{p}: missing checkpoint file")
        try:
            info = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EstimatorError(f"{cfg_path}: not valid JSON: {exc}") from exc
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
        """(n, 2) SBP/DBP in mmHg of z-normalised windows (n, 2, window_len)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (2, self.config.window_len):
            raise EstimatorError(f"windows must have shape (n, 2, {self.config.window_len}), got {x.shape}")
        if len(x) == 0:
            return np.zeros((0, 2))
        if not np.isfinite(x).all():
            raise EstimatorError("windows contain NaN or inf; drop invalid windows before inference")
        f = (
            np.zeros((len(x), len(FEATURE_COLUMNS)), np.float32)
            if feats is None
            else np.asarray(feats, np.float32)
        )
        out = []
        with torch.no_grad():
            for a in range(0, len(x), batch_size):
                xb = torch.from_numpy(x[a : a + batch_size])
                fb = torch.from_numpy(f[a : a + batch_size]) if self.config.hybrid else None
                out.append(self.model(xb, fb).numpy())
        return np.concatenate(out).astype(np.float64)

    def fingerprint(self) -> str:
        """sha256 of ``model.pt`` and ``config.json`` (of the state when not saved)."""
        if self.path is not None:
            return _sha256_files(_checkpoint_files(self.path))
        buf = io.BytesIO()
        torch.save(self.model.state_dict(), buf)
        return hashlib.sha256(buf.getvalue() + json.dumps(self.config.to_dict()).encode()).hexdigest()


class OnnxEstimator(_WindowEstimator):
    """The CNN-GRU exported by :func:`export_onnx`, run with onnxruntime (config read from the ONNX metadata)."""

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
        return _sha256_files([self.path])


class PatLinearEstimator:
    """Population least squares SBP/DBP = a + b·ln(pat_foot_ms) + c·hr_bpm, fitted on replay tables.

    Attributes:
        coef_sbp: (a, b, c) for SBP.
        coef_dbp: (a, b, c) for DBP.
        train_mean_mmhg: mean SBP, DBP of the fitting steps (the mean predictor).
        info: provenance (subjects, steps, residual SD).
    """

    kind = "pat-linear"

    def __init__(
        self,
        coef_sbp: Sequence[float] = (math.nan,) * 3,
        coef_dbp: Sequence[float] = (math.nan,) * 3,
        train_mean_mmhg: Sequence[float] = (math.nan, math.nan),
        info: dict[str, Any] | None = None,
    ) -> None:
        self.coef_sbp = np.asarray(coef_sbp, dtype=np.float64)
        self.coef_dbp = np.asarray(coef_dbp, dtype=np.float64)
        self.train_mean_mmhg = tuple(float(v) for v in train_mean_mmhg)
        self.info = info or {}

    @staticmethod
    def design(table: pd.DataFrame) -> np.ndarray:
        """(n, 3) design matrix [1, ln(pat_foot_ms), hr_bpm]; rows with missing or non-positive PAT are NaN."""
        for col in FEATURE_COLUMNS:
            if col not in table.columns:
                raise EstimatorError(f"replay table lacks column {col!r} needed by the PAT linear estimator")
        pat = pd.to_numeric(table["pat_foot_ms"], errors="coerce").to_numpy(dtype=np.float64)
        hr = pd.to_numeric(table["hr_bpm"], errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            lnpat = np.where(pat > 0, np.log(pat), np.nan)
        return np.column_stack([np.ones(len(pat)), lnpat, hr])

    def fit(self, tables: pd.DataFrame | Iterable[pd.DataFrame]) -> PatLinearEstimator:
        """Least squares on all steps with finite PAT, HR and reference BP; returns ``self``."""
        table = tables if isinstance(tables, pd.DataFrame) else pd.concat(list(tables), ignore_index=True)
        X = self.design(table)
        for col in ("ref_sbp_mmhg", "ref_dbp_mmhg"):
            if col not in table.columns:
                raise EstimatorError(
                    f"replay table lacks column {col!r} needed to fit the PAT linear estimator"
                )
        Y = table[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy(dtype=np.float64)
        m = np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)
        if m.sum() < 3:
            raise EstimatorError(f"PAT linear estimator: only {int(m.sum())} usable steps (need at least 3)")
        coef, *_ = np.linalg.lstsq(X[m], Y[m], rcond=None)
        self.coef_sbp, self.coef_dbp = coef[:, 0], coef[:, 1]
        self.train_mean_mmhg = (float(Y[m, 0].mean()), float(Y[m, 1].mean()))
        resid = Y[m] - X[m] @ coef
        sids = sorted(table["subject_id"].astype(str).unique().tolist()) if "subject_id" in table else []
        self.info = {
            "n_steps": int(m.sum()),
            "subjects": sids,
            "residual_sd_mmhg": [float(v) for v in resid.std(axis=0, ddof=3)],
        }
        return self

    def predict_table(
        self, table: pd.DataFrame, record: Record | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """SBP and DBP per row; NaN where PAT or HR is missing (``record`` is not used)."""
        X = self.design(table)
        return X @ self.coef_sbp, X @ self.coef_dbp

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (what :meth:`save` writes)."""
        return {
            "format": LINEAR_FORMAT,
            "features": ["1", "ln(pat_foot_ms)", "hr_bpm"],
            "coef_sbp": self.coef_sbp.tolist(),
            "coef_dbp": self.coef_dbp.tolist(),
            "train_mean_mmhg": list(self.train_mean_mmhg),
            "info": self.info,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the coefficients as JSON, atomically."""
        return write_text_atomic(json.dumps(self.to_dict(), indent=2), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PatLinearEstimator:
        """Read :meth:`save` output; EstimatorError naming the file when malformed."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EstimatorError(f"{path}: cannot read PAT linear estimator: {exc}") from exc
        if not isinstance(d, dict) or d.get("format") != LINEAR_FORMAT:
            raise EstimatorError(f"{path}: not a PAT linear estimator (format != {LINEAR_FORMAT!r})")
        try:
            est = cls(
                d["coef_sbp"], d["coef_dbp"], d.get("train_mean_mmhg", (math.nan, math.nan)), d.get("info")
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EstimatorError(f"{path}: malformed coefficients: {exc}") from exc
        if est.coef_sbp.shape != (3,) or est.coef_dbp.shape != (3,):
            raise EstimatorError(f"{path}: coef_sbp and coef_dbp must have 3 values each")
        return est

    def fingerprint(self) -> str:
        """sha256 of the coefficients."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def load_estimator(path: str | os.PathLike[str]) -> CnnGruEstimator | PatLinearEstimator | OnnxEstimator:
    """Open an estimator: a checkpoint folder (CNN-GRU), a ``.onnx`` file, or a PAT-linear ``.json`` file."""
    path = Path(path)
    if path.is_dir():
        return CnnGruEstimator.load(path)
    if path.suffix == ".onnx":
        return OnnxEstimator(path)
    if path.suffix == ".json" and path.is_file():
        return PatLinearEstimator.load(path)
    raise EstimatorError(f"{path}: not an estimator (expected a checkpoint folder, a .onnx or a .json file)")


# ==================================================================== training
def _val_loss(model: CnnGruNet, ds: WindowDataset, batch_size: int = 256) -> tuple[float, np.ndarray]:
    model.eval()
    preds = []
    with torch.no_grad():
        for a in range(0, len(ds), batch_size):
            xb = torch.from_numpy(ds.x[a : a + batch_size])
            fb = torch.from_numpy(ds.feats[a : a + batch_size]) if model.config.hybrid else None
            preds.append(model(xb, fb).numpy())
    pred = np.concatenate(preds) if preds else np.zeros((0, 2), np.float32)
    z = (pred - model.label_mean.numpy()) / model.label_sd.numpy()
    zy = (ds.y - model.label_mean.numpy()) / model.label_sd.numpy()
    return float(np.mean((z - zy) ** 2)) if len(pred) else math.nan, pred.astype(np.float64)


def step_predictions(ds: WindowDataset, window_pred: np.ndarray) -> pd.DataFrame:
    """Median window prediction per (subject, record, step), with the step's reference."""
    df = pd.DataFrame(
        {
            "subject_id": ds.subject_id,
            "record_id": ds.record_id,
            "step": ds.step,
            "est_sbp_mmhg": window_pred[:, 0],
            "est_dbp_mmhg": window_pred[:, 1],
            "ref_sbp_mmhg": ds.y[:, 0],
            "ref_dbp_mmhg": ds.y[:, 1],
        }
    )
    return df.groupby(["subject_id", "record_id", "step"], as_index=False).median()


def evaluate_estimator(
    estimator: CnnGruEstimator | OnnxEstimator, data: WindowDataset, split: str = "test"
) -> dict[str, Any]:
    """Calibration-free metrics of a window estimator on one split of a window dataset (step level)."""
    ds = data.subset(split)
    if len(ds) == 0:
        raise EstimatorError(f"{data.source}: no windows in split {split!r}")
    pred = estimator.predict_windows(ds.x, ds.feats)
    steps = step_predictions(ds, pred)
    est = steps[["est_sbp_mmhg", "est_dbp_mmhg"]].to_numpy()
    ref = steps[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy()
    out = evaluate_predictions(est, ref, steps["subject_id"].to_numpy(), estimator.train_mean_mmhg)
    out["split"] = split
    out["n_steps"] = len(steps)
    out["n_windows"] = len(ds)
    return out


def evaluate_table_estimator(
    estimator: Estimator, items: Iterable[tuple[pd.DataFrame, Record | None]], split: str = "test"
) -> dict[str, Any]:
    """Calibration-free metrics of any estimator on (replay table, record) pairs, one row per step with a reference."""
    frames = []
    for table, record in items:
        sbp, dbp = estimator.predict_table(table, record)
        frames.append(
            pd.DataFrame(
                {
                    "subject_id": table["subject_id"].astype(str).to_numpy(),
                    "est_sbp_mmhg": sbp,
                    "est_dbp_mmhg": dbp,
                    "ref_sbp_mmhg": table["ref_sbp_mmhg"].to_numpy(dtype=np.float64),
                    "ref_dbp_mmhg": table["ref_dbp_mmhg"].to_numpy(dtype=np.float64),
                }
            )
        )
    if not frames:
        raise EstimatorError(f"no tables to evaluate in split {split!r}")
    df = pd.concat(frames, ignore_index=True)
    df = df[np.isfinite(df[["ref_sbp_mmhg", "ref_dbp_mmhg"]]).all(axis=1)]
    est = df[["est_sbp_mmhg", "est_dbp_mmhg"]].to_numpy()
    out = evaluate_predictions(
        est,
        df[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy(),
        df["subject_id"].to_numpy(),
        estimator.train_mean_mmhg,
    )
    out["split"] = split
    out["n_steps"] = len(df)
    out["n_estimated"] = int(np.isfinite(est).all(axis=1).sum())
    return out


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

    ``data`` is a :class:`WindowDataset` or a cohort folder (built with
    :func:`build_window_dataset`). Same data, config and seed give identical
    weights. Writes ``model.pt`` (state dict), ``config.json``, ``metrics.json``,
    ``train_log.csv`` and ``MODEL_CARD.md`` into ``out_dir``, each atomically.
    """
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    if isinstance(data, WindowDataset):
        ds = data
        if ds.config != config.model:
            if (ds.config.fs_hz, ds.config.window_s) != (config.model.fs_hz, config.model.window_s):
                raise EstimatorError(
                    "dataset windows were cut for a different fs_hz/window_s than the model config"
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

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        model = CnnGruNet(config.model)
        label_mean = train.y.mean(axis=0)
        label_sd = np.maximum(train.y.std(axis=0), 1.0)
        model.label_mean.copy_(torch.as_tensor(label_mean, dtype=torch.float32))
        model.label_sd.copy_(torch.as_tensor(label_sd, dtype=torch.float32))
        if config.model.hybrid:
            model.feat_mean.copy_(torch.as_tensor(train.feats.mean(axis=0), dtype=torch.float32))
            model.feat_sd.copy_(
                torch.as_tensor(np.maximum(train.feats.std(axis=0), 1e-3), dtype=torch.float32)
            )
        tds = torch.utils.data.TensorDataset(
            torch.from_numpy(train.x),
            torch.from_numpy(train.feats.astype(np.float32)),
            torch.from_numpy(((train.y - label_mean) / label_sd).astype(np.float32)),
        )
        gen = torch.Generator().manual_seed(seed)
        sampler = None
        if config.oversample:
            w = torch.as_tensor(oversampling_weights(train.y[:, 0]), dtype=torch.double)
            sampler = torch.utils.data.WeightedRandomSampler(w, len(w), replacement=True, generator=gen)
        loader = torch.utils.data.DataLoader(
            tds,
            batch_size=config.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            generator=gen if sampler is None else None,
            num_workers=0,
            drop_last=len(tds) > config.batch_size,
        )
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        writer = _tensorboard_writer(out)
        monitor = val if len(val) else train
        best = (math.inf, -1)
        best_state = {k: v.clone() for k, v in model.state_dict().items()}
        log_rows: list[dict[str, Any]] = []
        t_start = time.perf_counter()
        bar = tqdm(range(config.epochs), desc="estimator", unit="epoch", disable=not progress)
        n_evals = 0
        global_step = 0
        stop = False
        losses: list[float] = []

        def evaluate_and_log(epoch: int) -> bool:
            """Validate, log a row, keep the best weights; True when patience is exhausted."""
            nonlocal best, best_state, n_evals, losses
            vloss, vpred = _val_loss(model, monitor)
            model.train()
            vmae = np.abs(vpred - monitor.y).mean(axis=0) if len(vpred) else [math.nan, math.nan]
            row = {
                "epoch": epoch,
                "step": global_step,
                "train_loss": float(np.mean(losses)) if losses else math.nan,
                "val_loss": vloss,
                "val_mae_sbp_mmhg": float(vmae[0]),
                "val_mae_dbp_mmhg": float(vmae[1]),
                "elapsed_s": round(time.perf_counter() - t_start, 2),
            }
            losses = []
            log_rows.append(row)
            if writer is not None:
                for k in ("train_loss", "val_loss", "val_mae_sbp_mmhg", "val_mae_dbp_mmhg"):
                    writer.add_scalar(k, row[k], global_step)
            bar.set_postfix(train=f"{row['train_loss']:.3f}", val=f"{vloss:.3f}")
            n_evals += 1
            if vloss < best[0]:
                best = (vloss, n_evals - 1)
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
                return False
            return n_evals - 1 - best[1] >= config.patience

        for epoch in bar:
            model.train()
            for i, (xb, fb, yb) in enumerate(loader):
                if config.max_steps_per_epoch is not None and i >= config.max_steps_per_epoch:
                    break
                opt.zero_grad()
                loss = nn.functional.mse_loss(
                    model.forward_normalised(xb, fb if config.model.hybrid else None), yb
                )
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                losses.append(loss.item())
                global_step += 1
                if config.eval_every_steps and global_step % config.eval_every_steps == 0:
                    stop = evaluate_and_log(epoch)
                    if stop:
                        break
            if stop or (not config.eval_every_steps and evaluate_and_log(epoch)):
                break
        bar.close()
        if writer is not None:
            writer.close()
        model.load_state_dict(best_state)
        model.eval()
    finally:
        torch.use_deterministic_algorithms(prev_det)

    info = {
        "format": CHECKPOINT_FORMAT,
        "model": config.model.to_dict(),
        "train": config.to_dict(),
        "seed": seed,
        "n_parameters": count_parameters(model),
        "normalisation": {
            "windows": "per-window per-channel z-score",
            "label_mean_mmhg": [float(v) for v in label_mean],
            "label_sd_mmhg": [float(v) for v in label_sd],
            "feature_columns": list(FEATURE_COLUMNS),
            "feat_mean": model.feat_mean.tolist(),
            "feat_sd": model.feat_sd.tolist(),
        },
        "data": ds.describe(),
        "best_epoch": log_rows[best[1]]["epoch"] if best[1] >= 0 else None,
        "best_step": log_rows[best[1]]["step"] if best[1] >= 0 else None,
        "epochs_run": log_rows[-1]["epoch"] + 1,
        "validations": len(log_rows),
        "early_stopping_on": "val" if len(val) else "train",
        # major versions the weights were made under (checked by CnnGruEstimator.load), and the full ones
        STAMP_KEY: cache_versions(),
        "versions": {name: package_version(name) for name in ("numpy", "pandas", "torch")},
    }
    save_state_dict(model.state_dict(), out / MODEL_FILE)
    write_text_atomic(json.dumps(info, indent=2), out / CONFIG_FILE)
    with atomic_output(out / LOG_FILE) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(log_rows[0]))
        w.writeheader()
        w.writerows(log_rows)
    est = CnnGruEstimator(model, info, out)
    metrics: dict[str, Any] = {"history": log_rows, "skipped_records": ds.skipped}
    for sp, part in (("val", val), ("test", test)):
        if len(part):
            metrics[sp] = evaluate_estimator(est, ds, sp)
    write_text_atomic(json.dumps(metrics, indent=2, default=float), out / METRICS_FILE)
    write_text_atomic(model_card(info, metrics), out / CARD_FILE)
    return out


def save_state_dict(state: dict[str, torch.Tensor], path: str | os.PathLike[str]) -> Path:
    """Write a state dict with ``torch.save`` to ``path`` atomically, byte-reproducibly.

    torch names the zip archive's root folder after the file it writes to; saving through an open
    file object fixes that name (``archive/``), so the bytes do not depend on the temporary name,
    and the same weights always give the same ``model.pt`` (and the same checkpoint fingerprint).
    """
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)
    return Path(path)


def _tensorboard_writer(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / "tensorboard"))


def model_card(info: dict[str, Any], metrics: dict[str, Any]) -> str:
    """MODEL_CARD.md text of a checkpoint: data, architecture, metrics, intended use, limitations."""
    m = info["model"]
    data = info["data"]
    split_lines = "\n".join(
        f"| {sp} | {d['n_subjects']} | {d['n_windows']} |" for sp, d in data["splits"].items()
    )
    test = metrics.get("test")
    test_txt = format_metrics(test) if test else "(no test subjects)"
    return f"""# Model card: bprl CNN-GRU blood-pressure estimator

## Model
1-D CNN ({len(m["conv_channels"])} blocks, channels {m["conv_channels"]}, kernels {m["conv_kernels"]},
pools {m["pools"]}) -> bidirectional GRU ({m["gru_hidden"]} units per direction) -> attention pooling
-> head ({m["head_hidden"]} hidden) -> SBP, DBP. After Eom et al., Sensors 2020, 20(8):2338.
Input: {m["window_s"]} s of ECG and PPG at {m["fs_hz"]} Hz, each z-normalised per window.
Hybrid (PAT/HR features): {m["hybrid"]}. Parameters: {info["n_parameters"]}. Seed: {info["seed"]}.
Kept the weights of epoch {info["best_epoch"]} (optimiser step {info["best_step"]}) of {info["epochs_run"]} epochs run
(early stopping on {info["early_stopping_on"]} subjects).

## Data
Source: `{data["source"]}`. Labels: the replay step's reference BP (median of valid arterial-line beats).
Subject-disjoint splits:

| split | subjects | windows |
| --- | --- | --- |
{split_lines}

Label normalisation: mean {info["normalisation"]["label_mean_mmhg"]}, SD {info["normalisation"]["label_sd_mmhg"]} mmHg.

## Calibration-free metrics on test subjects (step level: median over sub-windows)
{test_txt}

MASE = MAE of the model / MAE of a predictor that always outputs the training mean.
`bias_sd` is the SD of per-subject mean errors: what per-subject calibration removes.

## Intended use
A population estimator whose per-subject bias and drift are corrected by bprl's calibration
policies. Research use on replayed records only.

## Limitations
Not a medical device; no standard (AAMI/ISO 81060-2, BHS, IEEE 1708) is met calibration-free.
When trained on virtual (synthetic) subjects, errors on real ICU records are much larger
(domain shift in waveform morphology, noise, pre-ejection period).
Window-level z-normalisation removes absolute amplitude information by design.
"""


# ================================================================== inference
def add_estimates(table: pd.DataFrame, record: Record | None, estimator: Estimator) -> pd.DataFrame:
    """A copy of ``table`` with ``est_sbp_mmhg`` / ``est_dbp_mmhg`` filled per step (NaN where no usable input)."""
    sbp, dbp = estimator.predict_table(table, record)
    out = table.copy()
    out["est_sbp_mmhg"] = np.asarray(sbp, dtype=np.float64)
    out["est_dbp_mmhg"] = np.asarray(dbp, dtype=np.float64)
    for col, dtype in REPLAY_ESTIMATE.items():
        out[col] = out[col].astype(dtype)
    return out


def table_hash(table: pd.DataFrame) -> str:
    """sha256 of a table's content (columns and values), used as the replay table's cache key."""
    h = hashlib.sha256(json.dumps(list(map(str, table.columns))).encode())
    h.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return h.hexdigest()


def estimate_replay_table(
    record_path: str | os.PathLike[str],
    estimator: Estimator,
    cache_dir: str | os.PathLike[str],
    feature_config: Any = None,
    table: pd.DataFrame | None = None,
    table_key: str | None = None,
) -> pd.DataFrame:
    """The replay table of a record with estimates filled, cached under table key + estimator fingerprint.

    The table comes from ``table`` or :func:`bprl.features.load_replay_table` (cached in
    ``cache_dir``); its key is ``table_key``, else :func:`bprl.features.record_cache_key`
    when the table is loaded here, else the table's content hash. The result is stored as
    ``cache_dir/estimates/<sha256>.parquet`` with the major versions of numpy, pandas and torch;
    an entry built under others, or damaged, is rebuilt with a log line (:mod:`bprl.cache_versions`).
    """
    from bprl.records import read_record

    cache = Path(cache_dir)
    if table is None:
        from bprl import features

        table = load_table(record_path, feature_config, cache)
        table_key = table_key or features.record_cache_key(record_path, feature_config)
    key = hashlib.sha256(f"{table_key or table_hash(table)}|{estimator.fingerprint()}".encode()).hexdigest()
    path = cache / "estimates" / f"{key[:32]}.parquet"
    cached = read_stamped_parquet(path)  # None when absent, damaged or built under other major versions
    if cached is not None:
        return cached
    record = read_record(record_path) if getattr(estimator, "kind", "") != PatLinearEstimator.kind else None
    out = add_estimates(table, record, estimator)
    write_stamped_parquet(out, path)
    return out


def estimate_tables(
    items: Iterable[tuple[str | os.PathLike[str], pd.DataFrame]], estimator: Estimator
) -> tuple[dict[str, pd.DataFrame], list[dict[str, str]]]:
    """Fill estimates of many (record path, table) pairs; failures are skipped and recorded, not raised."""
    from bprl.records import read_record

    done: dict[str, pd.DataFrame] = {}
    failed: list[dict[str, str]] = []
    for path, table in items:
        try:
            record = read_record(path) if getattr(estimator, "kind", "") != PatLinearEstimator.kind else None
            done[str(path)] = add_estimates(table, record, estimator)
        except BprlError as exc:
            failed.append({"record": str(path), "error": str(exc)})
    return done, failed


# ====================================================================== export
def export_onnx(checkpoint_dir: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Export a CNN-GRU checkpoint to ONNX (opset 17, dynamic batch); config stored as metadata."""
    import onnx

    est = CnnGruEstimator.load(checkpoint_dir)
    model = est.model.eval()
    cfg = est.config
    x = torch.zeros(2, 2, cfg.window_len)
    args: tuple[torch.Tensor, ...] = (x,)
    names = ["x"]
    if cfg.hybrid:
        args = (x, torch.zeros(2, len(FEATURE_COLUMNS)))
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
