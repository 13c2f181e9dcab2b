"""Cohort events (bprl.cohort.events): sign and lead of each event type measured on the ground truth.

Each event is simulated on one subject against the same subject without it (the same signal
stream, so the drift and episodes are the same); the differences of 10-s medians of the truth
table (HR, PEP, PTT, PAT, SBP) and of the noiseless PPG pulse amplitude give when each quantity
reaches half its largest change. The documented leads are those of ``docs/guide/cohort.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bprl import cohort
from bprl.cohort.events import EVENT_RATE_FIELDS, draw_event, draw_events, event_rng, events_enabled

SPEC_FILE = Path(cohort.__file__).parent / "specs" / "timing_events.yaml"
T0_S = 600.0
HOURS = 0.6
BIN_S = 10.0


def _binned(truth: pd.DataFrame, ppg_clean: np.ndarray, fs_hz: float) -> pd.DataFrame:
    """10-s medians of the truth columns and of the noiseless PPG pulse amplitude (non-ectopic beats)."""
    i0 = np.clip((truth["ppg_foot_s"].to_numpy() * fs_hz).astype(int), 0, len(ppg_clean) - 1)
    i1 = np.clip(i0 + int(0.35 * fs_hz), 0, len(ppg_clean) - 1)
    amp = np.maximum.reduceat(ppg_clean, np.ravel(np.column_stack([i0, i1 + 1]))[:-1])[::2]
    d = truth.assign(ppg_amp=amp, bin_s=(truth["r_time_s"] // BIN_S) * BIN_S)
    d = d[~d["ectopic"]]
    cols = ["hr_bpm", "pep_ms", "ptt_ms", "pat_ms", "sbp_mmhg", "ppg_amp"]
    return d.groupby("bin_s")[cols].median()


def _event_change(kind: str, subject: int, size_seed: int) -> tuple[pd.DataFrame, cohort.CohortEvent]:
    """Per 10-s bin from 60 s before the event: the change each quantity shows with the event."""
    spec = cohort.load_spec({"posture_delayed_fall_share": 1.0})
    p = cohort.sample_subjects(None, subject + 1, 0)[subject]
    ev = draw_event(kind, T0_S, spec, np.random.default_rng(size_seed))
    runs = []
    for events in ([], [ev]):
        waves, truth = cohort.simulate_subject(p, HOURS, np.random.default_rng([0, subject, 1]), spec, events)
        runs.append(_binned(truth, waves.clean["Pleth"], float(spec.fs_ppg_hz)))
    base, with_event = runs
    d = (with_event - base).loc[T0_S - 60 :]
    d["ppg_amp"] = with_event["ppg_amp"] / base["ppg_amp"] - 1.0
    return d, ev


def _half_time_s(d: pd.DataFrame, col: str, sign: float) -> float:
    """Seconds after the event start at which ``col`` first reaches half its largest change of sign ``sign``.

    The change is smoothed by a centred 3-bin (30-s) median first, so one noisy bin cannot set it.
    """
    x = sign * d[col].rolling(3, center=True, min_periods=1).median()
    peak = x.max()
    assert peak > 0, f"{col} never moves with sign {sign:+.0f}"
    first = x.index[(x >= 0.5 * peak).to_numpy()][0]
    return float(first + BIN_S / 2 - T0_S)


#: (subject index of seed 0, seed of the event sizes); subjects without AF (its irregular RR swamps
#: a 10-s HR median), one of them (6) with frequent ectopy
SUBJECTS = [(1, 3), (6, 11), (9, 29)]


@pytest.mark.parametrize(("subject", "size_seed"), SUBJECTS)
def test_posture_precursors_lead_the_delayed_fall(subject: int, size_seed: int) -> None:
    """Standing: HR up, PEP up, PPG smaller within 20 s with a brief SBP dip; SBP falls for good >= 3 min later."""
    d, ev = _event_change("posture", subject, size_seed)
    lead_s = {c: _half_time_s(d, c, s) for c, s in [("hr_bpm", 1), ("pep_ms", 1), ("ppg_amp", -1)]}
    assert max(lead_s.values()) <= 20.0, lead_s
    assert d["sbp_mmhg"].loc[T0_S : T0_S + 20].min() < -0.3 * ev.sizes["dip_mmhg"]  # initial orthostatic dip
    assert d["sbp_mmhg"].loc[T0_S + 60 : T0_S + 150].min() > -5.0  # ... gone within a minute
    sbp_s = _half_time_s(d.loc[T0_S + 60 :], "sbp_mmhg", -1)  # the sustained (delayed) fall
    assert ev.sizes["fall_delay_s"] <= sbp_s <= ev.sizes["fall_delay_s"] + 300.0
    print(
        f"posture s{subject}: HR/PEP/PPG half at {max(lead_s.values()):.0f} s, sustained SBP fall half at {sbp_s:.0f} s"
    )
    assert sbp_s - max(lead_s.values()) >= 180.0
    assert d["sbp_mmhg"].min() < -0.5 * ev.sizes["fall_mmhg"]
    assert d["pat_ms"].loc[T0_S + 30 : T0_S + 120].mean() > 0.5 * ev.sizes["pep_ms"]  # PAT up before BP moves


@pytest.mark.parametrize(("subject", "size_seed"), SUBJECTS)
def test_exertion_hr_and_pep_lead_sbp(subject: int, size_seed: int) -> None:
    """Exertion: HR up and PEP down first; SBP rises >= 20 s later."""
    d, ev = _event_change("exertion", subject, size_seed)
    hr_s, pep_s = _half_time_s(d, "hr_bpm", 1), _half_time_s(d, "pep_ms", -1)
    sbp_s = _half_time_s(d, "sbp_mmhg", 1)
    assert max(hr_s, pep_s) <= 40.0
    print(f"exertion s{subject}: HR half at {hr_s:.0f} s, PEP at {pep_s:.0f} s, SBP at {sbp_s:.0f} s")
    assert sbp_s - hr_s >= 20.0 and sbp_s <= 150.0, (hr_s, sbp_s)
    assert d["sbp_mmhg"].max() > 0.6 * ev.sizes["sbp_mmhg"]


@pytest.mark.parametrize(("subject", "size_seed"), SUBJECTS)
def test_vasopressor_bolus_moves_features_with_bp(subject: int, size_seed: int) -> None:
    """Phenylephrine: SBP up within 1-3 min, HR down and PPG smaller at the same time, never before."""
    d, ev = _event_change("vasopressor_bolus", subject, size_seed)
    sbp_s = _half_time_s(d, "sbp_mmhg", 1)
    hr_s, ppg_s = _half_time_s(d, "hr_bpm", -1), _half_time_s(d, "ppg_amp", -1)
    print(
        f"vasopressor_bolus s{subject}: SBP half at {sbp_s:.0f} s, HR at {hr_s:.0f} s, PPG amplitude at {ppg_s:.0f} s"
    )
    assert 20.0 <= sbp_s <= 120.0
    for col, sign in [("hr_bpm", -1), ("ppg_amp", -1)]:
        assert abs(_half_time_s(d, col, sign) - sbp_s) <= 30.0, col
    assert d["sbp_mmhg"].max() > 0.7 * ev.sizes["sbp_mmhg"]


@pytest.mark.parametrize(("subject", "size_seed"), SUBJECTS)
def test_vasodilator_ppg_change_leads_bp_fall(subject: int, size_seed: int) -> None:
    """Nitroglycerin: the PPG pulse grows within 30 s, SBP falls >= 60 s later, HR rises with SBP."""
    d, ev = _event_change("vasodilator", subject, size_seed)
    ppg_s = _half_time_s(d, "ppg_amp", 1)
    sbp_s = _half_time_s(d, "sbp_mmhg", -1)
    print(f"vasodilator s{subject}: PPG amplitude half at {ppg_s:.0f} s, SBP fall half at {sbp_s:.0f} s")
    assert ppg_s <= 40.0 and sbp_s - ppg_s >= 60.0, (ppg_s, sbp_s)
    assert abs(_half_time_s(d, "hr_bpm", 1) - sbp_s) <= 30.0
    assert d["sbp_mmhg"].min() < 0.7 * ev.sizes["sbp_mmhg"]


@pytest.mark.parametrize(("subject", "size_seed"), SUBJECTS)
def test_pep_ptt_dissociation_hides_bp_from_pat(subject: int, size_seed: int) -> None:
    """BP and PTT move, PEP cancels 50-100 % of PTT, so PAT moves at most ~half as much; HR stays."""
    d, ev = _event_change("pep_ptt_dissociation", subject, size_seed)
    on = d.loc[T0_S + 300 : T0_S + ev.duration_s]
    sign = np.sign(ev.sizes["sbp_mmhg"])
    assert sign * on["sbp_mmhg"].mean() > 0.6 * abs(ev.sizes["sbp_mmhg"])
    assert -sign * on["ptt_ms"].mean() > 5.0  # PTT shortens when BP rises
    print(
        f"pep_ptt_dissociation s{subject}: SBP {on['sbp_mmhg'].mean():+.1f} mmHg, PTT {on['ptt_ms'].mean():+.1f} ms, "
        f"PAT {on['pat_ms'].mean():+.1f} ms"
    )
    assert abs(on["pat_ms"].mean()) <= (1.0 - ev.sizes["cancel_share"]) * abs(on["ptt_ms"].mean()) + 3.0
    assert abs(on["hr_bpm"].mean()) < 3.0


def test_vasodilator_lowers_the_ppg_reflected_wave() -> None:
    """The per-beat reflected wave shrinks: the late-diastolic part of the noiseless PPG pulse falls."""
    spec = cohort.CohortSpec()
    p = cohort.sample_subjects(None, 2, 0)[1]
    ev = draw_event("vasodilator", 60.0, spec, np.random.default_rng(5))
    shapes = []
    for events in ([], [ev]):
        waves, truth = cohort.simulate_subject(p, 0.2, np.random.default_rng([0, 1, 1]), spec, events)
        ppg, fs = waves.clean["Pleth"], float(spec.fs_ppg_hz)
        late = truth[truth["r_time_s"].between(400, 600) & ~truth["ectopic"]]
        foot = (late["ppg_foot_s"].to_numpy() * fs).astype(int)
        rr = (late["rr_ms"].median() / 1e3 * fs).astype(int)
        pulses = np.stack([ppg[f : f + rr] / ppg[f : f + rr].max() for f in foot])
        shapes.append(pulses.mean(axis=0))
    base, dil = shapes
    second_half = slice(len(base) // 2, None)
    assert dil[second_half].mean() < base[second_half].mean() - 0.01


def test_defaults_draw_no_events_and_leave_subjects_unchanged() -> None:
    """Default spec: no events; an empty event list gives exactly the default truth and waves."""
    assert not events_enabled(cohort.CohortSpec())
    p = cohort.sample_subjects(None, 1, 3)[0]
    w0, t0 = cohort.simulate_subject(p, 0.05, np.random.default_rng([3, 0, 1]))
    w1, t1 = cohort.simulate_subject(p, 0.05, np.random.default_rng([3, 0, 1]), None, [])
    pd.testing.assert_frame_equal(t0, t1)
    for name, (x, _fs) in w0.waves.items():
        np.testing.assert_array_equal(x, w1.waves[name][0])


def _dat_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.dat")):
        h.update(p.read_bytes())
    return h.hexdigest()


def test_events_spec_is_deterministic_and_keeps_the_subjects(tmp_path: Path) -> None:
    """The shipped spec: same seed -> same bytes for 1 or 2 workers; same subjects as the default cohort."""
    spec = cohort.load_spec(SPEC_FILE)
    assert events_enabled(spec)
    assert [len(draw_events(spec, 1800.0, event_rng(np.random.default_rng([12, i, 1])))) for i in (0, 1)] == [
        3,
        2,
    ]
    a = cohort.make_cohort(tmp_path / "a", 2, 0.5, 12, spec=SPEC_FILE, progress=False)
    b = cohort.make_cohort(tmp_path / "b", 2, 0.5, 12, spec=SPEC_FILE, workers=2, progress=False)
    plain = cohort.make_cohort(tmp_path / "plain", 2, 0.5, 12, progress=False)
    assert _dat_digest(a) == _dat_digest(b) != _dat_digest(plain)
    cols = [c for c in cohort.load_manifest(plain).columns if c != "split"]
    pd.testing.assert_frame_equal(cohort.load_manifest(a)[cols], cohort.load_manifest(plain)[cols])
    rng = np.random.default_rng([9, 0, 1])
    events = draw_events(spec, 3600.0, event_rng(rng))
    assert events == draw_events(spec, 3600.0, event_rng(np.random.default_rng([9, 0, 1])))
    assert rng.random() == np.random.default_rng([9, 0, 1]).random()  # the signal stream is untouched
    on = {k for k in cohort.EVENT_KINDS if getattr(spec, EVENT_RATE_FIELDS[k]) > 0}
    assert on == set(cohort.EVENT_KINDS) - {"ectopy_burst"}  # the spec predates the ectopy bursts
    assert {e.kind for e in draw_events(spec, 36000.0, event_rng(rng))} == on


def test_ectopy_burst_raises_ectopy_inside_and_leaves_the_rest() -> None:
    """An ``ectopy_burst`` event: about a quarter of the beats premature inside it, the subject's own
    rate outside, nothing else moved; the beat times before the burst are those without it."""
    spec = cohort.load_spec({})
    p = dataclasses.replace(cohort.sample_subjects(None, 1, 5)[0], ectopic_prob=0.0)  # ectopy only in bursts
    ev = draw_event("ectopy_burst", T0_S, spec, np.random.default_rng(1))
    assert 120.0 <= ev.duration_s <= 900.0 and 0.3 <= ev.sizes["ectopic_prob"] <= 0.5
    t_s = np.arange(0.0, 3600.0, 0.25)
    eff = cohort.event_effects([ev], t_s, p)
    inside = (t_s >= ev.t0_s) & (t_s < ev.t0_s + ev.duration_s)
    assert (
        np.all(eff.ectopic_prob[inside] == ev.sizes["ectopic_prob"]) and not eff.ectopic_prob[~inside].any()
    )
    for name in ("d_sbp_mmhg", "d_dbp_mmhg", "d_hr_bpm", "d_pep_ms", "ppg_amp_log", "ppg_reflection_log"):
        assert not getattr(eff, name).any(), name
    _, plain = cohort.simulate_subject(p, HOURS, np.random.default_rng([5, 0, 1]), spec, [])
    _, burst = cohort.simulate_subject(p, HOURS, np.random.default_rng([5, 0, 1]), spec, [ev])
    r = burst["r_time_s"].to_numpy()
    in_burst = (r >= ev.t0_s) & (r < ev.t0_s + ev.duration_s)
    share = burst["ectopic"].to_numpy(bool)
    assert 0.15 <= share[in_burst].mean() <= 0.35
    assert not share[~in_burst].any() and not plain["ectopic"].any()
    before = r < ev.t0_s  # the same beats up to the burst (the per-beat sizes are drawn after)
    np.testing.assert_array_equal(r[before], plain["r_time_s"].to_numpy()[: before.sum()])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("posture_rate_per_h", -1.0, "posture_rate_per_h"),
        ("exertion_rate_per_h", 11.0, "exertion_rate_per_h"),
        ("posture_delayed_fall_share", 1.5, "posture_delayed_fall_share"),
        ("event_bp_scale", 0.0, "event_bp_scale"),
        ("vasopressor_rate_per_h", 1.0, "unknown field"),
    ],
)
def test_bad_event_parameters_are_refused(field: str, value: float, message: str) -> None:
    """Out-of-range or misspelled event fields raise CohortError naming the field."""
    with pytest.raises(cohort.CohortError, match=message):
        cohort.load_spec({field: value})


def test_unknown_event_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        draw_event("sneeze", 0.0, cohort.CohortSpec(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown event kind"):
        cohort.event_effects(
            [cohort.CohortEvent("sneeze", 0.0, 1.0)], np.arange(4.0), cohort.sample_subjects(None, 1, 0)[0]
        )


def test_event_module_examples() -> None:
    """The docstring examples of bprl.cohort.events run."""
    import doctest

    from bprl.cohort import events

    result = doctest.testmod(events, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("name", ["residual_events.yaml", "pareto_events.yaml"])
def test_event_experiments_load_with_the_spec(name: str) -> None:
    """The shipped experiments on the variant validate and name the shipped spec."""
    from bprl.experiments import load_experiment

    exp = load_experiment(Path(__file__).parents[1] / "experiments" / name)
    assert exp.cohort_spec is not None and exp.cohort_spec.resolve() == SPEC_FILE.resolve()
