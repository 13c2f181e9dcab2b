"""Small physiologically shaped replay tables for tests, examples and benchmarks (no records needed).

>>> tables = synthetic_replay_tables(n_subjects=2, n_steps=30, seed=1)
>>> sorted(tables), len(tables["s000"])
(['s000', 's001'], 30)
>>> {"pat_foot_ms", "est_sbp_mmhg", "ref_sbp_mmhg"} <= set(tables["s001"].columns)
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bprl.schemas import REPLAY_FEATURES

__all__ = ["synthetic_replay_tables"]


def _true_bp(rng: np.random.Generator, h: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(baseline SBP, SBP, DBP) trajectories, mmHg: baseline plus slow oscillation and random walk."""
    n = len(h)
    sbp0, dbp0 = rng.normal(125, 12), rng.normal(72, 8)
    walk = np.cumsum(rng.normal(0, 0.6, n))
    osc = 6 * np.sin(2 * np.pi * h / rng.uniform(0.5, 2.0) + rng.uniform(0, 6.3))
    return sbp0, sbp0 + osc + walk, dbp0 + 0.6 * (osc + walk)


def _estimate(
    rng: np.random.Generator, pat: np.ndarray, h: np.ndarray, bias_sd_mmhg: float, drift_sd_mmhg_per_h: float
) -> tuple[np.ndarray, np.ndarray]:
    """Estimator SBP/DBP read from PAT with a per-subject bias and a linear bias drift, mmHg."""
    n = len(pat)
    bias_s = rng.normal(0, bias_sd_mmhg) + rng.normal(0, drift_sd_mmhg_per_h) * h
    bias_d = 0.6 * bias_s + rng.normal(0, 3)
    est_s = 120 - 2.0 * (pat - 250) + bias_s + rng.normal(0, 2, n)
    est_d = 70 + 0.6 * (est_s - bias_s - 120) + bias_d + rng.normal(0, 1.5, n)
    return est_s, est_d


def _reference(
    rng: np.random.Generator, sbp: np.ndarray, dbp: np.ndarray, gap_share: float, ref_gap_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reference SBP/DBP with scattered NaN (``gap_share``) and one contiguous gap (a flushed line)."""
    n = len(sbp)
    ref_s = sbp + rng.normal(0, 1, n)
    ref_d = dbp + rng.normal(0, 1, n)
    gap = rng.random(n) < gap_share
    if ref_gap_steps > 0 and n > ref_gap_steps + 1:  # one contiguous gap, as from a flushed line
        g0 = int(rng.integers(0, n - ref_gap_steps))
        ref_s[g0 : g0 + ref_gap_steps] = np.nan
        ref_d[g0 : g0 + ref_gap_steps] = np.nan
    ref_s[gap] = np.nan
    ref_d[gap] = np.nan
    return ref_s, ref_d


def _subject_table(
    i: int,
    seed: int,
    n: int,
    hop_s: float,
    bias_sd_mmhg: float,
    drift_sd_mmhg_per_h: float,
    gap_share: float,
    ref_gap_steps: int,
) -> pd.DataFrame:
    """The replay table of synthetic subject ``i`` (random draws in a fixed order, by ``[seed, i]``)."""
    rng = np.random.default_rng([seed, i])
    t0 = np.arange(n) * hop_s
    t1 = t0 + hop_s
    h = t1 / 3600.0
    sbp0, sbp, dbp = _true_bp(rng, h)
    pat = 250 - 0.5 * (sbp - 120) + rng.normal(0, 1, n)
    hr = 72 + 0.3 * (sbp - sbp0) + rng.normal(0, 2, n)
    est_s, est_d = _estimate(rng, pat, h, bias_sd_mmhg, drift_sd_mmhg_per_h)
    ref_s, ref_d = _reference(rng, sbp, dbp, gap_share, ref_gap_steps)
    fgap = rng.random(n) < gap_share
    df = pd.DataFrame(
        {
            "subject_id": f"s{i:03d}",
            "record_id": f"r{i:03d}",
            "step": np.arange(n, dtype=np.int64),
            "t_start_s": t0,
            "t_end_s": t1,
            "pat_foot_ms": pat,
            "pat_maxslope_ms": pat + 18,
            "pat_peak_ms": pat + 140 + rng.normal(0, 3, n),
            "rr_ms": 60000.0 / hr,
            "hr_bpm": hr,
            "ppg_amp": np.abs(rng.normal(1.0, 0.1, n)),
            "ppg_rise_time_ms": rng.normal(150, 10, n),
            "ppg_width_ms": rng.normal(300, 20, n),
            "ppg_stiffness_index": rng.normal(7, 1, n),
            "sqi_ecg": rng.uniform(0.8, 1.0, n),
            "sqi_ppg": rng.uniform(0.7, 1.0, n),
            "n_beats": np.round(hr * hop_s / 60).astype(np.int64),
            "valid_beat_share": rng.uniform(0.8, 1.0, n),
            "ref_sbp_mmhg": ref_s,
            "ref_dbp_mmhg": ref_d,
            "ref_map_mmhg": (ref_s + 2 * ref_d) / 3,
            "ref_valid_share": np.where(np.isnan(ref_s), 0.0, 1.0),
            "est_sbp_mmhg": est_s,
            "est_dbp_mmhg": est_d,
        }
    )
    feat_cols = [c for c in REPLAY_FEATURES if c not in ("n_beats",)]
    df.loc[fgap, feat_cols] = np.nan
    df.loc[fgap, ["est_sbp_mmhg", "est_dbp_mmhg"]] = np.nan
    return df


def synthetic_replay_tables(
    n_subjects: int = 4,
    n_steps: int = 120,
    seed: int = 0,
    hop_s: float = 30.0,
    bias_sd_mmhg: float = 10.0,
    drift_sd_mmhg_per_h: float = 4.0,
    gap_share: float = 0.05,
    ref_gap_steps: int = 4,
) -> dict[str, pd.DataFrame]:
    """Small physiologically shaped replay tables (with estimator columns) for tests and benchmarks.

    Per subject: a true BP trajectory (baseline plus slow oscillation and random walk), PAT that
    falls with SBP (about -0.5 ms/mmHg), HR, PPG morphology and quality; an estimator that reads BP
    from PAT with a per-subject bias (SD ``bias_sd_mmhg``) and a linear bias drift (SD
    ``drift_sd_mmhg_per_h`` per hour); NaN gaps in the reference and the features (``gap_share`` of
    the rows each) plus one contiguous reference gap of ``ref_gap_steps`` steps (a flushed arterial
    line). Deterministic by ``seed``.

    Args:
        n_subjects: number of subjects (ids ``s000``, ``s001``, ...).
        n_steps: rows per subject.
        seed: random seed (subject i draws from ``[seed, i]``).
        hop_s: window length and hop, s.
        bias_sd_mmhg: SD of the per-subject estimator bias, mmHg.
        drift_sd_mmhg_per_h: SD of the estimator bias drift, mmHg per hour.
        gap_share: share of rows with a NaN reference, and of rows with NaN features and estimate.
        ref_gap_steps: length of the contiguous reference gap, steps (0: none).

    Returns:
        subject id -> replay table.
    """
    return {
        f"s{i:03d}": _subject_table(
            i, seed, n_steps, hop_s, bias_sd_mmhg, drift_sd_mmhg_per_h, gap_share, ref_gap_steps
        )
        for i in range(n_subjects)
    }
