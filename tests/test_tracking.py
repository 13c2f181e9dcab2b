"""Within-subject tracking metrics (bprl.tracking) and the within-subject linear baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bprl.errors import EstimatorError
from bprl.estimator.estimators import load_estimator
from bprl.estimator.linear import DeltaLinearEstimator
from bprl.tracking import (
    compare_tracking,
    estimator_tracking,
    format_tracking,
    pooled_tracking,
    subject_tracking,
)


def _steps(ref: np.ndarray, est: np.ndarray, sid: str = "s1") -> pd.DataFrame:
    n = len(ref)
    return pd.DataFrame(
        {
            "subject_id": sid,
            "t_s": 30.0 * np.arange(n),
            "est_sbp_mmhg": est,
            "ref_sbp_mmhg": ref,
            "est_dbp_mmhg": 0.6 * est,
            "ref_dbp_mmhg": 0.6 * ref,
        }
    )


def _row(steps: pd.DataFrame, target: str = "sbp") -> pd.Series:
    return subject_tracking(steps).set_index("target").loc[target]


REF = np.array([120.0, 125.0, 135.0, 150.0, 140.0, 110.0, 118.0])


def test_perfect_tracker_with_an_offset() -> None:
    row = _row(_steps(REF, REF + 17.0))
    assert row["r"] == pytest.approx(1.0) and row["slope"] == pytest.approx(1.0)
    assert row["sd_ratio"] == pytest.approx(1.0)
    assert row["trend_mae_mmhg"] == pytest.approx(0.0) and row["trend_ratio"] == pytest.approx(0.0)
    # changes from t0 = 120: 5, 15, 30, 20, -10, -2 -> >= 10: 4 of them, >= 20: 2
    assert row["n_changes_ge10"] == 4 and row["n_changes_ge20"] == 2
    assert row["dir_agree_ge10_pct"] == 100.0
    assert row["hold_mae_mmhg"] == pytest.approx(np.mean([5, 15, 30, 20, 10, 2]))


def test_constant_estimate_is_hold() -> None:
    row = _row(_steps(REF, np.full(len(REF), 130.0)))
    assert row["sd_ratio"] == 0.0 and math.isnan(row["r"]) and row["slope"] == pytest.approx(0.0)
    assert row["trend_mae_mmhg"] == pytest.approx(row["hold_mae_mmhg"]) and row["trend_ratio"] == 1.0
    assert row["dir_agree_ge10_pct"] == 0.0  # sign(0) never matches a change


def test_half_gain_and_reversed_estimates() -> None:
    half = _row(_steps(REF, 0.5 * REF + 40))
    assert half["slope"] == pytest.approx(0.5) and half["sd_ratio"] == pytest.approx(0.5)
    assert half["trend_ratio"] == pytest.approx(0.5) and half["r"] == pytest.approx(1.0)
    rev = _row(_steps(REF, 260 - REF))
    assert rev["r"] == pytest.approx(-1.0) and rev["dir_agree_ge10_pct"] == 0.0
    assert rev["trend_ratio"] == pytest.approx(2.0)


def test_order_nan_rows_and_short_subjects() -> None:
    steps = _steps(REF, REF + 3.0)
    steps.loc[0, "est_sbp_mmhg"] = np.nan  # t0 becomes the second step (ref 125)
    shuffled = steps.sample(frac=1.0, random_state=0)
    row = _row(shuffled)
    assert row["n_steps"] == len(REF) - 1 and row["trend_mae_mmhg"] == pytest.approx(0.0)
    assert row["hold_mae_mmhg"] == pytest.approx(np.mean(np.abs(REF[2:] - 125.0)))
    assert _row(shuffled, "dbp")["n_steps"] == len(REF)  # DBP keeps the row
    short = _row(_steps(REF[:2], REF[:2]))
    assert short["n_steps"] == 2 and math.isnan(short["r"]) and math.isnan(short["trend_ratio"])
    with pytest.raises(EstimatorError, match="est_dbp_mmhg"):
        subject_tracking(steps.drop(columns="est_dbp_mmhg"))


def _cohort(n_subjects: int, gain: float, noise: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n_subjects):
        ref = 120 + 15 * np.sin(np.linspace(0, 3, 40) + i) + rng.normal(0, 2, 40)
        parts.append(_steps(ref, gain * ref + rng.normal(0, noise, 40) + 10 * i, sid=f"s{i:02d}"))
    return pd.concat(parts, ignore_index=True)


def test_pooled_medians_intervals_and_determinism() -> None:
    per = subject_tracking(_cohort(12, 1.0, 3.0, 0))
    a, b = pooled_tracking(per, n_boot=500, seed=3), pooled_tracking(per, n_boot=500, seed=3)
    assert a == b
    r = a["sbp"]["r"]
    assert r["median"] == pytest.approx(per[per.target == "sbp"]["r"].median())
    assert r["lo"] <= r["median"] <= r["hi"] and r["n_subjects"] == 12
    d = a["sbp"]["dir_agree_ge10_pct"]
    m = per[per.target == "sbp"]
    pooled = 100 * (m["dir_agree_ge10_pct"] / 100 * m["n_changes_ge10"]).sum() / m["n_changes_ge10"].sum()
    assert d["median"] == pytest.approx(pooled) and d["n_changes"] == m["n_changes_ge10"].sum()


def test_paired_comparison_prefers_the_better_tracker() -> None:
    good = subject_tracking(_cohort(10, 1.0, 2.0, 1))
    bad = subject_tracking(_cohort(10, 0.3, 8.0, 1))
    cmp = compare_tracking(good, bad, n_boot=300)
    assert cmp["sbp"]["r"]["median"] > 0 and cmp["sbp"]["r"]["lo"] > 0
    assert cmp["sbp"]["trend_ratio"]["hi"] < 0 and cmp["sbp"]["trend_ratio"]["a_better_pct"] == 100.0
    other = bad.assign(subject_id=lambda d: "x" + d["subject_id"])
    with pytest.raises(EstimatorError, match="share no subject"):
        compare_tracking(good, other)
    table = format_tracking(
        pooled_tracking(good, n_boot=100), "good", {"bad": pooled_tracking(bad, n_boot=100)}
    )
    assert "| SBP | r | " in table and "| good | bad | hold |" in table


def _tables(n_subjects: int, seed: int) -> list[pd.DataFrame]:
    """Subjects with intercepts far apart: SBP = c_i - 0.5 (PAT - 250) + 0.2 (HR - 70) + noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_subjects):
        pat = 250 + 20 * rng.standard_normal(60) + 20 * i  # later PAT in subjects of higher BP
        hr = 70 + 8 * rng.standard_normal(60)
        base = 90 + 15 * i
        sbp = base - 0.5 * (pat - 250) + 0.2 * (hr - 70) + rng.normal(0, 0.5, 60)
        out.append(
            pd.DataFrame(
                {
                    "subject_id": f"s{i}",
                    "t_start_s": 30.0 * np.arange(60),
                    "pat_foot_ms": pat,
                    "hr_bpm": hr,
                    "ref_sbp_mmhg": sbp,
                    "ref_dbp_mmhg": 0.6 * sbp,
                }
            )
        )
    return out


def test_delta_linear_recovers_within_subject_slopes(tmp_path: Path) -> None:
    tables = _tables(6, 0)
    est = DeltaLinearEstimator().fit(tables)
    np.testing.assert_allclose(est.coef_sbp, [-0.5, 0.2], atol=0.02)
    # a pooled fit is misled by the intercepts that grow with PAT across subjects: a positive PAT slope
    pooled = np.linalg.lstsq(
        np.column_stack([np.ones(360), pd.concat(tables)[["pat_foot_ms", "hr_bpm"]]]),
        pd.concat(tables)["ref_sbp_mmhg"],
        rcond=None,
    )[0]
    assert pooled[1] > 0
    path = est.save(tmp_path / "delta.json")
    again = load_estimator(path)
    assert isinstance(again, DeltaLinearEstimator) and again.fingerprint() == est.fingerprint()
    np.testing.assert_array_equal(again.predict_table(tables[0])[0], est.predict_table(tables[0])[0])
    (tmp_path / "bad.json").write_text(json.dumps({**est.to_dict(), "coef_sbp": [1.0]}))
    with pytest.raises(EstimatorError, match=r"bad\.json: 2 features need 2 coefficients"):
        load_estimator(tmp_path / "bad.json")
    with pytest.raises(EstimatorError, match="lacks columns"):
        est.predict_table(tables[0].drop(columns="hr_bpm"))


def test_estimator_tracking_side_by_side() -> None:
    train, test = _tables(6, 0), _tables(4, 1)
    linear = DeltaLinearEstimator().fit(train)
    items = [(t, None) for t in test]
    out = estimator_tracking(
        linear, items, linear=DeltaLinearEstimator(["pat_foot_ms"]).fit(train), n_boot=200
    )
    assert out["model"]["sbp"]["r"]["median"] > 0.99
    assert out["model"]["sbp"]["trend_ratio"]["median"] < 0.1
    assert out["linear"]["sbp"]["r"]["median"] < out["model"]["sbp"]["r"]["median"]
    assert out["paired_vs_linear"]["sbp"]["r"]["a_better_pct"] == 100.0
    json.dumps(out)  # JSON-ready


def test_estimator_tracking_orders_steps_by_time_within_a_record() -> None:
    train, test = _tables(6, 0), _tables(4, 1)
    est = DeltaLinearEstimator().fit(train)
    ordered = estimator_tracking(est, [(t, None) for t in test], n_boot=50)
    # rows shuffled within each table: t0 is still the earliest step, so nothing changes
    shuffled = [t.sample(frac=1.0, random_state=i) for i, t in enumerate(test)]
    again = estimator_tracking(est, [(t, None) for t in shuffled], n_boot=50)
    assert again["model"] == ordered["model"]
    pd.testing.assert_frame_equal(pd.DataFrame(again["per_subject"]), pd.DataFrame(ordered["per_subject"]))
    # without the sort, t0 would be a random step: the hold error (|ref(t) - ref(t0)|) would differ
    first = pd.DataFrame(ordered["per_subject"]).set_index(["subject_id", "target"])
    ref = test[0]["ref_sbp_mmhg"].to_numpy()
    hold = first.loc[("s0", "sbp"), "hold_mae_mmhg"]
    assert hold == pytest.approx(np.mean(np.abs(ref[1:] - ref[0])))
    with pytest.raises(EstimatorError, match="t_start_s"):
        estimator_tracking(est, [(test[0].drop(columns="t_start_s"), None)])
