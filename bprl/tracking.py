"""Within-subject tracking metrics of a BP estimator: does its estimate follow each subject's changes?

Calibration removes an estimator's per-subject offset; what remains is its tracking. Per subject
and target (SBP, DBP), over the steps where both estimate and reference are finite:

- ``r``: Pearson correlation of estimate and reference;
- ``slope``: least-squares slope of the estimate on the reference (1: changes of the right size);
- ``sd_ratio``: estimate SD / reference SD (0: a constant, a collapsed model);
- ``trend_mae_mmhg``: after a one-point calibration at the first valid step t0, the MAE of
  ``est(t) - est(t0)`` against ``ref(t) - ref(t0)``; ``hold_mae_mmhg``: the same for *hold*, the
  calibrated value kept constant (the MAE of ``ref(t) - ref(t0)``); ``trend_ratio`` = trend / hold
  (below 1: better than holding the cuff reading);
- ``n_changes_ge{T}`` and ``dir_agree_ge{T}_pct``: the steps whose reference moved by at least T
  mmHg from t0, and the share of them where the estimate moved in the same direction.

:func:`subject_tracking` computes them per subject, :func:`pooled_tracking` takes medians over
subjects with percentile-bootstrap intervals over subjects, :func:`compare_tracking` gives paired
per-subject differences between two estimators, :func:`estimator_tracking` runs an estimator on
replay tables and does all of it, :func:`format_tracking` prints a Markdown table.

>>> import pandas as pd
>>> steps = pd.DataFrame({"subject_id": "s1", "t_s": [0.0, 30.0, 60.0, 90.0],
...                       "est_sbp_mmhg": [100.0, 105.0, 110.0, 115.0], "ref_sbp_mmhg": [120.0, 130.0, 140.0, 150.0],
...                       "est_dbp_mmhg": 70.0, "ref_dbp_mmhg": [80.0, 82.0, 81.0, 83.0]})
>>> row = subject_tracking(steps).set_index("target").loc["sbp"]
>>> [round(float(row[k]), 6) for k in ("r", "slope", "sd_ratio", "trend_ratio")]
[1.0, 0.5, 0.5, 0.5]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bprl.errors import EstimatorError

__all__ = [
    "TRACKING_METRICS",
    "compare_tracking",
    "estimator_tracking",
    "format_paired",
    "format_tracking",
    "pooled_tracking",
    "predict_steps",
    "subject_tracking",
]

#: per-subject metrics pooled as medians over subjects
TRACKING_METRICS: tuple[str, ...] = (
    "r",
    "slope",
    "sd_ratio",
    "trend_mae_mmhg",
    "hold_mae_mmhg",
    "trend_ratio",
)
#: metrics compared subject by subject, and whether higher is better
_PAIRED: dict[str, bool] = {"r": True, "sd_ratio": True, "trend_mae_mmhg": False, "trend_ratio": False}
_TARGETS = ("sbp", "dbp")
_REF_COLUMNS = ("ref_sbp_mmhg", "ref_dbp_mmhg")
#: fewest valid steps for a subject's metrics (fewer: NaN)
MIN_STEPS = 3


def _one_subject(est: np.ndarray, ref: np.ndarray, thresholds: Sequence[float]) -> dict[str, float]:
    """Tracking metrics of one subject's time-ordered finite (est, ref) pairs."""
    n = len(est)
    out: dict[str, float] = {"n_steps": n}
    nan_row = dict.fromkeys(TRACKING_METRICS, math.nan) | {"est_sd_mmhg": math.nan, "ref_sd_mmhg": math.nan}
    for t in thresholds:
        nan_row |= {f"n_changes_ge{t:g}": 0, f"dir_agree_ge{t:g}_pct": math.nan}
    if n < MIN_STEPS:
        return out | nan_row
    est_sd, ref_sd = float(est.std()), float(ref.std())
    out |= nan_row | {"est_sd_mmhg": est_sd, "ref_sd_mmhg": ref_sd}
    if ref_sd > 0:
        cov = float(np.mean((est - est.mean()) * (ref - ref.mean())))
        out["slope"] = cov / ref_sd**2
        out["sd_ratio"] = est_sd / ref_sd
        out["r"] = cov / (est_sd * ref_sd) if est_sd > 0 else math.nan
    d_est, d_ref = est[1:] - est[0], ref[1:] - ref[0]
    out["trend_mae_mmhg"] = float(np.mean(np.abs(d_est - d_ref)))
    out["hold_mae_mmhg"] = float(np.mean(np.abs(d_ref)))
    if out["hold_mae_mmhg"] > 0:
        out["trend_ratio"] = out["trend_mae_mmhg"] / out["hold_mae_mmhg"]
    for t in thresholds:
        big = np.abs(d_ref) >= t
        out[f"n_changes_ge{t:g}"] = int(big.sum())
        if big.any():
            out[f"dir_agree_ge{t:g}_pct"] = float(100.0 * np.mean(np.sign(d_est[big]) == np.sign(d_ref[big])))
    return out


def subject_tracking(
    steps: pd.DataFrame, change_thresholds_mmhg: Sequence[float] = (10.0, 20.0)
) -> pd.DataFrame:
    """Tracking metrics per (subject, target).

    Args:
        steps: one row per replay step: ``subject_id``, ``t_s`` (or ``step``) for the order
            within a subject, ``est_sbp_mmhg``, ``est_dbp_mmhg``, ``ref_sbp_mmhg``,
            ``ref_dbp_mmhg``; a row with a NaN estimate or reference is left out for that target.
        change_thresholds_mmhg: sizes of BP change (from t0) whose direction is scored.

    Returns:
        one row per subject and target (``sbp``, ``dbp``): ``n_steps``, ``r``, ``slope``,
        ``est_sd_mmhg``, ``ref_sd_mmhg``, ``sd_ratio``, ``trend_mae_mmhg``, ``hold_mae_mmhg``,
        ``trend_ratio``, ``n_changes_ge{T}``, ``dir_agree_ge{T}_pct``. NaN where undefined:
        fewer than 3 valid steps, a constant reference (r, slope, SD ratio) or estimate (r),
        no change of T mmHg.

    Raises:
        EstimatorError: a required column is missing.
    """
    order = "t_s" if "t_s" in steps.columns else "step"
    need = ["subject_id", order] + [f"{k}_{t}_mmhg" for t in _TARGETS for k in ("est", "ref")]
    missing = [c for c in need if c not in steps.columns]
    if missing:
        raise EstimatorError(f"tracking metrics need the step columns {missing}")
    df = steps.sort_values(["subject_id", order], kind="stable")
    rows = []
    for sid, g in df.groupby(df["subject_id"].astype(str), sort=True):
        for target in _TARGETS:
            est = g[f"est_{target}_mmhg"].to_numpy(dtype=np.float64)
            ref = g[f"ref_{target}_mmhg"].to_numpy(dtype=np.float64)
            ok = np.isfinite(est) & np.isfinite(ref)
            rows.append(
                {"subject_id": sid, "target": target} | _one_subject(est[ok], ref[ok], change_thresholds_mmhg)
            )
    return pd.DataFrame(rows)


def _interval(
    values: np.ndarray, stat: Any, rng: np.random.Generator, n_boot: int, ci: float
) -> dict[str, float]:
    """``stat`` of ``values`` (per subject) and its percentile-bootstrap interval over subjects."""
    values = values[np.isfinite(values).all(axis=-1)] if values.ndim > 1 else values[np.isfinite(values)]
    if not len(values):
        return {"median": math.nan, "lo": math.nan, "hi": math.nan, "n_subjects": 0}
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    boot = np.array([stat(values[i]) for i in idx])
    boot = boot[np.isfinite(boot)]
    a = (1 - ci) / 2
    lo, hi = np.quantile(boot, [a, 1 - a]) if len(boot) else (math.nan, math.nan)
    return {"median": float(stat(values)), "lo": float(lo), "hi": float(hi), "n_subjects": len(values)}


def _share(pairs: np.ndarray) -> float:
    """Pooled agreement (%) of (agreeing, changes) pairs: sum / sum."""
    total = pairs[:, 1].sum()
    return float(100.0 * pairs[:, 0].sum() / total) if total > 0 else math.nan


def pooled_tracking(
    per_subject: pd.DataFrame, n_boot: int = 2000, seed: int = 0, ci: float = 0.95
) -> dict[str, Any]:
    """Medians over subjects of :func:`subject_tracking` rows, with bootstrap intervals over subjects.

    Direction agreement is pooled over the changes of all subjects (agreeing / changes), its
    interval by resampling subjects. The same ``seed`` gives the same intervals.

    Returns:
        per target: ``{metric: {"median", "lo", "hi", "n_subjects"}}`` for :data:`TRACKING_METRICS`
        (for ``dir_agree_ge{T}_pct`` the pooled share in ``median``) and ``n_subjects``.
    """
    out: dict[str, Any] = {}
    for k, target in enumerate(_TARGETS):
        m = per_subject[per_subject["target"] == target]
        rng = np.random.default_rng([seed, k])
        res: dict[str, Any] = {"n_subjects": int(m["subject_id"].nunique())}
        for metric in TRACKING_METRICS:
            res[metric] = _interval(m[metric].to_numpy(dtype=np.float64), np.median, rng, n_boot, ci)
        for col in [c for c in m.columns if c.startswith("n_changes_ge")]:
            t = col.removeprefix("n_changes_ge")
            agree = m[f"dir_agree_ge{t}_pct"].fillna(0.0).to_numpy() / 100.0 * m[col].to_numpy()
            pairs = np.column_stack([agree, m[col].to_numpy(dtype=np.float64)])
            res[f"dir_agree_ge{t}_pct"] = _interval(pairs, _share, rng, n_boot, ci) | {
                "n_changes": int(pairs[:, 1].sum())
            }
        out[target] = res
    return out


def compare_tracking(a: pd.DataFrame, b: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Paired per-subject differences a - b of :func:`subject_tracking` rows of two estimators.

    Returns:
        per target and metric (``r``, ``sd_ratio``, ``trend_mae_mmhg``, ``trend_ratio``): the median
        difference with its bootstrap interval over subjects, and ``a_better_pct``, the share of
        subjects where ``a`` is better (higher r and SD ratio closer to 1 count as better; lower
        trend error).

    Raises:
        EstimatorError: the two share no subject.
    """
    merged = a.merge(b, on=["subject_id", "target"], suffixes=("_a", "_b"))
    if merged.empty:
        raise EstimatorError("tracking comparison: the two estimators share no subject")
    out: dict[str, Any] = {}
    for k, target in enumerate(_TARGETS):
        m = merged[merged["target"] == target]
        rng = np.random.default_rng([seed, k, 1])
        res: dict[str, Any] = {}
        for metric, higher in _PAIRED.items():
            va, vb = m[f"{metric}_a"].to_numpy(np.float64), m[f"{metric}_b"].to_numpy(np.float64)
            ok = np.isfinite(va) & np.isfinite(vb)
            if metric == "sd_ratio":  # closer to 1 is better
                better = np.abs(va[ok] - 1) < np.abs(vb[ok] - 1)
            else:
                better = va[ok] > vb[ok] if higher else va[ok] < vb[ok]
            res[metric] = _interval(va[ok] - vb[ok], np.median, rng, n_boot, 0.95) | {
                "a_better_pct": float(100.0 * better.mean()) if ok.any() else math.nan
            }
        out[target] = res
    return out


def predict_steps(estimator: Any, items: Iterable[tuple[pd.DataFrame, Any]]) -> pd.DataFrame:
    """One row per replay step with the estimator's and the reference's SBP/DBP (``t_s``: step start).

    The estimator runs once per table; the frame feeds both :func:`estimator_tracking` (``steps=``)
    and the calibration-free metrics (:func:`bprl.estimator.metrics.evaluate_steps`).

    Raises:
        EstimatorError: no tables, or a table lacks ``subject_id``, ``t_start_s`` or the references.
    """
    frames = []
    for table, record in items:
        missing = [c for c in ("subject_id", "t_start_s", *_REF_COLUMNS) if c not in table.columns]
        if missing:
            raise EstimatorError(f"tracking: replay table lacks columns {missing}")
        sbp, dbp = estimator.predict_table(table, record)
        frame = pd.DataFrame(
            {
                "subject_id": table["subject_id"].astype(str).to_numpy(),
                "t_s": table["t_start_s"].to_numpy(dtype=np.float64),
                "est_sbp_mmhg": sbp,
                "est_dbp_mmhg": dbp,
                "ref_sbp_mmhg": table["ref_sbp_mmhg"].to_numpy(dtype=np.float64),
                "ref_dbp_mmhg": table["ref_dbp_mmhg"].to_numpy(dtype=np.float64),
            }
        )
        frames.append(frame.sort_values("t_s", kind="stable"))  # time order within the record
    if not frames:
        raise EstimatorError("no replay tables to evaluate")
    return pd.concat(frames, ignore_index=True)


def estimator_tracking(
    estimator: Any,
    items: Iterable[tuple[pd.DataFrame, Any]],
    linear: Any = None,
    n_boot: int = 2000,
    seed: int = 0,
    steps: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Tracking of an estimator on (replay table, record) pairs, beside *hold* and, optionally, another model.

    A subject's steps from several records are ordered by ``t_start_s`` within each record, in the
    order the records are given (segments of one patient follow each other).

    Args:
        estimator: anything with ``predict_table(table, record) -> (sbp, dbp)``.
        items: (replay table, record) pairs; tables need ``subject_id``, ``t_start_s`` and the references.
        linear: a second estimator scored the same way (e.g. the within-subject linear model).
        n_boot: bootstrap resamples of subjects.
        seed: seed of the bootstrap.
        steps: the estimator's :func:`predict_steps` on ``items``, when already computed.

    Returns:
        JSON-ready: ``model`` (:func:`pooled_tracking`; *hold* is its ``hold_mae_mmhg``),
        ``per_subject`` (rows), and with ``linear``: ``linear``, ``linear_per_subject`` and
        ``paired_vs_linear`` (:func:`compare_tracking`, model - linear).
    """
    items = list(items)
    steps = (predict_steps(estimator, items) if steps is None else steps).copy()
    steps["t_s"] = steps.groupby("subject_id").cumcount().astype(np.float64)  # record order, then time
    per = subject_tracking(steps)
    out: dict[str, Any] = {"model": pooled_tracking(per, n_boot, seed), "per_subject": per.to_dict("records")}
    if linear is not None:
        lsteps = predict_steps(linear, items)
        lsteps["t_s"] = steps["t_s"]
        lper = subject_tracking(lsteps)
        out["linear"] = pooled_tracking(lper, n_boot, seed)
        out["linear_per_subject"] = lper.to_dict("records")
        out["paired_vs_linear"] = compare_tracking(per, lper, n_boot, seed)
    return out


def _cell(d: dict[str, Any]) -> str:
    """``median [lo, hi]`` with 2 decimals (1 for percentages)."""
    if not d or not math.isfinite(d.get("median", math.nan)):
        return "n/a"
    return f"{d['median']:.2f} [{d['lo']:.2f}, {d['hi']:.2f}]"


def format_tracking(
    pooled: dict[str, Any], label: str = "model", others: dict[str, dict[str, Any]] | None = None
) -> str:
    """Markdown table of :func:`pooled_tracking` output, other estimators' columns beside it.

    *hold* appears as its trend error (``hold_mae_mmhg``) and a trend ratio of 1.
    """
    cols = {label: pooled, **(others or {})}
    lines = [
        "| target | metric | " + " | ".join(cols) + " | hold |",
        "|" + " --- |" * (len(cols) + 3),
    ]
    for target in _TARGETS:
        if target not in pooled:
            continue
        metrics = [*TRACKING_METRICS[:3], "trend_mae_mmhg", "trend_ratio"]
        metrics += [k for k in pooled[target] if k.startswith("dir_agree")]
        for metric in metrics:
            hold = {"trend_mae_mmhg": _cell(pooled[target]["hold_mae_mmhg"]), "trend_ratio": "1"}.get(
                metric, ""
            )
            cells = [_cell(c.get(target, {}).get(metric, {})) for c in cols.values()]
            lines.append(f"| {target.upper()} | {metric} | " + " | ".join(cells) + f" | {hold} |")
        lines.append(
            f"| {target.upper()} | subjects | "
            + " | ".join(str(c.get(target, {}).get("n_subjects", "")) for c in cols.values())
            + " | |"
        )
    return "\n".join(lines)


def format_paired(paired: dict[str, Any], a: str = "model", b: str = "linear") -> str:
    """Markdown table of :func:`compare_tracking` output: median a - b [interval], share of subjects a is better."""
    lines = [
        f"| target | metric | {a} - {b}, median [95 % CI] | subjects where {a} is better |",
        "| --- | --- | --- | --- |",
    ]
    for target in _TARGETS:
        for metric in _PAIRED:
            d = paired.get(target, {}).get(metric)
            if d:
                lines.append(
                    f"| {target.upper()} | {metric} | {_cell(d)} | {d['a_better_pct']:.0f} % of {d['n_subjects']} |"
                )
    return "\n".join(lines)
