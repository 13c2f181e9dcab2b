"""BP ranges of the range-aware head (after seed 002): hypotension, normal, stage 1, stage 2, and errors by range.

:func:`bp_range` assigns each (SBP, DBP) reading one of :data:`BP_RANGES` (ACC/AHA 2017 stages
for hypertension, with "elevated" merged into normal, and hypotension below them; the higher
stage wins, so isolated systolic hypertension with a low DBP is stage 2, not hypotension).
:func:`range_metrics` reports the estimator's MAE within each reference range (where a population
model regresses to the mean, the rare ranges suffer), and the classifier's recall per range when
class predictions are given.

>>> bp_range([85.0, 118.0, 134.0, 150.0, 150.0], [55.0, 75.0, 78.0, 95.0, 55.0]).tolist()
[0, 1, 2, 3, 3]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["BP_RANGES", "bp_range", "format_ranges", "range_metrics"]

#: the classes of the range head, by code 0..3
BP_RANGES: tuple[str, ...] = ("hypotension", "normal", "stage 1", "stage 2")


def bp_range(sbp_mmhg: Any, dbp_mmhg: Any) -> np.ndarray:
    """Range code per reading: 3 stage 2 (SBP >= 140 or DBP >= 90), 2 stage 1 (>= 130 or >= 80),
    0 hypotension (SBP < 90 or DBP < 60), 1 normal otherwise; -1 where a value is NaN."""
    sbp = np.asarray(sbp_mmhg, dtype=np.float64)
    dbp = np.asarray(dbp_mmhg, dtype=np.float64)
    code = np.ones(np.broadcast(sbp, dbp).shape, dtype=np.int64)
    code[(sbp < 90) | (dbp < 60)] = 0
    code[(sbp >= 130) | (dbp >= 80)] = 2
    code[(sbp >= 140) | (dbp >= 90)] = 3
    code[~(np.isfinite(sbp) & np.isfinite(dbp))] = -1
    return code


def range_metrics(est: np.ndarray, ref: np.ndarray, pred_range: np.ndarray | None = None) -> dict[str, Any]:
    """SBP and DBP MAE of (n, 2) estimates within each reference range; recall of a range classifier.

    Args:
        est: (n, 2) estimated SBP, DBP, mmHg.
        ref: (n, 2) reference SBP, DBP, mmHg.
        pred_range: (n,) range codes predicted by a classifier (None: no classifier).

    Returns:
        per range name: ``n``, ``sbp_mae_mmhg``, ``dbp_mae_mmhg``, ``sbp_me_mmhg`` (and ``recall_pct``
        with a classifier); with a classifier also ``accuracy_pct`` and ``balanced_accuracy_pct``.
    """
    est = np.asarray(est, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    truth = bp_range(ref[:, 0], ref[:, 1])
    ok = (truth >= 0) & np.isfinite(est).all(axis=1)
    out: dict[str, Any] = {}
    recalls = []
    for k, name in enumerate(BP_RANGES):
        m = ok & (truth == k)
        err = est[m] - ref[m]
        row: dict[str, float] = {"n": int(m.sum())}
        row["sbp_mae_mmhg"] = float(np.abs(err[:, 0]).mean()) if m.any() else math.nan
        row["dbp_mae_mmhg"] = float(np.abs(err[:, 1]).mean()) if m.any() else math.nan
        row["sbp_me_mmhg"] = float(err[:, 0].mean()) if m.any() else math.nan
        if pred_range is not None:
            row["recall_pct"] = (
                float(100.0 * np.mean(np.asarray(pred_range)[m] == k)) if m.any() else math.nan
            )
            if m.any():
                recalls.append(row["recall_pct"])
        out[name] = row
    if pred_range is not None and ok.any():
        out["accuracy_pct"] = float(100.0 * np.mean(np.asarray(pred_range)[ok] == truth[ok]))
        out["balanced_accuracy_pct"] = float(np.mean(recalls))
    return out


def format_ranges(by_range: dict[str, Any]) -> str:
    """Markdown table of :func:`range_metrics` output (one row per reference range)."""
    recall = any("recall_pct" in by_range.get(name, {}) for name in BP_RANGES)
    head = "| reference range | steps | SBP MAE | SBP ME | DBP MAE |" + (
        " range recall % |" if recall else ""
    )
    lines = [head, "|" + " --- |" * (5 + recall)]
    for name in BP_RANGES:
        r = by_range.get(name, {})
        cells = [str(r.get("n", 0))] + [
            f"{r[k]:.1f}" if math.isfinite(r.get(k, math.nan)) else "–"
            for k in ("sbp_mae_mmhg", "sbp_me_mmhg", "dbp_mae_mmhg", *(("recall_pct",) if recall else ()))
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if recall and "balanced_accuracy_pct" in by_range:
        lines.append(
            f"\nRange classifier: accuracy {by_range['accuracy_pct']:.1f} %, "
            f"balanced accuracy {by_range['balanced_accuracy_pct']:.1f} %."
        )
    return "\n".join(lines)
