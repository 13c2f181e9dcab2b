"""Beat-level physiology of one virtual subject: the ground-truth beat table before waveforms.

Per beat ``k``::

    E(P)  = E0 * exp(gamma * P)                       Hughes et al. 1979
    PWV   = sqrt(E * h / (rho * d))                   Moens-Korteweg
    PTT   = L / PWV  ->  ln PTT = ln(L / PWV0) - gamma * MAP / 2,  i.e.  MAP = a ln PTT + b,  a = -2 / gamma
    PAT   = PEP + PTT,   PEP = PEP0 - k_pep * tone    (tone moves PEP and HR, not necessarily BP)

``P`` is the beat's mean arterial pressure ``DBP + (SBP - DBP) / 3`` (column ``map_mmhg``).
R times follow the integrated heart rate of :mod:`bprl.cohort.dynamics` with HRV, ventricular
ectopy (premature beat, compensatory pause) and irregular RR inside AF episodes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bprl.cohort.dynamics import DYN_FS_HZ, Dynamics
from bprl.cohort.subjects import SubjectParams

__all__ = ["simulate_beats"]

#: SD of ln RR inside atrial fibrillation (irregularly irregular rhythm)
AF_RR_LOG_SD = 0.17


def _beat_rhythm(
    p: SubjectParams, dyn: Dynamics, duration_s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """R times (s), RR (s), ectopic and AF flags, and the nominal RR (s) of every beat in the record."""
    # nominal beats where the integrated heart-rate phase crosses integers
    phase = np.concatenate([[0.0], np.cumsum(dyn.hr_bpm[:-1] / 60.0) / DYN_FS_HZ])
    first = rng.uniform(0.2, 0.9)
    t_nom = first + np.interp(np.arange(0, phase[-1]), phase, dyn.t_s)
    nom_rr = np.diff(t_nom, prepend=t_nom[0] - 60.0 / p.hr_bpm)
    nb = len(nom_rr)
    af = np.interp(t_nom, dyn.t_s, dyn.af.astype(float)) > 0.5
    sig = AF_RR_LOG_SD
    rr = nom_rr * np.exp(p.hrv_sd * rng.standard_normal(nb))
    rr[af] = nom_rr[af] * np.exp(sig * rng.standard_normal(int(af.sum())) - sig * sig / 2)
    # ventricular ectopics: premature (62 % of RR) followed by a compensatory pause; never twice in a row, not in AF
    prob: float | np.ndarray = p.ectopic_prob
    # ectopy bursts (bprl.cohort.events): the same draws, a higher bar inside them
    if dyn.ectopic_prob is not None:
        prob = np.maximum(p.ectopic_prob, np.interp(t_nom, dyn.t_s, dyn.ectopic_prob))
    ect = (rng.random(nb) < prob) & ~af
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
    return r[keep], rr[keep], ect[keep], af[keep], nom_rr[keep]


def _beat_pressures(
    dyn: Dynamics, r: np.ndarray, rr: np.ndarray, nom: np.ndarray, ect: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """SBP and DBP (mmHg) per beat: slow state + respiration + Frank-Starling on the preceding interval + ectopy."""
    n = len(r)
    post = np.zeros(n, bool)
    post[1:] = ect[:-1]
    sbp_s = np.interp(r, dyn.t_s, dyn.sbp_mmhg)
    dbp_s = np.interp(r, dyn.t_s, dyn.dbp_mmhg)
    resp = np.sin(np.interp(r, dyn.t_s, dyn.resp_phase) + 0.8)
    rel = np.clip(rr / nom - 1.0, -0.5, 0.8)
    sbp = sbp_s + 2.5 * resp + 18.0 * rel + rng.normal(0, 1.0, n)
    dbp = dbp_s + 1.0 * resp - 10.0 * rel + rng.normal(0, 0.7, n)
    sbp[ect] -= rng.uniform(12, 25, int(ect.sum()))
    sbp[post] += rng.uniform(3, 8, int(post.sum()))
    sbp = np.maximum(sbp, dbp + 12.0)
    return sbp, dbp


def simulate_beats(
    p: SubjectParams, dyn: Dynamics, duration_s: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Beat-level physiology: R times (HRV, ectopy, AF), PEP, PTT (Moens-Korteweg/Hughes), SBP/DBP per beat.

    Args:
        p: the subject's parameters.
        dyn: the subject's slow dynamics (:func:`bprl.cohort.dynamics.simulate_dynamics`).
        duration_s: record length, s (beats end 0.5 s before it).
        rng: the subject's signal generator, continued from the dynamics.

    Returns:
        one row per beat with the :data:`~bprl.cohort.layout.TRUTH_COLUMNS` up to ``af``
        (the artefact flags are added by :func:`bprl.cohort.waveforms.synthesize_waveforms`).
    """
    r, rr, ect, af, nom = _beat_rhythm(p, dyn, duration_s, rng)
    n = len(r)
    sbp, dbp = _beat_pressures(dyn, r, rr, nom, ect, rng)
    map_ = dbp + (sbp - dbp) / 3.0
    tone = np.interp(r, dyn.t_s, dyn.tone)
    ln_e = np.interp(r, dyn.t_s, dyn.ln_e_shift)
    pwv = p.pwv_m_s(map_, ln_e)
    jitter = np.exp(rng.normal(0, 0.005, n))
    ptt_s = p.path_length_m / pwv * jitter
    abp_ptt_s = p.abp_path_length_m / pwv * jitter
    pep_s = (p.pep_ms - p.pep_tone_ms * tone + rng.normal(0, 1.5, n) + 12.0 * ect) / 1e3
    if dyn.pep_shift_ms is not None:  # events (bprl.cohort.events)
        pep_s = pep_s + np.interp(r, dyn.t_s, dyn.pep_shift_ms) / 1e3
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
