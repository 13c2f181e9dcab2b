"""The cuff in atrial fibrillation: a larger reading error and a failure probability that scale with a
step's AF share, identical in the single and the vector environment, and no change without AF."""

from __future__ import annotations

import numpy as np
import pytest

from bprl.envs import synthetic_replay_tables
from bprl.envs.calibration_env import BPCalibrationEnv
from bprl.envs.cuff import CuffModel
from bprl.envs.replay_arrays import build_replay_arrays
from bprl.envs.vector_env import BPCalibrationVectorEnv


def _af_tables(af: float = 1.0, n_steps: int = 200) -> dict:
    """Synthetic tables; subject s001 in AF on its second half (af_share = ``af`` there), s000 never."""
    t = synthetic_replay_tables(n_subjects=3, n_steps=n_steps, seed=4)
    for sid, df in t.items():
        share = np.zeros(len(df))
        if sid == "s001":
            share[len(df) // 2 :] = af
        t[sid] = df.assign(af_share=share)
    return t


def _readings(env: BPCalibrationEnv, sid: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ask for a reading at every step of subject ``sid``'s whole record: (reading SBP - cuff reference
    SBP, failed flag) per step."""
    env.reset(seed=seed, options={"subject_id": sid, "whole_record": True})
    i = env.data.subject_ids.index(sid)
    err, failed = [], []
    done = False
    t = 0
    while not done:
        _, _, _, done, info = env.step(1)
        failed.append(bool(info["cuff_failed"]))
        reading = info["cuff_sbp_mmhg"]
        err.append(np.nan if reading is None else reading - env.data.cuff_ref[i, t, 0])
        t += 1
    return np.array(err), np.array(failed)


def test_reading_error_and_failures_grow_in_af():
    data = build_replay_arrays(_af_tables())
    cuff = CuffModel(af_sd_sbp_mmhg=5.0, af_sd_dbp_mmhg=6.0, af_failure_prob=0.05)  # envs/rhythm.yaml
    env = BPCalibrationEnv(data=data, action_type="discrete", recalibrate_on_cuff=False, cuff=cuff)
    errs, fails = [], []
    for seed in range(40):
        e, f = _readings(env, "s001", seed)
        errs.append(e)
        fails.append(f)
    err, fail = np.stack(errs), np.stack(fails)
    half = err.shape[1] // 2
    sinus, af = err[:, :half], err[:, half:]
    ok_ref = np.isfinite(data.cuff_ref[1, : err.shape[1], 0])
    sd_sinus = np.nanstd(sinus[:, ok_ref[:half]])
    sd_af = np.nanstd(af[:, ok_ref[half:]])
    expect = cuff.reading_sd(np.array([0.0, 1.0]))[:, 0]
    assert sd_sinus == pytest.approx(expect[0], rel=0.05)
    assert sd_af == pytest.approx(expect[1], rel=0.05)
    # failures only in AF, at about af_failure_prob, beyond the steps without a reference
    assert not fail[:, :half][:, ok_ref[:half]].any()
    rate = fail[:, half:][:, ok_ref[half:]].mean()
    assert rate == pytest.approx(cuff.af_failure_prob, abs=0.015)
    # the default cuff (bprl/BPCalibration-v1 as it was) ignores rhythm
    assert CuffModel().reading_sd(np.array([1.0])).tolist() == [[5.0, 4.0]]


def test_no_af_no_change():
    """Without AF (no af_share column, or a subject never in AF) the episodes draw nothing more:
    readings are those of a cuff that ignores rhythm."""
    plain = synthetic_replay_tables(n_subjects=3, n_steps=120, seed=4)
    for tables, sid in ((plain, "s001"), (_af_tables(n_steps=120), "s000")):
        data = build_replay_arrays(tables)
        a = BPCalibrationEnv(data=data, action_type="discrete")
        b = BPCalibrationEnv(
            data=data,
            action_type="discrete",
            cuff={"af_sd_sbp_mmhg": 0.0, "af_sd_dbp_mmhg": 0.0, "af_failure_prob": 0.0},
        )
        ea, fa = _readings(a, sid, 3)
        eb, fb = _readings(b, sid, 3)
        np.testing.assert_array_equal(ea, eb)
        np.testing.assert_array_equal(fa, fb)
        assert not fa[np.isfinite(data.cuff_ref[data.subject_ids.index(sid), : len(fa), 0])].any()


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_vector_env_equals_single_envs_in_af(action_type):
    """Same seeds and actions -> bit-identical observations, rewards and failed readings with AF."""
    data = build_replay_arrays(_af_tables(af=0.8, n_steps=60))
    n = 4
    kw = {
        "start": "random",
        "max_steps": 30,
        "cuff": {"af_sd_sbp_mmhg": 5.0, "af_sd_dbp_mmhg": 6.0, "af_failure_prob": 0.05},
    }
    venv = BPCalibrationVectorEnv(n, data=data, action_type=action_type, **kw)
    envs = [BPCalibrationEnv(data=data, action_type=action_type, **kw) for _ in range(n)]
    obs_v, _ = venv.reset(seed=5)
    obs_s = np.stack([e.reset(seed=5 + i)[0] for i, e in enumerate(envs)])
    np.testing.assert_array_equal(obs_v, obs_s)
    rng = np.random.default_rng(1)
    autoreset = [False] * n
    n_failed = 0
    for _ in range(150):
        acts = (
            rng.integers(0, 6, n)
            if action_type == "discrete"
            else rng.uniform(-1, 1, (n, 5)).astype(np.float32)
        )
        if action_type == "discrete":
            acts = np.where(rng.random(n) < 0.5, 1, acts)  # many cuff requests
        else:
            acts[:, 4] = np.where(rng.random(n) < 0.5, 1.0, acts[:, 4])
        obs_v, rew_v, _, trunc_v, info_v = venv.step(acts)
        rows, failed = [], []
        for i, e in enumerate(envs):
            if autoreset[i]:
                rows.append((e.reset()[0], 0.0, False))
                failed.append(False)
            else:
                o, r, _, tr, info = e.step(acts[i])
                rows.append((o, r, tr))
                failed.append(bool(info["cuff_failed"]))
            autoreset[i] = rows[-1][2]
        np.testing.assert_array_equal(obs_v, np.stack([r[0] for r in rows]))
        np.testing.assert_array_equal(rew_v, np.array([r[1] for r in rows]))
        np.testing.assert_array_equal(trunc_v, np.array([r[2] for r in rows]))
        np.testing.assert_array_equal(np.asarray(info_v["cuff_failed"], bool), np.array(failed))
        n_failed += sum(failed)
    assert n_failed > 0


def test_rollout_logs_rhythm_and_the_report_stratifies_by_it(tmp_path):
    from bprl import evaluation as ev
    from bprl import report
    from bprl.policies import make_calibrator, rollout

    data = build_replay_arrays(_af_tables(n_steps=120))
    env = BPCalibrationEnv(data=data, action_type="discrete")
    log = rollout(make_calibrator("periodic", period_min=10.0), env, seed=0)
    af = log.set_index("subject_id")["af_share"]
    assert (af.loc["s001"].to_numpy()[60:] == 1.0).all() and (af.loc["s000"] == 0.0).all()
    by = ev.evaluate_rhythm(ev.check_episode_log(log)).set_index("rhythm")
    assert by.loc["AF", "n_steps"] == 60 and by.loc["non-AF", "n_steps"] == len(log) - 60
    err = (log["corr_sbp_mmhg"] - log["ref_sbp_mmhg"]).to_numpy()
    in_af = log["af_share"].to_numpy() >= 0.5
    assert by.loc["AF", "sbp_mae_mmhg"] == pytest.approx(np.nanmean(np.abs(err[in_af])))
    html, _ = report.write_report(tmp_path, log, n_resamples=50)
    page = html.read_text(encoding="utf-8")
    assert "Error by rhythm" in page and "AF in 16.7 % of the test steps, in 1 of 3 subjects" in page
    # tables without rhythm columns: NaN af_share, no rhythm section
    plain = build_replay_arrays(synthetic_replay_tables(n_subjects=2, n_steps=60, seed=1))
    log2 = rollout(make_calibrator("periodic", period_min=10.0), BPCalibrationEnv(data=plain), seed=0)
    assert log2["af_share"].isna().all() and ev.evaluate_rhythm(ev.check_episode_log(log2)).empty
