"""Safety of residual agents: is a learned correction ever much worse than the rule it starts from?

A residual agent (:mod:`bprl.policies.residual`) adds a learned correction to a classical base
rule; its episode logs name that rule in ``base_policy``. :func:`base_safety` compares, subject by
subject (each subject's MAE averaged over seeds), the agent with the policy of that name in the
same logs and counts the subjects where the agent's SBP or DBP MAE exceeds the base's by more than
``margin`` (10 % by default, the bound issue 15 sets for real patients), and gives the mean
per-subject difference agent − base with a bootstrap interval over subjects (a base that decides
the readings gives both the same cuff rate, so they pair without interpolation). The report shows
the result next to the accuracy tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bprl.evaluation.cuff_rate import paired_differences, subject_rate_points
from bprl.evaluation.logs import check_episode_log

__all__ = ["base_safety"]

#: the paired-difference columns of :func:`base_safety`, per blood pressure
_DIFF_COLS = [f"{bp}_diff_{k}" for bp in ("sbp", "dbp") for k in ("mmhg", "lo", "hi")]


def base_safety(
    log: pd.DataFrame, margin: float = 0.10, n_resamples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Per residual agent: subjects where it is worse than its base rule by more than ``margin``.

    Args:
        log: episode logs of the agents and their base rules (same subjects and seeds).
        margin: allowed relative excess of the agent's per-subject MAE over the base's.
        n_resamples: bootstrap resamples over subjects for the interval of the mean difference.
        seed: seed of the bootstrap.

    Returns:
        One row per (policy, base_policy) whose base ran too: ``n_subjects``, ``n_worse_sbp``,
        ``n_worse_dbp``, ``worst_ratio_sbp`` / ``worst_ratio_dbp`` (largest agent / base MAE over
        subjects), ``worse_subjects`` (comma-separated ids), and per ``<bp>`` ``_diff_mmhg``
        (mean per-subject MAE of the agent minus the base's) with a 95 % interval ``_diff_lo`` /
        ``_diff_hi``; empty when no log names a base.

    Raises:
        EvaluationError: a malformed log.
    """
    df = check_episode_log(log)
    base_of = df.groupby("policy", sort=False)["base_policy"].first().dropna()
    base_of = base_of[base_of.astype(str) != ""]
    cols = [
        "policy",
        "base_policy",
        "n_subjects",
        "n_worse_sbp",
        "n_worse_dbp",
        "worst_ratio_sbp",
        "worst_ratio_dbp",
        "worse_subjects",
        *_DIFF_COLS,
    ]
    if base_of.empty:
        return pd.DataFrame(columns=cols)
    # each subject's MAE averaged over seeds: the points the cuff-rate curves use too
    per = subject_rate_points(df).set_index(["policy", "subject_id"])[["sbp_mae_mmhg", "dbp_mae_mmhg"]]
    policies = set(per.index.get_level_values(0))
    rows = []
    for agent, base in base_of.items():
        base = _base_run(str(agent), str(base), policies)
        if base is None:
            continue
        a, b = per.loc[str(agent)], per.loc[base]
        common = a.index.intersection(b.index)
        a, b = a.loc[common], b.loc[common]
        ratio = a / b.where(b > 0)
        worse = (ratio > 1.0 + margin).fillna(False)
        bad = worse["sbp_mae_mmhg"] | worse["dbp_mae_mmhg"]
        diffs = dict.fromkeys(_DIFF_COLS, np.nan)
        if len(common):
            pair = {
                bp: pd.DataFrame({"agent": a[f"{bp}_mae_mmhg"], "base": b[f"{bp}_mae_mmhg"]})
                for bp in ("sbp", "dbp")
            }
            diff = paired_differences(pair["sbp"], pair["dbp"], "base", n_resamples, seed=seed)
            agent_row = diff.set_index("family").loc["agent"]
            diffs = {k: float(agent_row[k]) for k in diffs}
        rows.append(
            {
                "policy": str(agent),
                "base_policy": str(base),
                "n_subjects": len(common),
                "n_worse_sbp": int(worse["sbp_mae_mmhg"].sum()),
                "n_worse_dbp": int(worse["dbp_mae_mmhg"].sum()),
                "worst_ratio_sbp": float(np.nanmax(ratio["sbp_mae_mmhg"])) if len(common) else float("nan"),
                "worst_ratio_dbp": float(np.nanmax(ratio["dbp_mae_mmhg"])) if len(common) else float("nan"),
                "worse_subjects": ",".join(str(s) for s in common[bad.to_numpy()]),
                **diffs,
            }
        )
    return pd.DataFrame(rows, columns=cols)


def _base_run(agent: str, base: str, policies: set[str]) -> str | None:
    """The policy name of ``agent``'s base rule in the log: the base itself, or in a cuff-rate sweep
    the base at the agent's rate (``ppo_residual@1`` -> ``kalman_ou@1``); None when it did not run."""
    if base in policies:
        return base
    if "@" in agent:
        at_rate = f"{base}@{agent.rsplit('@', 1)[1]}"
        if at_rate in policies:
            return at_rate
    return None
