"""Batch building of replay tables: every record under a folder, in parallel, skipping bad records.

:func:`build_replay_tables` finds the record headers under a folder
(:func:`bprl.sources.find_record_headers`), builds (or loads from the cache) each record's
replay table in a process pool, and returns the tables built plus a summary of the records
without one: ``skipped`` (readable, but no usable features) or ``error`` (unreadable). A batch
never stops on one bad record; warnings about the records read are reported once each.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from bprl.errors import BprlError, FeatureError, RecordError, RecordWarning
from bprl.features.cache import cache_path, load_replay_table
from bprl.features.config import FeatureConfig
from bprl.sources import find_record_headers, header_roles

__all__ = ["SKIPPED_COLUMNS", "build_replay_tables"]

#: columns of the summary of records without a table (second value of :func:`build_replay_tables`)
SKIPPED_COLUMNS: tuple[str, ...] = ("record_path", "status", "reason")


class _Outcome(NamedTuple):
    """What a worker did with one record.

    Attributes:
        path: the record header.
        table_path: the cached table, or ``""`` when none was built.
        status: ``"ok"``, ``"skipped"`` or ``"error"``.
        reason: why no table was built (``""`` when ``ok``).
        notes: messages of the record warnings raised while reading it, once each.
    """

    path: str
    table_path: str
    status: str
    reason: str
    notes: list[str]


def _table_status(path: str, cfg: FeatureConfig, cache_dir: str) -> tuple[str, str, str]:
    """``(table path or '', status, reason)`` of one record; bprl's errors propagate.

    A record without a PPG channel is skipped before its signals are read; so is one whose
    table has no window with a PAT.
    """
    roles = header_roles(path)
    if "ppg" not in roles:
        return "", "skipped", f"{path}: no PPG channel (roles: {', '.join(roles) or 'none'}): no PAT features"
    table = load_replay_table(path, cfg, cache_dir)
    if not table["pat_foot_ms"].notna().any():
        return (
            "",
            "skipped",
            f"{path}: no window has a PAT (PPG unusable or no valid beat), {len(table)} windows",
        )
    return str(cache_path(path, cfg, cache_dir)), "ok", ""


def _build_one(args: tuple[str, FeatureConfig, str]) -> _Outcome:
    """Worker: build (or load) the table of one record, never raising.

    ``status`` is ``"ok"``; ``"skipped"`` for a readable record without usable features
    (no PPG, no window with a PAT, no ECG, too short, implausible signals); ``"error"``
    for an unreadable record. Record warnings are caught here and returned, so that the
    parent process reports each once.
    """
    path, cfg, cache_dir = args
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RecordWarning)
        try:
            table_path, status, reason = _table_status(path, cfg, cache_dir)
        except RecordError as exc:
            status, reason, table_path = "error", str(exc), ""
        except BprlError as exc:
            status, reason, table_path = "skipped", str(exc), ""
        except Exception as exc:  # a batch never crashes on one bad record
            status, reason, table_path = "error", f"{path}: unexpected {type(exc).__name__}: {exc}", ""
    notes = [str(w.message) for w in caught if issubclass(w.category, RecordWarning)]
    return _Outcome(path, table_path, status, reason, list(dict.fromkeys(notes)))


def _run_jobs(jobs: list[tuple[str, FeatureConfig, str]], workers: int, progress: bool) -> list[_Outcome]:
    """:func:`_build_one` over ``jobs``, in a process pool of ``workers`` when there is more than one of each."""
    from tqdm import tqdm

    if workers > 1 and len(jobs) > 1:
        # spawned, not forked: the rhythm models (LightGBM, OpenMP) may already have run threads in
        # this process, and a forked child can hang on their locks
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as ex:
            return list(
                tqdm(
                    ex.map(_build_one, jobs),
                    total=len(jobs),
                    desc="features",
                    unit="rec",
                    disable=not progress,
                )
            )
    return [_build_one(j) for j in tqdm(jobs, desc="features", unit="rec", disable=not progress)]


def build_replay_tables(
    root: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    config: FeatureConfig | None = None,
    workers: int = 2,
    progress: bool = True,
) -> tuple[dict[str, Path], pd.DataFrame]:
    """Build (or load from cache) the replay tables of every record under ``root``.

    Records without a PPG channel are skipped (reason ``no PPG channel``) before their
    signals are read, and so are records whose table has no window with a PAT; non-regular
    files named ``*.hea`` are listed as errors without being opened. Warnings about the
    records read (:class:`bprl.errors.RecordWarning`: duplicate channel names, ...) are
    re-emitted once each in this process.

    Args:
        root: folder of records (a virtual cohort or a MIMIC-style tree), searched recursively.
        cache_dir: cache folder of the replay tables (:mod:`bprl.features.cache`).
        config: feature settings (default :class:`FeatureConfig`).
        workers: processes (1: build in this process).
        progress: show a progress bar.

    Returns:
        ``(tables, skipped)``: record header path -> cached Parquet path for each built record,
        and a DataFrame ``record_path, status, reason`` of the records without a table
        (``status``: ``"skipped"`` when readable but unusable, ``"error"`` when unreadable).

    Raises:
        FeatureError: ``root`` is not a folder.
    """
    cfg = config or FeatureConfig()
    root = Path(root)
    if not root.is_dir():
        raise FeatureError(f"{root}: folder does not exist")
    jobs = [(str(p), cfg, str(cache_dir)) for p in find_record_headers(root)]
    results = _run_jobs(jobs, workers, progress)
    for outcome in results:
        for msg in outcome.notes:
            warnings.warn(msg, RecordWarning, stacklevel=2)
    tables = {r.path: Path(r.table_path) for r in results if r.status == "ok"}
    skipped = pd.DataFrame(
        [(r.path, r.status, r.reason) for r in results if r.status != "ok"], columns=list(SKIPPED_COLUMNS)
    )
    return tables, skipped
