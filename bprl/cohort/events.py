"""Physiological events whose precursors show in the ECG/PPG features before (or while) BP moves.

The default cohort's BP changes (drift, pressor / hypotensive episodes, stress surges) show in
the features only through BP itself (PTT) or through the sympathetic tone. The events here add
what happens at the bedside with a documented time course, so that *when* a cuff reading is
taken can matter (all off by default: rates 0 in :class:`~bprl.cohort.spec.CohortSpec`):

``posture``
    head-up / sitting up / standing. Within seconds HR rises (+10-20 bpm, tau 5 s), PEP
    lengthens (+10-25 ms: less preload, Stafford et al. 1970) and the finger PPG amplitude falls
    (x0.67-0.82: lower stroke volume and skin vasoconstriction, McGrath et al. 2011); SBP dips
    transiently (-10-25 mmHg, nadir 8 s, back within ~40 s: initial orthostatic hypotension,
    Wieling et al. 2007). In ``posture_delayed_fall_share`` of the events SBP then falls
    -15-30 mmHg from 3-8 min upright on (delayed orthostatic hypotension, Gibbons & Freeman
    2006; tau 2 min), minutes after the precursor.
``exertion``
    in-bed cycling or mobilisation, 3-10 min. HR rises first (+15-30 bpm, tau 20 s), PEP
    shortens (-10-25 ms, tau 30 s: beta-adrenergic inotropy, Lewis et al. 1977), SBP follows
    (+15-30 mmHg, tau 60-120 s; DBP +0.1 of it: Fletcher et al. 2013), so HR leads SBP by ~1 min.
``vasopressor_bolus``
    phenylephrine 50-200 ug IV: after 15-30 s circulation time SBP rises +20-40 mmHg (peak at
    ~1.5-2 min, effect half-life 3.5-5.5 min, gone by ~20 min), DBP +0.8 of it; the baroreflex
    slows HR 0.3-0.6 bpm per mmHg (Smyth et al. 1969), PEP lengthens with afterload
    (+0.2-0.4 ms per mmHg DBP, Lewis et al. 1977), the PPG amplitude falls (alpha-1 finger
    vasoconstriction) and its reflected wave grows. No precursor: the features move *with* BP.
``vasodilator``
    nitroglycerin infusion, 10-30 min: plasma level rises with tau 3 min. The PPG reflected wave
    falls (x0.37-0.61) and the finger pulse grows at levels too low to lower BP (Kelly et al.
    1990; Chowienczyk et al. 1999); SBP falls -15-30 mmHg only at higher levels (DBP 0.5 of it)
    with reflex tachycardia 0.3-0.6 bpm per mmHg. The dose-response gap makes the PPG change
    lead the BP fall by ~1.5-2 min.
``pep_ptt_dissociation``
    BP moves +-10-25 mmHg (tau 2 min, 5-20 min) while PEP moves the other way by 50-100 % of
    the PTT change, so PAT hides most of the BP change (Payne et al. 2006; Zhang et al. 2011);
    HR does not move. No precursor by design: a rule that reads on PAT changes misses it.
``ectopy_burst``
    a run of frequent ventricular ectopy, 2-15 min: the per-beat probability of a premature
    ventricular beat rises to U(0.3, 0.5) (with the cohort's rule that two never follow each
    other, about a quarter of the beats are premature and a quarter follow one: runs of bigeminy
    and trigeminy), then falls back to the subject's own. Ventricular ectopy is not stationary:
    on Holter recordings a patient's hourly PVC count varies several-fold from hour to hour
    (Morganroth et al. 1978). Premature beats have the cohort's ectopic physiology (62 % of the
    RR, a compensatory pause, PEP +12 ms, SBP -12 to -25 mmHg, the next beat +3 to +8 mmHg:
    :mod:`bprl.cohort.beats`), so during a burst the PAT feature sees many beats whose PAT is not
    the sinus beats' while the slow BP does not change: what rhythm gating is there to remove.
    No effect on the slow BP, HR or PPG shape.

Events come from their own stream (:func:`event_rng`, derived from the subject's signal
generator's seed without drawing from it), so a subject's drift, episodes and parameters are
the same with and without events.

>>> from bprl.cohort.spec import CohortSpec
>>> events_enabled(CohortSpec()), events_enabled(CohortSpec(exertion_rate_per_h=1.0))
(False, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bprl.cohort.spec import CohortSpec
from bprl.cohort.subjects import SubjectParams

__all__ = [
    "EVENT_KINDS",
    "EVENT_RATE_FIELDS",
    "CohortEvent",
    "EventEffects",
    "draw_event",
    "draw_events",
    "event_effects",
    "event_rng",
    "events_enabled",
]

#: event kinds, in the order they are drawn
EVENT_KINDS: tuple[str, ...] = (
    "posture",
    "exertion",
    "vasopressor_bolus",
    "vasodilator",
    "pep_ptt_dissociation",
    "ectopy_burst",  # drawn last: adding it changed no other kind's draws
)
#: the CohortSpec rate field of each kind
EVENT_RATE_FIELDS: dict[str, str] = {k: f"{k}_rate_per_h" for k in EVENT_KINDS}
#: extra spawn-key word of the event stream (kept so events never change)
EVENT_STREAM_TAG = 0xE7E7
#: events may start this long before the record (s), so one can be running at the start
LOOKBACK_S = 600.0


@dataclass(frozen=True)
class CohortEvent:
    """One event: its kind, start (s from record start), duration (s; 0 for a bolus) and drawn sizes."""

    kind: str
    t0_s: float
    duration_s: float
    sizes: dict[str, float] = field(default_factory=dict)


@dataclass
class EventEffects:
    """What a subject's events add on the dynamics grid (each array has the grid's length)."""

    d_sbp_mmhg: np.ndarray
    d_dbp_mmhg: np.ndarray
    d_hr_bpm: np.ndarray
    d_pep_ms: np.ndarray
    ppg_amp_log: np.ndarray  # log of the PPG pulse-amplitude factor
    ppg_reflection_log: np.ndarray  # log of the factor on the PPG reflected (dicrotic) wave
    ectopic_prob: np.ndarray  # per-beat premature-beat probability of ectopy bursts (0 outside)


def events_enabled(spec: CohortSpec) -> bool:
    """Whether the spec turns any event kind on (a rate above 0)."""
    return any(getattr(spec, f) > 0 for f in EVENT_RATE_FIELDS.values())


def event_rng(rng: np.random.Generator) -> np.random.Generator:
    """The event stream of a subject: the signal generator's seed with one more spawn-key word.

    Draws nothing from ``rng``; ``default_rng([seed, i, 1])`` gives the same events every time.
    """
    ss = getattr(rng.bit_generator, "seed_seq", None)
    if not isinstance(ss, np.random.SeedSequence):
        raise ValueError("event_rng needs a generator made from a seed (numpy.random.default_rng(seed))")
    return np.random.default_rng(
        np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, EVENT_STREAM_TAG))
    )


def _draw_sizes(kind: str, spec: CohortSpec, rng: np.random.Generator) -> tuple[float, dict[str, float]]:
    """Duration (s) and sizes of one event of ``kind`` (ranges in the module doc)."""
    u = rng.uniform
    s = spec.event_bp_scale
    if kind == "posture":
        delayed = float(rng.random() < spec.posture_delayed_fall_share)
        return u(8, 20) * 60, {
            "hr_bpm": u(10, 20),
            "pep_ms": u(10, 25),
            "ppg_amp_log": -u(0.2, 0.4),
            "dip_mmhg": s * u(10, 25),
            "fall_mmhg": s * u(15, 30) * delayed,
            "fall_delay_s": u(3, 8) * 60,
        }
    if kind == "exertion":
        return u(3, 10) * 60, {
            "hr_bpm": u(15, 30),
            "pep_ms": -u(10, 25),
            "sbp_mmhg": s * u(15, 30),
            "sbp_tau_s": u(60, 120),
            "ppg_amp_log": -u(0.05, 0.15),
        }
    if kind == "vasopressor_bolus":
        return 0.0, {
            "latency_s": u(15, 30),
            "half_life_s": u(210, 330),
            "sbp_mmhg": s * u(20, 40),
            "hr_per_mmhg": -u(0.3, 0.6),
            "pep_per_dbp_mmhg": u(0.2, 0.4),
            "ppg_amp_log": -u(0.2, 0.5),
            "reflection_log": u(0.2, 0.4),
        }
    if kind == "vasodilator":
        return u(10, 30) * 60, {
            "sbp_mmhg": -s * u(15, 30),
            "hr_per_mmhg": -u(0.3, 0.6),
            "ppg_amp_log": u(0.1, 0.3),
            "reflection_log": -u(0.5, 1.0),
        }
    if kind == "pep_ptt_dissociation":
        sign = -1.0 if rng.random() < 0.5 else 1.0
        return u(5, 20) * 60, {"sbp_mmhg": s * sign * u(10, 25), "cancel_share": u(0.5, 1.0)}
    if kind == "ectopy_burst":
        return u(2, 15) * 60, {"ectopic_prob": u(0.3, 0.5)}
    raise ValueError(f"unknown event kind {kind!r}; known: {', '.join(EVENT_KINDS)}")


def draw_event(kind: str, t0_s: float, spec: CohortSpec, rng: np.random.Generator) -> CohortEvent:
    """One event of ``kind`` starting at ``t0_s`` (s from record start), its duration and sizes drawn from ``rng``.

    Raises:
        ValueError: unknown kind.
    """
    dur, sizes = _draw_sizes(kind, spec, rng)
    return CohortEvent(kind, float(t0_s), float(dur), {k: float(v) for k, v in sizes.items()})


def draw_events(spec: CohortSpec, duration_s: float, rng: np.random.Generator) -> list[CohortEvent]:
    """Poisson events of every enabled kind (in :data:`EVENT_KINDS` order) over a record of ``duration_s``.

    Each kind draws ``Poisson(rate * (duration + 600 s) / 1 h)`` events starting uniformly from
    600 s before the record to its end, then each event's duration and sizes.
    """
    out: list[CohortEvent] = []
    for kind in EVENT_KINDS:
        rate = getattr(spec, EVENT_RATE_FIELDS[kind])
        if rate <= 0:
            continue
        for _ in range(int(rng.poisson(rate * (duration_s + LOOKBACK_S) / 3600.0))):
            out.append(draw_event(kind, float(rng.uniform(-LOOKBACK_S, duration_s)), spec, rng))
    return out


# ---------------------------------------------------------------- time courses
def _rise(x: np.ndarray, tau_s: float) -> np.ndarray:
    """First-order step response ``1 - exp(-x / tau)`` for ``x > 0``, else 0."""
    return -np.expm1(-np.maximum(x, 0.0) / tau_s)


def _on_off(t: np.ndarray, t0: float, dur_s: float, tau_on_s: float, tau_off_s: float) -> np.ndarray:
    """First-order rise from ``t0``, first-order return from ``t0 + dur_s``."""
    t1 = t0 + dur_s
    level = -math.expm1(-max(dur_s, 0.0) / tau_on_s)
    after = level * np.exp(-np.maximum(t - t1, 0.0) / tau_off_s)
    return np.where(t < t1, _rise(t - t0, tau_on_s), after)


def _bolus(t: np.ndarray, t0: float, latency_s: float, tau_on_s: float, half_life_s: float) -> np.ndarray:
    """Bateman curve (first-order onset and elimination) after a latency, peak 1."""
    tau_el = half_life_s / math.log(2.0)
    x = np.maximum(t - t0 - latency_s, 0.0)
    t_peak = math.log(tau_el / tau_on_s) * tau_on_s * tau_el / (tau_el - tau_on_s)
    peak = math.exp(-t_peak / tau_el) - math.exp(-t_peak / tau_on_s)
    return (np.exp(-x / tau_el) - np.exp(-x / tau_on_s)) / peak


def _ptt0_ms(p: SubjectParams) -> float:
    """The subject's PTT at baseline MAP, ms."""
    map0 = p.dbp_mmhg + (p.sbp_mmhg - p.dbp_mmhg) / 3.0
    return float(1e3 * p.path_length_m / p.pwv_m_s(map0))


def _add(eff: EventEffects, t: np.ndarray, ev: CohortEvent, p: SubjectParams) -> None:
    """Add one event's time course to ``eff`` (in place)."""
    z, t0, dur = ev.sizes, ev.t0_s, ev.duration_s
    if ev.kind == "posture":
        up = _on_off(t, t0, dur, 10.0, 20.0)
        eff.d_hr_bpm += z["hr_bpm"] * _on_off(t, t0, dur, 5.0, 15.0)
        eff.d_pep_ms += z["pep_ms"] * up
        eff.ppg_amp_log += z["ppg_amp_log"] * up
        x = np.maximum(t - t0, 0.0) / 8.0  # initial orthostatic dip, nadir 8 s after standing
        dip = z["dip_mmhg"] * x * np.exp(1.0 - x)
        fall = z["fall_mmhg"] * _on_off(t, t0 + z["fall_delay_s"], dur - z["fall_delay_s"], 120.0, 60.0)
        eff.d_sbp_mmhg -= dip + fall
        eff.d_dbp_mmhg -= 0.6 * (dip + fall)
    elif ev.kind == "exertion":
        eff.d_hr_bpm += z["hr_bpm"] * _on_off(t, t0, dur, 20.0, 60.0)
        eff.d_pep_ms += z["pep_ms"] * _on_off(t, t0, dur, 30.0, 60.0)
        eff.ppg_amp_log += z["ppg_amp_log"] * _on_off(t, t0, dur, 30.0, 60.0)
        sbp = z["sbp_mmhg"] * _on_off(t, t0, dur, z["sbp_tau_s"], 150.0)
        eff.d_sbp_mmhg += sbp
        eff.d_dbp_mmhg += 0.1 * sbp
    elif ev.kind == "vasopressor_bolus":
        c = _bolus(t, t0, z["latency_s"], 30.0, z["half_life_s"])
        sbp, dbp = z["sbp_mmhg"] * c, 0.8 * z["sbp_mmhg"] * c
        eff.d_sbp_mmhg += sbp
        eff.d_dbp_mmhg += dbp
        eff.d_hr_bpm += z["hr_per_mmhg"] * sbp
        eff.d_pep_ms += z["pep_per_dbp_mmhg"] * dbp
        eff.ppg_amp_log += z["ppg_amp_log"] * c
        eff.ppg_reflection_log += z["reflection_log"] * c
    elif ev.kind == "vasodilator":
        c = _on_off(t, t0, dur, 180.0, 180.0)  # plasma level, steady state 1
        low = c / (c + 0.1) * 1.1  # PPG effects: half at 8 % of the steady level
        high = c**4 / (c**4 + 0.5**4) * (1 + 0.5**4)  # BP effect: half at ~49 %
        sbp = z["sbp_mmhg"] * high
        eff.d_sbp_mmhg += sbp
        eff.d_dbp_mmhg += 0.5 * sbp
        eff.d_hr_bpm += z["hr_per_mmhg"] * sbp
        eff.ppg_amp_log += z["ppg_amp_log"] * low
        eff.ppg_reflection_log += z["reflection_log"] * low
    elif ev.kind == "pep_ptt_dissociation":
        sbp = z["sbp_mmhg"] * _on_off(t, t0, dur, 120.0, 120.0)
        dbp = 0.6 * sbp
        eff.d_sbp_mmhg += sbp
        eff.d_dbp_mmhg += dbp
        d_map = dbp + (sbp - dbp) / 3.0
        d_ptt_ms = _ptt0_ms(p) * np.expm1(-p.gamma_per_mmhg * d_map / 2.0)  # Moens-Korteweg / Hughes
        eff.d_pep_ms -= z["cancel_share"] * d_ptt_ms
    elif ev.kind == "ectopy_burst":
        inside = (t >= t0) & (t < t0 + dur)
        eff.ectopic_prob[inside] = np.maximum(eff.ectopic_prob[inside], z["ectopic_prob"])
    else:
        raise ValueError(f"unknown event kind {ev.kind!r}; known: {', '.join(EVENT_KINDS)}")


def event_effects(events: Sequence[CohortEvent], t_s: np.ndarray, p: SubjectParams) -> EventEffects:
    """The summed time courses of ``events`` on the grid ``t_s`` for subject ``p`` (module doc).

    Args:
        events: the subject's events (:func:`draw_events`, or made by hand in tests).
        t_s: the dynamics grid, s from record start.
        p: the subject's parameters (PTT at baseline for the dissociation episodes).

    Returns:
        the added SBP, DBP, HR, PEP, the PPG amplitude and reflection log-factors and the
        ectopy bursts' premature-beat probability.
    """
    t = np.asarray(t_s, float)
    eff = EventEffects(*(np.zeros_like(t) for _ in range(7)))
    for ev in events:
        _add(eff, t, ev, p)
    return eff
