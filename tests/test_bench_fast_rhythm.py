"""The fast-rhythm R-peak benchmark: its band scoring and a one-subject run."""

from __future__ import annotations

import numpy as np

from benchmarks import bench_fast_rhythm as bfr


def test_score_bands_counts_each_band_and_false_beats():
    fs = 250.0
    ref = np.array([100, 300, 500, 700, 900])
    hr = np.array([60.0, 110.0, 140.0, 170.0, 170.0])
    det = np.array([102, 310, 505, 1200])  # the 4th reference beat missed, one detection far away
    out = bfr.score_bands(ref, hr, det, fs)
    assert out[:-1].tolist() == [[1, 1], [1, 1], [1, 1], [2, 0]]
    assert out[-1].tolist() == [4, 1]


def test_one_virtual_subject_every_detector():
    acc, fast = bfr.run_virtual(1)
    assert set(acc) == set(bfr.DETECTORS)
    n_ref = acc["bprl"][:-1, 0].sum()
    assert n_ref > 15_000  # 4 h of beats
    for a in acc.values():
        assert (a[:-1, 0] == acc["bprl"][:-1, 0]).all()  # the same reference beats for every detector
        assert a[:-1, 1].sum() / n_ref > 0.95
    assert 0.0 <= fast <= 1.0
