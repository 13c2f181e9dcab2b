"""Standards metrics of calibration policies, computed from saved episode logs.

Everything here works on episode logs (:data:`bprl.tables.EPISODE_LOG_COLUMNS`),
never on a live environment. A *pair* is a step with a finite reference and a
finite corrected estimate (separately for SBP and DBP); the *error* is
``corrected - reference`` in mmHg.

Standards (exact operational definitions; see ``docs/readme/70-evaluation.md``):

* ISO 81060-2 / AAMI criterion 1: ``|mean error| <= 5`` and ``SD <= 8`` mmHg over
  all pairs (sample SD, ``ddof=1``).
* ISO 81060-2 / AAMI criterion 2: the SD of the per-subject mean errors must not
  exceed :func:`aami_sd_limit` of the pooled mean error, the largest ``sigma`` with
  ``P(|X| <= 10) >= 0.85`` for ``X ~ N(mean, sigma)``; ``|mean error| <= 5`` too.
  A real validation needs at least 85 subjects: flagged, not failed.
* BHS: cumulative percentages of ``|error| <= 5 / 10 / 15`` mmHg; grade A, B, C
  when all three reach 60/85/95, 50/75/90, 40/65/85, else D.
* IEEE 1708-2014: mean absolute difference, A ``<= 5``, B ``<= 6``, C ``<= 7``, else
  D, also by the reference change since the last cuff reading (bins of
  ``|ref - ref at last cuff|``: ``< 10``, ``10-20``, ``>= 20`` mmHg by default).
* ISO 81060-3 (continuous): ``|mean| <= 6`` and ``SD <= 10`` mmHg; change tracking
  over pairs whose reference changed by at least ``min_change_mmhg`` (10) since the
  last cuff: ``APE = |d_device - d_ref| / |d_ref| * 100`` with
  ``d_device = corr - corr at last cuff`` and ``d_ref = ref - ref at last cuff``;
  median APE ``<= 25 %`` and 85th percentile ``<= 50 %``.
* ACC/AHA 2017 categories of corrected and reference BP: sensitivity and
  specificity for hypertension (stage 1 or 2), Cohen's kappa over 4 categories.
* Cuff readings per hour; bootstrap intervals over subjects; mean and
  interquartile mean (IQM) over seeds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from bprl.errors import BprlError
from bprl.tables import EPISODE_LOG_COLUMNS

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

#: ACC/AHA 2017 category names, by code 0..3 (-1: not classifiable)
BP_CATEGORIES: tuple[str, ...] = ("normal", "elevated", "stage 1", "stage 2")

#: the two BP quantities evaluated
BP_KINDS: tuple[str, ...] = ("sbp", "dbp")

#: columns that identify one episode in a log
EPISODE_KEYS: list[str] = ["policy", "seed", "subject_id", "episode"]


class EvaluationError(BprlError):
    """An episode log is malformed (missing columns, wrong types, empty) or a metric got bad input."""


# ------------------------------------------------------------------ log checks
def check_episode_log(log: pd.DataFrame, what: str = "episode log") -> pd.DataFrame:
    """Validate an episode log and return a normalised copy (typed columns, ``cuff`` as bool).

    Raises :class:`EvaluationError` naming ``what`` (a file name or description) and
    the problem: missing columns, no rows, or a ``cuff`` column that is not boolean.
    """
    if not isinstance(log, pd.DataFrame):
        raise EvaluationError(f"{what}: expected a pandas DataFrame, got {type(log).__name__}")
    missing = [c for c in EPISODE_LOG_COLUMNS if c not in log.columns]
    if missing:
        raise EvaluationError(f"{what}: missing columns {missing}")
    if log.empty:
        raise EvaluationError(f"{what}: no rows")
    out = log.copy()
    if out["cuff"].isna().any():
        raise EvaluationError(f"{what}: column 'cuff' has missing values")
    try:
        out["cuff"] = out["cuff"].astype(bool)
        for col, dtype in EPISODE_LOG_COLUMNS.items():
            if dtype == "float64":
                out[col] = pd.to_numeric(out[col], errors="raise").astype("float64")
            elif dtype == "int64":
                out[col] = pd.to_numeric(out[col], errors="raise").astype("int64")
        out["policy"] = out["policy"].astype(str)
        out["subject_id"] = out["subject_id"].astype(str)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"{what}: bad column type ({exc})") from exc
    return out


def read_episode_logs(paths: Sequence[str | Path]) -> tuple[pd.DataFrame, list[str]]:
    """Read and concatenate episode-log Parquet files, skipping bad ones.

    Returns ``(log, problems)``: the validated, concatenated log and one message per
    skipped file (naming the file and the problem). Raises :class:`EvaluationError`
    when no file could be read.
    """
    frames: list[pd.DataFrame] = []
    problems: list[str] = []
    for p in paths:
        try:
            df = pd.read_parquet(p)
            frames.append(check_episode_log(df, what=str(p)))
        except EvaluationError as exc:
            problems.append(str(exc))
        except (OSError, ValueError) as exc:
            problems.append(f"{p}: cannot read Parquet ({exc})")
    if not frames:
        raise EvaluationError(f"no readable episode log among {len(paths)} files: {problems}")
    return pd.concat(frames, ignore_index=True), problems


# ------------------------------------------------------------------ basic statistics
def _as_float(x: np.ndarray | Sequence[float]) -> np.ndarray:
    return np.asarray(x, dtype=float)


def error_stats(err_mmhg: np.ndarray | Sequence[float]) -> dict[str, float]:
    """Count, mean error (ME), sample SD (``ddof=1``) and mean absolute error (MAE) of finite errors.

    Non-finite entries are ignored. SD is NaN with fewer than 2 errors; all are NaN with none.
    """
    e = _as_float(err_mmhg)
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
    found with :func:`scipy.optimize.brentq` on the normal CDF. 6.95 at a mean
    error of 0, 4.79 at +-5 (the standard's table, rounded to 2 decimals). ``0.0``
    when ``|mean| >= 10`` (no sigma reaches 85 %); NaN for a non-finite mean.
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

    Returns ``me``, ``sd`` (all pairs), ``c1_pass``; ``subject_me_sd`` (sample SD of
    per-subject mean errors), ``c2_limit`` (:func:`aami_sd_limit` of ``me``),
    ``c2_pass`` (``|me| <= 5`` and ``subject_me_sd <= c2_limit``; False with fewer than
    2 subjects); ``n_pairs``, ``n_subjects`` and ``enough_subjects`` (>= 85: a flag only).
    """
    e = _as_float(err_mmhg)
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


# ------------------------------------------------------------------ BHS
def bhs_grade(err_mmhg: np.ndarray | Sequence[float]) -> dict[str, float | str]:
    """BHS protocol: cumulative % of ``|error| <= 5, 10, 15`` mmHg and the grade A-D.

    A grade needs all three percentages at or above its thresholds
    (:data:`BHS_GRADES`); otherwise D. ``"n/a"`` without finite errors.
    """
    e = np.abs(_as_float(err_mmhg))
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
    """IEEE 1708-2014 grade of a mean absolute difference: A <= 5, B <= 6, C <= 7, else D (NaN: ``n/a``)."""
    if not math.isfinite(mae_mmhg):
        return "n/a"
    for g, lim in IEEE_GRADES.items():
        if mae_mmhg <= lim:
            return g
    return "D"


def change_bin_labels(edges_mmhg: Sequence[float] = CHANGE_BIN_EDGES_MMHG) -> list[str]:
    """Labels of the |BP change| bins for ``edges``: e.g. ``['<10', '10-20', '>=20']``."""
    e = [f"{x:g}" for x in edges_mmhg]
    return [f"<{e[0]}"] + [f"{a}-{b}" for a, b in itertools.pairwise(e)] + [f">={e[-1]}"]


def change_bins(
    abs_change_mmhg: np.ndarray | Sequence[float], edges_mmhg: Sequence[float] = CHANGE_BIN_EDGES_MMHG
) -> np.ndarray:
    """Bin label of each |BP change| (left-closed bins, see :func:`change_bin_labels`); NaN -> ``'no calibration'``."""
    c = _as_float(abs_change_mmhg)
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

    Returns ``mae``, ``grade``, ``n`` and, when ``abs_change_mmhg`` is given, ``bins``:
    a dict label -> ``{"n", "mae", "grade"}`` for each bin of :func:`change_bin_labels`
    (and ``"no calibration"`` for pairs before the first cuff reading, when any).
    """
    e = _as_float(err_mmhg)
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
    change cannot be shown and does not pass (``n_changes = 0``).
    """
    s = error_stats(err_mmhg)
    acc = bool(abs(s["me"]) <= ISO3_MEAN_LIMIT_MMHG and s["sd"] <= ISO3_SD_LIMIT_MMHG)
    dd, dr = _as_float(delta_device_mmhg), _as_float(delta_ref_mmhg)
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
    }


# ------------------------------------------------------------------ hypertension
def bp_category(sbp_mmhg: np.ndarray | Sequence[float], dbp_mmhg: np.ndarray | Sequence[float]) -> np.ndarray:
    """ACC/AHA 2017 category code per reading: 0 normal, 1 elevated, 2 stage 1, 3 stage 2; -1 if NaN.

    Normal ``< 120`` and ``< 80``; elevated ``120-129`` and ``< 80``; stage 1 ``130-139``
    or ``80-89``; stage 2 ``>= 140`` or ``>= 90``; the higher category wins.
    """
    s, d = _as_float(sbp_mmhg), _as_float(dbp_mmhg)
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

    Pairs need all four values finite. Hypertension = stage 1 or 2. Returns ``n``,
    ``sensitivity`` (TP / reference-positive), ``specificity`` (TN / reference-negative;
    NaN when the denominator is 0) and ``kappa`` (:func:`cohen_kappa` over 4 categories).
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


# ------------------------------------------------------------------ cuff usage
def _step_duration_s(log: pd.DataFrame) -> pd.Series:
    """Median step spacing of each episode (NaN for one-step episodes)."""
    diffs = log.sort_values([*EPISODE_KEYS, "step"]).groupby(EPISODE_KEYS, sort=False)["t_s"].diff()
    return diffs.groupby([log.loc[diffs.index, k] for k in EPISODE_KEYS], sort=False).median()


def episode_durations_h(log: pd.DataFrame) -> pd.DataFrame:
    """Per episode: number of cuff readings and duration in hours.

    Duration = ``max(t_s) - min(t_s) + step``, where ``step`` is the episode's median
    spacing of ``t_s`` (``t_s`` is the window end, so the first window adds one step);
    one-step episodes use the median step of the whole log.
    """
    g = log.groupby(EPISODE_KEYS, sort=False)
    out = pd.DataFrame(
        {"n_cuff": g["cuff"].sum().astype(int), "t_min": g["t_s"].min(), "t_max": g["t_s"].max()}
    )
    step = _step_duration_s(log).reindex(out.index)
    fallback = float(np.nanmedian(step.to_numpy())) if np.isfinite(step.to_numpy()).any() else math.nan
    step = step.fillna(fallback)
    out["duration_h"] = (out["t_max"] - out["t_min"] + step) / 3600.0
    return out[["n_cuff", "duration_h"]].reset_index()


def cuffs_per_hour(log: pd.DataFrame) -> float:
    """Cuff readings per hour of monitoring: total cuff readings / total episode hours of ``log``."""
    d = episode_durations_h(log)
    hours = float(d["duration_h"].sum())
    return float(d["n_cuff"].sum() / hours) if hours > 0 else math.nan


# ------------------------------------------------------------------ calibration state
def annotate_calibration(log: pd.DataFrame) -> pd.DataFrame:
    """Add the state of the last cuff calibration to each step (a copy, sorted by episode and step).

    New columns: ``cal_t_s`` (time of the last cuff reading at or before the step),
    ``t_since_cal_s``, ``ref_sbp_at_cal_mmhg`` / ``ref_dbp_at_cal_mmhg`` (the reference
    at that step), ``corr_sbp_at_cal_mmhg`` / ``corr_dbp_at_cal_mmhg`` (the corrected
    estimate reported at that step), ``d_ref_sbp_mmhg`` / ``d_corr_sbp_mmhg`` (and DBP):
    change of reference and corrected estimate since then. NaN before the first cuff.
    """
    # policies keep their order of first appearance; the rest is sorted
    rank = {p: i for i, p in enumerate(pd.unique(log["policy"]))}
    order = log.assign(_policy_rank=log["policy"].map(rank))
    out = order.sort_values(["_policy_rank", *EPISODE_KEYS[1:], "step"], kind="mergesort")
    out = out.drop(columns="_policy_rank").reset_index(drop=True)
    cuff = out["cuff"].to_numpy(dtype=bool)
    keys = [out[k] for k in EPISODE_KEYS]
    src = {"cal_t_s": "t_s"}
    for bp in BP_KINDS:
        src[f"ref_{bp}_at_cal_mmhg"] = f"ref_{bp}_mmhg"
        src[f"corr_{bp}_at_cal_mmhg"] = f"corr_{bp}_mmhg"
    # row index of the last cuff step at or before each step, within its episode (a cuff step
    # whose reference is NaN still resets the calibration point)
    cal_row = pd.Series(np.where(cuff, np.arange(len(out)), np.nan), index=out.index)
    idx = cal_row.groupby(keys, sort=False).ffill().to_numpy()
    valid = np.isfinite(idx)
    rows = idx[valid].astype(int)
    for new, old in src.items():
        vals = np.full(len(out), np.nan)
        vals[valid] = out[old].to_numpy(dtype=float)[rows]
        out[new] = vals
    out["t_since_cal_s"] = out["t_s"] - out["cal_t_s"]
    for bp in BP_KINDS:
        out[f"d_ref_{bp}_mmhg"] = out[f"ref_{bp}_mmhg"] - out[f"ref_{bp}_at_cal_mmhg"]
        out[f"d_corr_{bp}_mmhg"] = out[f"corr_{bp}_mmhg"] - out[f"corr_{bp}_at_cal_mmhg"]
    return out


# ------------------------------------------------------------------ bootstrap and seed aggregation
def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    s = samples[np.isfinite(samples)]
    if s.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(s, [alpha, 100.0 - alpha])
    return float(lo), float(hi)


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
    Returns ``{"me": (lo, hi), "sd": (lo, hi), "mae": (lo, hi)}``; NaN without pairs.
    """
    if n_resamples < 1 or not 0.0 < confidence < 1.0:
        raise EvaluationError(
            f"bootstrap_subjects: n_resamples={n_resamples}, confidence={confidence} invalid"
        )
    e = _as_float(err_mmhg)
    sid = np.asarray(subject_ids).astype(str)
    if e.shape != sid.shape:
        raise EvaluationError(f"bootstrap_subjects: {e.size} errors but {sid.size} subject ids")
    ok = np.isfinite(e)
    e, sid = e[ok], sid[ok]
    nan2 = (math.nan, math.nan)
    if e.size == 0:
        return {"me": nan2, "sd": nan2, "mae": nan2}
    _, inv = np.unique(sid, return_inverse=True)
    n_subj = int(inv.max()) + 1
    per = np.zeros((n_subj, 4))  # n, sum, sum of squares, sum of |e|
    np.add.at(per, inv, np.column_stack([np.ones_like(e), e, e * e, np.abs(e)]))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_subj, size=(n_resamples, n_subj))
    counts = np.zeros((n_resamples, n_subj))
    np.add.at(counts, (np.repeat(np.arange(n_resamples), n_subj), draws.ravel()), 1.0)
    tot = counts @ per
    n, s1, s2, sa = tot.T
    with np.errstate(invalid="ignore", divide="ignore"):
        me = s1 / n
        var = np.where(n > 1, (s2 - s1 * s1 / n) / (n - 1), np.nan)
        sd = np.sqrt(np.clip(var, 0.0, None))
        mae = sa / n
    return {
        "me": _percentile_interval(me, confidence),
        "sd": _percentile_interval(sd, confidence),
        "mae": _percentile_interval(mae, confidence),
    }


def iqm(values: np.ndarray | Sequence[float]) -> float:
    """Interquartile mean as in rliable: mean of the middle 50 % (``scipy.stats.trim_mean(x, 0.25)``)."""
    v = _as_float(values)
    v = v[np.isfinite(v)]
    return float(stats.trim_mean(v, 0.25)) if v.size else math.nan


def aggregate_seeds(
    values: np.ndarray | Sequence[float],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Mean and IQM of one score per seed, with percentile bootstrap intervals over seeds.

    Returns ``mean``, ``mean_ci_lo``, ``mean_ci_hi``, ``iqm``, ``iqm_ci_lo``, ``iqm_ci_hi``, ``n_seeds``.
    """
    v = _as_float(values)
    v = v[np.isfinite(v)]
    out = {"n_seeds": int(v.size), "mean": math.nan, "iqm": math.nan}
    for k in ("mean", "iqm"):
        out[f"{k}_ci_lo"] = out[f"{k}_ci_hi"] = math.nan
    if v.size == 0:
        return out
    rng = np.random.default_rng(seed)
    res = v[rng.integers(0, v.size, size=(n_resamples, v.size))]
    out["mean"], out["iqm"] = float(v.mean()), iqm(v)
    out["mean_ci_lo"], out["mean_ci_hi"] = _percentile_interval(res.mean(axis=1), confidence)
    out["iqm_ci_lo"], out["iqm_ci_hi"] = _percentile_interval(stats.trim_mean(res, 0.25, axis=1), confidence)
    return out


# ------------------------------------------------------------------ table-level evaluation
def _bp_metrics(
    ann: pd.DataFrame,
    bp: str,
    n_resamples: int,
    confidence: float,
    seed: int,
    min_change_mmhg: float,
    edges_mmhg: Sequence[float],
) -> dict[str, object]:
    """All metrics of one BP quantity over the pairs of an annotated log (pooled)."""
    ref, corr = ann[f"ref_{bp}_mmhg"].to_numpy(float), ann[f"corr_{bp}_mmhg"].to_numpy(float)
    pair = np.isfinite(ref) & np.isfinite(corr)
    err = (corr - ref)[pair]
    sid = ann["subject_id"].to_numpy(str)[pair]
    aami = aami_criteria(err, sid)
    bhs = bhs_grade(err)
    d_ref = ann[f"d_ref_{bp}_mmhg"].to_numpy(float)[pair]
    ieee = ieee1708(err, np.abs(d_ref), edges_mmhg)
    iso3 = iso81060_3(err, ann[f"d_corr_{bp}_mmhg"].to_numpy(float)[pair], d_ref, min_change_mmhg)
    ci = bootstrap_subjects(err, sid, n_resamples, confidence, seed)
    p = f"{bp}_"
    row: dict[str, object] = {
        f"{p}n_pairs": aami["n_pairs"],
        f"{p}me_mmhg": aami["me"],
        f"{p}sd_mmhg": aami["sd"],
        f"{p}mae_mmhg": ieee["mae"],
    }
    for stat in ("me", "sd", "mae"):
        row[f"{p}{stat}_ci_lo_mmhg"], row[f"{p}{stat}_ci_hi_mmhg"] = ci[stat]
    row.update(
        {
            f"{p}aami_c1_pass": aami["c1_pass"],
            f"{p}subject_me_sd_mmhg": aami["subject_me_sd"],
            f"{p}aami_c2_limit_mmhg": aami["c2_limit"],
            f"{p}aami_c2_pass": aami["c2_pass"],
            f"{p}bhs_pct5": bhs["pct5"],
            f"{p}bhs_pct10": bhs["pct10"],
            f"{p}bhs_pct15": bhs["pct15"],
            f"{p}bhs_grade": bhs["grade"],
            f"{p}ieee_grade": ieee["grade"],
        }
    )
    for label, b in ieee["bins"].items():  # type: ignore[union-attr]
        if label == "no calibration":
            continue
        row[f"{p}ieee_mae_change_{label}_mmhg"] = b["mae"]
        row[f"{p}ieee_n_change_{label}"] = b["n"]
    row.update(
        {
            f"{p}iso3_accuracy_pass": iso3["accuracy_pass"],
            f"{p}iso3_n_changes": iso3["n_changes"],
            f"{p}iso3_ape_median_pct": iso3["ape_median_pct"],
            f"{p}iso3_ape_p85_pct": iso3["ape_p85_pct"],
            f"{p}iso3_tracking_pass": iso3["tracking_pass"],
            f"{p}iso3_pass": iso3["pass"],
        }
    )
    return row


def _block_metrics(
    ann: pd.DataFrame,
    n_resamples: int,
    confidence: float,
    seed: int,
    min_change_mmhg: float,
    edges_mmhg: Sequence[float],
) -> dict[str, object]:
    row: dict[str, object] = {
        "n_subjects": int(ann["subject_id"].nunique()),
        "n_steps": len(ann),
    }
    for bp in BP_KINDS:
        row.update(_bp_metrics(ann, bp, n_resamples, confidence, seed, min_change_mmhg, edges_mmhg))
    row["enough_subjects"] = row["n_subjects"] >= AAMI_MIN_SUBJECTS
    htn = hypertension_detection(
        ann["corr_sbp_mmhg"], ann["corr_dbp_mmhg"], ann["ref_sbp_mmhg"], ann["ref_dbp_mmhg"]
    )
    row.update(
        {
            "htn_n_pairs": htn["n"],
            "htn_sensitivity": htn["sensitivity"],
            "htn_specificity": htn["specificity"],
            "category_kappa": htn["kappa"],
            "n_cuff": int(ann["cuff"].sum()),
            "cuffs_per_hour": cuffs_per_hour(ann),
        }
    )
    return row


def evaluate_log(
    log: pd.DataFrame,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_change_mmhg: float = ISO3_MIN_CHANGE_MMHG,
    edges_mmhg: Sequence[float] = CHANGE_BIN_EDGES_MMHG,
) -> pd.DataFrame:
    """Every standards metric of each (policy, seed) of an episode log: one row each.

    Columns (``<bp>`` is ``sbp`` / ``dbp``): ``policy``, ``seed``, ``n_subjects``,
    ``n_steps``, ``<bp>_n_pairs``, ``<bp>_me_mmhg``, ``<bp>_sd_mmhg``, ``<bp>_mae_mmhg``
    with subject-bootstrap intervals ``<bp>_<stat>_ci_lo_mmhg`` / ``_ci_hi_mmhg``,
    ``<bp>_aami_c1_pass``, ``<bp>_subject_me_sd_mmhg``, ``<bp>_aami_c2_limit_mmhg``,
    ``<bp>_aami_c2_pass``, ``<bp>_bhs_pct5/10/15``, ``<bp>_bhs_grade``, ``<bp>_ieee_grade``,
    ``<bp>_ieee_mae_change_<bin>_mmhg`` and ``<bp>_ieee_n_change_<bin>``,
    ``<bp>_iso3_*`` (accuracy, n_changes, APE median / 85th percentile, tracking, pass),
    ``enough_subjects``, ``htn_sensitivity``, ``htn_specificity``, ``category_kappa``,
    ``n_cuff``, ``cuffs_per_hour``. Policies keep their order of first appearance.
    """
    ann = annotate_calibration(check_episode_log(log))
    rows = []
    for (policy, s), grp in ann.groupby(["policy", "seed"], sort=False):
        rows.append(
            {
                "policy": policy,
                "seed": int(s),
                **_block_metrics(grp, n_resamples, confidence, seed, min_change_mmhg, edges_mmhg),
            }
        )
    return pd.DataFrame(rows)


def evaluate_subjects(log: pd.DataFrame) -> pd.DataFrame:
    """Per (policy, seed, subject): pairs, ME, SD, MAE of SBP and DBP, cuff readings and cuffs per hour."""
    df = check_episode_log(log)
    keys = ["policy", "seed", "subject_id"]
    cols: dict[str, pd.Series] = {k: df[k] for k in keys}
    for bp in BP_KINDS:
        err = df[f"corr_{bp}_mmhg"] - df[f"ref_{bp}_mmhg"]
        err = err.where(np.isfinite(err))
        cols[f"{bp}_err"] = err
        cols[f"{bp}_abs"] = err.abs()
    g = pd.DataFrame(cols).groupby(keys, sort=False)
    out = g.size().rename("n_steps").to_frame()
    for bp in BP_KINDS:
        out[f"{bp}_n_pairs"] = g[f"{bp}_err"].count()
        out[f"{bp}_me_mmhg"] = g[f"{bp}_err"].mean()
        out[f"{bp}_sd_mmhg"] = g[f"{bp}_err"].std(ddof=1)
        out[f"{bp}_mae_mmhg"] = g[f"{bp}_abs"].mean()
    dur = episode_durations_h(df).groupby(keys, sort=False)[["n_cuff", "duration_h"]].sum()
    out = out.join(dur)
    out["cuffs_per_hour"] = np.where(out["duration_h"] > 0, out["n_cuff"] / out["duration_h"], np.nan)
    return out.drop(columns=["n_steps", "duration_h"]).reset_index()


def evaluate_change_bins(
    log: pd.DataFrame, edges_mmhg: Sequence[float] = CHANGE_BIN_EDGES_MMHG
) -> pd.DataFrame:
    """IEEE 1708 MAE and grade by |reference change since the last cuff| per policy (pooled over seeds).

    Long table: ``policy``, ``bp``, ``change_bin``, ``n_pairs``, ``mae_mmhg``, ``grade``;
    pairs before the first cuff reading of their episode form the bin ``no calibration``.
    """
    ann = annotate_calibration(check_episode_log(log))
    rows = []
    for policy, grp in ann.groupby("policy", sort=False):
        for bp in BP_KINDS:
            err = grp[f"corr_{bp}_mmhg"].to_numpy(float) - grp[f"ref_{bp}_mmhg"].to_numpy(float)
            res = ieee1708(err, np.abs(grp[f"d_ref_{bp}_mmhg"].to_numpy(float)), edges_mmhg)
            for label, b in res["bins"].items():  # type: ignore[union-attr]
                rows.append(
                    {"policy": policy, "bp": bp, "change_bin": label}
                    | {"n_pairs": b["n"], "mae_mmhg": b["mae"], "grade": b["grade"]}
                )
    return pd.DataFrame(rows)


def compare_policies(
    logs: pd.DataFrame,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_change_mmhg: float = ISO3_MIN_CHANGE_MMHG,
    edges_mmhg: Sequence[float] = CHANGE_BIN_EDGES_MMHG,
) -> pd.DataFrame:
    """One row per policy: standards metrics pooled over seeds, plus mean / IQM over seeds.

    The pooled columns are those of :func:`evaluate_log` (all pairs of all seeds; the
    bootstrap resamples subjects, each with its pairs from every seed). Added per
    policy: ``n_seeds`` and, for ``sbp_mae_mmhg``, ``dbp_mae_mmhg`` and ``cuffs_per_hour``,
    the mean and IQM over seeds with bootstrap intervals over seeds
    (``<metric>_seed_mean``, ``<metric>_seed_iqm``, ``..._ci_lo``, ``..._ci_hi``).
    """
    ann = annotate_calibration(check_episode_log(logs, what="episode logs"))
    per_seed = evaluate_log(
        logs,
        n_resamples=1,
        confidence=confidence,
        seed=seed,
        min_change_mmhg=min_change_mmhg,
        edges_mmhg=edges_mmhg,
    )
    rows = []
    for policy, grp in ann.groupby("policy", sort=False):
        row: dict[str, object] = {"policy": policy, "n_seeds": int(grp["seed"].nunique())}
        row.update(_block_metrics(grp, n_resamples, confidence, seed, min_change_mmhg, edges_mmhg))
        ps = per_seed[per_seed["policy"] == policy]
        for metric in ("sbp_mae_mmhg", "dbp_mae_mmhg", "cuffs_per_hour"):
            agg = aggregate_seeds(ps[metric].to_numpy(float), n_resamples, confidence, seed)
            for k in ("mean", "mean_ci_lo", "mean_ci_hi", "iqm", "iqm_ci_lo", "iqm_ci_hi"):
                row[f"{metric}_seed_{k}"] = agg[k]
        row["is_oracle"] = "oracle" in str(policy).lower()
        rows.append(row)
    return pd.DataFrame(rows)
