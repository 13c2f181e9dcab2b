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

import matplotlib
import matplotlib.colors
import numpy as np
import pandas as pd
import yaml

from bprl import evaluation as ev
from bprl.errors import BprlError
from bprl.io import write_text_atomic
from bprl.provenance import git_commit, package_versions
from bprl.report.exports import slug, write_figure_files, write_table_files
from bprl.report.figures import (
    ReportFigure,
    bland_altman_figure,
    cuff_rate_figure,
    cuffs_vs_mae_figure,
    error_vs_time_figure,
    policy_colors,
    population_figure,
)
from bprl.report.render import REPORT_CSS, ReportContent, ReportTable, Section, render_html, render_markdown
from bprl.report.subject_figures import per_subject_figures, trace_figures
from bprl.report.tables import (
    Table,
    accuracy_table,
    change_table,
    cuff_rate_table,
    detail_table,
    flatten_mapping,
    paired_rate_table,
    population_table,
    requirements_table,
    rhythm_table,
    safety_table,
    standards_table,
    tracking_table,
)

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


def _table(name: str, caption: str, table: Table, title: str = "") -> ReportTable:
    """A :class:`ReportTable` whose file stem is the slug of ``name``."""
    return ReportTable(slug(name), title, caption, table)


def _population_section(log: pd.DataFrame, subjects: pd.DataFrame | None) -> Section:
    """The test population: summary text, ISO 81060-2 sample requirements, one row per subject,
    and the reference-BP distribution."""
    pop = ev.test_population(log, subjects)
    req = ev.iso81060_2_sample_requirements(log, subjects)
    n_met = int(sum(bool(m) for m in req["met"] if m is not None and m == m))
    n_assessable = int(sum(m is not None and m == m for m in req["met"]))
    text = [
        f"{len(pop)} test subjects, {pop['hours'].sum():.2f} h in all "
        f"({pop['hours'].min():.2f}-{pop['hours'].max():.2f} h each), {int(pop['n_steps'].sum())} steps, "
        f"{int(pop['n_segments'].sum())} record segments ({int((pop['n_segments'] > 1).sum())} subjects with "
        f"more than one). Reference SBP {pop['sbp_mean_mmhg'].mean():.1f} mmHg (mean of the subjects' means; "
        f"range {pop['sbp_min_mmhg'].min():.0f}-{pop['sbp_max_mmhg'].max():.0f}), DBP "
        f"{pop['dbp_mean_mmhg'].mean():.1f} mmHg (range {pop['dbp_min_mmhg'].min():.0f}-"
        f"{pop['dbp_max_mmhg'].max():.0f}).",
        f"ISO 81060-2 sample requirements: {n_met} of {n_assessable} assessable ones met.",
    ]
    if {"af_rate_per_h", "ectopic_prob"} <= set(pop.columns):
        af = pop["af_rate_per_h"].to_numpy(float)
        ect = 100.0 * pop["ectopic_prob"].to_numpy(float)
        text.append(
            f"Rhythm (virtual subjects' settings): {int((af > 0).sum())} of {len(pop)} with paroxysmal AF "
            f"episodes; ectopic beats median {np.nanmedian(ect):.2f} % (max {np.nanmax(ect):.2f} %)."
        )
    else:
        text.append("Rhythm settings: not recorded for these subjects.")
    first = log[log["policy"] == log["policy"].iloc[0]]  # every policy replays the same steps
    first = first[first["seed"] == first["seed"].min()]
    af = first["af_share"].to_numpy(float)
    if np.isfinite(af).any():
        in_af = np.nan_to_num(af) >= ev.evaluate.AF_STEP_SHARE
        subj = first["subject_id"].to_numpy()
        text.append(
            f"Detected rhythm (rhythm-aware replay tables): AF in {100 * in_af.mean():.1f} % of the test "
            f"steps, in {len(set(subj[in_af]))} of {len(pop)} subjects."
        )
    return Section(
        "test-population",
        "Test population",
        text=text,
        tables=[
            _table(
                "ISO 81060-2 sample requirements",
                "ISO 81060-2:2018 general-population requirements against the test population: subjects, "
                "sex (from the subjects table, not assessable without it) and the share of reference "
                "readings (test steps, each subject weighted equally) beyond each BP threshold.",
                requirements_table(req),
                "ISO 81060-2 sample requirements",
            ),
            _table(
                "Test subjects",
                "Per test subject: steps, hours and record segments replayed; reference BP in mmHg.",
                population_table(pop),
                "Test subjects",
            ),
        ],
        figures=[population_figure(ev.population.reference_steps(log))],
    )


def _result_sections(
    metrics: pd.DataFrame, bins: pd.DataFrame, log: pd.DataFrame, seed: int, n_resamples: int
) -> list[Section]:
    """The accuracy, standards, criterion-detail, IEEE 1708-by-change and tracking sections."""
    return [
        Section(
            "accuracy",
            "Accuracy",
            tables=[
                _table(
                    "Accuracy",
                    "ME, SD and MAE in mmHg with 95 % bootstrap intervals over subjects.",
                    accuracy_table(metrics),
                )
            ],
        ),
        Section(
            "standards",
            "Standards",
            tables=[
                _table(
                    "Standards",
                    "Verdict and grade per standard (pooled over seeds). Not assessable: the data cannot "
                    "show it either way (ISO 81060-3 tracking without any cuff reading to track a change "
                    "from, AAMI criterion 2 with one subject), which is neither a pass nor a FAIL.",
                    standards_table(metrics),
                )
            ],
        ),
        Section(
            "criterion-details",
            "Criterion details",
            tables=[
                _table(
                    "Criterion details",
                    "AAMI criterion 2, BHS percentages and ISO 81060-3 change tracking.",
                    detail_table(metrics),
                )
            ],
        ),
        Section(
            "ieee-1708-by-change",
            "IEEE 1708 by BP change since calibration",
            tables=[
                _table(
                    "IEEE 1708 by BP change",
                    "MAE in mmHg (grade, pairs) by |reference − reference at the last cuff reading|.",
                    change_table(bins),
                )
            ],
        ),
        Section(
            "estimator-tracking",
            "Estimator tracking",
            tables=[
                _table(
                    "Estimator tracking",
                    "Within-subject tracking of the raw estimator (before any calibration): per subject r, "
                    "slope of estimate on reference, estimate SD / reference SD, and after a one-point "
                    "calibration at the first step the MAE of the change since then against holding that "
                    "value; medians over subjects [95 % bootstrap intervals].",
                    tracking_table(log, seed, n_resamples),
                )
            ],
        ),
    ]


def _rhythm_sections(log: pd.DataFrame) -> list[Section]:
    """Error by rhythm, when the logs know the rhythm of their steps (replay tables with rhythm
    columns)."""
    by = ev.evaluate_rhythm(log)
    if by.empty:
        return []
    return [
        Section(
            "rhythm",
            "Error by rhythm",
            tables=[
                _table(
                    "Error by rhythm",
                    f"ME, SD and MAE in mmHg of the steps in detected atrial fibrillation (AF share of the "
                    f"step ≥ {ev.evaluate.AF_STEP_SHARE:g}) and of the other steps, all seeds pooled.",
                    rhythm_table(by),
                )
            ],
        )
    ]


def _figure_sections(
    ann: pd.DataFrame,
    metrics: pd.DataFrame,
    subjects: pd.DataFrame,
    policies: list[str],
    colors: dict[str, str],
    seed: int,
) -> list[Section]:
    """Bland-Altman, error against time, cuffs against MAE, per-subject errors and every subject's
    traces (the error-vs-time figure only when a step follows a cuff reading)."""
    sections = [
        Section(
            "bland-altman",
            "Bland-Altman",
            figures=[bland_altman_figure(ann, policies, bp, seed) for bp in ev.BP_KINDS],
        )
    ]
    tfig = error_vs_time_figure(ann, policies, colors)
    if tfig is not None:
        sections.append(Section("error-vs-time", "Error against time since calibration", figures=[tfig]))
    sections += [
        Section(
            "cuffs-vs-mae", "Cuff readings against error", figures=[cuffs_vs_mae_figure(metrics, colors)]
        ),
        Section("per-subject", "Per-subject errors", figures=per_subject_figures(subjects, policies, colors)),
        Section(
            "traces",
            "Traces of every test subject",
            text=["One figure per subject, one panel per policy (the subject's lowest seed, first episode)."],
            figures=trace_figures(ann, policies, colors),
        ),
    ]
    return sections


#: the cuff rate at which a sweep's families are compared in the report, readings per hour
COMPARE_RATE_PER_H = 1.0


def _representative_policies(log: pd.DataFrame, policies: list[str]) -> list[str]:
    """With a cuff-rate sweep, the per-policy figures show each swept family at the budget closest
    to :data:`COMPARE_RATE_PER_H` (in log rate) and every policy outside the sweep."""
    meta = log.groupby("policy", sort=False)[["family", "target_cuffs_per_h"]].first()
    keep = []
    for _family, g in meta.groupby("family", sort=False):
        rates = g["target_cuffs_per_h"].to_numpy(float)
        if not np.isfinite(rates).any():
            keep += [str(p) for p in g.index]
            continue
        dist = np.abs(np.log(np.where(np.isfinite(rates), rates, np.inf)) - np.log(COMPARE_RATE_PER_H))
        keep.append(str(g.index[int(np.nanargmin(dist))]))
    return [p for p in policies if p in set(keep)]


def _sweep_sections(log: pd.DataFrame, seed: int, n_resamples: int) -> list[Section]:
    """The sweep's curves (table and figure) and paired comparison (empty without a cuff-rate sweep)."""
    if not np.isfinite(log["target_cuffs_per_h"].to_numpy(float)).any():
        return []
    curves = ev.cuff_rate_curves(log, n_resamples=n_resamples, seed=seed)
    paired = ev.paired_at_rate(log, COMPARE_RATE_PER_H, n_resamples=n_resamples, seed=seed)
    families = [str(f) for f in pd.unique(curves["family"])]
    cmap = matplotlib.colormaps["tab20"]
    colors = {f: matplotlib.colors.to_hex(cmap((2 * i) % 20 + (i // 10) % 2)) for i, f in enumerate(families)}
    sections = [
        Section(
            "cuff-rate",
            "Error against cuff rate",
            tables=[
                _table(
                    "Error against cuff rate",
                    "Each calibrator family run once per budget (readings per hour, paced); MAE in mmHg, "
                    "mean over subjects of each subject's MAE (averaged over seeds), 95 % bootstrap "
                    "intervals over subjects. The oracle reads the reference: an upper bound, not a "
                    "competitor.",
                    cuff_rate_table(curves),
                )
            ],
            figures=[cuff_rate_figure(curves, colors)],
        )
    ]
    if not paired.empty:
        sections.append(
            Section(
                "paired-at-rate",
                f"Families at {COMPARE_RATE_PER_H:g} cuff reading per hour, paired per subject",
                tables=[
                    _table(
                        "Families paired at rate",
                        "Each subject's MAE interpolated at the common rate along its own (cuffs per hour, "
                        "MAE) points (linear in log rate); differences from the best family per subject, "
                        "mean [95 % bootstrap interval over subjects]. Families whose curves reach the rate "
                        "for at least half the subjects, on the subjects all of them reach.",
                        paired_rate_table(paired),
                    )
                ],
            )
        )
    return sections


def _safety_sections(log: pd.DataFrame) -> list[Section]:
    """Residual agents against their base rule, when the logs hold both."""
    safety = ev.base_safety(log)
    if safety.empty:
        return []
    return [
        Section(
            "safety",
            "Residual agents against their base rule",
            tables=[
                _table(
                    "Residual agents against their base rule",
                    "Per subject (MAE averaged over seeds): subjects where the agent's MAE exceeds its base "
                    "rule's by more than 10 %, and the largest ratio of agent to base MAE.",
                    safety_table(safety),
                )
            ],
        )
    ]


def _files_section(content_tables: list[ReportTable], figures: list[ReportFigure]) -> Section:
    """How to take the tables and figures into a paper, with the list of files."""
    return Section(
        "files",
        "Tables and figures for a paper",
        text=[
            r"Every table is also in tables/<name>.tex (a booktabs tabular: \usepackage{booktabs}, then "
            r"\input{tables/<name>.tex} inside your table float) and tables/<name>.csv; every figure is also "
            r"in figures/<name>.svg and figures/<name>.pdf (vector; \includegraphics{figures/<name>.pdf}) "
            "beside the PNG. The numbers behind the tables are in metrics.csv, metrics_per_seed.csv and "
            "metrics_per_subject.csv.",
            "Tables: " + ", ".join(f"{t.name}.tex" for t in content_tables) + ".",
            "Figures: " + ", ".join(f"{f.name}.pdf" for f in figures) + ".",
        ],
    )


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
    sweep = _sweep_sections(log, seed, n_resamples)
    shown = _representative_policies(log, policies) if sweep else policies
    colors = policy_colors(policies)

    sections = [_population_section(log, subjects)]
    sections += [
        Section(f"extra-{slug(name)}", name, tables=[_table(name, caption, table)])
        for name, caption, table in extra_tables
    ]
    sections += sweep + _safety_sections(log)
    sections += _result_sections(metrics, ev.evaluate_change_bins(log), log, seed, n_resamples)
    sections += _rhythm_sections(log)
    sections += _figure_sections(
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
    sections.append(_files_section(tables, figures))

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
                    _table(
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
