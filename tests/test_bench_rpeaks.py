"""Scoring of the per-record R-peak benchmark (benchmarks/bench_features.py): beat matching with a
scored window (LUDB's edge trimming) on tiny synthetic cases, and the LUDB reader when present."""

from __future__ import annotations

import numpy as np
import pytest
from wfdb import processing

from benchmarks import bench_features as bf


def test_counts_without_window_are_compare_annotations():
    ref = np.array([100, 300, 500, 700, 900])
    det = np.array([102, 310, 460, 640, 905, 1000])
    tp, fn, fp, errs = bf.beat_counts(ref, det, 30)
    c = processing.compare_annotations(ref, det, 30)
    assert (tp, fn, fp) == (c.tp, c.fn, c.fp) == (3, 2, 3)
    assert errs.tolist() == [2, 10, 5]


def test_window_ignores_beats_outside_and_keeps_border_matches():
    ref = np.array([100, 300, 500, 700, 900])
    # 295 / 510 / 720: inside, matched; 250: inside, unmatched -> FP; 50 and 960: outside,
    # unmatched; 890 matches 900, both outside the window: ignored; 100 and 900 are not scored
    det = np.array([50, 250, 295, 510, 720, 890, 960])
    tp, fn, fp, errs = bf.beat_counts(ref, det, 30, window=(200, 800))
    assert (tp, fn, fp) == (3, 0, 1)
    assert errs.tolist() == [-5, 10, 20]
    # a scored reference whose detection fell just outside the window is a TP
    tp, fn, fp, _ = bf.beat_counts(np.array([210, 500]), np.array([195, 500]), 30, window=(205, 800))
    assert (tp, fn, fp) == (2, 0, 0)
    # a detection inside matched to a reference outside is neither a TP nor an FP
    tp, fn, fp, _ = bf.beat_counts(np.array([195, 500]), np.array([210, 500]), 30, window=(205, 800))
    assert (tp, fn, fp) == (1, 0, 0)


def test_empty_inputs():
    assert bf.beat_counts(np.array([], int), np.array([10, 20]), 5)[:3] == (0, 0, 2)
    assert bf.beat_counts(np.array([10, 20]), np.array([], int), 5)[:3] == (0, 2, 0)
    assert bf.beat_counts(np.array([10, 20]), np.array([], int), 5, window=(15, 30))[:3] == (0, 1, 0)


def test_ludb_windows_inside_the_annotated_stretch():
    if not (bf._rhythm() / "ludb" / "RECORDS").is_file():
        pytest.skip(f"LUDB not found under {bf._rhythm()} (set BPRL_RHYTHM_DIR)")
    recs = bf.load_records("ludb")
    assert len(recs) == 150
    for _name, x, fs, ref, (lo, hi) in recs:
        assert fs == 500 and x.size == 5000
        assert bf.LUDB_EDGE_S * fs <= lo < hi <= x.size - 1 - bf.LUDB_EDGE_S * fs
        assert ref.size >= 4 and np.all(np.diff(ref) > 0)
