"""Tests of the bprl.estimator package: configs, CNN-GRU training and checkpoints, PAT linear model, inference, ONNX."""

from __future__ import annotations

import json
import logging
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from bprl.cache_versions import STAMP_KEY, cache_versions
from bprl.errors import ConfigError, EstimatorError
from bprl.estimator.config import ModelConfig, TrainConfig
from bprl.estimator.dataset import (
    WindowDataset,
    build_window_dataset,
    cohort_record_path,
    oversampling_weights,
    read_manifest,
    windows_from_table,
)
from bprl.estimator.estimators import CnnGruEstimator, OnnxEstimator, load_estimator
from bprl.estimator.export import export_onnx
from bprl.estimator.inference import add_estimates, estimate_replay_table, estimate_tables
from bprl.estimator.linear import DeltaLinearEstimator, PatLinearEstimator
from bprl.estimator.metrics import error_metrics
from bprl.estimator.model import CnnGruNet, count_parameters
from bprl.estimator.pretrained import PretrainRecipe
from bprl.estimator.train import save_state_dict, train_estimator
from bprl.estimator.windows import normalise_windows, record_signals, step_windows
from bprl.sources import Channel, Record

torch.set_num_threads(1)

#: a small model so tests train in seconds
TINY = ModelConfig(
    window_s=4.0,
    conv_channels=(8, 8),
    conv_kernels=(5, 3),
    pools=(4, 4),
    gru_hidden=8,
    head_hidden=8,
    hybrid=False,
)
#: TINY with the features the synthetic tables have
TINY_HYBRID = TINY.model_copy(update={"hybrid": True, "feature_columns": ("pat_foot_ms", "hr_bpm")})
STEP_S = 12.0
EPOCHS = 6


def _synthetic_record(
    sid: str, seed: int, n_steps: int, bp_offset: float = 0.0
) -> tuple[Record, pd.DataFrame]:
    """A record (ECG 250 Hz, PPG 125 Hz) whose PAT falls as BP rises, and its replay table.

    SBP follows a slow sinusoid; PAT = 300 - 1.5 * (SBP - 120) ms, so the
    ECG-to-PPG delay in each window carries the label.
    """
    rng = np.random.default_rng(seed)
    dur = n_steps * STEP_S
    t_steps = np.arange(n_steps) * STEP_S
    sbp = 120 + bp_offset + 20 * np.sin(2 * np.pi * t_steps / (n_steps * STEP_S) + seed)
    dbp = 0.6 * sbp + 5
    beats = np.cumsum(rng.uniform(0.7, 0.9, size=int(dur / 0.7) + 2))
    beats = beats[beats < dur - 1]
    step_of_beat = np.minimum((beats // STEP_S).astype(int), n_steps - 1)
    pat_s = (300 - 1.5 * (sbp[step_of_beat] - 120)) / 1000
    t_ecg = np.arange(int(dur * 250)) / 250
    t_ppg = np.arange(int(dur * 125)) / 125
    ecg = np.zeros_like(t_ecg)
    ppg = np.zeros_like(t_ppg)
    for b, p in zip(beats, pat_s, strict=True):
        ecg += np.exp(-0.5 * ((t_ecg - b) / 0.01) ** 2)
        u = np.clip(t_ppg - (b + p), 0.0, 3.0)
        ppg += (u / 0.12) * np.exp(1 - u / 0.12)
    ecg += 0.02 * rng.standard_normal(len(ecg))
    ppg += 0.01 * rng.standard_normal(len(ppg))
    rec = Record(
        subject_id=sid,
        record_id=f"{sid}_r",
        path=f"<synthetic {sid}>",
        channels=[
            Channel("II", "ecg", 250.0, "mV", ecg.astype(np.float32)),
            Channel("Pleth", "ppg", 125.0, "NU", ppg.astype(np.float32)),
        ],
    )
    table = pd.DataFrame(
        {
            "subject_id": sid,
            "record_id": rec.record_id,
            "step": np.arange(n_steps),
            "t_start_s": t_steps,
            "t_end_s": t_steps + STEP_S,
            "pat_foot_ms": 300 - 1.5 * (sbp - 120),
            "hr_bpm": 60 / 0.8 + rng.normal(0, 1, n_steps),
            "ref_sbp_mmhg": sbp,
            "ref_dbp_mmhg": dbp,
        }
    )
    return rec, table


def _dataset(config: ModelConfig, n_per_split: dict[str, int], n_steps: int = 10) -> WindowDataset:
    parts = []
    k = 0
    for split, n in n_per_split.items():
        for _ in range(n):
            sid = f"v{k:03d}"
            rec, table = _synthetic_record(sid, seed=k, n_steps=n_steps, bp_offset=(k % 3 - 1) * 10)
            sw, y = windows_from_table(table, rec, config)
            parts.append((sid, split, sw, y, table))
            k += 1
    return WindowDataset(
        x=np.concatenate([p[2].x for p in parts]),
        feats=np.concatenate([p[2].feats for p in parts]),
        y=np.concatenate([p[3] for p in parts]),
        subject_id=np.concatenate([np.full(len(p[3]), p[0], dtype=object) for p in parts]),
        record_id=np.concatenate([np.full(len(p[3]), p[0] + "_r", dtype=object) for p in parts]),
        step=np.concatenate([p[4]["step"].to_numpy()[p[2].row] for p in parts]),
        split=np.concatenate([np.full(len(p[3]), p[1], dtype=object) for p in parts]),
        config=config,
        source="synthetic",
    )


@pytest.fixture(scope="module")
def dataset() -> WindowDataset:
    return _dataset(TINY, {"train": 6, "val": 2, "test": 2}, n_steps=20)


@pytest.fixture(scope="module")
def checkpoint(dataset: WindowDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = TrainConfig(model=TINY, epochs=EPOCHS, batch_size=16, lr=3e-3, patience=10)
    return train_estimator(dataset, tmp_path_factory.mktemp("ckpt"), cfg, seed=3, progress=False)


# ------------------------------------------------------------------ configuration and package layout
def test_train_config_from_kwargs_and_yaml_is_one_model(tmp_path: Path) -> None:
    from bprl.config import load_spec

    kw = {"epochs": 3, "batch_size": 16, "model": {"hybrid": True, "conv_channels": [8, 8, 8]}}
    cfg = TrainConfig(**kw)
    assert cfg.model == ModelConfig(hybrid=True, conv_channels=(8, 8, 8))
    (tmp_path / "train.yaml").write_text(
        "epochs: 3\nbatch_size: 16\nmodel: {hybrid: true, conv_channels: [8, 8, 8]}\n"
    )
    assert load_spec(TrainConfig, tmp_path / "train.yaml") == cfg
    assert TrainConfig(**cfg.to_dict()) == cfg and ModelConfig.from_dict(cfg.model.to_dict()) == cfg.model
    (tmp_path / "bad.yaml").write_text("epochs: 0\nmodel: {dropuot: 0.2}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid TrainConfig") as err:
        load_spec(TrainConfig, tmp_path / "bad.yaml")
    assert "\n  model.dropuot: unknown field" in str(err.value) and "\n  epochs: " in str(err.value)
    with pytest.raises(ValidationError, match="lr"):
        TrainConfig(lr=-1.0)
    for spec in (ModelConfig, TrainConfig):
        assert all(f.description for f in spec.model_fields.values()), spec.__name__


def test_model_config_from_dict_names_file_and_field() -> None:
    with pytest.raises(EstimatorError, match=r"ckpt\.json: invalid ModelConfig\n  dropout: "):
        ModelConfig.from_dict({"dropout": 2.0}, "ckpt.json")
    with pytest.raises(EstimatorError, match=r"ckpt\.json(.|\n)*same non-zero length"):
        ModelConfig.from_dict({"conv_channels": [8, 8], "conv_kernels": [5], "pools": [4, 4]}, "ckpt.json")
    with pytest.raises(EstimatorError, match="shorter than the pooling"):
        ModelConfig.from_dict({"window_s": 0.1})
    with pytest.raises(EstimatorError, match="must be a mapping"):
        ModelConfig.from_dict([1, 2], "ckpt.json")  # type: ignore[arg-type]


def test_package_re_exports_the_names_of_the_old_module() -> None:
    import bprl.estimator as pkg
    from bprl.estimator import dataset, estimators, inference, linear, train

    for name in pkg.__all__:
        assert hasattr(pkg, name), name
    assert pkg.train_estimator is train.train_estimator and pkg.load_estimator is estimators.load_estimator
    assert pkg.PatLinearEstimator is linear.PatLinearEstimator and pkg.read_manifest is dataset.read_manifest
    assert pkg.estimate_replay_table is inference.estimate_replay_table
    assert (pkg.MODEL_FILE, pkg.METRICS_FILE, pkg.CHECKPOINT_FORMAT) == (
        "model.pt",
        "metrics.json",
        "bprl-cnngru-2",
    )


def test_cohort_layout_aliases(tmp_path: Path) -> None:
    from bprl.cohort import layout

    assert cohort_record_path(tmp_path, "v0001", "v0001_0001") == layout.record_path(
        tmp_path, "v0001", "v0001_0001"
    )
    assert cohort_record_path(tmp_path, "v1", "r1") == tmp_path / "waves" / "v1" / "r1" / "r1.hea"
    with pytest.raises(EstimatorError, match="manifest"):
        read_manifest(tmp_path)


# ------------------------------------------------------------------ model and windows
def test_default_model_size_fits_cpu_budget() -> None:
    n = count_parameters(CnnGruNet(ModelConfig()))
    assert 20_000 <= n <= 60_000
    y = CnnGruNet(ModelConfig(hybrid=True))(torch.randn(3, 2, 1000), torch.randn(3, 5))
    assert y.shape == (3, 2)


def test_ecg_resampled_to_model_rate_and_nan_kept() -> None:
    rec, _ = _synthetic_record("v0", 0, 3)
    ecg = rec.channels[0].samples.copy()
    ecg[2500:2600] = np.nan  # 10.0-10.4 s
    rec.channels[0] = Channel("II", "ecg", 250.0, "mV", ecg)
    sig, fs = record_signals(rec, 125.0)
    assert fs == 125.0
    assert sig.shape == (2, 3 * int(STEP_S) * 125)
    assert np.isnan(sig[0, 1255:1295]).all()
    assert np.isfinite(sig[0, :1240]).all() and np.isfinite(sig[0, 1310:]).all()


def test_windows_with_nan_or_flat_signal_are_dropped() -> None:
    rec, table = _synthetic_record("v0", 0, 4)
    ppg = rec.channels[1].samples.copy()
    ppg[(13 * 125)] = np.nan  # step 1, first 4-s window
    ppg[(24 * 125) : (36 * 125)] = 0.5  # step 2 flat
    rec.channels[1] = Channel("Pleth", "ppg", 125.0, "NU", ppg)
    sw = step_windows(table, rec, TINY)
    per_row = np.bincount(sw.row, minlength=4)
    assert per_row.tolist() == [3, 2, 0, 3]
    assert np.isfinite(sw.x).all()
    np.testing.assert_allclose(sw.x.mean(axis=-1), 0, atol=1e-4)
    np.testing.assert_allclose(sw.x.std(axis=-1), 1, atol=1e-3)
    sbp, _ = add_estimates(table, rec, _untrained_estimator()).pipe(
        lambda t: (t["est_sbp_mmhg"].to_numpy(), t["est_dbp_mmhg"].to_numpy())
    )
    assert np.isnan(sbp[2]) and np.isfinite(sbp[[0, 1, 3]]).all()


def _untrained_estimator(config: ModelConfig = TINY) -> CnnGruEstimator:
    torch.manual_seed(0)
    return CnnGruEstimator(CnnGruNet(config), {})


def test_record_without_ppg_is_an_estimator_error() -> None:
    rec, table = _synthetic_record("v0", 0, 2)
    rec.channels = rec.channels[:1]
    with pytest.raises(EstimatorError, match=r"synthetic v0.*PPG"):
        add_estimates(table, rec, _untrained_estimator())


def test_nan_windows_rejected_at_inference() -> None:
    x = np.zeros((2, 2, TINY.window_len), np.float32)
    x[1, 0, 5] = np.nan
    with pytest.raises(EstimatorError, match="NaN"):
        _untrained_estimator().predict_windows(x)


# ------------------------------------------------------------------ training and checkpoints
def test_splits_are_subject_disjoint(dataset: WindowDataset) -> None:
    sets = {sp: set(dataset.subjects(sp)) for sp in ("train", "val", "test")}
    assert sets["train"] and sets["val"] and sets["test"]
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
    dataset.check_disjoint()
    leaky = WindowDataset(**{**dataset.__dict__, "split": dataset.split.copy()})
    leaky.split[np.flatnonzero(dataset.subject_id == dataset.subjects("test")[0])[0]] = "train"
    with pytest.raises(EstimatorError, match="is in splits"):
        leaky.check_disjoint()


def test_manifest_with_shared_subject_is_rejected(tmp_path: Path) -> None:
    pd.DataFrame(
        {"subject_id": ["a", "a", "b"], "record_id": ["1", "2", "3"], "split": ["train", "test", "val"]}
    ).to_parquet(tmp_path / "manifest.parquet")
    with pytest.raises(EstimatorError, match=r"\['a'\].*more than one split"):
        read_manifest(tmp_path)


def test_output_is_recentred_on_the_training_windows(dataset: WindowDataset, checkpoint: Path) -> None:
    train = dataset.subset("train")
    pred = load_estimator(checkpoint).predict_windows(train.x)
    np.testing.assert_allclose((pred - train.y).mean(axis=0), 0.0, atol=1e-3)


def test_within_subject_gain_is_the_validation_least_squares_gain(
    dataset: WindowDataset, checkpoint: Path, tmp_path: Path
) -> None:
    from bprl.estimator.metrics import step_predictions

    cfg = TrainConfig(
        model=TINY, epochs=EPOCHS, batch_size=16, lr=3e-3, patience=10, within_subject_gain=True
    )
    ckpt = train_estimator(dataset, tmp_path / "gain", cfg, seed=3, progress=False)
    gain = json.loads((ckpt / "config.json").read_text())["normalisation"]["within_subject_gain"]
    assert (
        json.loads((checkpoint / "config.json").read_text())["normalisation"]["within_subject_gain"] is None
    )
    assert "within-subject changes were scaled" in (ckpt / "MODEL_CARD.md").read_text()
    val = dataset.subset("val")
    plain = load_estimator(checkpoint).predict_windows(val.x)
    scaled = load_estimator(ckpt).predict_windows(val.x)
    # same weights (same seed): the gain scales every change of the output, the level is re-centred
    for k in range(2):
        assert gain[k] != pytest.approx(1.0, abs=1e-3)
        np.testing.assert_allclose(
            np.diff(scaled[:, k]), gain[k] * np.diff(plain[:, k]), rtol=1e-4, atol=1e-3
        )
    # after the gain, the least-squares gain of the reference's within-subject changes is 1
    steps = step_predictions(val, scaled)
    for target in ("sbp", "dbp"):
        dev = steps.groupby("subject_id")[[f"est_{target}_mmhg", f"ref_{target}_mmhg"]].transform(
            lambda c: c - c.mean()
        )
        e, r = dev[f"est_{target}_mmhg"].to_numpy(), dev[f"ref_{target}_mmhg"].to_numpy()
        assert np.sum(e * r) / np.sum(e * e) == pytest.approx(1.0, abs=1e-3)


def test_loss_falls_and_checkpoint_is_complete(checkpoint: Path) -> None:
    for name in ("model.pt", "config.json", "metrics.json", "train_log.csv", "MODEL_CARD.md"):
        assert (checkpoint / name).is_file(), name
    log = pd.read_csv(checkpoint / "train_log.csv")
    assert len(log) == EPOCHS
    assert log["train_loss"].iloc[-1] < 0.8 * log["train_loss"].iloc[0]
    assert log["val_mae_sbp_mmhg"].iloc[-1] < log["val_mae_sbp_mmhg"].iloc[0]
    info = json.loads((checkpoint / "config.json").read_text())
    assert info["data"]["splits"]["test"]["n_subjects"] == 2
    metrics = json.loads((checkpoint / "metrics.json").read_text())
    for target in ("sbp", "dbp"):
        m = metrics["test"][target]
        assert m["model"]["n"] == 40 and math.isfinite(m["mase"])
        assert m["mase"] == pytest.approx(m["model"]["mae"] / m["mean_predictor"]["mae"])
    assert "SBP" in (checkpoint / "MODEL_CARD.md").read_text()


def test_training_is_deterministic(dataset: WindowDataset, checkpoint: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(model=TINY, epochs=EPOCHS, batch_size=16, lr=3e-3, patience=10)
    again = train_estimator(dataset, tmp_path / "again", cfg, seed=3, progress=False)
    a = torch.load(checkpoint / "model.pt", weights_only=True)
    b = torch.load(again / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # byte-identical files: the archive does not carry the temporary file's name
    assert (checkpoint / "model.pt").read_bytes() == (again / "model.pt").read_bytes()
    assert load_estimator(checkpoint).fingerprint() == load_estimator(again).fingerprint()


def test_model_pt_archive_has_a_fixed_root_name(checkpoint: Path) -> None:
    with zipfile.ZipFile(checkpoint / "model.pt") as zf:
        roots = {name.split("/", 1)[0] for name in zf.namelist()}
    assert roots == {"archive"}, f"the archive's root folder leaks a file name: {roots}"
    assert not list(checkpoint.glob(".*tmp*")), "temporary files left next to the checkpoint"


def test_save_state_dict_is_atomic_and_reproducible(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = CnnGruNet(TINY).state_dict()
    a = save_state_dict(state, tmp_path / "a" / "model.pt")
    b = save_state_dict(state, tmp_path / "b" / "weights.pt")
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in a.parent.iterdir()) == ["model.pt"]


def test_checkpoint_records_versions_and_warns_when_loaded_under_others(
    checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    info = json.loads((checkpoint / "config.json").read_text())
    assert info[STAMP_KEY] == cache_versions()
    assert info["versions"]["torch"] == torch.__version__
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.pt").write_bytes((checkpoint / "model.pt").read_bytes())
    (old / "config.json").write_text(json.dumps({**info, STAMP_KEY: {**info[STAMP_KEY], "torch": "1"}}))
    with caplog.at_level(logging.WARNING, logger="bprl.cache"):
        load_estimator(checkpoint)
        assert "checkpoint built under" not in caplog.text
        load_estimator(old)
    assert f"checkpoint built under torch 1, now torch {torch.__version__.split('.')[0]}" in caplog.text


def test_checkpoint_reloads_to_identical_predictions(dataset: WindowDataset, checkpoint: Path) -> None:
    est = load_estimator(checkpoint)
    assert isinstance(est, CnnGruEstimator)
    test = dataset.subset("test")
    p1 = est.predict_windows(test.x)
    p2 = CnnGruEstimator.load(checkpoint).predict_windows(test.x)
    np.testing.assert_array_equal(p1, p2)
    assert np.isfinite(p1).all() and p1.std(axis=0).min() > 0


def test_corrupt_checkpoint_is_an_estimator_error(checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_bytes((checkpoint / "config.json").read_bytes())
    (bad / "model.pt").write_bytes((checkpoint / "model.pt").read_bytes()[:300])
    with pytest.raises(EstimatorError, match=r"model\.pt: corrupt"):
        load_estimator(bad)
    (bad / "config.json").write_text("{not json")
    with pytest.raises(EstimatorError, match=r"config\.json: not valid JSON"):
        load_estimator(bad)


def test_checkpoint_of_wrong_architecture_is_an_estimator_error(checkpoint: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    info = json.loads((checkpoint / "config.json").read_text())
    info["model"]["gru_hidden"] = 12
    (wrong / "config.json").write_text(json.dumps(info))
    (wrong / "model.pt").write_bytes((checkpoint / "model.pt").read_bytes())
    with pytest.raises(EstimatorError, match="do not match the architecture"):
        load_estimator(wrong)
    info["model"]["n_layers"] = 3
    (wrong / "config.json").write_text(json.dumps(info))
    with pytest.raises(EstimatorError, match="unknown model config fields"):
        load_estimator(wrong)


def test_validation_every_n_steps_keeps_best_weights(dataset: WindowDataset, tmp_path: Path) -> None:
    cfg = TrainConfig(model=TINY, epochs=2, batch_size=16, eval_every_steps=5, patience=100)
    ckpt = train_estimator(dataset, tmp_path / "steps", cfg, seed=2, progress=False)
    log = pd.read_csv(ckpt / "train_log.csv")
    steps_per_epoch = len(dataset.subset("train")) // 16  # full batches (drop_last)
    assert log["step"].tolist() == list(range(5, 2 * steps_per_epoch + 1, 5))
    info = json.loads((ckpt / "config.json").read_text())
    best = int(log["val_loss"].idxmin())
    assert info["best_step"] == log["step"][best]
    est = CnnGruEstimator.load(ckpt)
    val = dataset.subset("val")
    # the output was re-centred on the training windows after the last validation
    shift = np.array(info["normalisation"]["recentred_by_mmhg"])
    err = (est.predict_windows(val.x) - shift - val.y) / est.model.label_sd.numpy()
    within = err - pd.DataFrame(err).groupby(val.subject_id).transform("mean").to_numpy()
    # the logged loss: absolute MSE and twice the within-subject error variance (the paired term)
    loss = cfg.absolute_weight * np.mean(err**2) + cfg.pair_weight * 2 * np.mean(within**2)
    assert loss == pytest.approx(log["val_loss"][best], rel=1e-4)


def test_hybrid_model_trains_with_features(dataset: WindowDataset, tmp_path: Path) -> None:
    cfg = TrainConfig(model=TINY_HYBRID, epochs=2, batch_size=16, oversample=True)
    with pytest.raises(EstimatorError, match="the model reads"):  # cut for the default feature list
        train_estimator(dataset, tmp_path / "hyb", cfg, seed=1, progress=False)
    ds = _dataset(TINY_HYBRID, {"train": 6, "val": 2, "test": 2}, n_steps=20)
    ckpt = train_estimator(ds, tmp_path / "hyb", cfg, seed=1, progress=False)
    est = load_estimator(ckpt)
    assert est.config.hybrid
    rec, table = _synthetic_record("v9", 9, 3)
    out = add_estimates(table, rec, est)
    assert np.isfinite(out["est_sbp_mmhg"]).all()


def test_oversampling_weights_favour_rare_ranges() -> None:
    sbp = np.array([120.0] * 90 + [180.0] * 10)
    w = oversampling_weights(sbp)
    assert w.mean() == pytest.approx(1.0)
    assert w[-1] / w[0] == pytest.approx(9.0)


# ------------------------------------------------------------------ metrics, PAT linear, inference
def test_error_metrics_known_values() -> None:
    ref = np.array([100.0, 100.0, 100.0, 100.0])
    est = np.array([104.0, 96.0, 112.0, 100.0])
    m = error_metrics(est, ref, np.array(["a", "a", "b", "b"]))
    assert m["me"] == pytest.approx(3.0)
    assert m["mae"] == pytest.approx(5.0)
    assert m["bhs_le5_pct"] == pytest.approx(75.0)
    assert m["bhs_le10_pct"] == pytest.approx(75.0)
    assert m["bias_sd"] == pytest.approx(np.std([0.0, 6.0], ddof=1))


def test_pat_linear_recovers_known_relation(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    pat = rng.uniform(180, 320, 400)
    hr = rng.uniform(55, 110, 400)
    table = pd.DataFrame(
        {
            "subject_id": "v1",
            "pat_foot_ms": pat,
            "hr_bpm": hr,
            "ref_sbp_mmhg": 500 - 70 * np.log(pat) + 0.3 * hr + rng.normal(0, 0.5, 400),
            "ref_dbp_mmhg": 260 - 35 * np.log(pat) + 0.2 * hr + rng.normal(0, 0.5, 400),
        }
    )
    table.loc[3, "pat_foot_ms"] = np.nan
    est = PatLinearEstimator().fit(table)
    np.testing.assert_allclose(est.coef_sbp, [500, -70, 0.3], rtol=0.02, atol=0.05)
    np.testing.assert_allclose(est.coef_dbp, [260, -35, 0.2], rtol=0.02, atol=0.05)
    est.save(tmp_path / "lin.json")
    again = load_estimator(tmp_path / "lin.json")
    s1, _d1 = est.predict_table(table)
    s2, _d2 = again.predict_table(table)
    np.testing.assert_array_equal(s1, s2)
    assert np.isnan(s1[3]) and np.isfinite(np.delete(s1, 3)).all()
    (tmp_path / "bad.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(EstimatorError, match=r"bad\.json: not a PAT linear"):
        load_estimator(tmp_path / "bad.json")


def test_estimates_filled_into_replay_table_and_cached(checkpoint: Path, tmp_path: Path) -> None:
    rec, table = _synthetic_record("v7", 7, 4)
    est = load_estimator(checkpoint)
    out = add_estimates(table, rec, est)
    assert list(out.columns[-2:]) == ["est_sbp_mmhg", "est_dbp_mmhg"]
    assert np.isfinite(out["est_sbp_mmhg"]).all() and (out["est_sbp_mmhg"] > out["est_dbp_mmhg"]).all()
    lin = PatLinearEstimator().fit(table)
    first = estimate_replay_table("unused.hea", lin, tmp_path, table=table)
    cached = list((tmp_path / "estimates").glob("*.parquet"))
    assert len(cached) == 1
    again = estimate_replay_table("unused.hea", lin, tmp_path, table=table)
    pd.testing.assert_frame_equal(first, again)
    assert est.fingerprint() != lin.fingerprint()


# ------------------------------------------------------------------ ONNX
def test_onnx_export_parity(checkpoint: Path, tmp_path: Path) -> None:
    path = export_onnx(checkpoint, tmp_path / "model.onnx")
    onnx_est = load_estimator(path)
    assert isinstance(onnx_est, OnnxEstimator)
    rng = np.random.default_rng(0)
    x = normalise_windows(rng.standard_normal((37, 2, TINY.window_len)).astype(np.float32))
    ref = CnnGruEstimator.load(checkpoint).predict_windows(x)
    got = onnx_est.predict_windows(x)
    assert np.max(np.abs(ref - got)) <= 0.01
    assert onnx_est.train_mean_mmhg == pytest.approx(CnnGruEstimator.load(checkpoint).train_mean_mmhg)


# ------------------------------------------------------------------ real MIMIC-IV record
@pytest.mark.physionet
def test_real_mimic4_record_gets_finite_estimates(physionet_dir: Path, checkpoint: Path) -> None:
    from bprl.sources import read_record

    rec = read_record(physionet_dir / "mimic4wdb-demo/p10020306/83404654/83404654_0006.hea")
    sig, fs = record_signals(rec, 125.0)
    assert fs == pytest.approx(124.945) and abs(sig.shape[1] - len(rec.channel("ppg").samples)) <= 1
    starts = np.arange(0.0, rec.duration_s - 30.0, 30.0)
    table = pd.DataFrame({"step": np.arange(len(starts)), "t_start_s": starts, "t_end_s": starts + 30.0})
    out = add_estimates(table, rec, load_estimator(checkpoint))
    finite = np.isfinite(out["est_sbp_mmhg"]) & np.isfinite(out["est_dbp_mmhg"])
    assert len(out) >= 30 and finite.mean() >= 0.8


# ------------------------------------------------------------------ virtual cohort, features and CLI
@pytest.fixture(scope="module")
def tiny_cohort_dir(tiny_cohort: Path) -> Path:
    """The shared session cohort (6 subjects x 0.25 h, seed 0; read-only)."""
    return tiny_cohort


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Replay-table cache shared by this module's cohort tests."""
    return tmp_path_factory.mktemp("features")


def test_cohort_windows_follow_manifest_splits(tiny_cohort_dir: Path, feature_cache: Path) -> None:
    ds = build_window_dataset(tiny_cohort_dir, ModelConfig(), cache_dir=feature_cache)
    man = read_manifest(tiny_cohort_dir)
    expected = dict(zip(man["subject_id"], man["split"], strict=True))
    assert {s: expected[s] for s in ds.subject_id} == dict(zip(ds.subject_id, ds.split, strict=True))
    assert set(ds.subjects()) == set(expected) and not ds.skipped
    assert ds.x.shape[1:] == (2, 1000) and np.isfinite(ds.x).all()
    assert np.all((ds.y[:, 0] > ds.y[:, 1]) & (ds.y[:, 1] > 20))


def test_cli_train_evaluate_export_fit_linear(
    tiny_cohort_dir: Path, feature_cache: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from bprl.cli import app

    run = CliRunner()
    cache = str(feature_cache)
    ckpt = tmp_path / "ckpt"
    res = run.invoke(
        app,
        [
            "estimator",
            "train",
            "--cohort",
            str(tiny_cohort_dir),
            "--out",
            str(ckpt),
            "--epochs",
            "2",
            "--seed",
            "1",
            "--within-subject-gain",
            "--cache-dir",
            cache,
        ],
    )
    assert res.exit_code == 0, res.output
    assert (ckpt / "model.pt").is_file() and "MASE" in res.output
    gain = json.loads((ckpt / "config.json").read_text())["normalisation"]["within_subject_gain"]
    assert len(gain) == 2 and all(0.5 <= g <= 2.0 for g in gain)
    res = run.invoke(
        app,
        [
            "estimator",
            "evaluate",
            "--checkpoint",
            str(ckpt),
            "--cohort",
            str(tiny_cohort_dir),
            "--cache-dir",
            cache,
        ],
    )
    assert res.exit_code == 0, res.output
    assert "| SBP | model |" in res.output and "| DBP | mean predictor |" in res.output
    res = run.invoke(
        app, ["estimator", "export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]
    )
    assert res.exit_code == 0, res.output
    assert isinstance(load_estimator(tmp_path / "m.onnx"), OnnxEstimator)
    res = run.invoke(
        app,
        [
            "estimator",
            "fit-linear",
            "--cohort",
            str(tiny_cohort_dir),
            "--out",
            str(tmp_path / "lin.json"),
            "--cache-dir",
            cache,
        ],
    )
    assert res.exit_code == 0, res.output
    lin = load_estimator(tmp_path / "lin.json")
    man = read_manifest(tiny_cohort_dir)
    assert isinstance(lin, PatLinearEstimator) and np.isfinite(lin.coef_sbp).all()
    assert lin.info["subjects"] == sorted(man.loc[man["split"] == "train", "subject_id"])
    res = run.invoke(
        app,
        [
            "estimator",
            "evaluate",
            "--checkpoint",
            str(tmp_path / "lin.json"),
            "--cohort",
            str(tiny_cohort_dir),
            "--cache-dir",
            cache,
            "--json",
            str(tmp_path / "lin_metrics.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "lin_metrics.json").read_text())
    n_test = len(man[man["split"] == "test"]) * 30  # 0.25 h of 30-s steps per subject
    assert 0 < metrics["n_steps"] <= n_test and metrics["sbp"]["model"]["n"] == metrics["n_estimated"] > 0
    res = run.invoke(
        app,
        ["estimator", "evaluate", "--checkpoint", str(tmp_path / "nope"), "--cohort", str(tiny_cohort_dir)],
    )
    assert res.exit_code == 1 and "nope" in res.output
    delta = tmp_path / "delta.json"
    args = ["--cohort", str(tiny_cohort_dir), "--cache-dir", cache]
    res = run.invoke(app, ["estimator", "fit-linear", *args, "--out", str(delta), "--within-subject"])
    assert res.exit_code == 0 and "dSBP = " in res.output, res.output
    assert isinstance(load_estimator(delta), DeltaLinearEstimator)
    # tracking beside the within-subject linear model, on a cohort split and on a folder of records
    for where in (args, ["--records", str(tiny_cohort_dir / "waves"), "--cache-dir", cache]):
        out = tmp_path / "tracking.json"
        cmd = ["estimator", "evaluate", "--checkpoint", str(ckpt), "--linear", str(delta), "--json", str(out)]
        res = run.invoke(app, [*cmd, *where])
        assert res.exit_code == 0, res.output
        assert "| SBP | r | " in res.output and "| model | linear | hold |" in res.output
        tracking = json.loads(out.read_text())["tracking"]
        assert set(tracking) >= {"model", "linear", "paired_vs_linear", "per_subject"}
        n_subjects = tracking["model"]["sbp"]["n_subjects"]
        assert n_subjects == (len(man) if where[0] == "--records" else (man["split"] == "test").sum())
    res = run.invoke(app, ["estimator", "evaluate", "--checkpoint", str(ckpt)])
    assert res.exit_code == 1 and "--cohort or --records" in res.output


@pytest.mark.parametrize(
    ("flag", "gain"),
    [
        ([], PretrainRecipe().train.within_subject_gain),
        (["--within-subject-gain"], True),
        (["--no-within-subject-gain"], False),
    ],
)
def test_cli_pretrain_passes_the_within_subject_gain_to_the_recipe(
    flag: list[str], gain: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import bprl.estimator.pretrained as pretrained
    from bprl.cli import app

    seen = []

    def fake_train_pretrained(out: Path, work: Path, recipe: pretrained.PretrainRecipe) -> Path:
        seen.append(recipe)
        Path(out).mkdir(parents=True)
        (Path(out) / "evaluation.json").write_text(json.dumps({"heldout": {}}))
        return Path(out)

    monkeypatch.setattr(pretrained, "train_pretrained", fake_train_pretrained)
    out = tmp_path / "ckpt"
    res = CliRunner().invoke(
        app, ["estimator", "pretrain", "--out", str(out), "--work", str(tmp_path), *flag]
    )
    assert res.exit_code == 0, res.output
    (recipe,) = seen
    assert recipe.train.within_subject_gain is gain
    # everything else is the shipped recipe
    assert (
        recipe.model_copy(update={"train": pretrained.PretrainRecipe().train}) == pretrained.PretrainRecipe()
    )
    shipped = pretrained.PretrainRecipe().train
    assert recipe.train.model_copy(update={"within_subject_gain": shipped.within_subject_gain}) == shipped


def test_estimate_replay_table_from_record_path(tiny_cohort_dir: Path, tmp_path: Path) -> None:
    man = read_manifest(tiny_cohort_dir)
    path = cohort_record_path(tiny_cohort_dir, man["subject_id"].iloc[0], man["record_id"].iloc[0])
    est = _untrained_estimator(ModelConfig())
    out = estimate_replay_table(path, est, tmp_path)
    assert len(out) == 30 and np.isfinite(out["est_sbp_mmhg"]).mean() > 0.9
    from bprl.schemas import REPLAY_COLUMNS, check_columns

    check_columns(out, REPLAY_COLUMNS, "estimated table")
    assert len(list((tmp_path / "estimates").glob("*.parquet"))) == 1
    done, failed = estimate_tables([(path, out), (tmp_path / "missing.hea", out)], est)
    assert list(done) == [str(path)] and failed[0]["record"].endswith("missing.hea")
    np.testing.assert_array_equal(done[str(path)]["est_sbp_mmhg"], out["est_sbp_mmhg"])
