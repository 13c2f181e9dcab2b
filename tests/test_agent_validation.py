"""Model selection on the validation subjects (``validation:`` in an agent entry): passes per
subject, common random numbers, and the significance a residual agent needs to replace its base."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import protocol_env_spec

from bprl.envs import BPCalibrationEnv, synthetic_replay_tables
from bprl.errors import ConfigError
from bprl.policies import fit_calibrator, make_calibrator
from bprl.policies.agents import load_agent_spec, train_agent
from bprl.policies.agents.envs import CycleSubjects
from bprl.policies.agents.spec import ResidualSpec, ValidationSpec
from bprl.policies.agents.train import _Outcome, _unless_base_is_better, paired_gain_p_value
from bprl.policies.residual import ResidualCalibrationEnv

KW = {"action_type": "continuous", "max_offset_step_mmhg": 40.0, "cuff": {"budget_per_h": 2.0}}


def _entry(validation: dict, **extra) -> dict:
    """A tiny residual PPO entry that does not learn (learning rate 0, no normalisation): every
    checkpoint is the same policy, so only the evaluation episodes can change its return."""
    return {
        "algo": "ppo",
        "default": {
            "n_timesteps": 256,
            "policy": "MlpPolicy",
            "n_steps": 64,
            "batch_size": 64,
            "n_epochs": 1,
            "learning_rate": 0.0,
            "residual": {"base": "kalman_ou", "max_residual_mmhg": 5.0},
            "validation": validation,
            **extra,
        },
    }


def _evaluations(out) -> np.ndarray:
    return np.load(out / "evaluations.npz")["results"]


def test_a_seeded_reset_restarts_the_subject_cycle():
    tables = synthetic_replay_tables(n_subjects=3, n_steps=60, seed=1)
    env = CycleSubjects(BPCalibrationEnv(tables=tables, split=None, **KW), sorted(tables))
    seen = [env.reset(seed=0 if k == 0 else None)[1]["subject_id"] for k in range(4)]
    assert seen == [*sorted(tables), sorted(tables)[0]]
    env.reset()  # the cycle runs on ...
    assert env.reset(seed=5)[1]["subject_id"] == sorted(tables)[0]  # ... until a seed restarts it


def test_common_random_numbers_replay_the_same_validation_episodes(tmp_path):
    """A policy that does not change scores the same at every evaluation with common random
    numbers, and differently without them (the cuff noise is drawn afresh); ``passes`` multiplies
    the episodes per evaluation."""
    env = protocol_env_spec(tmp_path, budget_per_h=2.0)  # 1 validation subject
    kw = {"seed": 0, "eval_freq": 64}
    crn = train_agent(
        env, _entry({"passes": 3, "common_random_numbers": True}), out_dir=tmp_path / "crn", **kw
    )
    plain = train_agent(env, _entry({"passes": 3}), out_dir=tmp_path / "plain", **kw)
    same, drawn = _evaluations(crn), _evaluations(plain)
    assert same.shape == drawn.shape == (4, 3)  # 4 evaluations of 1 subject x 3 passes
    assert np.all(same == same[0])
    assert len(set(same[0])) == 3  # the passes are different draws ...
    assert not np.all(drawn == drawn[0])  # ... and so is every evaluation without common numbers
    meta = json.loads((crn / "agent.json").read_text())
    assert meta["eval"]["passes"] == 3 and meta["eval"]["common_random_numbers"] is True
    assert meta["eval"]["n_eval_episodes"] == 3
    assert meta["best"]["base_val_mean_return"] is not None


def test_significance_needs_common_random_numbers():
    with pytest.raises(ConfigError, match="common_random_numbers"):
        load_agent_spec(_entry({"significance": 0.05}))
    with pytest.raises(ConfigError, match="significance"):
        load_agent_spec(_entry({"common_random_numbers": True, "significance": 1.5}))
    assert load_agent_spec(_entry({})).validation == ValidationSpec()


def test_the_paired_p_value():
    rng = np.random.default_rng(0)
    base = list(rng.normal(-100, 30, 12))  # large differences between episodes ...
    better = [b + 1.0 + 0.1 * rng.normal() for b in base]  # ... a small, steady gain is significant
    noisy = [b + 1.0 + 10 * rng.normal() for b in base]  # the same gain in noise is not
    assert paired_gain_p_value(better, base) < 1e-6
    assert paired_gain_p_value(noisy, base) > 0.05
    assert paired_gain_p_value([b - 1 for b in base], base) > 0.99
    assert paired_gain_p_value(base[:3], base) == 1.0  # episodes that do not pair up


def test_a_residual_agent_replaces_its_base_only_with_a_significant_gain():
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import DummyVecEnv

    from bprl.policies.residual import ZeroResidual

    tables = synthetic_replay_tables(n_subjects=5, n_steps=120, seed=3)
    ids = sorted(tables)
    train = BPCalibrationEnv(tables={k: tables[k] for k in ids[:3]}, split=None, **KW)
    base = make_calibrator("kalman_ou", action_type="continuous")
    fit_calibrator(base, train)
    val = {k: tables[k] for k in ids[3:]}
    vec = DummyVecEnv(
        [
            lambda: CycleSubjects(
                ResidualCalibrationEnv(BPCalibrationEnv(tables=val, split=None, **KW), base), sorted(val)
            )
        ]
    )
    said: list[str] = []
    spec = SimpleNamespace(
        residual=ResidualSpec(base="kalman_ou"),
        validation=ValidationSpec(passes=3, common_random_numbers=True, significance=0.05),
    )
    run = SimpleNamespace(spec=spec, n_eval_episodes=6, seed=0, say=said.append)
    vec.seed(10_000)
    base_returns, _ = evaluate_policy(ZeroResidual(), vec, n_eval_episodes=6, return_episode_rewards=True)
    steady = [r + 1.0 + 0.01 * k for k, r in enumerate(base_returns)]
    kept = _unless_base_is_better(run, vec, _Outcome("final", float(np.mean(steady)), 0.0, steady))
    assert (
        kept.best_is == "final"
        and kept.p_value < 0.05
        and kept.base_mean == pytest.approx(np.mean(base_returns))
    )
    # the same mean gain, from two lucky episodes: higher on average, yet the base rule is kept
    lucky = [r + (3.0 if k < 2 else 0.0) for k, r in enumerate(base_returns)]
    lost = _unless_base_is_better(run, vec, _Outcome("final", float(np.mean(lucky)), 0.0, lucky))
    assert lost.best_is == "base" and lost.p_value >= 0.05 and "p = " in said[-1]
    assert lost.agent_mean == pytest.approx(np.mean(lucky))
    # without a level, a higher mean is enough (the default)
    run.spec.validation = ValidationSpec(common_random_numbers=True)
    assert (
        _unless_base_is_better(run, vec, _Outcome("final", float(np.mean(lucky)), 0.0, lucky)).best_is
        == "final"
    )
