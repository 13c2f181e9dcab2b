"""Camera clips -> a :class:`bprl.sources.Record` with a ``ppg`` channel (and the heart-rate analysis).

:func:`video_ppg` reads one or more clips of the same recording (skin-region crops such as
forehead and cheeks, or one full-face clip with ``face=True``), runs one rPPG method (or
all of them, ``method="fused"``) per region, and fuses regions and methods by signal
quality (:func:`bprl.sources.camera.rppg.fuse_spectra`). :func:`video_to_record` wraps the
fused pulse as a PPG channel so ``bprl.beats`` and ``bprl.features`` take it as they take a
finger PPG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bprl.errors import RecordError
from bprl.sources.camera.rppg import METHODS, fuse_signals, fuse_spectra, hr_from_pulse, hr_over_time
from bprl.sources.camera.video import read_face_regions, read_video_rgb
from bprl.sources.record import Channel, Record

#: method names accepted by :func:`video_ppg` (``"fused"``: every method, fused by quality)
METHOD_NAMES: tuple[str, ...] = (*METHODS, "fused")


@dataclass
class VideoPPG:
    """Heart-rate analysis of a clip (or of simultaneous region clips).

    Attributes:
        pulse: fused pulse signal (unit SD), one sample per frame.
        fs_hz: frame rate in Hz.
        hr_bpm: mean heart rate of the fused estimate, bpm.
        snr_db: quality of the fused spectrum (de Haan & Jeanne 2013 SNR), dB.
        per_signal: ``{"region/method": (hr_bpm, snr_db, weight)}`` for every signal fused.
        t_s: centres of the heart-rate-over-time windows, s.
        hr_t_bpm: heart rate per window of the fused pulse, bpm.
        snr_t_db: SNR per window, dB.
        rgb_mean: mean R, G, B over the clip per region.
    """

    pulse: np.ndarray
    fs_hz: float
    hr_bpm: float
    snr_db: float
    per_signal: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hr_t_bpm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    snr_t_db: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rgb_mean: dict[str, np.ndarray] = field(default_factory=dict)


def _region_name(path: Path) -> str:
    """``video1_forehead.avi`` -> ``forehead``; other names -> the file stem."""
    stem = path.stem
    return stem.rsplit("_", 1)[1] if "_" in stem else stem


def read_regions(
    paths: str | Path | Sequence[str | Path], face: bool = False, progress: bool = False
) -> tuple[dict[str, np.ndarray], float]:
    """Mean RGB traces of one or more simultaneous region clips (or the face regions of one clip).

    Region clips of different lengths are cut to the shortest.

    Returns:
        ``({region: rgb (N, 3)}, fs_hz)``.

    Raises:
        RecordError: unreadable clips, too short, no face found (``face=True``).
    """
    plist = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not plist:
        raise RecordError("no video file given")
    if face:
        if len(plist) != 1:
            raise RecordError("face=True takes one full-face video")
        regions, fs_hz, _ = read_face_regions(plist[0], progress=progress)
        return regions, fs_hz
    regions: dict[str, np.ndarray] = {}
    rates = []
    for p in plist:
        rgb, fs_hz, _ = read_video_rgb(p, progress=progress)
        name = _region_name(p)
        regions[name if name not in regions else p.stem] = rgb
        rates.append(fs_hz)
    if max(rates) - min(rates) > 0.05 * max(rates):
        raise RecordError(f"region clips have different frame rates: {[round(r, 2) for r in rates]} Hz")
    n = min(len(v) for v in regions.values())
    return {k: v[:n] for k, v in regions.items()}, float(np.mean(rates))


def analyse_regions(regions: dict[str, np.ndarray], fs_hz: float, method: str = "pos") -> VideoPPG:
    """Run ``method`` (or all, ``"fused"``) on every region and fuse by quality.

    Raises:
        RecordError: unknown method.
    """
    if method not in METHOD_NAMES:
        raise RecordError(f"unknown rPPG method {method!r} (one of {', '.join(METHOD_NAMES)})")
    names = list(METHODS) if method == "fused" else [method]
    pulses = {f"{r}/{m}": METHODS[m](rgb, fs_hz) for r, rgb in regions.items() for m in names}
    hr, snr, weights = fuse_spectra(pulses, fs_hz)
    per = {}
    for k, x in pulses.items():
        h, q = hr_from_pulse(x, fs_hz)
        per[k] = (h, q, weights.get(k, 0.0))
    fused = fuse_signals(pulses, weights)
    t, hr_t, snr_t = hr_over_time(fused, fs_hz)
    return VideoPPG(
        pulse=fused,
        fs_hz=fs_hz,
        hr_bpm=hr,
        snr_db=snr,
        per_signal=per,
        t_s=t,
        hr_t_bpm=hr_t,
        snr_t_db=snr_t,
        rgb_mean={r: v.mean(axis=0) for r, v in regions.items()},
    )


def video_ppg(
    paths: str | Path | Sequence[str | Path], method: str = "pos", face: bool = False, progress: bool = False
) -> VideoPPG:
    """Heart-rate analysis of clips: :func:`read_regions` then :func:`analyse_regions`."""
    regions, fs_hz = read_regions(paths, face=face, progress=progress)
    return analyse_regions(regions, fs_hz, method)


def video_to_record(
    paths: str | Path | Sequence[str | Path], method: str = "pos", face: bool = False
) -> Record:
    """A :class:`Record` with one ``ppg`` channel (``"rPPG"``, units ``NU``, at the frame rate).

    The channel is the quality-fused pulse of :func:`video_ppg` (unit SD, rises with blood
    volume); the mean heart rate and its SNR are kept in ``Record.comments``.
    """
    plist = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    res = video_ppg(plist, method=method, face=face)
    first = plist[0]
    subject = first.stem.rsplit("_", 1)[0] if "_" in first.stem else first.stem
    chan = Channel(name="rPPG", role="ppg", fs_hz=res.fs_hz, units="NU", samples=res.pulse.astype(np.float32))
    return Record(
        subject_id=subject,
        record_id=subject,
        path=str(first),
        channels=[chan],
        comments=[
            f"camera PPG: method={method}, regions={','.join(res.rgb_mean)}",
            f"mean HR {res.hr_bpm:.1f} bpm, SNR {res.snr_db:.1f} dB",
        ],
    )
