"""Virtual-camera video of one cohort subject: region clips rendered from its PPG, and their ground truth.

Layout (beside the WFDB records; see ``docs/guide/cohort.md``)::

    OUT/video/<subject_id>/<record_id>_forehead.avi      one clip per skin region (MJPG .avi or mp4v .mp4)
    OUT/video/<subject_id>/<record_id>_leftcheek.avi
    OUT/video/<subject_id>/<record_id>_rightcheek.avi
    OUT/video/<subject_id>/<record_id>_frames.parquet    per frame: t_s, ppg, light, dx_px, dy_px
    OUT/video/<subject_id>/<record_id>_feet.parquet      per beat in the clip: foot_s, r_time_s, rr_ms
    OUT/video/<subject_id>/<record_id>_hr.parquet        per 10-s window every 2 s: t_s (centre), hr_bpm
    OUT/video/<subject_id>/<record_id>_video.yaml        skin type, optics, exposure gain, settings (written last)

The pulse is the subject's noiseless PPG (``Waveforms.clean["Pleth"]``) divided by its PPG
amplitude ``ppg_amp_nu``, linearly interpolated at the frame times; its intersecting-tangents
feet are the truth table's ``ppg_foot_s``. Subject ``i`` draws the skin type, illumination,
motion, textures and sensor noise from ``default_rng([seed, i, 3])`` (a stream of its own, so
records and truth tables do not change when video is added).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bprl.cohort.layout import record_id_for, subject_id_for
from bprl.cohort.skin_optics import skin_optics
from bprl.cohort.spec import CohortSpec
from bprl.cohort.subjects import SubjectParams
from bprl.cohort.video_render import (
    CODEC_EXTENSIONS,
    REGION_PULSE_SCALE,
    RenderSettings,
    camera_tracks,
    exposure_gain,
    region_frames,
    write_video,
)
from bprl.cohort.waveforms import Waveforms
from bprl.errors import CohortError
from bprl.io import write_parquet_atomic, write_text_atomic

__all__ = [
    "VIDEO_DIR",
    "read_video_truth",
    "render_settings",
    "video_clips",
    "video_folder",
    "video_meta_path",
    "window_hr_bpm",
    "write_subject_video",
]

VIDEO_DIR = "video"
HR_WINDOW_S = 10.0
HR_STEP_S = 2.0


def render_settings(spec: CohortSpec) -> RenderSettings:
    """The :class:`RenderSettings` of a cohort spec's ``video_*`` fields."""
    return RenderSettings(
        fps_hz=spec.video_fps_hz,
        size_px=spec.video_size_px,
        noise_dn=spec.video_noise_dn,
        light_sd=spec.video_light_sd,
        light_steps_per_min=spec.video_light_steps_per_min,
        motion_px=spec.video_motion_px,
        codec=spec.video_codec,
        jpeg_quality=spec.video_jpeg_quality,
        auto_exposure=spec.video_auto_exposure,
    )


def video_folder(root: str | os.PathLike[str], subject_id: str) -> Path:
    """``root/video/<subject_id>``."""
    return Path(root) / VIDEO_DIR / subject_id


def video_meta_path(root: str | os.PathLike[str], subject_id: str, record_id: str | None = None) -> Path:
    """The subject's ``<record_id>_video.yaml`` (written last: its presence means the video is complete)."""
    rid = record_id or f"{subject_id}_0001"
    return video_folder(root, subject_id) / f"{rid}_video.yaml"


def video_clips(root: str | os.PathLike[str], subject_id: str) -> list[Path]:
    """The region clips of a subject (forehead, left cheek, right cheek), as listed in its ``_video.yaml``.

    Raises:
        CohortError: the subject has no (complete) video.
    """
    meta = _read_meta(root, subject_id)
    folder = video_folder(root, subject_id)
    return [folder / name for name in meta["clips"]]


def _read_meta(root: str | os.PathLike[str], subject_id: str) -> dict[str, Any]:
    path = video_meta_path(root, subject_id)
    if not path.is_file():
        raise CohortError(f"{path}: no virtual-camera video for {subject_id} (make the cohort with --video)")
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict) or "clips" not in data:
        raise CohortError(f"{path}: not a virtual-camera video description (no 'clips')")
    return data


def read_video_truth(root: str | os.PathLike[str], subject_id: str) -> dict[str, Any]:
    """Ground truth of a subject's video: ``{"meta": dict, "frames", "feet", "hr": DataFrame}``.

    Raises:
        CohortError: no complete video for the subject.
    """
    meta = _read_meta(root, subject_id)
    folder = video_folder(root, subject_id)
    rid = meta["record_id"]
    out: dict[str, Any] = {"meta": meta}
    for key in ("frames", "feet", "hr"):
        out[key] = pd.read_parquet(folder / f"{rid}_{key}.parquet")
    return out


def window_hr_bpm(
    feet_s: np.ndarray, duration_s: float, window_s: float = HR_WINDOW_S, step_s: float = HR_STEP_S
) -> pd.DataFrame:
    """Heart rate per window from pulse feet: ``60 (n - 1) / (t_last - t_first)`` of the feet inside.

    Windows start at 0 and every ``step_s`` while they fit in ``duration_s`` (the windows of
    :func:`bprl.sources.camera.hr_over_time`); ``t_s`` is the window centre. NaN with < 2 feet.
    """
    feet = np.sort(np.asarray(feet_s, dtype=np.float64))
    starts = np.arange(0.0, max(duration_s - window_s, 0.0) + 1e-9, step_s)
    hr = np.full(len(starts), np.nan)
    for j, s in enumerate(starts):
        f = feet[(feet >= s) & (feet < s + window_s)]
        if len(f) >= 2:
            hr[j] = 60.0 * (len(f) - 1) / (f[-1] - f[0])
    return pd.DataFrame({"t_s": starts + window_s / 2.0, "hr_bpm": hr})


def _mean_hr(feet_s: np.ndarray) -> float | None:
    """``60 (n - 1) / (t_last - t_first)`` of the feet, bpm (None with < 2 feet)."""
    if len(feet_s) < 2:
        return None
    return round(float(60.0 * (len(feet_s) - 1) / (feet_s[-1] - feet_s[0])), 4)


def write_subject_video(
    root: str | os.PathLike[str],
    i: int,
    params: SubjectParams,
    waves: Waveforms,
    truth: pd.DataFrame,
    spec: CohortSpec,
    seed: int,
) -> Path:
    """Render and write subject ``i``'s region clips and their ground truth; returns the ``_video.yaml``.

    Args:
        root: the cohort folder.
        i: subject index.
        params: the subject's parameters (``ppg_amp_nu``).
        waves: its waveforms (the noiseless ``Pleth`` is rendered).
        truth: its ground-truth beat table (``ppg_foot_s``, ``r_time_s``, ``rr_ms``).
        spec: the cohort spec (``video_*`` fields).
        seed: the cohort seed.
    """
    sid, rid = subject_id_for(i), record_id_for(i)
    settings = render_settings(spec)
    rng = np.random.default_rng([seed, i, 3])
    skin_type = int(rng.choice(np.asarray(spec.video_skin_types)))
    optics = skin_optics(skin_type, spec.video_pulse_green, spec.video_brightness)
    fs_ppg = float(spec.fs_ppg_hz)
    pleth = waves.clean["Pleth"]
    record_s = len(pleth) / fs_ppg
    duration_s = min(record_s, spec.video_seconds or record_s)
    n_frames = int(np.floor(duration_s * settings.fps_hz))
    tracks = camera_tracks(n_frames, settings, rng)
    pulse = np.interp(tracks.t_s, np.arange(len(pleth)) / fs_ppg, pleth) / params.ppg_amp_nu
    folder = video_folder(root, sid)
    for stale in folder.glob(".*.tmp*"):  # left by an interrupted run
        stale.unlink()
    ext = CODEC_EXTENSIONS[settings.codec]
    clips = []
    for region, scale in REGION_PULSE_SCALE.items():
        path = folder / f"{rid}_{region}{ext}"
        write_video(path, region_frames(pulse, optics, tracks, settings, rng, scale), settings)
        clips.append(path.name)
    frames = pd.DataFrame(
        {"t_s": tracks.t_s, "ppg": pulse, "light": tracks.light, "dx_px": tracks.dx_px, "dy_px": tracks.dy_px}
    )
    end_s = n_frames / settings.fps_hz
    in_clip = (truth["ppg_foot_s"] >= 0) & (truth["ppg_foot_s"] < end_s)
    feet = truth.loc[in_clip, ["ppg_foot_s", "r_time_s", "rr_ms"]].rename(columns={"ppg_foot_s": "foot_s"})
    write_parquet_atomic(frames, folder / f"{rid}_frames.parquet")
    write_parquet_atomic(feet.reset_index(drop=True), folder / f"{rid}_feet.parquet")
    write_parquet_atomic(window_hr_bpm(feet["foot_s"].to_numpy(), end_s), folder / f"{rid}_hr.parquet")
    meta = {
        "subject_id": sid,
        "record_id": rid,
        "clips": clips,
        "regions": list(REGION_PULSE_SCALE),
        "region_pulse_scale": dict(REGION_PULSE_SCALE),
        "skin_type": skin_type,
        "melanin_fraction": optics.melanin_fraction,
        "diffuse_rgb": [round(float(v), 6) for v in optics.diffuse_rgb],
        "pulse_rgb": [round(float(v), 6) for v in optics.pulse_rgb],
        "specular": optics.specular,
        "exposure_gain": round(exposure_gain(optics, settings.auto_exposure), 6),
        "fps_hz": settings.fps_hz,
        "n_frames": n_frames,
        "duration_s": end_s,
        "size_px": settings.size_px,
        "codec": settings.codec,
        "jpeg_quality": settings.jpeg_quality,
        "mean_hr_bpm": _mean_hr(feet["foot_s"].to_numpy()),
    }
    return write_text_atomic(yaml.safe_dump(meta, sort_keys=False), video_meta_path(root, sid, rid))
