"""The Lagrangian cuff price (bprl.policies.agents.cuff_price): training steered to a cuff rate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import protocol_env_spec

from bprl.envs import BPCalibrationEnv, synthetic_replay_tables
from bprl.policies.agents.cuff_price import CuffPrice, PricedCuffs


def test_the_dual_step():
    p = CuffPrice(value=0.5, target_per_h=1.0, lr=0.1)
    p.readings, p.hours = 4, 2.0  # 2 per hour: twice the target -> the price rises by lr
    assert p.update() == pytest.approx(0.6) and (p.readings, p.hours) == (0, 0.0)
    p.readings, p.hours = 0, 1.0  # none in an hour: the price falls by lr ...
    assert p.update() == pytest.approx(0.5)
    q = CuffPrice(value=0.05, target_per_h=2.0, lr=0.1)
    q.hours = 1.0
    assert q.update() == 0.0  # ... but never below 0
    assert q.update() == 0.0  # no time counted: unchanged


def test_priced_readings_cost_the_price_and_are_counted():
    tables = synthetic_replay_tables(n_subjects=1, n_steps=240, seed=2, gap_share=0.0, ref_gap_steps=0)
    kw = {"tables": tables, "cuff": {"budget_per_h": 2.0, "cost": 0.0}}
    price = CuffPrice(value=3.0, target_per_h=1.0, lr=0.1)
    plain, priced = BPCalibrationEnv(**kw), PricedCuffs(BPCalibrationEnv(**kw), price)
    plain.reset(seed=0)
    priced.reset(seed=0)
    readings, diffs = 0, []
    for _ in range(239):
        _, r0, *_, info = plain.step(1)  # always ask: the paced budget grants 1 + 2 per hour
        _, r1, *_ = priced.step(1)
        readings += int(info["cuff"])
        diffs.append(r0 - r1)
    diffs = np.array(diffs)
    assert readings == price.readings and readings > 3
    np.testing.assert_allclose(diffs[diffs != 0], 3.0)  # each charged reading costs the price
    assert len(diffs[diffs != 0]) == readings
    # from the end of the first window (reset) to the end of the last one stepped: 238 windows
    assert price.hours == pytest.approx(238 * 30 / 3600)


def test_an_agent_trains_with_a_cuff_price(tmp_path):
    """A residual agent that decides its own readings, with a price steering it to 1 per hour."""
    from bprl.policies.agents import train_agent

    env = protocol_env_spec(tmp_path, budget_per_h=4.0)
    agent = {
        "algo": "ppo",
        "default": {
            "n_timesteps": 512,
            "policy": "MlpPolicy",
            "n_steps": 128,
            "batch_size": 64,
            "n_epochs": 1,
            "residual": {"base": "periodic", "cuff": "agent"},
            "cuff_price": {"target_per_h": 1.0, "initial": 0.5, "lr": 0.2},
        },
    }
    out = train_agent(env, agent, seed=0, out_dir=tmp_path / "agent", eval_freq=256, n_eval_episodes=1)
    meta = json.loads((out / "agent.json").read_text())
    assert meta["cuff_price"]["target_per_h"] == 1.0
    # a random initial policy asks about half the time (far above 1 per hour): the price rose
    assert meta["cuff_price"]["final"] > 0.5
