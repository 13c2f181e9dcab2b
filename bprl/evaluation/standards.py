"""Accuracy standards for BP devices, as exact operational definitions on arrays of errors.

An *error* is ``corrected - reference`` in mmHg of one pair (a step with a finite
reference and a finite corrected estimate). See ``docs/guide/evaluation.md``.

* ISO 81060-2 / AAMI criterion 1 (:func:`aami_criteria`): ``|mean error| <= 5`` and
  ``SD <= 8`` mmHg over all pairs (sample SD, ``ddof=1``).
* ISO 81060-2 / AAMI criterion 2: the SD of the per-subject mean errors must not
  exceed :func:`aami_sd_limit` of the pooled mean error, the largest ``sigma`` with
  ``P(|X| <= 10) >= 0.85`` for ``X ~ N(mean, sigma)``; ``|mean error| <= 5`` too.
  A real validation needs at least 85 subjects: flagged, not failed.
* BHS (:func:`bhs_grade`): cumulative percentages of ``|error| <= 5 / 10 / 15`` mmHg;
  grade A, B, C when all three reach 60/85/95, 50/75/90, 40/65/85, else D.
* IEEE 1708-2014 (:func:`ieee1708`): mean absolute difference, A ``<= 5``, B ``<= 6``,
  C ``<= 7``, else D, also by the reference change since the last cuff reading (bins of
  ``|ref - ref at last cuff|``: ``< 10``, ``10-20``, ``>= 20`` mmHg by default).
* ISO 81060-3 (continuous, :func:`iso81060_3`): ``|mean| <= 6`` and ``SD <= 10`` mmHg;
  change tracking over pairs whose reference changed by at least ``min_change_mmhg``
  (10) since the last cuff: ``APE = |d_device - d_ref| / |d_ref| * 100``; median
  APE ``<= 25 %`` and 85th percentile ``<= 50 %``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from bprl.errors import EvaluationError
from bprl.evaluation.statistics import as_float_array

# ------------------------------------------------------------------ constants
#: ISO 81060-2 criterion 1 limits, mmHg
AAMI_MEAN_LIMIT_MMHG = 5.0
AAMI_SD_LIMIT_MMHG = 8.0
#: criterion 2 is derived from P(|error| <= 10 mmHg) >= 85 %
AAMI_C2_ERROR_MMHG = 10.0
AAMI_C2_PROBABILITY = 0.85
#: subjects a real ISO 81060-2 validation needs
AAMI_MIN_SUBJECTS = 85

#: BHS cumulative-percentage thresholds (<= 5, <= 10, <= 15 mmHg) per grade
BHS_LIMITS_MMHG: tuple[float, float, float] = (5.0, 10.0, 15.0)
BHS_GRADES: dict[str, tuple[float, float, float]] = {
    "A": (60.0, 85.0, 95.0),
    "B": (50.0, 75.0, 90.0),
    "C": (40.0, 65.0, 85.0),
}

#: IEEE 1708-2014 upper MAD limit per grade, mmHg (above the last: D)
IEEE_GRADES: dict[str, float] = {"A": 5.0, "B": 6.0, "C": 7.0}
#: default bin edges of |reference change since the last cuff reading|, mmHg
CHANGE_BIN_EDGES_MMHG: tuple[float, ...] = (10.0, 20.0)

#: ISO 81060-3 limits
ISO3_MEAN_LIMIT_MMHG = 6.0
ISO3_SD_LIMIT_MMHG = 10.0
ISO3_MIN_CHANGE_MMHG = 10.0
ISO3_APE_MEDIAN_LIMIT_PCT = 25.0
ISO3_APE_P85_LIMIT_PCT = 50.0


# ------------------------------------------------------------------ basic statistics
def error_stats(err_mmhg: np.ndarray | Sequence[float]) -> dict[str, float]:
    """Count, mean error (ME), sample SD (``ddof=1``) and mean absolute error (MAE) of finite errors.

    Non-finite entries are ignored. SD is NaN with fewer than 2 errors; all are NaN with none.

    Args:
        err_mmhg: error of each pair, mmHg.

    Returns:
        ``{"n", "me", "sd", "mae"}`` (mmHg but ``n``).

    >>> error_stats([-2.0, 0.0, 2.0, 4.0])  # SD = sqrt((9 + 1 + 1 + 9) / 3)
    {'n': 4, 'me': 1.0, 'sd': 2.581988897471611, 'mae': 2.0}
    >>> error_stats([3.0, float("nan")])
    {'n': 1, 'me': 3.0, 'sd': nan, 'mae': 3.0}
    """
    e = as_float_array(err_mmhg)
    e = e[np.isfinite(e)]
    n = int(e.size)
    if n == 0:
        return {"n": 0, "me": math.nan, "sd": math.nan, "mae": math.nan}
    return {
        "n": n,
        "me": float(e.mean()),
        "sd": float(e.std(ddof=1)) if n > 1 else math.nan,
        "mae": float(np.abs(e).mean()),
    }


# ------------------------------------------------------------------ ISO 81060-2 / AAMI
def aami_sd_limit(mean_error_mmhg: float) -> float:
    """ISO 81060-2 criterion-2 limit on the SD of per-subject mean errors, from its definition.

    The largest ``sigma`` such that ``P(|X| <= 10) >= 0.85`` for ``X ~ N(mean, sigma)``,
    found with :func:`scipy.optimize.brentq` on the normal CDF: 6.95 at a mean error
    of 0 (``10 / z_0.925``), 4.81 at +-5 (the standard's table prints 4.79: it rounds
    conservatively). ``0.0`` when ``|mean| >= 10`` (no sigma reaches 85 %); NaN for a
    non-finite mean.

    Args:
        mean_error_mmhg: pooled mean error, mmHg.

    Returns:
        The SD limit, mmHg.

    >>> round(aami_sd_limit(0.0), 2)
    6.95
    >>> round(aami_sd_limit(2.0), 2), round(aami_sd_limit(-2.0), 2)
    (6.65, 6.65)
    >>> round(aami_sd_limit(5.0), 3)
    4.806
    >>> aami_sd_limit(12.0)
    0.0
    """
    mu = abs(float(mean_error_mmhg))
    if not math.isfinite(mu):
        return math.nan
    a, p = AAMI_C2_ERROR_MMHG, AAMI_C2_PROBABILITY
    if mu >= a:
        return 0.0

    def coverage_gap(sigma: float) -> float:
        return stats.norm.cdf((a - mu) / sigma) - stats.norm.cdf((-a - mu) / sigma) - p

    # coverage falls monotonically from 1 (sigma -> 0, |mu| < a) to 0 (sigma -> inf)
    return float(optimize.brentq(coverage_gap, 1e-9, 100.0 * a, xtol=1e-12))


def aami_criteria(
    err_mmhg: np.ndarray | Sequence[float], subject_ids: np.ndarray | Sequence[str]
) -> dict[str, float | bool | int]:
    """ISO 81060-2 / AAMI criteria 1 and 2 for the errors of all pairs and their subjects.

    Args:
        err_mmhg: error of each pair, mmHg (non-finite entries are dropped).
        subject_ids: subject of each pair, same length as ``err_mmhg``.

    Returns:
        ``me``, ``sd`` (all pairs, mmHg), ``c1_pass``; ``subject_me_sd`` (sample SD of
        per-subject mean errors, mmHg), ``c2_limit`` (:func:`aami_sd_limit` of ``me``),
        ``c2_pass`` (``|me| <= 5`` and ``subject_me_sd <= c2_limit``; False with fewer than
        2 subjects); ``c1_verdict`` / ``c2_verdict``: ``"pass"``, ``"fail"`` or ``"not assessable"``
        (c1 without 2 finite errors, c2 without 2 subjects); ``n_pairs``, ``n_subjects`` and
        ``enough_subjects`` (>= 85: a flag only).

    Raises:
        EvaluationError: ``err_mmhg`` and ``subject_ids`` differ in length.

    >>> r = aami_criteria([1.0, 3.0, -1.0, 1.0], ["a", "a", "b", "b"])  # subject means 2 and 0
    >>> r["me"], r["c1_pass"], round(r["subject_me_sd"], 3), round(r["c2_limit"], 2), r["c2_pass"]
    (1.0, True, 1.414, 6.87, True)
    """
    e = as_float_array(err_mmhg)
    sid = np.asarray(subject_ids).astype(str)
    if e.shape != sid.shape:
        raise EvaluationError(f"aami_criteria: {e.size} errors but {sid.size} subject ids")
    ok = np.isfinite(e)
    e, sid = e[ok], sid[ok]
    s = error_stats(e)
    c1 = bool(abs(s["me"]) <= AAMI_MEAN_LIMIT_MMHG and s["sd"] <= AAMI_SD_LIMIT_MMHG)
    if e.size:
        subj_means = pd.Series(e).groupby(sid).mean().to_numpy()
    else:
        subj_means = np.empty(0)
    n_subj = int(subj_means.size)
    subj_sd = float(subj_means.std(ddof=1)) if n_subj > 1 else math.nan
    limit = aami_sd_limit(s["me"])
    c2 = bool(abs(s["me"]) <= AAMI_MEAN_LIMIT_MMHG and subj_sd <= limit)
    return {
        "c1_verdict": verdict(c1, s["n"] >= 2),
        "c2_verdict": verdict(c2, n_subj >= 2),
        "n_pairs": s["n"],
        "n_subjects": n_subj,
        "me": s["me"],
        "sd": s["sd"],
        "c1_pass": c1,
        "subject_me_sd": subj_sd,
        "c2_limit": limit,
        "c2_pass": c2,
        "enough_subjects": n_subj >= AAMI_MIN_SUBJECTS,
    }


def verdict(passed: bool, assessable: bool) -> str:
    """A standard's verdict: ``"not assessable"`` when the data cannot show it either way, else
    ``"pass"`` or ``"fail"``.

    >>> verdict(True, True), verdict(False, True), verdict(False, False)
    ('pass', 'fail', 'not assessable')
    """
    if not assessable:
        return "not assessable"
    return "pass" if passed else "fail"


# ------------------------------------------------------------------ BHS
def bhs_grade(err_mmhg: np.ndarray | Sequence[float]) -> dict[str, float | str]:
    """BHS protocol: cumulative % of ``|error| <= 5, 10, 15`` mmHg and the grade A-D.

    A grade needs all three percentages at or above its thresholds
    (:data:`BHS_GRADES`); otherwise D. ``"n/a"`` without finite errors.

    Args:
        err_mmhg: error of each pair, mmHg (non-finite entries are dropped).

    Returns:
        ``{"pct5", "pct10", "pct15"}`` in percent and ``"grade"``.

    Ten errors: 5 within 5 mmHg (50 %), 8 within 10 (80 %), 9 within 15 (90 %),
    which reaches B (50/75/90) but not A (60/85/95):

    >>> bhs_grade([1, -2, 3, -4, 5, -6, 7, 8, -12, 16])
    {'pct5': 50.0, 'pct10': 80.0, 'pct15': 90.0, 'grade': 'B'}
    >>> bhs_grade([20.0, -30.0])["grade"], bhs_grade([])["grade"]
    ('D', 'n/a')
    """
    e = np.abs(as_float_array(err_mmhg))
    e = e[np.isfinite(e)]
    if e.size == 0:
        return {"pct5": math.nan, "pct10": math.nan, "pct15": math.nan, "grade": "n/a"}
    pct = [float(np.mean(e <= lim) * 100.0) for lim in BHS_LIMITS_MMHG]
    grade = "D"
    for g, need in BHS_GRADES.items():
        if all(p >= t for p, t in zip(pct, need, strict=True)):
            grade = g
            break
    return {"pct5": pct[0], "pct10": pct[1], "pct15": pct[2], "grade": grade}


# ------------------------------------------------------------------ IEEE 1708
def ieee1708_grade(mae_mmhg: float) -> str:
    """IEEE 1708-2014 grade of a mean absolute difference: A <= 5, B <= 6, C <= 7, else D (NaN: ``n/a``).

    Args:
        mae_mmhg: mean absolute difference, mmHg.

    Returns:
        ``"A"``, ``"B"``, ``"C"``, ``"D"`` or ``"n/a"``.

    >>> [ieee1708_grade(x) for x in (4.2, 5.0, 5.5, 7.0, 7.01, float("nan"))]
    ['A', 'A', 'B', 'C', 'D', 'n/a']
    """
    if not math.isfinite(mae_mmhg):
        return "n/a"
    for g, lim in IEEE_GRADES.items():
        if mae_mmhg <= lim:
            return g
    return "D"


def change_bin_labels(edges_mmhg: Sequence[float] = CHANGE_BIN_EDGES_MMHG) -> list[str]:
    """Labels of the |BP change| bins for ``edges_mmhg`` (mmHg).

    >>> change_bin_labels()
    ['<10', '10-20', '>=20']
    >>> change_bin_labels([5, 7.5])
    ['<5', '5-7.5', '>=7.5']
    """
    e = [f"{x:g}" for x in edges_mmhg]
    return [f"<{e[0]}"] + [f"{a}-{b}" for a, b in itertools.pairwise(e)] + [f">={e[-1]}"]


def change_bins(
    abs_change_mmhg: np.ndarray | Sequence[float], edges_mmhg: Sequence[float] = CHANGE_BIN_EDGES_MMHG
) -> np.ndarray:
    """Bin label of each |BP change| (left-closed bins, see :func:`change_bin_labels`); NaN -> ``'no calibration'``.

    Args:
        abs_change_mmhg: absolute reference change since the last cuff reading, mmHg.
        edges_mmhg: inner bin edges, mmHg, increasing.

    Returns:
        An object array of labels, one per entry.

    >>> change_bins([3.0, 10.0, 25.0, float("nan")]).tolist()
    ['<10', '10-20', '>=20', 'no calibration']
    """
    c = as_float_array(abs_change_mmhg)
    labels = np.array(change_bin_labels(edges_mmhg), dtype=object)
    idx = np.searchsorted(np.asarray(edges_mmhg, dtype=float), np.where(np.isfinite(c), c, 0.0), side="right")
    out = labels[idx]
    out[~np.isfinite(c)] = "no calibration"
    return out


def ieee1708(
    err_mmhg: np.ndarray | Sequence[float],
    abs_change_mmhg: np.ndarray | Sequence[float] | None = None,
    edges_mmhg: Sequence[float] = CHANGE_BIN_EDGES_MMHG,
) -> dict[str, object]:
    """IEEE 1708-2014 mean absolute difference and grade, overall and by BP change since calibration.

    Args:
        err_mmhg: error of each pair, mmHg (non-finite entries are dropped).
        abs_change_mmhg: ``|ref - ref at last cuff|`` of each pair, mmHg (NaN before the
            first cuff reading); no bins when ``None``.
        edges_mmhg: inner edges of the change bins, mmHg.

    Returns:
        ``mae``, ``grade``, ``n`` and, when ``abs_change_mmhg`` is given, ``bins``:
        a dict label -> ``{"n", "mae", "grade"}`` for each bin of :func:`change_bin_labels`
        (and ``"no calibration"`` for pairs before the first cuff reading, when any).

    >>> r = ieee1708([1.0, -2.0, 4.0, -8.0, 6.0], [2.0, 12.0, 25.0, 30.0, float("nan")])
    >>> r["mae"], r["grade"]  # (1 + 2 + 4 + 8 + 6) / 5
    (4.2, 'A')
    >>> {k: (b["n"], b["mae"], b["grade"]) for k, b in r["bins"].items()}
    {'<10': (1, 1.0, 'A'), '10-20': (1, 2.0, 'A'), '>=20': (2, 6.0, 'B'), 'no calibration': (1, 6.0, 'B')}
    """
    e = as_float_array(err_mmhg)
    ok = np.isfinite(e)
    s = error_stats(e)
    out: dict[str, object] = {"n": s["n"], "mae": s["mae"], "grade": ieee1708_grade(s["mae"])}
    if abs_change_mmhg is not None:
        lab = change_bins(abs_change_mmhg, edges_mmhg)
        bins: dict[str, dict[str, object]] = {}
        names = change_bin_labels(edges_mmhg)
        if np.any(ok & (lab == "no calibration")):
            names = [*names, "no calibration"]
        for name in names:
            sel = ok & (lab == name)
            mae = float(np.abs(e[sel]).mean()) if sel.any() else math.nan
            bins[name] = {"n": int(sel.sum()), "mae": mae, "grade": ieee1708_grade(mae)}
        out["bins"] = bins
    return out


# ------------------------------------------------------------------ ISO 81060-3
def iso81060_3(
    err_mmhg: np.ndarray | Sequence[float],
    delta_device_mmhg: np.ndarray | Sequence[float],
    delta_ref_mmhg: np.ndarray | Sequence[float],
    min_change_mmhg: float = ISO3_MIN_CHANGE_MMHG,
) -> dict[str, float | bool | int]:
    """ISO 81060-3 (continuous BP) accuracy and change tracking.

    Accuracy: ``|ME| <= 6`` and ``SD <= 10`` mmHg over all finite errors. Change
    tracking over pairs with finite deltas and ``|delta_ref| >= min_change_mmhg``:
    ``APE = |delta_device - delta_ref| / |delta_ref| * 100``; median ``<= 25 %`` and 85th
    percentile (linear interpolation) ``<= 50 %``. Tracking without any qualifying
    change cannot be shown and does not pass (``n_changes = 0``); the verdict is then "not
    assessable" unless the accuracy part already fails.

    Args:
        err_mmhg: error of each pair, mmHg.
        delta_device_mmhg: change of the corrected estimate since the last cuff, mmHg.
        delta_ref_mmhg: change of the reference since the last cuff, mmHg.
        min_change_mmhg: smallest ``|delta_ref|`` that counts as a change, mmHg.

    Returns:
        ``me``, ``sd`` (mmHg), ``accuracy_pass``, ``n_changes``, ``ape_median_pct``,
        ``ape_p85_pct``, ``tracking_pass``, ``pass`` (accuracy and tracking) and ``verdict``
        (``"pass"``, ``"fail"``, or ``"not assessable"``: no qualifying change, or fewer than two
        finite errors, and no failed accuracy part to make it a fail).

    Two qualifying changes: reference +10 read as +12 (APE 20 %), reference -12 read as
    -9 (APE 25 %); the change of 2 mmHg is too small and the NaN one is dropped:

    >>> r = iso81060_3([1.0, -2.0, 4.0, -3.0], [12.0, -9.0, 3.0, float("nan")], [10.0, -12.0, 2.0, 15.0])
    >>> r["n_changes"], r["ape_median_pct"], r["ape_p85_pct"], r["pass"]
    (2, 22.5, 24.25, True)

    No cuff reading (every change NaN): accurate, but tracking cannot be assessed:

    >>> iso81060_3([1.0, -1.0, 2.0], [float("nan")] * 3, [float("nan")] * 3)["verdict"]
    'not assessable'
    """
    s = error_stats(err_mmhg)
    acc = bool(abs(s["me"]) <= ISO3_MEAN_LIMIT_MMHG and s["sd"] <= ISO3_SD_LIMIT_MMHG)
    dd, dr = as_float_array(delta_device_mmhg), as_float_array(delta_ref_mmhg)
    sel = np.isfinite(dd) & np.isfinite(dr) & (np.abs(dr) >= min_change_mmhg)
    if sel.any():
        ape = np.abs(dd[sel] - dr[sel]) / np.abs(dr[sel]) * 100.0
        med, p85 = float(np.median(ape)), float(np.percentile(ape, 85))
        track = bool(med <= ISO3_APE_MEDIAN_LIMIT_PCT and p85 <= ISO3_APE_P85_LIMIT_PCT)
    else:
        med = p85 = math.nan
        track = False
    return {
        "me": s["me"],
        "sd": s["sd"],
        "accuracy_pass": acc,
        "n_changes": int(sel.sum()),
        "ape_median_pct": med,
        "ape_p85_pct": p85,
        "tracking_pass": track,
        "pass": bool(acc and track),
        "verdict": verdict(bool(acc and track), s["n"] >= 2 and (bool(sel.any()) or not acc)),
    }
