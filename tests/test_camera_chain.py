"""Camera chain, test-sized: virtual video -> camera replay tables -> PPG-only estimator -> env -> calibrators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bprl.cli import app
from bprl.cohort import make_cohort, read_truth
from bprl.cohort.video_subject import read_video_truth, video_clips
from bprl.envs import make_env_from_spec
from bprl.features.camera_table import CAMERA_FEATURE_COLUMNS, camera_replay_table
from bprl.features.config import FeatureConfig
from bprl.features.replay_set import read_replay_set
from bprl.policies.registry import make_calibrator
from bprl.policies.rollout import rollout
from bprl.schemas import REPLAY_COLUMNS

REPO = Path(__file__).resolve().parents[1]
SPEC = {"video_size_px": 32, "video_fps_hz": 15.0}


@pytest.fixture(scope="module")
def video_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 subjects x 3 min with virtual-camera clips (32 px, 15 fps)."""
    root = tmp_path_factory.mktemp("camera") / "cohort"
    return make_cohort(root, 5, 0.05, 0, spec=SPEC, progress=False, video=True)


def test_camera_replay_table(video_cohort: Path) -> None:
    clips = video_clips(video_cohort, "v0001")
    table = camera_replay_table(
        clips, "v0001", "v0001_0001", read_truth(video_cohort, "v0001"), FeatureConfig()
    )
    assert list(table.columns) == list(REPLAY_COLUMNS)
    assert len(table) == 6 and table["pat_foot_ms"].isna().all()
    assert table[list(CAMERA_FEATURE_COLUMNS)].notna().all().all()
    true_hr = read_video_truth(video_cohort, "v0001")["meta"]["mean_hr_bpm"]
    assert abs(table["hr_bpm"].median() - true_hr) < 3.0
    assert table["ref_sbp_mmhg"].between(60, 250).all()


def test_camera_chain_env_and_calibrators(video_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "replay"
    r = CliRunner().invoke(app, ["video", "replay", str(video_cohort), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rs = read_replay_set(out)
    assert rs.info["estimator"]["features"] == list(CAMERA_FEATURE_COLUMNS)
    env = make_env_from_spec(REPO / "envs" / "camera.yaml", split="train", replay_set=str(out))
    logs = {name: rollout(make_calibrator(name), env, seed=0) for name in ("none", "periodic")}
    for log in logs.values():
        assert len(log) == 6 * log["subject_id"].nunique() >= 12 and np.isfinite(log["corr_sbp_mmhg"]).all()
    mae = {k: float(np.mean(np.abs(v["corr_sbp_mmhg"] - v["ref_sbp_mmhg"]))) for k, v in logs.items()}
    assert mae["periodic"] < mae["none"]  # calibration helps a population estimator


def test_camera_replay_needs_video(tmp_path: Path) -> None:
    root = make_cohort(tmp_path / "novideo", 2, 0.01, 0, progress=False)
    r = CliRunner().invoke(app, ["video", "replay", str(root), "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "--video" in r.output
