"""The content-addressed Parquet cache of replay tables.

A record's replay table is stored as ``<cache_dir>/<record>-<key>.parquet``, where the key
(:func:`record_cache_key`) hashes the record's file bytes, the :class:`FeatureConfig` and the
version of the beat and feature code (:func:`feature_code_version`): a changed record, config
or code gives a new file, never a stale table. The file also carries the major versions of the
packages its bytes depend on (:mod:`bprl.cache_versions`); a table cached under other major
versions is rebuilt, with a log line saying why.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

import bprl.beats
from bprl.cache_versions import read_stamped_parquet, write_stamped_parquet
from bprl.errors import FeatureError
from bprl.features.config import FeatureConfig
from bprl.features.replay_table import build_replay_table
from bprl.sources import read_record, require_regular_file

__all__ = ["cache_path", "feature_code_version", "load_replay_table", "record_cache_key"]

#: the packages whose source decides the replay tables' content
_CODE_PACKAGES: tuple[Path, ...] = (Path(bprl.beats.__file__).parent, Path(__file__).parent)


def feature_code_version() -> str:
    """Hash (16 hex digits) of the beat and feature code: ``bprl/beats/*.py``, the shipped rhythm
    models ``bprl/beats/models/*`` and ``bprl/features/*.py``.

    Each file's name (relative to ``bprl/``) and bytes are hashed, in sorted order, so a change
    to any of them, or code moving between them, gives a new version.

    Returns:
        The version, 16 hex digits.
    """
    h = hashlib.sha256()
    for package in _CODE_PACKAGES:
        for mod in sorted([*package.glob("*.py"), *package.glob("models/*")]):
            h.update(f"{package.name}/{mod.relative_to(package).as_posix()}".encode())
            h.update(mod.read_bytes())
    return h.hexdigest()[:16]


def _record_files(path: Path) -> list[Path]:
    """Header and data files of a record: files in its folder whose name starts with the record name."""
    hea = path if path.suffix in (".hea", ".mat") else path.with_suffix(".hea")
    if not os.path.lexists(hea):
        raise FeatureError(f"{path}: record header not found")
    require_regular_file(hea, "record header")  # never hash (open) a FIFO or device
    stem = hea.stem
    if hea.suffix == ".mat":  # a MATLAB excerpt and its sidecar files share its exact stem
        files = sorted(p for p in hea.parent.iterdir() if p.is_file() and p.stem == stem)
    else:  # WFDB: header, signal files (``<rec>.dat``, ``<rec>_e.dat``, ``<rec>e.dat``) and segments
        files = sorted(p for p in hea.parent.iterdir() if p.is_file() and p.name.startswith(stem))
    return files or [hea]


def record_cache_key(record_path: str | os.PathLike[str], config: FeatureConfig | None = None) -> str:
    """Cache key of a record's replay table: hash of its file bytes, the config key and the code version.

    Args:
        record_path: the record (``.hea`` / ``.mat`` path or record name without extension).
        config: feature settings (default :class:`FeatureConfig`).

    Returns:
        The key, 24 hex digits.

    Raises:
        FeatureError: the record header does not exist.
        RecordError: the header is not a regular file (FIFO, device, folder).
    """
    cfg = config or FeatureConfig()
    h = hashlib.sha256()
    for f in _record_files(Path(record_path)):
        h.update(f.name.encode())
        with open(f, "rb") as fh:  # in blocks: signal files can be large
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    h.update(cfg.key().encode())
    h.update(feature_code_version().encode())
    return h.hexdigest()[:24]


def cache_path(
    record_path: str | os.PathLike[str], config: FeatureConfig, cache_dir: str | os.PathLike[str]
) -> Path:
    """Where :func:`load_replay_table` stores the table of ``record_path``.

    Args:
        record_path: the record.
        config: feature settings.
        cache_dir: the cache folder.

    Returns:
        ``<cache_dir>/<record>-<key>.parquet`` (:func:`record_cache_key`).
    """
    p = Path(record_path)
    return Path(cache_dir) / f"{p.stem}-{record_cache_key(p, config)}.parquet"


def load_replay_table(
    record_path: str | os.PathLike[str],
    config: FeatureConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Replay table of the record at ``record_path``, from the cache when present, else built and cached.

    The file is ``<cache_dir>/<record>-<key>.parquet`` (:func:`record_cache_key`), written atomically
    with the major versions of numpy, pandas and torch in its metadata; a cached table built under
    other major versions (or unreadable) is rebuilt, with a log line saying why
    (:mod:`bprl.cache_versions`). Without ``cache_dir`` nothing is cached.

    Args:
        record_path: the record (``.hea`` / ``.mat`` path or record name without extension).
        config: feature settings (default :class:`FeatureConfig`).
        cache_dir: the cache folder (created when needed), or ``None`` for no cache.

    Returns:
        The replay table (:data:`bprl.schemas.REPLAY_COLUMNS`).

    Raises:
        RecordError: the record cannot be read.
        FeatureError: no replay table can be built from it (see :func:`build_replay_table`).
    """
    cfg = config or FeatureConfig()
    if cache_dir is not None:
        target = cache_path(record_path, cfg, cache_dir)
        cached = read_stamped_parquet(target)
        if cached is not None:
            return cached
    table = build_replay_table(read_record(record_path), cfg)
    if cache_dir is not None:
        write_stamped_parquet(table, target)
    return table
