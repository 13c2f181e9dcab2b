"""Tests of the calibration environments (bprl.envs) on small synthetic replay sets."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import bprl
from bprl.envs import (
    DEFAULT_DATA,
    ENV_ID,
    ENV_ID_CONTINUOUS,
    N_STATE,
    REWARDS,
    BPCalibrationEnv,
    BPCalibrationVectorEnv,
    InvalidActionError,
    build_replay_arrays,
    decode_obs,
    make_env_from_spec,
    synthetic_replay_tables,
)
from bprl.envs.registration import ENTRY_POINT, VECTOR_ENTRY_POINT
from bprl.errors import BprlError, ConfigError
from bprl.features.replay_set import read_replay_set, write_replay_set

REPO = Path(__file__).resolve().parents[1]
IDS = (ENV_ID, ENV_ID_CONTINUOUS)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """Six synthetic subjects of 80 steps (40 min) with biased, drifting estimates and NaN gaps."""
    return synthetic_replay_tables(n_subjects=6, n_steps=80, seed=7)


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory, tables) -> Path:
    """The synthetic tables written as a replay-set folder (4 train, 1 val, 1 test)."""
    out = tmp_path_factory.mktemp("replay")
    splits = dict(zip(sorted(tables), ["train"] * 4 + ["val", "test"], strict=True))
    write_replay_set(out, tables, splits, {"source": "synthetic"})
    return out


def _run(env: gym.Env, actions, seed: int, options=None):
    obs, _ = env.reset(seed=seed, options=options)
    out_obs, rewards, infos = [obs], [], []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out_obs.append(obs)
        rewards.append(r)
        infos.append(info)
        if term or trunc:
            break
    return np.array(out_obs), np.array(rewards), infos


# ------------------------------------------------------------------ registration & checkers
def test_ids_registered_on_import():
    assert bprl.__version__
    for env_id in IDS:
        spec = gym.spec(env_id)
        assert spec.entry_point == "bprl.envs.calibration_env:BPCalibrationEnv" == ENTRY_POINT
        assert spec.vector_entry_point == "bprl.envs.vector_env:BPCalibrationVectorEnv" == VECTOR_ENTRY_POINT


def test_old_module_paths_warn_and_reexport():
    """bprl.env and bprl.vector_env are deprecation shims over bprl.envs (same objects)."""
    import importlib
    import sys

    import bprl.envs as envs

    for name, names in (
        (
            "bprl.env",
            [
                "BPCalibrationEnv",
                "make_env_from_spec",
                "synthetic_replay_tables",
                "REWARDS",
                "InvalidActionError",
            ],
        ),
        ("bprl.vector_env", ["BPCalibrationVectorEnv"]),
    ):
        sys.modules.pop(name, None)
        with pytest.warns(DeprecationWarning, match=f"{name} is deprecated; import from bprl.envs"):
            old = importlib.import_module(name)
        for attr in names:
            assert getattr(old, attr) is getattr(envs, attr)
        assert set(old.__all__) <= set(dir(old))


def test_register_variant_makes_a_new_versioned_id(tables):
    from bprl.envs import register_envs, register_variant

    register_envs()  # idempotent
    register_variant("bprl-test/BPCalibrationSquared-v0", action_type="continuous", reward="squared")
    env = gym.make("bprl-test/BPCalibrationSquared-v0", tables=tables)
    assert env.unwrapped.params.reward == "squared" and env.unwrapped.params.action_type == "continuous"
    venv = gym.make_vec("bprl-test/BPCalibrationSquared-v0", num_envs=2, tables=tables)
    assert isinstance(venv.unwrapped, BPCalibrationVectorEnv)


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_and_sb3_env_checkers(env_id, replay_dir):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = gym.make(env_id, replay_set=str(replay_dir), max_steps=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)  # no checker warning may slip through
        gym_check(env.unwrapped, skip_render_check=True)
        sb3_check(BPCalibrationEnv(replay_set=replay_dir, action_type=env.unwrapped.params.action_type))
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_make_without_kwargs_uses_cached_default(env_id, replay_dir, monkeypatch, tmp_path):
    """gymnasium.make(id) with no kwargs (as rl-zoo calls it) loads the default replay set from the cache."""
    import shutil

    monkeypatch.setenv("BPRL_CACHE_DIR", str(tmp_path))
    shutil.copytree(replay_dir, tmp_path / DEFAULT_DATA["name"])
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["subject_id"] in env.unwrapped.subject_ids
    env.step(env.action_space.sample())


# ----------------------------------------------------------------------- observations
def test_observation_layout_and_no_nan(tables):
    env = BPCalibrationEnv(tables=tables, features=("pat_foot_ms", "hr_bpm", "sqi_ppg"))
    assert env.observation_space.shape == (2 * 3 + N_STATE,)
    obs, _ = env.reset(seed=0, options={"subject_id": "s002", "whole_record": True})
    seen = [obs]
    done = False
    while not done:
        obs, _, _, done, _ = env.step(0)
        seen.append(obs)
    seen = np.array(seen)
    assert np.isfinite(seen).all()
    assert (np.abs(seen) <= 10).all()
    # validity flags are 0 exactly where the table has NaN, and the value is carried meanwhile
    table = tables["s002"]
    flags = seen[:-1, 3]  # flag of pat_foot_ms
    np.testing.assert_array_equal(flags, np.isfinite(table["pat_foot_ms"].to_numpy()).astype(np.float32))
    gaps = np.flatnonzero(flags == 0)
    gaps = gaps[gaps > 0]
    assert len(gaps) > 0
    np.testing.assert_array_equal(seen[gaps, 0], seen[gaps - 1, 0])
    # the decoded estimator SBP is the table's estimate where valid
    s = decode_obs(seen[:-1])
    est = table["est_sbp_mmhg"].to_numpy()
    ok = np.isfinite(est)
    np.testing.assert_allclose(s["est_sbp"][ok], est[ok], atol=1e-3)
    assert (s["est_valid"][~ok] == 0).all()


def test_reference_never_leaks_into_observations(tables):
    """Changing the reference everywhere except where cuff readings were taken leaves every observation unchanged."""
    from bprl.policies import make_calibrator

    sid = "s001"
    env = BPCalibrationEnv(tables=tables, cuff={"duration_s": 45.0})
    policy = make_calibrator("kalman", request_sd_mmhg=4.0, min_interval_min=2.0)

    def episode(env):
        obs, _ = env.reset(seed=11, options={"subject_id": sid, "whole_record": True})
        observations, cuffs, state, start, done = [obs], [], None, True, False
        while not done:
            a, state = policy.predict(obs, state, np.array([start]))
            start = False
            obs, _, _, done, info = env.step(a)
            observations.append(obs)
            if info["cuff"]:
                cuffs.append(info["step"])
        return np.array(observations), cuffs

    obs_a, cuffs = episode(env)
    assert len(cuffs) >= 3
    # the reading at step k uses the 45 s ending at the end of window k: windows k and k-1
    protected = {k for c in cuffs for k in (c, c - 1)}
    changed = dict(tables)
    df = tables[sid].copy()
    rng = np.random.default_rng(0)
    rows = np.array([i not in protected for i in range(len(df))])
    df.loc[rows, "ref_sbp_mmhg"] = rng.uniform(60, 220, rows.sum())
    df.loc[rows, "ref_dbp_mmhg"] = rng.uniform(30, 130, rows.sum())
    changed[sid] = df
    obs_b, cuffs_b = episode(BPCalibrationEnv(tables=changed, cuff={"duration_s": 45.0}))
    assert cuffs_b == cuffs
    np.testing.assert_array_equal(obs_a, obs_b)


# ------------------------------------------------------------------------- dynamics
def test_same_seed_same_episode_and_seed_matters(tables):
    env = BPCalibrationEnv(tables=tables, start="random", max_steps=25)
    acts = np.random.default_rng(1).integers(0, 6, 25)
    o1, r1, i1 = _run(env, acts, seed=5)
    o2, r2, i2 = _run(env, acts, seed=5)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(r1, r2)
    assert i1 == i2
    draws = {
        (BPCalibrationEnv(tables=tables, start="random").reset(seed=s)[1]["subject_id"]) for s in range(12)
    }
    assert len(draws) > 1


def test_cuff_reading_model(tables):
    """A reading = overlap-weighted reference over the cuff interval + seeded N(0, sd) error; recalibrates the offset."""
    sid = "s000"
    table = tables[sid]
    ref = table[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy()
    k = next(i for i in range(5, len(table)) if np.isfinite(ref[i - 1 : i + 1]).all())
    env = BPCalibrationEnv(tables=tables, cuff={"sd_sbp_mmhg": 0.0, "sd_dbp_mmhg": 0.0, "duration_s": 45.0})
    env.reset(seed=0, options={"subject_id": sid, "start_step": k})
    _, r, _, _, info = env.step(1)
    expected = (30.0 * ref[k] + 15.0 * ref[k - 1]) / 45.0
    assert info["cuff"] and not info["cuff_failed"]
    np.testing.assert_allclose([info["cuff_sbp_mmhg"], info["cuff_dbp_mmhg"]], expected, rtol=1e-12)
    # offset recalibrated to the reading: corrected estimate equals the reading at that step
    np.testing.assert_allclose([info["corr_sbp_mmhg"], info["corr_dbp_mmhg"]], expected, rtol=1e-12)
    err = abs(expected[0] - ref[k, 0]) + abs(expected[1] - ref[k, 1])
    assert r == pytest.approx(-0.5 - err / 10.0)
    # with noise: the error SD is near the configured 5 / 4 mmHg over many readings
    noisy = BPCalibrationEnv(tables=tables, cuff={"cost": 0.0})
    errs = []
    for seed in range(60):
        noisy.reset(seed=seed, options={"subject_id": sid, "start_step": k})
        info = noisy.step(1)[4]
        errs.append([info["cuff_sbp_mmhg"] - expected[0], info["cuff_dbp_mmhg"] - expected[1]])
    sd = np.std(errs, axis=0)
    assert 3.5 < sd[0] < 6.5 and 2.8 < sd[1] < 5.2


def test_kalman_recalibration_averages_readings(tables):
    """recalibration="kalman": with q = 0 the offset is the running mean of (reading - estimate);
    with q > 0 a reading long after the last one weighs more (K = P / (P + R), P grown by q dt)."""
    sid = "s000"
    env = BPCalibrationEnv(tables=tables, recalibration="kalman", kalman_q_mmhg2_per_h=0.0)
    env.reset(seed=3, options={"subject_id": sid})
    diffs, offsets = [], []
    while len(diffs) < 6:
        info = env.step(1)[4]
        if info["cuff_sbp_mmhg"] is not None and info["est_sbp_mmhg"] is not None:
            diffs.append(info["cuff_sbp_mmhg"] - info["est_sbp_mmhg"])
            offsets.append(info["offset_sbp_mmhg"])
    assert len(diffs) == 6 and np.std(diffs) > 1.0  # noisy readings, so averaging matters
    np.testing.assert_allclose(offsets, np.cumsum(diffs) / np.arange(1, 7), atol=1e-9)
    # reset mode follows the last reading instead
    reset = BPCalibrationEnv(tables=tables)
    reset.reset(seed=3, options={"subject_id": sid})
    last = None
    for _ in range(env.current_step):
        info = reset.step(1)[4]
        if info["cuff_sbp_mmhg"] is not None and info["est_sbp_mmhg"] is not None:
            last = info
    assert last["offset_sbp_mmhg"] == pytest.approx(last["cuff_sbp_mmhg"] - last["est_sbp_mmhg"])
    # q > 0: a later reading with R = 25 (SD 5), P = R + q dt after the first reading -> K > 1/2
    q_env = BPCalibrationEnv(tables=tables, recalibration="kalman", kalman_q_mmhg2_per_h=25.0)
    q_env.reset(seed=4, options={"subject_id": sid})

    def read() -> dict:
        while True:
            got = q_env.step(1)[4]
            if got["cuff_sbp_mmhg"] is not None and got["est_sbp_mmhg"] is not None:
                return got

    first = read()
    for _ in range(40):
        q_env.step(0)
    second = read()
    dt_h = (second["t_s"] - first["t_s"]) / 3600.0
    assert dt_h > 0.3
    k = (25.0 + 25.0 * dt_h) / (50.0 + 25.0 * dt_h)
    target = second["cuff_sbp_mmhg"] - second["est_sbp_mmhg"]
    assert second["offset_sbp_mmhg"] == pytest.approx(
        first["offset_sbp_mmhg"] + k * (target - first["offset_sbp_mmhg"])
    )
    with pytest.raises(ConfigError, match="recalibration"):
        BPCalibrationEnv(tables=tables, recalibration="average")
    with pytest.raises(ConfigError, match="kalman_q_mmhg2_per_h"):
        BPCalibrationEnv(tables=tables, recalibration="kalman", kalman_q_mmhg2_per_h=-1.0)


def test_cuff_fails_without_reference_and_budget_refuses(tables):
    sid = "s003"
    ref = tables[sid]["ref_sbp_mmhg"].to_numpy()
    gap = next(i for i in range(1, len(ref)) if np.isnan(ref[i - 1 : i + 1]).all())
    env = BPCalibrationEnv(tables=tables, cuff={"budget": 2, "cost": 0.5})
    env.reset(seed=0, options={"subject_id": sid, "start_step": gap})
    obs, r, _, _, info = env.step(1)
    assert info["cuff"] and info["cuff_failed"] and info["cuff_sbp_mmhg"] is None
    assert info["cuffs_used"] == 1 and r <= -0.5  # a failed attempt counts and costs
    s = decode_obs(obs)
    assert s["has_cuff"] == 0 and s["budget_left"] == pytest.approx(0.5)
    env.step(1)
    _, r3, _, _, info3 = env.step(1)
    assert info3["cuff_refused"] and not info3["cuff"] and info3["cuffs_used"] == 2
    assert r3 > -0.5 or math.isnan(ref[gap + 2])  # refused: no cost


@pytest.mark.parametrize("reward", sorted(REWARDS))
def test_rewards_match_their_definition(tables, reward):
    env = BPCalibrationEnv(tables=tables, reward=reward, cuff={"cost": 0.25})
    acts = np.random.default_rng(3).integers(0, 6, 40)
    _, rewards, infos = _run(env, acts, seed=2, options={"subject_id": "s004"})
    for r, i in zip(rewards, infos, strict=True):
        e = np.array(
            [i["corr_sbp_mmhg"] - r for r in (i["ref_sbp_mmhg"],) if r is not None]
            + [i["corr_dbp_mmhg"] - r for r in (i["ref_dbp_mmhg"],) if r is not None]
        )
        pen = {
            "mae": np.abs(e).sum() / 10,
            "squared": (e**2).sum() / 100,
            "aami_band": (np.abs(e) > 5).sum(),
        }[reward]
        assert r == pytest.approx(-pen - 0.25 * i["cuff"])


def test_continuous_actions_adjust_offset_and_gain(tables):
    env = BPCalibrationEnv(tables=tables, action_type="continuous")
    env.reset(seed=0, options={"subject_id": "s000"})
    info = env.step(np.array([1.0, -0.5, 1.0, -1.0, -1.0], np.float32))[4]
    assert info["offset_sbp_mmhg"] == pytest.approx(5.0) and info["offset_dbp_mmhg"] == pytest.approx(-2.5)
    assert info["gain_sbp"] == pytest.approx(1.02) and info["gain_dbp"] == pytest.approx(0.98)
    est = tables["s000"]["est_sbp_mmhg"].iloc[0]
    assert info["corr_sbp_mmhg"] == pytest.approx(1.02 * est + 5.0)
    for _ in range(200):  # offsets stay within their limits
        obs, *_ = env.step(np.array([1.0, 1.0, 1.0, 1.0, -1.0], np.float32))
        if env.current_step >= 79:
            break
    s = decode_obs(obs)
    assert s["offset_sbp"] <= 80 + 1e-3 and s["gain_sbp"] <= 1.5 + 1e-6


def test_episode_end_is_truncation(tables):
    env = BPCalibrationEnv(tables=tables, max_steps=10)
    _, rewards, _ = _run(env, [0] * 50, seed=0, options={"subject_id": "s000"})
    assert len(rewards) == 10
    _, rewards, _ = _run(env, [0] * 500, seed=0, options={"subject_id": "s000", "whole_record": True})
    assert len(rewards) == len(tables["s000"])
    with pytest.raises(ConfigError, match="after the episode ended"):
        env.step(0)


# --------------------------------------------------------------------------- errors
def test_invalid_settings_are_config_errors(tables, replay_dir):
    with pytest.raises(ConfigError, match=r"reward.*'bogus'.*aami_band.*mae.*squared"):
        BPCalibrationEnv(tables=tables, reward="bogus")
    with pytest.raises(ConfigError, match="split 'nonexistent'"):
        BPCalibrationEnv(replay_set=replay_dir, split="nonexistent")
    with pytest.raises(ConfigError, match="features"):
        BPCalibrationEnv(tables=tables, features=("pat_foot_ms", "cardiac_output"))
    with pytest.raises(ConfigError, match=r"cuff\.sd_sbp_mmhg"):
        BPCalibrationEnv(tables=tables, cuff={"sd_sbp_mmhg": -1})
    with pytest.raises(ConfigError, match="cuff: unknown field"):
        BPCalibrationEnv(tables=tables, cuff={"sd": 3})
    with pytest.raises(ConfigError, match="action_type"):
        BPCalibrationEnv(tables=tables, action_type="hybrid")
    with pytest.raises(ConfigError, match="max_steps"):
        BPCalibrationEnv(tables=tables, max_steps=0)
    with pytest.raises(ConfigError, match="subject_id 'nobody'"):
        BPCalibrationEnv(tables=tables).reset(options={"subject_id": "nobody"})
    bad = dict(tables)
    bad["s000"] = tables["s000"].drop(columns=["est_sbp_mmhg"])
    with pytest.raises(BprlError, match=r"s000.*est_sbp_mmhg"):
        BPCalibrationEnv(tables=bad)


def test_empty_split_names_the_split(replay_dir, tmp_path):
    only_train = tmp_path / "rs"
    tabs = synthetic_replay_tables(2, 10, 0)
    write_replay_set(only_train, tabs, dict.fromkeys(tabs, "train"))
    with pytest.raises(ConfigError, match=r"split.*'test'"):
        BPCalibrationEnv(replay_set=only_train, split="test")
    with pytest.raises(ConfigError, match="replay_set"):
        BPCalibrationEnv(replay_set=tmp_path / "missing")


@pytest.mark.parametrize(
    ("action_type", "action"),
    [
        ("discrete", 6),
        ("discrete", -1),
        ("discrete", 1.5),
        ("discrete", "cuff"),
        ("continuous", np.array([0, 0, 0, 0, 1.5], np.float32)),
        ("continuous", np.zeros(4, np.float32)),
        ("continuous", np.array([np.nan, 0, 0, 0, 0], np.float32)),
    ],
)
def test_action_outside_space_is_a_clear_error(tables, action_type, action):
    env = BPCalibrationEnv(tables=tables, action_type=action_type)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="action"):
        env.step(action)
    venv = BPCalibrationVectorEnv(2, tables=tables, action_type=action_type)
    venv.reset(seed=0)
    batch = np.stack([np.asarray(action)] * 2) if not isinstance(action, str) else [action, action]
    with pytest.raises(InvalidActionError):
        venv.step(batch)


# ----------------------------------------------------------------------- env specs
def test_env_specs_in_envs_folder_build(replay_dir, tables, tmp_path):
    files = sorted((REPO / "envs").glob("*.yaml"))
    assert len(files) >= 3
    # replay tables with the rhythm columns (envs/rhythm.yaml observes af_share and ectopic_share)
    rhythm_dir = tmp_path / "rhythm"
    rt = {sid: t.assign(af_share=0.0, ectopic_share=0.0) for sid, t in tables.items()}
    write_replay_set(rhythm_dir, rt, dict(zip(sorted(rt), ["train"] * 4 + ["val", "test"], strict=True)))
    with pytest.raises(BprlError, match=r"missing columns \['af_share', 'ectopic_share'\]"):
        make_env_from_spec(REPO / "envs" / "rhythm.yaml", split="train", replay_set=str(replay_dir))
    for f in files:
        env = make_env_from_spec(f, split="train", replay_set=str(rhythm_dir))
        assert env.subject_ids == ["s000", "s001", "s002", "s003"]
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
    env = make_env_from_spec(
        REPO / "envs" / "budget.yaml", split="test", replay_set=str(replay_dir), cuff={"budget": 3}
    )
    assert env.cuff.budget == 3 and env.cuff.cost == 1.0 and env.subject_ids == ["s005"]


def test_env_spec_validation_names_the_field(replay_dir, tmp_path):
    base = {"id": ENV_ID, "replay_set": str(replay_dir)}
    with pytest.raises(ConfigError, match=r"reward.*'nope'.*valid names"):
        make_env_from_spec({**base, "reward": "nope"})
    with pytest.raises(ConfigError, match=r"reward.*'nope'"):
        make_env_from_spec({**base, "reward": {"name": "nope"}})
    with pytest.raises(ConfigError, match=r"unknown field.*'rewards'"):
        make_env_from_spec({**base, "rewards": "mae"})
    assert make_env_from_spec(base, split="val").subject_ids == ["s004"]
    with pytest.raises(ConfigError, match="subject_ids: empty"):
        make_env_from_spec(base, split="val", subject_ids=[])
    with pytest.raises(ConfigError, match="id"):
        make_env_from_spec({**base, "id": "bprl/Other-v9"})
    with pytest.raises(ConfigError, match=r"actions: unknown field"):
        make_env_from_spec({**base, "actions": {"nudge": 3}})
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("id: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        make_env_from_spec(bad_yaml)
    with pytest.raises(ConfigError, match="not found"):
        make_env_from_spec(tmp_path / "none.yaml")


# ---------------------------------------------------------------------- vector env
@pytest.mark.parametrize(
    ("action_type", "kwargs"),
    [
        ("discrete", {}),
        ("discrete", {"start": "random", "max_steps": 13, "cuff": {"budget": 2}, "reward": "squared"}),
        ("continuous", {"max_steps": 17, "reward": "aami_band", "recalibrate_on_cuff": False}),
        ("continuous", {"start": "random", "max_steps": 9}),
        ("discrete", {"recalibration": "kalman", "start": "random", "max_steps": 40, "cuff": {"budget": 4}}),
        ("continuous", {"recalibration": "kalman", "kalman_q_mmhg2_per_h": 40.0, "max_steps": 23}),
    ],
)
def test_vector_env_equals_n_single_envs(tables, action_type, kwargs):
    """Same seeds and actions -> bit-identical observations, rewards and truncations, through autoresets."""
    data = build_replay_arrays(tables)
    n = 5
    venv = BPCalibrationVectorEnv(n, data=data, action_type=action_type, **kwargs)
    envs = [BPCalibrationEnv(data=data, action_type=action_type, **kwargs) for _ in range(n)]
    obs_v, _ = venv.reset(seed=21)
    obs_s = np.stack([e.reset(seed=21 + i)[0] for i, e in enumerate(envs)])
    np.testing.assert_array_equal(obs_v, obs_s)
    rng = np.random.default_rng(0)
    autoreset = [False] * n
    n_resets = 0
    for _ in range(120):
        if action_type == "discrete":
            acts = rng.integers(0, 6, n)
        else:
            acts = rng.uniform(-1, 1, (n, 5)).astype(np.float32)
        obs_v, rew_v, term_v, trunc_v, _ = venv.step(acts)
        rows = []
        for i, e in enumerate(envs):
            if autoreset[i]:
                rows.append((e.reset()[0], 0.0, False))
                n_resets += 1
            else:
                o, r, _, tr, _ = e.step(acts[i])
                rows.append((o, r, tr))
            autoreset[i] = rows[-1][2]
        np.testing.assert_array_equal(obs_v, np.stack([r[0] for r in rows]))
        np.testing.assert_array_equal(rew_v, np.array([r[1] for r in rows]))
        np.testing.assert_array_equal(trunc_v, np.array([r[2] for r in rows]))
        assert not term_v.any()
    assert n_resets > 0


def test_make_vec_uses_the_batched_vector_env(replay_dir):
    venv = gym.make_vec(ENV_ID, num_envs=3, replay_set=str(replay_dir))
    assert isinstance(venv.unwrapped, BPCalibrationVectorEnv)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, *venv.single_observation_space.shape)
    obs, rew, _, _, info = venv.step(np.array([0, 1, 2]))
    assert venv.observation_space.contains(obs) and rew.shape == (3,)
    assert info["cuff"].tolist() == [False, True, False]


# ------------------------------------------------------------- real pipeline (cohort -> features -> env)
@pytest.mark.slow
def test_default_replay_set_is_built_from_a_virtual_cohort(monkeypatch, tmp_path):
    """With an empty cache, gym.make(id) builds the default set (cohort + features + PatLinearEstimator)."""
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    from bprl.envs import DEFAULT_DATA as data

    monkeypatch.setenv("BPRL_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(data, "subjects", 3)
    monkeypatch.setitem(data, "hours", 0.05)
    env = gym.make(ENV_ID)
    root = tmp_path / data["name"]
    assert (root / "subjects.csv").is_file()
    gym_check(env.unwrapped, skip_render_check=True)
    sb3_check(gym.make(ENV_ID_CONTINUOUS).unwrapped)
    table = read_replay_set(root).table(env.unwrapped.subject_ids[0])
    assert table["est_sbp_mmhg"].notna().mean() > 0.5 and table["ref_sbp_mmhg"].notna().mean() > 0.5
    # a second make reuses the cache (no rebuild: same folder, same modification time)
    mtime = (root / "subjects.csv").stat().st_mtime_ns
    gym.make(ENV_ID_CONTINUOUS)
    assert (root / "subjects.csv").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_env_spec_with_a_cohort_builds_and_caches_its_replay_set(tiny_cohort, monkeypatch, tmp_path):
    """``cohort:`` in a spec: features + PatLinearEstimator once, cached; episodes replay the cohort's subjects."""
    from bprl.policies import make_calibrator, rollout

    monkeypatch.setenv("BPRL_CACHE_DIR", str(tmp_path))
    spec = {"id": ENV_ID, "cohort": str(tiny_cohort), "split": "train"}
    env = make_env_from_spec(spec, split=None)
    assert env.subject_ids and all(s.startswith("v") for s in env.subject_ids)
    built = [p for p in (tmp_path / "replay_sets").iterdir() if not p.name.startswith(".")]
    assert len(built) == 1
    log = rollout(make_calibrator("periodic", period_min=5), env, env.subject_ids[:2], seed=0)
    ok = log.dropna(subset=["ref_sbp_mmhg"])
    assert len(ok) > 0 and log["cuff"].sum() >= 2
    # calibrated error is far below the population estimator's on the same steps
    err_cal = (ok.corr_sbp_mmhg - ok.ref_sbp_mmhg).abs().mean()
    err_raw = (ok.est_sbp_mmhg - ok.ref_sbp_mmhg).abs().mean()
    assert err_cal < err_raw
    mtime = next(built[0].glob("subjects.csv")).stat().st_mtime_ns
    make_env_from_spec(spec, split="train")
    assert next(built[0].glob("subjects.csv")).stat().st_mtime_ns == mtime
