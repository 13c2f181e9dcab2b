"""Model input from a record: ECG and PPG on one time base, cut into per-step windows, checked and normalised.

:func:`record_signals` resamples a record's ECG and PPG onto one exact rate near the model's
``fs_hz``; :func:`step_windows` cuts each replay step into non-overlapping windows of
``window_len`` samples and keeps those :func:`window_is_valid` accepts, z-normalised by
:func:`normalise_windows`.

>>> import numpy as np
>>> w = normalise_windows(np.arange(8, dtype=np.float32).reshape(1, 2, 4))
>>> w.astype(float).round(3).tolist()
[[[-1.342, -0.447, 0.447, 1.342], [-1.342, -0.447, 0.447, 1.342]]]
>>> window_is_valid(np.ones((2, 100)))  # flat channels
False
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
from scipy.signal import resample_poly

from bprl.errors import BprlError, EstimatorError
from bprl.estimator.config import ModelConfig
from bprl.sources import Record

__all__ = ["StepWindows", "normalise_windows", "record_signals", "step_windows", "window_is_valid"]


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

    Args:
        record: the record (needs an ECG and a PPG channel).
        fs_hz: the wanted rate, Hz.

    Returns:
        the (2, n) float32 signals (row 0 ECG, row 1 PPG) and their rate in Hz.

    Raises:
        EstimatorError: naming the record when it lacks an ECG or PPG channel.
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
        feats: (n_windows, k) the step's ``config.feature_columns`` (NaN when missing).
        row: index (0..len(table)-1) of the table row each window belongs to.
        n_candidates: sub-windows per row before dropping invalid ones.
    """

    x: np.ndarray
    feats: np.ndarray
    row: np.ndarray
    n_candidates: np.ndarray


def _table_features(table: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """(len(table), len(columns)) float32 features of each row; NaN where absent or not numeric."""
    feats = np.full((len(table), len(columns)), np.nan, dtype=np.float32)
    for j, col in enumerate(columns):
        if col in table.columns:
            feats[:, j] = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float64)
    return feats


def step_windows(
    table: pd.DataFrame, record: Record, config: ModelConfig, max_windows_per_step: int | None = None
) -> StepWindows:
    """Cut each step's [t_start_s, t_end_s) into non-overlapping windows; drop NaN or flat ones.

    Args:
        table: the record's replay table (``t_start_s``, ``t_end_s``; features when present).
        record: the record the table was built from.
        config: the model layout (rate and window length).
        max_windows_per_step: keep at most this many sub-windows per step (None: all).

    Returns:
        the valid windows, z-normalised, with their features and table rows.

    Raises:
        EstimatorError: naming the record when it lacks ECG or PPG, or the table lacks timing columns.
    """
    for col in ("t_start_s", "t_end_s"):
        if col not in table.columns:
            raise EstimatorError(f"replay table of {record.path}: missing column {col!r}")
    sig, fs_eff = record_signals(record, config.fs_hz)
    L = config.window_len
    feats_all = _table_features(table, config.feature_columns)
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
