"""The camera experiment end to end at test size: virtual video -> camera tables -> estimator -> report."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bprl.errors import ConfigError
from bprl.estimator.linear import DeltaLinearEstimator
from bprl.estimator.range_classifier import RangeClassifier
from bprl.estimator.ranges import BP_RANGES, range_metrics
from bprl.experiments import load_experiment, run_experiment
from bprl.experiments.camera import CAMERA_PIPELINE, CAMERA_RANGE_FILES, pipeline_for
from bprl.experiments.stages import PIPELINE
from bprl.features.replay_set import read_replay_set

REPO = Path(__file__).resolve().parents[1]

#: experiments/camera.yaml at test size: 6 subjects x 0.2 h (2 test subjects), two seeds, three
#: calibrators. The camera estimator does not track BP within a subject, so one early reading can be
#: worse than none when BP moves within the 12 minutes: a reading every 5 min (12 per hour) with a
#: 2-mmHg cuff, so that `periodic` beating `none` tests the chain, not the luck of the draw
TINY = {
    "name": "camera_tiny",
    "cohort": {
        "virtual": {
            "subjects": 6,
            "hours": 0.2,
            "seed": 0,
            "video": True,
            "params": {"video_size_px": 32, "video_fps_hz": 15.0},
        }
    },
    "splits": {"train": 0.5, "val": 0.2, "test": 0.3, "seed": 0},
    "features": {"window_s": 30, "hop_s": 30},
    "estimator": {"kind": "camera_linear", "range_classifier": True},
    "env": {
        "spec": str(REPO / "envs" / "camera.yaml"),
        "overrides": {"cuff": {"sd_sbp_mmhg": 2.0, "sd_dbp_mmhg": 2.0}},
    },
    "policies": ["none", "periodic", "kalman"],
    "seeds": [0, 1],
    "budgets": {"cuffs_per_h": 12.0},
    "evaluation": {"n_resamples": 50},
    "backend": {"name": "local", "workers": 1},
}


@pytest.fixture(scope="module")
def camera_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the tiny camera experiment."""
    out = tmp_path_factory.mktemp("camera_exp") / "results" / "camera_tiny"
    return run_experiment(copy.deepcopy(TINY), results_dir=out, progress=False)


def test_camera_experiment_report_and_test_subjects(camera_run: Path) -> None:
    assert (camera_run / "report.html").is_file() and (camera_run / "report.md").is_file()
    rs = read_replay_set(camera_run / "work" / "replay_set")
    assert rs.info["source"] == "camera"
    test_ids = set(rs.subject_ids("test"))
    assert len(test_ids) == 2 and len(rs.subject_ids()) == 6
    for policy in TINY["policies"]:
        for seed in TINY["seeds"]:
            log = pd.read_parquet(camera_run / "logs" / f"{policy}__seed{seed}.parquet")
            assert set(log["subject_id"].astype(str)) == test_ids  # test subjects only
    table = rs.table(sorted(test_ids)[0])
    assert table["pat_foot_ms"].isna().all() and table["hr_bpm"].notna().all()  # camera: no PAT
    est = json.loads((camera_run / "work" / "estimator" / "camera_linear.json").read_text())
    assert est["features"] == ["hr_bpm", "ppg_amp", "ppg_rise_time_ms", "ppg_width_ms"]
    metrics = pd.read_csv(camera_run / "metrics.csv").set_index("policy")
    sbp_mae = metrics.filter(regex="^sbp_mae").iloc[:, 0]
    assert sbp_mae["periodic"] < sbp_mae["none"]
    resolved = yaml.safe_load((camera_run / "config.resolved.yaml").read_text())
    assert resolved["cohort"]["virtual"]["video"] is True and "train" not in resolved["estimator"]


def test_camera_range_classifiers_are_scored_on_the_test_subjects(camera_run: Path) -> None:
    """``estimator.range_classifier``: both classifiers saved; their stored test-split scores are
    those of the saved files on the test subjects' camera tables."""
    result = json.loads((camera_run / "state" / "estimator" / "estimator.json").read_text())["result"]
    ranges = result["ranges"]
    assert "error" not in ranges and ranges["majority_range"] in BP_RANGES
    rs = read_replay_set(camera_run / "work" / "replay_set")
    tables = [
        pd.read_parquet(p)
        for sid in rs.subject_ids("test")
        for p in sorted((camera_run / "work" / "camera_tables").glob(f"{sid}__*.parquet"))
    ]
    data = pd.concat(tables, ignore_index=True)
    train = pd.concat(
        pd.read_parquet(p)
        for sid in rs.subject_ids("train")
        for p in (camera_run / "work" / "camera_tables").glob(f"{sid}__*.parquet")
    )
    n_train = int(train[["ref_sbp_mmhg", "ref_dbp_mmhg"]].notna().all(axis=1).sum())  # steps with a reference
    est = DeltaLinearEstimator.load(camera_run / "work" / "estimator" / "camera_linear.json")
    pop = np.column_stack(est.predict_table(data))
    ref = data[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy(float)
    for name, file in CAMERA_RANGE_FILES.items():
        clf = RangeClassifier.load(camera_run / "work" / "estimator" / file)
        assert clf.oversample == (name == "oversampled")
        want = range_metrics(pop, ref, clf.predict_table(data))
        assert ranges[name]["balanced_accuracy_pct"] == pytest.approx(want["balanced_accuracy_pct"])
        assert sum(ranges[name]["train_steps_per_range"].values()) == n_train
        assert 0.0 <= ranges[name]["accuracy_pct"] <= 100.0


def test_camera_experiment_rerun_identical(camera_run: Path) -> None:
    before = (camera_run / "metrics.csv").read_bytes()
    again = run_experiment(copy.deepcopy(TINY), results_dir=camera_run, resume=False, progress=False)
    assert (again / "metrics.csv").read_bytes() == before


def test_camera_experiment_file_and_pipeline() -> None:
    exp = load_experiment(REPO / "experiments" / "camera.yaml")
    assert exp.config.camera and pipeline_for(exp) is CAMERA_PIPELINE
    plain = load_experiment(REPO / "experiments" / "quickstart.yaml")
    assert pipeline_for(plain) is PIPELINE
    assert "video" not in plain.resolved_dict()["cohort"]["virtual"]  # fingerprints unchanged


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"estimator": {"kind": "cnn_gru"}}, "camera_linear"),
        ({"cohort": {"virtual": {"subjects": 6, "hours": 0.2}}}, "video: true"),
        ({"estimator": {"kind": "camera_linear", "checkpoint": "pretrained"}}, "checkpoint"),
        ({"estimator": {"kind": "cnn_gru", "range_classifier": True}}, "range_head"),
    ],
)
def test_camera_experiment_bad_settings(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_experiment({**copy.deepcopy(TINY), **change})
