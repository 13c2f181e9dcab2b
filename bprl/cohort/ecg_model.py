"""ECG beat model of the virtual cohort: Gaussian-wave morphology and vectorised synthesis.

McSharry et al. (2003) style: each beat is a sum of five Gaussians (P, Q, R, S, T) placed
around the beat's R time; the T wave moves and widens with ``sqrt(RR)`` (Bazett). Ectopic
(ventricular) beats have no P wave, a wide QRS and an inverted T; AF beats lose their P wave.
The Gaussians are shifted so that the maximum of the noiseless QRS lies exactly on the R time
of the truth table. All beats of one wave type are placed in one NumPy pass (never a Python
loop per sample or per beat).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["EcgMorphology", "ecg_synthesize"]


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
