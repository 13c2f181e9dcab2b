"""WFDB writing of virtual-cohort records: physical -> format-16 digital samples, fast multi-rate writer.

Records hold channels II (mV), Pleth (NU) and ABP (mmHg) at their own sampling rates
(:data:`CHANNELS`); NaN samples are written as the WFDB invalid value and read back as NaN.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import wfdb

__all__ = ["CHANNELS", "WFDB_INVALID", "to_digital", "wfdb_write"]

#: (name, units, adc gain per unit) of the three written channels, in this order
CHANNELS: tuple[tuple[str, str, float], ...] = (
    ("II", "mV", 1000.0),
    ("Pleth", "NU", 4000.0),
    ("ABP", "mmHg", 50.0),
)
#: WFDB format-16 invalid sample (reads back as NaN)
WFDB_INVALID = -32768
_DIGITAL_MAX = 32767


def to_digital(x: np.ndarray, gain: float) -> np.ndarray:
    """Physical -> WFDB format-16 digital: ``round(x * gain)`` clipped, NaN -> :data:`WFDB_INVALID`."""
    d = np.rint(np.clip(np.nan_to_num(x, nan=0.0) * gain, -_DIGITAL_MAX, _DIGITAL_MAX)).astype(np.int32)
    d[np.isnan(x)] = WFDB_INVALID
    return d.astype(np.int64)


def wfdb_write(
    folder: str | os.PathLike[str],
    record_id: str,
    waves: dict[str, tuple[np.ndarray, float]],
    comments: list[str],
    base_time: object | None = None,
    use_wrsamp: bool = False,
) -> Path:
    """Write a multi-frequency WFDB record (format 16) with channels II, Pleth, ABP at their own rates.

    ``waves`` maps channel name -> (physical samples, fs_hz). The frame rate is the
    greatest common divisor of the rates; every rate must be a multiple of it and the
    channels must cover the same number of frames. Returns the ``.hea`` path.

    wfdb builds, checks and writes the header (with checksums and initial values);
    the ``.dat`` file is written with NumPy as interleaved little-endian int16 frames,
    byte-identical to ``wfdb.wrsamp`` (``use_wrsamp=True`` calls it instead) but
    several times faster, because wrsamp checks digital ranges with Python's
    builtin ``min``/``max`` over every sample.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rates = [round(waves[name][1]) for name, _, _ in CHANNELS]
    frame = math.gcd(*rates)
    spf = [r // frame for r in rates]
    n_frames = min(len(waves[name][0]) // s for (name, _, _), s in zip(CHANNELS, spf, strict=True))
    e_d = [
        to_digital(waves[name][0][: n_frames * s], gain)
        for (name, _, gain), s in zip(CHANNELS, spf, strict=True)
    ]
    kwargs = dict(
        fs=float(frame),
        units=[u for _, u, _ in CHANNELS],
        sig_name=[n for n, _, _ in CHANNELS],
        e_d_signal=e_d,
        samps_per_frame=spf,
        fmt=["16"] * len(CHANNELS),
        adc_gain=[g for _, _, g in CHANNELS],
        baseline=[0] * len(CHANNELS),
        comments=comments,
        base_time=base_time,
    )
    if use_wrsamp:
        wfdb.wrsamp(record_id, write_dir=str(folder), **kwargs)
        return folder / f"{record_id}.hea"
    rec = wfdb.Record(record_name=record_id, **kwargs)
    rec.set_d_features(expanded=True)
    rec.set_defaults()
    rec.wrheader(write_dir=str(folder), expanded=True)
    frames = np.concatenate([d.reshape(n_frames, s) for d, s in zip(e_d, spf, strict=True)], axis=1)
    frames.astype("<i2").tofile(folder / f"{record_id}.dat")
    return folder / f"{record_id}.hea"
