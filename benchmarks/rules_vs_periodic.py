"""Adaptive-timing classical rules against ``periodic`` at equal cuff rate, paired per held-out subject.

Reads the episode logs of a cuff-rate sweep's results folder (``bprl run experiments/pareto.yaml``
or ``experiments/pareto_events.yaml``), interpolates each subject's SBP and DBP MAE of each family
at 0.5, 1 and 2 readings per hour along that subject's own (achieved cuffs per hour, MAE) points
(linear in log rate, never extrapolated: as :func:`bprl.evaluation.paired_at_rate`), and prints,
for ``drift``, ``kalman_ou``, ``variance_trigger`` and ``feature_kalman_ou``, the mean per-subject
difference from ``periodic`` with a 95 % bootstrap interval over subjects (2000 resamples, seed 0).
Negative: the rule beats ``periodic``.

Usage::

    python -m benchmarks.rules_vs_periodic results/pareto results/pareto_events
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from bprl.evaluation import subject_rate_points

#: the rules that choose when to read, compared with periodic
ADAPTIVE_RULES: tuple[str, ...] = ("drift", "kalman_ou", "variance_trigger", "feature_kalman_ou")
RATES_PER_H: tuple[float, ...] = (0.5, 1.0, 2.0)


def _at_rate(g: pd.DataFrame, rate_per_h: float) -> pd.Series:
    """One subject's SBP and DBP MAE at ``rate_per_h`` along its (cuffs/h, MAE) points (NaN outside)."""
    g = g[g["cuffs_per_hour"] > 0].sort_values("cuffs_per_hour")
    x = g["cuffs_per_hour"].to_numpy(float)
    inside = len(x) > 0 and x[0] <= rate_per_h <= x[-1]
    return pd.Series(
        {
            bp: float(np.interp(np.log(rate_per_h), np.log(x), g[f"{bp}_mae_mmhg"])) if inside else np.nan
            for bp in ("sbp", "dbp")
        }
    )


def rules_vs_periodic(results: Path, rate_per_h: float, seed: int = 0) -> pd.DataFrame:
    """Per adaptive rule: mean per-subject MAE difference from periodic at ``rate_per_h``, with a 95 % interval."""
    logs = sorted((results / "logs").glob("*.parquet"))
    if not logs:
        raise SystemExit(f"{results}: no episode logs under logs/")
    pts = subject_rate_points(pd.concat([pd.read_parquet(p) for p in logs], ignore_index=True))
    pts = pts[np.isfinite(pts["target_cuffs_per_h"])]
    tab = pd.DataFrame({k: _at_rate(g, rate_per_h) for k, g in pts.groupby(["family", "subject_id"])}).T
    tab = tab.rename_axis(["family", "subject_id"]).unstack("family")
    rng = np.random.default_rng(seed)
    rows = []
    for rule in ADAPTIVE_RULES:
        if rule not in tab["sbp"] or "periodic" not in tab["sbp"]:
            continue
        row: dict[str, object] = {"rate_per_h": rate_per_h, "rule": rule}
        for bp in ("sbp", "dbp"):
            pair = tab[bp][[rule, "periodic"]].dropna()
            d = (pair[rule] - pair["periodic"]).to_numpy(float)
            boot = d[rng.integers(0, len(d), (2000, len(d)))].mean(axis=1)
            lo, hi = np.percentile(boot, [2.5, 97.5])
            row |= {f"{bp}_rule": pair[rule].mean(), f"{bp}_periodic": pair["periodic"].mean()}
            row |= {f"{bp}_diff": d.mean(), f"{bp}_lo": lo, f"{bp}_hi": hi, "n_subjects": len(d)}
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """Print the comparison for each results folder."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path, help="results folders of cuff-rate sweeps")
    args = ap.parse_args(argv)
    for folder in args.results:
        print(f"== {folder}: rule - periodic, MAE mmHg, mean over held-out subjects [95 % CI]")
        for rate in RATES_PER_H:
            for r in rules_vs_periodic(folder, rate).itertuples():
                print(
                    f"{r.rate_per_h:g}/h {r.rule:17s} SBP {r.sbp_rule:5.2f} vs {r.sbp_periodic:5.2f}: "
                    f"{r.sbp_diff:+.2f} [{r.sbp_lo:+.2f}, {r.sbp_hi:+.2f}]   DBP {r.dbp_rule:5.2f} vs "
                    f"{r.dbp_periodic:5.2f}: {r.dbp_diff:+.2f} [{r.dbp_lo:+.2f}, {r.dbp_hi:+.2f}]   "
                    f"({r.n_subjects} subjects)"
                )


if __name__ == "__main__":
    main()
