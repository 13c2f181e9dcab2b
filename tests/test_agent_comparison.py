"""Agents against the best classical rule at the same cuff rate (bprl.evaluation.agent_comparison),
and the README table made from results folders (``bprl docs agents-table``).

Uses the hand-built sweep log of ``tests/test_cuff_rate.py``: family ``b`` is exactly 1 mmHg (SBP)
and 0.5 mmHg (DBP) worse than ``a`` for every subject at every rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from test_cuff_rate import N_SUBJECTS, SEEDS, make_sweep_log, subject_mae
from typer.testing import CliRunner

from bprl import evaluation as ev
from bprl.evaluation.agent_comparison import AGENT_COMPARISON_COLUMNS, agents_against_best_rule


@pytest.fixture(scope="module")
def sweep_log() -> pd.DataFrame:
    return make_sweep_log()


def test_paired_against_a_chosen_family(sweep_log):
    vs_b = ev.paired_at_rate(sweep_log, 1.0, n_resamples=50, against="b").set_index("family")
    assert vs_b.loc["a", "sbp_diff_mmhg"] == pytest.approx(-1.0) and vs_b.loc["b", "sbp_diff_mmhg"] == 0.0
    assert vs_b.loc["a", "best"]  # still the lowest SBP MAE
    assert ev.paired_at_rate(sweep_log, 1.0, n_resamples=50, against="c").empty  # not a family


def test_a_worse_agent_is_compared_with_the_best_rule_at_each_rate(sweep_log):
    t = agents_against_best_rule(sweep_log, ["b"], n_resamples=100)
    assert list(t.columns) == list(AGENT_COMPARISON_COLUMNS)
    assert {0.5, 1.0} <= set(t["rate_per_h"])
    assert (t["agent"] == "b").all() and (t["rule"] == "a").all()  # none and oracle are not rules
    np.testing.assert_allclose(t["sbp_diff_mmhg"], 1.0)
    np.testing.assert_allclose(t["dbp_diff_mmhg"], 0.5)
    np.testing.assert_allclose(t["sbp_diff_lo"], 1.0)  # the same for every subject: zero width
    row = t.set_index("rate_per_h").loc[1.0]
    want = np.mean([subject_mae("a", i, 1.0) for i in range(N_SUBJECTS)])
    assert row["rule_sbp_mae_mmhg"] == pytest.approx(want) and row["agent_sbp_mae_mmhg"] == pytest.approx(
        want + 1
    )
    assert row["n_subjects"] == N_SUBJECTS


def test_a_better_agent_has_a_negative_difference(sweep_log):
    t = agents_against_best_rule(sweep_log, ["a"], n_resamples=100)
    assert (t["rule"] == "b").all()
    np.testing.assert_allclose(t["sbp_diff_mmhg"], -1.0)
    np.testing.assert_allclose(t["dbp_diff_hi"], -0.5)


def _fixed_budget(sweep_log: pd.DataFrame) -> pd.DataFrame:
    """The 1-per-hour runs of a and b as a fixed-budget experiment (no sweep columns)."""
    log = sweep_log[sweep_log["policy"].isin(["a@1", "b@1"])].copy()
    log["policy"] = log["policy"].str.split("@").str[0]
    return log.drop(columns=["family", "target_cuffs_per_h"])


def test_a_fixed_budget_compares_the_agent_with_the_best_rule_directly(sweep_log):
    t = agents_against_best_rule(_fixed_budget(sweep_log), ["b"], n_resamples=100)
    assert len(t) == 1
    row = t.iloc[0]
    assert row["rule"] == "a" and row["rate_per_h"] == pytest.approx(1.0)
    assert row["sbp_diff_mmhg"] == pytest.approx(1.0) and row["sbp_diff_hi"] == pytest.approx(1.0)
    assert agents_against_best_rule(_fixed_budget(sweep_log), ["a", "b"]).empty  # no rule left


def test_the_agents_table_command_reads_results_folders(sweep_log, tmp_path):
    from bprl.cli import app

    res = tmp_path / "fixed"
    (res / "logs").mkdir(parents=True)
    log = _fixed_budget(sweep_log)
    for (policy, seed), part in log.groupby(["policy", "seed"]):
        part.to_parquet(res / "logs" / f"{policy}__seed{seed}.parquet")
    cfg = {
        "name": "fixed_budget",
        "seeds": list(SEEDS),
        "policies": [{"name": "a", "agent": None}, {"name": "b", "agent": "agents/ppo.yaml"}],
    }
    (res / "config.resolved.yaml").write_text(yaml.safe_dump(cfg))
    out = CliRunner().invoke(app, ["docs", "agents-table", str(res), "--resamples", "50"])
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("| experiment")
    assert lines[2].startswith("| fixed_budget | 1 | `b` ") and "+1.00 [+1.00, +1.00] (worse)" in lines[2]
    assert lines[2].endswith(f"| {N_SUBJECTS} x {len(SEEDS)} |")
    wide = CliRunner().invoke(app, ["docs", "agents-table", str(res), "--resamples", "50", "--wide"])
    assert wide.exit_code == 0, wide.output
    head, _, row = wide.output.strip().splitlines()
    assert "`b`: SBP / DBP MAE" in head and row.startswith("| fixed_budget | 1 | `a` ")
    assert "; +1.00 [+1.00, +1.00] (worse) / +0.50 [+0.50, +0.50] (worse) |" in row
    named = CliRunner().invoke(app, ["docs", "agents-table", str(res), "--resamples", "50", "--agents", "b"])
    assert named.exit_code == 0 and named.output == out.output
    unknown = CliRunner().invoke(app, ["docs", "agents-table", str(res), "--agents", "b,nope"])
    assert unknown.exit_code == 2 and "['nope'] are in none of" in unknown.output
    bad = CliRunner().invoke(app, ["docs", "agents-table", str(tmp_path)])
    assert bad.exit_code == 2 and "config.resolved.yaml" in bad.output
