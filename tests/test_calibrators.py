"""Tests of the classical calibrators, the Policy protocol and rollout (bprl.policies), and the old bprl.calibrators shim."""

from __future__ import annotations

import importlib
import math
import sys

import numpy as np
import pandas as pd
import pytest

from bprl.envs import BPCalibrationEnv, build_replay_arrays, synthetic_replay_tables
from bprl.errors import ConfigError
from bprl.policies import (
    CALIBRATORS,
    KalmanCalibrator,
    Policy,
    fit_calibrator,
    make_calibrator,
    rollout,
)
from bprl.schemas import EPISODE_LOG_COLUMNS


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """Six synthetic subjects of 120 steps (1 h) with per-subject bias, drift and NaN gaps."""
    return synthetic_replay_tables(n_subjects=6, n_steps=120, seed=3)


@pytest.fixture(scope="module")
def clean_tables() -> dict[str, pd.DataFrame]:
    """Like ``tables`` but without reference gaps, so every cuff request succeeds."""
    return synthetic_replay_tables(n_subjects=3, n_steps=100, seed=5, gap_share=0.0, ref_gap_steps=0)


def _mae(log: pd.DataFrame) -> float:
    m = log.dropna(subset=["ref_sbp_mmhg", "ref_dbp_mmhg"])
    return float(
        ((m.corr_sbp_mmhg - m.ref_sbp_mmhg).abs() + (m.corr_dbp_mmhg - m.ref_dbp_mmhg).abs()).mean() / 2
    )


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
@pytest.mark.parametrize("name", sorted(CALIBRATORS))
def test_rollout_log_schema_and_determinism(tables, name, action_type):
    env = BPCalibrationEnv(tables=tables, action_type=action_type)
    train = BPCalibrationEnv(tables=tables, subject_ids=["s003", "s004"], action_type=action_type)

    def made():  # fitted on s003/s004, run on s001/s002
        pol = make_calibrator(name, action_type=action_type)
        fit_calibrator(pol, train)
        return pol

    pol = made()
    assert isinstance(pol, Policy)
    a = rollout(pol, env, ["s001", "s002"], seed=4, policy_name=f"{name}-x")
    written = {**EPISODE_LOG_COLUMNS, "cuff_refused": "bool", "segment": "int64", "af_share": "float64"}
    assert list(a.columns) == list(written)
    assert {c: str(t) for c, t in a.dtypes.items()} == {
        c: str(pd.Series([], dtype=t).dtype) for c, t in written.items()
    }
    assert (
        len(a) == 240
        and (a["policy"] == f"{name}-x").all()
        and a["episode"].tolist() == [0] * 120 + [1] * 120
    )
    assert a["step"].tolist() == list(range(120)) * 2
    b = rollout(made(), env, ["s001", "s002"], seed=4, policy_name=f"{name}-x")
    pd.testing.assert_frame_equal(a, b)
    # an episode depends on (seed, subject) only, not on which other subjects run
    c = rollout(made(), env, ["s002"], seed=4, policy_name=f"{name}-x")
    pd.testing.assert_frame_equal(
        a[a.subject_id == "s002"].drop(columns="episode").reset_index(drop=True), c.drop(columns="episode")
    )
    if name not in ("none", "oracle"):
        assert a["cuff"].any()
        d = rollout(made(), env, ["s001", "s002"], seed=5)
        assert not np.allclose(
            a["cuff_sbp_mmhg"].dropna().to_numpy()[:3], d["cuff_sbp_mmhg"].dropna().to_numpy()[:3]
        )
    # cuff readings appear exactly on cuff rows that succeeded
    assert a.loc[~a["cuff"], "cuff_sbp_mmhg"].isna().all()


@pytest.mark.parametrize("period_min", [10.0, 25.0])
def test_periodic_uses_the_cuff_count_its_period_implies(clean_tables, period_min):
    env = BPCalibrationEnv(tables=clean_tables)
    log = rollout(make_calibrator("periodic", period_min=period_min), env, seed=0)
    for _sid, ep in log.groupby("subject_id"):
        minutes = len(ep) * 0.5  # 30-s steps
        assert ep["cuff"].sum() == math.ceil(minutes / period_min)
        steps = np.flatnonzero(ep["cuff"].to_numpy())
        assert steps[0] == 0 and set(np.diff(steps)) == {int(period_min * 2)}


def test_budget_zero_with_calibrating_policy_is_an_error(tables):
    env = BPCalibrationEnv(tables=tables, cuff={"budget": 0})
    with pytest.raises(ConfigError, match="budget is 0"):
        rollout(make_calibrator("periodic"), env, ["s000"], seed=0)
    log = rollout(make_calibrator("none"), env, ["s000"], seed=0)  # needs no cuff: fine
    assert not log["cuff"].any()


def test_budget_limits_requests(tables):
    env = BPCalibrationEnv(tables=tables, cuff={"budget": 2})
    log = rollout(make_calibrator("periodic", period_min=5.0), env, ["s000", "s001"], seed=0)
    assert log.groupby("subject_id")["cuff"].sum().tolist() == [2, 2]


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_kalman_beats_no_calibration_on_biased_data(action_type):
    tabs = synthetic_replay_tables(
        n_subjects=6, n_steps=160, seed=11, bias_sd_mmhg=12.0, drift_sd_mmhg_per_h=6.0
    )
    env = BPCalibrationEnv(tables=tabs, action_type=action_type)
    none = rollout(make_calibrator("none", action_type=action_type), env, seed=1)
    kal = rollout(make_calibrator("kalman", action_type=action_type), env, seed=1)
    assert _mae(kal) < 0.6 * _mae(none)
    # the tracker also uses fewer readings than recalibrating every 10 minutes
    per = rollout(make_calibrator("periodic", period_min=10.0, action_type=action_type), env, seed=1)
    assert kal["cuff"].sum() < per["cuff"].sum()


def test_oracle_is_near_zero_error(tables):
    """Upper bound: with offsets free to move (continuous, large steps) the oracle's error vanishes."""
    env = BPCalibrationEnv(tables=tables, action_type="continuous", max_offset_step_mmhg=80.0)
    oracle = make_calibrator("oracle", action_type="continuous")  # adopts the env's 80 mmHg step
    log = rollout(oracle, env, seed=0)
    assert _mae(log) < 0.05 and not log["cuff"].any()
    none = rollout(make_calibrator("none", action_type="continuous"), env, seed=0)
    assert _mae(none) > 3.0
    unbound = make_calibrator("oracle")
    with pytest.raises(ConfigError, match="bind"):
        unbound.predict(env.reset(seed=0)[0])


def test_make_calibrator_errors():
    with pytest.raises(ConfigError, match=r"unknown name 'pid'.*kalman.*periodic"):
        make_calibrator("pid")
    with pytest.raises(ConfigError, match="period_min"):
        make_calibrator("periodic", period_min=0)
    with pytest.raises(ConfigError, match="bad parameters"):
        make_calibrator("periodic", every=3)
    with pytest.raises(ConfigError, match="action_type"):
        make_calibrator("kalman", action_type="hybrid")


def test_calibrator_for_the_other_action_type_is_a_clear_error(tables):
    env = BPCalibrationEnv(tables=tables, action_type="continuous")
    with pytest.raises(ConfigError, match=r"'discrete' actions.*'continuous'"):
        rollout(make_calibrator("periodic"), env, ["s000"], seed=0)


def test_batched_predict_equals_per_env_predict_and_state_resets(tables):
    """Calibrators work on vector-env batches; recurrent state rows are independent and reset on episode_start."""
    from bprl.envs import BPCalibrationVectorEnv

    data = build_replay_arrays(tables)
    n = 3
    venv = BPCalibrationVectorEnv(n, data=data, max_steps=40)
    envs = [BPCalibrationEnv(data=data, max_steps=40) for _ in range(n)]
    kal_v = KalmanCalibrator(min_interval_min=1.0)
    kals = [KalmanCalibrator(min_interval_min=1.0) for _ in range(n)]
    obs_v, _ = venv.reset(seed=0)
    obs_s = [e.reset(seed=i)[0] for i, e in enumerate(envs)]
    state_v, states = None, [None] * n
    start = np.ones(n, bool)
    pending = np.zeros(n, bool)  # truncated last step: the next step resets (next-step autoreset)
    n_cuffs = 0
    for _ in range(90):
        act_v, state_v = kal_v.predict(obs_v, state_v, start)
        acts = []
        for i in range(n):
            a, states[i] = kals[i].predict(obs_s[i], states[i], start[i : i + 1])
            acts.append(a)
        np.testing.assert_array_equal(act_v, np.array(acts))
        np.testing.assert_array_equal(state_v, np.stack(states))
        n_cuffs += int((act_v == 1).sum())
        obs_v, _, _, trunc_v, _ = venv.step(act_v)
        for i, e in enumerate(envs):
            obs_s[i] = e.reset()[0] if pending[i] else e.step(acts[i])[0]
        np.testing.assert_array_equal(obs_v, np.stack(obs_s))
        start = pending.copy()
        pending = trunc_v.copy()
    assert n_cuffs > 2 * n


class _RecordingPolicy:
    """A recurrent-style policy that records what rollout passes it."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[bool, object]] = []

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        self.calls.append((bool(np.asarray(episode_start).reshape(-1)[0]), state))
        new_state = 0 if episode_start[0] else state + 1
        return 0, new_state


def test_rollout_passes_state_and_episode_start(tables):
    pol = _RecordingPolicy()
    rollout(pol, BPCalibrationEnv(tables=tables), ["s000", "s003"], seed=0)
    starts = [c[0] for c in pol.calls]
    assert len(starts) == 240 and starts[0] and starts[120] and sum(starts) == 2
    states = [c[1] for c in pol.calls]
    assert states[0] is None and states[1] == 0 and states[119] == 118 and states[120] is None


def test_sb3_model_satisfies_policy_protocol(tables):
    from stable_baselines3 import DQN

    env = BPCalibrationEnv(tables=tables)
    model = DQN("MlpPolicy", env, seed=0, learning_starts=0, buffer_size=100, device="cpu")
    assert isinstance(model, Policy) or hasattr(model, "predict")
    model.name = "dqn-untrained"
    log = rollout(model, env, ["s000"], seed=0)
    assert len(log) == 120 and (log["policy"] == "dqn-untrained").all()


def test_rollout_from_spec(tables, tmp_path):
    from bprl.features.replay_set import write_replay_set

    splits = {"s000": "train", "s001": "train", "s002": "val", "s003": "test", "s004": "train", "s005": "val"}
    write_replay_set(tmp_path, tables, splits)
    spec = {"id": "bprl/BPCalibration-v1", "replay_set": str(tmp_path), "split": "test"}
    log = rollout(make_calibrator("one_shot"), spec, ["s003", "s000"], seed=2)
    assert log["subject_id"].unique().tolist() == ["s003", "s000"]
    assert log.groupby("subject_id")["cuff"].sum().min() >= 1


def test_old_module_warns_and_reexports(monkeypatch):
    """``bprl.calibrators`` is a deprecation shim: it warns and hands out the very same objects."""
    import bprl.policies as new

    monkeypatch.delitem(sys.modules, "bprl.calibrators", raising=False)
    with pytest.warns(
        DeprecationWarning, match=r"bprl\.calibrators is deprecated; import from bprl\.policies"
    ):
        old = importlib.import_module("bprl.calibrators")
    for name in old.__all__:
        assert getattr(old, name) is getattr(new, name), name
    # every name bprl, tests and benchmarks import from the old module today
    for name in ("CALIBRATORS", "KalmanCalibrator", "Policy", "make_calibrator", "rollout"):
        assert name in old.__all__
    assert old._episode_seed is new.episode_seed
