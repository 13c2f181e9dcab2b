"""BP-range classifier on replay-table features (bprl.estimator.range_classifier)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bprl.errors import EstimatorError
from bprl.estimator.range_classifier import RangeClassifier
from bprl.estimator.ranges import bp_range


def _tables(seed: int, n: int = 600, rare_share: float = 0.05, noise: float = 1.0) -> list[pd.DataFrame]:
    """Steps whose feature ``x`` follows SBP with noise; hypotension (SBP < 90) is rare."""
    rng = np.random.default_rng(seed)
    n_rare = int(n * rare_share)
    sbp = np.concatenate([rng.uniform(75, 89, n_rare), rng.uniform(95, 170, n - n_rare)])
    table = pd.DataFrame(
        {
            "x": sbp / 10 + rng.normal(0, noise, n),
            "noise": rng.normal(0, 1, n),
            "ref_sbp_mmhg": sbp,
            "ref_dbp_mmhg": np.where(sbp < 90, 55.0, 70.0),  # the range follows SBP
        }
    )
    return [table.iloc[: n // 2], table.iloc[n // 2 :]]


def _recall(clf: RangeClassifier, tables: list[pd.DataFrame], code: int) -> float:
    t = pd.concat(tables)
    truth = bp_range(t["ref_sbp_mmhg"].to_numpy(), t["ref_dbp_mmhg"].to_numpy())
    return float(np.mean(clf.predict_table(t)[truth == code] == code))


def test_an_informative_feature_is_classified_and_noise_is_not() -> None:
    train, test = _tables(0, noise=0.3), _tables(1, noise=0.3)
    clf = RangeClassifier(["x"]).fit(train)
    t = pd.concat(test)
    truth = bp_range(t["ref_sbp_mmhg"].to_numpy(), t["ref_dbp_mmhg"].to_numpy())
    assert np.mean(clf.predict_table(t) == truth) > 0.8
    blind = RangeClassifier(["noise"]).fit(train)  # a feature without BP in it: the common ranges only
    assert np.mean(blind.predict_table(t) == truth) < 0.5


def test_oversampling_raises_the_recall_of_a_rare_range() -> None:
    """3 % of the steps hypotensive, a noisy feature: the plain fit never calls the rare range, the
    oversampled one finds most of it (0 -> 78 % recall here)."""
    train, test = _tables(10, rare_share=0.03, noise=3.0), _tables(20, rare_share=0.03, noise=3.0)
    plain = RangeClassifier(["x"]).fit(train)
    over = RangeClassifier(["x"], oversample=True).fit(train)
    assert _recall(over, test, 0) > _recall(plain, test, 0) + 0.4
    assert over.info["train_steps_per_range"]["hypotension"] == 18


def test_saved_classifier_reloads_to_identical_predictions(tmp_path: Path) -> None:
    train = _tables(4)
    clf = RangeClassifier(["x", "noise"], oversample=True).fit(train)
    t = pd.concat(_tables(5)).assign(noise=np.nan)  # missing values take the training median
    back = RangeClassifier.load(clf.save(tmp_path / "r.json"))
    np.testing.assert_array_equal(back.predict_proba_table(t), clf.predict_proba_table(t))
    assert back.features == ("x", "noise") and back.oversample
    again = RangeClassifier(["x", "noise"], oversample=True).fit(train)  # deterministic fit
    np.testing.assert_array_equal(again.coef, clf.coef)


def test_bad_input_is_an_estimator_error(tmp_path: Path) -> None:
    train = _tables(6)
    with pytest.raises(EstimatorError, match="no column"):
        RangeClassifier(["missing"]).fit(train)
    with pytest.raises(EstimatorError, match="need >= 20"):
        RangeClassifier(["x"]).fit([train[0].iloc[:5]])
    one_range = train[0].assign(ref_sbp_mmhg=110.0, ref_dbp_mmhg=70.0)
    with pytest.raises(EstimatorError, match="one range"):
        RangeClassifier(["x"]).fit([one_range])
    with pytest.raises(EstimatorError, match="before predicting"):
        RangeClassifier(["x"]).predict_table(train[0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(EstimatorError, match="not a bprl-range-classifier"):
        RangeClassifier.load(bad)
    bad.write_text("{")
    with pytest.raises(EstimatorError, match="cannot read"):
        RangeClassifier.load(bad)
    d = RangeClassifier(["x"]).fit(train).to_dict()
    d["coef"] = d["coef"][:1]
    bad.write_text(json.dumps(d))
    with pytest.raises(EstimatorError, match="shapes"):
        RangeClassifier.load(bad)
