"""BP ranges and the range-aware head (seed 002): classes, per-range errors, training, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from bprl.errors import EstimatorError
from bprl.estimator.config import TrainConfig
from bprl.estimator.estimators import CnnGruEstimator, OnnxEstimator
from bprl.estimator.export import export_onnx
from bprl.estimator.ranges import BP_RANGES, bp_range, format_ranges, range_metrics
from bprl.estimator.train import train_estimator
from tests.test_estimator import TINY, TINY_HYBRID, _dataset

torch.set_num_threads(1)


def test_ranges_follow_acc_aha_with_the_higher_stage_winning() -> None:
    sbp = [85.0, 95.0, 128.0, 125.0, 132.0, 138.0, 141.0, 120.0, 160.0, np.nan]
    dbp = [70.0, 58.0, 79.0, 82.0, 70.0, 92.0, 70.0, 90.0, 50.0, 80.0]
    assert bp_range(sbp, dbp).tolist() == [0, 0, 1, 2, 2, 3, 3, 3, 3, -1]


def test_range_metrics_by_reference_range_and_recall() -> None:
    ref = np.array([[85.0, 55.0], [120.0, 70.0], [118.0, 72.0], [150.0, 95.0]])
    est = ref + np.array([[10.0, 2.0], [1.0, -1.0], [-3.0, 1.0], [-20.0, -4.0]])
    out = range_metrics(est, ref, pred_range=np.array([1, 1, 1, 3]))
    assert out["hypotension"] == {
        "n": 1,
        "sbp_mae_mmhg": 10.0,
        "dbp_mae_mmhg": 2.0,
        "sbp_me_mmhg": 10.0,
        "recall_pct": 0.0,
    }
    assert out["normal"]["sbp_mae_mmhg"] == 2.0 and out["normal"]["recall_pct"] == 100.0
    assert out["stage 1"]["n"] == 0 and np.isnan(out["stage 1"]["sbp_mae_mmhg"])
    assert out["accuracy_pct"] == 75.0 and out["balanced_accuracy_pct"] == pytest.approx(200 / 3)
    table = format_ranges(out)
    assert "| stage 2 | 1 | 20.0 | -20.0 | 4.0 | 100.0 |" in table and "balanced accuracy 66.7 %" in table
    assert "recall" not in format_ranges(range_metrics(est, ref))


def test_range_weight_needs_the_range_head() -> None:
    with pytest.raises(ValidationError, match=r"needs model\.range_head"):
        TrainConfig(model=TINY, range_weight=0.5)


def test_range_head_trains_reports_and_exports(tmp_path: Path) -> None:
    model = TINY_HYBRID.model_copy(update={"range_head": True})
    ds = _dataset(model, {"train": 6, "val": 2, "test": 2}, n_steps=20)
    cfg = TrainConfig(model=model, epochs=3, batch_size=16, range_weight=0.5, oversample=True)
    ckpt = train_estimator(ds, tmp_path / "ckpt", cfg, seed=0, progress=False)
    est = CnnGruEstimator.load(ckpt)
    test = ds.subset("test")
    logits = est.predict_ranges(test.x, test.feats)
    assert logits.shape == (len(test), len(BP_RANGES)) and np.isfinite(logits).all()
    by_range = json.loads((ckpt / "metrics.json").read_text())["test"]["by_range"]
    assert (
        sum(by_range[name]["n"] for name in BP_RANGES)
        == json.loads((ckpt / "metrics.json").read_text())["test"]["n_steps"]
    )
    assert 0 <= by_range["balanced_accuracy_pct"] <= 100
    assert "range recall %" in (ckpt / "MODEL_CARD.md").read_text()
    onnx_est = OnnxEstimator(export_onnx(ckpt, tmp_path / "m.onnx"))  # the regression only
    np.testing.assert_allclose(
        onnx_est.predict_windows(test.x, test.feats), est.predict_windows(test.x, test.feats), atol=0.01
    )


def test_predict_ranges_without_a_range_head_is_an_error() -> None:
    from bprl.estimator.model import CnnGruNet

    with pytest.raises(EstimatorError, match="no range head"):
        CnnGruEstimator(CnnGruNet(TINY), {}).predict_ranges(np.zeros((1, 2, TINY.window_len), np.float32))
