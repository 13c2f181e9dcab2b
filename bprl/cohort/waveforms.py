"""Waveforms of one virtual subject: ECG, PPG and ABP from its beat table, with noise and artefacts.

:func:`synthesize_waveforms` turns the beat table of :func:`bprl.cohort.beats.simulate_beats`
into three channels (ECG lead II, finger PPG, radial ABP) with the models of
:mod:`bprl.cohort.ecg_model` and :mod:`bprl.cohort.pulse_model`, adds baseline wander, mains
hum, white and band-limited noise, and draws Poisson artefact episodes
(:mod:`bprl.cohort.artefacts`) whose touched beats are flagged in the truth table. The
noiseless channels are kept next to the noisy ones so tests can check the truth against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import signal

from bprl.cohort.artefacts import (
    artefact_segments,
    interval_touched,
    noise_band,
    segments_envelope,
    segments_mask,
)
from bprl.cohort.dynamics import Dynamics
from bprl.cohort.ecg_model import EcgMorphology, ecg_synthesize
from bprl.cohort.pulse_model import pulse_synthesize, pulse_tangent_offset_s
from bprl.cohort.spec import CohortSpec
from bprl.cohort.subjects import SubjectParams

__all__ = ["Waveforms", "synthesize_waveforms"]


@dataclass
class Waveforms:
    """Synthesised channels of one subject: name -> (physical samples, fs_hz), plus noiseless copies."""

    waves: dict[str, tuple[np.ndarray, float]]
    clean: dict[str, np.ndarray]


@dataclass
class _Episodes:
    """Artefact episodes of one subject, each an (n, 2) array of (start_s, end_s)."""

    motion: np.ndarray  # PPG motion; about half of them also reach the ECG
    ecg_motion: np.ndarray
    ecg_drop: np.ndarray
    ppg_drop: np.ndarray
    low_perfusion: np.ndarray
    abp_drop: np.ndarray
    flush: np.ndarray
    zeroing: np.ndarray
    damping: np.ndarray


def _rise_s(rise_ms: float, beats: pd.DataFrame) -> np.ndarray:
    """Per-beat upstroke duration: the subject's rise time, shortened to <= 30 % of both adjacent RR."""
    rr = beats["rr_ms"].to_numpy() / 1e3
    rr_next = np.append(rr[1:], rr[-1])
    return np.minimum(rise_ms / 1e3, 0.3 * np.minimum(rr, rr_next))


def _ecg(
    p: SubjectParams, beats: pd.DataFrame, dyn: Dynamics, n: int, fs_hz: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Noiseless ECG and ECG with respiration, baseline wander, mains hum, white noise and AF f-waves (mV)."""
    r = beats["r_time_s"].to_numpy()
    rr = beats["rr_ms"].to_numpy() / 1e3
    ect = beats["ectopic"].to_numpy()
    morph = EcgMorphology.sample(rng, p.ecg_amp_mv)
    ecg_clean = ecg_synthesize(r, rr, ect, n, fs_hz, morph, af=beats["af"].to_numpy())
    te = np.arange(n) / fs_hz
    resp_e = np.interp(te, dyn.t_s, dyn.resp_phase)
    af_e = np.interp(te, dyn.t_s, dyn.af.astype(float))
    ecg = ecg_clean + 0.08 * p.ecg_amp_mv * np.sin(resp_e) + noise_band(rng, n, fs_hz, None, 0.3, 0.04)
    ecg += rng.uniform(0.003, 0.02) * np.sin(2 * np.pi * p.powerline_hz * te + rng.uniform(0, 2 * np.pi))
    ecg += rng.normal(0, p.ecg_noise_mv, n)
    ecg += af_e * noise_band(rng, n, fs_hz, 4.0, 9.0, 0.03 * p.ecg_amp_mv)  # fibrillatory f-waves
    return ecg_clean, ecg


def _reflection_s(p: SubjectParams, beats: pd.DataFrame) -> np.ndarray:
    """Delay of the reflected wave after the systolic peak: height / (1.1 PWV) (stiffness index ~ 1.1 PWV)."""
    return p.height_cm / 100.0 / (1.1 * beats["pwv_m_s"].to_numpy())


def _ppg_clean(
    p: SubjectParams, beats: pd.DataFrame, dyn: Dynamics, n: int, fs_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Noiseless PPG whose intersecting-tangents foot is exactly at R + PAT, and each pulse's start (s)."""
    r = beats["r_time_s"].to_numpy()
    rr = beats["rr_ms"].to_numpy() / 1e3
    ect = beats["ectopic"].to_numpy()
    rise_p = _rise_s(p.ppg_rise_ms, beats)
    start_p = beats["ppg_foot_s"].to_numpy() - pulse_tangent_offset_s(rise_p)
    sbp, dbp = beats["sbp_mmhg"].to_numpy(), beats["dbp_mmhg"].to_numpy()
    tone = beats["sympathetic_tone"].to_numpy()
    resp_b = np.sin(np.interp(r, dyn.t_s, dyn.resp_phase))
    # pulse amplitude: wider with pulse pressure, narrower with vasoconstriction (tone), respiratory modulation
    pulse_amp = p.ppg_amp_nu * (1 + 0.012 * (sbp - dbp - 45)) * np.exp(-0.2 * tone) * (1 + 0.04 * resp_b)
    if dyn.ppg_amp_log is not None:  # events (bprl.cohort.events)
        pulse_amp = pulse_amp * np.exp(np.interp(r, dyn.t_s, dyn.ppg_amp_log))
    pulse_amp = np.clip(pulse_amp, 0.2 * p.ppg_amp_nu, 3 * p.ppg_amp_nu)
    pulse_amp[ect] *= 0.5
    nxt = np.append(start_p[1:], start_p[-1] + rr[-1])
    notch_p = np.clip(_reflection_s(p, beats) / np.maximum(nxt - start_p - rise_p, 1e-3), 0.15, 0.7)
    z = np.zeros(len(r))
    dicrotic: float | np.ndarray = p.ppg_dicrotic
    if dyn.ppg_reflection_log is not None:  # per beat, kept where pulse_decay stays in [0, 1]
        dicrotic = np.clip(p.ppg_dicrotic * np.exp(np.interp(r, dyn.t_s, dyn.ppg_reflection_log)), 0.0, 0.35)
    ppg_clean = pulse_synthesize(start_p, rise_p, z, pulse_amp, n, fs_hz, dicrotic, notch_p, end_low=0.0)
    return ppg_clean, start_p


def _abp_clean(p: SubjectParams, beats: pd.DataFrame, n: int, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Noiseless radial ABP (from DBP at each start to SBP at the end of the upstroke), and each pulse's start (s)."""
    rr = beats["rr_ms"].to_numpy() / 1e3
    sbp, dbp = beats["sbp_mmhg"].to_numpy(), beats["dbp_mmhg"].to_numpy()
    rise_a = _rise_s(p.abp_rise_ms, beats)
    start_a = beats["abp_foot_s"].to_numpy() - pulse_tangent_offset_s(rise_a)
    nxt = np.append(start_a[1:], start_a[-1] + rr[-1])
    notch_a = np.clip(0.8 * _reflection_s(p, beats) / np.maximum(nxt - start_a - rise_a, 1e-3), 0.15, 0.7)
    abp_clean = pulse_synthesize(start_a, rise_a, dbp, sbp, n, fs_hz, p.abp_dicrotic, notch_a)
    return abp_clean, start_a


def _draw_episodes(p: SubjectParams, duration_s: float, rng: np.random.Generator) -> _Episodes:
    """Poisson artefact episodes per channel, drawn in a fixed order (part of the seeded stream)."""
    dur = duration_s
    motion = artefact_segments(rng, p.motion_rate_per_h, dur, 2.0, 40.0)
    ecg_motion = motion[rng.random(len(motion)) < 0.5]
    return _Episodes(
        motion=motion,
        ecg_motion=ecg_motion,
        ecg_drop=artefact_segments(rng, p.dropout_rate_per_h * 0.5, dur, 2.0, 30.0),
        ppg_drop=artefact_segments(rng, p.dropout_rate_per_h, dur, 3.0, 60.0),
        low_perfusion=artefact_segments(rng, p.low_perfusion_rate_per_h, dur, 30.0, 300.0),
        abp_drop=artefact_segments(rng, p.dropout_rate_per_h * 0.5, dur, 2.0, 60.0),
        flush=artefact_segments(rng, p.flush_rate_per_h, dur, 3.0, 10.0),
        zeroing=artefact_segments(rng, p.flush_rate_per_h * 0.3, dur, 10.0, 60.0),
        damping=artefact_segments(rng, p.flush_rate_per_h * 0.3, dur, 30.0, 240.0),
    )


def _corrupt_ecg(
    ecg: np.ndarray, p: SubjectParams, ep: _Episodes, fs_hz: float, rng: np.random.Generator
) -> np.ndarray:
    """ECG with motion/EMG noise in its motion episodes and NaN in its dropouts (``ecg`` is changed in place)."""
    n = len(ecg)
    env_m_e = segments_envelope(ep.ecg_motion, n, fs_hz, 0.5)
    ecg += env_m_e * noise_band(rng, n, fs_hz, 1.0, 40.0, rng.uniform(0.2, 0.6) * p.ecg_amp_mv)
    ecg[segments_mask(ep.ecg_drop, n, fs_hz)] = np.nan
    return ecg


def _corrupt_ppg(
    ppg_clean: np.ndarray,
    p: SubjectParams,
    dyn: Dynamics,
    ep: _Episodes,
    fs_hz: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """PPG with low perfusion, respiratory baseline, drift, white and motion noise, dropouts (NaN), clipped."""
    n = len(ppg_clean)
    tp = np.arange(n) / fs_hz
    env_lp = segments_envelope(ep.low_perfusion, n, fs_hz, 10.0)
    ppg = ppg_clean * (1 - 0.8 * env_lp) + 0.03 * p.ppg_amp_nu * np.sin(
        np.interp(tp, dyn.t_s, dyn.resp_phase) + 1.0
    )
    ppg += noise_band(rng, n, fs_hz, None, 0.05, 0.05 * p.ppg_amp_nu)
    ppg += rng.normal(0, p.ppg_noise_share * p.ppg_amp_nu, n)
    env_m_p = segments_envelope(ep.motion, n, fs_hz, 0.5)
    ppg += env_m_p * noise_band(rng, n, fs_hz, 0.3, 5.0, rng.uniform(0.4, 1.5) * p.ppg_amp_nu)
    ppg[segments_mask(ep.ppg_drop, n, fs_hz)] = np.nan
    return np.clip(ppg, -8.0, 8.0)


def _corrupt_abp(abp_clean: np.ndarray, ep: _Episodes, fs_hz: float, rng: np.random.Generator) -> np.ndarray:
    """ABP with damping (low-passed), white noise, line flushes, zeroing and dropouts (NaN), clipped (mmHg)."""
    n = len(abp_clean)
    ta = np.arange(n) / fs_hz
    abp = abp_clean.copy()
    damp_env = segments_envelope(ep.damping, n, fs_hz, 5.0)
    if len(ep.damping):
        sos = signal.butter(2, 1.5, fs=fs_hz, output="sos")
        abp = abp + damp_env * (signal.sosfiltfilt(sos, abp_clean) - abp_clean)
    abp += rng.normal(0, 0.15, n)
    fl = segments_envelope(ep.flush, n, fs_hz, 0.3)
    abp = abp * (1 - fl) + fl * (rng.uniform(250, 300) - 5.0 * np.sin(ta))
    zm = segments_mask(ep.zeroing, n, fs_hz)
    abp[zm] = rng.normal(0, 0.2, int(zm.sum()))
    abp[segments_mask(ep.abp_drop, n, fs_hz)] = np.nan
    return np.clip(abp, -50.0, 600.0)


def _grow(seg: np.ndarray, ramp_s: float) -> np.ndarray:
    """Episodes widened by their envelope ramps on both sides."""
    return seg + np.array([-ramp_s, ramp_s]) if len(seg) else seg


def _flag_beats(
    beats: pd.DataFrame,
    ep: _Episodes,
    start_p: np.ndarray,
    start_a: np.ndarray,
    grids: dict[str, tuple[int, float]],
) -> pd.DataFrame:
    """A copy of ``beats`` with ``ecg_artefact``, ``ppg_artefact``, ``abp_artefact``: beats an episode touched.

    ``grids`` maps ``ecg``/``ppg``/``abp`` to (n_samples, fs_hz).
    """
    (ne, fe), (npg, fp), (na, fa) = grids["ecg"], grids["ppg"], grids["abp"]
    r = beats["r_time_s"].to_numpy()
    m_e = segments_mask(np.vstack([_grow(ep.ecg_motion, 0.5), ep.ecg_drop]), ne, fe)
    m_p = segments_mask(
        np.vstack([_grow(ep.motion, 0.5), ep.ppg_drop, _grow(ep.low_perfusion, 10.0)]), npg, fp
    )
    m_a = segments_mask(
        np.vstack([ep.abp_drop, _grow(ep.flush, 0.3), ep.zeroing, _grow(ep.damping, 5.0)]), na, fa
    )
    nxt_p = np.append(start_p[1:], start_p[-1] + 1.0)
    nxt_a = np.append(start_a[1:], start_a[-1] + 1.0)
    beats = beats.copy()
    beats["ecg_artefact"] = interval_touched(m_e, fe, r - 0.25, r + 0.45)
    beats["ppg_artefact"] = interval_touched(m_p, fp, start_p - 0.15, nxt_p)
    beats["abp_artefact"] = interval_touched(m_a, fa, start_a - 0.1, nxt_a)
    return beats


def synthesize_waveforms(
    p: SubjectParams,
    beats: pd.DataFrame,
    dyn: Dynamics,
    duration_s: float,
    spec: CohortSpec,
    rng: np.random.Generator,
) -> tuple[Waveforms, pd.DataFrame]:
    """ECG, PPG and ABP with noise and artefacts; returns the waveforms and the beat table with artefact flags.

    Args:
        p: the subject's parameters.
        beats: the beat table of :func:`bprl.cohort.beats.simulate_beats`.
        dyn: the subject's slow dynamics (respiration, AF).
        duration_s: record length, s.
        spec: the cohort spec (sampling rates ``fs_ecg_hz``, ``fs_ppg_hz``, ``fs_abp_hz``).
        rng: the subject's signal generator, continued from the beats.

    Returns:
        the channels ``II`` (mV), ``Pleth`` (NU), ``ABP`` (mmHg) with their noiseless copies, and
        a copy of ``beats`` with the columns ``ecg_artefact``, ``ppg_artefact``, ``abp_artefact``.
    """
    fe, fp, fa = float(spec.fs_ecg_hz), float(spec.fs_ppg_hz), float(spec.fs_abp_hz)
    ne, npg, na = (round(duration_s * f) for f in (fe, fp, fa))
    ecg_clean, ecg = _ecg(p, beats, dyn, ne, fe, rng)
    ppg_clean, start_p = _ppg_clean(p, beats, dyn, npg, fp)
    abp_clean, start_a = _abp_clean(p, beats, na, fa)
    ep = _draw_episodes(p, duration_s, rng)
    ecg = _corrupt_ecg(ecg, p, ep, fe, rng)
    ppg = _corrupt_ppg(ppg_clean, p, dyn, ep, fp, rng)
    abp = _corrupt_abp(abp_clean, ep, fa, rng)
    grids = {"ecg": (ne, fe), "ppg": (npg, fp), "abp": (na, fa)}
    beats = _flag_beats(beats, ep, start_p, start_a, grids)
    waves = {"II": (ecg, fe), "Pleth": (ppg, fp), "ABP": (abp, fa)}
    clean = {"II": ecg_clean, "Pleth": ppg_clean, "ABP": abp_clean}
    return Waveforms(waves, clean), beats
