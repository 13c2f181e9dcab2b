"""A results folder as a Markdown page of the docs site, so that no result in the docs is typed.

:func:`results_page` reads what ``bprl run`` wrote into a results folder and renders one page:
the command that made the folder, the experiment (name, description, seeds, policies, test
subjects), the accuracy table per policy with its subject-bootstrap intervals and cuffs per hour,
the standards verdicts (ISO 81060-2 / AAMI, BHS, IEEE 1708, ISO 81060-3, hypertension detection),
the criterion details, notes (oracle, subject count, skipped units) and the provenance (bprl
version, git commit, package versions, seconds per stage). :func:`write_results_page` writes it;
``bprl docs results-page RESULTS_DIR docs/results/NAME.md`` is the command line.

Inputs, all written by the runner: ``metrics.json`` (else ``metrics.csv`` and
``metrics_per_subject.csv``), ``config.resolved.yaml``, ``provenance.json`` and ``failures.csv``;
only ``metrics.json`` or ``metrics.csv`` is required. The tables are those of the HTML report
(:mod:`bprl.report.tables`), so the page and ``report.md`` agree to the digit. The page holds no
timestamp of its own: the same folder and command give the same bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bprl.errors import EvaluationError
from bprl.io import write_text_atomic
from bprl.report.tables import (
    accuracy_table,
    cuff_rate_table,
    detail_table,
    format_value,
    markdown_table,
    paired_rate_table,
    standards_table,
)
from bprl.report.write import report_notes

__all__ = ["default_command", "results_page", "write_results_page"]

#: provenance items shown first, in this order (the rest of ``provenance.json`` follows)
_MAIN_PROVENANCE: tuple[tuple[str, str], ...] = (
    ("bprl version", "packages.bprl"),
    ("git commit", "git.commit"),
    ("uncommitted changes", "git.dirty"),
    ("python", "python"),
    ("platform", "platform"),
    ("backend", "backend"),
    ("workers", "workers"),
    ("written (UTC)", "written_utc"),
)


def _read_json(path: Path) -> Any:
    """The parsed JSON file, or None when absent; EvaluationError when unreadable."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"{path}: unreadable ({exc})") from None


def _read_tables(results: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The policy comparison and the per-subject table of a results folder.

    Raises:
        EvaluationError: neither ``metrics.json`` nor ``metrics.csv`` is there, or it has no policy.
    """
    payload = _read_json(results / "metrics.json")
    if isinstance(payload, dict) and payload.get("metrics"):
        metrics = pd.DataFrame(payload["metrics"])
        subjects = pd.DataFrame(payload["per_subject"]) if payload.get("per_subject") else None
    elif (results / "metrics.csv").is_file():
        metrics = pd.read_csv(results / "metrics.csv")
        per_subject = results / "metrics_per_subject.csv"
        subjects = pd.read_csv(per_subject, dtype={"subject_id": str}) if per_subject.is_file() else None
    else:
        raise EvaluationError(
            f"{results}: no metrics.json or metrics.csv (is this a results folder of `bprl run`?)"
        )
    if metrics.empty or "policy" not in metrics:
        raise EvaluationError(f"{results}: the metrics table has no policy rows")
    return metrics, subjects


def _read_config(results: Path) -> dict[str, Any]:
    """``config.resolved.yaml`` as a mapping (empty when absent)."""
    path = results / "config.resolved.yaml"
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EvaluationError(f"{path}: unreadable ({exc})") from None
    return config if isinstance(config, dict) else {}


def _read_failures(results: Path) -> list[str]:
    """``unit: error`` of every row of ``failures.csv`` (empty when absent)."""
    path = results / "failures.csv"
    if not path.is_file():
        return []
    fails = pd.read_csv(path, dtype=str).fillna("")
    if not {"unit", "error"} <= set(fails.columns):
        return []
    return [f"{u}: {e}" for u, e in zip(fails["unit"], fails["error"], strict=True)]


def default_command(results_dir: str | os.PathLike[str]) -> str:
    """The ``bprl run`` command of a results folder, from the first line of ``config.resolved.yaml``.

    The runner writes ``# resolved from <experiment file>; ...`` there; without that line the
    resolved file itself, a valid experiment file, is named.

    Args:
        results_dir: a results folder written by ``bprl run``.

    Returns:
        e.g. ``"bprl run experiments/quickstart.yaml"``.
    """
    results = Path(results_dir)
    path = results / "config.resolved.yaml"
    first = ""
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            first = fh.readline().strip()
    prefix = "# resolved from "
    if first.startswith(prefix):
        source = first[len(prefix) :].split(";", 1)[0].strip()
        if source and source != "<dict>":
            return f"bprl run {source}"
    return f"bprl run {path.as_posix()}"


def _dig(mapping: dict[str, Any], dotted: str) -> Any:
    """``mapping[a][b]`` for ``"a.b"``; None where a key is missing."""
    value: Any = mapping
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _experiment_section(config: dict[str, Any], subjects: pd.DataFrame | None, metrics: pd.DataFrame) -> str:
    """Name, description, seeds, policies and test subjects as a short list."""
    lines = ["## Experiment", ""]
    if config.get("name"):
        lines.append(f"- **name**: `{config['name']}`")
    if config.get("description"):
        lines.append(f"- **description**: {' '.join(str(config['description']).split())}")
    if config.get("seeds") is not None:
        lines.append(f"- **seeds**: {', '.join(str(s) for s in config['seeds'])}")
    lines.append(f"- **policies**: {', '.join(f'`{p}`' for p in metrics['policy'])}")
    if subjects is not None and "subject_id" in subjects:
        ids = sorted({str(s) for s in subjects["subject_id"]})
        lines.append(f"- **test subjects** ({len(ids)}): {', '.join(f'`{s}`' for s in ids)}")
    else:
        n = int(pd.to_numeric(metrics["n_subjects"], errors="coerce").max())
        lines.append(f"- **test subjects**: {n}")
    return "\n".join(lines)


def _provenance_value(value: Any) -> str:
    """A provenance cell: ``yes`` / ``no`` for booleans, ``–`` when absent, else the text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format_value(value)


def _provenance_section(provenance: dict[str, Any] | None) -> str:
    """bprl version, git commit, platform, package versions and seconds per stage."""
    lines = ["## Provenance", ""]
    if not provenance:
        return "\n".join([*lines, "The results folder has no `provenance.json`."])
    rows = [[label, _provenance_value(_dig(provenance, key))] for label, key in _MAIN_PROVENANCE]
    rows = [r for r in rows if r[1] != "–"]
    lines += [markdown_table(["item", "value"], rows), ""]
    packages = provenance.get("packages") or {}
    if packages:
        lines += [
            "Package versions:",
            "",
            markdown_table(["package", "version"], [[k, str(v)] for k, v in packages.items()]),
            "",
        ]
    stages = provenance.get("stage_seconds") or {}
    if stages:
        head = [str(k) for k in stages]
        lines += [
            "Seconds per stage (wall time of this run, on the machine above):",
            "",
            markdown_table(head, [[format_value(float(v), 0) for v in stages.values()]]),
            "",
        ]
    return "\n".join(lines).rstrip()


def _paired_tables(results: Path) -> list[tuple[float, Path]]:
    """``(rate, metrics_paired_at_<rate>_per_h.csv)`` of a results folder, by rate."""
    found = []
    for path in results.glob("metrics_paired_at_*_per_h.csv"):
        try:
            found.append((float(path.name[len("metrics_paired_at_") : -len("_per_h.csv")]), path))
        except ValueError:
            continue
    return sorted(found)


def _sweep_sections(results: Path) -> list[str]:
    """The cuff-rate sweep's tables (``metrics_cuff_rate.csv``, ``metrics_paired_at_<rate>_per_h.csv``), if any."""
    parts: list[str] = []
    curves = results / "metrics_cuff_rate.csv"
    if curves.is_file():
        parts += [
            "## Error against cuff rate",
            "",
            "Each calibrator family once per paced budget (readings per hour); MAE in mmHg, mean over "
            "subjects of each subject's MAE (averaged over seeds), 95 % bootstrap intervals over subjects; "
            "the oracle is an upper bound.",
            "",
            markdown_table(*cuff_rate_table(pd.read_csv(curves))),
            "",
        ]
    for rate, paired in _paired_tables(results):
        plural = "s" if rate != 1 else ""
        parts += [
            f"## Families at {rate:g} cuff reading{plural} per hour, paired per subject",
            "",
            f"Each subject's MAE interpolated at {rate:g} reading{plural} per hour along its own (cuffs per "
            "hour, MAE) points; difference from the best family per subject, mean [95 % bootstrap interval].",
            "",
            markdown_table(*paired_rate_table(pd.read_csv(paired))),
            "",
        ]
    return parts


def results_page(results_dir: str | os.PathLike[str], command: str) -> str:
    """The Markdown page of a results folder for the docs site.

    Args:
        results_dir: a results folder written by ``bprl run`` (``metrics.json`` or ``metrics.csv``
            required; ``config.resolved.yaml``, ``provenance.json``, ``failures.csv`` used when there).
        command: the shell command that made the folder, shown first (e.g. ``"make demo"``).

    Returns:
        The page: a title, the command, the experiment and its test subjects, the accuracy table
        (ME, SD, MAE with subject-bootstrap intervals, MAE IQM over seeds, cuffs per hour), the
        standards verdicts, the criterion details, notes and the provenance.

    Raises:
        EvaluationError: the folder has no readable metrics table.
    """
    results = Path(results_dir)
    metrics, subjects = _read_tables(results)
    config = _read_config(results)
    provenance = _read_json(results / "provenance.json")
    name = str(config.get("name") or results.name)
    notes = report_notes(metrics, _read_failures(results))
    parts = [
        f"# Results: {name}",
        "",
        "Generated from the results folder by `bprl docs results-page RESULTS_DIR PAGE`; do not edit "
        "by hand. Every number below comes from the run of this command:",
        "",
        f"```bash\n{command.strip()}\n```",
        "",
        _experiment_section(config, subjects, metrics),
        "",
    ]
    if notes:
        parts += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    parts += _sweep_sections(results)
    parts += [
        "## Accuracy",
        "",
        "ME, SD and MAE in mmHg over all test pairs of all seeds, with 95 % bootstrap intervals over "
        "subjects; the MAE's interquartile mean over seeds; cuff readings per monitored hour.",
        "",
        markdown_table(*accuracy_table(metrics)),
        "",
        "## Standards",
        "",
        "Verdicts per standard (thresholds: [Standards](../reference/standards.md)) and hypertension "
        "detection against the arterial reference.",
        "",
        markdown_table(*standards_table(metrics)),
        "",
        "## Criterion details",
        "",
        markdown_table(*detail_table(metrics)),
        "",
        _provenance_section(provenance if isinstance(provenance, dict) else None),
        "",
    ]
    return "\n".join(parts)


def write_results_page(
    results_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    command: str | None = None,
) -> Path:
    """Write :func:`results_page` of ``results_dir`` to ``out_path`` (atomically, folders made).

    Args:
        results_dir: a results folder written by ``bprl run``.
        out_path: the page, e.g. ``docs/results/quickstart.md``.
        command: the command that made the folder (default :func:`default_command`).

    Returns:
        ``out_path`` as a Path.

    Raises:
        EvaluationError: the folder has no readable metrics table.
    """
    page = results_page(results_dir, command or default_command(results_dir))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(page, out)
