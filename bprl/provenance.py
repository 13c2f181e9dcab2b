"""Provenance of a result: package versions, the git commit of the bprl source, Python and platform.

One writer for every stage that records where a result came from (trained agents, estimators,
experiment runs, reports) and for the cache stamps that decide whether a cached stage may be reused.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Packages whose versions a result depends on, in the order they are reported.
PROVENANCE_PACKAGES: tuple[str, ...] = (
    "bprl",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "torch",
    "gymnasium",
    "stable-baselines3",
    "sb3-contrib",
    "wfdb",
    "pydantic",
    "matplotlib",
    "ray",
)

#: Packages whose *major* version changes the bytes of cached tables, arrays or checkpoints.
CACHE_PACKAGES: tuple[str, ...] = ("numpy", "pandas", "torch")

_SOURCE_DIR = Path(__file__).resolve().parent


def package_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"not installed"``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def package_versions(names: tuple[str, ...] = PROVENANCE_PACKAGES) -> dict[str, str]:
    """``{distribution: version}`` for ``names`` (``"not installed"`` where absent)."""
    return {name: package_version(name) for name in names}


def major_versions(names: tuple[str, ...] = CACHE_PACKAGES) -> dict[str, str]:
    """``{distribution: major version}`` for ``names``: the stamp a cache is valid under."""
    return {name: package_version(name).split(".")[0] for name in names}


def _git(args: list[str], where: Path) -> str | None:
    try:
        res = subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_commit(path: str | os.PathLike[str] | None = None) -> str | None:
    """The commit hash of the git work tree containing ``path`` (default: the bprl source), or None."""
    return _git(["rev-parse", "HEAD"], Path(path) if path is not None else _SOURCE_DIR) or None


def git_dirty(path: str | os.PathLike[str] | None = None) -> bool | None:
    """Whether tracked files differ from the commit (None outside a git work tree)."""
    out = _git(["status", "--porcelain", "--untracked-files=no"], Path(path) if path else _SOURCE_DIR)
    return None if out is None else bool(out)


def provenance() -> dict[str, Any]:
    """Package versions, git commit and state, Python and platform of this process.

    >>> sorted(provenance())
    ['cpu_count', 'git', 'machine', 'packages', 'platform', 'python']
    """
    return {
        "packages": package_versions(),
        "git": {"commit": git_commit(), "dirty": git_dirty()},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
