"""The SB3 adapter over the batched env (bprl.policies.agents.batched_vec_env): DummyVecEnv's episodes, faster."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from bprl.envs import BPCalibrationEnv, build_replay_arrays, synthetic_replay_tables
from bprl.errors import ConfigError
from bprl.policies.agents.batched_vec_env import BatchedVecEnv, batched_vec_env


@pytest.mark.parametrize(
    ("action_type", "kwargs"),
    [
        ("discrete", {"start": "random", "max_steps": 17, "cuff": {"budget_per_h": 6.0}}),
        ("continuous", {"start": "random", "max_steps": 11, "recalibration": "kalman"}),
    ],
)
def test_batched_equals_a_dummy_vec_env_of_single_envs(action_type, kwargs):
    """Same seeds and actions: identical observations, rewards, dones and terminal observations,
    with SB3's same-step autoreset, through many episode ends."""
    data = build_replay_arrays(synthetic_replay_tables(n_subjects=5, n_steps=60, seed=9))
    n = 4
    template = BPCalibrationEnv(data=data, action_type=action_type, **kwargs)
    batched = batched_vec_env(template, n).venv  # the BatchedVecEnv inside its VecMonitor
    assert isinstance(batched, BatchedVecEnv)
    dummy = DummyVecEnv(
        [lambda: BPCalibrationEnv(data=data, action_type=action_type, **kwargs) for _ in range(n)]
    )
    batched.seed(5)
    dummy.seed(5)
    np.testing.assert_array_equal(batched.reset(), dummy.reset())
    rng = np.random.default_rng(1)
    ends = 0
    for _ in range(80):
        if action_type == "discrete":
            acts = rng.integers(0, 6, n)
        else:
            acts = rng.uniform(-1, 1, (n, 5)).astype(np.float32)
        ob, rb, db, ib = batched.step(acts)
        od, rd, dd, id_ = dummy.step(acts)
        np.testing.assert_array_equal(ob, od)
        np.testing.assert_array_equal(rb, rd)
        np.testing.assert_array_equal(db, dd)
        for i in np.flatnonzero(dd):
            np.testing.assert_array_equal(ib[i]["terminal_observation"], id_[i]["terminal_observation"])
            assert ib[i]["TimeLimit.truncated"] == id_[i]["TimeLimit.truncated"]
        ends += int(dd.sum())
    assert ends >= 10


def test_batched_refuses_what_it_cannot_reproduce():
    import gymnasium as gym

    data = build_replay_arrays(synthetic_replay_tables(n_subjects=2, n_steps=20, seed=1))
    wrapped = gym.wrappers.RecordEpisodeStatistics(BPCalibrationEnv(data=data))
    with pytest.raises(ConfigError, match="RecordEpisodeStatistics"):
        batched_vec_env(wrapped, 2)
    with pytest.raises(ConfigError, match="bprl calibration env"):
        batched_vec_env(gym.make("CartPole-v1"), 2)


def test_an_agent_trains_on_the_batched_env(tmp_path):
    """vec_env: batched in an agent entry trains (PPO, 8 envs) and its agent loads back and acts."""
    from bprl.features.replay_set import write_replay_set
    from bprl.policies.agents import load_agent, train_agent

    tables = synthetic_replay_tables(n_subjects=6, n_steps=80, seed=3)
    rs = tmp_path / "rs"
    write_replay_set(rs, tables, dict(zip(sorted(tables), ["train"] * 4 + ["val", "test"], strict=True)))
    env = {"id": "bprl/BPCalibrationContinuous-v1", "replay_set": str(rs), "max_steps": 40, "start": "random"}
    agent = {
        "algo": "ppo",
        "default": {
            "n_timesteps": 512,
            "policy": "MlpPolicy",
            "n_envs": 8,
            "vec_env": "batched",
            "n_steps": 32,
            "batch_size": 64,
            "n_epochs": 1,
        },
    }
    out = train_agent(env, agent, seed=0, out_dir=tmp_path / "agent", eval_freq=256, n_eval_episodes=1)
    pol = load_agent(out)
    obs = BPCalibrationEnv(replay_set=rs, split="test", action_type="continuous").reset(seed=0)[0]
    action, _ = pol.predict(obs)
    assert np.asarray(action).shape == (5,)
