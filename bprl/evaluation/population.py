"""The test population of an evaluation: who the test subjects are, and whether they meet the sample
requirements of ISO 81060-2.

A validation's verdicts mean little without its population: a cohort of normotensive subjects
passes accuracy criteria that a cohort with hypertensive and hypotensive subjects fails. ISO
81060-2:2018 (clinical validation of non-invasive sphygmomanometers, general population) asks for
at least 85 subjects, at least 30 % of each sex, and a spread of the reference readings: at least
5 % with SBP ≤ 100 mmHg, 5 % with SBP ≥ 160, 20 % with SBP ≥ 140, 5 % with DBP ≤ 60, 5 % with
DBP ≥ 100 and 20 % with DBP ≥ 85 mmHg (:data:`ISO81060_2_BP_REQUIREMENTS`).

Here the reference readings are the steps of the test episodes. A validation takes the same
number of readings from each subject, so each subject counts equally: a share is the mean over
subjects of the share of that subject's steps (a subject recorded for ten hours does not
outweigh one recorded for one).

* :func:`test_population`: one row per subject: steps, hours, record segments, reference BP
  summary, and what a subjects table adds (sex, age, BP category, rhythm of a virtual subject).
* :func:`iso81060_2_sample_requirements`: each requirement, what it needs, what the test
  population has, and whether it is met.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bprl.evaluation.logs import BP_KINDS
from bprl.evaluation.standards import AAMI_MIN_SUBJECTS

__all__ = [
    "ISO81060_2_BP_REQUIREMENTS",
    "ISO81060_2_MIN_SEX_SHARE_PCT",
    "SUBJECT_META_COLUMNS",
    "iso81060_2_sample_requirements",
    "reference_steps",
    "test_population",
]

#: ISO 81060-2:2018 reference-BP distribution: (label, BP kind, "le"/"ge", threshold mmHg,
#: least share of the reference readings in %)
ISO81060_2_BP_REQUIREMENTS: tuple[tuple[str, str, str, float, float], ...] = (
    ("SBP ≤ 100 mmHg", "sbp", "le", 100.0, 5.0),
    ("SBP ≥ 140 mmHg", "sbp", "ge", 140.0, 20.0),
    ("SBP ≥ 160 mmHg", "sbp", "ge", 160.0, 5.0),
    ("DBP ≤ 60 mmHg", "dbp", "le", 60.0, 5.0),
    ("DBP ≥ 85 mmHg", "dbp", "ge", 85.0, 20.0),
    ("DBP ≥ 100 mmHg", "dbp", "ge", 100.0, 5.0),
)

#: ISO 81060-2:2018: at least this share of each sex, %
ISO81060_2_MIN_SEX_SHARE_PCT = 30.0

#: columns of a subjects table (e.g. a virtual cohort's manifest) that :func:`test_population` keeps
SUBJECT_META_COLUMNS: tuple[str, ...] = ("sex", "age_years", "category", "af_rate_per_h", "ectopic_prob")


def reference_steps(log: pd.DataFrame) -> pd.DataFrame:
    """The reference of each test step once: the rows of the log's first policy and its lowest seed
    (every policy replays the same steps), ``subject_id, episode, t_s, segment, ref_sbp_mmhg,
    ref_dbp_mmhg, af_share`` (``segment`` 0 and ``af_share`` NaN where the log has none)."""
    policy = log["policy"].iloc[0]
    first = log[log["policy"] == policy]
    first = first[first["seed"] == first["seed"].min()]
    cols = ["subject_id", "episode", "t_s", "ref_sbp_mmhg", "ref_dbp_mmhg"]
    out = first[cols + [c for c in ("segment", "af_share") if c in first]].copy()
    if "segment" not in out:
        out["segment"] = 0
    if "af_share" not in out:
        out["af_share"] = np.nan
    return out.reset_index(drop=True)


def test_population(log: pd.DataFrame, subjects: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per test subject: what was replayed and what the reference BP did.

    Args:
        log: a checked episode log (:func:`bprl.evaluation.check_episode_log`).
        subjects: optional per-subject table with a ``subject_id`` column (e.g. the virtual cohort's
            manifest); its :data:`SUBJECT_META_COLUMNS` are joined, one row per subject.

    Returns:
        ``subject_id``, ``n_steps``, ``hours`` (steps × the median step), ``n_segments``,
        ``<bp>_mean_mmhg``, ``<bp>_sd_mmhg``, ``<bp>_min_mmhg``, ``<bp>_max_mmhg`` of the reference
        (SBP and DBP), then the subjects table's columns that are present; sorted by subject.
    """
    ref = reference_steps(log)
    rows = []
    for sid, g in ref.groupby("subject_id", sort=True):
        dt = np.diff(np.sort(g["t_s"].to_numpy(float)))
        dt = dt[dt > 0]
        step_s = float(np.median(dt)) if dt.size else math.nan
        row: dict[str, object] = {
            "subject_id": str(sid),
            "n_steps": len(g),
            "hours": len(g) * step_s / 3600.0 if math.isfinite(step_s) else math.nan,
            "n_segments": int(g[["episode", "segment"]].drop_duplicates().shape[0]),
        }
        for bp in BP_KINDS:
            v = g[f"ref_{bp}_mmhg"].to_numpy(float)
            v = v[np.isfinite(v)]
            row[f"{bp}_mean_mmhg"] = float(v.mean()) if v.size else math.nan
            row[f"{bp}_sd_mmhg"] = float(v.std(ddof=1)) if v.size > 1 else math.nan
            row[f"{bp}_min_mmhg"] = float(v.min()) if v.size else math.nan
            row[f"{bp}_max_mmhg"] = float(v.max()) if v.size else math.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    if subjects is not None and "subject_id" in subjects and not out.empty:
        meta = subjects.assign(subject_id=subjects["subject_id"].astype(str))
        keep = [c for c in SUBJECT_META_COLUMNS if c in meta]
        if keep:
            meta = meta.drop_duplicates("subject_id").set_index("subject_id")[keep]
            out = out.join(meta, on="subject_id")
    return out


def _share_pct(ref: pd.DataFrame, bp: str, op: str, threshold: float) -> float:
    """Mean over subjects of the % of a subject's finite reference values beyond ``threshold``."""
    shares = []
    for _sid, g in ref.groupby("subject_id", sort=True):
        v = g[f"ref_{bp}_mmhg"].to_numpy(float)
        v = v[np.isfinite(v)]
        if v.size:
            hit = v <= threshold if op == "le" else v >= threshold
            shares.append(100.0 * float(hit.mean()))
    return float(np.mean(shares)) if shares else math.nan


def iso81060_2_sample_requirements(log: pd.DataFrame, subjects: pd.DataFrame | None = None) -> pd.DataFrame:
    """The test population against ISO 81060-2:2018's sample requirements.

    Args:
        log: a checked episode log.
        subjects: optional subjects table with ``subject_id`` and ``sex`` (``M``/``F``); without
            it the sex requirement is reported as not assessable.

    Returns:
        One row per requirement: ``requirement``, ``required`` (text), ``measured`` (number: subjects
        or %), ``met`` (True / False; None when it cannot be assessed).
    """
    ref = reference_steps(log)
    n = int(ref["subject_id"].nunique())
    rows: list[dict[str, object]] = [
        {
            "requirement": "subjects",
            "required": f"≥ {AAMI_MIN_SUBJECTS}",
            "measured": float(n),
            "met": n >= AAMI_MIN_SUBJECTS,
        }
    ]
    sex = None
    if subjects is not None and {"subject_id", "sex"} <= set(subjects.columns):
        tested = set(ref["subject_id"].astype(str))
        s = subjects.assign(subject_id=subjects["subject_id"].astype(str)).drop_duplicates("subject_id")
        sex = s.loc[s["subject_id"].isin(tested), "sex"].astype(str).str.upper().str[:1]
    for label, code in (("female subjects", "F"), ("male subjects", "M")):
        share = 100.0 * float((sex == code).mean()) if sex is not None and len(sex) else math.nan
        rows.append(
            {
                "requirement": label,
                "required": f"≥ {ISO81060_2_MIN_SEX_SHARE_PCT:g} %",
                "measured": share,
                "met": None if math.isnan(share) else share >= ISO81060_2_MIN_SEX_SHARE_PCT,
            }
        )
    for label, bp, op, threshold, need_pct in ISO81060_2_BP_REQUIREMENTS:
        share = _share_pct(ref, bp, op, threshold)
        rows.append(
            {
                "requirement": f"readings with {label}",
                "required": f"≥ {need_pct:g} %",
                "measured": share,
                "met": None if math.isnan(share) else share >= need_pct,
            }
        )
    return pd.DataFrame(rows)
