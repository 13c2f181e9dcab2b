"""Estimates into replay tables: fill ``est_sbp_mmhg`` / ``est_dbp_mmhg``, cached per table and estimator.

:func:`add_estimates` fills one table; :func:`estimate_replay_table` does it for a record's
table and caches the result under the table's key plus the estimator's fingerprint;
:func:`estimate_tables` does many, recording failures instead of raising.

>>> import pandas as pd
>>> table_hash(pd.DataFrame({"a": [1, 2]})) == table_hash(pd.DataFrame({"a": [1, 2]}))
True
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bprl.cache_versions import read_stamped_parquet, write_stamped_parquet
from bprl.errors import BprlError
from bprl.estimator.dataset import load_table
from bprl.estimator.estimators import Estimator
from bprl.estimator.linear import PatLinearEstimator
from bprl.schemas import REPLAY_ESTIMATE
from bprl.sources import Record, read_record

__all__ = ["add_estimates", "estimate_replay_table", "estimate_tables", "table_hash"]


def add_estimates(table: pd.DataFrame, record: Record | None, estimator: Estimator) -> pd.DataFrame:
    """A copy of ``table`` with ``est_sbp_mmhg`` / ``est_dbp_mmhg`` filled per step (NaN where no usable input).

    Args:
        table: a replay table.
        record: the record it was built from (None for estimators that read only the table).
        estimator: any :class:`~bprl.estimator.estimators.Estimator`.

    Raises:
        EstimatorError: the estimator cannot use the table or record.
    """
    sbp, dbp = estimator.predict_table(table, record)
    out = table.copy()
    out["est_sbp_mmhg"] = np.asarray(sbp, dtype=np.float64)
    out["est_dbp_mmhg"] = np.asarray(dbp, dtype=np.float64)
    for col, dtype in REPLAY_ESTIMATE.items():
        out[col] = out[col].astype(dtype)
    return out


def _needs_record(estimator: Estimator) -> bool:
    """Whether the estimator reads waveforms (every estimator but the PAT linear one)."""
    return getattr(estimator, "kind", "") != PatLinearEstimator.kind


def table_hash(table: pd.DataFrame) -> str:
    """sha256 of a table's content (columns and values), used as the replay table's cache key."""
    h = hashlib.sha256(json.dumps(list(map(str, table.columns))).encode())
    h.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return h.hexdigest()


def estimate_replay_table(
    record_path: str | os.PathLike[str],
    estimator: Estimator,
    cache_dir: str | os.PathLike[str],
    feature_config: Any = None,
    table: pd.DataFrame | None = None,
    table_key: str | None = None,
) -> pd.DataFrame:
    """The replay table of a record with estimates filled, cached under table key + estimator fingerprint.

    The table comes from ``table`` or :func:`bprl.features.load_replay_table` (cached in
    ``cache_dir``); its key is ``table_key``, else :func:`bprl.features.record_cache_key`
    when the table is loaded here, else the table's content hash. The result is stored as
    ``cache_dir/estimates/<sha256>.parquet`` with the major versions of numpy, pandas and torch;
    an entry built under others, or damaged, is rebuilt with a log line (:mod:`bprl.cache_versions`).

    Raises:
        EstimatorError, FeatureError, RecordError: the table or its estimates cannot be made.
    """
    cache = Path(cache_dir)
    if table is None:
        from bprl import features

        table = load_table(record_path, feature_config, cache)
        table_key = table_key or features.record_cache_key(record_path, feature_config)
    key = hashlib.sha256(f"{table_key or table_hash(table)}|{estimator.fingerprint()}".encode()).hexdigest()
    path = cache / "estimates" / f"{key[:32]}.parquet"
    cached = read_stamped_parquet(path)  # None when absent, damaged or built under other major versions
    if cached is not None:
        return cached
    record = read_record(record_path) if _needs_record(estimator) else None
    out = add_estimates(table, record, estimator)
    write_stamped_parquet(out, path)
    return out


def estimate_tables(
    items: Iterable[tuple[str | os.PathLike[str], pd.DataFrame]], estimator: Estimator
) -> tuple[dict[str, pd.DataFrame], list[dict[str, str]]]:
    """Fill estimates of many (record path, table) pairs; failures are skipped and recorded, not raised.

    Returns:
        the filled tables by record path, and ``{"record": ..., "error": ...}`` per failure.
    """
    done: dict[str, pd.DataFrame] = {}
    failed: list[dict[str, str]] = []
    for path, table in items:
        try:
            record = read_record(path) if _needs_record(estimator) else None
            done[str(path)] = add_estimates(table, record, estimator)
        except BprlError as exc:
            failed.append({"record": str(path), "error": str(exc)})
    return done, failed
