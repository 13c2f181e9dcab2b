"""The gating benchmark's calibrated-error arithmetic (``benchmarks/bench_gating.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.bench_gating import MODES, calibrated_mae, estimator_table


def _subject(n: int = 120, bias_mmhg: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sbp = 120.0 + np.cumsum(rng.normal(0.0, 0.5, n))
    s = {"sbp": sbp, "af_true": np.zeros(n), "af_detected": np.zeros(n)}
    for m in MODES:
        s[f"est_{m}"] = sbp + bias_mmhg  # an estimate that tracks perfectly, with a constant bias
    return s


def test_an_offset_recalibrated_perfect_tracker_has_only_the_cuff_error() -> None:
    series = [_subject(bias_mmhg=12.0, seed=k) for k in range(3)]
    perfect = calibrated_mae(series, "est_rr", seed=0, cuff_sd_mmhg=0.0, slope=1.0)
    assert perfect == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)  # the bias is calibrated away
    noisy = calibrated_mae(series, "est_rr", seed=0, cuff_sd_mmhg=5.0, slope=1.0, n_draws=400)
    # each reading's error persists until the next: the MAE is E|N(0, 5)| = 5 sqrt(2 / pi)
    assert np.mean(noisy) == pytest.approx(5.0 * math.sqrt(2.0 / math.pi), rel=0.05)


def test_a_tracker_that_lags_is_worse_than_one_that_tracks() -> None:
    s = _subject(seed=1)
    s["est_none"] = np.concatenate([[s["sbp"][0]] * 10, s["sbp"][:-10]])  # 10 steps late
    worse, better = (
        calibrated_mae([s], f"est_{m}", seed=0, cuff_sd_mmhg=0.0, slope=1.0)[0] for m in ("none", "rr")
    )
    assert better == pytest.approx(0.0, abs=1e-9) and worse > 0.5


def test_the_estimator_table_has_a_row_per_mode_and_signed_differences() -> None:
    series = []
    for k in range(6):
        s = _subject(seed=k)
        s["est_none"] = s["sbp"] + np.random.default_rng(100 + k).normal(0.0, 4.0, len(s["sbp"]))
        series.append(s)
    lines = estimator_table(series, seed=0).splitlines()
    assert len(lines) == 2 + len(MODES)
    rows = {line.split("|")[1].strip(): line for line in lines[2:]}
    assert set(rows) == set(MODES)
    rr_cells = [c.strip() for c in rows["rr"].split("|")[1:-1]]
    assert float(rr_cells[3]) == pytest.approx(0.0, abs=1e-9)  # rr tracks perfectly with a perfect cuff
    assert rr_cells[4].startswith("-")  # rr minus none is negative: gating "helps" here
