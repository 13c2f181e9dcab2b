"""Smoke test of the noise stress benchmark: one record, two SNRs, the NSTDB protocol and scaling."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("neurokit2")

from benchmarks import bench_noise


def test_protocol_blocks():
    fs = 10.0
    m = bench_noise.noisy_mask(int(16 * 60 * fs), fs)
    t = np.arange(len(m)) / fs
    assert not m[t < 300].any()
    assert m[(t >= 300) & (t < 420)].all() and not m[(t >= 420) & (t < 540)].any()
    assert m[(t >= 540) & (t < 660)].all()


def test_snr_scaling_and_determinism(physionet_dir):
    x, fs, ref = bench_noise.load(physionet_dir, "100", minutes=10)
    noise = bench_noise.make_noise("em", len(x), fs, 3)
    assert np.array_equal(noise, bench_noise.make_noise("em", len(x), fs, 3))
    y = bench_noise.add_noise(x, fs, ref, noise, 6.0)
    mask = bench_noise.noisy_mask(len(x), fs)
    assert np.array_equal(y[~mask], x[~mask])
    s = bench_noise.signal_power(x, fs, ref)
    n = bench_noise.noise_power(y - x, mask, fs)
    assert 10 * np.log10(s / n) == pytest.approx(6.0, abs=1e-6)


def test_run_one_record_two_snrs(physionet_dir):
    res = bench_noise.run(physionet_dir, ("100",), (24.0, -6.0), ("ma",), minutes=10)
    assert set(res) == {("clean", np.inf), ("ma", 24.0), ("ma", -6.0)}
    for acc in res.values():
        for det in ("bprl", "nk"):
            se, ppv = bench_noise.se_ppv(acc[det])
            assert 0.0 <= se <= 1.0 and 0.0 <= ppv <= 1.0
    clean_se, _ = bench_noise.se_ppv(res[("clean", np.inf)]["bprl"])
    assert clean_se > 0.99
