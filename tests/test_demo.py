"""`make demo` as shipped (experiments/quickstart.yaml): it runs end to end on the built-in virtual
cohort, and the agent it trains is not worse than the base rule it corrects."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bprl import evaluation as ev
from bprl.evaluation import read_episode_logs
from bprl.experiments import run_experiment

QUICKSTART = Path(__file__).parents[1] / "experiments" / "quickstart.yaml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_experiment(QUICKSTART, tmp_path_factory.mktemp("demo") / "quickstart", progress=False)


def test_the_demo_agent_is_not_worse_than_its_base_rule(demo: Path) -> None:
    metrics = pd.read_csv(demo / "metrics.csv").set_index("policy")
    agent, base = metrics.loc["ppo_residual"], metrics.loc["kalman_ou"]
    for bp in ("sbp", "dbp"):
        assert agent[f"{bp}_mae_mmhg"] <= base[f"{bp}_mae_mmhg"] + 1e-9, (bp, agent, base)
    assert agent["cuffs_per_hour"] == pytest.approx(base["cuffs_per_hour"])  # the base decides the readings
    # and on no test subject worse than the base by more than 10 % (the safety check of the report)
    logs, _ = read_episode_logs(sorted((demo / "logs").glob("*.parquet")))
    safety = ev.base_safety(logs).set_index("policy").loc["ppo_residual"]
    assert safety["base_policy"] == "kalman_ou"
    assert safety["n_worse_sbp"] == 0 and safety["n_worse_dbp"] == 0, safety


def test_the_demo_beats_no_calibration_and_the_oracle_bounds_it(demo: Path) -> None:
    metrics = pd.read_csv(demo / "metrics.csv").set_index("policy")
    for policy in ("periodic", "kalman_ou", "ppo_residual"):
        assert metrics.loc[policy, "sbp_mae_mmhg"] < metrics.loc["none", "sbp_mae_mmhg"]
        assert metrics.loc["oracle", "sbp_mae_mmhg"] < metrics.loc[policy, "sbp_mae_mmhg"]
    assert (demo / "report.html").stat().st_size > 10_000
