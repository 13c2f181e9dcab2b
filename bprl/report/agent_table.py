"""The README's table of learned policies against the best classical rule, from results folders.

:func:`agent_table_markdown` reads each results folder written by ``bprl run`` (its resolved
configuration and current episode logs), compares every agent of the experiment with the best
classical rule at the same cuff rate (:func:`bprl.evaluation.agents_against_best_rule`) and
renders one Markdown table over all folders, so that the numbers in the README come from one
command (``bprl docs agents-table``) and are never typed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from bprl.errors import EvaluationError
from bprl.evaluation.agent_comparison import agents_against_best_rule
from bprl.evaluation.logs import read_episode_logs, results_logs

__all__ = ["agent_comparison_of", "agent_table_markdown"]


def agent_comparison_of(
    results_dir: str | os.PathLike[str], n_resamples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """The agents-against-best-rule table of one results folder, with ``experiment`` and ``n_seeds``.

    Raises:
        EvaluationError: the folder has no resolved configuration or no readable logs.
    """
    results = Path(results_dir)
    cfg_path = results / "config.resolved.yaml"
    if not cfg_path.is_file():
        raise EvaluationError(f"{results}: no config.resolved.yaml (not a folder written by `bprl run`)")
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    agents = [str(p["name"]) for p in cfg.get("policies") or [] if isinstance(p, dict) and p.get("agent")]
    log, _problems = read_episode_logs(results_logs(results, cfg))
    table = agents_against_best_rule(log, agents, n_resamples=n_resamples, seed=seed)
    table.insert(0, "experiment", str(cfg.get("name") or results.name))
    table.insert(1, "n_seeds", len(cfg.get("seeds") or []))
    return table


def _diff(row: pd.Series, bp: str) -> str:
    d, lo, hi = row[f"{bp}_diff_mmhg"], row[f"{bp}_diff_lo"], row[f"{bp}_diff_hi"]
    if pd.isna(lo):
        return f"{d:+.2f}"
    mark = " (better)" if hi < 0 else " (worse)" if lo > 0 else ""
    return f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]{mark}"


def agent_table_markdown(
    results_dirs: Sequence[str | os.PathLike[str]],
    n_resamples: int = 1000,
    seed: int = 0,
    wide: bool = False,
    agents: Sequence[str] | None = None,
) -> str:
    """One Markdown table: each agent of each folder against the best classical rule at its rate.

    Columns: experiment, cuff readings per hour, agent and rule SBP / DBP MAE (mmHg, each subject's
    MAE averaged over the seeds), agent minus rule with its bootstrap interval over subjects
    ("better" / "worse" when the interval excludes 0), subjects and seeds. ``wide``: one row per
    experiment and rate, the best rule once and one column per agent (the same numbers).
    ``agents``: only these agents, in this order (default: every agent of the folders).

    Raises:
        EvaluationError: a folder is not a results folder, or a named agent is in none of them.
    """
    tables = [agent_comparison_of(r, n_resamples, seed) for r in results_dirs]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if agents is not None:
        found = set(table["agent"]) if len(table) else set()
        missing = [a for a in agents if a not in found]
        if missing:
            raise EvaluationError(
                f"agents {missing} are in none of {[str(r) for r in results_dirs]}; found {sorted(found)}"
            )
        order = {a: i for i, a in enumerate(agents)}
        table = table[table["agent"].isin(order)]
        group = pd.factorize(table["experiment"].astype(str) + "@" + table["rate_per_h"].astype(str))[0]
        table = (
            table.assign(_group=group, _agent=table["agent"].map(order))
            .sort_values(["_group", "_agent"], kind="stable")
            .drop(columns=["_group", "_agent"])
            .reset_index(drop=True)
        )
    if wide:
        return _wide(table, list(agents) if agents is not None else None)
    lines = [
        "| experiment | cuffs/h | agent: SBP / DBP MAE | best rule: SBP / DBP MAE "
        "| SBP: agent - rule [95 % CI] | DBP: agent - rule [95 % CI] | subjects x seeds |",
        "| --- | ---: | --- | --- | --- | --- | --- |",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['experiment']} | {r['rate_per_h']:g} "
            f"| `{r['agent']}` {r['agent_sbp_mae_mmhg']:.2f} / {r['agent_dbp_mae_mmhg']:.2f} "
            f"| `{r['rule']}` {r['rule_sbp_mae_mmhg']:.2f} / {r['rule_dbp_mae_mmhg']:.2f} "
            f"| {_diff(r, 'sbp')} | {_diff(r, 'dbp')} | {int(r['n_subjects'])} x {int(r['n_seeds'])} |"
        )
    return "\n".join(lines) + "\n"


def _wide(table: pd.DataFrame, agents: list[str] | None = None) -> str:
    """The table with one row per (experiment, rate) and one column per agent (``agents``' order,
    default the order of appearance)."""
    if agents is None:
        agents = list(dict.fromkeys(table["agent"])) if len(table) else []
    head = "| experiment | cuffs/h | best rule: SBP / DBP MAE | " + " | ".join(
        f"`{a}`: SBP / DBP MAE; agent - rule, SBP / DBP [95 % CI]" for a in agents
    )
    lines = [head + " | subjects x seeds |", "| --- | ---: | --- | " + "--- | " * len(agents) + "--- |"]
    for (exp, rate), g in table.groupby(["experiment", "rate_per_h"], sort=False):
        first = g.iloc[0]
        cells = []
        for a in agents:
            rows = g[g["agent"] == a]
            if rows.empty:
                cells.append("-")
                continue
            r = rows.iloc[0]
            cells.append(
                f"{r['agent_sbp_mae_mmhg']:.2f} / {r['agent_dbp_mae_mmhg']:.2f}; {_diff(r, 'sbp')} / {_diff(r, 'dbp')}"
            )
        lines.append(
            f"| {exp} | {rate:g} | `{first['rule']}` {first['rule_sbp_mae_mmhg']:.2f} / "
            f"{first['rule_dbp_mae_mmhg']:.2f} | " + " | ".join(cells) + f" | {int(first['n_subjects'])} x "
            f"{int(first['n_seeds'])} |"
        )
    return "\n".join(lines) + "\n"
