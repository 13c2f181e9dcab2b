"""Virtual subjects: the parameters of one subject (:class:`SubjectParams`) and their sampling.

Subject ``i`` of a cohort draws its parameters from ``numpy.random.default_rng([seed, i, 0])``
(:func:`sample_subjects`), so a subject never depends on the cohort's size or on the number
of worker processes. :func:`assign_splits` gives the cohort manifest's subject-disjoint
train/val/test labels through :func:`bprl.splits.assign_splits`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from bprl.cohort.layout import subject_id_for
from bprl.cohort.spec import CohortSpec, load_spec
from bprl.errors import CohortError
from bprl.splits import assign_splits as assign_subject_splits

__all__ = [
    "BLOOD_DENSITY_KG_M3",
    "PWV_REF_PRESSURE_MMHG",
    "SubjectParams",
    "assign_splits",
    "params_row",
    "sample_subject",
    "sample_subjects",
    "subject_params",
]

BLOOD_DENSITY_KG_M3 = 1060.0
#: pressure at which ``pwv_ref_m_s`` is given
PWV_REF_PRESSURE_MMHG = 100.0
#: extra seed word of the manifest's split permutation (kept so splits never change)
SPLIT_SEED_TAG = 0x5B117


@dataclass(frozen=True)
class SubjectParams:
    """Physiological and signal parameters of one virtual subject (units in the names).

    See ``docs/guide/cohort.md`` for each parameter's distribution and source.
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


def _clip_normal(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    """One normal draw clipped to [lo, hi]."""
    return float(np.clip(rng.normal(mean, sd), lo, hi))


def _draw_baseline_bp(spec: CohortSpec, age: float, rng: np.random.Generator) -> tuple[str, float, float]:
    """BP category and baseline SBP / DBP (mmHg) of a subject aged ``age`` years."""
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
    return cat, sbp, dbp


def _draw_arteries(
    spec: CohortSpec, age: float, rng: np.random.Generator
) -> tuple[float, float, float, float]:
    """Hughes gamma (1/mmHg), reference PWV (m/s, stiffer with age), wall ratio h/d and the implied E0 (kPa)."""
    gamma = rng.uniform(spec.gamma_min_per_mmhg, spec.gamma_max_per_mmhg)
    pwv_ref = float(np.clip(5.0 + 0.06 * (age - 20) + rng.normal(0, 0.7), 4.0, 12.0))
    wall = rng.uniform(0.08, 0.12)
    e0 = pwv_ref**2 * BLOOD_DENSITY_KG_M3 / wall / math.exp(gamma * PWV_REF_PRESSURE_MMHG) / 1e3
    return gamma, pwv_ref, wall, e0


def sample_subject(spec: CohortSpec, i: int, rng: np.random.Generator) -> SubjectParams:
    """Draw the parameters of subject ``i`` (id ``v{i+1:04d}``) from the spec's population.

    Args:
        spec: the cohort spec.
        i: subject index, 0-based (sets the id only; the draws come from ``rng``).
        rng: the subject's generator, ``default_rng([seed, i, 0])`` in a cohort.

    Returns:
        the subject's parameters.
    """
    sex = "F" if rng.random() < spec.female_share else "M"
    age = _clip_normal(rng, spec.age_mean_years, spec.age_sd_years, 18, 95)
    height = _clip_normal(rng, 162.0 if sex == "F" else 176.0, 7.0, 145, 200)
    path = height / 100.0 * rng.uniform(0.50, 0.60)
    cat, sbp, dbp = _draw_baseline_bp(spec, age, rng)
    gamma, pwv_ref, wall, e0 = _draw_arteries(spec, age, rng)
    ectopic = (
        rng.uniform(spec.ectopic_prob_min, spec.ectopic_prob_max)
        if rng.random() < spec.ectopic_subject_share
        else rng.uniform(0.0, 0.002)
    )
    af = spec.af_rate_per_h * rng.uniform(0.5, 2.0) if rng.random() < spec.af_subject_share else 0.0
    art = spec.artefact_scale
    return SubjectParams(
        subject_id=subject_id_for(i),
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
    """Draw ``n`` subjects; subject ``i`` uses ``default_rng([seed, i, 0])`` so it never depends on ``n``.

    Args:
        spec: the cohort spec (anything :func:`~bprl.cohort.spec.load_spec` takes; ``None``: defaults).
        n: number of subjects.
        seed: the cohort's seed.

    Returns:
        the parameters of subjects ``0..n-1``.

    Raises:
        CohortError: invalid spec or ``n`` not a positive integer.
    """
    spec = load_spec(spec)
    if not isinstance(n, int) or n < 1:
        raise CohortError(f"n_subjects must be a positive integer, got {n!r}")
    return [sample_subject(spec, i, np.random.default_rng([seed, i, 0])) for i in range(n)]


def assign_splits(n: int, seed: int, spec: CohortSpec) -> list[str]:
    """Subject-disjoint train/val/test labels of subjects ``0..n-1``: a seeded permutation cut at the spec's fractions.

    The cohort's rule of :func:`bprl.splits.assign_splits`: permutation seed ``[seed, 0x5B117]``,
    ``round(split_train * n)`` train then ``round(split_val * n)`` val subjects, the rest test.

    Args:
        n: number of subjects.
        seed: the cohort's seed.
        spec: the cohort spec (its ``split_*`` fractions).

    Returns:
        one label per subject index.
    """
    fractions = {"train": spec.split_train, "val": spec.split_val, "test": spec.split_test}
    labels = assign_subject_splits(
        list(range(n)),
        fractions,
        [seed, SPLIT_SEED_TAG],
        order=("train", "val", "test"),
        at_least_one=False,
    )
    return [labels[i] for i in range(n)]


def params_row(p: SubjectParams) -> dict[str, Any]:
    """The manifest columns of one subject: every parameter except ``subject_id``."""
    d = asdict(p)
    d.pop("subject_id")
    return d


def subject_params(row: pd.Series | dict) -> SubjectParams:
    """Rebuild :class:`SubjectParams` from a manifest row (columns that are not parameters are ignored)."""
    names = {f.name for f in fields(SubjectParams)}
    return SubjectParams(
        **{k: (v.item() if hasattr(v, "item") else v) for k, v in dict(row).items() if k in names}
    )
