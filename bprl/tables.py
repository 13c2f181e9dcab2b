"""Tables that pass between bprl's rooms: column schemas, the replay-set folder, atomic writes.

Declared as data so that producers and consumers agree, and so tests can check
a table against its schema. Units are in the names.

Replay table (one Parquet file per record, built by :mod:`bprl.features`, with
estimator columns filled by :mod:`bprl.estimator`): one row per environment step.
Episode log (written by the runner from environment ``info``; read by
:mod:`bprl.evaluation`): one row per step of one policy on one subject and seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# ---------------------------------------------------------------- replay table
#: identity and timing columns of a replay table
REPLAY_INDEX: dict[str, str] = {
    "subject_id": "string",
    "record_id": "string",
    "step": "int64",  # 0, 1, 2, ... in time order
    "t_start_s": "float64",  # window start, seconds from record start
    "t_end_s": "float64",  # window end
}

#: observation features: robust aggregates (median) of valid beats in the window; NaN if none
REPLAY_FEATURES: dict[str, str] = {
    "pat_foot_ms": "float64",  # R peak -> PPG foot (intersecting tangents)
    "pat_maxslope_ms": "float64",  # R peak -> max upstroke slope
    "pat_peak_ms": "float64",  # R peak -> PPG systolic peak
    "rr_ms": "float64",
    "hr_bpm": "float64",
    "ppg_amp": "float64",  # PPG pulse amplitude, record units
    "ppg_rise_time_ms": "float64",  # foot -> systolic peak
    "ppg_width_ms": "float64",  # pulse width at half amplitude
    "ppg_stiffness_index": "float64",  # reflection / stiffness index of the pulse (documented in features)
    "sqi_ecg": "float64",  # 0..1 mean beat template correlation
    "sqi_ppg": "float64",  # 0..1
    "n_beats": "int64",  # beats detected in window
    "valid_beat_share": "float64",  # share of beats with valid PAT features, 0..1
}

#: reference blood pressure from the arterial line: median of valid ABP beats; NaN when too few
REPLAY_REFERENCE: dict[str, str] = {
    "ref_sbp_mmhg": "float64",
    "ref_dbp_mmhg": "float64",
    "ref_map_mmhg": "float64",
    "ref_valid_share": "float64",  # share of ABP beats in the window accepted as arterial, 0..1
}

#: calibration-free estimator output, filled by bprl.estimator (NaN when the window has no usable signal)
REPLAY_ESTIMATE: dict[str, str] = {
    "est_sbp_mmhg": "float64",
    "est_dbp_mmhg": "float64",
}

REPLAY_COLUMNS: dict[str, str] = {**REPLAY_INDEX, **REPLAY_FEATURES, **REPLAY_REFERENCE}

# ----------------------------------------------------------------- episode log
#: one row per environment step
EPISODE_LOG_COLUMNS: dict[str, str] = {
    "policy": "string",  # policy name as in the experiment file
    "seed": "int64",
    "subject_id": "string",
    "episode": "int64",  # episode index for this (policy, seed)
    "step": "int64",  # step within the episode
    "t_s": "float64",  # window end time in seconds from record start
    "est_sbp_mmhg": "float64",  # raw estimator output
    "est_dbp_mmhg": "float64",
    "corr_sbp_mmhg": "float64",  # corrected (calibrated) estimate the policy reports
    "corr_dbp_mmhg": "float64",
    "ref_sbp_mmhg": "float64",  # reference; NaN where none (never shown to the policy)
    "ref_dbp_mmhg": "float64",
    "cuff": "bool",  # a cuff reading was taken at this step
    "cuff_sbp_mmhg": "float64",  # the reading (NaN when no cuff)
    "cuff_dbp_mmhg": "float64",
    "reward": "float64",
}


def check_columns(df: pd.DataFrame, schema: dict[str, str], what: str) -> None:
    """Raise ValueError naming ``what`` and the missing columns if ``df`` lacks any of ``schema``."""
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}")


# ------------------------------------------------------------------ atomic writes
def current_umask() -> int:
    """The process's file-mode creation mask, read without changing it where the OS allows.

    Linux shows it in ``/proc/self/status``; elsewhere it is read with ``os.umask`` (set and
    restored at once).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def default_dir_mode() -> int:
    """The mode ``os.mkdir`` gives a new folder: ``0o777 & ~umask``."""
    return 0o777 & ~current_umask()


def make_temp_dir(parent: str | os.PathLike[str], prefix: str, suffix: str = ".tmp") -> Path:
    """A new temporary folder in ``parent`` that becomes a result when renamed: normal permissions.

    ``tempfile.mkdtemp`` makes folders ``0700``; this one gets ``0o777 & ~umask``, like
    ``os.mkdir``, so the folder renamed into place is readable as the user's umask allows.
    """
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    os.chmod(tmp, default_dir_mode())
    return tmp


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    A crash or exception inside the block leaves no half-written ``path`` (the
    temporary file is removed). Parent folders are created. The file gets the mode a plain
    ``open(path, "w")`` would give it (``0o666 & ~umask``), not ``mkstemp``'s ``0600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():  # the block may have replaced the file: the mode is set on what is there
            os.chmod(tmp_path, default_file_mode())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_parquet_atomic(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` to Parquet at ``path`` atomically (temp file, then rename)."""
    with atomic_output(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_text_atomic(text: str, path: str | os.PathLike[str]) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


# ------------------------------------------------------------------- replay set
#: split names, in order
SPLITS: tuple[str, ...] = ("train", "val", "test")

REPLAY_SET_INDEX = "subjects.csv"
REPLAY_SET_INFO = "replay_set.json"


@dataclass
class ReplaySet:
    """A folder of replay tables ready for the environments.

    Layout::

        subjects.csv      subject_id, split (train/val/test), table (path relative to the folder)
        replay_set.json   provenance: cohort, feature config, estimator checkpoint hash, ...
        tables/<subject_id>.parquet   REPLAY_COLUMNS + REPLAY_ESTIMATE, rows in step order

    Attributes:
        root: the folder.
        subjects: the ``subjects.csv`` table.
        info: the ``replay_set.json`` provenance dictionary.
    """

    root: Path
    subjects: pd.DataFrame
    info: dict

    def subject_ids(self, split: str | None = None) -> list[str]:
        """Subject ids of ``split`` (all subjects when ``None``), sorted."""
        df = self.subjects if split is None else self.subjects[self.subjects["split"] == split]
        return sorted(df["subject_id"].astype(str))

    def table(self, subject_id: str) -> pd.DataFrame:
        """The replay table of one subject."""
        row = self.subjects[self.subjects["subject_id"].astype(str) == subject_id]
        if row.empty:
            raise KeyError(f"{self.root}: no subject {subject_id!r}")
        return pd.read_parquet(self.root / str(row["table"].iloc[0]))


def concat_records(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One subject's replay table from the tables of its records, in the given (record) order.

    Times are shifted so each record starts where the previous one ended (``t_end_s`` of its last
    window) and ``step`` is renumbered 0, 1, ...; gaps between records are not kept.
    """
    pieces, shift = [], 0.0
    for part in parts:
        t = part.copy()
        t["t_start_s"] = t["t_start_s"] + shift
        t["t_end_s"] = t["t_end_s"] + shift
        if len(t):
            shift = float(t["t_end_s"].max())
        pieces.append(t)
    table = pd.concat(pieces, ignore_index=True)
    table["step"] = np.arange(len(table), dtype=np.int64)
    return table


def write_replay_set(
    out_dir: str | os.PathLike[str],
    tables: dict[str, pd.DataFrame],
    splits: dict[str, str],
    info: dict | None = None,
) -> ReplaySet:
    """Write a replay set: one Parquet table per subject, ``subjects.csv`` and ``replay_set.json``.

    Args:
        out_dir: destination folder (created).
        tables: subject id -> replay table with :data:`REPLAY_COLUMNS` and :data:`REPLAY_ESTIMATE`.
        splits: subject id -> ``"train"``, ``"val"`` or ``"test"``.
        info: provenance written to ``replay_set.json``.
    """
    out = Path(out_dir)
    rows = []
    for sid in sorted(tables):
        split = splits.get(sid)
        if split not in SPLITS:
            raise ValueError(f"subject {sid!r}: split {split!r} is not one of {SPLITS}")
        check_columns(tables[sid], {**REPLAY_COLUMNS, **REPLAY_ESTIMATE}, f"replay table of {sid}")
        rel = f"tables/{sid}.parquet"
        write_parquet_atomic(tables[sid], out / rel)
        rows.append({"subject_id": sid, "split": split, "table": rel})
    subjects = pd.DataFrame(rows, columns=["subject_id", "split", "table"])
    with atomic_output(out / REPLAY_SET_INDEX) as tmp:
        subjects.to_csv(tmp, index=False)
    write_text_atomic(json.dumps(info or {}, indent=2, sort_keys=True, default=str), out / REPLAY_SET_INFO)
    return ReplaySet(out, subjects, info or {})


def read_replay_set(root: str | os.PathLike[str]) -> ReplaySet:
    """Open a replay set written by :func:`write_replay_set`; ValueError naming the file when malformed."""
    root = Path(root)
    index = root / REPLAY_SET_INDEX
    if not index.is_file():
        raise ValueError(f"{index}: not a replay set (no {REPLAY_SET_INDEX})")
    subjects = pd.read_csv(index, dtype={"subject_id": str, "split": str, "table": str})
    check_columns(subjects, {"subject_id": "", "split": "", "table": ""}, str(index))
    info_path = root / REPLAY_SET_INFO
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    return ReplaySet(root, subjects, info)
