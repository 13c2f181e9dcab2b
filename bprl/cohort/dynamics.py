"""Slow physiology of one virtual subject: hours of BP, sympathetic tone, HR, respiration, stiffness.

On a 4-Hz grid (:data:`DYN_FS_HZ`): SBP is an Ornstein-Uhlenbeck drift plus a circadian
cycle, a nocturnal dip, vasopressor / hypotensive episodes and stress surges; DBP follows
it; the latent sympathetic tone moves PEP and HR (and with stress surges BP); HR adds the
baroreflex and respiratory sinus arrhythmia; ``ln E0`` drifts as a random walk; paroxysmal
AF episodes speed up the ventricular response. :func:`bprl.cohort.beats.simulate_beats`
samples these states beat by beat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

from bprl.cohort.events import CohortEvent, event_effects
from bprl.cohort.subjects import SubjectParams

__all__ = ["DYN_FS_HZ", "Dynamics", "simulate_dynamics"]

#: sampling rate of the slow-dynamics grid, Hz
DYN_FS_HZ = 4.0


def _ou(rng: np.random.Generator, n: int, dt_s: float, tau_s: float, sd: float) -> np.ndarray:
    """Exact-discretised Ornstein-Uhlenbeck path (stationary start), via a first-order IIR filter."""
    a = math.exp(-dt_s / tau_s)
    e = rng.standard_normal(n) * sd * math.sqrt(1 - a * a)
    x0 = rng.standard_normal() * sd
    y, _ = signal.lfilter([1.0], [1.0, -a], e, zi=[a * x0])
    return y


def _episodes(
    rng: np.random.Generator,
    t: np.ndarray,
    rate_per_h: float,
    dur_min: tuple[float, float],
    ramp_min: tuple[float, float],
    signed: bool = False,
) -> np.ndarray:
    """Sum of Poisson episodes with raised-cosine onset/offset, heights U(0.6, 1) (random sign if ``signed``)."""
    hours = t[-1] / 3600.0 if len(t) else 0.0
    out = np.zeros_like(t)
    for _ in range(int(rng.poisson(rate_per_h * hours))):  # a handful per hour
        t0 = rng.uniform(-600, t[-1])
        dur = rng.uniform(*dur_min) * 60
        ramp = rng.uniform(*ramp_min) * 60
        up = np.clip((t - t0) / ramp, 0, 1)
        down = np.clip((t0 + ramp + dur + ramp - t) / ramp, 0, 1)
        env = 0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))
        sign = rng.choice([-1.0, 1.0]) if signed else 1.0
        out += sign * rng.uniform(0.6, 1.0) * env
    return out


@dataclass
class Dynamics:
    """Slow latent states on a 4-Hz grid: SBP/DBP targets, sympathetic tone, HR, respiration, stiffness."""

    t_s: np.ndarray
    sbp_mmhg: np.ndarray
    dbp_mmhg: np.ndarray
    tone: np.ndarray
    hr_bpm: np.ndarray
    resp_phase: np.ndarray
    ln_e_shift: np.ndarray  # ln(E0(t) / E0)
    af: np.ndarray  # bool
    # added by events (bprl.cohort.events); None without events
    pep_shift_ms: np.ndarray | None = None
    ppg_amp_log: np.ndarray | None = None  # log factor on the PPG pulse amplitude
    ppg_reflection_log: np.ndarray | None = None  # log factor on the PPG reflected wave
    ectopic_prob: np.ndarray | None = None  # premature-beat probability of ectopy bursts (0 outside)


def simulate_dynamics(
    p: SubjectParams,
    duration_s: float,
    rng: np.random.Generator,
    events: Sequence[CohortEvent] | None = None,
) -> Dynamics:
    """Hours of BP, tone, HR, respiration and stiffness for one subject (see the module doc).

    Args:
        p: the subject's parameters.
        duration_s: record length, s (the grid runs 60 s beyond it).
        rng: the subject's signal generator (``default_rng([seed, i, 1])`` in a cohort).
        events: physiological events (:mod:`bprl.cohort.events`) added to BP, HR, PEP and the
            PPG; none or empty: the dynamics are exactly those without events.

    Returns:
        the latent states on the :data:`DYN_FS_HZ` grid.
    """
    dt_s = 1.0 / DYN_FS_HZ
    t = np.arange(0.0, duration_s + 60.0, dt_s)
    n = len(t)
    clock = (p.start_clock_h + t / 3600.0) % 24.0
    # BP: OU drift + circadian + sleep dip + pressor / hypotensive episodes + stress surges
    drift = _ou(rng, n, dt_s, p.ou_tau_min * 60, p.ou_sd_mmhg)
    circ = p.circadian_amp_mmhg * np.cos(2 * np.pi * (clock - 15.0) / 24.0)
    x = (clock - 23.0 + 12.0) % 24.0 - 12.0  # hours since 23:00, in [-12, 12)
    sleep = 1.0 / (1 + np.exp(-2.0 * x)) / (1 + np.exp(2.0 * (x - 7.5)))  # ~1 from 23:00 to 06:30
    sleep_dip = -p.sleep_dip_share * p.sbp_mmhg * sleep
    pressor = _episodes(rng, t, p.pressor_rate_per_h, (10, 45), (2, 8)) * rng.uniform(20, 40)
    hypo = _episodes(rng, t, p.hypotension_rate_per_h, (5, 30), (1, 5)) * rng.uniform(18, 35)
    stress = _episodes(rng, t, p.stress_rate_per_h, (2, 10), (0.3, 1.5))
    tone_only = _episodes(rng, t, p.tone_rate_per_h, (3, 15), (0.5, 2.0), signed=True)
    d_sbp = drift + circ + sleep_dip + pressor - hypo + 15.0 * stress
    ev = event_effects(events, t, p) if events else None
    if ev is not None:
        d_sbp = d_sbp + ev.d_sbp_mmhg
    d_sbp = np.maximum(d_sbp, 70.0 - p.sbp_mmhg)  # keep SBP >= 70
    dbp_noise = _ou(rng, n, dt_s, 600.0, 2.0)
    d_dbp = 0.6 * d_sbp + dbp_noise
    if ev is not None:  # events set their own DBP share: replace 0.6 of their SBP change
        d_dbp = d_dbp + ev.d_dbp_mmhg - 0.6 * ev.d_sbp_mmhg
    # sympathetic tone: slow OU + stress surges + tone-only episodes (moves PEP and HR, not BP) - lower in sleep
    tone = _ou(rng, n, dt_s, 300.0, p.tone_sd) + 1.2 * stress + 1.1 * tone_only - 0.4 * sleep
    resp_rate = p.resp_rate_bpm * np.exp(_ou(rng, n, dt_s, 120.0, 0.08))
    resp_phase = 2 * np.pi * np.cumsum(resp_rate / 60.0) * dt_s
    hr = p.hr_bpm + p.hr_tone_bpm * tone - 0.08 * d_sbp + _ou(rng, n, dt_s, 20.0, 1.5)  # + baroreflex
    if ev is not None:
        hr = hr + ev.d_hr_bpm
    hr = hr * (1 + p.rsa_share * np.sin(resp_phase))
    ln_e = np.cumsum(rng.standard_normal(n)) * p.stiffness_drift_sd_per_h * math.sqrt(dt_s / 3600.0)
    af = np.zeros(n, bool)
    for _ in range(int(rng.poisson(p.af_rate_per_h * (duration_s + 1200.0) / 3600.0))):
        a = rng.uniform(-1200.0, duration_s)  # an episode may be running when the record starts
        af |= (t >= a) & (t < a + rng.uniform(3, 20) * 60)
    hr = np.clip(np.where(af, hr / 0.85, hr), 40.0, 170.0)  # faster ventricular response in AF
    dyn = Dynamics(t, p.sbp_mmhg + d_sbp, p.dbp_mmhg + d_dbp, tone, hr, resp_phase, ln_e, af)
    if ev is not None:
        dyn.pep_shift_ms, dyn.ppg_amp_log, dyn.ppg_reflection_log = (
            ev.d_pep_ms,
            ev.ppg_amp_log,
            ev.ppg_reflection_log,
        )
        if ev.ectopic_prob.any():
            dyn.ectopic_prob = ev.ectopic_prob
    return dyn
