"""Hypertension detection: ACC/AHA 2017 BP categories of corrected vs reference BP.

:func:`bp_category` classifies readings, :func:`cohen_kappa` measures agreement of two
categorical ratings, and :func:`hypertension_detection` gives sensitivity and
specificity for hypertension (stage 1 or 2) and Cohen's kappa over the 4 categories.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bprl.evaluation.statistics import as_float_array

#: ACC/AHA 2017 category names, by code 0..3 (-1: not classifiable)
BP_CATEGORIES: tuple[str, ...] = ("normal", "elevated", "stage 1", "stage 2")


def bp_category(sbp_mmhg: np.ndarray | Sequence[float], dbp_mmhg: np.ndarray | Sequence[float]) -> np.ndarray:
    """ACC/AHA 2017 category code per reading: 0 normal, 1 elevated, 2 stage 1, 3 stage 2; -1 if NaN.

    Normal ``< 120`` and ``< 80``; elevated ``120-129`` and ``< 80``; stage 1 ``130-139``
    or ``80-89``; stage 2 ``>= 140`` or ``>= 90``; the higher category wins.

    Args:
        sbp_mmhg: systolic BP of each reading, mmHg.
        dbp_mmhg: diastolic BP of each reading, mmHg.

    Returns:
        An int array of codes (index into :data:`BP_CATEGORIES`, -1 when a value is not finite).

    >>> bp_category([118, 125, 135, 150, 118], [75, 78, 70, 85, float("nan")]).tolist()
    [0, 1, 2, 3, -1]
    """
    s, d = as_float_array(sbp_mmhg), as_float_array(dbp_mmhg)
    cat = np.select(
        [(s >= 140) | (d >= 90), (s >= 130) | (d >= 80), s >= 120],
        [3, 2, 1],
        default=0,
    )
    cat[~(np.isfinite(s) & np.isfinite(d))] = -1
    return cat.astype(int)


def cohen_kappa(a: np.ndarray | Sequence[int], b: np.ndarray | Sequence[int], n_categories: int) -> float:
    """Unweighted Cohen's kappa of two ratings with codes ``0 .. n_categories-1`` (other codes are dropped).

    ``kappa = (p_o - p_e) / (1 - p_e)`` from the confusion matrix; NaN when no pair
    is left or when ``p_e == 1`` (both raters use a single, identical category).

    Args:
        a: codes of the first rater.
        b: codes of the second rater, same length.
        n_categories: number of valid codes.

    Returns:
        Kappa (dimensionless, at most 1).

    Four agreements in five (``p_o = 0.8``), ``p_e = (1 + 1 + 2 + 2) / 25 = 0.24``:

    >>> round(cohen_kappa([0, 1, 2, 3, 3], [0, 1, 2, 2, 3], 4), 6)  # 0.56 / 0.76
    0.736842
    """
    x, y = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    ok = (x >= 0) & (x < n_categories) & (y >= 0) & (y < n_categories)
    x, y = x[ok], y[ok]
    n = x.size
    if n == 0:
        return math.nan
    cm = np.zeros((n_categories, n_categories))
    np.add.at(cm, (x, y), 1.0)
    po = np.trace(cm) / n
    pe = float(cm.sum(axis=1) @ cm.sum(axis=0)) / n**2
    if pe >= 1.0:
        return math.nan
    return float((po - pe) / (1.0 - pe))


def hypertension_detection(
    corr_sbp_mmhg: np.ndarray | Sequence[float],
    corr_dbp_mmhg: np.ndarray | Sequence[float],
    ref_sbp_mmhg: np.ndarray | Sequence[float],
    ref_dbp_mmhg: np.ndarray | Sequence[float],
) -> dict[str, float | int]:
    """Hypertension detection by ACC/AHA 2017 category of the corrected vs reference BP.

    Pairs need all four values finite. Hypertension = stage 1 or 2.

    Args:
        corr_sbp_mmhg: corrected (device) SBP, mmHg.
        corr_dbp_mmhg: corrected (device) DBP, mmHg.
        ref_sbp_mmhg: reference SBP, mmHg.
        ref_dbp_mmhg: reference DBP, mmHg.

    Returns:
        ``n``, ``sensitivity`` (TP / reference-positive), ``specificity`` (TN /
        reference-negative; NaN when the denominator is 0) and ``kappa``
        (:func:`cohen_kappa` over 4 categories).
    """
    dev = bp_category(corr_sbp_mmhg, corr_dbp_mmhg)
    ref = bp_category(ref_sbp_mmhg, ref_dbp_mmhg)
    ok = (dev >= 0) & (ref >= 0)
    dev, ref = dev[ok], ref[ok]
    pos_dev, pos_ref = dev >= 2, ref >= 2
    n_pos, n_neg = int(pos_ref.sum()), int((~pos_ref).sum())
    return {
        "n": int(ok.sum()),
        "sensitivity": float((pos_dev & pos_ref).sum() / n_pos) if n_pos else math.nan,
        "specificity": float((~pos_dev & ~pos_ref).sum() / n_neg) if n_neg else math.nan,
        "kappa": cohen_kappa(dev, ref, len(BP_CATEGORIES)),
    }
