"""The report's sections, one builder each: the test population, the sweep and safety tables,
accuracy and standards, error by rhythm, the figures, and the files for a paper.

Each builder turns evaluation tables of the episode log into :class:`~bprl.report.render.Section`
objects (text, :class:`~bprl.report.render.ReportTable` s, figures) for
:func:`bprl.report.write.write_report`.
"""

from __future__ import annotations

import matplotlib
import matplotlib.colors
import numpy as np
import pandas as pd

from bprl import evaluation as ev
from bprl.report.exports import slug
from bprl.report.figures import (
    ReportFigure,
    bland_altman_figure,
    cuff_rate_figure,
    cuffs_vs_mae_figure,
    error_vs_time_figure,
    population_figure,
)
from bprl.report.render import ReportTable, Section
from bprl.report.subject_figures import per_subject_figures, trace_figures
from bprl.report.tables import (
    Table,
    accuracy_table,
    change_table,
    cuff_rate_table,
    detail_table,
    paired_rate_table,
    population_table,
    requirements_table,
    rhythm_table,
    safety_table,
    standards_table,
    tracking_table,
)

__all__ = [
    "COMPARE_RATE_PER_H",
    "figure_sections",
    "files_section",
    "population_section",
    "report_table",
    "representative_policies",
    "result_sections",
    "rhythm_sections",
    "safety_sections",
    "sweep_sections",
]


def report_table(name: str, caption: str, table: Table, title: str = "") -> ReportTable:
    """A :class:`ReportTable` whose file stem is the slug of ``name``."""
    return ReportTable(slug(name), title, caption, table)


def population_section(log: pd.DataFrame, subjects: pd.DataFrame | None) -> Section:
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
    settings = {"af_rate_per_h", "ectopic_prob"} <= set(pop.columns)
    ect = 100.0 * pop["ectopic_prob"].to_numpy(float) if settings else np.zeros(0)
    if np.isfinite(ect).any():  # virtual subjects (real records have no simulator settings)
        af = pop["af_rate_per_h"].to_numpy(float)
        n_virtual = int(np.isfinite(ect).sum())
        text.append(
            f"Rhythm (virtual subjects' settings): {int((af > 0).sum())} of {n_virtual} with paroxysmal AF "
            f"episodes; ectopic beats median {np.nanmedian(ect):.2f} % (max {np.nanmax(ect):.2f} %)."
        )
    else:
        text.append("Rhythm settings: not recorded for these subjects.")
    ref = ev.population.reference_steps(log)
    af = ref["af_share"].to_numpy(float)
    if np.isfinite(af).any():
        in_af = np.nan_to_num(af) >= ev.evaluate.AF_STEP_SHARE
        subj = ref["subject_id"].to_numpy()
        text.append(
            f"Detected rhythm (rhythm-aware replay tables): AF in {100 * in_af.mean():.1f} % of the test "
            f"steps, in {len(set(subj[in_af]))} of {len(pop)} subjects."
        )
    return Section(
        "test-population",
        "Test population",
        text=text,
        tables=[
            report_table(
                "ISO 81060-2 sample requirements",
                "ISO 81060-2:2018 general-population requirements against the test population: subjects, "
                "sex (from the subjects table, not assessable without it) and the share of reference "
                "readings (test steps, each subject weighted equally) beyond each BP threshold.",
                requirements_table(req),
                "ISO 81060-2 sample requirements",
            ),
            report_table(
                "Test subjects",
                "Per test subject: steps, hours and record segments replayed; reference BP in mmHg.",
                population_table(pop),
                "Test subjects",
            ),
        ],
        figures=[population_figure(ref)],
    )


def result_sections(
    metrics: pd.DataFrame, bins: pd.DataFrame, log: pd.DataFrame, seed: int, n_resamples: int
) -> list[Section]:
    """The accuracy, standards, criterion-detail, IEEE 1708-by-change and tracking sections."""
    return [
        Section(
            "accuracy",
            "Accuracy",
            tables=[
                report_table(
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
                report_table(
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
                report_table(
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
                report_table(
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
                report_table(
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


def rhythm_sections(log: pd.DataFrame) -> list[Section]:
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
                report_table(
                    "Error by rhythm",
                    f"ME, SD and MAE in mmHg of the steps in detected atrial fibrillation (AF share of the "
                    f"step ≥ {ev.evaluate.AF_STEP_SHARE:g}) and of the other steps, all seeds pooled.",
                    rhythm_table(by),
                )
            ],
        )
    ]


def figure_sections(
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


#: the cuff rate (readings per hour) at which the per-policy figures show each swept family
COMPARE_RATE_PER_H = 1.0


def representative_policies(log: pd.DataFrame, policies: list[str]) -> list[str]:
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


def sweep_sections(log: pd.DataFrame, seed: int, n_resamples: int) -> list[Section]:
    """The sweep's curves (table and figure) and paired comparison (empty without a cuff-rate sweep)."""
    if not np.isfinite(log["target_cuffs_per_h"].to_numpy(float)).any():
        return []
    curves = ev.cuff_rate_curves(log, n_resamples=n_resamples, seed=seed)
    families = [str(f) for f in pd.unique(curves["family"])]
    cmap = matplotlib.colormaps["tab20"]
    colors = {f: matplotlib.colors.to_hex(cmap((2 * i) % 20 + (i // 10) % 2)) for i, f in enumerate(families)}
    sections = [
        Section(
            "cuff-rate",
            "Error against cuff rate",
            tables=[
                report_table(
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
    for rate in ev.compare_rates(log):
        paired = ev.paired_at_rate(log, rate, n_resamples=n_resamples, seed=seed)
        if paired.empty:
            continue
        sections.append(
            Section(
                f"paired-at-{rate:g}",
                f"Families at {rate:g} cuff reading{'s' if rate != 1 else ''} per hour, paired per subject",
                tables=[
                    report_table(
                        f"Families paired at {rate:g} per hour",
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


def safety_sections(log: pd.DataFrame) -> list[Section]:
    """Residual agents against their base rule, when the logs hold both."""
    safety = ev.base_safety(log)
    if safety.empty:
        return []
    return [
        Section(
            "safety",
            "Residual agents against their base rule",
            tables=[
                report_table(
                    "Residual agents against their base rule",
                    "Per subject (MAE averaged over seeds): subjects where the agent's MAE exceeds its base "
                    "rule's by more than 10 %, the largest ratio of agent to base MAE, and the mean "
                    "difference agent − base in mmHg [95 % bootstrap interval over subjects].",
                    safety_table(safety),
                )
            ],
        )
    ]


def files_section(content_tables: list[ReportTable], figures: list[ReportFigure]) -> Section:
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
