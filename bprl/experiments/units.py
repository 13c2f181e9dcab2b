"""Units: the resumable pieces of work of an experiment run, their markers and fingerprints.

A :class:`Unit` (the cohort, one record's replay table, the estimator, the replay set, one
agent per (agent, seed), one rollout per (policy, seed)) writes its output to a temporary path
that is renamed into place, then a completion marker (JSON) holding a fingerprint of its inputs
(:func:`execute_unit`). A run started again skips every unit whose marker and output exist with
the same fingerprint (:func:`unit_is_complete`), so a killed run resumes where it stopped.
Fingerprints include the major versions of numpy, pandas and torch
(:func:`bprl.cache_versions.cache_versions`): a unit built under others reruns.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_core import to_jsonable_python

from bprl.cache_versions import STAMP_KEY, cache_versions
from bprl.errors import BprlError
from bprl.io import make_temp_dir, write_text_atomic

__all__ = ["Unit", "UnitResult", "execute_unit", "fingerprint", "unit_is_complete"]


@dataclass
class Unit:
    """One resumable piece of work.

    Attributes:
        key: ``<stage>/<name>``, unique in the run; also the marker's file name.
        fn: module-level callable (picklable); called as ``fn(**kwargs)`` plus
            ``out=<temporary path>`` when ``output`` is set.
        kwargs: its arguments (picklable).
        output: final output path (file or folder) or ``None``; the unit writes
            to a temporary sibling that is renamed onto it on success.
        marker: completion-marker path.
        fingerprint: hash of the unit's inputs; a marker with another fingerprint is stale.
        output_is_dir: the output is a folder.
    """

    key: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    output: Path | None
    marker: Path
    fingerprint: str
    output_is_dir: bool = False


@dataclass
class UnitResult:
    """What a unit reports back to the runner.

    Attributes:
        key: the unit's key.
        status: ``"done"``, ``"skipped"`` (a BprlError, recorded) or ``"cached"``.
        seconds: wall time of the unit, s (0 when cached).
        error: ``"<ErrorClass>: message"`` of a skipped unit.
        result: what the unit's function returned, made JSON-able.
        run_id: changes whenever the unit is executed; downstream fingerprints include it.
    """

    key: str
    status: str
    seconds: float = 0.0
    error: str = ""
    result: Any = None
    run_id: str = ""


def unit_is_complete(unit: Unit) -> bool:
    """Whether ``unit`` has a marker with its fingerprint (and its output exists when it succeeded)."""
    if not unit.marker.is_file():
        return False
    try:
        info = json.loads(unit.marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if info.get("fingerprint") != unit.fingerprint:
        return False
    return info.get("status") != "done" or unit.output is None or unit.output.exists()


def _temporary_output(unit: Unit) -> Path | None:
    """A temporary sibling of the unit's output: an empty folder, or a file path that does not exist."""
    if unit.output is None:
        return None
    unit.output.parent.mkdir(parents=True, exist_ok=True)
    if unit.output_is_dir:
        # renamed into place as a result folder: 0o777 & ~umask, not mkdtemp's 0700
        return make_temp_dir(unit.output.parent, prefix=f".{unit.output.name}.")
    fd, name = tempfile.mkstemp(
        prefix=f".{unit.output.stem}.", suffix=f".tmp{unit.output.suffix}", dir=unit.output.parent
    )
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()
    return tmp


def _move_into_place(key: str, tmp: Path, output: Path) -> None:
    """Rename the finished temporary output ``tmp`` onto ``output`` (replacing an older one)."""
    if not tmp.exists():
        raise RuntimeError(f"unit {key}: wrote nothing to its output {tmp}")
    if output.is_dir() and not output.is_symlink():
        shutil.rmtree(output)
    elif output.exists():
        output.unlink()
    os.replace(tmp, output)


def _write_marker(unit: Unit, res: UnitResult) -> None:
    """The completion marker: key, fingerprint, status, error, seconds, result, run id, version stamp."""
    marker = {"key": unit.key, "fingerprint": unit.fingerprint, "status": res.status, "error": res.error}
    marker |= {"seconds": round(res.seconds, 3), "result": res.result, "run_id": res.run_id}
    marker[STAMP_KEY] = cache_versions()  # the fingerprint includes them; kept readable to say why on rerun
    write_text_atomic(json.dumps(marker, indent=2, sort_keys=True, default=str), unit.marker)


def execute_unit(unit: Unit) -> UnitResult:
    """Run one unit: output to a temporary path, rename into place, then write the marker.

    A :class:`BprlError` is recorded (marker status ``skipped``) instead of
    raised, so a batch goes on without the bad record / policy; any other
    exception propagates and leaves no marker, so the unit reruns on resume.

    Returns:
        The unit's result (status ``done`` or ``skipped``).
    """
    t0 = time.perf_counter()
    kwargs = dict(unit.kwargs)
    tmp = _temporary_output(unit)
    if tmp is not None:
        kwargs["out"] = tmp
    try:
        try:
            result = unit.fn(**kwargs)
        except BprlError as exc:
            res = UnitResult(unit.key, "skipped", time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
            res.run_id = uuid.uuid4().hex
        else:
            if tmp is not None and unit.output is not None:
                _move_into_place(unit.key, tmp, unit.output)
            result = to_jsonable_python(result, fallback=lambda obj: repr(obj)[:200])
            res = UnitResult(unit.key, "done", time.perf_counter() - t0, "", result, uuid.uuid4().hex)
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    _write_marker(unit, res)
    return res


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able ``parts`` (dict keys sorted) and of the major versions of numpy,
    pandas and torch (:func:`bprl.cache_versions.cache_versions`): a unit built under others reruns."""
    text = json.dumps([cache_versions(), *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
