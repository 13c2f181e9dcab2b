"""Pacemaker spikes: found in paced leads only, and kept out of the R fiducial and the QRS onset."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import bench_delineation as bd
from benchmarks import bench_features as bf
from bprl.beats import ecg_delineate, ecg_peaks
from bprl.beats.filters import signal_fill_nan
from bprl.beats.pacing import ecg_pacing_spikes, remove_pacing_spikes


def _paced(
    n_beats: int = 12, fs_hz: float = 500.0, spike: float = 0.8
) -> tuple[np.ndarray, np.ndarray, float]:
    """Synthetic paced lead: per beat a one-sample spike 60 ms before a wide QRS (an R of 1 mV,
    Gaussian SD 12 ms, then an S of -0.4 mV 40 ms later) and a T wave."""
    n = int((n_beats + 1) * fs_hz)
    t = np.arange(n) / fs_hz
    x = np.zeros(n)
    r_s = np.arange(1, n_beats + 1, dtype=float) - 0.3
    for r in r_s:
        x += np.exp(-0.5 * ((t - r) / 0.012) ** 2) - 0.4 * np.exp(-0.5 * ((t - r - 0.04) / 0.012) ** 2)
        x += 0.25 * np.exp(-0.5 * ((t - r - 0.3) / 0.04) ** 2)
        x[round((r - 0.06) * fs_hz)] += spike
    return x, r_s, fs_hz


def test_spikes_found_and_removed_in_a_paced_lead():
    x, r_s, fs = _paced()
    spikes = ecg_pacing_spikes(x, fs, r_s)
    assert len(spikes) == len(r_s)
    np.testing.assert_allclose(spikes, r_s - 0.06, atol=1.5 / fs)
    clean = remove_pacing_spikes(x, fs, r_s)
    no_spikes, _, _ = _paced(spike=0.0)
    assert np.abs(clean - no_spikes).max() < 1e-3  # the spikes are gone, the waves kept
    # the R fiducial is the R wave, never the spike (the detector sees the spikes too), and the
    # QRS onset lies after the spike
    r = ecg_peaks(x, fs)
    assert len(r) == len(r_s)
    np.testing.assert_allclose(r, r_s, atol=0.002)
    on = ecg_delineate(x, fs, r_times_s=r)["qrs_onset_s"].to_numpy()
    assert np.isfinite(on).all() and (on > spikes + 0.005).all() and (on < r_s).all()


def test_unpaced_leads_are_left_alone():
    x, r_s, fs = _paced(spike=0.0)
    assert len(ecg_pacing_spikes(x, fs, r_s)) == 0
    assert remove_pacing_spikes(x, fs, r_s) is x
    # a single artefact spike in an unpaced lead is not pacing
    y = x.copy()
    y[int(3.1 * fs)] += 0.8
    assert len(ecg_pacing_spikes(y, fs, r_s)) == 0


def test_mitdb_and_virtual_leads_have_no_spikes(physionet_dir, tiny_cohort):
    import wfdb

    from bprl.sources import read_record

    for name in ("100", "105"):
        rec = wfdb.rdrecord(str(physionet_dir / "mitdb" / name), channels=[0], sampto=360 * 300)
        x = rec.p_signal[:, 0]
        assert len(ecg_pacing_spikes(x, rec.fs, ecg_peaks(x, rec.fs))) == 0, name
    for hea in sorted((tiny_cohort / "waves").rglob("*.hea"))[:3]:
        ecg = read_record(hea).channel("ecg")
        filled, _ = signal_fill_nan(ecg.samples)
        assert len(ecg_pacing_spikes(filled, ecg.fs_hz, ecg_peaks(filled, ecg.fs_hz))) == 0, hea.name


def test_ludb_paced_records_onset_after_the_spike():
    """LUDB 34 and 74 (ventricular pacing, 500 Hz, lead II): the spike used to be the QRS onset
    (and in 74 the R fiducial): mean error -32.0 and -32.9 ms against the cardiologists' onset.
    Now R lies on the paced complex and every onset after the spike: -3.4 ± 3.7 and +12.0 ± 18.0."""
    if not (bf._rhythm() / "ludb" / "RECORDS").is_file():
        pytest.skip(f"LUDB not found under {bf._rhythm()} (set BPRL_RHYTHM_DIR)")
    import wfdb

    for name in ("34", "74"):
        path = bf._rhythm() / "ludb" / "data" / name
        rec = wfdb.rdrecord(str(path), channel_names=["ii"])
        x, fs = rec.p_signal[:, 0], float(rec.fs)
        r = ecg_peaks(x, fs)
        spikes = ecg_pacing_spikes(x, fs, r)
        assert len(spikes) >= 0.8 * len(r), name
        d = ecg_delineate(x, fs, r_times_s=r)
        on = d["qrs_onset_s"].to_numpy()
        prev_spike = spikes[np.clip(np.searchsorted(spikes, r) - 1, 0, None)]
        ok = np.isfinite(on)
        assert ok.mean() >= 0.8, name
        assert (on[ok] > prev_spike[ok] + 0.004).all(), name  # past the spike and its blanked span
        ann = wfdb.rdann(str(path), "ii")
        ref = bd._in_s(bd.parse_wave_marks(ann.sample, ann.symbol), fs)
        err = bd.counts(ref, [bd.aligned(ref, bd.as_bounds(d))])["qrs_onset"][3]
        print(
            f"LUDB {name} lead II QRS onset: {np.mean(err):+.1f} ± {np.std(err):.1f} ms over {len(err)} beats"
        )
        assert len(err) >= 7 and abs(np.mean(err)) < 20.0, name


def test_ludb_leads_found_paced():
    """Every LUDB lead (150 records x 12): the leads found paced against the records' own
    'Cardiac pacing' entry in ludb.csv. Found in 39 of the 84 leads of the 7 paced records
    (the small bipolar spikes of 90, 93 and 111 in none) and in 1 of the 1716 leads of the 143
    unpaced records (43, V2)."""
    if not (bf._rhythm() / "ludb" / "ludb.csv").is_file():
        pytest.skip(f"LUDB not found under {bf._rhythm()} (set BPRL_RHYTHM_DIR)")
    import pandas as pd
    import wfdb

    info = pd.read_csv(bf._rhythm() / "ludb" / "ludb.csv").set_index("ID")
    paced = {
        int(i) for i, v in info["Cardiac pacing"].items() if isinstance(v, str) and "pacing" in v.lower()
    }
    found: dict[bool, list[str]] = {True: [], False: []}
    for rid in info.index:
        rec = wfdb.rdrecord(str(bf._rhythm() / "ludb" / "data" / str(rid)))
        for k, lead in enumerate(rec.sig_name):
            x = rec.p_signal[:, k]
            if len(ecg_pacing_spikes(x, rec.fs, ecg_peaks(x, rec.fs))):
                found[int(rid) in paced].append(f"{rid}:{lead}")
    print(f"paced records {sorted(paced)}: {len(found[True])} of {12 * len(paced)} leads found paced;")
    print(f"unpaced records: {len(found[False])} of {12 * (len(info) - len(paced))} leads: {found[False]}")
    assert len(paced) == 7
    assert len(found[True]) >= 36
    assert len(found[False]) <= 2
