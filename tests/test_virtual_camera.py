"""Virtual camera: skin optics, rendered clips through the camera chain, determinism, errors, --video."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bprl.cli import app
from bprl.cohort import CohortError, CohortSpec, load_spec, sample_subject, simulate_subject
from bprl.cohort.skin_optics import skin_optics
from bprl.cohort.video_render import RenderSettings, write_video
from bprl.cohort.video_subject import read_video_truth, video_clips, window_hr_bpm, write_subject_video
from bprl.sources.camera import read_regions, video_ppg
from bprl.sources.camera.pulse_feet import match_feet, pulse_feet, wideband_pulse
from bprl.sources.camera.record import analyse_regions

CLEAN = {"video_light_sd": 0.0, "video_light_steps_per_min": 0.0, "video_motion_px": 0.0}


@pytest.fixture(scope="module")
def subject() -> tuple:
    """One simulated subject, 40 s (seed 0, subject 0)."""
    spec = CohortSpec()
    p = sample_subject(spec, 0, np.random.default_rng([0, 0, 0]))
    waves, truth = simulate_subject(p, 40 / 3600, np.random.default_rng([0, 0, 1]), spec)
    return p, waves, truth


def _render(root: Path, subject: tuple, size_px: int = 32, **fields: object) -> Path:
    p, waves, truth = subject
    spec = CohortSpec(video_size_px=size_px, **fields)
    write_subject_video(root, 0, p, waves, truth, spec, seed=0)
    return root


def test_skin_optics_green_strongest_and_darker_skin_weaker() -> None:
    light, dark = skin_optics(1), skin_optics(6)
    assert np.argmax(light.pulse_rgb) == 1  # green
    assert np.all(dark.diffuse_rgb < light.diffuse_rgb)
    assert np.all(dark.relative_pulse_rgb() < light.relative_pulse_rgb())
    with pytest.raises(ValueError, match="Fitzpatrick"):
        skin_optics(7)


def test_clean_video_hr_within_1_bpm_and_feet(tmp_path: Path, subject: tuple) -> None:
    root = _render(tmp_path, subject, size_px=64, video_skin_types=(3,), **CLEAN)  # still, steady light
    gt = read_video_truth(root, "v0001")
    res = video_ppg(video_clips(root, "v0001"), method="fused")
    assert abs(res.hr_bpm - gt["meta"]["mean_hr_bpm"]) <= 1.0
    n = min(len(res.hr_t_bpm), len(gt["hr"]))
    assert np.nanmean(np.abs(res.hr_t_bpm[:n] - gt["hr"]["hr_bpm"].to_numpy()[:n])) <= 1.5
    assert (
        np.corrcoef(res.pulse, gt["frames"]["ppg"])[0, 1] > 0.7
    )  # the record's pulse rises with blood volume
    regions, fs_hz = read_regions(video_clips(root, "v0001"))
    wide = np.mean([wideband_pulse(v, fs_hz) for v in regions.values()], axis=0)
    truth = gt["feet"]["foot_s"].to_numpy()
    err = match_feet(
        pulse_feet(wide, fs_hz, res.hr_bpm)["t_foot_s"].to_numpy(), truth[(truth > 2) & (truth < 38)]
    )
    assert np.isfinite(err).mean() > 0.8
    assert np.nanmedian(np.abs(err)) < 0.06


def test_darker_skin_lowers_snr(tmp_path: Path, subject: tuple) -> None:
    snr = {}
    for skin in (1, 6):
        root = _render(tmp_path / str(skin), subject, video_skin_types=(skin,))
        regions, fs_hz = read_regions(video_clips(root, "v0001"))
        snr[skin] = analyse_regions(regions, fs_hz, "pos").snr_db
    assert snr[6] < snr[1] - 2.0


def test_same_seed_same_bytes(tmp_path: Path, subject: tuple) -> None:
    digests = []
    for name in ("a", "b"):
        root = _render(tmp_path / name, subject)
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in video_clips(root, "v0001")])
    assert digests[0] == digests[1]
    other = _render(tmp_path / "c", subject, video_noise_dn=3.0)
    assert hashlib.sha256(video_clips(other, "v0001")[0].read_bytes()).hexdigest() != digests[0][0]


def test_bad_video_options(tmp_path: Path) -> None:
    with pytest.raises(CohortError, match="video_codec"):
        load_spec({"video_codec": "XVID"})
    with pytest.raises(CohortError, match="video_skin_types"):
        load_spec({"video_skin_types": [7]})
    with pytest.raises(CohortError, match="video_fps_hz"):
        load_spec({"video_fps_hz": 1})
    frames = iter([np.zeros((16, 16, 3), np.uint8)])
    with pytest.raises(CohortError, match=r"writes \.avi"):
        write_video(tmp_path / "x.mp4", frames, RenderSettings(size_px=16, codec="MJPG"))
    with pytest.raises(CohortError, match="no virtual-camera video"):
        video_clips(tmp_path, "v0001")


def test_window_hr() -> None:
    feet = np.arange(0, 30, 0.75)  # 80 bpm
    hr = window_hr_bpm(feet, 30.0)
    assert len(hr) == 11 and np.allclose(hr["hr_bpm"], 80.0)


def test_cohort_make_video_cli(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("video_size_px: 16\nvideo_codec: mp4v\n")
    out = tmp_path / "c"
    args = ["cohort", "make", "--out", str(out), "--subjects", "1", "--hours", "0.004", "--spec", str(spec)]
    assert CliRunner().invoke(app, args).exit_code == 0
    dat = next(out.glob("waves/*/*/*.dat")).read_bytes()
    assert not (out / "video").exists()
    r = CliRunner().invoke(app, [*args, "--video"])  # adds the video to the finished cohort
    assert r.exit_code == 0, r.output
    clips = video_clips(out, "v0001")
    assert [c.name for c in clips] == [f"v0001_0001_{r}.mp4" for r in ("forehead", "leftcheek", "rightcheek")]
    assert next(out.glob("waves/*/*/*.dat")).read_bytes() == dat
    gt = read_video_truth(out, "v0001")
    assert gt["meta"]["n_frames"] == len(gt["frames"]) == round(0.004 * 3600 * 30)
    res = video_ppg(clips, method="pos")
    assert abs(res.hr_bpm - gt["meta"]["mean_hr_bpm"]) < 3.0
