"""The evaluation report: one self-contained HTML file and a Markdown twin with PNG figures.

:func:`write_report` turns episode logs and the policy comparison of
:func:`bprl.evaluation.compare_policies` into

* ``report.html``: tables and figures (base64 PNG) in one file, no external assets;
* ``report.md`` with the figures as ``figures/*.png`` next to it.

Contents: the policy comparison with pass/fail per standard, IEEE 1708 errors by BP
change since calibration, Bland-Altman plots (SBP, DBP, one panel per policy),
error against time since calibration, cuff readings per hour against MAE with the
Pareto front, per-subject errors, an example episode trace, the configuration and
provenance when given, and a note on the oracle as an upper bound.

The output is deterministic: figures are rendered with the Agg backend with fixed
metadata (no software/date stamps), scatter subsampling is seeded, and no
timestamp is written anywhere.

Modules:

* :mod:`~bprl.report.figures`: the matplotlib figures, one function each.
* :mod:`~bprl.report.tables`: the tables and their Markdown / HTML rendering.
* :mod:`~bprl.report.write`: :func:`write_report`, notes, methods text, provenance, CSS.

:func:`pareto_front` lives in :mod:`bprl.evaluation.pareto` and is re-exported here.
Every public name of the former module ``bprl/reports.py`` is importable from here.
"""

from __future__ import annotations

from bprl.evaluation.pareto import pareto_front
from bprl.report.figures import (
    MAX_SCATTER_POINTS,
    ReportFigure,
    bland_altman_figure,
    cuffs_vs_mae_figure,
    error_vs_time_figure,
    per_subject_figure,
    policy_colors,
    trace_figure,
)
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
    REPORT_CSS,
    ReportContent,
    collect_provenance,
    methods_text,
    render_html,
    render_markdown,
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
    "markdown_table",
    "methods_text",
    "pareto_front",
    "per_subject_figure",
    "policy_colors",
    "render_html",
    "render_markdown",
    "report_notes",
    "standards_table",
    "trace_figure",
    "write_report",
]
