"""The R fiducial of wide complexes: a wide negative (paced or ventricular) complex in a positive
record gets the turning point of the complex, not the T-wave upslope at the window's edge."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import bench_features as bf
from bprl.beats import ecg_peaks


def _paced_record(fs: float) -> tuple[np.ndarray, list[float], list[float]]:
    """60 s at ``fs``: narrow positive beats every 0.8 s; every 4th beat a wide negative complex
    (depth 1.2 x the narrow R, trough 60 ms after onset, 120 ms wide) followed by a broad positive wave rising beyond the
    +-60 ms search window. Returns the signal, the narrow R times and the wide troughs (s)."""
    rng = np.random.default_rng(1)
    t = np.arange(int(60 * fs)) / fs
    x = 0.005 * rng.standard_normal(len(t))
    narrow, wide = [], []
    for k, c in enumerate(np.arange(0.5, 59.0, 0.8)):
        if k % 4 == 3:
            trough = c + 0.06
            x += -1.2 * np.exp(-0.5 * ((t - trough) / 0.025) ** 2)
            x += 0.45 * np.exp(-0.5 * ((t - trough - 0.16) / 0.06) ** 2)  # rising past +60 ms
            wide.append(trough)
        else:
            x += np.exp(-0.5 * ((t - c) / 0.01) ** 2) - 0.2 * np.exp(-0.5 * ((t - c - 0.025) / 0.008) ** 2)
            x += 0.25 * np.exp(-0.5 * ((t - c - 0.3) / 0.05) ** 2)  # T wave
            narrow.append(c)
    return x, narrow, wide


@pytest.mark.parametrize("fs", [125.0, 250.0, 500.0])
def test_wide_negative_complex_fiducial_is_its_trough(fs):
    x, narrow, wide = _paced_record(fs)
    found = ecg_peaks(x, fs)
    assert len(found) == len(narrow) + len(wide)
    err_wide = np.array([np.min(np.abs(found - w)) for w in wide])
    err_narrow = np.array([np.min(np.abs(found - c)) for c in narrow])
    assert np.max(err_narrow) < 0.004
    assert np.max(err_wide) < 0.01, f"wide complexes: worst fiducial {1000 * np.max(err_wide):.0f} ms off"


def test_ludb_95_paced_beats_found_at_every_rate():
    """LUDB 95 (ventricular pacing with AF): at 250 and 125 Hz 3 of its 4 paced beats used to land
    155-175 ms late (one FN and one FP each); now every scored beat is matched at every rate."""
    if not (bf._rhythm() / "ludb" / "RECORDS").is_file():
        pytest.skip(f"LUDB not found under {bf._rhythm()} (set BPRL_RHYTHM_DIR)")
    rec = next(r for r in bf.load_records("ludb") if r[0] == "95")
    for fs_new in (None, 250, 125):
        tp, fn, fp, _ = bf.record_counts(bf._bprl_ecg, rec, fs_new)
        assert (tp, fn, fp) == (9, 0, 0), fs_new


def test_inverted_wide_complexes_give_the_same_fiducials():
    x, _, _ = _paced_record(250.0)
    assert np.allclose(ecg_peaks(x, 250.0), ecg_peaks(-x, 250.0), atol=1e-9)
