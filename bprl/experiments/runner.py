"""The experiment runner: :func:`run_experiment` runs the stages of :data:`~bprl.experiments.stages.PIPELINE`
(:data:`~bprl.experiments.camera.CAMERA_PIPELINE` for a camera experiment) in order; :func:`rebuild_report` rewrites metrics and report from a results folder's saved logs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tqdm.auto import tqdm

from bprl.errors import BprlError, ConfigError
from bprl.evaluation.logs import results_logs
from bprl.experiments.backends import make_backend
from bprl.experiments.camera import pipeline_for
from bprl.experiments.loading import Experiment, load_experiment
from bprl.experiments.outputs import write_results, write_run_info
from bprl.experiments.paths import clear_results, prepare_results, remove_temp_leftovers, results_location
from bprl.experiments.schema import MAX_WORKERS
from bprl.experiments.state import RunContext, RunState
from bprl.experiments.tasks import Stages, default_stages
from bprl.io import write_text_atomic

__all__ = ["current_logs", "rebuild_report", "run_experiment"]


def _run_options(
    exp: Experiment, backend: str | None, workers: int | None, ray_address: str | None
) -> tuple[str, int, str | None]:
    """The backend name, worker count and Ray address of a run: the arguments, else the file's.

    Raises:
        ConfigError: unknown backend, or workers not an integer from 1 to :data:`MAX_WORKERS`.
    """
    cfg = exp.config
    name = backend or cfg.backend.name
    n_workers = workers if workers is not None else cfg.backend.workers
    if name not in ("local", "ray"):
        raise ConfigError(f"backend: unknown backend {name!r}; valid: local, ray")
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or not 1 <= n_workers <= MAX_WORKERS:
        raise ConfigError(f"workers: must be an integer from 1 to {MAX_WORKERS}, got {n_workers!r}")
    return name, n_workers, ray_address or cfg.backend.ray_address


def _write_resolved_config(exp: Experiment, results: Path, backend: dict[str, Any]) -> dict[str, Any]:
    """Write ``config.resolved.yaml`` (itself a valid experiment file) and return its content."""
    resolved = exp.resolved_dict()
    resolved["backend"] = backend
    header = f"# resolved from {exp.source}; a valid experiment file itself (bprl run this file)\n"
    write_text_atomic(header + yaml.safe_dump(resolved, sort_keys=False), results / "config.resolved.yaml")
    return resolved


def run_experiment(
    path_or_config: str | os.PathLike[str] | dict[str, Any] | Experiment,
    results_dir: str | os.PathLike[str] | None = None,
    backend: str | None = None,
    workers: int | None = None,
    resume: bool = True,
    ray_address: str | None = None,
    stages: Stages | None = None,
    progress: bool = True,
) -> Path:
    """Run an experiment end to end and return its results folder.

    Builds whatever is missing (cohort, replay tables, estimator, replay set,
    agents), evaluates every policy on the test subjects for every seed, and
    writes logs, metrics and the report. Units already finished (markers with
    the same input fingerprint) are skipped when ``resume`` is true; with
    ``resume=False`` the results folder's previous outputs are deleted first.

    Args:
        path_or_config: experiment file, dict, or loaded :class:`Experiment`.
        results_dir: results folder (default ``results/<name>/``); identified by its resolved
            path. It must be new, empty, or a results folder of an earlier run.
        backend: ``"local"`` or ``"ray"`` (default: the file's ``backend.name``).
        workers: processes / Ray CPUs, 1 to :data:`MAX_WORKERS` (default: the file's ``backend.workers``).
        resume: skip finished units (temporary leftovers of killed units are removed either way).
        ray_address: Ray cluster address (default: the file's, else a local instance).
        stages: the unit functions (default :func:`default_stages`; tests substitute stubs).
        progress: show tqdm progress bars.

    Returns:
        The resolved results folder.

    Raises:
        ConfigError: invalid experiment, workers or results folder (before any work).
        BprlError: a stage the others need failed, or no policy produced an episode log.
    """
    exp = load_experiment(path_or_config)
    backend_name, n_workers, address = _run_options(exp, backend, workers, ray_address)
    results, root = results_location(exp.config.name, results_dir)
    prepare_results(results, root, exp.config.name)
    if not resume:
        clear_results(results, root)
    remove_temp_leftovers(results)
    resolved = _write_resolved_config(
        exp, results, {"name": backend_name, "workers": n_workers, "ray_address": address}
    )
    state = RunState()
    t_start = time.perf_counter()
    be = make_backend(backend_name, n_workers, address)
    ctx = RunContext(
        exp, results, stages or default_stages(), be, backend_name, n_workers, resolved, progress
    )
    pipeline = pipeline_for(exp)
    stage_bar = tqdm(total=len(pipeline), desc=exp.config.name, unit="stage", disable=not progress)
    try:
        for stage in pipeline:
            stage_bar.set_postfix_str(stage.name)
            stage.run(ctx, state)
            stage_bar.update(1)
    finally:
        stage_bar.close()
        be.close()
        state.timings["total"] = round(time.perf_counter() - t_start, 3)
        write_run_info(results, state.timings, state.counts, state.failures, backend_name, n_workers)
    if not state.log_paths:
        raise BprlError(f"{exp.source}: no policy produced an episode log (see {results / 'failures.csv'})")
    return results


def _is_swept(entry: dict[str, Any]) -> bool:
    """Whether a resolved config's policy entry ran once per rate of a sweep
    (:func:`bprl.experiments.stages.is_swept`; an unknown calibrator: no)."""
    from bprl.experiments.stages import is_swept

    calibrator = entry.get("calibrator")
    try:
        return is_swept(entry.get("agent"), calibrator if isinstance(calibrator, str) else None)
    except ConfigError:
        return False


def current_logs(results: Path, config: dict[str, Any] | None) -> list[Path]:
    """The episode logs of the experiment's current policies and seeds, in the experiment's order
    (:func:`bprl.evaluation.results_logs`, a policy swept when it is an agent or its calibrator
    class is paced).

    A policy of a cuff-rate sweep has one log per rate, ``<name>@<rate>__seed<k>``.
    ``logs/`` may still hold logs of policies or seeds removed from the experiment file since
    (they are kept, not deleted) and of rollouts whose latest attempt was skipped; neither is
    current. Without policies and seeds in ``config`` every log is used.
    """
    return results_logs(results, config, swept=_is_swept)


def rebuild_report(results_dir: str | os.PathLike[str], stages: Stages | None = None) -> Path:
    """Recompute metrics and rewrite the report from a results folder's saved episode logs.

    Only the logs of the policies and seeds in ``config.resolved.yaml`` are used (see
    :func:`current_logs`), as in the run that wrote the folder.

    Args:
        results_dir: a results folder written by :func:`run_experiment`.
        stages: the evaluate / report functions (default :func:`default_stages`).

    Returns:
        The results folder.

    Raises:
        BprlError: no episode logs of the experiment's policies and seeds.
    """
    results = Path(results_dir)
    cfg_path = results / "config.resolved.yaml"
    config = yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else {}
    logs = current_logs(results, config)
    if not logs:
        if any((results / "logs").glob("*.parquet")):
            raise BprlError(
                f"{results}: no episode logs of the experiment's policies and seeds under logs/ "
                f"(see {cfg_path.name} and failures.csv)"
            )
        raise BprlError(f"{results}: no episode logs under logs/ (is this a bprl results folder?)")
    problems: list[str] = []
    if (results / "failures.csv").is_file():
        fails = pd.read_csv(results / "failures.csv", dtype=str).fillna("")
        problems = [f"{u}: {e}" for u, e in zip(fails["unit"], fails["error"], strict=True)]
    write_results(results, logs, config or {}, stages or default_stages(), problems)
    return results
