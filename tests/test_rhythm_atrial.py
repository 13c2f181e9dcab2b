"""Atrial, RR-pattern, second-template and noise features of the rhythm classifier (bprl.beats.ecg_atrial)."""

from __future__ import annotations

import doctest

import numpy as np

from bprl.beats import ecg_atrial
from bprl.beats.ecg_atrial import (
    EXTRA_RHYTHM_FEATURE_NAMES,
    extra_rhythm_features,
    rr_pattern_features,
)
from bprl.beats.rhythm_classes import RHYTHM_FEATURE_NAMES

FS_HZ = 300.0


def _ecg(r_s: np.ndarray, duration_s: float, p_wave: bool, f_wave_mv: float, seed: int = 0) -> np.ndarray:
    """Gaussian P-QRS-T beats at ``r_s`` (P 160 ms before R when ``p_wave``), plus 6-Hz f-waves."""
    t = np.arange(int(duration_s * FS_HZ)) / FS_HZ
    x = np.zeros_like(t)
    for r in r_s:
        x += 1.0 * np.exp(-0.5 * ((t - r) / 0.012) ** 2)
        x += 0.3 * np.exp(-0.5 * ((t - r - 0.28) / 0.04) ** 2)
        if p_wave:
            x += 0.15 * np.exp(-0.5 * ((t - r + 0.16) / 0.02) ** 2)
    rng = np.random.default_rng(seed)
    phase = np.cumsum(2 * np.pi * (6.0 + 0.5 * rng.standard_normal(len(t))) / FS_HZ)
    return x + f_wave_mv * np.sin(phase) + 0.005 * rng.standard_normal(len(t))


def test_rr_pattern_doctest_and_values() -> None:
    assert doctest.testmod(ecg_atrial).failed == 0
    regular = rr_pattern_features(np.full(30, 800.0))
    assert regular["rr_mode_share"] == 1.0 and regular["rr_n_clusters"] == 1.0
    assert regular["rr_regular_run_fraction"] == 1.0 and regular["poincare_peak_share"] == 1.0
    irregular = rr_pattern_features(np.random.default_rng(1).uniform(400.0, 1200.0, 60))
    assert irregular["rr_mode_share"] < 0.4 and irregular["rr_regular_run_fraction"] < 0.2
    assert all(np.isnan(v) for v in rr_pattern_features(np.array([800.0, 810.0])).values())


def test_sinus_has_p_waves_and_af_has_f_waves() -> None:
    sinus_r = np.arange(0.5, 29.5, 0.85)
    af_r = np.cumsum(np.random.default_rng(2).uniform(0.45, 1.1, 60)) + 0.5
    af_r = af_r[af_r < 29.5]
    sinus = extra_rhythm_features(_ecg(sinus_r, 30.0, True, 0.0), FS_HZ, sinus_r)
    af = extra_rhythm_features(_ecg(af_r, 30.0, False, 0.08), FS_HZ, af_r)
    assert list(sinus) == list(EXTRA_RHYTHM_FEATURE_NAMES)
    assert sinus["p_present_fraction"] > 0.9 > 0.3 > af["p_present_fraction"]
    assert sinus["p_beat_corr_regular"] > 0.9
    assert af["tq_fwave_rms_ratio"] > 2 * sinus["tq_fwave_rms_ratio"]
    assert sinus["bsqi"] > 0.95 and sinus["second_template_share"] == 0.0
    assert af["rr_regular_run_fraction"] < sinus["rr_regular_run_fraction"]


def test_rhythm_model_inputs_include_extra_features() -> None:
    assert set(EXTRA_RHYTHM_FEATURE_NAMES) <= set(RHYTHM_FEATURE_NAMES)
    assert len(set(RHYTHM_FEATURE_NAMES)) == len(RHYTHM_FEATURE_NAMES)


def test_short_input_gives_nan_not_errors() -> None:
    r = np.array([0.5, 1.3])
    f = extra_rhythm_features(_ecg(r, 2.0, True, 0.0), FS_HZ, r)
    assert np.isnan(f["p_present_fraction"]) and np.isnan(f["rr_mode_share"])
