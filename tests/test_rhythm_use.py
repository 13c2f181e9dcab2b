"""Rhythm in use: rhythm columns of the replay tables, PAT gating modes, the record summary of
``bprl rhythm``, the ectopy guard of AF, and rhythm in the observation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bprl.beats.rhythm_summary import MAX_V_SHARE_AF, af_with_ectopy_guard, rhythm_summary
from bprl.cli import app
from bprl.cohort.layout import load_manifest, record_path
from bprl.errors import FeatureError
from bprl.features.beats import record_beats
from bprl.features.config import FeatureConfig
from bprl.features.replay_table import build_replay_table
from bprl.schemas import REPLAY_RHYTHM
from bprl.sources import read_record


@pytest.fixture(scope="module")
def cohort_record(tiny_cohort):
    sid = str(load_manifest(tiny_cohort)["subject_id"].iloc[0])
    return read_record(record_path(tiny_cohort, sid))


def test_replay_table_has_rhythm_columns(cohort_record):
    tab = build_replay_table(cohort_record)
    for c in REPLAY_RHYTHM:
        assert c in tab.columns
    af = tab["af_share"].to_numpy(float)
    assert np.isfinite(af).all() and ((af >= 0) & (af <= 1)).all()
    assert ((tab["ectopic_share"] >= 0) & (tab["ectopic_share"] <= 1)).all()
    qtc = tab["qtc_ms"].dropna()
    assert len(qtc) and qtc.between(300, 520).all()
    # the QRS onset precedes the R peak: PAT from the QRS onset is longer than PAT from R
    both = tab[["pat_qrs_onset_ms", "pat_foot_ms"]].dropna()
    d = both["pat_qrs_onset_ms"] - both["pat_foot_ms"]
    assert len(both) and d.between(5, 80).all()
    # without rhythm (and so with the RR gating rule): the same features, NaN rhythm columns
    plain = build_replay_table(cohort_record, FeatureConfig(rhythm=False, ectopic_gating="rr"))
    assert plain[list(REPLAY_RHYTHM)].isna().all().all()
    rr_gated = build_replay_table(cohort_record, FeatureConfig(ectopic_gating="rr"))
    pd.testing.assert_frame_equal(
        plain.drop(columns=list(REPLAY_RHYTHM)), rr_gated.drop(columns=list(REPLAY_RHYTHM))
    )
    # the default gating (beat classes) changes the PAT features, not the rhythm columns
    pd.testing.assert_frame_equal(tab[list(REPLAY_RHYTHM)], rr_gated[list(REPLAY_RHYTHM)])


def test_classes_gating_default_needs_rhythm():
    assert FeatureConfig().ectopic_gating == "classes"
    with pytest.raises(FeatureError, match="set ectopic_gating: rr or none"):
        FeatureConfig(rhythm=False)
    assert FeatureConfig(rhythm=False, ectopic_gating="none").ectopic_gating == "none"


def test_gating_modes(cohort_record):
    beats = {
        m: record_beats(cohort_record, FeatureConfig(ectopic_gating=m)) for m in ("none", "rr", "classes")
    }
    assert not beats["none"]["ectopic"].any()
    cls = beats["classes"]
    ect = np.isin(cls["beat_class"].to_numpy(str), ["S", "V"])
    after = np.zeros_like(ect)
    after[1:] = ect[:-1]
    np.testing.assert_array_equal(cls["ectopic"].to_numpy(bool), ect | after)
    assert beats["none"]["valid"].sum() >= beats["rr"]["valid"].sum()
    with pytest.raises(FeatureError, match="rhythm"):
        record_beats(cohort_record, FeatureConfig(ectopic_gating="classes", rhythm=False))


def test_ectopy_guard_keeps_bigeminy_out_of_af():
    """Ventricular bigeminy: short-long RR pairs look irregular; with every other beat classed V the
    guard calls the windows non-AF."""
    rr = np.tile([0.5, 1.1], 60)
    r = np.cumsum(rr)
    classes = np.tile(["V", "N"], 60)
    win = af_with_ectopy_guard(r, classes, 30.0)
    assert (win["v_share"][win["n_beats"] > 10] > MAX_V_SHARE_AF).all()
    assert not win["af"].any()
    # AF (irregular, all N) is kept
    rng = np.random.default_rng(0)
    r_af = np.cumsum(rng.uniform(0.4, 1.0, 150))
    assert af_with_ectopy_guard(r_af, np.full(150, "N"), 30.0)["af"].sum() >= 2


def test_rhythm_summary_bad_input():
    fs = 250.0
    t = np.arange(int(2 * fs)) / fs
    short = rhythm_summary(np.sin(2 * np.pi * 1.2 * t), fs)  # 2 s
    assert short.label == "unknown" and short.reason
    flat = rhythm_summary(np.zeros(int(60 * fs)), fs)
    assert flat.label == "unknown" and "flat" in flat.reason
    with pytest.raises(FeatureError, match="50 Hz"):
        rhythm_summary(np.zeros(3000), 50.0)


def test_rhythm_summary_intervals_from_several_leads():
    from tests.test_delineation import beat_train

    fs = 500.0
    x, _ = beat_train(fs, n=30)
    one = rhythm_summary(x, fs)
    many = rhythm_summary(x, fs, other_leads=np.column_stack([0.5 * x, -x]))
    assert many.label == one.label and many.n_beats == one.n_beats
    for k in ("pr_ms", "qrs_ms", "qt_ms"):  # the same wave in every lead: the same median
        assert many.intervals_ms[k] == pytest.approx(one.intervals_ms[k], abs=1.0), k
    with pytest.raises(FeatureError, match="other_leads"):
        rhythm_summary(x, fs, other_leads=np.zeros((len(x) - 1, 2)))


def test_rhythm_on_real_records(physionet_dir):
    rec = read_record(physionet_dir / "mitdb" / "106")
    ch = rec.channel("ecg")
    s = rhythm_summary(ch.samples, ch.fs_hz)
    # 106: sinus rhythm with frequent ventricular ectopy (bigeminy episodes), no AF
    assert s.label == "sinus rhythm, frequent ectopy"
    assert s.class_counts["V"] > 400 and not (s.windows["label"] == "AF").any()
    assert 350 < s.intervals_ms["qtc_bazett_ms"] < 480


def test_bprl_rhythm_command(physionet_dir, tmp_path):
    out = tmp_path / "w.csv"
    res = CliRunner().invoke(app, ["rhythm", str(physionet_dir / "mitdb" / "100"), "--csv", str(out)])
    assert res.exit_code == 0, res.output
    assert "rhythm: sinus rhythm" in res.output and "intervals (median, ms)" in res.output
    w = pd.read_csv(out)
    assert {"t_start_s", "label", "af_probability", "qtc_fridericia_ms"} <= set(w.columns) and len(w) == 61
    both = CliRunner().invoke(app, ["rhythm", str(physionet_dir / "mitdb" / "100"), "--all-leads"])
    assert both.exit_code == 0, both.output
    assert "intervals from 2 leads" in both.output and "intervals (median, ms)" in both.output
    bad = CliRunner().invoke(app, ["rhythm", str(physionet_dir / "mitdb" / "100"), "--lead", "nope"])
    assert bad.exit_code == 2 and "no channel 'nope'" in bad.output


def test_rhythm_can_be_observed(cohort_record):
    from bprl.envs.calibration_env import BPCalibrationEnv
    from bprl.envs.replay_arrays import build_replay_arrays

    tab = build_replay_table(cohort_record).assign(est_sbp_mmhg=120.0, est_dbp_mmhg=70.0)
    data = build_replay_arrays({"s": tab}, features=("pat_foot_ms", "af_share", "ectopic_share"))
    env = BPCalibrationEnv(data=data)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2 * 3 + 23,)


def test_cohort_frequent_ectopy_setting():
    from bprl.cohort.spec import CohortSpec
    from bprl.cohort.subjects import sample_subject
    from bprl.errors import CohortError

    base = CohortSpec(ectopic_subject_share=1.0)
    # the defaults keep the former range, so existing cohorts draw the same subjects
    assert (base.ectopic_prob_min, base.ectopic_prob_max) == (0.005, 0.03)
    frequent = CohortSpec(ectopic_subject_share=1.0, ectopic_prob_min=0.1, ectopic_prob_max=0.4)
    p = [sample_subject(frequent, i, np.random.default_rng([0, i, 0])).ectopic_prob for i in range(20)]
    assert all(0.1 <= x <= 0.4 for x in p)
    with pytest.raises((CohortError, ValueError), match="ectopic_prob_min"):
        CohortSpec(ectopic_prob_min=0.3, ectopic_prob_max=0.1)
