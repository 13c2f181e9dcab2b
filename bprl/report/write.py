"""Writing the report: ``report.html`` (self-contained), ``report.md``, ``figures/*.png|svg|pdf``
and ``tables/*.tex|csv``.

:func:`write_report` evaluates the episode logs (or takes the policy comparison it is given),
builds the sections (test population, accuracy, standards, figures, methods, files, configuration,
provenance) from the figures (:mod:`bprl.report.figures`, :mod:`bprl.report.subject_figures`) and
tables (:mod:`bprl.report.tables`) into a :class:`~bprl.report.render.ReportContent`, writes every
table and figure as files for a paper (:mod:`bprl.report.exports`) and renders the content twice
(:mod:`bprl.report.render`). Provenance comes from the results folder's ``provenance.json`` when
the runner recorded one, else from :func:`collect_provenance` (built on :mod:`bprl.provenance`).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bprl import evaluation as ev
from bprl.errors import BprlError
from bprl.io import write_text_atomic
from bprl.provenance import git_commit, package_versions
from bprl.report.exports import slug, write_figure_files, write_table_files
from bprl.report.figures import policy_colors
from bprl.report.render import REPORT_CSS, ReportContent, Section, render_html, render_markdown
from bprl.report.sections import (
    figure_sections,
    files_section,
    population_section,
    report_table,
    representative_policies,
    result_sections,
    rhythm_sections,
    safety_sections,
    sweep_sections,
)
from bprl.report.tables import Table, flatten_mapping

__all__ = [
    "METHODS_TEMPLATE",
    "PROVENANCE_PACKAGES",
    "REPORT_CSS",
    "ReportContent",
    "collect_provenance",
    "methods_text",
    "render_html",
    "render_markdown",
    "report_notes",
    "results_subjects",
    "write_report",
]

#: packages whose versions go into the provenance section (when the report collects it itself)
PROVENANCE_PACKAGES: tuple[str, ...] = (
    "bprl",
    "numpy",
    "scipy",
    "pandas",
    "torch",
    "gymnasium",
    "stable-baselines3",
    "matplotlib",
)

#: the methods section; ``{min_change}`` is the ISO 81060-3 minimum BP change in mmHg
METHODS_TEMPLATE = (
    "Pairs are steps with a finite reference and corrected estimate; error = corrected − reference. "
    "ME, SD (sample, ddof = 1) and MAE pool all pairs of all seeds; brackets are 95 % percentile bootstrap "
    "intervals over subjects (subjects resampled with replacement). The IQM over seeds is the mean of the "
    "middle 50 % of the per-seed MAEs, with a bootstrap interval over seeds. "
    "AAMI c1: |ME| ≤ 5 and SD ≤ 8 mmHg; c2: SD of per-subject mean errors ≤ the limit at which "
    "P(|error| ≤ 10) = 85 % for a normal error with the pooled mean. BHS: A/B/C need ≥ 60/85/95, 50/75/90, "
    "40/65/85 % of |error| ≤ 5/10/15 mmHg. IEEE 1708: MAE ≤ 5 A, ≤ 6 B, ≤ 7 C, else D. ISO 81060-3: "
    "|ME| ≤ 6 and SD ≤ 10 mmHg, and for reference changes of at least {min_change:g} mmHg since the last cuff "
    "reading the absolute percentage error of the tracked change has median ≤ 25 % and 85th percentile "
    "≤ 50 %. Hypertension = ACC/AHA 2017 stage 1 or 2."
)


# ------------------------------------------------------------------ provenance
def collect_provenance() -> dict[str, str]:
    """Python and package versions and the git commit of the bprl source tree, as one flat mapping.

    Built from :func:`bprl.provenance.package_versions` and :func:`bprl.provenance.git_commit`
    for the packages in :data:`PROVENANCE_PACKAGES`.

    Returns:
        ``{"python": ..., <package>: <version or "not installed">, ..., "git_commit": <hash or
        "unknown" when not a checkout>}``.
    """
    out = {"python": platform.python_version()}
    out.update(package_versions(PROVENANCE_PACKAGES))
    out["git_commit"] = git_commit() or "unknown"
    return out


def _resolve_provenance(
    out: Path, provenance: dict[str, Any] | None, config: dict[str, Any] | None, problems: list[str]
) -> dict[str, Any] | None:
    """The provenance to show: given, else ``out/provenance.json``, else collected when a config is shown.

    An unreadable ``provenance.json`` is reported by appending to ``problems``.
    """
    if provenance is not None:
        return provenance
    recorded = out / "provenance.json"
    if recorded.is_file():
        try:
            provenance = json.loads(recorded.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{recorded}: unreadable provenance ({exc})")
    if provenance is None and config is not None:
        provenance = collect_provenance()
    return provenance


# ------------------------------------------------------------------ test subjects
def results_subjects(results_dir: str | Path) -> pd.DataFrame | None:
    """The subjects table of a results folder of ``bprl run``: the cohort manifest it wrote under
    ``work/cohort`` (virtual subjects' sex, age, BP category and rhythm settings; real records
    listed as a cohort carry ids only). None when there is none or it cannot be read."""
    from bprl.cohort.layout import load_manifest

    cohort_dir = Path(results_dir) / "work" / "cohort"
    if not (cohort_dir / "manifest.parquet").is_file() and not (cohort_dir / "manifest.csv").is_file():
        return None
    try:
        return load_manifest(cohort_dir)
    except (BprlError, OSError, ValueError):
        return None


# ------------------------------------------------------------------ content
def report_notes(
    metrics: pd.DataFrame, problems: Sequence[str], log: pd.DataFrame | None = None
) -> list[str]:
    """Notes for the top of the report: oracle policies, too few subjects for ISO 81060-2, cuff
    requests refused by the budget, skipped inputs.

    Args:
        metrics: policy comparison (:func:`bprl.evaluation.compare_policies`).
        problems: messages about skipped inputs.
        log: the checked episode log (for refused requests; None: not reported).

    Returns:
        The note texts (plain text) in order.
    """
    notes = []
    if log is not None:
        refused = log.groupby("policy", sort=False)["cuff_refused"].sum()
        refused = refused[refused > 0]
        if not refused.empty:
            notes.append(
                "Cuff requests refused by the budget (no reading, no cost): "
                + ", ".join(f"{p} {int(n)}" for p, n in refused.items())
                + "."
            )
    oracles = [str(p) for p in metrics["policy"] if "oracle" in str(p).lower()]
    if oracles:
        notes.append(
            f"{', '.join(oracles)}: the oracle sees the reference and is an upper bound on what any "
            "calibration policy can reach, not a deployable policy."
        )
    few = metrics[metrics["n_subjects"] < ev.AAMI_MIN_SUBJECTS]
    if not few.empty:
        notes.append(
            f"A real ISO 81060-2 validation needs at least {ev.AAMI_MIN_SUBJECTS} subjects; this evaluation "
            f"has {int(metrics['n_subjects'].max())} at most, so pass/fail marks are indicative only."
        )
    notes += [f"Skipped input: {p}" for p in problems]
    return notes


def methods_text() -> str:
    """The methods section (:data:`METHODS_TEMPLATE` with the ISO 81060-3 minimum change)."""
    return METHODS_TEMPLATE.format(min_change=ev.ISO3_MIN_CHANGE_MMHG)


# ------------------------------------------------------------------ the report
def write_report(
    results_dir: str | Path,
    logs: pd.DataFrame,
    metrics: pd.DataFrame | None = None,
    config: dict | None = None,
    *,
    provenance: dict | None = None,
    problems: Sequence[str] = (),
    title: str = "bprl calibration report",
    seed: int = 0,
    n_resamples: int = 1000,
    extra_tables: Sequence[tuple[str, str, Table]] = (),
    subjects: pd.DataFrame | None = None,
) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained), ``report.md``, ``figures/*`` and ``tables/*`` into
    ``results_dir``.

    Args:
        results_dir: output folder (created).
        logs: episode logs (:data:`bprl.tables.EPISODE_LOG_COLUMNS`) of all policies and seeds.
        metrics: :func:`bprl.evaluation.compare_policies` of ``logs``; computed when ``None``.
        config: the experiment configuration, shown as YAML; when given, provenance
            (:func:`collect_provenance`) is shown too unless ``provenance`` is passed.
        provenance: explicit provenance mapping (e.g. recorded by the runner at run time).
        problems: messages about inputs that were skipped (shown as notes).
        title: report title.
        seed: seed of the scatter subsampling and (when computed) bootstrap.
        n_resamples: bootstrap resamples when ``metrics`` is computed here.
        extra_tables: ``(section name, caption, table)`` shown first (e.g. the paired differences
            of :func:`bprl.report.compare.compare_results`).
        subjects: per-subject table with ``subject_id`` (e.g. a virtual cohort's manifest): sex,
            age, BP category and rhythm settings for the test-population section.

    Returns:
        ``(html_path, md_path)``. Every file is written atomically; the same inputs give
        byte-identical files.

    Raises:
        bprl.errors.EvaluationError: ``logs`` is not a valid episode log (missing columns, ...).
    """
    out = Path(results_dir)
    log = ev.check_episode_log(logs)
    if metrics is None:
        metrics = ev.compare_policies(log, n_resamples=n_resamples, seed=seed)
    ann = ev.annotate_calibration(log)
    policies = [str(p) for p in metrics["policy"]] + [
        str(p) for p in pd.unique(ann["policy"]) if str(p) not in set(metrics["policy"].astype(str))
    ]
    sweep = sweep_sections(log, seed, n_resamples)
    shown = representative_policies(log, policies) if sweep else policies
    colors = policy_colors(policies)

    sections = [population_section(log, subjects)]
    sections += [
        Section(f"extra-{slug(name)}", name, tables=[report_table(name, caption, table)])
        for name, caption, table in extra_tables
    ]
    sections += sweep + safety_sections(log)
    sections += result_sections(metrics, ev.evaluate_change_bins(log), log, seed, n_resamples)
    sections += rhythm_sections(log)
    sections += figure_sections(
        ann[ann["policy"].isin(shown)],
        metrics[metrics["policy"].isin(shown)],
        ev.evaluate_subjects(log[log["policy"].isin(shown)]),
        shown,
        colors,
        seed,
    )
    sections.append(Section("methods", "Methods", text=[methods_text()]))
    tables = [t for s in sections for t in s.tables]
    figures = [f for s in sections for f in s.figures]
    sections.append(files_section(tables, figures))

    problems = list(problems)
    provenance = _resolve_provenance(out, provenance, config, problems)
    if config is not None:
        sections.append(
            Section(
                "configuration",
                "Configuration",
                preformatted=yaml.safe_dump(config, sort_keys=True, default_flow_style=False),
            )
        )
    if provenance:
        sections.append(
            Section(
                "provenance",
                "Provenance",
                tables=[
                    report_table(
                        "Provenance",
                        "Versions and source of this run.",
                        (["Item", "Value"], flatten_mapping(provenance)),
                    )
                ],
            )
        )
    content = ReportContent(
        title=title,
        summary=(
            f"{len(policies)} policies, {log['subject_id'].nunique()} subjects, "
            f"{log['seed'].nunique()} seeds, {len(log)} steps."
        ),
        notes=report_notes(metrics, problems, log),
        sections=sections,
    )
    for f in content.figures:
        write_figure_files(out / "figures", f)
    for t in content.tables:
        write_table_files(out / "tables", t.name, t.table, t.caption)
    md_path = write_text_atomic(render_markdown(content), out / "report.md")
    html_path = write_text_atomic(render_html(content), out / "report.html")
    return html_path, md_path
