"""Atomic file writes (a result file is either complete or absent, never half-written) and file digests.

Every writer of bprl that produces a result (replay tables, replay sets, cohort files, reports,
checkpoints' metadata, experiment markers) goes through :func:`atomic_output`: the data are
written to a temporary file next to the target, which is renamed onto the target only when the
write succeeded. Files and folders made this way get the modes a plain ``open(path, "w")`` /
``os.mkdir`` would give them (``0o666 & ~umask`` / ``0o777 & ~umask``), not ``tempfile``'s
private ``0600`` / ``0700``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "atomic_output",
    "current_umask",
    "default_dir_mode",
    "default_file_mode",
    "make_temp_dir",
    "sha256_files",
    "write_json_atomic",
    "write_parquet_atomic",
    "write_text_atomic",
]


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

    Args:
        parent: folder to create the temporary folder in (must exist).
        prefix: start of the temporary folder's name.
        suffix: end of the temporary folder's name.

    Returns:
        The path of the new, empty folder.
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

    Args:
        path: the final file.

    Yields:
        The temporary file to write (it exists, empty).
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
    """Write ``df`` to Parquet at ``path`` atomically (temp file, then rename).

    Args:
        df: the table (its index is not written).
        path: the Parquet file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    with atomic_output(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_text_atomic(text: str, path: str | os.PathLike[str]) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Args:
        text: the file's content.
        path: the file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(
    obj: Any,
    path: str | os.PathLike[str],
    *,
    indent: int | None = 2,
    sort_keys: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> Path:
    """Write ``json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default)`` to ``path`` atomically.

    The text is exactly what :func:`json.dumps` returns (no trailing newline), UTF-8.

    Args:
        obj: a JSON-serialisable object.
        path: the file.
        indent: indentation of nested levels (``None``: one line).
        sort_keys: write the keys of mappings sorted.
        default: called for objects :mod:`json` cannot serialise (e.g. ``str``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: ``obj`` holds something not serialisable (and no ``default``); nothing is written.
    """
    return write_text_atomic(json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default), path)


def sha256_files(paths: Iterable[str | os.PathLike[str]]) -> str:
    """sha256 over the names and bytes of ``paths``, in name order (a checkpoint's fingerprint)."""
    h = hashlib.sha256()
    for p in sorted((Path(q) for q in paths), key=lambda q: q.name):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()
