"""benchmarks.agent_vs_periodic: agent folders are reused only for the same env and agent settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import agent_vs_periodic as avp

ROOT = Path(__file__).resolve().parents[1]


def test_folder_name_follows_the_env_agent_and_budget() -> None:
    spec = {
        "replay_set": "/data/rs",
        "cuff": {"cost": 1.0, "budget": 6},
        "actions": {"recalibration": "kalman"},
    }
    reset = spec | {"actions": {"recalibration": "reset"}}
    dqn, ppo = ROOT / "agents" / "dqn.yaml", ROOT / "agents" / "ppo.yaml"
    name = avp.agent_folder_name("dqn", "rs", spec, dqn, None, 0)
    assert name == avp.agent_folder_name("dqn", "rs", dict(spec), dqn, None, 0)
    assert name.startswith("dqn_rs_") and name.endswith("_seed0")
    others = {
        avp.agent_folder_name("dqn", "rs", reset, dqn, None, 0),
        avp.agent_folder_name("dqn", "rs", spec, ppo, None, 0),
        avp.agent_folder_name("dqn", "rs", spec, dqn, 50_000, 0),
        avp.agent_folder_name("dqn", "rs", spec, dqn, None, 1),
    }
    assert name not in others and len(others) == 4


@pytest.mark.slow
def test_two_envs_in_one_work_folder_train_two_agents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reset = tmp_path / "budget_reset.yaml"
    reset.write_text(
        "".join(
            line
            for line in (ROOT / "envs" / "budget.yaml").read_text().splitlines(keepends=True)
            if not line.startswith("actions:")
        )
    )
    common = [
        "--synthetic",
        "10x1",
        "--agent",
        str(ROOT / "agents" / "ppo.yaml"),
        "--action-type",
        "discrete",
    ]
    common += ["--seeds", "0", "--timesteps", "1000", "--work", str(tmp_path / "work")]
    for env in (ROOT / "envs" / "budget.yaml", reset, ROOT / "envs" / "budget.yaml"):
        avp.main([*common, "--env", str(env)])
    out = capsys.readouterr().out
    agents = sorted(p.name for p in (tmp_path / "work").glob("ppo_*"))
    assert len(agents) == 2, agents
    assert out.count("reusing the agent") == 1  # the third run, with the first run's env
    assert out.count("-> BEATS") + out.count("-> does NOT beat") + out.count("took no cuff reading") == 3
