"""Learned policies against the best classical rule at the same cuff rate, paired per subject.

The question a learned calibration policy has to answer (issue 15, the calibration protocol of
``docs/guide/protocol.md``): at the same number of cuff readings per hour, is it better than the
*best* classical rule on the same held-out subjects? :func:`agents_against_best_rule` answers it
from episode logs: for a cuff-rate sweep at each rate of :func:`~bprl.evaluation.compare_rates`
(per-subject MAE interpolated at the rate, as :func:`~bprl.evaluation.paired_at_rate`), for a
fixed budget directly; each subject's MAE is averaged over the training seeds, the best rule is
the classical family with the lowest mean SBP MAE (bounds such as ``oracle`` and ``none`` left
out), and the differences (agent minus rule, negative = agent better) get bootstrap intervals
over subjects.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from bprl.evaluation.cuff_rate import (
    compare_rates,
    is_bound_policy,
    paired_at_rate,
    paired_differences,
    subject_rate_points,
)

__all__ = ["AGENT_COMPARISON_COLUMNS", "agents_against_best_rule"]

#: columns of :func:`agents_against_best_rule`
AGENT_COMPARISON_COLUMNS: tuple[str, ...] = (
    "rate_per_h",
    "agent",
    "rule",
    "n_subjects",
    "agent_sbp_mae_mmhg",
    "rule_sbp_mae_mmhg",
    "sbp_diff_mmhg",
    "sbp_diff_lo",
    "sbp_diff_hi",
    "agent_dbp_mae_mmhg",
    "rule_dbp_mae_mmhg",
    "dbp_diff_mmhg",
    "dbp_diff_lo",
    "dbp_diff_hi",
)
_UNCALIBRATED = ("none",)


def _is_rule(family: str, agents: set[str]) -> bool:
    return family not in agents and not is_bound_policy(family) and family not in _UNCALIBRATED


def agents_against_best_rule(
    log: pd.DataFrame,
    agents: Iterable[str],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Each agent against the best classical rule at the same cuff rate, paired per subject.

    Args:
        log: episode logs of the agents and the classical rules (same subjects and seeds).
        agents: the policy (family) names of the learned policies; every other policy but the
            bounds (``oracle``) and ``none`` is a classical rule.
        n_resamples: bootstrap resamples over subjects.
        confidence: level of the intervals.
        seed: seed of the bootstrap.

    Returns:
        One row per (rate, agent), columns :data:`AGENT_COMPARISON_COLUMNS`; ``rate_per_h`` is the
        swept rate, or the mean achieved cuffs per hour of the rule for a fixed budget.

    Raises:
        EvaluationError: a malformed log.
    """
    agents = {str(a) for a in agents}
    rows: list[dict[str, object]] = []
    rates = compare_rates(log)
    if rates:
        for rate in rates:
            table = paired_at_rate(log, rate, n_resamples, confidence, seed)
            if table.empty:
                continue
            rules = table[[_is_rule(f, agents) for f in table["family"]]]
            if rules.empty:
                continue
            rule = str(rules.sort_values("sbp_mae_mmhg")["family"].iloc[0])
            vs = paired_at_rate(log, rate, n_resamples, confidence, seed, against=rule).set_index("family")
            for agent in sorted(agents & set(vs.index)):
                rows.append(_row(rate, agent, rule, vs.loc[agent], vs.loc[rule]))
        return pd.DataFrame(rows, columns=list(AGENT_COMPARISON_COLUMNS))
    pts = subject_rate_points(log)
    per = pts.set_index(["family", "subject_id"])[["sbp_mae_mmhg", "dbp_mae_mmhg", "cuffs_per_hour"]]
    families = list(dict.fromkeys(pts["family"].astype(str)))
    rules = [f for f in families if _is_rule(f, agents)]
    if not rules:
        return pd.DataFrame(columns=list(AGENT_COMPARISON_COLUMNS))
    rule = min(rules, key=lambda f: float(per.loc[f, "sbp_mae_mmhg"].mean()))
    for agent in sorted(agents & set(families)):
        pair = pd.concat({f: per.loc[f] for f in (agent, rule)}, axis=1).dropna()  # common subjects
        if pair.empty:
            continue
        vs = paired_differences(
            pair.xs("sbp_mae_mmhg", axis=1, level=1),
            pair.xs("dbp_mae_mmhg", axis=1, level=1),
            rule,
            n_resamples,
            confidence,
            seed,
        ).set_index("family")
        rate = float(pair[(rule, "cuffs_per_hour")].mean())
        rows.append(_row(rate, agent, rule, vs.loc[agent], vs.loc[rule]))
    return pd.DataFrame(rows, columns=list(AGENT_COMPARISON_COLUMNS))


def _row(rate: float, agent: str, rule: str, a: pd.Series, b: pd.Series) -> dict[str, object]:
    """One output row from the paired table's rows of the agent and the rule (diffs against the rule)."""
    row: dict[str, object] = {
        "rate_per_h": rate,
        "agent": agent,
        "rule": rule,
        "n_subjects": int(a["n_subjects"]),
    }
    for bp in ("sbp", "dbp"):
        row |= {
            f"agent_{bp}_mae_mmhg": float(a[f"{bp}_mae_mmhg"]),
            f"rule_{bp}_mae_mmhg": float(b[f"{bp}_mae_mmhg"]),
            f"{bp}_diff_mmhg": float(a[f"{bp}_diff_mmhg"]),
            f"{bp}_diff_lo": float(a[f"{bp}_diff_lo"]),
            f"{bp}_diff_hi": float(a[f"{bp}_diff_hi"]),
        }
    return row
