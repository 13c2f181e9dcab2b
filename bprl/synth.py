"""Vectorised waveform synthesis for the virtual cohort: ECG, PPG, ABP, artefacts, WFDB writing.

Everything here works on whole arrays (one NumPy pass per wave type, never a Python
loop per sample or per beat), so hours of three-channel signal take a second.

Beat templates
--------------
* **ECG** (McSharry et al. 2003 style): each beat is a sum of five Gaussians
  (P, Q, R, S, T) placed around the beat's R time; the T wave moves and widens with
  ``sqrt(RR)`` (Bazett). Ectopic (ventricular) beats have no P wave, a wide QRS and
  an inverted T. The Gaussians are shifted so that the maximum of the noiseless QRS
  lies exactly on the R time of the truth table.
* **Pulses** (PPG and ABP): a beat runs from its *start* (the pre-upstroke minimum)
  to the next beat's start. The upstroke is a raised cosine of duration ``rise_s``;
  the decay is the cubic Hermite ``(1-v)^2 (1+2v)`` plus a dicrotic wave, reaching
  the next beat's diastolic level with zero slope. Hence the minimum before the
  upstroke is the start itself, the maximum is the end of the upstroke, and the
  intersecting-tangents foot lies :func:`pulse_tangent_offset_s` after the start.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb
from scipy import signal

#: (name, units, adc gain per unit) of the three written channels, in this order
CHANNELS: tuple[tuple[str, str, float], ...] = (
    ("II", "mV", 1000.0),
    ("Pleth", "NU", 4000.0),
    ("ABP", "mmHg", 50.0),
)
#: WFDB format-16 invalid sample (reads back as NaN)
WFDB_INVALID = -32768
_DIGITAL_MAX = 32767


# ------------------------------------------------------------------ ECG
@dataclass(frozen=True)
class EcgMorphology:
    """Gaussian-wave ECG beat morphology of one subject (times in s, amplitudes in mV).

    Each wave ``i`` of a normal beat is ``amp_mv[i] * exp(-((t - r - centre_s[i]) / width_s[i])^2 / 2)``;
    the P-R interval and QRS are fixed, the T wave centre and width scale with ``sqrt(RR / 1 s)``.

    Attributes:
        amp_mv: amplitudes of P, Q, R, S, T of a normal beat.
        centre_s: centres relative to R at RR = 1 s.
        width_s: Gaussian SDs at RR = 1 s.
        pvc_amp_mv: amplitudes of Q, R, S, T of a ventricular ectopic beat (no P).
        pvc_centre_s: their centres.
        pvc_width_s: their SDs.
    """

    amp_mv: tuple[float, float, float, float, float]
    centre_s: tuple[float, float, float, float, float]
    width_s: tuple[float, float, float, float, float]
    pvc_amp_mv: tuple[float, float, float, float]
    pvc_centre_s: tuple[float, float, float, float]
    pvc_width_s: tuple[float, float, float, float]

    @staticmethod
    def sample(rng: np.random.Generator, scale_mv: float) -> EcgMorphology:
        """Draw a subject's morphology: textbook amplitudes and intervals jittered by ~15 %."""

        def jit(x: float, rel: float = 0.15) -> float:
            return float(x * (1.0 + rel * rng.uniform(-1.0, 1.0)))

        pr = rng.uniform(0.13, 0.19)
        return EcgMorphology(
            amp_mv=(
                jit(0.12 * scale_mv),
                jit(-0.10 * scale_mv),
                scale_mv,
                jit(-0.22 * scale_mv),
                jit(0.30 * scale_mv),
            ),
            centre_s=(-pr, jit(-0.024, 0.1), 0.0, jit(0.026, 0.1), jit(0.29, 0.08)),
            width_s=(jit(0.024), jit(0.008), jit(0.010), jit(0.009), jit(0.05)),
            pvc_amp_mv=(
                jit(-0.15 * scale_mv),
                jit(1.3 * scale_mv),
                jit(-0.45 * scale_mv),
                jit(-0.40 * scale_mv),
            ),
            pvc_centre_s=(-0.04, 0.0, 0.055, jit(0.33, 0.05)),
            pvc_width_s=(0.015, jit(0.028), 0.022, jit(0.07)),
        )

    def r_offsets_s(self) -> tuple[float, float]:
        """Where the noiseless QRS maximum lies relative to the R Gaussian centre (normal, ectopic).

        Computed once numerically on a 10-µs grid; the synthesiser shifts every beat by
        minus this offset so that the QRS maximum is exactly the truth R time.
        """
        t = np.arange(-0.08, 0.08, 1e-5)
        normal = sum(
            a * np.exp(-0.5 * ((t - c) / w) ** 2)
            for a, c, w in zip(self.amp_mv[1:4], self.centre_s[1:4], self.width_s[1:4], strict=True)
        )
        pvc = sum(
            a * np.exp(-0.5 * ((t - c) / w) ** 2)
            for a, c, w in zip(self.pvc_amp_mv[:3], self.pvc_centre_s[:3], self.pvc_width_s[:3], strict=True)
        )
        return float(t[np.argmax(normal)]), float(t[np.argmax(pvc)])


def _add_gaussians(
    out: np.ndarray, fs_hz: float, centre_s: np.ndarray, width_s: np.ndarray, amp: np.ndarray
) -> None:
    """Add one Gaussian per row (centre, width, amplitude) into ``out`` with array indexing and bincount."""
    if len(centre_s) == 0:
        return
    n = len(out)
    half = math.ceil(4.5 * float(np.max(width_s)) * fs_hz) + 1
    offs = np.arange(-half, half + 1)
    chunk = max(1, 2_000_000 // len(offs))
    for i0 in range(0, len(centre_s), chunk):  # chunks bound memory, not a per-beat loop
        c = centre_s[i0 : i0 + chunk]
        idx = np.rint(c * fs_hz).astype(np.int64)[:, None] + offs[None, :]
        z = (idx / fs_hz - c[:, None]) / width_s[i0 : i0 + chunk, None]
        val = amp[i0 : i0 + chunk, None] * np.exp(-0.5 * z * z)
        ok = (idx >= 0) & (idx < n)
        out += np.bincount(idx[ok], weights=val[ok], minlength=n)


def ecg_synthesize(
    r_times_s: np.ndarray,
    rr_s: np.ndarray,
    ectopic: np.ndarray,
    n_samples: int,
    fs_hz: float,
    morph: EcgMorphology,
    af: np.ndarray | None = None,
) -> np.ndarray:
    """Noiseless ECG (mV) with its QRS maxima exactly at ``r_times_s``.

    Args:
        r_times_s: R-wave maximum times.
        rr_s: RR interval preceding each beat (scales the T wave, Bazett).
        ectopic: bool per beat, ventricular ectopic morphology (no P wave).
        af: bool per beat, atrial fibrillation (no P wave; add f-waves separately).
        n_samples: output length.
        fs_hz: sampling rate.
        morph: the subject's morphology.
    """
    out = np.zeros(n_samples)
    off_n, off_v = morph.r_offsets_s()
    ect = np.asarray(ectopic, bool)
    q = np.sqrt(np.clip(rr_s, 0.25, 2.0))
    nrm = ~ect
    no_p = np.zeros(len(r_times_s), bool) if af is None else np.asarray(af, bool)
    for i in range(5):  # five waves, each placed for all beats at once
        sel = nrm & ~no_p if i == 0 else nrm
        scale = q[sel] if i == 4 else 1.0
        c = r_times_s[sel] - off_n + morph.centre_s[i] * scale
        w = np.broadcast_to(morph.width_s[i] * scale, c.shape).astype(float)
        _add_gaussians(out, fs_hz, c, w, np.full(c.shape, morph.amp_mv[i]))
    for i in range(4):
        scale = q[ect] if i == 3 else 1.0
        c = r_times_s[ect] - off_v + morph.pvc_centre_s[i] * scale
        w = np.broadcast_to(morph.pvc_width_s[i] * scale, c.shape).astype(float)
        _add_gaussians(out, fs_hz, c, w, np.full(c.shape, morph.pvc_amp_mv[i]))
    return out


# ------------------------------------------------------------------ pulses
def pulse_tangent_offset_s(rise_s: np.ndarray | float) -> np.ndarray | float:
    """Intersecting-tangents foot of the raised-cosine upstroke, measured from the pulse start.

    The upstroke ``0.5 (1 - cos(pi tau / T))`` has its steepest slope ``pi / (2 T)`` at
    ``tau = T/2`` (value 0.5); that tangent meets the horizontal tangent at the minimum
    (value 0 at ``tau = 0``) at ``tau = T (1/2 - 1/pi)``.
    """
    return rise_s * (0.5 - 1.0 / math.pi)


def pulse_decay(v: np.ndarray, dicrotic: float, notch: np.ndarray | float) -> np.ndarray:
    """Decay shape from 1 (``v = 0``, systolic peak) to 0 (``v = 1``, next start), zero slope at both ends.

    Cubic Hermite ``H(u) = (1-u)^2 (1+2u)`` of the warped phase ``u = v^0.75`` (a faster
    fall after the peak, as in real pulses) plus a reflected (dicrotic) wave of relative
    size ``dicrotic`` centred at ``notch`` (fraction of the decay), windowed by
    ``16 v^2 (1-v)^2`` so both ends stay flat. Stays within [0, 1] for ``dicrotic <= 0.35``
    and ``notch >= 0.15``.
    """
    u = v**0.75
    base = (1.0 - u) ** 2 * (1.0 + 2.0 * u)
    win = 16.0 * v * v * (1.0 - v) ** 2
    return base + dicrotic * win * np.exp(-0.5 * ((v - notch) / 0.09) ** 2)


def pulse_synthesize(
    starts_s: np.ndarray,
    rise_s: np.ndarray,
    low: np.ndarray,
    peak: np.ndarray,
    n_samples: int,
    fs_hz: float,
    dicrotic: float,
    notch: np.ndarray | float,
    end_low: float | None = None,
) -> np.ndarray:
    """Noiseless pulse train: beat ``k`` rises from ``low[k]`` at ``starts_s[k]`` to ``peak[k]`` and decays to ``low[k+1]``.

    Each sample finds its beat with ``searchsorted`` and evaluates the template there
    (phase-variable interpolation, no per-beat loop). Samples before the first start hold
    ``low[0]``; the last beat decays to ``end_low`` (default ``low[-1]``) over one median beat.
    ``notch`` (per beat or one value) places the reflected wave, see :func:`pulse_decay`.
    """
    t = np.arange(n_samples) / fs_hz
    k = np.searchsorted(starts_s, t, side="right") - 1
    nxt_start = np.append(
        starts_s[1:], starts_s[-1] + np.median(np.diff(starts_s)) if len(starts_s) > 1 else starts_s[-1] + 1.0
    )
    nxt_low = np.append(low[1:], low[-1] if end_low is None else end_low)
    out = np.full(n_samples, float(low[0]))
    m = k >= 0
    kk = k[m]
    tau = t[m] - starts_s[kk]
    rise = rise_s[kk]
    up = tau < rise
    x = np.empty(len(kk))
    x[up] = low[kk[up]] + (peak[kk[up]] - low[kk[up]]) * 0.5 * (1.0 - np.cos(np.pi * tau[up] / rise[up]))
    dn = ~up
    kd = kk[dn]
    v = np.clip((tau[dn] - rise[dn]) / (nxt_start[kd] - starts_s[kd] - rise[dn]), 0.0, 1.0)
    notch_k = notch[kd] if np.ndim(notch) else notch
    x[dn] = nxt_low[kd] + (peak[kd] - nxt_low[kd]) * pulse_decay(v, dicrotic, notch_k)
    out[m] = x
    return out


def tangent_foot_s(t_s: np.ndarray, x: np.ndarray) -> float:
    """Intersecting-tangents foot of one sampled upstroke (for checks): min level vs. steepest tangent."""
    i_min = int(np.argmin(x[: int(np.argmax(x)) + 1]))
    slope = np.gradient(x, t_s)
    i_ms = i_min + int(np.argmax(slope[i_min:]))
    return float(t_s[i_ms] - (x[i_ms] - x[i_min]) / slope[i_ms])


# ------------------------------------------------------------------ noise and artefacts
def noise_band(
    rng: np.random.Generator, n: int, fs_hz: float, lo_hz: float | None, hi_hz: float, sd: float
) -> np.ndarray:
    """Gaussian noise band-limited to [lo_hz, hi_hz] (4th-order Butterworth), scaled to SD ``sd``."""
    hi = min(hi_hz, 0.45 * fs_hz)
    warm = int(max(4.0, 3.0 / (lo_hz or hi)) * fs_hz)  # let the filter settle before the kept part
    w = rng.standard_normal(n + warm)
    if lo_hz:
        sos = signal.butter(2, [lo_hz, hi], btype="bandpass", fs=fs_hz, output="sos")
    else:
        sos = signal.butter(2, hi, btype="lowpass", fs=fs_hz, output="sos")
    y = signal.sosfilt(sos, w)[warm:]
    s = float(np.std(y))
    return y * (sd / s) if s > 0 else y


def artefact_segments(
    rng: np.random.Generator, rate_per_h: float, duration_s: float, min_s: float, max_s: float
) -> np.ndarray:
    """Poisson artefact episodes: array of shape (n, 2) with (start_s, end_s), log-uniform durations, sorted."""
    n = int(rng.poisson(max(rate_per_h, 0.0) * duration_s / 3600.0))
    start = np.sort(rng.uniform(0.0, duration_s, n))
    dur = np.exp(rng.uniform(np.log(min_s), np.log(max_s), n))
    return np.column_stack([start, np.minimum(start + dur, duration_s)]) if n else np.zeros((0, 2))


def segments_mask(segments: np.ndarray, n_samples: int, fs_hz: float) -> np.ndarray:
    """Boolean sample mask that is True inside any of ``segments`` (start_s, end_s)."""
    d = np.zeros(n_samples + 1, np.int64)
    if len(segments):
        i0 = np.clip(np.floor(segments[:, 0] * fs_hz).astype(np.int64), 0, n_samples)
        i1 = np.clip(np.ceil(segments[:, 1] * fs_hz).astype(np.int64), 0, n_samples)
        np.add.at(d, i0, 1)
        np.add.at(d, i1, -1)
    return np.cumsum(d[:-1]) > 0


def segments_envelope(segments: np.ndarray, n_samples: int, fs_hz: float, ramp_s: float) -> np.ndarray:
    """0..1 envelope that is 1 inside ``segments`` with linear ramps of ``ramp_s`` at both ends."""
    t = np.arange(n_samples) / fs_hz
    env = np.zeros(n_samples)
    for a, b in segments:  # few episodes per hour
        i0, i1 = max(0, int((a - ramp_s) * fs_hz)), min(n_samples, int((b + ramp_s) * fs_hz) + 1)
        tt = t[i0:i1]
        env[i0:i1] = np.maximum(
            env[i0:i1], np.clip(np.minimum(tt - a + ramp_s, b + ramp_s - tt) / ramp_s, 0.0, 1.0)
        )
    return env


def interval_touched(mask: np.ndarray, fs_hz: float, start_s: np.ndarray, end_s: np.ndarray) -> np.ndarray:
    """Per interval [start_s, end_s): whether any sample of ``mask`` inside it is True (cumulative sums)."""
    cs = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    n = len(mask)
    i0 = np.clip(np.floor(start_s * fs_hz).astype(np.int64), 0, n)
    i1 = np.clip(np.ceil(end_s * fs_hz).astype(np.int64) + 1, 0, n)
    return (cs[np.maximum(i1, i0)] - cs[i0]) > 0


# ------------------------------------------------------------------ WFDB
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
