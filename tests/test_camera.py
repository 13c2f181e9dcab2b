"""Camera PPG: video reading, rPPG algorithms, Record output, CLI (bprl.sources.camera, bprl video)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from bprl.cli import app
from bprl.errors import RecordError
from bprl.sources.camera import (
    METHODS,
    hr_from_pulse,
    probe_video,
    read_video_rgb,
    suppress_steps,
    video_ppg,
    video_to_record,
)

REPO = Path(__file__).resolve().parents[1]
HR_BPM = 72.0
FPS = 15.0
#: relative pulse amplitude per channel: the blood-volume signature of skin (de Haan & van Leest 2014)
PBV = np.array([0.33, 0.77, 0.53])


def _write_clip(path: Path, seconds: float, hr_bpm: float = HR_BPM, step: bool = True, seed: int = 0) -> Path:
    """A 64x64 skin-coloured clip whose colour pulses at ``hr_bpm``, with pixel noise and a brightness step."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 64))
    base_rgb = np.array([180.0, 130.0, 100.0])
    for i in range(n):
        t = i / FPS
        pulse = np.sin(2 * np.pi * hr_bpm / 60.0 * t) + 0.3 * np.sin(4 * np.pi * hr_bpm / 60.0 * t)
        gain = 1.12 if step and i >= n // 2 else 1.0
        rgb = base_rgb * gain * (1.0 + 0.02 * PBV * pulse)
        frame = rgb[::-1][None, None, :] + rng.normal(0.0, 4.0, (64, 64, 3))
        writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_clip(tmp_path_factory.mktemp("cam") / "subj_forehead.avi", 20.0)


def rppg_root() -> Path:
    env = os.environ.get("BPRL_RPPG_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data" / "rppg"


@pytest.fixture(scope="module")
def real_clip() -> Path:
    p = rppg_root() / "bias_eval_rppg" / "Data" / "India" / "video10_forehead.avi"
    if not p.is_file():
        pytest.skip(f"real rPPG clips not found at {p.parent} (set BPRL_RPPG_DIR)")
    return p


def test_read_video_rgb_shapes_and_rate(clip: Path) -> None:
    rgb, fs_hz, t_s = read_video_rgb(clip)
    assert rgb.shape == (300, 3) and t_s.shape == (300,)
    assert fs_hz == pytest.approx(FPS, rel=0.01)
    assert np.all(np.diff(t_s) > 0)
    assert rgb[:, 0].mean() > rgb[:, 2].mean()  # R > B: RGB order, not OpenCV's BGR
    info = probe_video(clip)
    assert (info.width, info.height, info.fourcc) == (64, 64, "MJPG")


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_algorithm_recovers_the_heart_rate(clip: Path, method: str) -> None:
    rgb, fs_hz, _ = read_video_rgb(clip)
    hr, snr = hr_from_pulse(METHODS[method](rgb, fs_hz), fs_hz)
    assert abs(hr - HR_BPM) <= 2.0, (method, hr)
    assert snr > 0


def test_brightness_step_is_removed() -> None:
    rgb = np.full((200, 3), 100.0) + np.random.default_rng(1).normal(0, 0.1, (200, 3))
    rgb[100:] *= 1.2
    out = suppress_steps(rgb)
    assert abs(out[100:].mean() - out[:100].mean()) < 1.0


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"this is not a video")
    with pytest.raises(RecordError, match=r"bad\.avi"):
        read_video_rgb(bad)
    with pytest.raises(RecordError, match="no such video"):
        read_video_rgb(tmp_path / "missing.avi")


def test_too_short_clip(tmp_path: Path) -> None:
    short = _write_clip(tmp_path / "short.avi", 2.0)
    with pytest.raises(RecordError, match="too short"):
        read_video_rgb(short)


def test_no_face_found(clip: Path) -> None:
    with pytest.raises(RecordError, match="no face"):
        video_ppg(clip, face=True)


def test_record_has_a_ppg_channel(clip: Path) -> None:
    rec = video_to_record(clip, method="fused")
    ch = rec.channel("ppg")
    assert ch.fs_hz == pytest.approx(FPS, rel=0.01)
    assert ch.samples.dtype == np.float32 and len(ch.samples) == 300
    hr, _ = hr_from_pulse(ch.samples, ch.fs_hz)
    assert abs(hr - HR_BPM) <= 2.0
    # bprl.beats takes the camera PPG as it takes a finger PPG
    from bprl.beats import ppg_fiducials

    r_s = np.arange(0.5, 19.0, 60.0 / HR_BPM)
    fid = ppg_fiducials(ch.samples, ch.fs_hz, r_s)
    assert len(fid) == len(r_s) and fid["t_peak_s"].notna().mean() > 0.5


def test_cli_exit_codes(clip: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["video", "inspect", str(clip)])
    assert res.exit_code == 0, res.output
    assert "MJPG" in res.output
    res = runner.invoke(app, ["video", "ppg", str(clip), "--method", "chrom"])
    assert res.exit_code == 0, res.output
    assert "mean HR: 7" in res.output
    res = runner.invoke(app, ["video", "ppg", str(clip), "--csv", "--quiet"])
    assert res.exit_code == 0 and res.output.startswith("t_s,hr_bpm,snr_db")
    res = runner.invoke(app, ["video", "ppg", str(tmp_path / "missing.avi")])
    assert res.exit_code == 2 and "error:" in res.output
    res = runner.invoke(app, ["video", "ppg", str(clip), "--method", "nope"])
    assert res.exit_code == 2 and "unknown rPPG method" in res.output


def test_real_clip_gives_a_finite_heart_rate(real_clip: Path) -> None:
    res = video_ppg(real_clip, method="pos")
    assert np.isfinite(res.hr_bpm) and 42 <= res.hr_bpm <= 210
    assert len(res.hr_t_bpm) > 0
