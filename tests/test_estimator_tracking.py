"""The estimator tracks BP within subjects: paired training, collapse warning, the shipped pretrained model."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bprl.errors import ConfigError, EstimatorError
from bprl.estimator.config import ModelConfig, TrainConfig
from bprl.estimator.dataset import WindowDataset
from bprl.estimator.estimators import CnnGruEstimator, load_estimator
from bprl.estimator.linear import DeltaLinearEstimator
from bprl.estimator.metrics import evaluate_tracking
from bprl.estimator.pretrained import pretrained_path
from bprl.estimator.train import train_estimator
from tests.test_estimator import TINY, TINY_HYBRID, _dataset

torch.set_num_threads(1)


_DATA: dict[str, WindowDataset] = {}


def _tracking_data(model: ModelConfig) -> WindowDataset:
    """Subjects whose SBP swings by +-20 mmHg around offsets of -10/0/+10 mmHg, PAT carrying it."""
    key = model.model_dump_json()
    if key not in _DATA:
        _DATA[key] = _dataset(model, {"train": 8, "val": 2, "test": 4}, n_steps=24)
    return _DATA[key]


@pytest.fixture(scope="module")
def tracking_data() -> WindowDataset:
    return _tracking_data(TINY)


def _median_r(metrics: dict, target: str = "sbp") -> float:
    return float(metrics["model"][target]["r"]["median"])


@pytest.mark.parametrize("model", [TINY, TINY_HYBRID], ids=["waveforms", "hybrid"])
def test_paired_training_tracks_on_held_out_subjects(model: ModelConfig, tmp_path: Path) -> None:
    tracking_data = _tracking_data(model)
    cfg = TrainConfig(model=model, epochs=8, batch_size=16, lr=3e-3, patience=8)
    ckpt = train_estimator(tracking_data, tmp_path / "ckpt", cfg, seed=0, progress=False)
    est = CnnGruEstimator.load(ckpt)
    tracking = evaluate_tracking(est, tracking_data, "test")
    # a collapsed (constant per subject) model has r NaN or ~0 and an SD ratio ~0
    assert _median_r(tracking) > 0.6, tracking["model"]["sbp"]
    assert tracking["model"]["sbp"]["sd_ratio"]["median"] > 0.3
    metrics = json.loads((ckpt / "metrics.json").read_text())
    assert metrics["test_tracking"]["model"]["sbp"]["r"]["median"] == pytest.approx(_median_r(tracking))
    log = (ckpt / "train_log.csv").read_text().splitlines()[0].split(",")
    assert {"val_r_sbp", "val_sd_ratio_sbp", "val_trend_ratio_dbp"} <= set(log)


def test_training_warns_when_predictions_collapse(
    tracking_data: WindowDataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # absolute loss only, hardly any learning: the untrained head's output barely moves with the input
    cfg = TrainConfig(model=TINY, epochs=1, batch_size=16, lr=1e-9, pair_weight=0.0, absolute_weight=1.0)
    with caplog.at_level(logging.WARNING, logger="bprl.estimator"):
        ckpt = train_estimator(tracking_data, tmp_path / "flat", cfg, seed=0, progress=False)
    tracking = evaluate_tracking(CnnGruEstimator.load(ckpt), tracking_data, "test")
    assert tracking["model"]["sbp"]["sd_ratio"]["median"] < 0.2  # it did collapse ...
    assert "the estimate has COLLAPSED: median within-subject SBP SD is" in caplog.text  # ... and said so


def test_loss_weights_are_checked() -> None:
    with pytest.raises(ValueError, match="nothing to train on"):
        TrainConfig(absolute_weight=0.0, pair_weight=0.0)


def test_old_checkpoint_format_asks_for_retraining(tmp_path: Path) -> None:
    src = pretrained_path()
    old = tmp_path / "old"
    shutil.copytree(src, old)
    info = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**info, "format": "bprl-cnngru-1"}))
    with pytest.raises(EstimatorError, match=r"config\.json: checkpoint format 'bprl-cnngru-1'.*retrain"):
        load_estimator(old)


# ------------------------------------------------------------------ the shipped pretrained estimator
def test_pretrained_checkpoint_is_small_and_reloads_identically() -> None:
    path = pretrained_path()
    assert (path / "model.pt").stat().st_size < 3_000_000
    for name in (
        "config.json",
        "metrics.json",
        "evaluation.json",
        "MODEL_CARD.md",
        "recipe.json",
        "delta_linear.json",
    ):
        assert (path / name).is_file(), name
    a, b = load_estimator(path), load_estimator(path)
    assert isinstance(a, CnnGruEstimator) and a.config.hybrid
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 2, a.config.window_len)).astype(np.float32)
    feats = np.tile([250.0, 320.0, 80.0, 150.0, 400.0], (16, 1)).astype(np.float32)
    feats[:, 0] += np.linspace(-30, 30, 16)
    pa, pb = a.predict_windows(x, feats), b.predict_windows(x, feats)
    np.testing.assert_array_equal(pa, pb)
    # the estimate moves with PAT: later PAT (slower pulse wave), lower SBP
    assert np.corrcoef(feats[:, 0], pa[:, 0])[0, 1] < -0.5
    card = (path / "MODEL_CARD.md").read_text()
    assert "Held-out cohort" in card and "linear" in card


def test_pretrained_onnx_export_keeps_parity(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")  # an optional extra
    from bprl.estimator.estimators import OnnxEstimator
    from bprl.estimator.export import export_onnx

    est = load_estimator(pretrained_path())
    onnx_est = OnnxEstimator(export_onnx(pretrained_path(), tmp_path / "default.onnx"))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 2, est.config.window_len)).astype(np.float32)
    feats = (np.array([250.0, 320.0, 80.0, 150.0, 400.0]) + rng.normal(0, 20, (32, 5))).astype(np.float32)
    diff = np.abs(est.predict_windows(x, feats) - onnx_est.predict_windows(x, feats))
    assert diff.max() <= 0.01


def test_experiment_names_the_pretrained_checkpoint(tmp_path: Path) -> None:
    from bprl.experiments.loading import load_experiment

    base = Path(__file__).parents[1] / "experiments" / "quickstart.yaml"
    text = base.read_text()
    assert "checkpoint: pretrained" in text, "the quickstart must use the shipped estimator"
    exp = load_experiment(base)
    assert exp.estimator_checkpoint == pretrained_path()
    both = tmp_path / "both.yaml"
    both.write_text(text.replace("checkpoint: pretrained", "checkpoint: pretrained\n  train: {epochs: 2}"))
    with pytest.raises(ConfigError, match="not both"):
        load_experiment(both)
    missing = tmp_path / "missing.yaml"
    missing.write_text(text.replace("checkpoint: pretrained", "checkpoint: no/such/ckpt"))
    with pytest.raises(ConfigError, match=r"estimator\.checkpoint: 'no/such/ckpt' not found"):
        load_experiment(missing)


def test_train_pretrained_writes_a_complete_checkpoint_and_replaces_the_old_one(tmp_path: Path) -> None:
    from bprl.estimator.pretrained import PretrainRecipe, train_pretrained

    small = ModelConfig(conv_channels=(8, 8), conv_kernels=(5, 3), pools=(4, 4), gru_hidden=8, head_hidden=8)
    recipe = PretrainRecipe(
        train_subjects=5,
        train_hours=0.1,
        test_subjects=2,
        test_hours=0.1,
        test_specs=("default",),
        train=TrainConfig(model=small, epochs=1, max_windows_per_step=1),
        workers=1,
    )
    out = tmp_path / "weights" / "default"
    out.mkdir(parents=True)
    (out / "stale.txt").write_text("from an older build")
    train_pretrained(out, tmp_path / "work", recipe, progress=False)
    names = {p.name for p in out.iterdir()}
    assert names == {
        "model.pt", "config.json", "metrics.json", "train_log.csv", "MODEL_CARD.md",
        "recipe.json", "evaluation.json", "delta_linear.json",
    }  # fmt: skip
    assert sorted(p.name for p in out.parent.iterdir()) == ["default"]  # no partial or old folder left
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["heldout"]["default"]["n_records"] == 2 and ev["timing_s"]["cohorts_reused"] is False
    assert "spec `default`" in (out / "MODEL_CARD.md").read_text()
    assert isinstance(load_estimator(out / "delta_linear.json"), DeltaLinearEstimator)
    assert PretrainRecipe.model_validate(json.loads((out / "recipe.json").read_text())) == recipe
