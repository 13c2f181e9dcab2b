"""Error against cuff rate: the curves of a cuff-rate sweep and paired comparisons at equal rate.

An experiment with ``budgets.sweep_cuffs_per_h`` runs every paced calibrator family once per
budget (readings per hour); its episode logs carry ``family`` and ``target_cuffs_per_h``.

* :func:`cuff_rate_curves` -- per family and budget: achieved cuffs per hour, SBP / DBP MAE with
  bootstrap intervals over subjects (each subject's MAE averaged over seeds, subjects weighted
  equally), refused requests. Policies outside the sweep appear once (``target`` NaN); the oracle
  is flagged ``bound``: an upper bound, never a point of the front.
* :func:`paired_at_rate` -- "A against B at equal cuff rate", per subject: each family's MAE of a
  subject is interpolated at the common rate along that subject's own (achieved cuffs per hour,
  MAE) points (linear in log rate, no extrapolation), then every family is compared with the best
  one by paired per-subject differences with bootstrap intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bprl.evaluation.evaluate import evaluate_subjects
from bprl.evaluation.logs import check_episode_log
from bprl.evaluation.statistics import percentile_interval

__all__ = [
    "BOUND_POLICIES",
    "COMPARE_RATES_PER_H",
    "compare_rates",
    "cuff_rate_curves",
    "is_bound_policy",
    "paired_at_rate",
    "subject_rate_points",
]

#: policies that read privileged data: shown apart as bounds, never on a front
BOUND_POLICIES: frozenset[str] = frozenset({"oracle"})


def is_bound_policy(name: str) -> bool:
    """Whether a policy (or family) name is one of :data:`BOUND_POLICIES`, also with a run label
    (``run:oracle``, from ``bprl compare``) or a swept budget (``oracle@1``).

    >>> [is_bound_policy(n) for n in ("oracle", "seed23:oracle", "oracle@1", "kalman", "oracle_like")]
    [True, True, True, False, False]
    """
    return str(name).rsplit(":", 1)[-1].split("@", 1)[0] in BOUND_POLICIES


_BPS = ("sbp", "dbp")


def subject_rate_points(log: pd.DataFrame) -> pd.DataFrame:
    """Per (family, target, policy, subject): achieved cuffs per hour and SBP / DBP MAE, averaged over seeds.

    Raises:
        EvaluationError: a malformed log.
    """
    df = check_episode_log(log)
    meta = df.groupby("policy", sort=False)[["family", "target_cuffs_per_h"]].first()
    per = evaluate_subjects(df)
    g = per.groupby(["policy", "subject_id"], sort=False)
    out = g[["cuffs_per_hour", "sbp_mae_mmhg", "dbp_mae_mmhg"]].mean().reset_index()
    out = out.join(meta, on="policy")
    refused = df.groupby(["policy", "subject_id"], sort=False)["cuff_refused"].sum().rename("n_refused")
    out = out.join(refused, on=["policy", "subject_id"])
    return out[
        [
            "family",
            "target_cuffs_per_h",
            "policy",
            "subject_id",
            "cuffs_per_hour",
            "sbp_mae_mmhg",
            "dbp_mae_mmhg",
            "n_refused",
        ]
    ]


def _boot_mean(
    x: np.ndarray, n_resamples: int, confidence: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``x`` (resampling its entries)."""
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return float("nan"), float("nan")
    idx = rng.integers(0, len(x), (n_resamples, len(x)))
    return percentile_interval(x[idx].mean(axis=1), confidence)


def cuff_rate_curves(
    log: pd.DataFrame, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Error against cuff rate for every policy family (see the module docstring).

    Returns:
        One row per policy: ``family``, ``target_cuffs_per_h`` (NaN outside a sweep), ``policy``,
        ``bound`` (an upper bound such as the oracle), ``n_subjects``, ``cuffs_per_hour`` (mean
        over subjects), ``n_refused`` (requests refused by the budget, all subjects and seeds),
        ``<bp>_mae_mmhg`` with ``<bp>_mae_lo`` / ``<bp>_mae_hi``; sorted by family then target.
    """
    pts = subject_rate_points(log)
    rows = []
    for policy, g in pts.groupby("policy", sort=False):
        rng = np.random.default_rng([seed, len(rows)])
        row = {
            "family": str(g["family"].iloc[0]),
            "target_cuffs_per_h": float(g["target_cuffs_per_h"].iloc[0]),
            "policy": str(policy),
            "bound": is_bound_policy(str(g["family"].iloc[0])),
            "n_subjects": int(g["subject_id"].nunique()),
            "cuffs_per_hour": float(g["cuffs_per_hour"].mean()),
            "n_refused": int(g["n_refused"].sum()),
        }
        for bp in _BPS:
            x = g[f"{bp}_mae_mmhg"].to_numpy(float)
            row[f"{bp}_mae_mmhg"] = float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")
            row[f"{bp}_mae_lo"], row[f"{bp}_mae_hi"] = _boot_mean(x, n_resamples, confidence, rng)
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values(["family", "target_cuffs_per_h"], kind="stable", na_position="first").reset_index(
        drop=True
    )


def _interpolated(pts: pd.DataFrame, rate_per_h: float, bp: str) -> pd.DataFrame:
    """Per subject and family, the MAE interpolated at ``rate_per_h`` (NaN outside its points)."""
    out = {}
    sweep = pts[np.isfinite(pts["target_cuffs_per_h"])]
    for (fam, sid), g in sweep.groupby(["family", "subject_id"], sort=True):
        g = g.sort_values("cuffs_per_hour")
        x = g["cuffs_per_hour"].to_numpy(float)
        y = g[f"{bp}_mae_mmhg"].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
        x, y = x[ok], y[ok]
        if len(x) == 0 or not x[0] <= rate_per_h <= x[-1]:
            val = float("nan")
        elif len(x) == 1:
            val = float(y[0])
        else:
            val = float(np.interp(np.log(rate_per_h), np.log(x), y))
        out[(str(fam), str(sid))] = val
    s = pd.Series(out, dtype=float)
    if s.empty:
        return pd.DataFrame()
    s.index = pd.MultiIndex.from_tuples(s.index, names=["family", "subject_id"])
    return s.unstack("family")


#: the cuff rates (readings per hour) at which a sweep's families are compared, paired per subject
COMPARE_RATES_PER_H: tuple[float, ...] = (0.5, 1.0, 2.0)


def compare_rates(log: pd.DataFrame) -> list[float]:
    """The rates of :data:`COMPARE_RATES_PER_H` inside the log's swept budgets (none without a sweep).

    >>> compare_rates(pd.DataFrame({"target_cuffs_per_h": [0.25, 1.0, float("nan")]}))
    [0.5, 1.0]
    """
    rates = log["target_cuffs_per_h"].to_numpy(float) if "target_cuffs_per_h" in log else np.zeros(0)
    rates = rates[np.isfinite(rates)]
    if not len(rates):
        return []
    return [r for r in COMPARE_RATES_PER_H if rates.min() <= r <= rates.max()]


def paired_at_rate(
    log: pd.DataFrame,
    rate_per_h: float = 1.0,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    against: str | None = None,
) -> pd.DataFrame:
    """Every swept family against the best one at ``rate_per_h`` cuffs per hour, paired per subject.

    ``against`` names another family to compare with (the differences are then family minus
    ``against``; ``best`` still marks the lowest SBP MAE); empty when it does not cover the rate.

    A family whose curve covers the rate for fewer than half the subjects is left out; the others
    are compared on the subjects that every one of them covers (the same subjects for all).

    Returns:
        One row per family, best first: ``family``, ``n_subjects``, ``<bp>_mae_mmhg`` (mean of the
        interpolated per-subject MAE), ``<bp>_diff_mmhg`` (mean of family minus best, per subject)
        with ``<bp>_diff_lo`` / ``<bp>_diff_hi`` (bootstrap over subjects); ``best`` marks the best
        family (lowest SBP MAE). Empty when the log has no sweep or no family covers the rate for
        half the subjects.
    """
    pts = subject_rate_points(log)
    pts = pts[~pts["family"].map(is_bound_policy).astype(bool)]
    tabs = {bp: _interpolated(pts, rate_per_h, bp) for bp in _BPS}
    if tabs["sbp"].empty:
        return pd.DataFrame()
    # families whose curves cover the rate for fewer than half the subjects are left out; the
    # rest are compared on the subjects every one of them covers
    covered = tabs["sbp"].notna() & tabs["dbp"].notna()
    keep = [f for f in tabs["sbp"].columns if covered[f].mean() >= 0.5]
    if not keep:
        return pd.DataFrame()
    both = pd.concat({bp: t[keep] for bp, t in tabs.items()}, axis=1).dropna()
    if both.empty:
        return pd.DataFrame()
    return paired_differences(both["sbp"], both["dbp"], against, n_resamples, confidence, seed)


def paired_differences(
    sbp: pd.DataFrame,
    dbp: pd.DataFrame,
    against: str | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Every family (column) of per-subject MAE tables against one, paired per subject (row).

    Args:
        sbp: per-subject SBP MAE, one column per family, the same subjects (no NaN) in ``dbp``.
        dbp: per-subject DBP MAE, same layout.
        against: the family to compare with (default: the lowest mean SBP MAE).
        n_resamples: bootstrap resamples over subjects (one set of draws for every family).
        confidence: level of the intervals.
        seed: seed of the bootstrap.

    Returns:
        The rows of :func:`paired_at_rate` (best first); empty when ``against`` is not a column.
    """
    best = str(sbp.mean().idxmin())
    ref = best if against is None else str(against)
    if ref not in sbp.columns:
        return pd.DataFrame()
    rng = np.random.default_rng(seed)
    n = len(sbp)
    idx = rng.integers(0, n, (n_resamples, n))
    rows = []
    for fam in sorted(sbp.columns, key=lambda f: float(sbp[f].mean())):
        row: dict[str, object] = {"family": str(fam), "best": str(fam) == best, "n_subjects": n}
        for bp, tab in (("sbp", sbp), ("dbp", dbp)):
            d = (tab[fam] - tab[ref]).to_numpy(float)
            row[f"{bp}_mae_mmhg"] = float(tab[fam].mean())
            row[f"{bp}_diff_mmhg"] = float(d.mean())
            lo, hi = percentile_interval(d[idx].mean(axis=1), confidence) if n > 1 else (np.nan, np.nan)
            row[f"{bp}_diff_lo"], row[f"{bp}_diff_hi"] = float(lo), float(hi)
        rows.append(row)
    return pd.DataFrame(rows)
