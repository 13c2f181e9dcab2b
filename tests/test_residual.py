"""Residual calibration (bprl.policies.residual): a bounded learned correction on top of a classical rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import protocol_env_spec

from bprl.envs import BPCalibrationEnv, synthetic_replay_tables
from bprl.errors import ConfigError
from bprl.policies import fit_calibrator, make_calibrator, rollout
from bprl.policies.residual import BELIEF_FIELDS, ResidualCalibrationEnv, ResidualPolicy

KW = {"action_type": "continuous", "max_offset_step_mmhg": 40.0, "cuff": {"budget_per_h": 2.0}}


@pytest.fixture(scope="module")
def envs() -> tuple[BPCalibrationEnv, BPCalibrationEnv]:
    tables = synthetic_replay_tables(n_subjects=7, n_steps=240, seed=6)
    ids = sorted(tables)
    train = BPCalibrationEnv(tables={k: tables[k] for k in ids[:4]}, split=None, **KW)
    test = BPCalibrationEnv(tables={k: tables[k] for k in ids[4:]}, split=None, **KW)
    return train, test


class Constant:
    """A stand-in agent that always answers the same action."""

    def __init__(self, action):
        self.action = np.asarray(action, np.float32)

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        assert obs.shape[-1] > len(BELIEF_FIELDS)
        return self.action, state


def _base(name, train, **params):
    base = make_calibrator(name, action_type="continuous", **params)
    fit_calibrator(base, train)
    return base


@pytest.mark.parametrize(
    ("name", "params"),
    [("periodic", {}), ("kalman_ou", {}), ("rls_gain", {}), ("feature_correction", {"base": "kalman_ou"})],
)
def test_a_zero_residual_reproduces_the_base_rule_exactly(envs, name, params):
    train, test = envs
    alone = rollout(_base(name, train, **params), test, seed=3, policy_name="x")
    residual = ResidualPolicy(Constant([0.0, 0.0, -1.0]), _base(name, train, **params), name="x")
    with_zero = rollout(residual, test, seed=3, policy_name="x")
    pd.testing.assert_frame_equal(alone, with_zero)


def test_a_feature_corrected_filter_shows_its_filter_uncertainty(envs):
    """On ``feature_correction`` over ``kalman_ou`` the belief's SD fields are the inner filter's."""
    train, test = envs
    fc = _base("feature_correction", train, base="kalman_ou")
    seen = []

    class Keep(Constant):
        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            seen.append(np.asarray(obs).reshape(-1)[-len(BELIEF_FIELDS) :].copy())
            return super().predict(obs, state, episode_start, deterministic)

    rollout(ResidualPolicy(Keep([0.0, 0.0, -1.0]), fc, name="x"), test, seed=3, policy_name="x")
    np.testing.assert_array_equal(fc.last_var, fc.base.last_var)
    sd = np.array(seen)[:, [BELIEF_FIELDS.index("base_sd_sbp"), BELIEF_FIELDS.index("base_sd_dbp")]]
    assert (sd > 0).all(axis=1).mean() > 0.9


def test_a_residual_moves_the_correction_by_its_size(envs):
    """+0.5 of a 10-mmHg residual on SBP and -0.5 on DBP: the corrected estimate is +5 / -5 mmHg
    from the base rule's at every step but those of a reading (where the env recalibrates)."""
    train, test = envs
    alone = rollout(_base("kalman_ou", train), test, seed=3)
    moved = rollout(ResidualPolicy(Constant([0.5, -0.5, -1.0]), _base("kalman_ou", train)), test, seed=3)
    assert (alone["cuff"] == moved["cuff"]).all()  # the base still decides when to read
    keep = ~moved["cuff"].to_numpy()
    d_sbp = (moved["corr_sbp_mmhg"] - alone["corr_sbp_mmhg"]).to_numpy()[keep]
    d_dbp = (moved["corr_dbp_mmhg"] - alone["corr_dbp_mmhg"]).to_numpy()[keep]
    np.testing.assert_allclose(d_sbp, 5.0, atol=1e-6)
    np.testing.assert_allclose(d_dbp, -5.0, atol=1e-6)


def test_cuff_modes(envs):
    train, test = envs
    never = rollout(
        ResidualPolicy(Constant([0, 0, -1.0]), _base("periodic", train), cuff="agent"), test, seed=0
    )
    assert not never["cuff"].any()
    always = rollout(
        ResidualPolicy(Constant([0, 0, 1.0]), _base("periodic", train), cuff="agent"), test, seed=0
    )
    assert always["cuff"].sum() > never["cuff"].sum()
    assert not always["cuff_refused"].any()  # the agent's requests are paced too
    base_only = rollout(_base("periodic", train), test, seed=0)
    either = rollout(
        ResidualPolicy(Constant([0, 0, -1.0]), _base("periodic", train), cuff="either"), test, seed=0
    )
    pd.testing.assert_frame_equal(base_only.drop(columns="policy"), either.drop(columns="policy"))


def test_the_wrapper_env_passes_the_checkers_and_trains(envs):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env as sb3_check_env
    from stable_baselines3.common.logger import Logger

    train, test = envs
    env = ResidualCalibrationEnv(BPCalibrationEnv(data=train.data, **KW), _base("kalman_ou", train))
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (test.observation_space.shape[0] + len(BELIEF_FIELDS),)
    assert obs[-2] == 1.0 and obs[-1] == 1.0  # no reading yet: the base wants one and may
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))  # no SB3-<date> folder in the temp dir
    model.learn(total_timesteps=128)
    log = rollout(ResidualPolicy(model, _base("kalman_ou", train), name="ppo_residual"), test, seed=0)
    assert (log["policy"] == "ppo_residual").all() and log["cuff"].any()


def test_training_keeps_the_base_rule_unless_the_agent_beats_it_on_validation(envs):
    """The base rule (a zero residual) is a candidate of model selection: an agent whose best
    validation return is below the base's is replaced by it (``best.chosen == "base"``)."""
    from types import SimpleNamespace

    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import DummyVecEnv

    from bprl.policies.agents.spec import ResidualSpec, ValidationSpec
    from bprl.policies.agents.train import _Outcome, _unless_base_is_better
    from bprl.policies.residual import ZeroResidual

    train, test = envs
    vec = DummyVecEnv(
        [lambda: ResidualCalibrationEnv(BPCalibrationEnv(data=test.data, **KW), _base("kalman_ou", train))]
    )
    said = []
    spec = SimpleNamespace(residual=ResidualSpec(base="kalman_ou"), validation=ValidationSpec())
    run = SimpleNamespace(spec=spec, n_eval_episodes=3, seed=0, say=said.append)
    base_mean = evaluate_policy(ZeroResidual(), vec, n_eval_episodes=3, deterministic=True)[
        0
    ]  # about the base's
    bad = _unless_base_is_better(run, vec, _Outcome("eval_callback", base_mean - 1e6, base_mean - 1e6))
    assert bad.best_is == "base" and np.isfinite(bad.best_mean) and said
    good = _Outcome("final", base_mean + 1e6, base_mean + 1e6)
    assert _unless_base_is_better(run, vec, good) is good
    # an agent that decides its own readings has no base to fall back on
    run.spec.residual = ResidualSpec(base="kalman_ou", cuff="agent")
    assert _unless_base_is_better(run, vec, _Outcome("final", -1e9, -1e9)).best_is == "final"
    # and the zero residual is the base rule, reading for reading
    zero = rollout(
        ResidualPolicy(ZeroResidual(), _base("kalman_ou", train), name="x"), test, seed=1, policy_name="x"
    )
    pd.testing.assert_frame_equal(zero, rollout(_base("kalman_ou", train), test, seed=1, policy_name="x"))


def test_bad_settings_are_config_errors(envs):
    train, _ = envs
    with pytest.raises(ConfigError, match="continuous"):
        ResidualCalibrationEnv(BPCalibrationEnv(data=train.data), _base("periodic", train))
    with pytest.raises(ConfigError, match="action_type='continuous'"):
        ResidualPolicy(Constant([0, 0, 0]), make_calibrator("periodic"))
    with pytest.raises(ConfigError, match="cuff"):
        ResidualPolicy(Constant([0, 0, 0]), _base("periodic", train), cuff="sometimes")
    with pytest.raises(ConfigError, match="fit_calibrator"):
        ResidualCalibrationEnv(
            BPCalibrationEnv(data=train.data, **KW), make_calibrator("kalman_ou", action_type="continuous")
        )


def test_a_residual_agent_trains_from_its_agent_entry_and_runs_with_its_base(tmp_path):
    """``residual:`` in an agent entry: the base is fit on the train split, agent.json records it,
    and residual_policy refits it identically for evaluation."""
    import json

    from bprl.policies.agents import load_agent, residual_policy, train_agent

    env = protocol_env_spec(tmp_path, budget_per_h=2.0)
    agent = {
        "algo": "ppo",
        "default": {
            "n_timesteps": 256,
            "policy": "MlpPolicy",
            "n_steps": 64,
            "batch_size": 64,
            "n_epochs": 1,
            "residual": {"base": "kalman_ou", "max_residual_mmhg": 5.0, "ablation": "shuffled_features"},
        },
    }
    out = train_agent(env, agent, seed=0, out_dir=tmp_path / "agent", eval_freq=128, n_eval_episodes=1)
    meta = json.loads((out / "agent.json").read_text())
    assert meta["residual"]["base"] == "kalman_ou" and meta["residual"]["base_fitted"]["sbp"]["tau_h"] > 0
    pol = residual_policy(load_agent(out), env, name="res")
    assert meta["residual"]["ablation"] == pol.core.ablation == "shuffled_features"  # trained and run alike
    log = rollout(pol, {**env, "split": "test"}, seed=0, policy_name="res")
    assert len(log) == 120 and log["cuff"].any()
    # a different train split fits the base differently: refused
    from bprl.features.replay_set import write_replay_set

    tables = synthetic_replay_tables(n_subjects=6, n_steps=120, seed=8)  # those of protocol_env_spec
    other = tmp_path / "rs2"
    write_replay_set(
        other, tables, dict(zip(sorted(tables), ["val"] + ["train"] * 4 + ["test"], strict=True))
    )
    with pytest.raises(ConfigError, match="fits differently"):
        residual_policy(load_agent(out), {**env, "replay_set": str(other)})


def test_reference_never_leaks_into_the_residual_observation():
    """Changing the reference everywhere except where cuff readings were taken leaves every
    observation of the residual env unchanged (env fields, the v1 fields and the base's belief),
    with a paced budget and a two-segment subject."""
    from bprl.features.replay_set import concat_records

    t = synthetic_replay_tables(n_subjects=6, n_steps=120, seed=12)
    joined = concat_records([t["s004"], t["s005"]])
    joined["subject_id"] = "j"
    train_tables = {k: t[k] for k in ("s000", "s001", "s002", "s003")}
    kw = {**KW, "split": None, "cuff": {"budget_per_h": 6.0, "duration_s": 45.0}}
    base = _base("kalman_ou", BPCalibrationEnv(tables=train_tables, **kw))

    def episode(table):
        import copy

        env = ResidualCalibrationEnv(BPCalibrationEnv(tables={"j": table}, **kw), copy.deepcopy(base))
        obs, _ = env.reset(seed=3, options={"whole_record": True})
        seen, cuffs, done = [obs], [], False
        while not done:
            obs, _, _, done, info = env.step(np.array([0.3, -0.2, 1.0], np.float32))
            seen.append(obs)
            if info["cuff"]:
                cuffs.append(info["step"])
        return np.array(seen), cuffs

    obs_a, cuffs = episode(joined)
    assert len(cuffs) >= 4
    protected = {k for c in cuffs for k in (c, c - 1)}
    changed = joined.copy()
    rows = np.array([i not in protected for i in range(len(changed))])
    rng = np.random.default_rng(0)
    changed.loc[rows, "ref_sbp_mmhg"] = rng.uniform(60, 220, rows.sum())
    changed.loc[rows, "ref_dbp_mmhg"] = rng.uniform(30, 130, rows.sum())
    obs_b, cuffs_b = episode(changed)
    assert cuffs_b == cuffs
    np.testing.assert_array_equal(obs_a, obs_b)


def test_safety_check_counts_subjects_where_the_agent_is_worse_than_its_base(envs, tmp_path):
    from bprl.evaluation import base_safety
    from bprl.report import write_report

    train, test = envs
    base_log = rollout(_base("kalman_ou", train), test, seed=1, policy_name="kalman_ou")
    same = rollout(
        ResidualPolicy(Constant([0, 0, -1.0]), _base("kalman_ou", train)), test, seed=1, policy_name="zero"
    )
    off = rollout(
        ResidualPolicy(Constant([1.0, 1.0, -1.0]), _base("kalman_ou", train)), test, seed=1, policy_name="off"
    )
    for log in (same, off):
        log["base_policy"] = pd.array(["kalman_ou"] * len(log), dtype="string")
    logs = pd.concat([base_log, same, off], ignore_index=True)
    s = base_safety(logs).set_index("policy")
    assert s.loc["zero", "n_subjects"] == 3 and s.loc["zero", "n_worse_sbp"] == 0
    assert s.loc["zero", "worst_ratio_sbp"] == pytest.approx(1.0)
    assert s.loc["off", "n_worse_sbp"] == 3 and s.loc["off", "worst_ratio_sbp"] > 1.1  # +10 mmHg everywhere
    assert len(s.loc["off", "worse_subjects"].split(",")) == 3
    # the paired mean difference: 0 for the zero residual, clearly positive for the offset one
    assert s.loc["zero", ["sbp_diff_mmhg", "sbp_diff_lo", "sbp_diff_hi"]].tolist() == [0.0, 0.0, 0.0]
    assert 0 < s.loc["off", "sbp_diff_lo"] <= s.loc["off", "sbp_diff_mmhg"] <= s.loc["off", "sbp_diff_hi"]
    assert base_safety(base_log).empty  # no residual agent: nothing to check
    # in a cuff-rate sweep the base at the agent's rate is the reference (ppo@1 against kalman_ou@1)
    swept = logs.copy()
    swept["policy"] = swept["policy"].astype(str) + "@1"
    s_swept = base_safety(swept).set_index("policy")
    assert s_swept.loc["off@1", "base_policy"] == "kalman_ou@1" and s_swept.loc["off@1", "n_worse_sbp"] == 3
    assert s_swept.loc["zero@1", "n_worse_sbp"] == 0
    write_report(tmp_path, logs, n_resamples=20)
    report = (tmp_path / "report.md").read_text()
    assert "Residual agents against their base rule" in report and "Agent − base SBP" in report


class Recorder:
    """A stand-in agent with a zero residual that keeps every observation it is shown."""

    def __init__(self):
        self.seen = []

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        self.seen.append(np.array(obs))
        return np.array([0.0, 0.0, -1.0], np.float32), state


def _seen(envs, ablation, seed=0):
    train, test = envs
    agent = Recorder()
    log = rollout(
        ResidualPolicy(agent, _base("kalman_ou", train), ablation=ablation, seed=seed), test, seed=3
    )
    return np.stack(agent.seen), log


def test_ablations_change_only_the_feature_inputs_and_not_the_base_rule(envs):
    from bprl.envs import STATE_FIELDS

    n_state = len(STATE_FIELDS)
    plain, log = _seen(envs, "none")
    n_feat = plain.shape[1] - n_state - len(BELIEF_FIELDS)  # 2F: feature values and validity flags
    changes = [n_feat + STATE_FIELDS.index(f) for f in ("dpat_ms", "dhr_bpm")]
    rest = [i for i in range(plain.shape[1]) if i >= n_feat and i not in changes]
    assert np.abs(plain[:, changes]).max() > 0  # the changes do carry something here

    dropped, log_dropped = _seen(envs, "no_feature_changes")
    assert (dropped[:, changes] == 0).all()
    np.testing.assert_array_equal(dropped[:, :n_feat], plain[:, :n_feat])
    np.testing.assert_array_equal(dropped[:, rest], plain[:, rest])

    shuffled, log_shuffled = _seen(envs, "shuffled_features")
    cols = list(range(n_feat)) + changes
    np.testing.assert_array_equal(shuffled[:, rest], plain[:, rest])  # state and belief untouched
    moved = (shuffled[:, cols] != plain[:, cols]).any(axis=1)
    assert moved.mean() > 0.5  # most steps see another step's features
    # every shown feature row is one that occurred at this or an earlier step
    for t in (10, 200, len(plain) - 1):
        assert (plain[: t + 1, cols] == shuffled[t, cols]).all(axis=1).any()
    # the ablation changes what the agent sees, never what the base rule does
    pd.testing.assert_frame_equal(log, log_dropped)
    pd.testing.assert_frame_equal(log, log_shuffled)
    # the draws follow the seed
    again, _ = _seen(envs, "shuffled_features")
    np.testing.assert_array_equal(again, shuffled)
    other, _ = _seen(envs, "shuffled_features", seed=1)
    assert not np.array_equal(other, shuffled)


def test_an_unknown_ablation_is_refused(envs):
    train, _ = envs
    with pytest.raises(ConfigError, match="ablation"):
        ResidualPolicy(Constant([0, 0, 0]), _base("kalman_ou", train), ablation="no_pat")


@pytest.mark.parametrize("ablation", ["no_feature_changes", "shuffled_features"])
def test_the_ablated_wrapper_env_passes_the_checkers(envs, ablation):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    train, _ = envs
    env = ResidualCalibrationEnv(
        BPCalibrationEnv(data=train.data, **KW), _base("kalman_ou", train), ablation=ablation
    )
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)


def test_a_residual_agent_names_the_experiment_policy_that_runs_its_base():
    """The safety table pairs an agent with its base's policy: ``ppo_residual_fk`` (residual on
    feature_correction over kalman_ou) with ``feature_kalman_ou``; an agent on ``kalman_ou`` with the
    policy of that name (no label needed); a classical rule has no base."""
    from pathlib import Path

    from bprl.experiments import load_experiment
    from bprl.experiments.stages import _residual_base_label

    exp = load_experiment(Path(__file__).resolve().parents[1] / "experiments" / "residual_events.yaml")
    by_label = {p.label: p for p in exp.config.policies}
    assert _residual_base_label(exp, by_label["ppo_residual_fk"]) == "feature_kalman_ou"
    assert _residual_base_label(exp, by_label["ppo_residual"]) is None
    assert _residual_base_label(exp, by_label["kalman_ou"]) is None
