"""Resampling statistics of the evaluation: subject bootstrap, percentile intervals, IQM over seeds.

* :func:`bootstrap_subjects`: percentile bootstrap intervals of ME, SD and MAE,
  resampling *subjects* (each with all its pairs) with replacement.
* :func:`iqm` and :func:`aggregate_seeds`: mean and interquartile mean (as in rliable)
  of one score per seed, with percentile bootstrap intervals over seeds.
* :func:`as_float_array` and :func:`percentile_interval`: the small helpers the other
  modules of :mod:`bprl.evaluation` share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from bprl.errors import EvaluationError


def as_float_array(x: np.ndarray | Sequence[float]) -> np.ndarray:
    """``x`` as a float NumPy array (no copy when it already is one).

    Args:
        x: numbers (any unit).

    Returns:
        ``np.asarray(x, dtype=float)``.

    >>> as_float_array([1, 2]).dtype
    dtype('float64')
    """
    return np.asarray(x, dtype=float)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Two-sided percentile interval of the finite ``samples`` (NaN, NaN when none are finite).

    Args:
        samples: bootstrap replicates of a statistic (its unit).
        confidence: coverage in ``(0, 1)``, e.g. 0.95 for the 2.5th and 97.5th percentiles.

    Returns:
        ``(lo, hi)`` by linear interpolation (:func:`numpy.percentile`).

    >>> percentile_interval(np.array([1.0, 2.0, np.nan, 3.0, 4.0, 5.0]), 0.5)  # 25th, 75th of 1..5
    (2.0, 4.0)
    """
    s = samples[np.isfinite(samples)]
    if s.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(s, [alpha, 100.0 - alpha])
    return float(lo), float(hi)


def _check_pairs(
    err_mmhg: np.ndarray | Sequence[float], subject_ids: np.ndarray | Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Errors and subject ids of the finite errors; :class:`EvaluationError` if their lengths differ."""
    e = as_float_array(err_mmhg)
    sid = np.asarray(subject_ids).astype(str)
    if e.shape != sid.shape:
        raise EvaluationError(f"bootstrap_subjects: {e.size} errors but {sid.size} subject ids")
    ok = np.isfinite(e)
    return e[ok], sid[ok]


def _resampled_sums(e: np.ndarray, sid: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Pooled ``(n, sum, sum of squares, sum of |e|)`` of each subject resample, shape ``(n_resamples, 4)``.

    Each resample draws as many subjects as there are with ``np.random.default_rng(seed)``;
    the per-subject sums are pooled with one matrix product.
    """
    _, inv = np.unique(sid, return_inverse=True)
    n_subj = int(inv.max()) + 1
    per = np.zeros((n_subj, 4))  # n, sum, sum of squares, sum of |e|
    np.add.at(per, inv, np.column_stack([np.ones_like(e), e, e * e, np.abs(e)]))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_subj, size=(n_resamples, n_subj))
    counts = np.zeros((n_resamples, n_subj))
    np.add.at(counts, (np.repeat(np.arange(n_resamples), n_subj), draws.ravel()), 1.0)
    return counts @ per


def bootstrap_subjects(
    err_mmhg: np.ndarray | Sequence[float],
    subject_ids: np.ndarray | Sequence[str],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of ME, SD and MAE, resampling *subjects* with replacement.

    Each resample draws as many subjects as there are (with ``np.random.default_rng(seed)``)
    and pools all their pairs; ME, SD (``ddof=1``) and MAE of the pooled pairs are
    computed from per-subject sums, so 1000 resamples cost one matrix product.

    Args:
        err_mmhg: error of each pair, mmHg (non-finite entries are dropped).
        subject_ids: subject of each pair, same length as ``err_mmhg``.
        n_resamples: bootstrap resamples, at least 1.
        confidence: interval coverage in ``(0, 1)``.
        seed: seed of the resampling generator.

    Returns:
        ``{"me": (lo, hi), "sd": (lo, hi), "mae": (lo, hi)}`` in mmHg; NaN without pairs.

    Raises:
        EvaluationError: invalid ``n_resamples`` / ``confidence``, or lengths that differ.
    """
    if n_resamples < 1 or not 0.0 < confidence < 1.0:
        raise EvaluationError(
            f"bootstrap_subjects: n_resamples={n_resamples}, confidence={confidence} invalid"
        )
    e, sid = _check_pairs(err_mmhg, subject_ids)
    nan2 = (math.nan, math.nan)
    if e.size == 0:
        return {"me": nan2, "sd": nan2, "mae": nan2}
    n, s1, s2, sa = _resampled_sums(e, sid, n_resamples, seed).T
    with np.errstate(invalid="ignore", divide="ignore"):
        me = s1 / n
        var = np.where(n > 1, (s2 - s1 * s1 / n) / (n - 1), np.nan)
        sd = np.sqrt(np.clip(var, 0.0, None))
        mae = sa / n
    return {
        "me": percentile_interval(me, confidence),
        "sd": percentile_interval(sd, confidence),
        "mae": percentile_interval(mae, confidence),
    }


def iqm(values: np.ndarray | Sequence[float]) -> float:
    """Interquartile mean as in rliable: mean of the middle 50 % (``scipy.stats.trim_mean(x, 0.25)``).

    Args:
        values: one score per seed (any unit; non-finite entries are dropped).

    Returns:
        The IQM in the unit of ``values``; NaN without finite values.

    >>> iqm([1.0, 2.0, 3.0, 4.0, 100.0, 6.0, 7.0, 8.0])  # mean of 3, 4, 6, 7
    5.0
    """
    v = as_float_array(values)
    v = v[np.isfinite(v)]
    return float(stats.trim_mean(v, 0.25)) if v.size else math.nan


def aggregate_seeds(
    values: np.ndarray | Sequence[float],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Mean and IQM of one score per seed, with percentile bootstrap intervals over seeds.

    Args:
        values: one score per seed (any unit; non-finite entries are dropped).
        n_resamples: bootstrap resamples of the seeds.
        confidence: interval coverage in ``(0, 1)``.
        seed: seed of the resampling generator.

    Returns:
        ``mean``, ``mean_ci_lo``, ``mean_ci_hi``, ``iqm``, ``iqm_ci_lo``, ``iqm_ci_hi``
        (unit of ``values``; NaN without finite values) and ``n_seeds``.
    """
    v = as_float_array(values)
    v = v[np.isfinite(v)]
    out = {"n_seeds": int(v.size), "mean": math.nan, "iqm": math.nan}
    for k in ("mean", "iqm"):
        out[f"{k}_ci_lo"] = out[f"{k}_ci_hi"] = math.nan
    if v.size == 0:
        return out
    rng = np.random.default_rng(seed)
    res = v[rng.integers(0, v.size, size=(n_resamples, v.size))]
    out["mean"], out["iqm"] = float(v.mean()), iqm(v)
    out["mean_ci_lo"], out["mean_ci_hi"] = percentile_interval(res.mean(axis=1), confidence)
    out["iqm_ci_lo"], out["iqm_ci_hi"] = percentile_interval(stats.trim_mean(res, 0.25, axis=1), confidence)
    return out
