"""Writing the report: ``report.html`` (self-contained) and ``report.md`` with ``figures/*.png``.

:func:`write_report` evaluates the episode logs (or takes the policy comparison it is given),
renders the figures (:mod:`bprl.report.figures`) and tables (:mod:`bprl.report.tables`),
gathers notes, the methods text, the configuration and the provenance into a
:class:`ReportContent`, and renders that twice: :func:`render_markdown` and :func:`render_html`.
Provenance comes from the results folder's ``provenance.json`` when the runner recorded one,
else from :func:`collect_provenance` (built on :mod:`bprl.provenance`).
"""

from __future__ import annotations

import base64
import html
import json
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.colors
import numpy as np
import pandas as pd
import yaml

from bprl import evaluation as ev
from bprl.io import atomic_output, write_text_atomic
from bprl.provenance import git_commit, package_versions
from bprl.report.figures import (
    ReportFigure,
    bland_altman_figure,
    cuff_rate_figure,
    cuffs_vs_mae_figure,
    error_vs_time_figure,
    per_subject_figure,
    policy_colors,
    trace_figure,
)
from bprl.report.tables import (
    Table,
    accuracy_table,
    change_table,
    cuff_rate_table,
    detail_table,
    flatten_mapping,
    html_table,
    markdown_table,
    paired_rate_table,
    safety_table,
    standards_table,
    tracking_table,
)

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

#: the style sheet embedded in report.html
REPORT_CSS = """
body { font-family: Helvetica, Arial, sans-serif; color: #222; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.5em; border-bottom: 2px solid #222; padding-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; font-size: .82em; margin: .8em 0; font-variant-numeric: tabular-nums; }
thead th { border-top: 2px solid #222; border-bottom: 1px solid #222; padding: .3em .6em; text-align: left; }
tbody td { padding: .25em .6em; border-bottom: 1px solid #eee; white-space: nowrap; }
tbody tr:last-child td { border-bottom: 2px solid #222; }
td.pass, td.gradeA { color: #1a7f37; font-weight: 600; }
td.fail, td.gradeD { color: #b42318; font-weight: 600; }
td.gradeB { color: #4d7c0f; } td.gradeC { color: #b54708; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; }
figcaption { font-size: .85em; color: #555; }
pre { background: #f6f6f6; padding: .8em; font-size: .8em; overflow-x: auto; }
.note { background: #fff8e1; border-left: 4px solid #f5b400; padding: .5em .8em; font-size: .9em; }
""".strip()

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


@dataclass
class ReportContent:
    """Everything the report shows, ready to render as Markdown or HTML.

    Attributes:
        title: report title.
        summary: one line: policies, subjects, seeds and steps.
        notes: notes shown before the tables (oracle, subject count, skipped inputs).
        tables: ``(section name, caption, table)`` in order.
        methods: the methods text.
        figures: the rendered figures in order.
        config_yaml: the configuration as YAML, or None when none was given.
        provenance_rows: flattened ``[item, value]`` provenance rows (empty: no section).
    """

    title: str
    summary: str
    notes: list[str]
    tables: list[tuple[str, str, Table]]
    methods: str
    figures: list[ReportFigure]
    config_yaml: str | None
    provenance_rows: list[list[str]]


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


def _report_figures(
    ann: pd.DataFrame,
    metrics: pd.DataFrame,
    subjects: pd.DataFrame,
    policies: list[str],
    colors: dict[str, str],
    seed: int,
) -> list[ReportFigure]:
    """All figures in report order (the error-vs-time figure only when a step follows a cuff reading)."""
    figures = [bland_altman_figure(ann, policies, bp, seed) for bp in ev.BP_KINDS]
    tfig = error_vs_time_figure(ann, policies, colors)
    if tfig is not None:
        figures.append(tfig)
    figures.append(cuffs_vs_mae_figure(metrics, colors))
    figures.append(per_subject_figure(subjects, policies, colors, seed))
    figures.append(trace_figure(ann, policies, colors)[0])
    return figures


def _report_tables(
    metrics: pd.DataFrame, bins: pd.DataFrame, log: pd.DataFrame, seed: int, n_resamples: int
) -> list[tuple[str, str, Table]]:
    """``(section name, caption, table)`` of the five tables in report order."""
    return [
        (
            "Accuracy",
            "ME, SD and MAE in mmHg with 95 % bootstrap intervals over subjects.",
            accuracy_table(metrics),
        ),
        ("Standards", "Pass/fail and grades per standard (pooled over seeds).", standards_table(metrics)),
        (
            "Criterion details",
            "AAMI criterion 2, BHS percentages and ISO 81060-3 change tracking.",
            detail_table(metrics),
        ),
        (
            "IEEE 1708 by BP change since calibration",
            "MAE in mmHg (grade, pairs) by |reference − reference at the last cuff reading|.",
            change_table(bins),
        ),
        (
            "Estimator tracking",
            "Within-subject tracking of the raw estimator (before any calibration): per subject r, "
            "slope of estimate on reference, estimate SD / reference SD, and after a one-point "
            "calibration at the first step the MAE of the change since then against holding that "
            "value; medians over subjects [95 % bootstrap intervals].",
            tracking_table(log, seed, n_resamples),
        ),
    ]


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


def _sweep_section(
    log: pd.DataFrame, seed: int, n_resamples: int
) -> tuple[list[tuple[str, str, Table]], pd.DataFrame, ReportFigure] | None:
    """The sweep's tables, curves and figure (None when the logs hold no cuff-rate sweep)."""
    if not np.isfinite(log["target_cuffs_per_h"].to_numpy(float)).any():
        return None
    curves = ev.cuff_rate_curves(log, n_resamples=n_resamples, seed=seed)
    paired = ev.paired_at_rate(log, COMPARE_RATE_PER_H, n_resamples=n_resamples, seed=seed)
    families = [str(f) for f in pd.unique(curves["family"])]
    tables: list[tuple[str, str, Table]] = [
        (
            "Error against cuff rate",
            "Each calibrator family run once per budget (readings per hour, paced); MAE in mmHg, mean "
            "over subjects of each subject's MAE (averaged over seeds), 95 % bootstrap intervals over "
            "subjects. The oracle reads the reference: an upper bound, not a competitor.",
            cuff_rate_table(curves),
        )
    ]
    if not paired.empty:
        tables.append(
            (
                f"Families at {COMPARE_RATE_PER_H:g} cuff reading per hour, paired per subject",
                "Each subject's MAE interpolated at the common rate along its own (cuffs per hour, MAE) "
                "points (linear in log rate); differences from the best family per subject, mean "
                "[95 % bootstrap interval over subjects]. Families whose curves reach the rate for at "
                "least half the subjects, on the subjects all of them reach.",
                paired_rate_table(paired),
            )
        )
    cmap = matplotlib.colormaps["tab20"]
    colors = {f: matplotlib.colors.to_hex(cmap((2 * i) % 20 + (i // 10) % 2)) for i, f in enumerate(families)}
    return tables, curves, cuff_rate_figure(curves, colors)


def _safety_section(log: pd.DataFrame) -> list[tuple[str, str, Table]]:
    """Residual agents against their base rule, when the logs hold both."""
    safety = ev.base_safety(log)
    if safety.empty:
        return []
    return [
        (
            "Residual agents against their base rule",
            "Per subject (MAE averaged over seeds): subjects where the agent's MAE exceeds its base "
            "rule's by more than 10 %, and the largest ratio of agent to base MAE.",
            safety_table(safety),
        )
    ]


# ------------------------------------------------------------------ rendering
def render_markdown(content: ReportContent) -> str:
    """The Markdown report; figures are linked as ``figures/<name>.png``."""
    md = [f"# {content.title}", ""]
    md.append(content.summary)
    md.append("")
    for n in content.notes:
        md += [f"> **Note.** {n}", ""]
    for name, caption, (head, body) in content.tables:
        md += [f"## {name}", "", caption, "", markdown_table(head, body), ""]
    md += ["## Methods", "", content.methods, ""]
    md += ["## Figures", ""]
    for f in content.figures:
        md += [f"![{f.name}](figures/{f.name}.png)", "", f"*{f.caption}*", ""]
    if content.config_yaml is not None:
        md += ["## Configuration", "", "```yaml", content.config_yaml.rstrip(), "```", ""]
    if content.provenance_rows:
        md += ["## Provenance", "", markdown_table(["Item", "Value"], content.provenance_rows), ""]
    return "\n".join(md)


def render_html(content: ReportContent) -> str:
    """The self-contained HTML report: embedded CSS and base64 PNG figures, no external assets."""
    h = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(content.title)}</title>",
        f"<style>\n{REPORT_CSS}\n</style>",
        "</head><body>",
        f"<h1>{html.escape(content.title)}</h1>",
        f"<p>{content.summary}</p>",
    ]
    h += [f'<p class="note"><b>Note.</b> {html.escape(n)}</p>' for n in content.notes]
    for name, caption, (head, body) in content.tables:
        h += [f"<h2>{html.escape(name)}</h2>", f"<p>{html.escape(caption)}</p>", html_table(head, body)]
    h += ["<h2>Methods</h2>", f"<p>{html.escape(content.methods)}</p>", "<h2>Figures</h2>"]
    for f in content.figures:
        b64 = base64.b64encode(f.png).decode("ascii")
        h += [
            f'<figure id="{f.name}"><img alt="{f.name}" src="data:image/png;base64,{b64}">',
            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>",
        ]
    if content.config_yaml is not None:
        h += ["<h2>Configuration</h2>", f"<pre>{html.escape(content.config_yaml)}</pre>"]
    if content.provenance_rows:
        h += ["<h2>Provenance</h2>", html_table(["Item", "Value"], content.provenance_rows)]
    h += ["</body></html>", ""]
    return "\n".join(h)


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
) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` (+ ``figures/*.png``) into ``results_dir``.

    Args:
        results_dir: output folder (created).
        logs: episode logs (:data:`bprl.tables.EPISODE_LOG_COLUMNS`) of all policies and seeds.
        metrics: :func:`bprl.evaluation.compare_policies` of ``logs``; computed when ``None``.
        config: the experiment configuration, shown as YAML; when given, provenance
            (:func:`collect_provenance`) is shown too unless ``provenance`` is passed.
        provenance: explicit provenance mapping (e.g. recorded by the runner at run time).
        problems: messages about inputs that were skipped (shown as notes).
        title: report title.
        seed: seed of the scatter subsampling, jitter and (when computed) bootstrap.
        n_resamples: bootstrap resamples when ``metrics`` is computed here.
        extra_tables: ``(section name, caption, table)`` shown first (e.g. the paired differences
            of :func:`bprl.report.compare.compare_results`).

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
    sweep = _sweep_section(log, seed, n_resamples)
    shown = _representative_policies(log, policies) if sweep else policies
    colors = policy_colors(policies)
    figures = _report_figures(
        ann[ann["policy"].isin(shown)],
        metrics[metrics["policy"].isin(shown)],
        ev.evaluate_subjects(log[log["policy"].isin(shown)]),
        shown,
        colors,
        seed,
    )
    if sweep:
        figures.insert(0, sweep[2])
    for f in figures:
        with atomic_output(out / "figures" / f"{f.name}.png") as tmp:
            tmp.write_bytes(f.png)

    problems = list(problems)
    provenance = _resolve_provenance(out, provenance, config, problems)
    content = ReportContent(
        title=title,
        summary=(
            f"{len(policies)} policies, {log['subject_id'].nunique()} subjects, "
            f"{log['seed'].nunique()} seeds, {len(log)} steps."
        ),
        notes=report_notes(metrics, problems, log),
        tables=list(extra_tables)
        + (sweep[0] if sweep else [])
        + _safety_section(log)
        + _report_tables(metrics, ev.evaluate_change_bins(log), log, seed, n_resamples),
        methods=methods_text(),
        figures=figures,
        config_yaml=(
            yaml.safe_dump(config, sort_keys=True, default_flow_style=False) if config is not None else None
        ),
        provenance_rows=flatten_mapping(provenance) if provenance else [],
    )
    md_path = write_text_atomic(render_markdown(content), out / "report.md")
    html_path = write_text_atomic(render_html(content), out / "report.html")
    return html_path, md_path
