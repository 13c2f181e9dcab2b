"""Standards metrics against hand-worked examples (answers worked out in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bprl import errors
from bprl import evaluation as ev
from bprl.errors import BprlError
from bprl.schemas import EPISODE_LOG_COLUMNS


def make_log(rows: list[dict]) -> pd.DataFrame:
    """An episode log from partial rows: unspecified columns get neutral defaults."""
    defaults = {
        "policy": "p",
        "seed": 0,
        "subject_id": "s1",
        "episode": 0,
        "step": 0,
        "t_s": 30.0,
        "est_sbp_mmhg": 120.0,
        "est_dbp_mmhg": 80.0,
        "corr_sbp_mmhg": 120.0,
        "corr_dbp_mmhg": 80.0,
        "ref_sbp_mmhg": 120.0,
        "ref_dbp_mmhg": 80.0,
        "cuff": False,
        "cuff_sbp_mmhg": math.nan,
        "cuff_dbp_mmhg": math.nan,
        "reward": 0.0,
    }
    return pd.DataFrame([{**defaults, **r} for r in rows], columns=list(EPISODE_LOG_COLUMNS))


# ------------------------------------------------------------------ basic statistics
def test_error_stats_hand_worked():
    # errors 1, -1, 3, -3: mean 0; SD = sqrt((1+1+9+9)/3) = sqrt(20/3) = 2.5820; MAE = 8/4 = 2
    s = ev.error_stats([1.0, -1.0, 3.0, -3.0, math.nan])
    assert s["n"] == 4
    assert s["me"] == pytest.approx(0.0)
    assert s["sd"] == pytest.approx(math.sqrt(20.0 / 3.0))
    assert s["mae"] == pytest.approx(2.0)
    assert math.isnan(ev.error_stats([])["me"])


# ------------------------------------------------------------------ ISO 81060-2 criterion 2 limit
@pytest.mark.parametrize(
    ("mean", "published"),
    # ISO 81060-2 table of the criterion-2 limit (rounded to 2 decimals)
    [
        (0.0, 6.95),
        (0.5, 6.93),
        (1.0, 6.87),
        (1.5, 6.78),
        (2.0, 6.65),
        (2.5, 6.47),
        (3.0, 6.25),
        (3.5, 5.97),
        (4.0, 5.64),
        (4.5, 5.24),
    ],
)
def test_aami_sd_limit_matches_published_table(mean, published):
    assert round(ev.aami_sd_limit(mean), 2) == pytest.approx(published)
    assert round(ev.aami_sd_limit(-mean), 2) == pytest.approx(published)


def test_aami_sd_limit_end_points_and_definition():
    # at mean 0: 10 / z_0.925 = 10 / 1.43953 = 6.9467
    assert ev.aami_sd_limit(0.0) == pytest.approx(10.0 / 1.4395314709, abs=1e-6)
    # at +-5 the definition gives 4.806; the standard prints 4.79 (its table rounds conservatively)
    assert ev.aami_sd_limit(5.0) == pytest.approx(4.79, abs=0.02)
    # the limit sits exactly at 85 % coverage; a slightly larger sigma falls below it
    for mu in (0.0, 2.7, 5.0):
        sig = ev.aami_sd_limit(mu)
        cover = stats.norm.cdf((10 - mu) / sig) - stats.norm.cdf((-10 - mu) / sig)
        assert cover == pytest.approx(0.85, abs=1e-9)
        wider = stats.norm.cdf((10 - mu) / (sig * 1.01)) - stats.norm.cdf((-10 - mu) / (sig * 1.01))
        assert wider < 0.85
    # monotone decreasing in |mean|; zero beyond 10 mmHg; NaN for NaN
    vals = [ev.aami_sd_limit(m) for m in np.linspace(0, 9.9, 50)]
    assert np.all(np.diff(vals) < 0)
    assert ev.aami_sd_limit(12.0) == 0.0
    assert math.isnan(ev.aami_sd_limit(math.nan))


def test_aami_criteria_pass():
    # subject A: 1, 3 (mean 2); B: -1, 1 (mean 0); C: 3, 5 (mean 4)
    # all pairs: mean 12/6 = 2; squared deviations 1+1+9+1+1+9 = 22, SD = sqrt(22/5) = 2.0976 -> c1 pass
    # subject means 2, 0, 4: SD = sqrt((0+4+4)/2) = 2 <= limit(2) = 6.65 -> c2 pass
    r = ev.aami_criteria([1, 3, -1, 1, 3, 5], ["A", "A", "B", "B", "C", "C"])
    assert r["me"] == pytest.approx(2.0)
    assert r["sd"] == pytest.approx(math.sqrt(22 / 5))
    assert r["c1_pass"] is True
    assert r["subject_me_sd"] == pytest.approx(2.0)
    assert r["c2_limit"] == pytest.approx(6.65, abs=0.005)
    assert r["c2_pass"] is True
    assert r["n_subjects"] == 3 and r["n_pairs"] == 6
    assert r["enough_subjects"] is False


def test_aami_criteria_c1_pass_c2_fail():
    # A: 5, 5; B: -5, -5. All pairs: mean 0, SD = sqrt(4*25/3) = 5.774 <= 8 -> c1 pass.
    # Subject means 5, -5: SD = sqrt(50/1) = 7.071 > 6.95 -> c2 fail
    r = ev.aami_criteria([5, 5, -5, -5], ["A", "A", "B", "B"])
    assert r["c1_pass"] is True
    assert r["subject_me_sd"] == pytest.approx(math.sqrt(50))
    assert r["c2_pass"] is False


def test_aami_criteria_c1_fails_on_mean():
    # mean 6 > 5 with SD 0 in every subject -> c1 fails, and c2 (needs |mean| <= 5) too
    r = ev.aami_criteria([6, 6, 6, 6], ["A", "A", "B", "B"])
    assert r["c1_pass"] is False and r["c2_pass"] is False


def test_aami_criteria_rejects_mismatched_lengths():
    with pytest.raises(BprlError, match="subject ids"):
        ev.aami_criteria([1, 2, 3], ["A", "B"])


# ------------------------------------------------------------------ BHS
def test_bhs_grade_b():
    # |e| = 1,4,6,9,12,20,3,0,5,5: <=5 -> 1,4,3,0,5,5 = 6/10 = 60 %; <=10 adds 6,9 -> 80 %;
    # <=15 adds 12 -> 90 %. A needs 85 % at 10 (fails); B needs 50/75/90 -> B
    r = ev.bhs_grade([1, -4, 6, 9, -12, 20, 3, 0, 5, -5])
    assert (r["pct5"], r["pct10"], r["pct15"]) == pytest.approx((60.0, 80.0, 90.0))
    assert r["grade"] == "B"


def test_bhs_grade_needs_all_three():
    # 0 x6, 7 x3, 20 x1: 60 / 90 / 90 %: A fails at 15 mmHg (90 < 95); B holds -> B
    assert ev.bhs_grade([0] * 6 + [7] * 3 + [20])["grade"] == "B"
    # 0 x19, 16 x1: 95/95/95 -> A
    assert ev.bhs_grade([0] * 19 + [16])["grade"] == "A"
    # 0 x4, 8 x3, 14 x2, 30 x1: 40/70/90 -> C (B needs 50 % within 5)
    assert ev.bhs_grade([0] * 4 + [8] * 3 + [14] * 2 + [30])["grade"] == "C"
    # 0 x3, 30 x7: 30 % within 5 -> D
    assert ev.bhs_grade([0] * 3 + [30] * 7)["grade"] == "D"
    assert ev.bhs_grade([math.nan])["grade"] == "n/a"


# ------------------------------------------------------------------ IEEE 1708
def test_ieee1708_grade_boundaries():
    assert [ev.ieee1708_grade(x) for x in (0.0, 5.0, 5.01, 6.0, 6.5, 7.0, 7.01)] == [
        "A",
        "A",
        "B",
        "B",
        "C",
        "C",
        "D",
    ]
    assert ev.ieee1708_grade(math.nan) == "n/a"


def test_ieee1708_by_change_bins():
    # errors 1, -2, 3, -8, 10 with |changes| 0, 5, 12, 25, NaN (before any cuff):
    # overall MAE 24/5 = 4.8 (A); <10: (1+2)/2 = 1.5 (A); 10-20: 3 (A); >=20: 8 (D);
    # no calibration: 10 (D)
    r = ev.ieee1708([1, -2, 3, -8, 10], [0, 5, 12, 25, math.nan])
    assert r["mae"] == pytest.approx(4.8) and r["grade"] == "A"
    b = r["bins"]
    assert list(b) == ["<10", "10-20", ">=20", "no calibration"]
    assert (b["<10"]["n"], b["<10"]["mae"], b["<10"]["grade"]) == (2, pytest.approx(1.5), "A")
    assert (b["10-20"]["mae"], b[">=20"]["mae"], b[">=20"]["grade"]) == (3.0, 8.0, "D")
    assert b["no calibration"]["mae"] == pytest.approx(10.0)
    # bin edges are left-closed: exactly 10 belongs to 10-20, exactly 20 to >=20
    assert list(ev.change_bins([9.99, 10.0, 19.99, 20.0])) == ["<10", "10-20", "10-20", ">=20"]


# ------------------------------------------------------------------ ISO 81060-3
def test_iso81060_3_pass():
    # errors 2,-2,4,-4: mean 0, SD = sqrt((4+4+16+16)/3) = 3.651 -> accuracy pass
    # changes with |d_ref| >= 10: (12 vs 10) APE 20 %, (-15 vs -20) 25 %, (30 vs 40) 25 %; 5 is excluded
    # median 25 <= 25; 85th percentile of [20, 25, 25] (linear) = 25 <= 50 -> tracking pass
    r = ev.iso81060_3([2, -2, 4, -4], [12, -15, 100, 30], [10, -20, 5, 40])
    assert r["accuracy_pass"] is True
    assert r["n_changes"] == 3
    assert r["ape_median_pct"] == pytest.approx(25.0)
    assert r["ape_p85_pct"] == pytest.approx(25.0)
    assert r["tracking_pass"] is True and r["pass"] is True


def test_iso81060_3_tracking_fail_and_no_changes():
    # APE = 0, 20, 60, 100 %: median 40 > 25; 85th percentile at position 0.85*3 = 2.55 -> 60 + 0.55*40 = 82
    r = ev.iso81060_3([0, 0, 0, 0], [10, 12, 16, 20], [10, 10, 10, 10])
    assert r["ape_median_pct"] == pytest.approx(40.0)
    assert r["ape_p85_pct"] == pytest.approx(82.0)
    assert r["tracking_pass"] is False and r["pass"] is False
    # SD 0 but mean 7 > 6: accuracy fails; no change >= 10 -> tracking cannot be shown
    r = ev.iso81060_3([7, 7], [1, 2], [3, 4])
    assert r["accuracy_pass"] is False and r["n_changes"] == 0 and r["tracking_pass"] is False


# ------------------------------------------------------------------ hypertension
def test_bp_category_rules():
    sbp = [119, 120, 129.9, 130, 110, 125, 140, 110, 135, math.nan]
    dbp = [79, 79, 79, 70, 80, 85, 70, 90, 95, 70]
    # normal, elevated, elevated, stage1 (SBP), stage1 (DBP), stage1, stage2 (SBP), stage2 (DBP),
    # stage2 (higher of stage1 SBP / stage2 DBP), not classifiable
    assert list(ev.bp_category(sbp, dbp)) == [0, 1, 1, 2, 2, 2, 3, 3, 3, -1]


def test_cohen_kappa_hand_worked():
    # a = 0,0,1,1,2,3; b = 0,1,1,1,2,2. Agreements at 0,2,3,4 -> p_o = 4/6.
    # marginals a: 2,2,1,1; b: 1,3,2,0 -> p_e = (2+6+2+0)/36 = 10/36
    # kappa = (24/36 - 10/36) / (26/36) = 14/26 = 0.53846
    assert ev.cohen_kappa([0, 0, 1, 1, 2, 3], [0, 1, 1, 1, 2, 2], 4) == pytest.approx(14 / 26)
    assert ev.cohen_kappa([0, 1, 2, 3], [0, 1, 2, 3], 4) == pytest.approx(1.0)
    assert math.isnan(ev.cohen_kappa([1, 1], [1, 1], 4))  # p_e = 1: undefined


def test_hypertension_detection_hand_worked():
    # reference: stage2, stage1, normal, elevated, normal -> positives #0, #1
    # corrected: (145,85) stage2, (128,78) elevated, (131,70) stage1, (125,70) elevated, (110,70) normal
    # sensitivity: #0 found, #1 missed -> 1/2; specificity: #3, #4 negative, #2 false positive -> 2/3
    # categories dev 3,1,2,1,0 vs ref 3,2,0,1,0: p_o = 3/5; marginals dev 1,2,1,1, ref 2,1,1,1
    # p_e = (2+2+1+1)/25 = 6/25; kappa = (15-6)/(25-6) = 9/19
    r = ev.hypertension_detection(
        [145, 128, 131, 125, 110], [85, 78, 70, 70, 70], [150, 135, 118, 125, 110], [95, 70, 75, 70, 70]
    )
    assert r["n"] == 5
    assert r["sensitivity"] == pytest.approx(0.5)
    assert r["specificity"] == pytest.approx(2 / 3)
    assert r["kappa"] == pytest.approx(9 / 19)


# ------------------------------------------------------------------ cuffs, calibration state
def test_cuffs_per_hour():
    # episode 0: 120 steps of 30 s (t_s = 30..3600) = 1 h with 3 cuffs; episode 1: 60 steps = 0.5 h, none
    # -> 3 / 1.5 h = 2 per hour
    rows = [{"episode": 0, "step": k, "t_s": 30.0 * (k + 1), "cuff": k in (0, 40, 80)} for k in range(120)]
    rows += [{"episode": 1, "subject_id": "s2", "step": k, "t_s": 30.0 * (k + 1)} for k in range(60)]
    log = make_log(rows)
    assert ev.cuffs_per_hour(log) == pytest.approx(2.0)
    d = ev.episode_durations_h(log)
    assert list(d["duration_h"]) == pytest.approx([1.0, 0.5])


def test_annotate_calibration_uses_last_cuff_reference():
    # cuffs at steps 1 and 3; the reference at step 3 is NaN, which still resets the calibration point
    ref = [100.0, 110.0, 120.0, math.nan, 130.0]
    rows = [
        {
            "step": k,
            "t_s": 30.0 * (k + 1),
            "ref_sbp_mmhg": ref[k],
            "corr_sbp_mmhg": 100.0 + 2 * k,
            "cuff": k in (1, 3),
        }
        for k in range(5)
    ]
    ann = ev.annotate_calibration(make_log(rows)[::-1])  # row order must not matter
    np.testing.assert_allclose(ann["ref_sbp_at_cal_mmhg"], [np.nan, 110, 110, np.nan, np.nan])
    np.testing.assert_allclose(ann["d_ref_sbp_mmhg"], [np.nan, 0, 10, np.nan, np.nan])
    np.testing.assert_allclose(ann["d_corr_sbp_mmhg"], [np.nan, 0, 2, 0, 2])
    np.testing.assert_allclose(ann["t_since_cal_s"], [np.nan, 0, 30, 0, 30])


# ------------------------------------------------------------------ bootstrap and seeds
def test_bootstrap_resamples_subjects():
    # subjects A: 0, 0 and B: 4, 4. A resample is AA (ME 0), AB/BA (ME 2) or BB (ME 4), each AA/BB
    # with p = 1/4, so the 2.5 / 97.5 percentiles of 1000 resamples are exactly 0 and 4. SD: AA and BB
    # give 0, AB gives SD of 0,0,4,4 = sqrt(16/3) = 2.309 -> interval (0, 2.309)
    ci = ev.bootstrap_subjects([0, 0, 4, 4], ["A", "A", "B", "B"], n_resamples=1000, seed=3)
    assert ci["me"] == pytest.approx((0.0, 4.0))
    assert ci["mae"] == pytest.approx((0.0, 4.0))
    assert ci["sd"] == pytest.approx((0.0, math.sqrt(16 / 3)))
    # one subject: every resample is that subject -> degenerate interval at the point estimate
    one = ev.bootstrap_subjects([1, 3], ["A", "A"], n_resamples=50)
    assert one["me"] == pytest.approx((2.0, 2.0)) and one["sd"] == pytest.approx((math.sqrt(2), math.sqrt(2)))


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(1)
    err = rng.normal(0, 5, 200)
    sid = np.repeat([f"s{i}" for i in range(20)], 10)
    a = ev.bootstrap_subjects(err, sid, n_resamples=200, seed=7)
    b = ev.bootstrap_subjects(err, sid, n_resamples=200, seed=7)
    c = ev.bootstrap_subjects(err, sid, n_resamples=200, seed=8)
    assert a == b and a != c
    s = ev.error_stats(err)
    for k in ("me", "sd", "mae"):
        assert a[k][0] < s[k] < a[k][1]


def test_iqm_and_seed_aggregation():
    # rliable IQM: mean of the middle 50 %: [1, 2, 3, 100] -> (2 + 3) / 2 = 2.5; 1..8 -> mean(3,4,5,6) = 4.5
    assert ev.iqm([1, 2, 3, 100]) == pytest.approx(2.5)
    assert ev.iqm(np.arange(1, 9)) == pytest.approx(4.5)
    agg = ev.aggregate_seeds([1, 2, 3, 100], n_resamples=500, seed=0)
    assert agg["mean"] == pytest.approx(26.5) and agg["iqm"] == pytest.approx(2.5)
    assert agg["iqm_ci_lo"] <= 2.5 <= agg["iqm_ci_hi"]
    assert agg["mean_ci_lo"] <= 26.5 <= agg["mean_ci_hi"]
    same = ev.aggregate_seeds([4.0], n_resamples=10)
    assert (same["iqm"], same["iqm_ci_lo"], same["iqm_ci_hi"]) == (4.0, 4.0, 4.0)


# ------------------------------------------------------------------ table level
def _two_subject_log(policy: str, seed: int, offset: float) -> list[dict]:
    rows = []
    for sid, err in (("A", [1.0, 3.0]), ("B", [-1.0, 1.0])):
        for k, e in enumerate(err):
            rows.append(
                {
                    "policy": policy,
                    "seed": seed,
                    "subject_id": sid,
                    "episode": 0 if sid == "A" else 1,
                    "step": k,
                    "t_s": 1800.0 * (k + 1),
                    "corr_sbp_mmhg": 120.0 + e + offset,
                    "corr_dbp_mmhg": 80.0 + e,
                    "cuff": k == 0,
                }
            )
    return rows


def test_evaluate_log_and_compare_policies():
    # policy "b" (listed first) has errors 1,3,-1,1 (ME 1, MAE 1.5); "a" adds 10 to SBP (ME 11, MAE 11)
    log = make_log(
        _two_subject_log("b", 0, 0.0) + _two_subject_log("b", 1, 0.0) + _two_subject_log("a", 0, 10.0)
    )
    per = ev.evaluate_log(log, n_resamples=100)
    assert list(zip(per["policy"], per["seed"], strict=True)) == [("b", 0), ("b", 1), ("a", 0)]
    b0 = per.iloc[0]
    assert b0["sbp_me_mmhg"] == pytest.approx(1.0) and b0["sbp_mae_mmhg"] == pytest.approx(1.5)
    assert bool(b0["sbp_aami_c1_pass"]) and b0["sbp_bhs_grade"] == "A" and b0["sbp_ieee_grade"] == "A"
    # 2 episodes of 2 steps of 1800 s = 2 h, 2 cuffs -> 1 per hour
    assert b0["cuffs_per_hour"] == pytest.approx(1.0)
    a0 = per.iloc[2]
    assert a0["sbp_me_mmhg"] == pytest.approx(11.0) and not bool(a0["sbp_aami_c1_pass"])
    assert a0["sbp_ieee_grade"] == "D" and a0["sbp_bhs_grade"] == "D"

    cmp_ = ev.compare_policies(log, n_resamples=100)
    assert list(cmp_["policy"]) == ["b", "a"]
    assert list(cmp_["n_seeds"]) == [2, 1]
    assert cmp_.iloc[0]["sbp_mae_mmhg_seed_iqm"] == pytest.approx(1.5)
    assert cmp_.iloc[0]["sbp_n_pairs"] == 8
    lo, hi = cmp_.iloc[0]["sbp_me_ci_lo_mmhg"], cmp_.iloc[0]["sbp_me_ci_hi_mmhg"]
    # subject means are 2 (A) and 0 (B): resampled ME lies in [0, 2]
    assert 0.0 <= lo <= 1.0 <= hi <= 2.0
    pd.testing.assert_frame_equal(cmp_, ev.compare_policies(log, n_resamples=100))


def test_evaluate_subjects_and_change_bins():
    log = make_log(_two_subject_log("b", 0, 0.0))
    subj = ev.evaluate_subjects(log)
    assert list(subj["subject_id"]) == ["A", "B"]
    assert list(subj["sbp_me_mmhg"]) == pytest.approx([2.0, 0.0])
    bins = ev.evaluate_change_bins(log)
    sbp = bins[bins["bp"] == "sbp"].set_index("change_bin")
    # reference is constant 120 -> every pair has change 0 -> all 4 pairs in "<10"
    assert sbp.loc["<10", "n_pairs"] == 4 and sbp.loc["10-20", "n_pairs"] == 0


def test_bad_logs_raise_and_batches_skip(tmp_path):
    log = make_log(_two_subject_log("b", 0, 0.0))
    with pytest.raises(BprlError, match="missing columns"):
        ev.evaluate_log(log.drop(columns=["ref_sbp_mmhg"]))
    with pytest.raises(BprlError, match="no rows"):
        ev.evaluate_log(log.iloc[:0])
    good = tmp_path / "good.parquet"
    log.to_parquet(good)
    bad = tmp_path / "bad.parquet"
    log.drop(columns=["cuff"]).to_parquet(bad)
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    got, problems = ev.read_episode_logs([good, bad, broken])
    assert len(got) == len(log)
    assert len(problems) == 2 and "bad.parquet" in problems[0] and "broken.parquet" in problems[1]
    with pytest.raises(BprlError, match="no readable"):
        ev.read_episode_logs([bad])


# ------------------------------------------------------------------ package layout
def test_package_reexports_the_former_module_api():
    # every name bprl, tests and benchmarks used from the single module bprl/evaluation.py
    from bprl.evaluation import evaluate, hypertension, logs, standards, statistics

    assert ev.EvaluationError is errors.EvaluationError
    assert issubclass(ev.EvaluationError, BprlError)
    homes = {
        logs: [
            "BP_KINDS",
            "EPISODE_KEYS",
            "check_episode_log",
            "read_episode_logs",
            "episode_durations_h",
            "cuffs_per_hour",
            "annotate_calibration",
        ],
        standards: [
            "AAMI_MIN_SUBJECTS",
            "ISO3_MIN_CHANGE_MMHG",
            "CHANGE_BIN_EDGES_MMHG",
            "error_stats",
            "aami_sd_limit",
            "aami_criteria",
            "bhs_grade",
            "ieee1708_grade",
            "ieee1708",
            "change_bin_labels",
            "change_bins",
            "iso81060_3",
        ],
        hypertension: ["BP_CATEGORIES", "bp_category", "cohen_kappa", "hypertension_detection"],
        statistics: ["bootstrap_subjects", "iqm", "aggregate_seeds"],
        evaluate: ["evaluate_log", "evaluate_subjects", "evaluate_change_bins", "compare_policies"],
    }
    for module, names in homes.items():
        for name in names:
            assert getattr(ev, name) is getattr(module, name), name
            assert name in ev.__all__, name
    assert ev._as_float is statistics.as_float_array
    assert ev._percentile_interval is statistics.percentile_interval
