"""Virtual camera: render skin-region video frames from a PPG pulse, and write them as video files.

Each region (forehead, left cheek, right cheek) is a small square crop of skin, like the real
``bias_eval_rppg`` clips. Frame ``k`` (at ``t = k / fps``) is rendered with the skin-optics model
of :mod:`bprl.cohort.skin_optics`, pixel by pixel::

    X = 255 * g * I(t) * ( D_c(x - d(t)) * (1 - r a_c p(t))  +  S(x - d(t)) * (1 + 2 (dx + dy) / size) ) + n

- ``D_c(x)``: the region's diffuse reflectance times a fixed skin texture (a smooth albedo field
  of 4 % SD, pores of 2 % SD, a 10 % shading gradient across the crop, from the region's own
  generator) and ``S(x)`` the specular share times its own smooth highlight field;
- ``p(t)``: the pulse, ``r`` the region's pulse scale (:data:`REGION_PULSE_SCALE`);
- ``d(t) = (dx, dy)``: head motion, a translation of the crop over the skin (band-limited noise
  0.05-1 Hz of SD ``motion_px``, sub-pixel, ``cv2.warpAffine``); it also changes the specular
  part (the light-skin-camera angle changes);
- ``I(t)``: illumination, ``exp`` of a slow drift (< 0.1 Hz, SD ``light_sd``) times Poisson
  steps (``light_steps_per_min``, log-step SD 0.08: lamps, auto-white-balance jumps as in the
  real clips);
- ``g``: auto-exposure gain, ``sqrt(0.45 / luma)`` of the skin's mean colour, within 1-4
  (darker skin is exposed longer, which amplifies noise too);
- ``n``: sensor noise per pixel, shot + read noise ``noise_dn * sqrt(0.25 + X0 / 128)`` (``X0``
  the noiseless value at unity gain), times ``g``; then rounding to 8 bits and compression by the
  codec (MJPG: JPEG per frame at ``jpeg_quality``; mp4v: MPEG-4 Part 2).

Every random draw comes from the explicit ``numpy.random.Generator`` passed in, in a fixed
order, so the same generator state gives the same frames.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from bprl.cohort.artefacts import noise_band
from bprl.cohort.skin_optics import SkinOptics
from bprl.errors import CohortError

__all__ = [
    "CODEC_EXTENSIONS",
    "REGION_PULSE_SCALE",
    "CameraTracks",
    "RenderSettings",
    "camera_tracks",
    "exposure_gain",
    "region_frames",
    "skin_texture",
    "write_video",
]

#: pulse scale per region (model choice: forehead strongest, cheeks a little weaker)
REGION_PULSE_SCALE: dict[str, float] = {"forehead": 1.0, "leftcheek": 0.85, "rightcheek": 0.85}
#: codecs the virtual camera writes (both read back by opencv-python-headless) and their containers
CODEC_EXTENSIONS: dict[str, str] = {"MJPG": ".avi", "mp4v": ".mp4"}
_CHUNK_FRAMES = 256
_LIGHT_STEP_SD = 0.08


@dataclass(frozen=True)
class RenderSettings:
    """How the virtual camera renders and writes a region clip (the ``video_*`` cohort-spec fields).

    Attributes:
        fps_hz: frame rate, frames per second.
        size_px: width and height of a region crop, pixels.
        noise_dn: sensor noise SD of one pixel at mid grey (DN of 255) before the exposure gain.
        light_sd: SD of the slow log-illumination drift.
        light_steps_per_min: rate of illumination steps.
        motion_px: SD of the head translation, pixels.
        codec: ``"MJPG"`` (.avi) or ``"mp4v"`` (.mp4).
        jpeg_quality: MJPG quality 10-100.
        auto_exposure: apply the auto-exposure gain (otherwise ``g = 1``).
    """

    fps_hz: float = 30.0
    size_px: int = 64
    noise_dn: float = 2.0
    light_sd: float = 0.02
    light_steps_per_min: float = 0.5
    motion_px: float = 0.5
    codec: str = "MJPG"
    jpeg_quality: int = 90
    auto_exposure: bool = True


@dataclass
class CameraTracks:
    """Per-frame nuisance of one recording, shared by its regions.

    Attributes:
        t_s: frame times, s.
        light: illumination intensity ``I(t)`` (1 = nominal).
        dx_px: horizontal head translation, pixels.
        dy_px: vertical head translation, pixels.
    """

    t_s: np.ndarray
    light: np.ndarray
    dx_px: np.ndarray
    dy_px: np.ndarray


def camera_tracks(n_frames: int, settings: RenderSettings, rng: np.random.Generator) -> CameraTracks:
    """Illumination and motion per frame (drawn from ``rng`` in a fixed order)."""
    fs = settings.fps_hz
    t = np.arange(n_frames) / fs
    dur_s = n_frames / fs
    log_light = noise_band(rng, n_frames, fs, None, 0.1, settings.light_sd)
    n_steps = int(rng.poisson(settings.light_steps_per_min * dur_s / 60.0))
    step_t = np.sort(rng.uniform(0.0, dur_s, n_steps))
    step_size = rng.normal(0.0, _LIGHT_STEP_SD, n_steps)
    for ts, size in zip(step_t, step_size, strict=True):
        log_light[t >= ts] += size
    dx = noise_band(rng, n_frames, fs, 0.05, 1.0, settings.motion_px)
    dy = noise_band(rng, n_frames, fs, 0.05, 1.0, settings.motion_px)
    return CameraTracks(t_s=t, light=np.exp(log_light), dx_px=dx, dy_px=dy)


def exposure_gain(optics: SkinOptics, auto_exposure: bool = True) -> float:
    """Auto-exposure gain ``sqrt(0.45 / luma)`` of the skin's mean colour, clipped to 1-4 (1 when off)."""
    if not auto_exposure:
        return 1.0
    luma = float(np.dot([0.299, 0.587, 0.114], optics.mean_rgb()))
    return float(np.clip(np.sqrt(0.45 / max(luma, 1e-6)), 1.0, 4.0))


def skin_texture(size_px: int, margin_px: int, rng: np.random.Generator) -> np.ndarray:
    """Relative albedo map (mean 1) of a skin patch: smooth field, pores and a shading gradient.

    Returns:
        ``(size + 2 margin, size + 2 margin, 2)`` float32: diffuse albedo factor and specular factor.
    """
    n = size_px + 2 * margin_px
    smooth = ndimage.gaussian_filter(rng.standard_normal((n, n)), sigma=max(n / 8.0, 1.0))
    smooth *= 0.04 / max(float(smooth.std()), 1e-12)
    pores = 0.02 * rng.standard_normal((n, n))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:n, 0:n] / max(n - 1, 1) - 0.5
    shading = 0.10 * (np.cos(angle) * xx + np.sin(angle) * yy)
    diffuse = 1.0 + smooth + pores + shading
    hl = ndimage.gaussian_filter(rng.standard_normal((n, n)), sigma=max(n / 6.0, 1.0))
    specular = np.clip(1.0 + hl * (0.5 / max(float(hl.std()), 1e-12)), 0.0, None)
    return np.stack([diffuse, specular], axis=-1).astype(np.float32)


def region_frames(
    pulse: np.ndarray,
    optics: SkinOptics,
    tracks: CameraTracks,
    settings: RenderSettings,
    rng: np.random.Generator,
    pulse_scale: float = 1.0,
) -> Iterator[np.ndarray]:
    """Frames of one region as uint8 RGB ``(size, size, 3)`` arrays, one per pulse sample.

    Args:
        pulse: blood-volume pulse at the frame times (0 at the foot, ~1 at the systolic peak).
        optics: the subject's skin (:func:`bprl.cohort.skin_optics.skin_optics`).
        tracks: illumination and motion (:func:`camera_tracks`), same length as ``pulse``.
        settings: rendering settings.
        rng: the region's generator (texture, then sensor noise chunk by chunk).
        pulse_scale: the region's pulse scale.
    """
    size = settings.size_px
    margin = int(np.ceil(4.0 * settings.motion_px)) + 2
    tex = skin_texture(size, margin, rng)
    gain = exposure_gain(optics, settings.auto_exposure)
    diffuse = optics.diffuse_rgb.astype(np.float32)
    a = (pulse_scale * optics.pulse_rgb).astype(np.float32)
    n = len(pulse)
    for s in range(0, n, _CHUNK_FRAMES):
        e = min(s + _CHUNK_FRAMES, n)
        shifted = np.empty((e - s, size, size, 2), dtype=np.float32)
        for j, k in enumerate(range(s, e)):
            m = np.float32([[1, 0, margin - tracks.dx_px[k]], [0, 1, margin - tracks.dy_px[k]]])
            shifted[j] = cv2.warpAffine(tex, m, (size, size), flags=cv2.INTER_LINEAR)
        p = pulse[s:e].astype(np.float32)[:, None, None, None]
        spec_mod = (1.0 + 2.0 * (tracks.dx_px[s:e] + tracks.dy_px[s:e]) / size).astype(np.float32)
        x0 = 255.0 * (
            shifted[..., :1] * diffuse * (1.0 - a * p)
            + shifted[..., 1:] * np.float32(optics.specular) * spec_mod[:, None, None, None]
        )
        x0 *= tracks.light[s:e].astype(np.float32)[:, None, None, None]
        sd = settings.noise_dn * np.sqrt(0.25 + np.maximum(x0, 0.0) / 128.0)
        x = gain * (x0 + sd * rng.standard_normal(x0.shape, dtype=np.float32))
        frames = np.clip(np.rint(x), 0, 255).astype(np.uint8)
        yield from frames


def write_video(path: str | os.PathLike[str], frames: Iterator[np.ndarray], settings: RenderSettings) -> Path:
    """Write RGB frames to ``path`` with OpenCV's VideoWriter (temp file, then rename).

    The codec is ``settings.codec``; its container follows :data:`CODEC_EXTENSIONS`, which
    ``path`` must end with.

    Raises:
        CohortError: unknown codec, wrong extension, or OpenCV cannot open the writer.
    """
    path = Path(path)
    if settings.codec not in CODEC_EXTENSIONS:
        raise CohortError(f"unknown video codec {settings.codec!r} (one of {', '.join(CODEC_EXTENSIONS)})")
    ext = CODEC_EXTENSIONS[settings.codec]
    if path.suffix != ext:
        raise CohortError(f"{path}: codec {settings.codec} writes {ext} files")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{ext}")
    size = (settings.size_px, settings.size_px)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*settings.codec), settings.fps_hz, size)
    try:
        if not writer.isOpened():
            raise CohortError(f"{path}: OpenCV cannot open a {settings.codec} video writer")
        if settings.codec == "MJPG":
            writer.set(cv2.VIDEOWRITER_PROP_QUALITY, float(settings.jpeg_quality))
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))  # RGB -> BGR
        writer.release()
        os.replace(tmp, path)
    finally:
        writer.release()
        if tmp.exists():
            tmp.unlink()
    return path
