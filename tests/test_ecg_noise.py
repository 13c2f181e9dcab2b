"""R peaks in noise and in irregular rhythm: the signal-quality floor of the detection threshold
and the looser noise-pruning rule held back in AF."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import bench_features as bf
from benchmarks import bench_noise as bn
from bprl.beats import ecg_peaks


@pytest.mark.parametrize(("kind", "snr_db", "min_ppv"), [("ma", 12.0, 0.99), ("em", 12.0, 0.96)])
def test_noise_stress_ppv(physionet_dir, kind, snr_db, min_ppv):
    """MIT-BIH 100 and 103, first 15 min, NSTDB-style noise blocks (bench_noise): the noise floor
    keeps false beats out (before: muscle-like noise at 12 dB PPV 0.969, electrode motion 0.952;
    after 0.999 and 0.969) while Se stays >= 0.99."""
    tot = np.zeros(3, dtype=np.int64)
    for i, name in enumerate(("100", "103")):
        x, fs, ref = bn.load(physionet_dir, name, 15.0)
        noise = bn.make_noise(kind, len(x), fs, bn.SEED * 1000 + 10 * i + bn.KINDS.index(kind))
        y = bn.add_noise(x, fs, ref, noise, snr_db)
        tot += bn.score(ref, ecg_peaks(y, fs, return_times=False), fs)
    se, ppv = bn.se_ppv(tot)
    print(f"{kind} {snr_db:g} dB: Se {se:.4f} PPV {ppv:.4f} {tot}")
    assert se >= 0.99
    assert ppv >= min_ppv


def test_ludb_109_af_beat_kept_at_every_rate():
    """LUDB 109 (AF, aberrant conduction): a small conducted beat splitting an irregular RR pair
    (0.47 + 0.40 s) used to be pruned as noise at every rate; in an irregular rhythm only the
    strict pruning rule applies, and every scored beat is found."""
    if not (bf._rhythm() / "ludb" / "RECORDS").is_file():
        pytest.skip(f"LUDB not found under {bf._rhythm()} (set BPRL_RHYTHM_DIR)")
    rec = next(r for r in bf.load_records("ludb") if r[0] == "109")
    for fs_new in (None, 250, 125):
        tp, fn, fp, _ = bf.record_counts(bf._bprl_ecg, rec, fs_new)
        assert (tp, fn, fp) == (15, 0, 0), fs_new
