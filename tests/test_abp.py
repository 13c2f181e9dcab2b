"""Tests of the ABP beat rules (bprl.beats.abp): flush, zeroing, damping and saturation caught by
shape and context, real beats in irregular rhythm kept; on synthetic pressure and on the real
MIMIC-IV segments of p10020306 (flushes, zeroed and damped lines, AF)."""

from __future__ import annotations

import numpy as np
import pytest

from bprl.beats import ABP_REJECT_REASONS, abp_beats, ecg_peaks
from bprl.sources import read_record

FS = 125.0
PAT_S = 0.2  # R peak -> pressure upstroke


def _abp(onsets: np.ndarray, dbp: np.ndarray, pp: np.ndarray, duration_s: float) -> np.ndarray:
    """Arterial-like pressure: per beat a 100 ms raised-cosine upstroke, exponential run-off with a
    dicrotic bump, falling back to the next beat's DBP at its onset (continuous, mmHg)."""
    t = np.arange(int(duration_s * FS)) / FS
    y = np.full_like(t, dbp[0])
    ends = np.append(onsets[1:], duration_s)

    def shape(u: np.ndarray) -> np.ndarray:
        rise = 0.5 * (1 - np.cos(np.pi * np.clip(u, 0, 0.1) / 0.1))
        fall = np.exp(-np.clip(u - 0.1, 0, None) / 0.3) + 0.12 * np.exp(-(((u - 0.33) / 0.04) ** 2))
        return np.where(u < 0.1, rise, fall)

    for o, e, d, p, d_next in zip(onsets, ends, dbp, pp, np.append(dbp[1:], dbp[-1]), strict=True):
        m = (t >= o) & (t < e)
        u = t[m] - o
        g = shape(u) - shape(np.array([e - o]))[0] * u / (e - o)
        y[m] = d + (d_next - d) * u / (e - o) + p * g / g.max()
    return y


def _regular(duration_s: float = 60.0, rr: float = 0.8, dbp: float = 70.0, pp: float = 45.0):
    onsets = np.arange(1.0, duration_s - 0.5, rr)
    n = len(onsets)
    return onsets, _abp(onsets, np.full(n, dbp), np.full(n, pp), duration_s)


def _inside(onsets: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (onsets >= lo) & (onsets < hi)


def test_irregular_rhythm_beats_are_kept():
    """AF-like rhythm: RR 0.4-1.2 s at random, pulse pressure following the filling time (8-60 mmHg,
    some beats below the old fixed 10 mmHg floor), DBP varying beat to beat: >= 95 % kept."""
    rng = np.random.default_rng(7)
    rr = rng.uniform(0.4, 1.2, 150)
    onsets = 1.0 + np.concatenate([[0.0], np.cumsum(rr[:-1])])
    pp = 8.0 + 52.0 * (rr - 0.4) / 0.8 + rng.normal(0, 3, len(rr))
    dbp = 65.0 + 10.0 * (1.2 - rr) + rng.normal(0, 2, len(rr))
    y = _abp(onsets, dbp, pp, onsets[-1] + 1.5)
    b = abp_beats(y, FS, onsets - PAT_S)
    core = b.iloc[2:-2]
    assert core["valid"].mean() >= 0.95, core["reject_reason"].value_counts().to_dict()
    small = (core["sbp_mmhg"] - core["dbp_mmhg"]) < 10.0
    assert small.any() and core["valid"][small].mean() >= 0.9  # real small beats are no longer "damped"


def test_square_wave_flush_is_rejected_as_flush():
    """A 5-s fast flush: square wave to 200 mmHg (SBP below the 250 mmHg ceiling) with small pulses riding on it."""
    onsets, y = _regular()
    t = np.arange(len(y)) / FS
    on = (t >= 20.0) & (t < 25.0)
    y[on] = 200.0 + 0.1 * (y[on] - 70.0)
    b = abp_beats(y, FS, onsets - PAT_S)
    hit = _inside(onsets, 19.9, 25.0)
    assert set(b["reject_reason"][hit]) <= {"flush", "flat"} and (b["reject_reason"][hit] == "flush").any()
    assert b["valid"][_inside(onsets, 2.0, 17.0) | _inside(onsets, 29.0, 58.0)].mean() >= 0.95


def test_damping_ramp_rejected_with_stable_mean():
    """Pulse pressure falls from 50 to 8 mmHg over 40 s while MAP stays at ~85 mmHg: the damped
    end is rejected as ``damped``, the undamped start kept."""
    onsets = np.arange(1.0, 99.0, 0.8)
    pp = np.interp(onsets, [0, 30, 70, 100], [50, 50, 8, 8])
    dbp = 85.0 - pp / 3.0
    y = _abp(onsets, dbp, pp, 100.0)
    b = abp_beats(y, FS, onsets - PAT_S)
    assert (b["reject_reason"][_inside(onsets, 65.0, 97.0)] == "damped").all()
    assert b["valid"][_inside(onsets, 3.0, 40.0)].all()


def test_zeroed_line_rejected():
    """Transducer opened to air: a noisy line near 0 mmHg (range > 2 mmHg) for 10 s."""
    onsets, y = _regular()
    t = np.arange(len(y)) / FS
    zero = (t >= 20.0) & (t < 30.0)
    y[zero] = np.random.default_rng(1).normal(0.0, 1.0, zero.sum())
    b = abp_beats(y, FS, onsets - PAT_S)
    assert set(b["reject_reason"][_inside(onsets, 20.0, 29.5)]) <= {"zeroed", "flat"}
    assert (b["reject_reason"][_inside(onsets, 20.0, 29.5)] == "zeroed").any()


def test_saturation_uses_a_local_extreme():
    """Tops clipped at 150 mmHg for 20 s while the record's global maximum (a 1-s spike to 300 mmHg
    a minute later) lies elsewhere: the clipped beats are ``saturated``, the others kept."""
    onsets = np.arange(1.0, 89.0, 0.8)
    y = _abp(onsets, np.full(len(onsets), 75.0), np.full(len(onsets), 95.0), 90.0)
    t = np.arange(len(y)) / FS
    clip = (t >= 20.0) & (t < 40.0)
    y[clip] = np.minimum(y[clip], 150.0)
    y[(t >= 80.0) & (t < 81.0)] = 300.0
    b = abp_beats(y, FS, onsets - PAT_S)
    assert (b["reject_reason"][_inside(onsets, 25.5, 34.5)] == "saturated").all()
    assert b["valid"][_inside(onsets, 2.0, 17.0) | _inside(onsets, 45.0, 88.0)].mean() >= 0.95


# Real MIMIC-IV segments of p10020306 (mimic4wdb-demo), artefact stretches located by eye on the
# pressure (times of the R peaks, s): flush square waves, zeroed / closed lines, damped lines.
SEGMENTS = "mimic4wdb-demo/p10020306/83404654/83404654_{}"
ARTEFACTS = {
    "0005": [(0.0, 3057.3), (3066.3, 3109.5)],  # 50 min flat ~27 mmHg, junk, flush to 215 mmHg, zero, flush
    "0006": [(590.0, 602.5)],  # flush 300 mmHg with a drop below 0
    "0012": [(0.0, 50.7)],  # damped line (PP ~ 10-15 mmHg, MAP ~ 80), then a flush to 300 mmHg
    "0020": [(0.0, 1e9)],  # zero
    "0022": [(0.0, 64.0), (464.5, 473.0)],  # zero, flush, damped line, zero, flush; junk at 465-472 s
}
FLUSHES = {
    "0005": [(3049.5, 3057.3)],
    "0006": [(591.0, 602.0)],
    "0012": [(46.0, 50.5)],
    "0022": [(62.3, 64.0)],
}
CLEAN = {
    "0006": [(0.0, 588.0), (604.0, 1e9)],  # AF: irregular RR, beat-to-beat pulse pressure
    "0012": [(51.0, 1e9)],
    "0017": [(0.0, 1e9)],
    "0022": [(85.0, 160.0)],  # from ~166 s the pulse pressure falls (damped from ~200 s)
}


@pytest.fixture(scope="module")
def segments(physionet_dir):
    out = {}
    for seg in sorted(set(ARTEFACTS) | set(CLEAN)):
        rec = read_record(physionet_dir / SEGMENTS.format(seg))
        ecg, abp = rec.channel("ecg"), rec.channel("abp")
        r = ecg_peaks(ecg.samples, ecg.fs_hz)
        out[seg] = (r, abp_beats(abp.samples, abp.fs_hz, r))
    return out


def _in(r: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
    return np.any([(r >= a) & (r < b) for a, b in spans], axis=0)


@pytest.mark.parametrize("seg", sorted(ARTEFACTS))
def test_real_artefact_stretches_rejected_with_reason(segments, seg):
    r, b = segments[seg]
    art = _in(r, ARTEFACTS[seg])
    assert art.sum() > 5
    assert not b["valid"][art].any(), r[art & b["valid"].to_numpy()]
    assert set(b["reject_reason"][art]) <= set(ABP_REJECT_REASONS)
    if seg in FLUSHES:
        fl = _in(r, FLUSHES[seg])
        assert (b["reject_reason"][fl] == "flush").mean() >= 0.5, b["reject_reason"][fl].value_counts()


@pytest.mark.parametrize("seg", sorted(CLEAN))
def test_real_clean_beats_kept(segments, seg):
    """Clean stretches (AF in ``_0006``): >= 95 % kept, or 90 % in the short ones next to a flush;
    rejections there are beats without a pulse (``no_pulse``: PP < 2.5 mmHg after a short RR)."""
    r, b = segments[seg]
    clean = _in(r, CLEAN[seg])
    kept = b["valid"][clean].mean()
    assert kept >= (0.95 if clean.sum() > 200 else 0.9), b["reject_reason"][clean].value_counts().to_dict()


def test_real_accepted_beats_are_arterial(segments):
    """No accepted beat on any real segment sits on a flush plateau (DBP > 140 or SBP > 250 mmHg)."""
    for _, b in segments.values():
        ok = b[b["valid"]]
        assert (ok["dbp_mmhg"] <= 140.0).all() and (ok["sbp_mmhg"] <= 250.0).all()
