"""Labelled training windows of a cohort: :class:`WindowDataset`, how it is built, and oversampling weights.

:func:`build_window_dataset` reads a cohort's manifest (:mod:`bprl.cohort.layout`), builds or
loads each record's replay table (:mod:`bprl.features`), cuts windows aligned with its steps
(:mod:`bprl.estimator.windows`) and labels them with the step's reference SBP/DBP.

>>> oversampling_weights([120.0, 120.0, 120.0, 180.0]).round(2).tolist()
[0.67, 0.67, 0.67, 2.0]
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bprl.cohort import layout
from bprl.errors import BprlError, CohortError, EstimatorError
from bprl.estimator.config import ModelConfig
from bprl.estimator.windows import StepWindows, step_windows
from bprl.sources import Record, read_record
from bprl.splits import SPLITS

__all__ = [
    "SBP_BIN_EDGES_MMHG",
    "WindowDataset",
    "build_window_dataset",
    "cohort_record_path",
    "cohort_tables",
    "folder_tables",
    "load_table",
    "oversampling_weights",
    "read_manifest",
    "windows_from_table",
]

#: SBP bin edges for range-stratified oversampling (hypotensive ... stage-2 hypertensive)
SBP_BIN_EDGES_MMHG: tuple[float, ...] = (90.0, 110.0, 130.0, 150.0, 170.0)


@dataclass
class WindowDataset:
    """Labelled windows of a cohort, one entry per valid sub-window of a replay step.

    Attributes:
        x: (n, 2, window_len) z-normalised ECG/PPG windows, float32.
        feats: (n, 2) ``pat_foot_ms``, ``hr_bpm`` of the window's step.
        y: (n, 2) reference SBP, DBP of the window's step in mmHg.
        subject_id: (n,) subject of each window.
        record_id: (n,) record of each window.
        step: (n,) replay step of each window.
        split: (n,) ``train`` / ``val`` / ``test``.
        config: the model layout the windows were cut for.
        source: description of where the data came from (cohort folder, ...).
        skipped: records that could not be used, as ``{"record": ..., "error": ...}``.
    """

    x: np.ndarray
    feats: np.ndarray
    y: np.ndarray
    subject_id: np.ndarray
    record_id: np.ndarray
    step: np.ndarray
    split: np.ndarray
    config: ModelConfig
    source: str = ""
    skipped: list[dict[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, split: str) -> WindowDataset:
        """Windows of one split."""
        m = self.split == split
        return dataclasses.replace(
            self,
            x=self.x[m],
            feats=self.feats[m],
            y=self.y[m],
            subject_id=self.subject_id[m],
            record_id=self.record_id[m],
            step=self.step[m],
            split=self.split[m],
        )

    def subjects(self, split: str | None = None) -> list[str]:
        """Sorted subject ids (of one split)."""
        sid = self.subject_id if split is None else self.subject_id[self.split == split]
        return sorted(set(sid.tolist()))

    def check_disjoint(self) -> None:
        """Raise EstimatorError when a subject appears in more than one split."""
        seen: dict[str, str] = {}
        for sid, sp in set(zip(self.subject_id.tolist(), self.split.tolist(), strict=True)):
            if sid in seen and seen[sid] != sp:
                raise EstimatorError(
                    f"{self.source or 'dataset'}: subject {sid} is in splits {seen[sid]!r} and {sp!r}"
                )
            seen[sid] = sp

    def describe(self) -> dict[str, Any]:
        """Subjects and windows per split, for config.json and the model card."""
        out: dict[str, Any] = {"source": self.source, "n_windows": len(self), "splits": {}}
        for sp in SPLITS:
            m = self.split == sp
            out["splits"][sp] = {
                "subjects": self.subjects(sp),
                "n_subjects": len(self.subjects(sp)),
                "n_windows": int(m.sum()),
            }
        out["n_skipped_records"] = len(self.skipped)
        return out


def read_manifest(cohort_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """:func:`bprl.cohort.layout.read_manifest`, raising EstimatorError (as it always did here).

    Returns:
        the manifest: subject_id, record_id (as strings), split, ...

    Raises:
        EstimatorError: no or unreadable manifest, missing columns, unknown splits, or a
            subject in more than one split.
    """
    try:
        return layout.read_manifest(cohort_dir)
    except CohortError as exc:
        raise EstimatorError(str(exc)) from exc


def cohort_record_path(cohort_dir: str | os.PathLike[str], subject_id: str, record_id: str) -> Path:
    """Header path of a cohort record, ``waves/<sid>/<rid>/<rid>.hea``: :func:`bprl.cohort.layout.record_path`."""
    return layout.record_path(cohort_dir, subject_id, record_id)


def load_table(
    record_path: str | os.PathLike[str],
    feature_config: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
    record: Record | None = None,
) -> pd.DataFrame:
    """The replay table of a record from :mod:`bprl.features` (cached when ``cache_dir`` is given).

    Args:
        record_path: the record's header path.
        feature_config: a :class:`bprl.features.FeatureConfig` (None: defaults).
        cache_dir: the replay-table cache folder (None: no cache).
        record: the record, already read (used when there is no cache).

    Raises:
        FeatureError, RecordError: errors of the feature pipeline, re-raised as they are.
    """
    from bprl import features

    if cache_dir is not None or record is None:
        return features.load_replay_table(record_path, feature_config, cache_dir)
    return features.build_replay_table(record, feature_config)


def windows_from_table(
    table: pd.DataFrame, record: Record, config: ModelConfig, max_windows_per_step: int | None = None
) -> tuple[StepWindows, np.ndarray]:
    """Valid windows of labelled steps and their labels (n, 2) in mmHg; steps without reference BP are dropped.

    Raises:
        EstimatorError: the table lacks reference or timing columns, or the record ECG or PPG.
    """
    for col in ("ref_sbp_mmhg", "ref_dbp_mmhg"):
        if col not in table.columns:
            raise EstimatorError(f"replay table of {record.path}: missing column {col!r}")
    sw = step_windows(table, record, config, max_windows_per_step)
    ref = table[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy(dtype=np.float64)[sw.row]
    keep = np.isfinite(ref).all(axis=1)
    if config.hybrid:
        keep &= np.isfinite(sw.feats).all(axis=1)
    sw = StepWindows(sw.x[keep], sw.feats[keep], sw.row[keep], sw.n_candidates)
    return sw, ref[keep].astype(np.float32)


def build_window_dataset(
    cohort_dir: str | os.PathLike[str],
    config: ModelConfig | None = None,
    feature_config: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
    splits: Sequence[str] = SPLITS,
    max_windows_per_step: int | None = None,
    progress: bool = False,
) -> WindowDataset:
    """Labelled windows of every record of a virtual cohort (or any folder with the same layout).

    Reads ``manifest.parquet``, builds (or loads from ``cache_dir``) each record's
    replay table with :mod:`bprl.features`, and cuts windows aligned with the
    table's steps. Records that fail are skipped and listed in ``skipped``.

    Raises:
        EstimatorError: unusable manifest, no usable record, or a subject in two splits.
    """
    from tqdm.auto import tqdm

    config = config or ModelConfig()
    cohort_dir = Path(cohort_dir)
    man = read_manifest(cohort_dir)
    man = man[man["split"].isin(list(splits))].sort_values(["subject_id", "record_id"])
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "feats", "y", "sid", "rid", "step", "split")}
    skipped: list[dict[str, str]] = []
    rows = tqdm(list(man.itertuples(index=False)), desc="windows", unit="record", disable=not progress)
    for row in rows:
        path = cohort_record_path(cohort_dir, row.subject_id, row.record_id)
        try:
            record = read_record(path)
            table = load_table(path, feature_config, cache_dir, record)
            sw, y = windows_from_table(table, record, config, max_windows_per_step)
        except BprlError as exc:
            skipped.append({"record": str(path), "error": str(exc)})
            continue
        n = len(y)
        parts["x"].append(sw.x)
        parts["feats"].append(sw.feats)
        parts["y"].append(y)
        parts["sid"].append(np.full(n, row.subject_id, dtype=object))
        parts["rid"].append(np.full(n, row.record_id, dtype=object))
        parts["step"].append(table["step"].to_numpy(dtype=np.int64)[sw.row] if "step" in table else sw.row)
        parts["split"].append(np.full(n, str(row.split), dtype=object))
    if not parts["x"]:
        raise EstimatorError(f"{cohort_dir}: no usable records ({len(skipped)} skipped: {skipped[:3]})")
    ds = WindowDataset(
        x=np.concatenate(parts["x"]),
        feats=np.concatenate(parts["feats"]),
        y=np.concatenate(parts["y"]),
        subject_id=np.concatenate(parts["sid"]),
        record_id=np.concatenate(parts["rid"]),
        step=np.concatenate(parts["step"]),
        split=np.concatenate(parts["split"]),
        config=config,
        source=str(cohort_dir),
        skipped=skipped,
    )
    ds.check_disjoint()
    return ds


def oversampling_weights(sbp_mmhg: np.ndarray, edges: Sequence[float] = SBP_BIN_EDGES_MMHG) -> np.ndarray:
    """Sampling weight per window, inverse to the frequency of its SBP range bin (mean weight 1).

    Args:
        sbp_mmhg: reference SBP of each window, mmHg.
        edges: SBP bin edges, mmHg.
    """
    bins = np.digitize(np.asarray(sbp_mmhg, dtype=np.float64), edges)
    counts = np.bincount(bins, minlength=len(edges) + 1).astype(np.float64)
    w = 1.0 / counts[bins]
    return w / w.mean()


TableItems = list[tuple[pd.DataFrame, Record]]


def cohort_tables(
    cohort_dir: str | os.PathLike[str],
    splits: Sequence[str] = SPLITS,
    feature_config: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[TableItems, list[dict[str, str]]]:
    """(replay table, record) of every record of a cohort's ``splits``, and the records skipped.

    Raises:
        EstimatorError: unusable manifest.
    """
    cohort_dir = Path(cohort_dir)
    man = read_manifest(cohort_dir)
    man = man[man["split"].isin(list(splits))].sort_values(["subject_id", "record_id"])
    return _read_tables(
        [cohort_record_path(cohort_dir, r.subject_id, r.record_id) for r in man.itertuples(index=False)],
        feature_config,
        cache_dir,
    )


def folder_tables(
    records_dir: str | os.PathLike[str],
    feature_config: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[TableItems, list[dict[str, str]]]:
    """(replay table, record) of every record under a folder (e.g. real MIMIC-IV segments), sorted by path.

    Records that cannot be read, lack ECG or PPG, or have no step with a reference BP are skipped
    and listed with the reason; a subject's segments keep their path (time) order.

    Raises:
        EstimatorError: the folder does not exist.
    """
    from bprl.sources import find_record_headers

    if not Path(records_dir).is_dir():
        raise EstimatorError(f"{records_dir}: folder does not exist")
    return _read_tables(find_record_headers(records_dir), feature_config, cache_dir)


def _read_tables(
    paths: Sequence[Path], feature_config: Any, cache_dir: str | os.PathLike[str] | None
) -> tuple[TableItems, list[dict[str, str]]]:
    """Read each record and its replay table; skip (and list) those without ECG, PPG or a reference."""
    items: TableItems = []
    skipped: list[dict[str, str]] = []
    for path in paths:
        try:
            record = read_record(path)
            for role in ("ecg", "ppg"):
                record.channel(role)
            table = load_table(path, feature_config, cache_dir, record)
        except BprlError as exc:
            skipped.append({"record": str(path), "error": str(exc)})
            continue
        if "ref_sbp_mmhg" not in table or not np.isfinite(table["ref_sbp_mmhg"].to_numpy(np.float64)).any():
            skipped.append({"record": str(path), "error": "no step with a reference BP (no arterial line)"})
            continue
        items.append((table, record))
    return items, skipped
