"""Camera PPG: video in, a PPG-like channel out (see ``docs/guide/camera.md``).

- :mod:`~bprl.sources.camera.video`: OpenCV decoding, spatial-mean RGB, skin mask, face regions;
- :mod:`~bprl.sources.camera.rppg`: GREEN, CHROM, POS, LGI, PBV, heart rate, quality, fusion;
- :mod:`~bprl.sources.camera.record`: :func:`video_to_record`, a :class:`bprl.sources.Record`
  with a ``ppg`` channel.
"""

from __future__ import annotations

from bprl.sources.camera.record import (
    METHOD_NAMES,
    VideoPPG,
    analyse_regions,
    read_regions,
    video_ppg,
    video_to_record,
)
from bprl.sources.camera.rppg import (
    METHODS,
    bandpass,
    fuse_signals,
    fuse_spectra,
    hr_from_pulse,
    hr_over_time,
    rppg_chrom,
    rppg_green,
    rppg_lgi,
    rppg_pbv,
    rppg_pos,
    snr_db,
    suppress_steps,
)
from bprl.sources.camera.video import (
    MIN_DURATION_S,
    VideoInfo,
    detect_face,
    probe_video,
    read_face_regions,
    read_video_rgb,
    skin_mask,
)

__all__ = [
    "METHODS",
    "METHOD_NAMES",
    "MIN_DURATION_S",
    "VideoInfo",
    "VideoPPG",
    "analyse_regions",
    "bandpass",
    "detect_face",
    "fuse_signals",
    "fuse_spectra",
    "hr_from_pulse",
    "hr_over_time",
    "probe_video",
    "read_face_regions",
    "read_regions",
    "read_video_rgb",
    "rppg_chrom",
    "rppg_green",
    "rppg_lgi",
    "rppg_pbv",
    "rppg_pos",
    "skin_mask",
    "snr_db",
    "suppress_steps",
    "video_ppg",
    "video_to_record",
]
