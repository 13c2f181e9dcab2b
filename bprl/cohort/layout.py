"""The one accessor of a virtual cohort's folder: file names, paths, manifest, ground truth, summary.

Output layout (a contract for the features, estimator, env and runner stages)::

    OUT/cohort.yaml                          spec, seed, n_subjects, hours
    OUT/manifest.parquet, OUT/manifest.csv   one row per subject: subject_id, record_id, split, hours, parameters
                                             (+ domain draws: ppg_delay_ms, fs_hz, ... when randomised)
    OUT/waves/<subject_id>/<record_id>/<record_id>.hea + .dat   WFDB, channels II (250 Hz), Pleth, ABP (125 Hz)
    OUT/truth/<subject_id>.parquet           ground-truth beat table (:data:`TRUTH_COLUMNS`)

Subject ``i`` (0-based) is ``v{i+1:04d}`` with the one record ``v{i+1:04d}_0001``. Any folder
with the same layout (a manifest and ``waves/``) can be read with these functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bprl.errors import CohortError
from bprl.io import atomic_output, write_parquet_atomic, write_text_atomic
from bprl.splits import SPLITS

__all__ = [
    "COHORT_FILE",
    "COHORT_FORMAT",
    "MANIFEST_CSV",
    "MANIFEST_PARQUET",
    "TRUTH_COLUMNS",
    "describe_cohort",
    "find_manifest",
    "load_manifest",
    "read_cohort_meta",
    "read_manifest",
    "read_truth",
    "record_folder",
    "record_id_for",
    "record_path",
    "subject_folder",
    "subject_id_for",
    "truth_path",
    "write_cohort_meta",
    "write_manifest",
]

COHORT_FILE = "cohort.yaml"
COHORT_FORMAT = 1
MANIFEST_PARQUET = "manifest.parquet"
MANIFEST_CSV = "manifest.csv"
WAVES_DIR = "waves"
TRUTH_DIR = "truth"

#: ground-truth beat table: column -> (dtype, meaning)
TRUTH_COLUMNS: dict[str, tuple[str, str]] = {
    "r_time_s": ("float64", "time of the R-wave maximum of the noiseless ECG, s from record start"),
    "rr_ms": ("float64", "interval from the previous R peak"),
    "hr_bpm": ("float64", "60000 / rr_ms"),
    "pep_ms": ("float64", "pre-ejection period"),
    "ptt_ms": ("float64", "pulse transit time heart -> finger, L / PWV"),
    "pat_ms": (
        "float64",
        "pep_ms + ptt_ms: R peak -> PPG foot (intersecting tangents of the noiseless pulse)",
    ),
    "ppg_foot_s": ("float64", "r_time_s + pat_ms / 1000"),
    "abp_foot_s": ("float64", "intersecting-tangents foot of the ABP upstroke (radial artery)"),
    "sbp_mmhg": ("float64", "max of the noiseless ABP pulse of this beat"),
    "dbp_mmhg": ("float64", "min of the noiseless ABP just before this beat's upstroke"),
    "map_mmhg": ("float64", "dbp + (sbp - dbp) / 3, the pressure that sets PWV"),
    "pwv_m_s": ("float64", "pulse-wave velocity (Moens-Korteweg, Hughes)"),
    "sympathetic_tone": ("float64", "latent sympathetic tone (0 = baseline, ~+-1 = strong)"),
    "ectopic": ("bool", "ventricular ectopic beat (premature, wide QRS, weak pulse)"),
    "af": ("bool", "beat inside an atrial-fibrillation episode"),
    "ecg_artefact": ("bool", "ECG around this R peak touched by motion/EMG noise or a dropout"),
    "ppg_artefact": ("bool", "PPG pulse touched by motion, low perfusion or a dropout"),
    "abp_artefact": ("bool", "ABP pulse touched by a flush, zeroing, damping or a dropout"),
}


# ---------------------------------------------------------------- names and paths
def subject_id_for(index: int) -> str:
    """Id of subject ``index`` (0-based) of a virtual cohort: ``v0001``, ``v0002``, ..."""
    return f"v{index + 1:04d}"


def record_id_for(index: int) -> str:
    """Id of the one record of subject ``index`` (0-based): ``v0001_0001``, ..."""
    return f"{subject_id_for(index)}_0001"


def subject_folder(cohort_dir: str | os.PathLike[str], subject_id: str) -> Path:
    """Folder of a subject's records: ``waves/<subject_id>``."""
    return Path(cohort_dir) / WAVES_DIR / subject_id


def record_folder(cohort_dir: str | os.PathLike[str], subject_id: str, record_id: str) -> Path:
    """Folder of one record: ``waves/<subject_id>/<record_id>`` (holds ``<record_id>.hea`` and ``.dat``)."""
    return subject_folder(cohort_dir, subject_id) / record_id


def truth_path(cohort_dir: str | os.PathLike[str], subject_id: str) -> Path:
    """Path of a subject's ground-truth beat table: ``truth/<subject_id>.parquet``."""
    return Path(cohort_dir) / TRUTH_DIR / f"{subject_id}.parquet"


def record_path(cohort_dir: str | os.PathLike[str], subject_id: str, record_id: str | None = None) -> Path:
    """Path of a record's WFDB header ``waves/<sid>/<rid>/<rid>.hea``.

    Args:
        cohort_dir: the cohort folder.
        subject_id: the subject.
        record_id: the record; ``None``: the subject's (first) record in the manifest.

    Returns:
        the header path (given ``record_id``, whether or not it exists).

    Raises:
        CohortError: ``record_id`` is ``None`` and the manifest is missing or lacks the subject.
    """
    if record_id is None:
        m = load_manifest(cohort_dir)
        row = m[m["subject_id"].astype(str) == subject_id]
        if row.empty:
            raise CohortError(f"{cohort_dir}: no subject {subject_id!r}")
        record_id = str(row["record_id"].iloc[0])
    return record_folder(cohort_dir, subject_id, record_id) / f"{record_id}.hea"


# ---------------------------------------------------------------- cohort.yaml
def read_cohort_meta(cohort_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The contents of ``cohort.yaml`` (format, seed, hours, n_subjects, spec); ``None`` when absent."""
    path = Path(cohort_dir) / COHORT_FILE
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CohortError(f"{path}: cannot read cohort file: {exc}") from exc


def write_cohort_meta(cohort_dir: str | os.PathLike[str], meta: dict[str, Any]) -> Path:
    """Write ``cohort.yaml`` atomically (keys sorted) and return its path."""
    return write_text_atomic(yaml.safe_dump(meta, sort_keys=True), Path(cohort_dir) / COHORT_FILE)


# ---------------------------------------------------------------- manifest
def find_manifest(cohort_dir: str | os.PathLike[str]) -> Path | None:
    """The manifest file of a cohort folder: ``manifest.parquet``, else ``manifest.csv``, else ``None``."""
    root = Path(cohort_dir)
    for name in (MANIFEST_PARQUET, MANIFEST_CSV):
        if (root / name).is_file():
            return root / name
    return None


def _need_cohort(cohort_dir: str | os.PathLike[str]) -> Path:
    """The manifest path; CohortError when the folder holds none."""
    path = find_manifest(cohort_dir)
    if path is None:
        raise CohortError(
            f"{Path(cohort_dir)}: not a virtual cohort (no {MANIFEST_PARQUET} or {MANIFEST_CSV})"
        )
    return path


def load_manifest(cohort_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The cohort's manifest as stored: one row per subject (subject_id, record_id, split, hours, parameters).

    Reads ``manifest.parquet``, or ``manifest.csv`` when there is no Parquet file.

    Raises:
        CohortError: no manifest in the folder, or an unreadable one.
    """
    path = _need_cohort(cohort_dir)
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"subject_id": str, "record_id": str, "split": str})
    except Exception as exc:  # pyarrow and the csv parser raise several types on corrupt files
        raise CohortError(f"{path}: cannot read manifest: {exc}") from exc


def read_manifest(cohort_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The manifest, checked for use as a dataset index: ids as strings, known and subject-disjoint splits.

    Raises:
        CohortError: no or unreadable manifest, missing ``subject_id``/``record_id``/``split``
            columns, unknown split values, or a subject in more than one split.
    """
    man = load_manifest(cohort_dir)
    path = find_manifest(cohort_dir)
    missing = [c for c in ("subject_id", "record_id", "split") if c not in man.columns]
    if missing:
        raise CohortError(f"{path}: manifest lacks columns {missing}")
    man = man.assign(subject_id=man["subject_id"].astype(str), record_id=man["record_id"].astype(str))
    bad = sorted(set(man["split"].astype(str)) - set(SPLITS))
    if bad:
        raise CohortError(f"{path}: unknown split values {bad} (expected {list(SPLITS)})")
    per_subject = man.groupby("subject_id")["split"].nunique()
    shared = per_subject[per_subject > 1].index.tolist()
    if shared:
        raise CohortError(f"{path}: subjects {shared} are in more than one split")
    return man


def write_manifest(cohort_dir: str | os.PathLike[str], manifest: pd.DataFrame) -> Path:
    """Write ``manifest.parquet`` and ``manifest.csv`` atomically; returns the Parquet path."""
    root = Path(cohort_dir)
    write_parquet_atomic(manifest, root / MANIFEST_PARQUET)
    with atomic_output(root / MANIFEST_CSV) as tmp:
        manifest.to_csv(tmp, index=False)
    return root / MANIFEST_PARQUET


# ---------------------------------------------------------------- ground truth and summary
def read_truth(cohort_dir: str | os.PathLike[str], subject_id: str) -> pd.DataFrame:
    """The ground-truth beat table of one subject (:data:`TRUTH_COLUMNS`).

    Raises:
        CohortError: the subject has no truth table.
    """
    path = truth_path(cohort_dir, subject_id)
    if not path.is_file():
        raise CohortError(f"{path}: no truth table for subject {subject_id!r}")
    return pd.read_parquet(path)


def _percentiles(x: pd.Series) -> dict[str, float]:
    """Mean, SD and the 5/25/50/75/95th percentiles of ``x``."""
    q = np.percentile(x, [5, 25, 50, 75, 95])
    return {
        "mean": float(x.mean()),
        "sd": float(x.std()),
        **{f"p{k}": float(v) for k, v in zip((5, 25, 50, 75, 95), q, strict=True)},
    }


def _aami_targets(s: pd.Series, d: pd.Series) -> dict[str, float]:
    """Shares of readings in the ISO 81060-2 / AAMI distribution bands (SBP ``s``, DBP ``d``, mmHg)."""
    return {
        "sbp_ge_140": float((s >= 140).mean()),
        "sbp_le_100": float((s <= 100).mean()),
        "sbp_ge_160": float((s >= 160).mean()),
        "dbp_ge_85": float((d >= 85).mean()),
        "dbp_le_60": float((d <= 60).mean()),
        "dbp_ge_100": float((d >= 100).mean()),
    }


def describe_cohort(cohort_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Population summary: BP distribution, hypertension share, AAMI-style targets, artefact, ectopy and AF burden.

    "Readings" are per-minute medians of the beat-level truth (all beats, artefacts included,
    since the truth is noiseless).

    Raises:
        CohortError: not a cohort folder, or a subject without a truth table.
    """
    root = Path(cohort_dir)
    m = load_manifest(root)
    readings, beats = [], []
    for sid in m["subject_id"]:
        tr = read_truth(root, sid)
        beats.append(tr.assign(subject_id=sid))
        minute = (tr["r_time_s"] // 60).astype(int)
        readings.append(tr.groupby(minute)[["sbp_mmhg", "dbp_mmhg"]].median().assign(subject_id=sid))
    b = pd.concat(beats, ignore_index=True)
    rd = pd.concat(readings, ignore_index=True)
    subj_sbp = b.groupby("subject_id")["sbp_mmhg"].mean()
    return {
        "n_subjects": len(m),
        "hours_per_subject": float(m["hours"].iloc[0]),
        "splits": {k: int(v) for k, v in m["split"].value_counts().sort_index().items()},
        "categories": {k: int(v) for k, v in m["category"].value_counts().sort_index().items()},
        "n_beats": len(b),
        "n_readings": len(rd),
        "sbp_mmhg": _percentiles(rd["sbp_mmhg"]),
        "dbp_mmhg": _percentiles(rd["dbp_mmhg"]),
        "hr_bpm": _percentiles(b["hr_bpm"]),
        "pat_ms": _percentiles(b["pat_ms"]),
        "hypertensive_subject_share": float((subj_sbp >= 140).mean()),
        "aami_targets": _aami_targets(rd["sbp_mmhg"], rd["dbp_mmhg"]),
        "artefact_share": {c: float(b[f"{c}_artefact"].mean()) for c in ("ecg", "ppg", "abp")},
        "ectopic_beat_share": float(b["ectopic"].mean()),
        "af_beat_share": float(b["af"].mean()),
        "af_subjects": int(b.groupby("subject_id")["af"].any().sum()),
    }
