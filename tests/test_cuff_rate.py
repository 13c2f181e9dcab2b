"""The cuff-rate sweep: error-against-rate curves, paired comparison at equal rate, the sweep
settings of the experiment file, its rollout labels and logs, and its part of the report.

The evaluation tests use a hand-built episode log whose achieved cuffs per hour and per-subject
MAE are known exactly, so every number checked is computed here independently of the library.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bprl import evaluation as ev
from bprl import experiments as ex
from bprl.errors import ConfigError
from bprl.experiments.stages import _at_rate, _price_at_rate, env_settings, sweep_runs
from bprl.report import sections as report_sections
from bprl.report import write as report_write
from bprl.schemas import EPISODE_LOG_COLUMNS, EPISODE_LOG_OPTIONAL

# ------------------------------------------------------------------ the synthetic sweep log
N_SUBJECTS = 6
SEEDS = (0, 1)
STEP_S = 300.0  # 5-minute steps
N_STEPS = 48  # 48 x 5 min = 4 h per episode: duration (47 + 1) * 300 s = 4.0 h exactly
HOURS = N_STEPS * STEP_S / 3600.0
RATES = (0.5, 1.0, 2.0)  # targets of the swept families, readings per hour
#: achieved cuffs per hour of each swept policy; b at target 2 only gets 1.5 (paced below target)
ACHIEVED = {
    ("a", 0.5): 0.5,
    ("a", 1.0): 1.0,
    ("a", 2.0): 2.0,
    ("b", 0.5): 0.5,
    ("b", 1.0): 1.0,
    ("b", 2.0): 1.5,
}
SEED_SHIFT = {0: -0.5, 1: +0.5}  # per-seed MAE offsets: the mean over seeds cancels them


def subject_mae(family: str, subject: int, target: float) -> float:
    """The SBP MAE of a subject at a target rate (averaged over seeds); DBP is half of it.

    Family b is exactly 1 mmHg (SBP) / 0.5 mmHg (DBP) worse than a at every rate.
    """
    if family == "oracle":
        return 0.5
    if family == "none":
        return 10.0 + subject
    return 3.0 + subject + 4.0 / target + (1.0 if family == "b" else 0.0)


def _policy(family: str, target: float) -> str:
    return f"{family}@{target:g}"


def _episode(
    policy: str,
    family: str | None,
    target: float,
    seed: int,
    subject: int,
    sbp_mae: float,
    n_cuff: int,
    n_refused: int,
) -> pd.DataFrame:
    """One 4-hour episode: errors alternate +/- mae (so |error| = mae), ``n_cuff`` evenly placed cuffs."""
    k = np.arange(N_STEPS)
    ref_sbp = 120.0 + 10.0 * np.sin(k / 5.0)
    ref_dbp = 80.0 + 5.0 * np.cos(k / 7.0)
    sign = np.where(k % 2 == 0, 1.0, -1.0)
    cuff = np.zeros(N_STEPS, bool)
    cuff[(np.arange(n_cuff) * N_STEPS) // max(n_cuff, 1)] = True
    refused = np.zeros(N_STEPS, bool)
    refused[np.flatnonzero(~cuff)[:n_refused]] = True
    df = pd.DataFrame(
        {
            "policy": policy,
            "seed": seed,
            "subject_id": f"s{subject}",
            "episode": 0,
            "step": k,
            "t_s": STEP_S * (k + 1),
            "est_sbp_mmhg": ref_sbp + 8.0,
            "est_dbp_mmhg": ref_dbp + 4.0,
            "corr_sbp_mmhg": ref_sbp + sign * sbp_mae,
            "corr_dbp_mmhg": ref_dbp + sign * sbp_mae / 2.0,
            "ref_sbp_mmhg": ref_sbp,
            "ref_dbp_mmhg": ref_dbp,
            "cuff": cuff,
            "cuff_sbp_mmhg": np.where(cuff, ref_sbp, np.nan),
            "cuff_dbp_mmhg": np.where(cuff, ref_dbp, np.nan),
            "reward": -np.full(N_STEPS, sbp_mae),
            "cuff_refused": refused,
            "segment": 0,
            "family": family,
            "target_cuffs_per_h": target,
        }
    )
    return df


#: refused requests: family a at target 2, seed 0, subject i has i of them (15 in all)
def _n_refused(family: str, target: float, seed: int, subject: int) -> int:
    return subject if (family, target, seed) == ("a", 2.0, 0) else 0


def make_sweep_log() -> pd.DataFrame:
    """6 subjects x 2 seeds: families a and b at 0.5/1/2 per hour, plus oracle and none (no sweep)."""
    parts = []
    for fam in ("a", "b"):
        for r in RATES:
            n_cuff = round(ACHIEVED[(fam, r)] * HOURS)
            for seed in SEEDS:
                for i in range(N_SUBJECTS):
                    mae = subject_mae(fam, i, r) + SEED_SHIFT[seed]
                    parts.append(
                        _episode(_policy(fam, r), fam, r, seed, i, mae, n_cuff, _n_refused(fam, r, seed, i))
                    )
    for fam in ("oracle", "none"):
        for seed in SEEDS:
            for i in range(N_SUBJECTS):
                parts.append(_episode(fam, fam, math.nan, seed, i, subject_mae(fam, i, math.nan), 0, 0))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def sweep_log() -> pd.DataFrame:
    return make_sweep_log()


def test_synthetic_log_is_a_valid_episode_log(sweep_log):
    # every column but base_policy and af_share (no residual agent, no rhythm: check_episode_log fills them)
    assert set(EPISODE_LOG_COLUMNS) | (set(EPISODE_LOG_OPTIONAL) - {"base_policy", "af_share"}) == set(
        sweep_log.columns
    )
    checked = ev.check_episode_log(sweep_log)
    assert len(checked) == len(sweep_log)
    # without the optional columns the family is the policy name and the target NaN
    bare = ev.check_episode_log(sweep_log[list(EPISODE_LOG_COLUMNS)])
    assert (bare["family"] == bare["policy"]).all() and bare["target_cuffs_per_h"].isna().all()


# ------------------------------------------------------------------ curves
def test_subject_rate_points_average_seeds(sweep_log):
    pts = ev.subject_rate_points(sweep_log)
    assert len(pts) == 8 * N_SUBJECTS  # one row per (policy, subject), seeds averaged
    for row in pts.itertuples():
        fam, target = row.family, row.target_cuffs_per_h
        assert row.sbp_mae_mmhg == pytest.approx(subject_mae(fam, int(row.subject_id[1:]), target), abs=1e-9)
        assert row.dbp_mae_mmhg == pytest.approx(row.sbp_mae_mmhg / 2.0, abs=1e-9)
        want_rate = ACHIEVED[(fam, target)] if fam in ("a", "b") else 0.0
        assert row.cuffs_per_hour == pytest.approx(want_rate, abs=1e-12)


def test_cuff_rate_curves(sweep_log):
    curves = ev.cuff_rate_curves(sweep_log, n_resamples=200, seed=3)
    want_order = [_policy(f, r) for f in ("a", "b") for r in RATES] + ["none", "oracle"]
    assert curves["policy"].tolist() == want_order
    assert curves["bound"].tolist() == [False] * 7 + [True]
    assert ev.BOUND_POLICIES == frozenset({"oracle"})
    assert (curves["n_subjects"] == N_SUBJECTS).all()
    for row in curves.itertuples():
        fam, target = row.family, row.target_cuffs_per_h
        if fam in ("a", "b"):
            assert target in RATES
            assert row.cuffs_per_hour == pytest.approx(ACHIEVED[(fam, target)], abs=1e-12)
        else:
            assert math.isnan(target) and row.cuffs_per_hour == 0.0
        per_subject = [subject_mae(fam, i, target) for i in range(N_SUBJECTS)]
        assert row.sbp_mae_mmhg == pytest.approx(np.mean(per_subject), abs=1e-9)
        assert row.dbp_mae_mmhg == pytest.approx(np.mean(per_subject) / 2.0, abs=1e-9)
        for bp in ("sbp", "dbp"):
            lo, mid, hi = (
                getattr(row, f"{bp}_mae_lo"),
                getattr(row, f"{bp}_mae_mmhg"),
                getattr(row, f"{bp}_mae_hi"),
            )
            assert lo - 1e-9 <= mid <= hi + 1e-9, (row.policy, bp, lo, mid, hi)
            assert lo >= min(per_subject) * (0.5 if bp == "dbp" else 1) - 1e-9
        # the subjects' MAE spread 5 mmHg for a, b and none: a real interval; the oracle's is a point
        if fam == "oracle":
            assert row.sbp_mae_hi - row.sbp_mae_lo == pytest.approx(0.0, abs=1e-9)
        else:
            assert row.sbp_mae_hi - row.sbp_mae_lo > 0.5
    refused = dict(zip(curves["policy"], curves["n_refused"], strict=True))
    assert refused == {p: (15 if p == "a@2" else 0) for p in want_order}
    assert refused["a@2"] == int(sweep_log["cuff_refused"].sum())
    # deterministic for a seed
    pd.testing.assert_frame_equal(curves, ev.cuff_rate_curves(sweep_log, n_resamples=200, seed=3))


# ------------------------------------------------------------------ paired at equal rate
def test_paired_at_one_per_hour(sweep_log):
    paired = ev.paired_at_rate(sweep_log, 1.0, n_resamples=200, seed=1)
    assert paired["family"].tolist() == [
        "a",
        "b",
    ]  # best first; oracle and none are not families of the sweep
    assert paired["best"].tolist() == [True, False]
    assert (paired["n_subjects"] == N_SUBJECTS).all()
    a, b = paired.iloc[0], paired.iloc[1]
    want_a = np.mean([subject_mae("a", i, 1.0) for i in range(N_SUBJECTS)])
    assert a["sbp_mae_mmhg"] == pytest.approx(want_a, abs=1e-9)
    assert b["sbp_mae_mmhg"] == pytest.approx(want_a + 1.0, abs=1e-9)
    assert a["sbp_diff_mmhg"] == 0.0 and a["dbp_diff_mmhg"] == 0.0
    assert b["sbp_diff_mmhg"] == pytest.approx(1.0, abs=1e-9)
    assert b["dbp_diff_mmhg"] == pytest.approx(0.5, abs=1e-9)
    # the same difference for every subject: a zero-width interval
    assert b["sbp_diff_lo"] == pytest.approx(1.0, abs=1e-9) and b["sbp_diff_hi"] == pytest.approx(
        1.0, abs=1e-9
    )
    assert b["dbp_diff_lo"] == pytest.approx(0.5, abs=1e-9) and b["dbp_diff_hi"] == pytest.approx(
        0.5, abs=1e-9
    )


@pytest.mark.parametrize("rate", [0.25, 0.49, 2.5, 60.0])
def test_paired_outside_every_range_is_empty(sweep_log, rate):
    assert ev.paired_at_rate(sweep_log, rate, n_resamples=20).empty


def test_paired_without_a_sweep_is_empty(sweep_log):
    no_sweep = sweep_log[sweep_log["target_cuffs_per_h"].isna()]
    assert ev.paired_at_rate(no_sweep, 1.0, n_resamples=20).empty


def _log_interp(rate: float, x0: float, y0: float, x1: float, y1: float) -> float:
    w = (math.log(rate) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return y0 + w * (y1 - y0)


@pytest.mark.parametrize("rate", [0.7, 1.3, math.sqrt(2.0)])
def test_paired_interpolates_in_log_achieved_rate(sweep_log, rate):
    paired = ev.paired_at_rate(sweep_log, rate, n_resamples=50).set_index("family")
    want = {}
    for fam in ("a", "b"):
        per = []
        for i in range(N_SUBJECTS):
            # the points are the achieved rates (b's target 2 achieved 1.5), not the targets
            pts = sorted((ACHIEVED[(fam, r)], subject_mae(fam, i, r)) for r in RATES)
            (x0, y0), (x1, y1) = next((p, q) for p, q in itertools.pairwise(pts) if p[0] <= rate <= q[0])
            per.append(_log_interp(rate, x0, y0, x1, y1))
        want[fam] = np.mean(per)
    for fam in ("a", "b"):
        assert paired.loc[fam, "sbp_mae_mmhg"] == pytest.approx(want[fam], abs=1e-9)
        assert paired.loc[fam, "dbp_mae_mmhg"] == pytest.approx(want[fam] / 2.0, abs=1e-9)
    best = min(want, key=want.get)
    assert paired.index[0] == best and bool(paired.loc[best, "best"])
    other = "b" if best == "a" else "a"
    assert paired.loc[other, "sbp_diff_mmhg"] == pytest.approx(want[other] - want[best], abs=1e-9)
    if rate > 1.0:  # b interpolates towards 1.5/h, a towards 2/h: no longer exactly 1 mmHg apart
        assert paired.loc["b", "sbp_diff_mmhg"] != pytest.approx(1.0, abs=1e-3)


def test_paired_at_a_measured_point_needs_no_interpolation(sweep_log):
    # at 0.5/h both families have a point: the MAE there is the point's own
    paired = ev.paired_at_rate(sweep_log, 0.5, n_resamples=50).set_index("family")
    assert paired.loc["a", "sbp_mae_mmhg"] == pytest.approx(
        np.mean([subject_mae("a", i, 0.5) for i in range(N_SUBJECTS)]), abs=1e-9
    )
    assert paired.loc["b", "sbp_diff_mmhg"] == pytest.approx(1.0, abs=1e-9)


# ------------------------------------------------------------------ the experiment file
@pytest.fixture
def env_spec(tmp_path: Path) -> Path:
    env = tmp_path / "env.yaml"
    env.write_text("reward: mae\n")
    return env


def exp_config(env_spec: Path, **budgets) -> dict:
    """A small valid experiment dict with the real calibrators (loading only; nothing is run)."""
    return {
        "name": "sweepexp",
        "cohort": {"virtual": {"subjects": 10, "hours": 1.0, "seed": 3}},
        "splits": {"train": 0.5, "val": 0.2, "test": 0.3, "seed": 1},
        "env": {"spec": str(env_spec)},
        "policies": ["none", "one_shot", "periodic", {"calibrator": "kalman_ou"}, "oracle"],
        "seeds": [0],
        "budgets": budgets,
    }


@pytest.mark.parametrize(
    ("sweep", "needle"),
    [
        ([0.5, 1.0, 0.5], "rates repeated"),
        ([1.0, 1], "rates repeated"),
        ([0.0, 1.0], "greater than 0"),
        ([-1.0], "greater than 0"),
        ([1.0, 61.0], "less than or equal to 60"),
        ([], "at least 1"),
        (["fast"], "budgets.sweep_cuffs_per_h"),
    ],
)
def test_bad_sweep_is_refused_naming_the_field(env_spec, sweep, needle):
    with pytest.raises(ConfigError) as info:
        ex.load_experiment(exp_config(env_spec, sweep_cuffs_per_h=sweep))
    msg = str(info.value)
    assert "budgets.sweep_cuffs_per_h" in msg and needle in msg, msg


@pytest.mark.parametrize("value", [0, -2.0, 60.5])
def test_bad_cuffs_per_h_is_refused_naming_the_field(env_spec, value):
    with pytest.raises(ConfigError, match=r"budgets\.cuffs_per_h"):
        ex.load_experiment(exp_config(env_spec, cuffs_per_h=value))


def test_cuffs_per_h_goes_into_the_env_overrides(env_spec, tmp_path):
    exp = ex.load_experiment(exp_config(env_spec, cuffs_per_h=1.5, sweep_cuffs_per_h=[0.5, 60]))
    assert exp.config.budgets.sweep_cuffs_per_h == [0.5, 60.0]
    env = env_settings(exp, tmp_path / "rs")
    assert env["overrides"]["cuff"] == {"budget_per_h": 1.5}
    assert env["overrides"]["replay_set"] == str(tmp_path / "rs")
    assert env["spec"] == str(env_spec.resolve())
    # merged with the file's own cuff overrides and the per-episode budget
    cfg = exp_config(env_spec, cuffs_per_h=2.0, cuff_budget=5)
    cfg["env"]["overrides"] = {"cuff": {"noise_sd_mmhg": 3.0}, "reward": "mae"}
    env = env_settings(ex.load_experiment(cfg), None)
    assert env["overrides"] == {
        "cuff": {"noise_sd_mmhg": 3.0, "budget": 5, "budget_per_h": 2.0},
        "reward": "mae",
    }
    # no budget: the environment's own
    assert "cuff" not in env_settings(ex.load_experiment(exp_config(env_spec)), None)["overrides"]


def test_sweep_runs_labels_paced_calibrators_per_rate(env_spec):
    exp = ex.load_experiment(exp_config(env_spec, sweep_cuffs_per_h=[0.5, 2]))
    runs = sweep_runs(exp)
    assert [label for _, label, _ in runs] == [
        "none",
        "one_shot",
        "periodic@0.5",
        "periodic@2",
        "kalman_ou@0.5",
        "kalman_ou@2",
        "oracle",
    ]
    assert [rate for _, _, rate in runs] == [None, None, 0.5, 2.0, 0.5, 2.0, None]
    assert [pol.label for pol, _, _ in runs] == [
        "none",
        "one_shot",
        "periodic",
        "periodic",
        "kalman_ou",
        "kalman_ou",
        "oracle",
    ]
    # without a sweep every policy runs once, unlabelled
    plain = sweep_runs(ex.load_experiment(exp_config(env_spec)))
    assert [(label, rate) for _, label, rate in plain] == [
        ("none", None),
        ("one_shot", None),
        ("periodic", None),
        ("kalman_ou", None),
        ("oracle", None),
    ]


def test_sweep_runs_trains_agents_per_rate_with_their_cuff_price_steered(env_spec, tmp_path):
    agent = tmp_path / "ppo_reads.yaml"
    agent.write_text(
        "algo: ppo\nbprl/BPCalibrationContinuous-v1:\n  n_timesteps: 1000\n  policy: MlpPolicy\n"
        "  cuff_price: {target_per_h: 1.0, initial: 0.5, lr: 0.05}\n"
    )
    cfg = exp_config(env_spec, sweep_cuffs_per_h=[0.5, 2])
    cfg["policies"] = ["periodic", {"agent": str(agent), "name": "reads"}]
    exp = ex.load_experiment(cfg)
    assert [(label, rate) for _, label, rate in sweep_runs(exp)] == [
        ("periodic@0.5", 0.5),
        ("periodic@2", 2.0),
        ("reads@0.5", 0.5),
        ("reads@2", 2.0),
    ]
    # the price is steered to the rate, the rest of it kept; an agent without a price is unchanged
    assert _price_at_rate(str(agent), {}, 2.0) == {
        "cuff_price": {"target_per_h": 2.0, "initial": 0.5, "lr": 0.05}
    }
    assert _price_at_rate(str(agent), {"cuff_price": {"initial": 1.0}}, 0.5) == {
        "cuff_price": {"initial": 1.0, "target_per_h": 0.5}
    }
    plain = tmp_path / "ppo.yaml"
    plain.write_text("algo: ppo\nbprl/BPCalibrationContinuous-v1:\n  policy: MlpPolicy\n")
    assert _price_at_rate(str(plain), {"gamma": 0.99}, 2.0) == {"gamma": 0.99}
    assert _at_rate({"spec": "e.yaml", "overrides": {"cuff": {"sd_sbp_mmhg": 5}}}, 2.0) == {
        "spec": "e.yaml",
        "overrides": {"cuff": {"sd_sbp_mmhg": 5, "budget_per_h": 2.0}},
    }
    # the runner's rule for which logs of a results folder are current agrees
    _touch_logs(tmp_path, "reads@0.5__seed0", "reads@2__seed0", "reads__seed0")
    config = {
        "policies": [{"name": "reads", "agent": str(agent)}],
        "seeds": [0],
        "budgets": {"sweep_cuffs_per_h": [0.5, 2]},
    }
    assert [p.name for p in ex.current_logs(tmp_path, config)] == [
        "reads@0.5__seed0.parquet",
        "reads@2__seed0.parquet",
    ]


def test_sweep_rates_that_print_alike_are_refused_or_labelled_apart(env_spec):
    cfg = exp_config(env_spec, sweep_cuffs_per_h=[1.0000001, 1.0000002])
    try:
        exp = ex.load_experiment(cfg)
    except ConfigError:
        return
    labels = [label for _, label, _ in sweep_runs(exp)]
    assert len(set(labels)) == len(labels), labels


# ------------------------------------------------------------------ current logs of a results folder
SWEEP_CONFIG = {  # as in config.resolved.yaml: every calibrator policy names its calibrator
    "policies": [{"name": "none", "calibrator": "none"}, {"name": "periodic", "calibrator": "periodic"}],
    "seeds": [0],
    "budgets": {"sweep_cuffs_per_h": [0.5, 2]},
}


def _touch_logs(results: Path, *names: str) -> None:
    (results / "logs").mkdir(parents=True, exist_ok=True)
    for n in names:
        (results / "logs" / f"{n}.parquet").write_bytes(b"")


def _marker(results: Path, name: str, status: str) -> None:
    d = results / "state" / "rollouts"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.json").write_text(json.dumps({"status": status}))


def test_current_logs_of_a_sweep(tmp_path):
    _touch_logs(tmp_path, "periodic@2__seed0", "periodic@0.5__seed0", "none__seed0", "old__seed0")
    got = [p.name for p in ex.current_logs(tmp_path, SWEEP_CONFIG)]
    # no state markers: every log of a current policy and seed counts as current
    assert got == ["none__seed0.parquet", "periodic@0.5__seed0.parquet", "periodic@2__seed0.parquet"]
    # a rate no longer in the sweep and a seed no longer run are not current
    _touch_logs(tmp_path, "periodic@1__seed0", "none__seed1")
    assert [p.name for p in ex.current_logs(tmp_path, SWEEP_CONFIG)] == got
    # without policies and seeds every log is used
    assert len(ex.current_logs(tmp_path, None)) == 6


def test_current_logs_follow_the_rollout_markers(tmp_path):
    _touch_logs(tmp_path, "none__seed0", "periodic@0.5__seed0", "periodic@2__seed0")
    _marker(tmp_path, "none__seed0", "done")
    _marker(tmp_path, "periodic@0.5__seed0", "skipped")
    (tmp_path / "state" / "rollouts" / "periodic@2__seed0.json").write_text(
        "{not json"
    )  # unreadable: no marker
    got = [p.name for p in ex.current_logs(tmp_path, SWEEP_CONFIG)]
    assert got == ["none__seed0.parquet", "periodic@2__seed0.parquet"]
    _marker(tmp_path, "periodic@2__seed0", "failed")
    assert [p.name for p in ex.current_logs(tmp_path, SWEEP_CONFIG)] == ["none__seed0.parquet"]


def test_unswept_log_of_a_swept_policy_is_not_current(tmp_path):
    config = {
        "policies": [{"name": "none", "calibrator": "none"}, {"name": "periodic", "calibrator": "periodic"}],
        "seeds": [0],
        "budgets": {"sweep_cuffs_per_h": [0.5, 2]},
    }
    _touch_logs(tmp_path, "none__seed0", "periodic__seed0", "periodic@0.5__seed0", "periodic@2__seed0")
    for n in ("none__seed0", "periodic__seed0", "periodic@0.5__seed0", "periodic@2__seed0"):
        _marker(tmp_path, n, "done")  # periodic__seed0 finished in the run before the sweep
    got = [p.name for p in ex.current_logs(tmp_path, config)]
    assert got == ["none__seed0.parquet", "periodic@0.5__seed0.parquet", "periodic@2__seed0.parquet"]


# ------------------------------------------------------------------ the report
def test_representative_policies_pick_the_rate_nearest_one_per_hour():
    meta = pd.DataFrame(
        {
            "policy": ["none", "p@0.5", "p@3", "k@0.25", "k@1.5", "oracle", "q@2", "q@0.5"],
            "family": ["none", "p", "p", "k", "k", "oracle", "q", "q"],
            "target_cuffs_per_h": [math.nan, 0.5, 3.0, 0.25, 1.5, math.nan, 2.0, 0.5],
        }
    )
    log = meta.loc[meta.index.repeat(3)].reset_index(drop=True)  # several rows per policy
    order = ["oracle", "k@1.5", "k@0.25", "p@3", "p@0.5", "none", "q@2", "q@0.5"]
    # p: |log 0.5| < |log 3|; k: |log 1.5| < |log 0.25|; q: a tie in log rate, the first listed wins
    assert report_sections.COMPARE_RATE_PER_H == 1.0
    assert report_sections.representative_policies(log, order) == ["oracle", "k@1.5", "p@0.5", "none", "q@2"]
    # only the policies asked for are returned
    assert report_sections.representative_policies(log, ["p@3", "none"]) == ["none"]


def test_write_report_with_a_sweep(sweep_log, tmp_path, monkeypatch):
    shown = []
    real = report_sections.bland_altman_figure

    def spy(ann, policies, bp, seed):
        shown.append((bp, list(policies), sorted(pd.unique(ann["policy"]))))
        return real(ann, policies, bp, seed)

    monkeypatch.setattr(report_sections, "bland_altman_figure", spy)
    html, md = report_write.write_report(tmp_path, sweep_log, n_resamples=50)
    text = md.read_text()
    assert "## Error against cuff rate" in text
    for heading in ("0.5 cuff readings", "1 cuff reading", "2 cuff readings"):  # the sweep reaches all three
        assert f"## Families at {heading} per hour, paired per subject" in text
    assert text.index("## Error against cuff rate") < text.index("## Accuracy")
    assert "![cuff_rate_curves](figures/cuff_rate_curves.png)" in text
    assert (tmp_path / "figures" / "cuff_rate_curves.png").stat().st_size > 1000
    assert "Error against cuff rate" in html.read_text()
    reduced = {"a@1", "b@1", "none", "oracle"}
    assert [bp for bp, _, _ in shown] == ["sbp", "dbp"]
    for _, policies, in_ann in shown:
        assert set(policies) == reduced and set(in_ann) == reduced
    # the summary still counts every policy of the log
    assert "8 policies, 6 subjects, 2 seeds" in text


def test_write_report_without_a_sweep_has_no_sweep_section(sweep_log, tmp_path):
    plain = sweep_log[sweep_log["family"].isin(["a", "none"]) & (sweep_log["seed"] == 0)]
    plain = plain.drop(columns=["family", "target_cuffs_per_h"])  # an older log: no sweep columns
    _, md = report_write.write_report(tmp_path, plain, n_resamples=20)
    text = md.read_text()
    assert "Error against cuff rate" not in text and "paired per subject" not in text
    assert not (tmp_path / "figures" / "cuff_rate_curves.png").exists()


def test_evaluation_writes_the_sweep_tables_and_the_results_page_shows_them(sweep_log, tmp_path):
    """A sweep's curves and paired comparison are metrics tables of the run, and the docs page reads them."""
    from bprl.experiments.outputs import write_metrics
    from bprl.experiments.tasks import default_stages
    from bprl.report.docs_page import results_page

    config = {"evaluation": {"n_resamples": 50, "seed": 0}}
    tables = write_metrics(tmp_path, sweep_log, config, default_stages())
    assert {"cuff_rate", "paired_at_0.5_per_h", "paired_at_1_per_h", "paired_at_2_per_h"} <= set(tables)
    assert (tmp_path / "metrics_paired_at_0.5_per_h.csv").is_file()
    curves = pd.read_csv(tmp_path / "metrics_cuff_rate.csv")
    assert set(curves["family"]) == {"a", "b", "none", "oracle"}
    page = results_page(tmp_path, "bprl run x.yaml")
    assert "## Error against cuff rate" in page and "## Families at 1 cuff reading per hour" in page
    assert page.index("## Families at 0.5 cuff readings") < page.index("## Families at 2 cuff readings")
    # a sweep that stops at 1 per hour is compared at 0.5 and 1 only
    assert ev.compare_rates(sweep_log[sweep_log["target_cuffs_per_h"].fillna(0) <= 1]) == [0.5, 1.0]
    assert "| b | 6 |" in page  # the paired table's row of family b, 6 subjects
    # without a sweep: neither table nor section
    plain = sweep_log.drop(columns=["family", "target_cuffs_per_h"])
    out = tmp_path / "plain"
    out.mkdir()
    assert "cuff_rate" not in write_metrics(out, plain, config, default_stages())
    assert "Error against cuff rate" not in results_page(out, "x")
