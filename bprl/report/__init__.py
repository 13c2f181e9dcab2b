"""The evaluation report: a self-contained HTML page, its Markdown twin, and every table and figure
as files for a paper.

:func:`write_report` turns episode logs and the policy comparison of
:func:`bprl.evaluation.compare_policies` into

* ``report.html``: a table of contents, tables and figures (base64 PNG) in one file, no external
  assets;
* ``report.md`` with the figures as ``figures/*.png`` next to it;
* ``figures/<name>.svg`` and ``.pdf`` (vector) beside each PNG, ``tables/<name>.tex`` (booktabs)
  and ``.csv`` for each table.

Contents: the test population (subjects, reference-BP distribution, ISO 81060-2 sample
requirements, rhythm and segments), for a cuff-rate sweep the error-against-rate curves, the
policy comparison with intervals, verdicts per standard (pass, FAIL or not assessable), IEEE 1708
errors by BP change since calibration, estimator tracking, Bland-Altman plots per policy, error
against time since calibration, cuff readings per hour against MAE with the Pareto front of the
deployable policies (the oracle drawn apart as a bound), per-subject errors readable at any
number of subjects, the traces of every test subject, methods, configuration and provenance.

The output is deterministic: figures are rendered with the Agg backend with fixed
metadata (no software/date stamps), scatter subsampling is seeded, and no
timestamp is written anywhere.

Modules:

* :mod:`~bprl.report.figures`: the matplotlib figures, one function each, rendered to PNG/SVG/PDF.
* :mod:`~bprl.report.subject_figures`: per-subject errors and traces.
* :mod:`~bprl.report.tables`: the tables and their Markdown / HTML rendering.
* :mod:`~bprl.report.exports`: LaTeX (booktabs) and CSV tables, figure files.
* :mod:`~bprl.report.sections`: the sections, one builder each.
* :mod:`~bprl.report.render`: sections, table of contents, HTML and Markdown.
* :mod:`~bprl.report.write`: :func:`write_report`, notes, methods text, provenance.

:func:`pareto_front` lives in :mod:`bprl.evaluation.pareto` and is re-exported here.
Every public name of the former module ``bprl/reports.py`` is importable from here.
"""

from __future__ import annotations

from bprl.evaluation.pareto import pareto_front
from bprl.report.exports import latex_table, write_figure_files, write_table_files
from bprl.report.figures import (
    MAX_SCATTER_POINTS,
    ReportFigure,
    bland_altman_figure,
    cuffs_vs_mae_figure,
    error_vs_time_figure,
    policy_colors,
    population_figure,
)
from bprl.report.render import REPORT_CSS, ReportContent, ReportTable, Section, render_html, render_markdown
from bprl.report.subject_figures import per_subject_figure, per_subject_figures, trace_figure, trace_figures
from bprl.report.tables import (
    STANDARD_COLUMNS,
    Table,
    accuracy_table,
    change_table,
    detail_table,
    flatten_mapping,
    format_value,
    html_table,
    markdown_table,
    standards_table,
)
from bprl.report.write import (
    METHODS_TEMPLATE,
    PROVENANCE_PACKAGES,
    collect_provenance,
    methods_text,
    report_notes,
    write_report,
)

__all__ = [
    "MAX_SCATTER_POINTS",
    "METHODS_TEMPLATE",
    "PROVENANCE_PACKAGES",
    "REPORT_CSS",
    "STANDARD_COLUMNS",
    "ReportContent",
    "ReportFigure",
    "ReportTable",
    "Section",
    "Table",
    "accuracy_table",
    "bland_altman_figure",
    "change_table",
    "collect_provenance",
    "cuffs_vs_mae_figure",
    "detail_table",
    "error_vs_time_figure",
    "flatten_mapping",
    "format_value",
    "html_table",
    "latex_table",
    "markdown_table",
    "methods_text",
    "pareto_front",
    "per_subject_figure",
    "per_subject_figures",
    "policy_colors",
    "population_figure",
    "render_html",
    "render_markdown",
    "report_notes",
    "standards_table",
    "trace_figure",
    "trace_figures",
    "write_figure_files",
    "write_report",
    "write_table_files",
]
