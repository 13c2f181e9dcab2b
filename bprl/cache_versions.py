"""The package versions a cached stage was built with, and the check that decides whether it may be reused.

Every on-disk cache of bprl (replay tables in :mod:`bprl.features`, estimates in
:mod:`bprl.estimator`, cached replay sets in :mod:`bprl.env`, the experiment runner's unit
markers in :mod:`bprl.experiments`, trained estimator checkpoints) records the *major* versions
of the packages whose output bytes it depends on::

    {"numpy": "2", "pandas": "3", "torch": "2"}

A cache built under other major versions is rebuilt, never reused silently: the loader calls
:func:`stale_reason` with the recorded stamp and, when it returns a reason, logs it with
:func:`log_rebuild` (logger ``bprl.cache``, level WARNING) and builds the stage again.
Minor and patch releases keep caches valid: the lock (``requirements/lock.txt``) fixes them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bprl import provenance
from bprl.provenance import CACHE_PACKAGES, package_version

__all__ = [
    "CACHE_PACKAGES",
    "STAMP_KEY",
    "cache_versions",
    "format_versions",
    "log_rebuild",
    "package_version",
    "parquet_stamp",
    "read_stamped_parquet",
    "stale_reason",
    "write_stamped_parquet",
]

#: Key of the stamp in JSON metadata (replay_set.json, markers, config.json) and Parquet metadata.
STAMP_KEY = "bprl_cache_versions"

logger = logging.getLogger("bprl.cache")


def cache_versions() -> dict[str, str]:
    """``{package: major version}`` of :data:`~bprl.provenance.CACHE_PACKAGES` here: the stamp caches record.

    >>> sorted(cache_versions())
    ['numpy', 'pandas', 'torch']
    """
    return provenance.major_versions(CACHE_PACKAGES)  # looked up at call time: tests patch provenance


def format_versions(versions: Mapping[str, Any]) -> str:
    """``numpy 2, pandas 3, torch 2``."""
    return ", ".join(f"{k} {versions[k]}" for k in sorted(versions))


def stale_reason(recorded: Any, now: Mapping[str, str] | None = None) -> str | None:
    """Why a cache stamped ``recorded`` must be rebuilt here, or ``None`` when it may be reused.

    Args:
        recorded: the stamp stored with the cache (``{package: major}``), or ``None`` when the
            cache stores none (built before bprl stamped its caches).
        now: the stamp of this environment (default :func:`cache_versions`).

    >>> stale_reason({"numpy": "1", "pandas": "3", "torch": "2"}, {"numpy": "2", "pandas": "3", "torch": "2"})
    'built under numpy 1, now numpy 2'
    >>> stale_reason({"numpy": "2"}, {"numpy": "2"}) is None
    True
    """
    now = dict(now) if now is not None else cache_versions()
    if not isinstance(recorded, Mapping):
        return f"it records no package versions (built by an older bprl); now {format_versions(now)}"
    changed = {k: v for k, v in now.items() if str(recorded.get(k, "unknown")) != v}
    if not changed:
        return None
    was = ", ".join(f"{k} {recorded.get(k, 'unknown')}" for k in sorted(changed))
    return f"built under {was}, now {format_versions(changed)}"


def log_rebuild(what: str | os.PathLike[str], reason: str) -> None:
    """Say (logger ``bprl.cache``, WARNING) that the cache ``what`` is rebuilt, and why."""
    logger.warning("%s: cache rebuilt: %s", what, reason)


# ------------------------------------------------------------------ stamped Parquet files
def write_stamped_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` (no index) to Parquet at ``path`` atomically, with :func:`cache_versions` in its metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bprl.io import atomic_output

    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[STAMP_KEY.encode()] = json.dumps(cache_versions(), sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def parquet_stamp(path: str | os.PathLike[str]) -> dict[str, str] | None:
    """The stamp in a Parquet file's metadata, or ``None`` when it has none (OSError etc. propagate)."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(STAMP_KEY.encode())
    if raw is None:
        return None
    stamp = json.loads(raw)
    return stamp if isinstance(stamp, dict) else None


def read_stamped_parquet(path: str | os.PathLike[str]) -> pd.DataFrame | None:
    """A cached Parquet table when it exists and was built under this environment's major versions.

    Returns ``None`` (after logging why, unless the file is simply absent) when the file is
    missing, unreadable, or stamped with other major versions: the caller rebuilds it.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        reason = stale_reason(parquet_stamp(path))
        if reason is None:
            return pd.read_parquet(path)
    except Exception as exc:  # a damaged cache entry is rebuilt, whatever pyarrow raised
        reason = f"unreadable ({type(exc).__name__}: {exc})"
    log_rebuild(path, reason)
    return None
