"""The results folder: where it is, the runner's ownership marker, leftovers, and clearing it.

A results folder is identified by its resolved path (``results/x``, ``$PWD/results/x`` and a
symlink to it are one folder). The runner writes only into folders it made: a new or empty
folder gets the marker file :data:`RESULTS_MARKER`; ``--no-resume`` (:func:`clear_results`)
deletes outputs only of a marked folder strictly inside its parent folder. Temporary files and
folders of killed units (``.<name>.*.tmp*``, ``.cohort-view-*``) are removed before a run
(:func:`remove_temp_leftovers`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path

from bprl.errors import BprlError, ConfigError
from bprl.io import write_text_atomic

__all__ = [
    "RESULTS_MARKER",
    "clear_results",
    "is_results_folder",
    "prepare_results",
    "remove_temp_leftovers",
    "results_location",
]

#: file in a results folder saying the runner made it (``--no-resume`` clears only such folders)
RESULTS_MARKER = ".bprl-results"

#: names of temporary files and folders the runner's atomic writes make (``tempfile`` with a
#: ``.<name>.`` prefix and a ``.tmp`` / ``.tmp<suffix>`` suffix) and the estimator's cohort views
_TEMP_NAME = re.compile(r"^\.(?:cohort-view-.+|.+\.tmp(?:\.[A-Za-z0-9]+)?)$")


def results_location(name: str, results_dir: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    """The resolved results folder and the folder it must lie inside.

    Args:
        name: the experiment name (the default folder is ``results/<name>``).
        results_dir: an explicit results folder, or ``None``.

    Returns:
        ``(results, root)``: one folder, one identity, so relative, absolute and symlinked
        spellings resume the same units.
    """
    if results_dir is None:
        root = Path("results").expanduser().resolve()
        return root / name, root
    results = Path(results_dir).expanduser().resolve()
    return results, results.parent


def is_results_folder(results: Path) -> bool:
    """Whether ``results`` carries the runner's marker, or is a results folder written before the marker existed."""
    if (results / RESULTS_MARKER).is_file():
        return True
    resolved = results / "config.resolved.yaml"
    if not (results / "state").is_dir() or not resolved.is_file():
        return False
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return resolved.read_text(encoding="utf-8").startswith("# resolved from ")
    return False


def prepare_results(results: Path, root: Path, name: str) -> None:
    """Make ``results`` (a resolved path strictly inside ``root``) the runner's own folder.

    A new or empty folder gets the marker :data:`RESULTS_MARKER`; a results folder of an
    earlier run is used as it is (a legacy one gets the marker); anything else is refused.

    Raises:
        ConfigError: ``results`` is ``root`` itself or outside it, a file, or a non-empty
            folder that the runner did not make.
    """
    how = "choose a new or empty folder (--results / results_dir)"
    if results == root or root not in results.parents:
        raise ConfigError(f"results folder {results}: must be a folder inside {root}; {how}")
    if results.exists() and not results.is_dir():
        raise ConfigError(f"results folder {results}: is a file, not a folder; {how}")
    if results.is_dir() and not is_results_folder(results) and any(results.iterdir()):
        raise ConfigError(
            f"results folder {results}: not a bprl results folder (not empty and no {RESULTS_MARKER} "
            f"file); the runner writes only into folders it made; {how}"
        )
    results.mkdir(parents=True, exist_ok=True)
    if not (results / RESULTS_MARKER).is_file():
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        info = {"format": "bprl-results/1", "experiment": name, "created_utc": created}
        write_text_atomic(json.dumps(info, indent=2) + "\n", results / RESULTS_MARKER)


def remove_temp_leftovers(results: Path) -> list[Path]:
    """Delete the temporary files and folders killed units left in ``results``; return them.

    Matches only the runner's own temporary names (``.<name>.<random>.tmp``,
    ``.<stem>.<random>.tmp.<suffix>``, ``.cohort-view-<random>``); symlinks are removed,
    never followed. Do not run two runs on one results folder at the same time.
    """
    removed: list[Path] = []
    for folder, dirs, files in os.walk(results):
        base = Path(folder)
        for d in list(dirs):
            if _TEMP_NAME.match(d):
                dirs.remove(d)
                path = base / d
                if path.is_symlink():
                    path.unlink()
                else:
                    shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        for f in files:
            if _TEMP_NAME.match(f):
                (base / f).unlink(missing_ok=True)
                removed.append(base / f)
    return removed


def clear_results(results: Path, root: Path) -> None:
    """Delete a results folder's earlier outputs (``--no-resume``); keep ``config.resolved.yaml`` and the marker.

    Raises:
        BprlError: refusing, unless ``results`` is a folder strictly inside ``root`` that
            carries the runner's marker (or is a results folder of an earlier version).
    """
    results, root = Path(results).resolve(), Path(root).resolve()
    if results == root or root not in results.parents or not is_results_folder(results):
        raise BprlError(
            f"refusing to clear {results}: not a bprl results folder inside {root} (no {RESULTS_MARKER})"
        )
    for name in ("state", "work", "logs", "figures"):
        if (results / name).is_dir():
            shutil.rmtree(results / name)
    for path in results.glob("metrics*.csv"):
        path.unlink()
    for name in (
        "metrics.json",
        "report.html",
        "report.md",
        "failures.csv",
        "provenance.json",
    ):
        (results / name).unlink(missing_ok=True)
