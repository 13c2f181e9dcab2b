"""The replay set: the on-disk folder of per-subject replay tables that the environments replay.

Layout::

    subjects.csv      subject_id, split (train/val/test), table (path relative to the folder)
    replay_set.json   provenance: cohort, feature config, estimator checkpoint hash, ...
    tables/<subject_id>.parquet   REPLAY_COLUMNS + REPLAY_ESTIMATE, rows in step order

:func:`write_replay_set` writes one (every file atomically), :func:`read_replay_set` opens one
as a :class:`ReplaySet`; :func:`concat_records` joins the tables of a subject's records into
the one table of the subject.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bprl.features.pat_offsets import pat_offset_steps
from bprl.io import atomic_output, write_json_atomic, write_parquet_atomic
from bprl.schemas import REPLAY_ESTIMATE, REPLAY_REQUIRED, SPLITS, check_columns

__all__ = [
    "REPLAY_SET_INDEX",
    "REPLAY_SET_INFO",
    "ReplaySet",
    "concat_records",
    "read_replay_set",
    "write_replay_set",
]

#: file name of a replay set's subject index
REPLAY_SET_INDEX = "subjects.csv"
#: file name of a replay set's provenance
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
        """The replay table of one subject.

        Raises:
            KeyError: the set has no such subject.
        """
        row = self.subjects[self.subjects["subject_id"].astype(str) == subject_id]
        if row.empty:
            raise KeyError(f"{self.root}: no subject {subject_id!r}")
        return pd.read_parquet(self.root / str(row["table"].iloc[0]))


def concat_records(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One subject's replay table from the tables of its records, in the given (record) order.

    Times are shifted so each record starts where the previous one ended (``t_end_s`` of its last
    window) and ``step`` is renumbered 0, 1, ...; gaps between records are not kept. ``segment``
    numbers the records 0, 1, ... (the environments show it and flag each boundary).
    ``pat_offset_ms`` is recomputed over the joined table, so PPG timing offsets at record
    boundaries are flagged on the first step of the later record
    (:func:`bprl.features.pat_offsets.pat_offset_steps`); tables written before the timing
    columns (:data:`bprl.schemas.REPLAY_TIMING`) existed get them, ``r_abp_delay_ms`` all NaN.

    Args:
        parts: replay tables of the subject's records, in record order (left untouched).

    Returns:
        The joined table.
    """
    pieces, shift = [], 0.0
    for k, part in enumerate(parts):
        t = part.copy()
        t["segment"] = np.int64(k)
        t["t_start_s"] = t["t_start_s"] + shift
        t["t_end_s"] = t["t_end_s"] + shift
        if len(t):
            shift = float(t["t_end_s"].max())
        pieces.append(t)
    table = pd.concat(pieces, ignore_index=True)
    table["step"] = np.arange(len(table), dtype=np.int64)
    if {"pat_foot_ms", "hr_bpm"} <= set(table.columns):  # a replay table
        if "r_abp_delay_ms" not in table:
            table["r_abp_delay_ms"] = np.nan
        table["pat_offset_ms"] = pat_offset_steps(table)
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
        tables: subject id -> replay table with :data:`REPLAY_REQUIRED` and :data:`REPLAY_ESTIMATE`
            (the optional :data:`REPLAY_TIMING` columns are kept when present).
        splits: subject id -> ``"train"``, ``"val"`` or ``"test"``.
        info: provenance written to ``replay_set.json``.

    Returns:
        The replay set written.

    Raises:
        ValueError: a subject has no valid split, or its table lacks columns.
    """
    out = Path(out_dir)
    rows = []
    for sid in sorted(tables):
        split = splits.get(sid)
        if split not in SPLITS:
            raise ValueError(f"subject {sid!r}: split {split!r} is not one of {SPLITS}")
        check_columns(tables[sid], {**REPLAY_REQUIRED, **REPLAY_ESTIMATE}, f"replay table of {sid}")
        rel = f"tables/{sid}.parquet"
        write_parquet_atomic(tables[sid], out / rel)
        rows.append({"subject_id": sid, "split": split, "table": rel})
    subjects = pd.DataFrame(rows, columns=["subject_id", "split", "table"])
    with atomic_output(out / REPLAY_SET_INDEX) as tmp:
        subjects.to_csv(tmp, index=False)
    write_json_atomic(info or {}, out / REPLAY_SET_INFO, default=str)
    return ReplaySet(out, subjects, info or {})


def read_replay_set(root: str | os.PathLike[str]) -> ReplaySet:
    """Open a replay set written by :func:`write_replay_set`.

    Args:
        root: the replay set's folder.

    Returns:
        The replay set (tables are read on demand by :meth:`ReplaySet.table`).

    Raises:
        ValueError: naming the file, when the folder is not a replay set or its index is malformed.
    """
    root = Path(root)
    index = root / REPLAY_SET_INDEX
    if not index.is_file():
        raise ValueError(f"{index}: not a replay set (no {REPLAY_SET_INDEX})")
    subjects = pd.read_csv(index, dtype={"subject_id": str, "split": str, "table": str})
    check_columns(subjects, {"subject_id": "", "split": "", "table": ""}, str(index))
    info_path = root / REPLAY_SET_INFO
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    return ReplaySet(root, subjects, info)
