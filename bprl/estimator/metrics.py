"""Calibration-free error metrics of population estimators: ME, SD, MAE, BHS shares, bias SD, MASE.

:func:`error_metrics` scores one target; :func:`evaluate_predictions` scores SBP and DBP
against the training-mean predictor; :func:`evaluate_estimator` and
:func:`evaluate_table_estimator` run an estimator on a window dataset or on replay tables
(one value per step) and score it; :func:`format_metrics` prints the result as Markdown.

>>> m = error_metrics([104.0, 96.0, 112.0, 100.0], [100.0, 100.0, 100.0, 100.0], ["a", "a", "b", "b"])
>>> m["me"], m["mae"], m["bhs_le5_pct"], m["n_subjects"]
(3.0, 5.0, 75.0, 2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bprl.errors import EstimatorError
from bprl.estimator.dataset import WindowDataset
from bprl.estimator.ranges import range_metrics
from bprl.sources import Record

if TYPE_CHECKING:
    from bprl.estimator.estimators import CnnGruEstimator, Estimator, OnnxEstimator

__all__ = [
    "BHS_THRESHOLDS_MMHG",
    "error_metrics",
    "evaluate_estimator",
    "evaluate_predictions",
    "evaluate_steps",
    "evaluate_table_estimator",
    "evaluate_tracking",
    "format_metrics",
    "step_predictions",
]

#: BHS thresholds (cumulative share of |error| <= t mmHg)
BHS_THRESHOLDS_MMHG: tuple[int, ...] = (5, 10, 15)


def error_metrics(est: np.ndarray, ref: np.ndarray, subject_id: np.ndarray | None = None) -> dict[str, float]:
    """ME, SD, MAE, BHS cumulative percentages and (with subjects) the SD of per-subject mean errors.

    Args:
        est: estimates, mmHg (NaN: not estimated, left out).
        ref: references, mmHg (NaN: left out).
        subject_id: subject of each pair, for ``n_subjects``, ``bias_sd``, ``bias_mean_abs``.

    Returns:
        ``n`` (pairs used), ``me``, ``sd``, ``mae`` (mmHg), ``bhs_le{5,10,15}_pct`` (%), and
        with subjects ``n_subjects``, ``bias_sd``, ``bias_mean_abs`` (mmHg).
    """
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
    """Calibration-free metrics of (n, 2) step estimates vs references, with the training-mean predictor and MASE.

    Returns:
        per target (``sbp``, ``dbp``): ``model`` and ``mean_predictor`` (:func:`error_metrics`)
        and ``mase`` (MAE of the model / MAE of the training mean).
    """
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


def step_predictions(ds: WindowDataset, window_pred: np.ndarray) -> pd.DataFrame:
    """Median window prediction per (subject, record, step), with the step's reference (mmHg)."""
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
    """Calibration-free metrics of a window estimator on one split of a window dataset (step level).

    Returns:
        :func:`evaluate_predictions` output plus ``split``, ``n_steps``, ``n_windows`` and
        ``by_range`` (:func:`~bprl.estimator.ranges.range_metrics`: MAE within each reference BP
        range; with a range head also the classifier's recall per range).

    Raises:
        EstimatorError: the split holds no windows.
    """
    ds = data.subset(split)
    if len(ds) == 0:
        raise EstimatorError(f"{data.source}: no windows in split {split!r}")
    pred = estimator.predict_windows(ds.x, ds.feats)
    steps = step_predictions(ds, pred)
    est = steps[["est_sbp_mmhg", "est_dbp_mmhg"]].to_numpy()
    ref = steps[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy()
    out = evaluate_predictions(est, ref, steps["subject_id"].to_numpy(), estimator.train_mean_mmhg)
    out["by_range"] = range_metrics(est, ref, _step_ranges(estimator, ds))
    out["split"] = split
    out["n_steps"] = len(steps)
    out["n_windows"] = len(ds)
    return out


def _step_ranges(estimator: CnnGruEstimator | OnnxEstimator, ds: WindowDataset) -> np.ndarray | None:
    """Range predicted per step (argmax of the mean logits of its windows), in :func:`step_predictions` order."""
    if not getattr(estimator.config, "range_head", False) or not hasattr(estimator, "predict_ranges"):
        return None
    logits = estimator.predict_ranges(ds.x, ds.feats)
    df = pd.DataFrame(logits).assign(subject_id=ds.subject_id, record_id=ds.record_id, step=ds.step)
    mean = df.groupby(["subject_id", "record_id", "step"]).mean()
    return mean.to_numpy().argmax(axis=1)


def evaluate_tracking(
    estimator: CnnGruEstimator | OnnxEstimator, data: WindowDataset, split: str = "test", seed: int = 0
) -> dict[str, Any]:
    """Within-subject tracking of a window estimator on one split (step level), pooled over subjects.

    Returns:
        ``model``: :func:`~bprl.tracking.pooled_tracking` output; ``per_subject``: the
        rows of :func:`~bprl.tracking.subject_tracking`.

    Raises:
        EstimatorError: the split holds no windows.
    """
    from bprl.tracking import pooled_tracking, subject_tracking

    ds = data.subset(split)
    if len(ds) == 0:
        raise EstimatorError(f"{data.source}: no windows in split {split!r}")
    per = subject_tracking(step_predictions(ds, estimator.predict_windows(ds.x, ds.feats)))
    return {"model": pooled_tracking(per, seed=seed), "per_subject": per.to_dict("records")}


def evaluate_steps(
    steps: pd.DataFrame, train_mean_mmhg: Sequence[float], split: str = "test"
) -> dict[str, Any]:
    """Calibration-free metrics of step estimates (:func:`bprl.tracking.predict_steps`), steps with a reference.

    Returns:
        :func:`evaluate_predictions` output plus ``by_range``, ``split``, ``n_steps`` (with a
        reference) and ``n_estimated`` (with both estimates finite).
    """
    df = steps[np.isfinite(steps[["ref_sbp_mmhg", "ref_dbp_mmhg"]]).all(axis=1)]
    est = df[["est_sbp_mmhg", "est_dbp_mmhg"]].to_numpy()
    ref = df[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy()
    out = evaluate_predictions(est, ref, df["subject_id"].to_numpy(), train_mean_mmhg)
    out["by_range"] = range_metrics(est, ref)
    out["split"] = split
    out["n_steps"] = len(df)
    out["n_estimated"] = int(np.isfinite(est).all(axis=1).sum())
    return out


def evaluate_table_estimator(
    estimator: Estimator, items: Iterable[tuple[pd.DataFrame, Record | None]], split: str = "test"
) -> dict[str, Any]:
    """Calibration-free metrics of any estimator on (replay table, record) pairs, one row per step with a reference.

    Returns:
        :func:`evaluate_steps` output.

    Raises:
        EstimatorError: no tables were given, or a table lacks its step times or references.
    """
    from bprl.tracking import predict_steps

    return evaluate_steps(predict_steps(estimator, items), estimator.train_mean_mmhg, split)
