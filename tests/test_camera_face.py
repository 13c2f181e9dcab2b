"""The full-face camera path (face detection, tracked forehead and cheek regions) on synthetic
face clips with a known pulse (bprl.sources.camera.synthetic_face)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bprl.errors import RecordError
from bprl.sources.camera import detect_face, read_face_regions, video_ppg
from bprl.sources.camera.synthetic_face import face_image, write_face_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_face_video(
        tmp_path_factory.mktemp("face") / "face.avi", duration_s=12.0, fps=15.0, size=(320, 240), hr_bpm=84.0
    )


def test_the_drawn_face_is_found_where_it_is():
    img, skin = face_image((640, 480))
    x, y, w, h = detect_face(img)
    assert abs(x + w / 2 - 320) < 20 and abs(y + h / 2 - 240) < 40  # centred on the drawn face
    assert skin[240, 320 - 60] and not skin[10, 10]  # cheek is skin, the background is not


def test_face_regions_track_the_face_and_carry_its_pulse(clip):
    regions, fs_hz, t_s = read_face_regions(clip)
    assert set(regions) == {"forehead", "leftcheek", "rightcheek"} and fs_hz == pytest.approx(15.0)
    assert all(v.shape == (len(t_s), 3) for v in regions.values())
    rgb = regions["forehead"]
    assert 150 < rgb[:, 0].mean() < 230 and rgb[:, 0].mean() > rgb[:, 2].mean()  # skin, not background
    res = video_ppg(clip, method="pos", face=True)
    assert res.hr_bpm == pytest.approx(84.0, abs=2.0)
    fused = video_ppg(clip, method="fused", face=True)
    assert fused.hr_bpm == pytest.approx(84.0, abs=2.0)


def test_a_clip_without_a_face_is_a_clear_error(tmp_path):
    path = tmp_path / "wall.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (160, 120))
    for _ in range(120):
        writer.write(np.full((120, 160, 3), 128, np.uint8))
    writer.release()
    with pytest.raises(RecordError, match="no face found"):
        read_face_regions(path)


def test_the_clip_is_deterministic_and_never_half_written(tmp_path):
    a = write_face_video(tmp_path / "a.avi", duration_s=1.0, fps=10.0, size=(160, 120), seed=3)
    b = write_face_video(tmp_path / "b.avi", duration_s=1.0, fps=10.0, size=(160, 120), seed=3)
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(RecordError, match=r"\.avi"):
        write_face_video(tmp_path / "c.mov", duration_s=1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.avi", "b.avi"]  # no temporary left behind
