"""What one experiment run knows: :class:`RunContext` (fixed for the run) and :class:`RunState` (what
the stages found so far), and :func:`run_units`, which runs a stage's units and books the outcome.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bprl.cache_versions import STAMP_KEY, log_rebuild, stale_reason
from bprl.experiments.backends import Backend
from bprl.experiments.loading import Experiment
from bprl.experiments.tasks import Stages
from bprl.experiments.units import Unit, UnitResult, unit_is_complete

__all__ = ["RunContext", "RunState", "run_units", "timed", "unit_ok"]


@dataclass
class RunContext:
    """Everything fixed for one run: the experiment, its folders, the unit functions and the backend.

    Attributes:
        exp: the loaded experiment.
        results: the resolved results folder.
        fns: the functions the units call.
        backend: the backend of the stages that run many units.
        backend_name: ``"local"`` or ``"ray"`` (recorded in ``provenance.json``).
        workers: processes / Ray CPUs (1 to ``MAX_WORKERS``).
        resolved: the resolved configuration (``config.resolved.yaml``), handed to the report.
        progress: show tqdm progress bars.
    """

    exp: Experiment
    results: Path
    fns: Stages
    backend: Backend
    backend_name: str
    workers: int
    resolved: dict[str, Any]
    progress: bool = True

    @property
    def work(self) -> Path:
        """``work/``: cohort, replay-table cache, estimator, replay set, agents."""
        return self.results / "work"

    def marker(self, stage: str, name: str) -> Path:
        """Completion marker of a unit: ``state/<stage>/<name>.json``."""
        return self.results / "state" / stage / f"{name}.json"


@dataclass
class RunState:
    """Book-keeping of one run (timings, unit counts, recorded failures) and what the stages found.

    Attributes:
        timings: stage -> wall time, s (``total`` for the whole run).
        counts: stage -> units, run, cached, skipped.
        failures: ``(unit or record, error)`` of everything left out.
        records: the usable records: ``subject_id, record_id, record_path, origin, split``.
        splits: subject id -> split.
        fingerprints: stage -> fingerprint of its inputs, which later stages build on.
        run_ids: stage -> run id of its latest execution (changes whenever it reran).
        env: the environment settings agents and rollouts get (spec, overrides).
        agents: ``(policy label, seed)`` -> the agent's unit and its result.
        log_paths: episode logs of the rollouts that succeeded, in policy and seed order.
        tables: the evaluation tables (``metrics`` and more).
        logs: the episode logs evaluated.
    """

    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    records: pd.DataFrame = field(default_factory=pd.DataFrame)
    splits: dict[str, str] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    run_ids: dict[str, str] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    agents: dict[tuple[str, int], tuple[Unit, UnitResult]] = field(default_factory=dict)
    log_paths: list[Path] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    logs: pd.DataFrame | None = None

    def record_list(self) -> list[dict[str, str]]:
        """The usable records as dicts ``subject_id, record_id, record_path, split`` (unit arguments)."""
        return self.records[["subject_id", "record_id", "record_path", "split"]].to_dict("records")


@contextlib.contextmanager
def timed(state: RunState, stage: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block to ``state.timings[stage]`` (s)."""
    t0 = time.perf_counter()
    yield
    state.timings[stage] = round(state.timings.get(stage, 0.0) + time.perf_counter() - t0, 3)


def unit_ok(results: dict[str, UnitResult], key: str) -> bool:
    """Whether unit ``key`` succeeded now or earlier (``done`` or ``cached``)."""
    return results[key].status in ("done", "cached")


def _cached_result(unit: Unit) -> UnitResult:
    """The result recorded in a complete unit's marker (status ``cached`` for a success)."""
    info = json.loads(unit.marker.read_text())
    status = "cached" if info["status"] == "done" else info["status"]
    return UnitResult(unit.key, status, 0.0, info["error"], info.get("result"), info.get("run_id", ""))


def run_units(
    backend: Backend, units: list[Unit], stage: str, state: RunState, progress: bool
) -> dict[str, UnitResult]:
    """Run the units of ``stage`` that are not complete; return every unit's result by key.

    Skipped units (a BprlError) are added to ``state.failures``; the stage's time goes to
    ``state.timings`` and its unit counts to ``state.counts``.
    """
    todo = [u for u in units if not unit_is_complete(u)]
    _log_version_reruns(todo, stage)
    with timed(state, stage):
        fresh = {r.key: r for r in backend.map_units(todo, desc=stage, progress=progress)}
    out: dict[str, UnitResult] = {}
    for u in units:
        out[u.key] = fresh[u.key] if u.key in fresh else _cached_result(u)
        if out[u.key].status == "skipped":
            state.failures.append((u.key, out[u.key].error))
    state.counts[stage] = {
        "units": len(units),
        "run": len(fresh),
        "cached": len(units) - len(fresh),
        "skipped": sum(r.status == "skipped" for r in out.values()),
    }
    return out


def _log_version_reruns(todo: list[Unit], stage: str) -> None:
    """One log line per reason for units that rerun because their marker was made under other major versions."""
    reasons: dict[str, int] = {}
    for u in todo:
        try:
            recorded = json.loads(u.marker.read_text()).get(STAMP_KEY)
        except (OSError, ValueError, AttributeError):
            continue
        why = stale_reason(recorded) if recorded is not None else None
        if why is not None:
            reasons[why] = reasons.get(why, 0) + 1
    for why, n in reasons.items():
        log_rebuild(f"stage {stage}", f"{n} unit(s) rerun: {why}")
