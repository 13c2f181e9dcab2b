"""The top-level files of a results folder: metrics, the report, provenance and failures.

``metrics.csv`` is the per-policy comparison, ``metrics_<table>.csv`` each further table of
the evaluation (per seed, per subject, by BP change) and ``metrics.json`` all of them;
``provenance.json`` records package versions, the git commit, the backend and the stage timings
(:func:`bprl.provenance.provenance`), ``failures.csv`` every unit or record left out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from bprl.errors import BprlError
from bprl.experiments.tasks import Stages, default_stages
from bprl.io import atomic_output, write_text_atomic
from bprl.provenance import provenance

__all__ = ["read_logs", "write_metrics", "write_results", "write_run_info"]


def write_run_info(
    results: Path,
    timings: dict[str, float],
    counts: dict[str, dict[str, int]],
    failures: list[tuple[str, str]],
    backend: str,
    workers: int,
) -> None:
    """Write ``provenance.json`` (versions, backend, stage seconds, unit counts) and ``failures.csv``."""
    prov = provenance() | {
        "backend": backend,
        "workers": workers,
        "stage_seconds": timings,
        "units": counts,
        "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_text_atomic(json.dumps(prov, indent=2, sort_keys=True), results / "provenance.json")
    fails = pd.DataFrame(failures, columns=["unit", "error"])
    with atomic_output(results / "failures.csv") as tmp:
        fails.to_csv(tmp, index=False)


def read_logs(paths: Iterable[Path]) -> pd.DataFrame:
    """Concatenate episode logs in the given order (policies appear in the metrics in that order).

    Raises:
        BprlError: no paths given.
    """
    frames = [pd.read_parquet(p) for p in paths]
    if not frames:
        raise BprlError("no episode logs to evaluate")
    return pd.concat(frames, ignore_index=True)


def write_metrics(
    results: Path, logs: pd.DataFrame, config: dict[str, Any], stages: Stages
) -> dict[str, pd.DataFrame]:
    """Evaluate ``logs`` with ``stages.evaluate`` (the ``evaluation`` settings of ``config``) and write
    ``metrics.csv``, ``metrics_<table>.csv`` and ``metrics.json``; return the tables.

    Raises:
        BprlError: the evaluation returned no ``metrics`` table.
    """
    tables = stages.evaluate(logs, **((config or {}).get("evaluation") or {}))
    if "metrics" not in tables:
        raise BprlError(f"{results}: evaluation returned no 'metrics' table (got {sorted(tables)})")
    for name, df in tables.items():
        target = results / ("metrics.csv" if name == "metrics" else f"metrics_{name}.csv")
        with atomic_output(target) as tmp:
            df.to_csv(tmp, index=not isinstance(df.index, pd.RangeIndex))
    payload = {
        name: json.loads(df.reset_index().to_json(orient="records", double_precision=10))
        if not isinstance(df.index, pd.RangeIndex)
        else json.loads(df.to_json(orient="records", double_precision=10))
        for name, df in tables.items()
        if isinstance(df, pd.DataFrame)
    }
    write_text_atomic(json.dumps(payload, indent=2, sort_keys=True), results / "metrics.json")
    return tables


def write_results(
    results: Path,
    log_paths: Iterable[Path],
    config: dict[str, Any],
    stages: Stages | None = None,
    problems: Iterable[str] = (),
) -> dict[str, pd.DataFrame]:
    """Evaluate the episode logs and write the metrics, figures and the report.

    ``metrics.csv`` is the per-policy comparison, ``metrics_<table>.csv`` each
    further table of the evaluation (per seed, per subject, by BP change), and
    ``metrics.json`` all of them; ``problems`` (skipped units) are noted in the report.

    Args:
        results: the results folder.
        log_paths: episode logs, in the order policies are reported.
        config: the resolved configuration (its ``evaluation`` settings are used).
        stages: the evaluate / report functions (default :func:`default_stages`).
        problems: ``unit: error`` lines noted in the report.

    Returns:
        The evaluation tables.
    """
    stages = stages or default_stages()
    logs = read_logs(log_paths)
    tables = write_metrics(results, logs, config, stages)
    stages.report(results, logs, tables, config, list(problems))
    return tables
