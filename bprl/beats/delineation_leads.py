"""Multi-lead ECG delineation: one set of P, QRS and T boundaries per beat from several leads.

Each lead is delineated on its own (:func:`bprl.beats.ecg_delineate`) at the same R peaks, and
each boundary of a beat is the **median over the leads** that found it, provided at least
``min_leads`` did (by default half of them; else NaN). A wave starts and ends at one instant
for the whole heart; a single lead sees it start late where its first part is perpendicular to
the lead axis, and a noisy or low-amplitude lead places it wrongly now and then. The median
keeps one lead's miss from moving the beat, which the earliest onset / latest offset over leads
(the rule of multilead delineators such as Laguna et al. 1994) does not. That rule, the global
boundaries of the CSE convention, is ``rule="earliest"``: the earliest onset and the latest
offset over the leads that found them (peaks: still the median); it suits references marked
once per beat on all leads together (QTDB), the median suits references marked lead by lead
(LUDB).

Measured on LUDB (12 leads, 500 Hz; ``python -m benchmarks delineation_leads``; see the
delineation guide): the 12-lead median's QRS onset against the cardiologists' marks has a
smaller SD than each lead's own delineation. The marks of one beat
differ from lead to lead too, which bounds what one instant per beat can reach against every
lead's marks.

Sources: P. Laguna, R. Jané, P. Caminal, "Automatic detection of wave boundaries in multilead
ECG signals: validation with the CSE database", Comput. Biomed. Res. 27:45-60, 1994; R. Almeida,
J. P. Martínez, A. P. Rocha, P. Laguna, "Multilead ECG delineation using spatially projected
leads from wavelet transform loops", IEEE TBME 56(8):1996-2005, 2009.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bprl.beats.delineation import DELINEATION_COLUMNS, ecg_delineate
from bprl.beats.ecg import ecg_peaks
from bprl.errors import FeatureError

__all__ = ["RULES", "ecg_delineate_leads"]

#: how the leads' boundaries are combined (see :func:`ecg_delineate_leads`)
RULES = ("median", "earliest")
_ONSETS = ("p_onset_s", "qrs_onset_s")
_OFFSETS = ("p_offset_s", "qrs_offset_s", "t_end_s")


def ecg_delineate_leads(
    ecg: np.ndarray,
    fs_hz: float,
    r_times_s: np.ndarray | None = None,
    *,
    peaks_lead: int = 0,
    min_leads: int | None = None,
    rule: str = "median",
    qrs_onset: str = "wavelet",
) -> pd.DataFrame:
    """Delineate every beat of a multi-lead ECG: the median over leads of each boundary.

    Example:
        >>> import numpy as np
        >>> ecg_delineate_leads(np.zeros((1000, 3)), 250.0).shape  # flat leads: no beats
        (0, 10)

    Args:
        ecg: samples x leads (mV or any units, either polarity; NaN = invalid samples), at least
            :data:`bprl.beats.delineation.MIN_DELINEATION_FS_HZ`.
        fs_hz: sampling rate in Hz.
        r_times_s: R-peak times in s; by default :func:`bprl.beats.ecg_peaks` of lead
            ``peaks_lead``.
        peaks_lead: the lead (column) whose R peaks are used when ``r_times_s`` is not given.
        min_leads: least number of leads that must find a boundary for the beat to have it
            (default: half of the leads, rounded up: 6 of 12, 1 of 2). It matters for the P
            wave, which low-amplitude leads miss: on LUDB 4 of 12 finds more P waves and more
            false ones than 6 of 12 (see the delineation guide).
        rule: ``"median"`` (each boundary the median over the leads) or ``"earliest"`` (onsets the
            earliest, offsets and the T end the latest over the leads; peaks the median).
        qrs_onset: each lead's QRS onset rule, as in :func:`bprl.beats.ecg_delineate`
            (``"wavelet"`` or ``"model"``).

    Returns:
        One row per R peak, columns :data:`bprl.beats.delineation.DELINEATION_COLUMNS` (times in
        s), plus ``n_leads_qrs`` and ``n_leads_p``: how many leads found the QRS onset and the
        P peak. :func:`bprl.beats.ecg_intervals` takes it as it takes one lead's delineation.

    Raises:
        FeatureError: ``ecg`` is not 2-D, ``peaks_lead`` or ``min_leads`` is out of range, an
            unknown ``rule``, or as :func:`bprl.beats.ecg_delineate` (a rate under 100 Hz, an
            unknown ``qrs_onset``).
    """
    x = np.asarray(ecg, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise FeatureError(f"ecg_delineate_leads: expected samples x leads (2-D), got shape {x.shape}")
    n_leads = x.shape[1]
    if not 0 <= peaks_lead < n_leads:
        raise FeatureError(f"ecg_delineate_leads: peaks_lead {peaks_lead} is not one of the {n_leads} leads")
    if rule not in RULES:
        raise FeatureError(f"ecg_delineate_leads: rule must be one of {list(RULES)}, got {rule!r}")
    need = math.ceil(n_leads / 2) if min_leads is None else int(min_leads)
    if not 1 <= need <= n_leads:
        raise FeatureError(f"ecg_delineate_leads: min_leads must be 1..{n_leads}, got {min_leads}")
    if r_times_s is None:
        r_times_s = ecg_peaks(x[:, peaks_lead], fs_hz)
    per_lead = [
        ecg_delineate(x[:, k], fs_hz, r_times_s=r_times_s, qrs_onset=qrs_onset) for k in range(n_leads)
    ]
    return _combine_leads(per_lead, need, rule)


def _combine_leads(per_lead: list[pd.DataFrame], need: int, rule: str) -> pd.DataFrame:
    """The beats' boundaries over the leads' delineations (same R peaks): ``rule`` over the leads
    that found each boundary, NaN where fewer than ``need`` did (:func:`ecg_delineate_leads`)."""
    out = {"r_s": per_lead[0]["r_s"].to_numpy()}
    found = {}
    for col in DELINEATION_COLUMNS[1:]:
        stack = np.stack([d[col].to_numpy() for d in per_lead])  # leads x beats
        n = np.isfinite(stack).sum(axis=0)
        med = np.full(stack.shape[1], np.nan)
        ok = n >= need
        if ok.any():
            combine = np.nanmedian
            if rule == "earliest" and col in _ONSETS:
                combine = np.nanmin
            elif rule == "earliest" and col in _OFFSETS:
                combine = np.nanmax
            med[ok] = combine(stack[:, ok], axis=0)
        out[col] = med
        found[col] = n
    out["n_leads_qrs"] = found["qrs_onset_s"]
    out["n_leads_p"] = found["p_peak_s"]
    return pd.DataFrame(out, columns=[*DELINEATION_COLUMNS, "n_leads_qrs", "n_leads_p"])
