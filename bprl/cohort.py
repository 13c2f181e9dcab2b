"""Virtual cohort: simulated ICU subjects with known physiology, written as MIMIC-style WFDB records.

Each subject gets parameters drawn from a MIMIC-like population (:class:`CohortSpec`
-> :class:`SubjectParams`), hours of BP / sympathetic-tone / stiffness dynamics,
beat-level physiology (Moens-Korteweg with Hughes' elasticity, PAT = PEP + PTT,
HRV, ectopy, AF), and three waveforms from :mod:`bprl.synth`.

Output layout (a contract for the features, estimator, env and runner rooms)::

    OUT/cohort.yaml                          spec, seed, n_subjects, hours
    OUT/manifest.parquet, OUT/manifest.csv   one row per subject: subject_id, record_id, split, hours, parameters
    OUT/waves/<subject_id>/<record_id>/<record_id>.hea + .dat   WFDB, channels II (250 Hz), Pleth, ABP (125 Hz)
    OUT/truth/<subject_id>.parquet           ground-truth beat table (:data:`TRUTH_COLUMNS`)

Physiology (per beat ``k``)::

    E(P)  = E0 * exp(gamma * P)                       Hughes et al. 1979
    PWV   = sqrt(E * h / (rho * d))                   Moens-Korteweg
    PTT   = L / PWV  ->  ln PTT = ln(L / PWV0) - gamma * MAP / 2,  i.e.  MAP = a ln PTT + b,  a = -2 / gamma
    PAT   = PEP + PTT,   PEP = PEP0 - k_pep * tone    (tone moves PEP and HR, not necessarily BP)

``P`` is the beat's mean arterial pressure ``DBP + (SBP - DBP) / 3`` (column ``map_mmhg``).
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy import signal

from bprl import synth
from bprl.errors import CohortError
from bprl.tables import atomic_output, write_parquet_atomic, write_text_atomic

BLOOD_DENSITY_KG_M3 = 1060.0
#: pressure at which ``pwv_ref_m_s`` is given
PWV_REF_PRESSURE_MMHG = 100.0
COHORT_FILE = "cohort.yaml"
COHORT_FORMAT = 1

#: ground-truth beat table: column -> (dtype, meaning)
TRUTH_COLUMNS: dict[str, tuple[str, str]] = {
    "r_time_s": ("float64", "time of the R-wave maximum of the noiseless ECG, s from record start"),
    "rr_ms": ("float64", "interval from the previous R peak"),
    "hr_bpm": ("float64", "60000 / rr_ms"),
    "pep_ms": ("float64", "pre-ejection period"),
    "ptt_ms": ("float64", "pulse transit time heart -> finger, L / PWV"),
    "pat_ms": (
        "float64",
        "pep_ms + ptt_ms: R peak -> PPG foot (intersecting tangents of the noiseless pulse)",
    ),
    "ppg_foot_s": ("float64", "r_time_s + pat_ms / 1000"),
    "abp_foot_s": ("float64", "intersecting-tangents foot of the ABP upstroke (radial artery)"),
    "sbp_mmhg": ("float64", "max of the noiseless ABP pulse of this beat"),
    "dbp_mmhg": ("float64", "min of the noiseless ABP just before this beat's upstroke"),
    "map_mmhg": ("float64", "dbp + (sbp - dbp) / 3, the pressure that sets PWV"),
    "pwv_m_s": ("float64", "pulse-wave velocity (Moens-Korteweg, Hughes)"),
    "sympathetic_tone": ("float64", "latent sympathetic tone (0 = baseline, ~+-1 = strong)"),
    "ectopic": ("bool", "ventricular ectopic beat (premature, wide QRS, weak pulse)"),
    "af": ("bool", "beat inside an atrial-fibrillation episode"),
    "ecg_artefact": ("bool", "ECG around this R peak touched by motion/EMG noise or a dropout"),
    "ppg_artefact": ("bool", "PPG pulse touched by motion, low perfusion or a dropout"),
    "abp_artefact": ("bool", "ABP pulse touched by a flush, zeroing, damping or a dropout"),
}


# ====================================================================== spec
class CohortSpec(BaseModel):
    """Population and simulation settings of a virtual cohort (YAML keys = field names).

    Every field has a documented default resembling an adult ICU (MIMIC) population;
    unknown keys or out-of-range values raise :class:`CohortError` naming the field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- population
    age_mean_years: float = Field(64.0, ge=18, le=95, description="mean age (MIMIC-IV adult ICU ~ 64)")
    age_sd_years: float = Field(15.0, ge=0, le=40, description="SD of age, clipped to 18-95")
    female_share: float = Field(0.44, ge=0, le=1, description="share of female subjects")
    hypertensive_share: float = Field(0.35, ge=0, le=1, description="share with baseline SBP ~ N(155, sd)")
    hypotensive_share: float = Field(0.12, ge=0, le=1, description="share with baseline SBP ~ N(96, sd)")
    sbp_normal_mean_mmhg: float = Field(122.0, ge=90, le=150, description="baseline SBP mean of the others")
    sbp_sd_mmhg: float = Field(9.0, ge=0, le=30, description="SD of baseline SBP within each group")
    hr_mean_bpm: float = Field(84.0, ge=40, le=140, description="mean baseline heart rate")
    hr_sd_bpm: float = Field(12.0, ge=0, le=30, description="SD of baseline heart rate")
    gamma_min_per_mmhg: float = Field(
        0.017, ge=0.005, le=0.06, description="Hughes gamma, lower bound (uniform)"
    )
    gamma_max_per_mmhg: float = Field(0.031, ge=0.005, le=0.06, description="Hughes gamma, upper bound")
    pep_mean_ms: float = Field(95.0, ge=40, le=160, description="mean baseline pre-ejection period")
    ectopic_subject_share: float = Field(
        0.3, ge=0, le=1, description="share of subjects with frequent ectopy"
    )
    af_subject_share: float = Field(0.1, ge=0, le=1, description="share of subjects with paroxysmal AF")
    af_rate_per_h: float = Field(
        1.0, ge=0, le=20, description="AF episodes per hour in those subjects (x U(0.5, 2))"
    )
    # --- dynamics
    ou_tau_min: float = Field(40.0, gt=0, le=600, description="time constant of the slow BP drift (OU)")
    ou_sd_mmhg: float = Field(6.0, ge=0, le=30, description="stationary SD of the slow SBP drift")
    circadian_amp_mmhg: float = Field(5.0, ge=0, le=20, description="SBP amplitude of the 24-h cycle")
    sleep_dip_share: float = Field(0.10, ge=0, le=0.3, description="nocturnal dip (share of SBP) 23:00-06:30")
    pressor_rate_per_h: float = Field(0.25, ge=0, le=10, description="vasopressor / hypertensive episodes")
    hypotension_rate_per_h: float = Field(0.25, ge=0, le=10, description="hypotensive episodes")
    stress_rate_per_h: float = Field(0.6, ge=0, le=20, description="stress surges: tone, HR and BP up")
    tone_rate_per_h: float = Field(
        1.0, ge=0, le=20, description="sympathetic-only episodes: PEP, HR move, BP does not"
    )
    stiffness_drift_sd_per_h: float = Field(
        0.04, ge=0, le=0.5, description="SD per sqrt(h) of the random walk of ln E0"
    )
    # --- signals
    artefact_scale: float = Field(1.0, ge=0, le=10, description="multiplies every artefact rate")
    fs_ecg_hz: int = Field(250, ge=50, le=2000, description="ECG sampling rate")
    fs_ppg_hz: int = Field(125, ge=50, le=2000, description="PPG sampling rate")
    fs_abp_hz: int = Field(125, ge=50, le=2000, description="ABP sampling rate")
    split_train: float = Field(0.6, ge=0, le=1, description="share of subjects in the train split")
    split_val: float = Field(0.2, ge=0, le=1, description="share in the val split")
    split_test: float = Field(0.2, ge=0, le=1, description="share in the test split")

    @model_validator(mode="after")
    def _check(self) -> CohortSpec:
        if self.hypertensive_share + self.hypotensive_share > 1:
            raise ValueError("hypertensive_share + hypotensive_share must be <= 1")
        if self.gamma_min_per_mmhg > self.gamma_max_per_mmhg:
            raise ValueError("gamma_min_per_mmhg must be <= gamma_max_per_mmhg")
        if abs(self.split_train + self.split_val + self.split_test - 1.0) > 1e-6:
            raise ValueError("split_train + split_val + split_test must be 1")
        return self


def load_spec(spec: CohortSpec | dict | str | os.PathLike[str] | None) -> CohortSpec:
    """A :class:`CohortSpec` from a spec, a dict, a YAML file path, or ``None`` (defaults).

    Raises:
        CohortError: unreadable file, unknown field, or out-of-range value (the message names them).
    """
    if spec is None:
        return CohortSpec()
    if isinstance(spec, CohortSpec):
        return spec
    where = "cohort spec"
    if isinstance(spec, str | os.PathLike):
        where = str(spec)
        try:
            data = yaml.safe_load(Path(spec).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise CohortError(f"{where}: cannot read spec file: {exc}") from exc
        spec = data if data is not None else {}
        if isinstance(spec, dict) and isinstance(spec.get("spec"), dict):  # a cohort.yaml
            spec = spec["spec"]
    if not isinstance(spec, dict):
        raise CohortError(f"{where}: expected a mapping of field: value, got {type(spec).__name__}")
    try:
        return CohortSpec(**spec)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(spec)"
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"field {field!r}: {msg}")
        raise CohortError(f"{where}: " + "; ".join(problems)) from None


# ====================================================================== subjects
@dataclass(frozen=True)
class SubjectParams:
    """Physiological and signal parameters of one virtual subject (units in the names).

    See ``docs/readme/20-cohort.md`` for each parameter's distribution and source.
    """

    subject_id: str
    category: str  # "hypertensive", "normotensive", "hypotensive"
    age_years: float
    sex: str  # "F" or "M"
    height_cm: float
    path_length_m: float  # heart -> finger arterial path
    abp_path_length_m: float  # heart -> radial arterial line
    sbp_mmhg: float
    dbp_mmhg: float
    hr_bpm: float
    resp_rate_bpm: float
    gamma_per_mmhg: float  # Hughes: E = E0 exp(gamma P)
    pwv_ref_m_s: float  # PWV at PWV_REF_PRESSURE_MMHG
    wall_ratio: float  # h / d, wall thickness over diameter
    e0_kpa: float  # Hughes E0 (derived from pwv_ref_m_s, gamma, wall_ratio)
    pep_ms: float
    pep_tone_ms: float  # PEP shortening per unit sympathetic tone
    hr_tone_bpm: float  # HR rise per unit tone
    tone_sd: float  # SD of the slow tone fluctuation
    hrv_sd: float  # beat-to-beat relative RR variability
    rsa_share: float  # respiratory sinus arrhythmia, relative HR amplitude
    ectopic_prob: float  # probability per beat of a ventricular ectopic
    af_rate_per_h: float  # paroxysmal AF episodes
    ppg_rise_ms: float  # PPG upstroke (foot -> peak) duration
    ppg_dicrotic: float  # relative size of the dicrotic wave
    ppg_amp_nu: float
    abp_rise_ms: float
    abp_dicrotic: float
    ecg_amp_mv: float
    ecg_noise_mv: float
    ppg_noise_share: float  # white noise SD relative to pulse amplitude
    powerline_hz: float
    motion_rate_per_h: float
    dropout_rate_per_h: float
    low_perfusion_rate_per_h: float
    flush_rate_per_h: float
    ou_tau_min: float
    ou_sd_mmhg: float
    circadian_amp_mmhg: float
    sleep_dip_share: float
    start_clock_h: float  # wall-clock hour at record start
    pressor_rate_per_h: float
    hypotension_rate_per_h: float
    stress_rate_per_h: float
    tone_rate_per_h: float
    stiffness_drift_sd_per_h: float

    def pwv_m_s(self, map_mmhg: np.ndarray | float, ln_e_shift: np.ndarray | float = 0.0) -> np.ndarray:
        """Moens-Korteweg PWV with Hughes' elasticity at mean pressure ``map_mmhg`` (E0 scaled by exp(ln_e_shift))."""
        e_pa = self.e0_kpa * 1e3 * np.exp(self.gamma_per_mmhg * np.asarray(map_mmhg, float) + ln_e_shift)
        return np.sqrt(e_pa * self.wall_ratio / BLOOD_DENSITY_KG_M3)


def _subject_id(i: int) -> str:
    return f"v{i + 1:04d}"


def _record_id(i: int) -> str:
    return f"{_subject_id(i)}_0001"


def _clip_normal(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    return float(np.clip(rng.normal(mean, sd), lo, hi))


def _sample_one(spec: CohortSpec, i: int, rng: np.random.Generator) -> SubjectParams:
    sex = "F" if rng.random() < spec.female_share else "M"
    age = _clip_normal(rng, spec.age_mean_years, spec.age_sd_years, 18, 95)
    height = _clip_normal(rng, 162.0 if sex == "F" else 176.0, 7.0, 145, 200)
    path = height / 100.0 * rng.uniform(0.50, 0.60)
    u = rng.random()
    if u < spec.hypertensive_share:
        cat, sbp = "hypertensive", _clip_normal(rng, 155.0, spec.sbp_sd_mmhg, 140, 185)
    elif u < spec.hypertensive_share + spec.hypotensive_share:
        cat, sbp = "hypotensive", _clip_normal(rng, 96.0, spec.sbp_sd_mmhg * 0.6, 85, 105)
    else:
        cat, sbp = "normotensive", _clip_normal(rng, spec.sbp_normal_mean_mmhg, spec.sbp_sd_mmhg, 100, 139)
    # DBP rises less than SBP across the population and falls with age (stiffer arteries, wider pulse pressure)
    dbp_mean = 12.0 + 0.48 * sbp - 0.2 * (age - 60)
    dbp = float(np.clip(dbp_mean + rng.normal(0, 8.0), 40, min(115.0, sbp - 25.0)))
    gamma = rng.uniform(spec.gamma_min_per_mmhg, spec.gamma_max_per_mmhg)
    pwv_ref = float(np.clip(5.0 + 0.06 * (age - 20) + rng.normal(0, 0.7), 4.0, 12.0))
    wall = rng.uniform(0.08, 0.12)
    e0 = pwv_ref**2 * BLOOD_DENSITY_KG_M3 / wall / math.exp(gamma * PWV_REF_PRESSURE_MMHG) / 1e3
    ectopic = (
        rng.uniform(0.005, 0.03) if rng.random() < spec.ectopic_subject_share else rng.uniform(0.0, 0.002)
    )
    af = spec.af_rate_per_h * rng.uniform(0.5, 2.0) if rng.random() < spec.af_subject_share else 0.0
    art = spec.artefact_scale
    return SubjectParams(
        subject_id=_subject_id(i),
        category=cat,
        age_years=round(age, 1),
        sex=sex,
        height_cm=round(height, 1),
        path_length_m=path,
        abp_path_length_m=path * rng.uniform(0.72, 0.80),
        sbp_mmhg=sbp,
        dbp_mmhg=dbp,
        hr_bpm=_clip_normal(rng, spec.hr_mean_bpm, spec.hr_sd_bpm, 50, 125),
        resp_rate_bpm=rng.uniform(10, 24),
        gamma_per_mmhg=gamma,
        pwv_ref_m_s=pwv_ref,
        wall_ratio=wall,
        e0_kpa=e0,
        pep_ms=_clip_normal(rng, spec.pep_mean_ms, 15.0, 55, 150),
        pep_tone_ms=rng.uniform(12, 30),
        hr_tone_bpm=rng.uniform(6, 15),
        tone_sd=rng.uniform(0.15, 0.35),
        hrv_sd=rng.uniform(0.008, 0.03),
        rsa_share=rng.uniform(0.005, 0.04),
        ectopic_prob=ectopic,
        af_rate_per_h=af,
        ppg_rise_ms=_clip_normal(rng, 150.0, 22.0, 100, 220),
        ppg_dicrotic=rng.uniform(0.05, 0.30),
        ppg_amp_nu=rng.uniform(0.4, 1.5),
        abp_rise_ms=_clip_normal(rng, 110.0, 15.0, 70, 160),
        abp_dicrotic=rng.uniform(0.10, 0.30),
        ecg_amp_mv=rng.uniform(0.6, 1.6),
        ecg_noise_mv=rng.uniform(0.004, 0.015),
        ppg_noise_share=rng.uniform(0.002, 0.008),
        powerline_hz=60.0 if rng.random() < 0.6 else 50.0,
        motion_rate_per_h=art * float(np.exp(rng.normal(np.log(3.0), 0.6))),
        dropout_rate_per_h=art * float(np.exp(rng.normal(np.log(0.6), 0.6))),
        low_perfusion_rate_per_h=art * float(np.exp(rng.normal(np.log(0.5), 0.6))),
        flush_rate_per_h=art * float(np.exp(rng.normal(np.log(0.5), 0.5))),
        ou_tau_min=spec.ou_tau_min * rng.uniform(0.7, 1.4),
        ou_sd_mmhg=spec.ou_sd_mmhg * rng.uniform(0.6, 1.4),
        circadian_amp_mmhg=spec.circadian_amp_mmhg * rng.uniform(0.5, 1.5),
        sleep_dip_share=spec.sleep_dip_share * rng.uniform(0.0, 1.5),
        start_clock_h=rng.uniform(0, 24),
        pressor_rate_per_h=spec.pressor_rate_per_h,
        hypotension_rate_per_h=spec.hypotension_rate_per_h,
        stress_rate_per_h=spec.stress_rate_per_h,
        tone_rate_per_h=spec.tone_rate_per_h,
        stiffness_drift_sd_per_h=spec.stiffness_drift_sd_per_h,
    )


def sample_subjects(spec: CohortSpec | dict | None, n: int, seed: int) -> list[SubjectParams]:
    """Draw ``n`` subjects; subject ``i`` uses ``default_rng([seed, i, 0])`` so it never depends on ``n``."""
    spec = load_spec(spec)
    if not isinstance(n, int) or n < 1:
        raise CohortError(f"n_subjects must be a positive integer, got {n!r}")
    return [_sample_one(spec, i, np.random.default_rng([seed, i, 0])) for i in range(n)]


def assign_splits(n: int, seed: int, spec: CohortSpec) -> list[str]:
    """Subject-disjoint train/val/test labels: a seeded permutation cut at the spec's fractions."""
    order = np.random.default_rng([seed, 0x5B117]).permutation(n)
    n_train = round(spec.split_train * n)
    n_val = round(spec.split_val * n)
    labels = np.empty(n, dtype=object)
    labels[order[:n_train]] = "train"
    labels[order[n_train : n_train + n_val]] = "val"
    labels[order[n_train + n_val :]] = "test"
    return list(labels)


# ====================================================================== dynamics
DYN_FS_HZ = 4.0  # grid of the slow dynamics


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


def simulate_dynamics(p: SubjectParams, duration_s: float, rng: np.random.Generator) -> Dynamics:
    """Hours of BP, tone, HR, respiration and stiffness for one subject (see the module doc)."""
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
    d_sbp = np.maximum(d_sbp, 70.0 - p.sbp_mmhg)  # keep SBP >= 70
    dbp_noise = _ou(rng, n, dt_s, 600.0, 2.0)
    d_dbp = 0.6 * d_sbp + dbp_noise
    # sympathetic tone: slow OU + stress surges + tone-only episodes (moves PEP and HR, not BP) - lower in sleep
    tone = _ou(rng, n, dt_s, 300.0, p.tone_sd) + 1.2 * stress + 1.1 * tone_only - 0.4 * sleep
    resp_rate = p.resp_rate_bpm * np.exp(_ou(rng, n, dt_s, 120.0, 0.08))
    resp_phase = 2 * np.pi * np.cumsum(resp_rate / 60.0) * dt_s
    hr = p.hr_bpm + p.hr_tone_bpm * tone - 0.08 * d_sbp + _ou(rng, n, dt_s, 20.0, 1.5)  # + baroreflex
    hr = hr * (1 + p.rsa_share * np.sin(resp_phase))
    ln_e = np.cumsum(rng.standard_normal(n)) * p.stiffness_drift_sd_per_h * math.sqrt(dt_s / 3600.0)
    af = np.zeros(n, bool)
    for _ in range(int(rng.poisson(p.af_rate_per_h * (duration_s + 1200.0) / 3600.0))):
        a = rng.uniform(-1200.0, duration_s)  # an episode may be running when the record starts
        af |= (t >= a) & (t < a + rng.uniform(3, 20) * 60)
    hr = np.clip(np.where(af, hr / 0.85, hr), 40.0, 170.0)  # faster ventricular response in AF
    return Dynamics(t, p.sbp_mmhg + d_sbp, p.dbp_mmhg + d_dbp, tone, hr, resp_phase, ln_e, af)


# ====================================================================== beats
def simulate_beats(
    p: SubjectParams, dyn: Dynamics, duration_s: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Beat-level physiology: R times (HRV, ectopy, AF), PEP, PTT (Moens-Korteweg/Hughes), SBP/DBP per beat."""
    # nominal beats where the integrated heart-rate phase crosses integers
    phase = np.concatenate([[0.0], np.cumsum(dyn.hr_bpm[:-1] / 60.0) / DYN_FS_HZ])
    first = rng.uniform(0.2, 0.9)
    t_nom = first + np.interp(np.arange(0, phase[-1]), phase, dyn.t_s)
    nom_rr = np.diff(t_nom, prepend=t_nom[0] - 60.0 / p.hr_bpm)
    nb = len(nom_rr)
    af = np.interp(t_nom, dyn.t_s, dyn.af.astype(float)) > 0.5
    sig = 0.17
    rr = nom_rr * np.exp(p.hrv_sd * rng.standard_normal(nb))
    rr[af] = nom_rr[af] * np.exp(sig * rng.standard_normal(int(af.sum())) - sig * sig / 2)
    # ventricular ectopics: premature (62 % of RR) followed by a compensatory pause; never twice in a row, not in AF
    ect = (rng.random(nb) < p.ectopic_prob) & ~af
    ect[0] = False
    ect[1:] &= ~ect[:-1]
    ect[-1] = False
    idx = np.flatnonzero(ect)
    short = 0.62 * rr[idx]
    rr[idx + 1] = rr[idx + 1] + (rr[idx] - short)
    rr[idx] = short
    rr = np.maximum(rr, 0.25)
    r = first + np.cumsum(np.concatenate([[0.0], rr[1:]]))
    keep = r < duration_s - 0.5
    r, rr, ect, af, nom = r[keep], rr[keep], ect[keep], af[keep], nom_rr[keep]
    n = len(r)
    post = np.zeros(n, bool)
    post[1:] = ect[:-1]
    # beat pressures: slow state + respiration + Frank-Starling on the preceding interval + ectopy
    sbp_s = np.interp(r, dyn.t_s, dyn.sbp_mmhg)
    dbp_s = np.interp(r, dyn.t_s, dyn.dbp_mmhg)
    resp = np.sin(np.interp(r, dyn.t_s, dyn.resp_phase) + 0.8)
    rel = np.clip(rr / nom - 1.0, -0.5, 0.8)
    sbp = sbp_s + 2.5 * resp + 18.0 * rel + rng.normal(0, 1.0, n)
    dbp = dbp_s + 1.0 * resp - 10.0 * rel + rng.normal(0, 0.7, n)
    sbp[ect] -= rng.uniform(12, 25, int(ect.sum()))
    sbp[post] += rng.uniform(3, 8, int(post.sum()))
    sbp = np.maximum(sbp, dbp + 12.0)
    map_ = dbp + (sbp - dbp) / 3.0
    tone = np.interp(r, dyn.t_s, dyn.tone)
    ln_e = np.interp(r, dyn.t_s, dyn.ln_e_shift)
    pwv = p.pwv_m_s(map_, ln_e)
    jitter = np.exp(rng.normal(0, 0.005, n))
    ptt_s = p.path_length_m / pwv * jitter
    abp_ptt_s = p.abp_path_length_m / pwv * jitter
    pep_s = (p.pep_ms - p.pep_tone_ms * tone + rng.normal(0, 1.5, n) + 12.0 * ect) / 1e3
    pep_s = np.clip(pep_s, 0.035, 0.2)
    return pd.DataFrame(
        {
            "r_time_s": r,
            "rr_ms": rr * 1e3,
            "hr_bpm": 60.0 / rr,
            "pep_ms": pep_s * 1e3,
            "ptt_ms": ptt_s * 1e3,
            "pat_ms": (pep_s + ptt_s) * 1e3,
            "ppg_foot_s": r + pep_s + ptt_s,
            "abp_foot_s": r + pep_s + abp_ptt_s,
            "sbp_mmhg": sbp,
            "dbp_mmhg": dbp,
            "map_mmhg": map_,
            "pwv_m_s": pwv,
            "sympathetic_tone": tone,
            "ectopic": ect,
            "af": af,
        }
    )


# ====================================================================== waveforms
@dataclass
class Waveforms:
    """Synthesised channels of one subject: name -> (physical samples, fs_hz), plus noiseless copies."""

    waves: dict[str, tuple[np.ndarray, float]]
    clean: dict[str, np.ndarray]


def _rise_s(rise_ms: float, beats: pd.DataFrame) -> np.ndarray:
    """Per-beat upstroke duration: the subject's rise time, shortened to <= 30 % of both adjacent RR."""
    rr = beats["rr_ms"].to_numpy() / 1e3
    rr_next = np.append(rr[1:], rr[-1])
    return np.minimum(rise_ms / 1e3, 0.3 * np.minimum(rr, rr_next))


def synthesize_waveforms(
    p: SubjectParams,
    beats: pd.DataFrame,
    dyn: Dynamics,
    duration_s: float,
    spec: CohortSpec,
    rng: np.random.Generator,
) -> tuple[Waveforms, pd.DataFrame]:
    """ECG, PPG and ABP with noise and artefacts; returns the waveforms and the beat table with artefact flags."""
    fe, fp, fa = float(spec.fs_ecg_hz), float(spec.fs_ppg_hz), float(spec.fs_abp_hz)
    ne, npg, na = (round(duration_s * f) for f in (fe, fp, fa))
    r = beats["r_time_s"].to_numpy()
    rr = beats["rr_ms"].to_numpy() / 1e3
    ect = beats["ectopic"].to_numpy()
    # ---- ECG
    morph = synth.EcgMorphology.sample(rng, p.ecg_amp_mv)
    ecg_clean = synth.ecg_synthesize(r, rr, ect, ne, fe, morph, af=beats["af"].to_numpy())
    te = np.arange(ne) / fe
    resp_e = np.interp(te, dyn.t_s, dyn.resp_phase)
    af_e = np.interp(te, dyn.t_s, dyn.af.astype(float))
    ecg = ecg_clean + 0.08 * p.ecg_amp_mv * np.sin(resp_e) + synth.noise_band(rng, ne, fe, None, 0.3, 0.04)
    ecg += rng.uniform(0.003, 0.02) * np.sin(2 * np.pi * p.powerline_hz * te + rng.uniform(0, 2 * np.pi))
    ecg += rng.normal(0, p.ecg_noise_mv, ne)
    ecg += af_e * synth.noise_band(rng, ne, fe, 4.0, 9.0, 0.03 * p.ecg_amp_mv)  # fibrillatory f-waves
    # ---- PPG: pulse whose intersecting-tangents foot is exactly at R + PAT
    rise_p = _rise_s(p.ppg_rise_ms, beats)
    start_p = beats["ppg_foot_s"].to_numpy() - synth.pulse_tangent_offset_s(rise_p)
    tp = np.arange(npg) / fp
    sbp, dbp = beats["sbp_mmhg"].to_numpy(), beats["dbp_mmhg"].to_numpy()
    tone = beats["sympathetic_tone"].to_numpy()
    resp_b = np.sin(np.interp(r, dyn.t_s, dyn.resp_phase))
    # pulse amplitude: wider with pulse pressure, narrower with vasoconstriction (tone), respiratory modulation
    pulse_amp = p.ppg_amp_nu * (1 + 0.012 * (sbp - dbp - 45)) * np.exp(-0.2 * tone) * (1 + 0.04 * resp_b)
    pulse_amp = np.clip(pulse_amp, 0.2 * p.ppg_amp_nu, 3 * p.ppg_amp_nu)
    pulse_amp[ect] *= 0.5
    # reflected wave: returns height / (1.1 PWV) after the systolic peak (stiffness index ~ 1.1 PWV)
    refl_s = p.height_cm / 100.0 / (1.1 * beats["pwv_m_s"].to_numpy())
    nxt = np.append(start_p[1:], start_p[-1] + rr[-1])
    notch_p = np.clip(refl_s / np.maximum(nxt - start_p - rise_p, 1e-3), 0.15, 0.7)
    z = np.zeros(len(r))
    ppg_clean = synth.pulse_synthesize(
        start_p, rise_p, z, pulse_amp, npg, fp, p.ppg_dicrotic, notch_p, end_low=0.0
    )
    # ---- ABP (radial): from DBP at its start to SBP at the end of its upstroke
    rise_a = _rise_s(p.abp_rise_ms, beats)
    start_a = beats["abp_foot_s"].to_numpy() - synth.pulse_tangent_offset_s(rise_a)
    nxt = np.append(start_a[1:], start_a[-1] + rr[-1])
    notch_a = np.clip(0.8 * refl_s / np.maximum(nxt - start_a - rise_a, 1e-3), 0.15, 0.7)
    abp_clean = synth.pulse_synthesize(start_a, rise_a, dbp, sbp, na, fa, p.abp_dicrotic, notch_a)
    # ---- artefacts (Poisson episodes per channel)
    dur = duration_s
    motion = synth.artefact_segments(rng, p.motion_rate_per_h, dur, 2.0, 40.0)
    ecg_motion = motion[rng.random(len(motion)) < 0.5]
    ecg_drop = synth.artefact_segments(rng, p.dropout_rate_per_h * 0.5, dur, 2.0, 30.0)
    ppg_drop = synth.artefact_segments(rng, p.dropout_rate_per_h, dur, 3.0, 60.0)
    lowperf = synth.artefact_segments(rng, p.low_perfusion_rate_per_h, dur, 30.0, 300.0)
    abp_drop = synth.artefact_segments(rng, p.dropout_rate_per_h * 0.5, dur, 2.0, 60.0)
    flush = synth.artefact_segments(rng, p.flush_rate_per_h, dur, 3.0, 10.0)
    zeroing = synth.artefact_segments(rng, p.flush_rate_per_h * 0.3, dur, 10.0, 60.0)
    damping = synth.artefact_segments(rng, p.flush_rate_per_h * 0.3, dur, 30.0, 240.0)

    env_m_e = synth.segments_envelope(ecg_motion, ne, fe, 0.5)
    ecg += env_m_e * synth.noise_band(rng, ne, fe, 1.0, 40.0, rng.uniform(0.2, 0.6) * p.ecg_amp_mv)
    ecg[synth.segments_mask(ecg_drop, ne, fe)] = np.nan

    env_lp = synth.segments_envelope(lowperf, npg, fp, 10.0)
    ppg = ppg_clean * (1 - 0.8 * env_lp) + 0.03 * p.ppg_amp_nu * np.sin(
        np.interp(tp, dyn.t_s, dyn.resp_phase) + 1.0
    )
    ppg += synth.noise_band(rng, npg, fp, None, 0.05, 0.05 * p.ppg_amp_nu)
    ppg += rng.normal(0, p.ppg_noise_share * p.ppg_amp_nu, npg)
    env_m_p = synth.segments_envelope(motion, npg, fp, 0.5)
    ppg += env_m_p * synth.noise_band(rng, npg, fp, 0.3, 5.0, rng.uniform(0.4, 1.5) * p.ppg_amp_nu)
    ppg[synth.segments_mask(ppg_drop, npg, fp)] = np.nan
    ppg = np.clip(ppg, -8.0, 8.0)

    ta = np.arange(na) / fa
    abp = abp_clean.copy()
    damp_env = synth.segments_envelope(damping, na, fa, 5.0)
    if len(damping):
        sos = signal.butter(2, 1.5, fs=fa, output="sos")
        abp = abp + damp_env * (signal.sosfiltfilt(sos, abp_clean) - abp_clean)
    abp += rng.normal(0, 0.15, na)
    fl = synth.segments_envelope(flush, na, fa, 0.3)
    abp = abp * (1 - fl) + fl * (rng.uniform(250, 300) - 5.0 * np.sin(ta))
    zm = synth.segments_mask(zeroing, na, fa)
    abp[zm] = rng.normal(0, 0.2, int(zm.sum()))
    abp[synth.segments_mask(abp_drop, na, fa)] = np.nan
    abp = np.clip(abp, -50.0, 600.0)

    # ---- per-beat artefact flags
    def grow(seg: np.ndarray, ramp_s: float) -> np.ndarray:  # include the envelope ramps
        return seg + np.array([-ramp_s, ramp_s]) if len(seg) else seg

    m_e = synth.segments_mask(np.vstack([grow(ecg_motion, 0.5), ecg_drop]), ne, fe)
    m_p = synth.segments_mask(np.vstack([grow(motion, 0.5), ppg_drop, grow(lowperf, 10.0)]), npg, fp)
    m_a = synth.segments_mask(np.vstack([abp_drop, grow(flush, 0.3), zeroing, grow(damping, 5.0)]), na, fa)
    nxt_p = np.append(start_p[1:], start_p[-1] + 1.0)
    nxt_a = np.append(start_a[1:], start_a[-1] + 1.0)
    beats = beats.copy()
    beats["ecg_artefact"] = synth.interval_touched(m_e, fe, r - 0.25, r + 0.45)
    beats["ppg_artefact"] = synth.interval_touched(m_p, fp, start_p - 0.15, nxt_p)
    beats["abp_artefact"] = synth.interval_touched(m_a, fa, start_a - 0.1, nxt_a)
    waves = {"II": (ecg, fe), "Pleth": (ppg, fp), "ABP": (abp, fa)}
    clean = {"II": ecg_clean, "Pleth": ppg_clean, "ABP": abp_clean}
    return Waveforms(waves, clean), beats


def simulate_subject(
    params: SubjectParams, hours: float, rng: np.random.Generator, spec: CohortSpec | None = None
) -> tuple[Waveforms, pd.DataFrame]:
    """Simulate one subject for ``hours``: dynamics -> beats -> waveforms. Returns (waveforms, truth table)."""
    spec = load_spec(spec)
    duration_s = float(hours) * 3600.0
    if not duration_s > 5.0:
        raise CohortError(f"hours must be > 5 s worth of signal, got {hours!r}")
    dyn = simulate_dynamics(params, duration_s, rng)
    beats = simulate_beats(params, dyn, duration_s, rng)
    waves, truth = synthesize_waveforms(params, beats, dyn, duration_s, spec, rng)
    return waves, truth[list(TRUTH_COLUMNS)].reset_index(drop=True)


# ====================================================================== cohort files
def _subject_done(out: Path, i: int) -> bool:
    sid, rid = _subject_id(i), _record_id(i)
    return (out / "truth" / f"{sid}.parquet").is_file() and (
        out / "waves" / sid / rid / f"{rid}.hea"
    ).is_file()


def _generate_subject(out_dir: str, i: int, hours: float, seed: int, spec_dict: dict) -> str:
    """Generate and write subject ``i`` (worker entry point): record via temp folder + rename, truth last."""
    out = Path(out_dir)
    spec = CohortSpec(**spec_dict)
    params = _sample_one(spec, i, np.random.default_rng([seed, i, 0]))
    sid, rid = params.subject_id, _record_id(i)
    subj_dir = out / "waves" / sid
    subj_dir.mkdir(parents=True, exist_ok=True)
    for stale in subj_dir.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    waves, truth = simulate_subject(params, hours, np.random.default_rng([seed, i, 1]), spec)
    tmp = subj_dir / f".tmp-{rid}-{os.getpid()}"
    final = subj_dir / rid
    try:
        clock = (params.start_clock_h * 3600.0) % 86400.0
        base_time = dt.time(int(clock // 3600), int(clock % 3600 // 60), int(clock % 60))
        comments = [
            f"subject_id: {sid}",
            f"record_id: {rid}",
            f"bprl virtual cohort, seed {seed}, subject index {i}",
        ]
        synth.wfdb_write(tmp, rid, waves.waves, comments, base_time=base_time)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    write_parquet_atomic(truth, out / "truth" / f"{sid}.parquet")
    return sid


def _check_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise CohortError(f"{out}: output folder is not writable: {exc}") from exc


def make_cohort(
    out_dir: str | os.PathLike[str],
    n_subjects: int,
    hours: float,
    seed: int,
    spec: CohortSpec | dict | str | os.PathLike[str] | None = None,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Generate a virtual cohort into ``out_dir`` (layout in the module doc) and return the folder.

    Deterministic by ``seed``: subject ``i`` draws parameters from ``default_rng([seed, i, 0])``
    and signals from ``default_rng([seed, i, 1])``, so results do not depend on ``workers``.
    Resumable: complete subjects (record + truth table present) are skipped, half-written
    temp folders are removed and their subjects regenerated.

    Raises:
        CohortError: bad arguments, unwritable folder, invalid spec, or a folder holding a
            cohort made with a different seed, spec or duration.
    """
    spec = load_spec(spec)
    if isinstance(n_subjects, bool) or not isinstance(n_subjects, int | np.integer) or n_subjects < 1:
        raise CohortError(f"n_subjects must be a positive integer, got {n_subjects!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise CohortError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        hours = float(hours)
    except (TypeError, ValueError):
        raise CohortError(f"hours must be a number, got {hours!r}") from None
    if not math.isfinite(hours) or hours * 3600.0 <= 5.0 or hours > 72:
        raise CohortError(f"hours must be > 0 (at least 5 s) and <= 72, got {hours!r}")
    if not isinstance(workers, int) or workers < 1:
        raise CohortError(f"workers must be a positive integer, got {workers!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CohortError(f"{out}: output path exists and is not a folder")
    _check_out_dir(out)
    meta = {
        "format": COHORT_FORMAT,
        "seed": int(seed),
        "hours": hours,
        "n_subjects": int(n_subjects),
        "spec": spec.model_dump(),
    }
    meta_path = out / COHORT_FILE
    if meta_path.is_file():
        old = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
        for key in ("seed", "hours", "spec"):
            if old.get(key) != meta[key]:
                raise CohortError(
                    f"{meta_path}: folder holds a cohort with a different {key} ({old.get(key)!r}); use a new folder"
                )
    write_text_atomic(yaml.safe_dump(meta, sort_keys=True), meta_path)

    todo = [i for i in range(int(n_subjects)) if not _subject_done(out, i)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(n_subjects), initial=int(n_subjects) - len(todo), unit="subject", desc="cohort")
    spec_dict = spec.model_dump()
    try:
        if workers == 1 or len(todo) <= 1:
            for i in todo:
                _generate_subject(str(out), i, hours, int(seed), spec_dict)
                if bar:
                    bar.update(1)
        else:
            with cf.ProcessPoolExecutor(max_workers=workers) as ex:
                futs = [ex.submit(_generate_subject, str(out), i, hours, int(seed), spec_dict) for i in todo]
                for f in cf.as_completed(futs):
                    f.result()
                    if bar:
                        bar.update(1)
    finally:
        if bar:
            bar.close()

    params = sample_subjects(spec, int(n_subjects), int(seed))
    splits = assign_splits(int(n_subjects), int(seed), spec)
    rows = [
        {
            "subject_id": p.subject_id,
            "record_id": _record_id(i),
            "split": splits[i],
            "hours": hours,
            **_param_row(p),
        }
        for i, p in enumerate(params)
    ]
    manifest = pd.DataFrame(rows)
    write_parquet_atomic(manifest, out / "manifest.parquet")
    with atomic_output(out / "manifest.csv") as tmp:
        manifest.to_csv(tmp, index=False)
    return out


def _param_row(p: SubjectParams) -> dict[str, Any]:
    d = asdict(p)
    d.pop("subject_id")
    return d


def _need_cohort(cohort_dir: str | os.PathLike[str]) -> Path:
    root = Path(cohort_dir)
    if not (root / "manifest.parquet").is_file():
        raise CohortError(f"{root}: not a virtual cohort (no manifest.parquet)")
    return root


def load_manifest(cohort_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The cohort's manifest: one row per subject (subject_id, record_id, split, hours, parameters)."""
    return pd.read_parquet(_need_cohort(cohort_dir) / "manifest.parquet")


def record_path(cohort_dir: str | os.PathLike[str], subject_id: str) -> Path:
    """Path of a subject's WFDB header ``waves/<sid>/<rid>/<rid>.hea``."""
    m = load_manifest(cohort_dir)
    row = m[m["subject_id"] == subject_id]
    if row.empty:
        raise CohortError(f"{cohort_dir}: no subject {subject_id!r}")
    rid = str(row["record_id"].iloc[0])
    return Path(cohort_dir) / "waves" / subject_id / rid / f"{rid}.hea"


def read_truth(cohort_dir: str | os.PathLike[str], subject_id: str) -> pd.DataFrame:
    """The ground-truth beat table of one subject (:data:`TRUTH_COLUMNS`)."""
    path = Path(cohort_dir) / "truth" / f"{subject_id}.parquet"
    if not path.is_file():
        raise CohortError(f"{path}: no truth table for subject {subject_id!r}")
    return pd.read_parquet(path)


def subject_params(row: pd.Series | dict) -> SubjectParams:
    """Rebuild :class:`SubjectParams` from a manifest row."""
    names = {f.name for f in fields(SubjectParams)}
    return SubjectParams(
        **{k: (v.item() if hasattr(v, "item") else v) for k, v in dict(row).items() if k in names}
    )


def describe_cohort(cohort_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Population summary: BP distribution, hypertension share, AAMI-style targets, artefact, ectopy and AF burden.

    "Readings" are per-minute medians of the beat-level truth (all beats, artefacts included,
    since the truth is noiseless).
    """
    root = _need_cohort(cohort_dir)
    m = load_manifest(root)
    readings, beats = [], []
    for sid in m["subject_id"]:
        tr = read_truth(root, sid)
        beats.append(tr.assign(subject_id=sid))
        minute = (tr["r_time_s"] // 60).astype(int)
        readings.append(tr.groupby(minute)[["sbp_mmhg", "dbp_mmhg"]].median().assign(subject_id=sid))
    b = pd.concat(beats, ignore_index=True)
    rd = pd.concat(readings, ignore_index=True)
    subj_sbp = b.groupby("subject_id")["sbp_mmhg"].mean()
    s, d = rd["sbp_mmhg"], rd["dbp_mmhg"]

    def pct(x: pd.Series) -> dict[str, float]:
        q = np.percentile(x, [5, 25, 50, 75, 95])
        return {
            "mean": float(x.mean()),
            "sd": float(x.std()),
            **{f"p{k}": float(v) for k, v in zip((5, 25, 50, 75, 95), q, strict=True)},
        }

    return {
        "n_subjects": len(m),
        "hours_per_subject": float(m["hours"].iloc[0]),
        "splits": {k: int(v) for k, v in m["split"].value_counts().sort_index().items()},
        "categories": {k: int(v) for k, v in m["category"].value_counts().sort_index().items()},
        "n_beats": len(b),
        "n_readings": len(rd),
        "sbp_mmhg": pct(s),
        "dbp_mmhg": pct(d),
        "hr_bpm": pct(b["hr_bpm"]),
        "pat_ms": pct(b["pat_ms"]),
        "hypertensive_subject_share": float((subj_sbp >= 140).mean()),
        "aami_targets": {
            "sbp_ge_140": float((s >= 140).mean()),
            "sbp_le_100": float((s <= 100).mean()),
            "sbp_ge_160": float((s >= 160).mean()),
            "dbp_ge_85": float((d >= 85).mean()),
            "dbp_le_60": float((d <= 60).mean()),
            "dbp_ge_100": float((d >= 100).mean()),
        },
        "artefact_share": {c: float(b[f"{c}_artefact"].mean()) for c in ("ecg", "ppg", "abp")},
        "ectopic_beat_share": float(b["ectopic"].mean()),
        "af_beat_share": float(b["af"].mean()),
        "af_subjects": int(b.groupby("subject_id")["af"].any().sum()),
    }
