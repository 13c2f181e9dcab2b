"""A synthetic full-face video with a known pulse: test and benchmark material for face tracking.

The real camera data bundled for development (``bias_eval_rppg``) are skin-region crops, so the
full-face path (:func:`~bprl.sources.camera.read_face_regions`: Haar face detection, forehead
and cheek boxes, re-detection) has no real clip to run on. :func:`write_face_video` draws a
schematic frontal face (skin ellipse, brows, eyes, nose, mouth), which OpenCV's bundled Haar
cascade detects, and writes it as a real video file:

* **pulse**: the skin pixels' colour is multiplied by ``1 + amplitude * w_c * p(t)``, with
  ``p`` a unit sine at ``hr_bpm`` and channel weights ``w`` (R, G, B) = (0.3, 1.0, 0.45): the
  pulsatile absorption is strongest in green (Verkruysse et al., Opt Express 16:21434, 2008);
* **motion**: the face drifts by ``motion_px`` (peak) on a 10-s sinusoid in x and a 14-s one in y;
* **sensor noise**: Gaussian, ``noise_dn`` digital numbers per pixel and channel, then 8-bit
  rounding and the codec (MJPG in ``.avi``, mp4v in ``.mp4``).

The clip is deterministic for a seed. It is a stand-in for a face, not a rendering of one: it
tests tracking, region placement and timing, not skin-tone or lighting robustness (the virtual
camera of :mod:`bprl.cohort` models those on skin crops).

>>> import tempfile, pathlib
>>> p = write_face_video(pathlib.Path(tempfile.mkdtemp()) / "face.avi", duration_s=1.0, fps=10, size=(160, 120))
>>> p.suffix
'.avi'
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from bprl.errors import RecordError
from bprl.io import atomic_output

__all__ = ["PULSE_CHANNEL_WEIGHTS_RGB", "face_image", "write_face_video"]

#: relative pulsatile amplitude per channel (R, G, B), green = 1
PULSE_CHANNEL_WEIGHTS_RGB: tuple[float, float, float] = (0.3, 1.0, 0.45)
#: skin colour (B, G, R) of the drawn face
_SKIN_BGR = (120, 160, 210)
_CODECS = {".avi": "MJPG", ".mp4": "mp4v"}


def face_image(size: tuple[int, int] = (640, 480), scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A schematic frontal face centred in a ``size`` = (width, height) BGR image, and its skin mask.

    ``scale`` 1 draws a face about 180 x 240 px (a 640 x 480 frame at arm's length).
    """
    w, h = size
    cx, cy = w // 2, h // 2
    s = scale * min(w / 640.0, h / 480.0)
    img = np.full((h, w, 3), (90, 110, 120), np.uint8)
    cv2.ellipse(img, (cx, cy), (int(90 * s), int(120 * s)), 0, 0, 360, _SKIN_BGR, -1)
    skin = np.all(img == np.array(_SKIN_BGR, np.uint8), axis=2)
    for dx in (-1, 1):
        ex, ey = cx + dx * int(38 * s), cy - int(25 * s)
        cv2.ellipse(
            img, (ex, ey - int(22 * s)), (int(26 * s), max(1, int(6 * s))), 0, 0, 360, (40, 50, 70), -1
        )
        cv2.ellipse(img, (ex, ey), (int(20 * s), max(1, int(10 * s))), 0, 0, 360, (235, 235, 235), -1)
        cv2.circle(img, (ex, ey), max(1, int(8 * s)), (30, 30, 40), -1)
    nose = np.array(
        [[cx, cy - int(10 * s)], [cx - int(14 * s), cy + int(30 * s)], [cx + int(14 * s), cy + int(30 * s)]]
    )
    cv2.fillPoly(img, [nose], (95, 130, 180))
    cv2.ellipse(img, (cx, cy + int(62 * s)), (int(35 * s), max(1, int(10 * s))), 0, 0, 360, (60, 60, 140), -1)
    skin &= np.all(img == np.array(_SKIN_BGR, np.uint8), axis=2)  # not under eyes, nose, mouth
    img = cv2.GaussianBlur(img, (0, 0), 1.5)
    return img, skin


def write_face_video(
    path: str | Path,
    duration_s: float = 20.0,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 480),
    hr_bpm: float = 72.0,
    amplitude: float = 0.02,
    motion_px: float = 6.0,
    noise_dn: float = 2.0,
    seed: int = 0,
) -> Path:
    """Write a synthetic full-face clip with a pulse at ``hr_bpm`` (see the module docstring).

    Args:
        path: the file to write (``.avi``: MJPG, ``.mp4``: mp4v); written to a temporary file
            and renamed, so a failed run leaves nothing half-written.
        duration_s: clip length, seconds.
        fps: frame rate, frames per second.
        size: frame (width, height) in pixels.
        hr_bpm: heart rate of the pulse, beats per minute.
        amplitude: pulsatile amplitude in green, a fraction of the skin's value.
        motion_px: peak drift of the face, pixels.
        noise_dn: SD of the sensor noise, 8-bit digital numbers.
        seed: seed of the noise.

    Returns:
        ``path``.

    Raises:
        RecordError: an unknown suffix or a codec that OpenCV cannot write.
    """
    out = Path(path)
    codec = _CODECS.get(out.suffix.lower())
    if codec is None:
        raise RecordError(f"{out}: write .avi (MJPG) or .mp4 (mp4v), not {out.suffix!r}")
    rng = np.random.default_rng(seed)
    base, skin = face_image(size)
    n = max(1, round(duration_s * fps))
    with atomic_output(out) as tmp:
        tmp_path = Path(tmp).with_suffix(out.suffix)  # OpenCV picks the container by suffix
        try:
            _write_frames(
                tmp_path, codec, n, fps, size, base, skin, hr_bpm, amplitude, motion_px, noise_dn, rng
            )
            tmp_path.replace(tmp)
        finally:
            tmp_path.unlink(missing_ok=True)
    return out


def _write_frames(
    path: Path,
    codec: str,
    n: int,
    fps: float,
    size: tuple[int, int],
    base: np.ndarray,
    skin: np.ndarray,
    hr_bpm: float,
    amplitude: float,
    motion_px: float,
    noise_dn: float,
    rng: np.random.Generator,
) -> None:
    """The frames of :func:`write_face_video`, written to ``path`` with ``codec``."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), float(fps), tuple(size))
    if not writer.isOpened():
        raise RecordError(f"{path}: OpenCV cannot write {codec} video here")
    base_f = base.astype(np.float32)
    w_bgr = np.array(PULSE_CHANNEL_WEIGHTS_RGB[::-1], np.float32)
    try:
        for i in range(n):
            t = i / fps
            frame = base_f.copy()
            frame[skin] *= 1.0 + amplitude * np.sin(2.0 * np.pi * hr_bpm / 60.0 * t) * w_bgr
            dx, dy = motion_px * np.sin(2 * np.pi * t / 10.0), motion_px * np.sin(2 * np.pi * t / 14.0)
            shift = np.float32([[1, 0, dx], [0, 1, dy]])
            frame = cv2.warpAffine(frame, shift, tuple(size), borderMode=cv2.BORDER_REPLICATE)
            frame += rng.normal(0.0, noise_dn, frame.shape).astype(np.float32)
            writer.write(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    finally:
        writer.release()
