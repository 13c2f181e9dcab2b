"""Table-level evaluation of episode logs: every standards metric per policy, seed, subject, change bin.

* :func:`evaluate_log`: one row per (policy, seed) with every metric of
  :mod:`bprl.evaluation.standards`, hypertension detection and cuff usage.
* :func:`compare_policies`: one row per policy, pooled over seeds, plus mean / IQM over seeds.
* :func:`evaluate_subjects`: per (policy, seed, subject) errors and cuff usage.
* :func:`evaluate_change_bins`: IEEE 1708 MAE by reference change since the last cuff.
* :func:`evaluate_rhythm`: error by rhythm (steps in detected AF against the others).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bprl.evaluation.hypertension import hypertension_detection
from bprl.evaluation.logs import (
    BP_KINDS,
    annotate_calibration,
    check_episode_log,
    cuffs_per_hour,
    episode_durations_h,
)
from bprl.evaluation.standards import (
    AAMI_MIN_SUBJECTS,
    CHANGE_BIN_EDGES_MMHG,
    ISO3_MIN_CHANGE_MMHG,
    aami_criteria,
    bhs_grade,
    ieee1708,
    iso81060_3,
)
from bprl.evaluation.statistics import aggregate_seeds, bootstrap_subjects


# ------------------------------------------------------------------ one block of steps
def _bp_row(
    p: str,
    aami: dict[str, object],
    bhs: dict[str, object],
    ieee: dict[str, object],
    iso3: dict[str, object],
    ci: dict[str, tuple[float, float]],
) -> dict[str, object]:
    """The columns prefixed ``p`` (``"sbp_"`` / ``"dbp_"``) from the results of each standard."""
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
            f"{p}aami_c1_verdict": aami["c1_verdict"],
            f"{p}subject_me_sd_mmhg": aami["subject_me_sd"],
            f"{p}aami_c2_limit_mmhg": aami["c2_limit"],
            f"{p}aami_c2_pass": aami["c2_pass"],
            f"{p}aami_c2_verdict": aami["c2_verdict"],
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
            f"{p}iso3_verdict": iso3["verdict"],
        }
    )
    return row


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
    return _bp_row(f"{bp}_", aami, bhs, ieee, iso3, ci)


def _block_metrics(
    ann: pd.DataFrame,
    n_resamples: int,
    confidence: float,
    seed: int,
    min_change_mmhg: float,
    edges_mmhg: Sequence[float],
) -> dict[str, object]:
    """Every metric of one block of an annotated log (one policy and seed, or one policy pooled)."""
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


# ------------------------------------------------------------------ tables
def evaluate_log(
    log: pd.DataFrame,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_change_mmhg: float = ISO3_MIN_CHANGE_MMHG,
    edges_mmhg: Sequence[float] = CHANGE_BIN_EDGES_MMHG,
) -> pd.DataFrame:
    """Every standards metric of each (policy, seed) of an episode log: one row each.

    Args:
        log: an episode log (:data:`bprl.tables.EPISODE_LOG_COLUMNS`).
        n_resamples: subject-bootstrap resamples.
        confidence: bootstrap interval coverage in ``(0, 1)``.
        seed: seed of the bootstrap generator.
        min_change_mmhg: ISO 81060-3 smallest reference change, mmHg.
        edges_mmhg: inner edges of the IEEE 1708 change bins, mmHg.

    Returns:
        Columns (``<bp>`` is ``sbp`` / ``dbp``): ``policy``, ``seed``, ``n_subjects``,
        ``n_steps``, ``<bp>_n_pairs``, ``<bp>_me_mmhg``, ``<bp>_sd_mmhg``, ``<bp>_mae_mmhg``
        with subject-bootstrap intervals ``<bp>_<stat>_ci_lo_mmhg`` / ``_ci_hi_mmhg``,
        ``<bp>_aami_c1_pass``, ``<bp>_subject_me_sd_mmhg``, ``<bp>_aami_c2_limit_mmhg``,
        ``<bp>_aami_c2_pass``, ``<bp>_bhs_pct5/10/15``, ``<bp>_bhs_grade``, ``<bp>_ieee_grade``,
        ``<bp>_ieee_mae_change_<bin>_mmhg`` and ``<bp>_ieee_n_change_<bin>``,
        ``<bp>_iso3_*`` (accuracy, n_changes, APE median / 85th percentile, tracking, pass),
        ``enough_subjects``, ``htn_sensitivity``, ``htn_specificity``, ``category_kappa``,
        ``n_cuff``, ``cuffs_per_hour``. Policies keep their order of first appearance.

    Raises:
        EvaluationError: a malformed log (:func:`bprl.evaluation.check_episode_log`) or
            invalid bootstrap settings.
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
    """Per (policy, seed, subject): pairs, ME, SD, MAE of SBP and DBP, cuff readings and cuffs per hour.

    Args:
        log: an episode log (:data:`bprl.tables.EPISODE_LOG_COLUMNS`).

    Returns:
        ``policy``, ``seed``, ``subject_id``, ``<bp>_n_pairs``, ``<bp>_me_mmhg``,
        ``<bp>_sd_mmhg``, ``<bp>_mae_mmhg``, ``n_cuff`` and ``cuffs_per_hour``.

    Raises:
        EvaluationError: a malformed log.
    """
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

    Args:
        log: an episode log (:data:`bprl.tables.EPISODE_LOG_COLUMNS`).
        edges_mmhg: inner edges of the change bins, mmHg.

    Returns:
        Long table: ``policy``, ``bp``, ``change_bin``, ``n_pairs``, ``mae_mmhg``, ``grade``;
        pairs before the first cuff reading of their episode form the bin ``no calibration``.

    Raises:
        EvaluationError: a malformed log.
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
    (``<metric>_seed_mean``, ``<metric>_seed_iqm``, ``..._ci_lo``, ``..._ci_hi``), and
    ``is_oracle`` (the policy name contains "oracle").

    Args:
        logs: episode logs of all policies and seeds.
        n_resamples: bootstrap resamples (subjects for the pooled metrics, seeds for the
            aggregates).
        confidence: bootstrap interval coverage in ``(0, 1)``.
        seed: seed of the bootstrap generators.
        min_change_mmhg: ISO 81060-3 smallest reference change, mmHg.
        edges_mmhg: inner edges of the IEEE 1708 change bins, mmHg.

    Returns:
        One row per policy, in their order of first appearance.

    Raises:
        EvaluationError: malformed logs or invalid bootstrap settings.
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


#: a step counts as AF in :func:`evaluate_rhythm` when at least this share of it is in detected AF
AF_STEP_SHARE = 0.5


def evaluate_rhythm(log: pd.DataFrame) -> pd.DataFrame:
    """Error by rhythm: per policy, the steps in detected AF (``af_share >= AF_STEP_SHARE``) against
    the others, all seeds pooled.

    Args:
        log: a checked episode log; steps with a NaN ``af_share`` (rhythm not known) are left out.

    Returns:
        One row per (policy, rhythm) with steps: ``policy``, ``rhythm`` (``"AF"`` / ``"non-AF"``),
        ``n_subjects``, ``n_steps``, and per BP kind ``<bp>_n_pairs``, ``<bp>_me_mmhg``,
        ``<bp>_sd_mmhg`` and ``<bp>_mae_mmhg``. Empty when no step has a known rhythm.
    """
    known = log[np.isfinite(log["af_share"].to_numpy(float))]
    rows = []
    for policy, g in known.groupby("policy", sort=False):
        af = g["af_share"].to_numpy(float) >= AF_STEP_SHARE
        for label, sel in (("AF", af), ("non-AF", ~af)):
            if not sel.any():
                continue
            s = g[sel]
            row: dict[str, object] = {
                "policy": str(policy),
                "rhythm": label,
                "n_subjects": int(s["subject_id"].nunique()),
                "n_steps": len(s),
            }
            for bp in BP_KINDS:
                err = (s[f"corr_{bp}_mmhg"] - s[f"ref_{bp}_mmhg"]).to_numpy(float)
                err = err[np.isfinite(err)]
                row[f"{bp}_n_pairs"] = int(err.size)
                row[f"{bp}_me_mmhg"] = float(err.mean()) if err.size else np.nan
                row[f"{bp}_sd_mmhg"] = float(err.std(ddof=1)) if err.size > 1 else np.nan
                row[f"{bp}_mae_mmhg"] = float(np.abs(err).mean()) if err.size else np.nan
            rows.append(row)
    return pd.DataFrame(rows)
