"""Domain randomisation of training episodes (bprl.envs.randomization)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import protocol_env_spec

from bprl.envs import BPCalibrationEnv, synthetic_replay_tables
from bprl.envs.observation import FEATURE_NORMALIZATION
from bprl.envs.randomization import DomainRandomization, DomainRandomizationSpec
from bprl.errors import ConfigError

KW = {
    "action_type": "continuous",
    "split": None,
    "features": ("pat_foot_ms", "pat_peak_ms", "hr_bpm", "sqi_ppg"),
    "cuff": {"budget_per_h": 2.0},
}
STRONG = {"pat_steps_per_h": 3.0, "pat_step_sd_ms": 30.0, "dropouts_per_h": 2.0}
ZERO = {
    "pat_steps_per_h": 0.0,
    "gain_range": 0.0,
    "offset_sd_mmhg": 0.0,
    "noise_sd_mmhg": 0.0,
    "dropouts_per_h": 0.0,
}


@pytest.fixture(scope="module")
def tables():
    return synthetic_replay_tables(n_subjects=3, n_steps=480, seed=4)  # 4 h of 30-s windows


def _episode(env, seed=0, actions=None):
    obs, info = env.reset(seed=seed, options={"subject_id": "s001", "whole_record": True})
    seen, infos, rewards, done, k = [obs], [info], [], False, 0
    while not done:
        a = np.array([0.0, 0.0, 0.0, 0.0, 1.0 if k % 120 == 0 else -1.0], np.float32)
        obs, r, _, done, info = env.step(a if actions is None else actions[k])
        seen.append(obs), infos.append(info), rewards.append(r)
        k += 1
    return np.array(seen), infos, np.array(rewards)


def test_zero_randomization_is_the_plain_env_and_the_env_draws_are_untouched(tables):
    plain = _episode(BPCalibrationEnv(tables=tables, **KW))
    same = _episode(DomainRandomization(BPCalibrationEnv(tables=tables, **KW), ZERO))
    np.testing.assert_array_equal(plain[0], same[0])
    np.testing.assert_array_equal(plain[2], same[2])


def test_randomization_perturbs_what_the_sensors_report_never_the_reference_or_the_cuff(tables):
    obs_p, info_p, _ = _episode(BPCalibrationEnv(tables=tables, **KW))
    env = DomainRandomization(BPCalibrationEnv(tables=tables, **KW), STRONG)
    obs_r, info_r, _ = _episode(env)
    drawn = info_r[0]["randomization"]
    assert len(drawn["pat_step_h"]) >= 2 and len(drawn["dropout_start_h"]) >= 1  # 4 h at 3 and 2 per h
    for key in ("ref_sbp_mmhg", "ref_dbp_mmhg", "cuff", "cuff_sbp_mmhg", "cuff_dbp_mmhg"):
        assert [i[key] for i in info_p[1:]] == [i[key] for i in info_r[1:]], key
    est_p = np.array([np.nan if i["est_sbp_mmhg"] is None else i["est_sbp_mmhg"] for i in info_p[1:]])
    est_r = np.array([np.nan if i["est_sbp_mmhg"] is None else i["est_sbp_mmhg"] for i in info_r[1:]])
    assert np.isnan(est_r).sum() > np.isnan(est_p).sum()  # dropouts
    ok = np.isfinite(est_p) & np.isfinite(est_r)
    assert np.abs(est_r[ok] - est_p[ok]).mean() > 1.0
    # the PAT features move by the timing offset in force (normalised), the others do not
    # observation k shows row min(k, n - 1); row k's window ends at info[k + 1]["t_s"] (30-s windows)
    row_h = (np.array([i["t_s"] for i in info_r[1:]]) - info_r[1]["t_s"] + 30.0) / 3600.0
    t_h = np.r_[row_h, row_h[-1]]
    shift = sum(d * (t_h >= h) for h, d in zip(drawn["pat_step_h"], drawn["pat_step_ms"], strict=True))
    feats = KW["features"]
    for j, f in enumerate(feats):
        valid = (obs_p[:, len(feats) + j] > 0) & (np.abs(obs_p[:, j]) < 9)
        want = shift / FEATURE_NORMALIZATION[f][1] if f.startswith("pat_") else 0.0
        np.testing.assert_allclose(
            (obs_r[:, j] - obs_p[:, j])[valid], np.broadcast_to(want, t_h.shape)[valid], atol=1e-5
        )


def test_draws_follow_the_seed_and_the_wrapper_passes_the_checkers(tables):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    a = _episode(DomainRandomization(BPCalibrationEnv(tables=tables, **KW), STRONG), seed=5)
    b = _episode(DomainRandomization(BPCalibrationEnv(tables=tables, **KW), STRONG), seed=5)
    c = _episode(DomainRandomization(BPCalibrationEnv(tables=tables, **KW), STRONG), seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1][0]["randomization"] == b[1][0]["randomization"] != c[1][0]["randomization"]
    env = DomainRandomization(BPCalibrationEnv(tables=tables, **KW), STRONG)
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)


def test_reference_never_leaks_through_the_randomized_observation(tables):
    """Changing the reference everywhere except at the readings leaves every observation unchanged."""
    t = tables["s001"]
    obs_a, infos, _ = _episode(DomainRandomization(BPCalibrationEnv(tables=tables, **KW), STRONG))
    cuffs = [i["step"] for i in infos[1:] if i["cuff"]]
    assert cuffs
    changed = t.copy()
    rows = np.array([i not in {k for c in cuffs for k in (c, c - 1)} for i in range(len(t))])
    changed.loc[rows, "ref_sbp_mmhg"] = np.random.default_rng(0).uniform(60, 220, rows.sum())
    obs_b, _, _ = _episode(
        DomainRandomization(BPCalibrationEnv(tables={**tables, "s001": changed}, **KW), STRONG)
    )
    np.testing.assert_array_equal(obs_a, obs_b)


def test_bad_settings_are_config_errors(tables):
    with pytest.raises(ConfigError, match="gain_range"):
        DomainRandomization(BPCalibrationEnv(tables=tables, **KW), {"gain_range": 1.5})
    with pytest.raises(ConfigError, match="not_a_field"):
        DomainRandomizationSpec.checked(not_a_field=1)


def test_an_agent_trains_with_randomized_episodes_and_records_them(tmp_path):
    import json

    from bprl.policies.agents import train_agent

    env = protocol_env_spec(tmp_path, budget_per_h=2.0)
    entry = {
        "n_timesteps": 256,
        "policy": "MlpPolicy",
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 1,
        "domain_randomization": {"pat_step_sd_ms": 40.0},
    }
    out = train_agent(env, {"algo": "ppo", "default": entry}, seed=0, out_dir=tmp_path / "a", eval_freq=128)
    meta = json.loads((out / "agent.json").read_text())
    assert meta["domain_randomization"]["pat_step_sd_ms"] == 40.0
    with pytest.raises(ConfigError, match="vec_env: dummy"):
        train_agent(
            env,
            {"algo": "ppo", "default": {**entry, "vec_env": "batched"}},
            seed=0,
            out_dir=tmp_path / "b",
        )
