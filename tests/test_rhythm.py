"""AF per window and CinC 2017 rhythm classes (issue 17, item 2): RR features against hand-worked
values, AF windows on synthetic series, the shipped models (text files, their cards, their
behaviour on real AFDB / CinC records), determinism and bad input.

The real-record tests need ``$BPRL_RHYTHM_DIR`` (or ``../shared/data/rhythm``) and are skipped,
with the reason shown, where it is absent. The full cross-validation lives in
``python -m benchmarks rhythm`` (a few minutes), not here.
"""

from __future__ import annotations

import doctest
import importlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

import bprl.beats.rr_features as rrf
from bprl.beats import RhythmResult, af_windows, classify_rhythm, rr_irregularity_features
from bprl.beats.af import AF_FEATURE_NAMES, AF_MODEL_PATH, af_scores, afdb_window_table, load_af_model
from bprl.beats.rhythm_classes import (
    CINC_MODEL_PATH,
    RHYTHM_CLASSES,
    RHYTHM_FEATURE_NAMES,
    load_rhythm_model,
    rhythm_scores,
)
from bprl.beats.rhythm_data import (
    afdb_record_names,
    cinc2017_reference,
    read_afdb_rr,
    read_cinc2017_ecg,
    rhythm_fraction,
)
from bprl.errors import FeatureError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rhythm_dir() -> Path:
    env = os.environ.get("BPRL_RHYTHM_DIR")
    root = Path(env) if env else REPO.parent / "shared" / "data" / "rhythm"
    if not (root / "afdb_rr_rhythm").is_dir() or not (root / "cinc2017" / "training_subset").is_dir():
        pytest.skip(
            f"rhythm data (afdb_rr_rhythm/, cinc2017/training_subset/) not found in {root} (set BPRL_RHYTHM_DIR)"
        )
    return root


# ------------------------------------------------------------------ RR features, hand-worked
def test_regular_rr_has_no_irregularity() -> None:
    rr = np.full(30, 800.0)
    assert rrf.turning_point_ratio(rr) == 0.0
    assert rrf.rmssd_ms(rr) == 0.0
    assert rrf.nrmssd(rr) == 0.0
    assert rrf.shannon_entropy_rr(rr) == 0.0
    assert rrf.pnnx(rr) == 0.0
    assert rrf.median_abs_drr_ratio(rr) == 0.0
    assert rrf.rr_spread(rr) == 0.0
    assert rrf.sample_entropy(rr) == 0.0
    # every template matches: SampEn = 0, so COSEn = ln(2 x 30 ms) - ln(800 ms)
    assert rrf.coefficient_of_sample_entropy(rr) == pytest.approx(math.log(60.0 / 800.0))


def test_alternating_rr() -> None:
    rr = np.array([800.0, 900.0] * 10)
    assert rrf.turning_point_ratio(rr) == 1.0
    assert rrf.rmssd_ms(rr) == pytest.approx(100.0)
    assert rrf.nrmssd(rr) == pytest.approx(100.0 / 850.0)
    assert rrf.pnnx(rr, 50.0) == 1.0
    assert rrf.fraction_drr_above(rr, 0.12) == pytest.approx(
        10 / 19
    )  # 100 > 96 after 800, not > 108 after 900
    assert rrf.rr_autocorrelation(rr) == pytest.approx(-0.95)  # 19 lagged products of -2500 / (20 x 2500)


def test_cosen_hand_worked() -> None:
    # m = 1, r = 30 ms: length-1 templates 800 810 800 900 800 -> 6 pairs within 30 ms;
    # of them (0,1), (0,4), (1,4) still match at length 2 -> A = 3, B = 6, SampEn = ln 2
    rr = np.array([800.0, 810.0, 800.0, 900.0, 800.0, 810.0])
    expected = math.log(2.0) + math.log(60.0) - math.log(820.0)
    assert rrf.coefficient_of_sample_entropy(rr, min_matches=1) == pytest.approx(expected)
    assert rrf.sample_entropy(rr, m=1, r=30.0 / np.std(rr)) == pytest.approx(math.log(2.0))


def test_cosen_separates_irregular_from_regular() -> None:
    rng = np.random.default_rng(1)
    irregular = rng.uniform(400.0, 1000.0, 40)
    sinus = 800.0 + 30.0 * np.sin(np.arange(40) * 2 * np.pi / 5) + rng.normal(0, 5, 40)
    assert rrf.coefficient_of_sample_entropy(irregular) > -1.4 > rrf.coefficient_of_sample_entropy(sinus)


def test_shannon_entropy_uniform_histogram_is_one() -> None:
    rr = 800.0 + 10.0 * np.arange(16)  # one interval per bin of 16
    assert rrf.shannon_entropy_rr(rr, trim=0.0) == pytest.approx(1.0)


def test_rr_features_names_and_short_input() -> None:
    f = rr_irregularity_features(np.full(20, 750.0))
    assert tuple(f) == rrf.RR_FEATURE_NAMES
    assert f["hr_bpm"] == pytest.approx(80.0)
    empty = rr_irregularity_features(np.array([np.nan, -1.0]))
    assert all(math.isnan(v) for v in empty.values())


@pytest.mark.parametrize("module", ["bprl.beats.rr_features", "bprl.beats.af", "bprl.beats.rhythm_classes"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ------------------------------------------------------------------ AF windows, synthetic
def _sinus_then_af(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = 150
    sinus = 0.85 + 0.04 * np.sin(np.arange(n) * 2 * np.pi / 4.5) + rng.normal(0, 0.008, n)
    af = rng.uniform(0.35, 1.1, n)
    return np.cumsum(np.concatenate([sinus, af]))


def test_af_windows_regular_vs_irregular() -> None:
    r = _sinus_then_af()
    out = af_windows(r)
    assert list(out.columns) == ["t_start_s", "t_end_s", "n_beats", "af_probability", "af", "label"]
    sinus_end = r[149]
    known = out[out["label"] != "unknown"]
    in_sinus = known[known["t_end_s"] <= sinus_end]
    in_af = known[known["t_start_s"] >= sinus_end]
    assert len(in_sinus) >= 3 and len(in_af) >= 3
    assert (in_sinus["label"] == "non-AF").all()
    assert (in_af["label"] == "AF").all()
    assert set(out["label"]) <= {"AF", "non-AF", "unknown"}
    assert out["af"].to_numpy().dtype == bool


def test_af_windows_unknown_and_errors() -> None:
    few = np.cumsum(np.full(8, 0.8))  # 7 RR intervals: too few
    out = af_windows(few)
    assert (out["label"] == "unknown").all() and out["af_probability"].isna().all() and not out["af"].any()
    # a window of 5 s is too short even with enough beats
    short = af_windows(np.cumsum(np.full(40, 0.5)), window_s=30.0, t_end_s=35.0)
    assert short["label"].iloc[-1] == "unknown"
    with pytest.raises(FeatureError):
        af_windows(few[::-1])
    with pytest.raises(FeatureError):
        af_windows(few, window_s=0.0)


def test_af_windows_single_window_and_determinism() -> None:
    r = _sinus_then_af(seed=3)
    a, b = af_windows(r), af_windows(r.copy())
    assert a.equals(b)
    # one 30-s stretch alone (no neighbours: context features NaN) is still scored
    seg = r[(r >= r[160]) & (r < r[160] + 30.0)]
    one = af_windows(seg - seg[0], t_end_s=30.0)
    assert len(one) == 1 and one["label"].iloc[0] == "AF"


def test_af_scores() -> None:
    s = af_scores(np.array([1, 1, 0, 0], bool), np.array([1, 0, 0, 1], bool))
    assert (s["se"], s["sp"], s["ppv"], s["acc"]) == (0.5, 0.5, 0.5, 0.5)


# ------------------------------------------------------------------ shipped models
@pytest.mark.parametrize("path", [AF_MODEL_PATH, CINC_MODEL_PATH], ids=["af_rr", "cinc2017"])
def test_shipped_model_is_a_small_text_file_with_a_card(path: Path) -> None:
    assert path.is_file(), f"{path} missing: python -m bprl.beats.train_rhythm"
    raw = path.read_bytes()
    assert len(raw) < 1_000_000
    text = raw.decode("utf-8")  # a text model: no pickle, nothing executed on load
    assert text.startswith("tree\n")
    card = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    names = AF_FEATURE_NAMES if path == AF_MODEL_PATH else RHYTHM_FEATURE_NAMES
    assert tuple(card["feature_names"]) == names
    assert "cross_validation" in card and "training_data" in card


def test_models_load_and_report_their_cv() -> None:
    booster, card = load_af_model()
    assert booster.num_feature() == len(AF_FEATURE_NAMES)
    assert card["cross_validation"]["scheme"] == "leave-one-record-out"
    booster, card = load_rhythm_model()
    assert tuple(card["classes"]) == RHYTHM_CLASSES
    assert 0.0 < card["cross_validation"]["mean"]["cinc_f1"] <= 1.0


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FeatureError, match="not found"):
        af_windows(np.cumsum(np.full(50, 0.8)), model_path=tmp_path / "none.txt")


# ------------------------------------------------------------------ real records
def test_afdb_record_windows(rhythm_dir: Path) -> None:
    folder = rhythm_dir / "afdb_rr_rhythm"
    assert len(afdb_record_names(folder)) == 17
    rec = read_afdb_rr(folder, "04746")  # paroxysmal AF: leave-one-record-out Se 1.00, Sp 1.00
    out = af_windows(rec.r_times_s)
    ref = rhythm_fraction(rec, out["t_start_s"].to_numpy(), out["t_end_s"].to_numpy(), "AFIB") > 0.5
    known = out["label"].to_numpy() != "unknown"
    s = af_scores(ref[known], out["af"].to_numpy()[known])
    assert s["n_af"] > 50 and s["se"] >= 0.98 and s["sp"] >= 0.98
    # af_windows scores the feature rows of the training table of that record
    table = afdb_window_table(folder).query("record == '04746'")
    prob = load_af_model()[0].predict(table[list(AF_FEATURE_NAMES)].to_numpy())
    assert np.allclose(prob[known], out["af_probability"].to_numpy()[known])


def test_cinc_records_classified(rhythm_dir: Path) -> None:
    folder = rhythm_dir / "cinc2017" / "training_subset"
    ref = cinc2017_reference(folder)
    assert len(ref) == 1731
    picked = ref.groupby("label").head(3)
    got = []
    for rec in picked["record"]:
        x, fs = read_cinc2017_ecg(folder, rec)
        res = classify_rhythm(x, fs)
        assert isinstance(res, RhythmResult) and res.reason == "model" and res.n_beats > 0
        assert set(res.probabilities) == set(RHYTHM_CLASSES)
        assert sum(res.probabilities.values()) == pytest.approx(1.0)
        assert res == classify_rhythm(x.copy(), fs)  # deterministic
        got.append(res.label)
    # training records (in-sample): the shipped model reproduces at least 10 of these 12 labels
    assert np.sum(np.array(got) == picked["label"].to_numpy()) >= 10
    # the same record at 500 Hz (resampled to 300 Hz inside) gets the same label
    x, fs = read_cinc2017_ecg(folder, picked["record"].iloc[0])
    from scipy.signal import resample_poly

    assert classify_rhythm(resample_poly(x, 5, 3), 500.0).label == got[0]


def test_rhythm_scores_hand_worked() -> None:
    ref = np.array(["N", "N", "A", "A", "O", "~"])
    pred = np.array(["N", "A", "A", "A", "N", "~"])
    s = rhythm_scores(ref, pred)
    assert s["f1"]["N"] == pytest.approx(0.5)  # tp 1, 2 reference + 2 predicted
    assert s["f1"]["A"] == pytest.approx(0.8)  # tp 2, 2 + 3
    assert s["f1"]["O"] == 0.0 and s["f1"]["~"] == 1.0
    assert s["cinc_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert s["confusion"].loc["O", "N"] == 1


# ------------------------------------------------------------------ bad input
def _ecg_like(fs: float, seconds: float) -> np.ndarray:
    t = np.arange(int(fs * seconds)) / fs
    return np.exp(-(((t % 0.8) - 0.4) ** 2) / (2 * 0.01**2))  # 1-mV spikes at 75 bpm


def test_bad_input_gets_unknown_with_a_reason() -> None:
    short = classify_rhythm(_ecg_like(300.0, 2.0), 300.0)
    assert short.label == "unknown" and "shorter than 5 s" in short.reason and short.probabilities == {}
    flat = classify_rhythm(np.full(9000, 0.3), 300.0)
    assert flat.label == "unknown" and "flat lead" in flat.reason
    low = classify_rhythm(_ecg_like(50.0, 30.0), 50.0)
    assert low.label == "unknown" and "50 Hz" in low.reason
    missing = classify_rhythm(np.full(9000, np.nan), 300.0)
    assert missing.label == "unknown" and "NaN" in missing.reason


def test_programming_errors_raise() -> None:
    with pytest.raises(FeatureError):
        classify_rhythm(np.zeros((2, 9000)), 300.0)
    with pytest.raises(FeatureError):
        classify_rhythm(np.zeros(9000), 0.0)
    with pytest.raises(FeatureError):
        classify_rhythm(np.zeros(9000), float("nan"))
