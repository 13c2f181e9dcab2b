"""The report's tables: accuracy, standards, criterion details, IEEE 1708 by BP change, estimator
tracking, and for a cuff-rate sweep the error-against-rate curves and the paired comparison.

Each table function turns a :func:`bprl.evaluation.compare_policies` (or
:func:`bprl.evaluation.evaluate_change_bins`) table into a :data:`Table`, a header and rows
of formatted cell strings; :func:`markdown_table` and :func:`html_table` render a
:data:`Table`. Numbers are formatted by :func:`format_value` (``–`` for missing values,
``pass`` / ``FAIL`` for booleans, never ``-0.0``).
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from bprl import evaluation as ev

#: a table: header cells and rows of cells, all formatted strings
Table = tuple[list[str], list[list[str]]]

#: (column header, metrics column) of the standards table, in column order
STANDARD_COLUMNS: list[tuple[str, str]] = [
    ("AAMI c1 SBP", "sbp_aami_c1_pass"),
    ("AAMI c1 DBP", "dbp_aami_c1_pass"),
    ("AAMI c2 SBP", "sbp_aami_c2_pass"),
    ("AAMI c2 DBP", "dbp_aami_c2_pass"),
    ("BHS SBP", "sbp_bhs_grade"),
    ("BHS DBP", "dbp_bhs_grade"),
    ("IEEE 1708 SBP", "sbp_ieee_grade"),
    ("IEEE 1708 DBP", "dbp_ieee_grade"),
    ("ISO 81060-3 SBP", "sbp_iso3_pass"),
    ("ISO 81060-3 DBP", "dbp_iso3_pass"),
]


def format_value(x: object, digits: int = 1) -> str:
    """One table cell: ``–`` for None or non-finite, ``pass``/``FAIL`` for booleans, ``digits`` decimals.

    Args:
        x: the value (None, bool, integer, float or anything with a ``str``).
        digits: decimals of a float.

    Returns:
        The cell text; a float that rounds to zero is written without a minus sign.
    """
    if x is None:
        return "–"
    if isinstance(x, bool | np.bool_):
        return "pass" if x else "FAIL"
    if isinstance(x, int | np.integer):
        return str(int(x))
    if isinstance(x, float | np.floating):
        if not math.isfinite(float(x)):
            return "–"
        text = f"{float(x):.{digits}f}"
        return text[1:] if text.startswith("-") and float(text) == 0.0 else text  # no "-0.0"
    return str(x)


def flatten_mapping(d: dict[str, Any], prefix: str = "") -> list[list[str]]:
    """``[[key, value], ...]`` of a nested mapping, nested keys joined with dots, in key order.

    Lists and tuples are written as JSON, everything else with ``str``.
    """
    rows: list[list[str]] = []
    for k in sorted(d, key=str):
        v = d[k]
        if isinstance(v, dict):
            rows += flatten_mapping(v, f"{prefix}{k}.")
        else:
            rows.append([f"{prefix}{k}", json.dumps(v) if isinstance(v, list | tuple) else str(v)])
    return rows


# ------------------------------------------------------------------ the tables
def _ci_cell(row: pd.Series, bp: str, stat: str) -> str:
    """``value [lo, hi]`` of statistic ``stat`` (``me``, ``sd``, ``mae``) of ``bp`` in mmHg."""
    return (
        f"{format_value(row[f'{bp}_{stat}_mmhg'])} [{format_value(row[f'{bp}_{stat}_ci_lo_mmhg'])}, "
        f"{format_value(row[f'{bp}_{stat}_ci_hi_mmhg'])}]"
    )


def accuracy_table(metrics: pd.DataFrame) -> Table:
    """ME, SD, MAE with bootstrap intervals, the IQM of MAE over seeds, and cuffs per hour per policy.

    Args:
        metrics: policy comparison (:func:`bprl.evaluation.compare_policies`).

    Returns:
        One row per policy.
    """
    head = ["Policy", "Subjects", "Seeds"]
    for bp in ("SBP", "DBP"):
        head += [f"{bp} ME", f"{bp} SD", f"{bp} MAE", f"{bp} MAE IQM over seeds"]
    head += ["Cuffs / h"]
    body = []
    for _, r in metrics.iterrows():
        line = [str(r["policy"]), format_value(r["n_subjects"]), format_value(r["n_seeds"])]
        for bp in ev.BP_KINDS:
            iqm = (
                f"{format_value(r[f'{bp}_mae_mmhg_seed_iqm'])} [{format_value(r[f'{bp}_mae_mmhg_seed_iqm_ci_lo'])}, "
                f"{format_value(r[f'{bp}_mae_mmhg_seed_iqm_ci_hi'])}]"
            )
            line += [_ci_cell(r, bp, "me"), _ci_cell(r, bp, "sd"), _ci_cell(r, bp, "mae"), iqm]
        line.append(format_value(r["cuffs_per_hour"], 2))
        body.append(line)
    return head, body


#: how a verdict (:func:`bprl.evaluation.verdict`) is written in a table
VERDICT_TEXT = {"pass": "pass", "fail": "FAIL", "not assessable": "not assessable"}


def _standard_cell(row: pd.Series, column: str) -> str:
    """A standards cell: the verdict (pass / FAIL / not assessable) where the metrics have one for
    this pass/fail column (``..._pass`` -> ``..._verdict``), else the formatted value."""
    vcol = column[: -len("_pass")] + "_verdict" if column.endswith("_pass") else None
    if vcol is not None and vcol in row.index and isinstance(row[vcol], str):
        return VERDICT_TEXT.get(row[vcol], row[vcol])
    return format_value(row[column])


def standards_table(metrics: pd.DataFrame) -> Table:
    """Verdicts and grades per standard (:data:`STANDARD_COLUMNS`) and hypertension detection per policy.

    A pass/fail criterion reads ``pass``, ``FAIL`` or ``not assessable`` (e.g. ISO 81060-3 change
    tracking of a policy that never takes a cuff reading: no change since a reading to track).

    Args:
        metrics: policy comparison (:func:`bprl.evaluation.compare_policies`).

    Returns:
        One row per policy.
    """
    head = (
        ["Policy"] + [h for h, _ in STANDARD_COLUMNS] + ["HTN sensitivity", "HTN specificity", "Category κ"]
    )
    body = []
    for _, r in metrics.iterrows():
        line = [str(r["policy"])] + [_standard_cell(r, c) for _, c in STANDARD_COLUMNS]
        line += [
            format_value(r["htn_sensitivity"], 2),
            format_value(r["htn_specificity"], 2),
            format_value(r["category_kappa"], 2),
        ]
        body.append(line)
    return head, body


def detail_table(metrics: pd.DataFrame) -> Table:
    """AAMI criterion 2, BHS percentages and ISO 81060-3 change tracking per policy and BP kind.

    Args:
        metrics: policy comparison (:func:`bprl.evaluation.compare_policies`).

    Returns:
        One row per policy and BP kind (SBP, then DBP).
    """
    head = [
        "Policy",
        "BP",
        "SD of subject means",
        "c2 limit",
        "BHS ≤5 / ≤10 / ≤15 %",
        "ISO 3 changes",
        "APE median %",
        "APE P85 %",
    ]
    body = []
    for _, r in metrics.iterrows():
        for bp in ev.BP_KINDS:
            body.append(
                [
                    str(r["policy"]),
                    bp.upper(),
                    format_value(r[f"{bp}_subject_me_sd_mmhg"], 2),
                    format_value(r[f"{bp}_aami_c2_limit_mmhg"], 2),
                    " / ".join(format_value(r[f"{bp}_bhs_pct{k}"]) for k in (5, 10, 15)),
                    format_value(r[f"{bp}_iso3_n_changes"]),
                    format_value(r[f"{bp}_iso3_ape_median_pct"]),
                    format_value(r[f"{bp}_iso3_ape_p85_pct"]),
                ]
            )
    return head, body


def change_table(bins: pd.DataFrame) -> Table:
    """IEEE 1708 MAE (grade, pairs) by |BP change since the last cuff reading| per policy and BP kind.

    Args:
        bins: change-bin table (:func:`bprl.evaluation.evaluate_change_bins`).

    Returns:
        One row per policy and BP kind; ``–`` for bins without pairs.
    """
    labels = list(dict.fromkeys(bins["change_bin"]))
    head = ["Policy", "BP"] + [f"|Δref| {lab}" if lab != "no calibration" else lab for lab in labels]
    body = []
    for (policy, bp), g in bins.groupby(["policy", "bp"], sort=False):
        g = g.set_index("change_bin")
        line = [str(policy), str(bp).upper()]
        for lab in labels:
            if lab in g.index and g.loc[lab, "n_pairs"] > 0:
                line.append(
                    f"{format_value(g.loc[lab, 'mae_mmhg'])} "
                    f"({g.loc[lab, 'grade']}, n={int(g.loc[lab, 'n_pairs'])})"
                )
            else:
                line.append("–")
        body.append(line)
    return head, body


def tracking_table(log: pd.DataFrame, seed: int = 0, n_resamples: int = 1000) -> Table:
    """Within-subject tracking of the raw (uncalibrated) estimator on the test subjects, against *hold*.

    The raw estimate is the same for every policy; the first policy and seed of ``log`` are used.
    Medians over subjects with bootstrap intervals (:func:`bprl.tracking.pooled_tracking`).
    """
    from bprl.tracking import pooled_tracking, subject_tracking

    first = log[(log["policy"] == log["policy"].iloc[0]) & (log["seed"] == log["seed"].iloc[0])]
    steps = first[["subject_id", "t_s", "est_sbp_mmhg", "est_dbp_mmhg", "ref_sbp_mmhg", "ref_dbp_mmhg"]]
    pooled = pooled_tracking(subject_tracking(steps), n_boot=n_resamples, seed=seed)

    def cell(d: dict[str, Any], digits: int = 2) -> str:
        if not math.isfinite(d["median"]):
            return "–"
        lo, hi = (format_value(d[k], digits) for k in ("lo", "hi"))
        return f"{format_value(d['median'], digits)} [{lo}, {hi}]"

    head = [
        "BP",
        "r",
        "slope",
        "SD ratio",
        "trend MAE (mmHg)",
        "hold MAE (mmHg)",
        "trend / hold",
        "direction ≥ 10 mmHg (%)",
        "subjects",
    ]
    body = []
    for bp in ("sbp", "dbp"):
        p = pooled[bp]
        row = [bp.upper(), cell(p["r"]), cell(p["slope"]), cell(p["sd_ratio"]), cell(p["trend_mae_mmhg"], 1)]
        row += [cell(p["hold_mae_mmhg"], 1), cell(p["trend_ratio"]), cell(p["dir_agree_ge10_pct"], 0)]
        body.append([*row, str(p["n_subjects"])])
    return head, body


# ------------------------------------------------------------------ rendering
def cuff_rate_table(curves: pd.DataFrame) -> Table:
    """Error against cuff rate: one row per policy of :func:`bprl.evaluation.cuff_rate_curves`.

    Columns: family, budget (readings per hour; ``–`` outside the sweep), achieved cuffs per hour,
    SBP and DBP MAE with their intervals, refused requests; an upper bound is marked ``(bound)``.
    """
    head = ["Family", "Budget /h", "Cuffs /h", "SBP MAE [95 % CI]", "DBP MAE [95 % CI]", "Refused"]
    body = []
    for _, r in curves.iterrows():
        fam = f"{r['family']} (bound)" if bool(r["bound"]) else str(r["family"])
        cells = [
            fam,
            format_value(float(r["target_cuffs_per_h"]), 2),
            format_value(float(r["cuffs_per_hour"]), 2),
        ]
        for bp in ("sbp", "dbp"):
            cells.append(
                f"{format_value(float(r[f'{bp}_mae_mmhg']))} [{format_value(float(r[f'{bp}_mae_lo']))}, "
                f"{format_value(float(r[f'{bp}_mae_hi']))}]"
            )
        cells.append(format_value(int(r["n_refused"])))
        body.append(cells)
    return head, body


def _diff_cell(r: pd.Series, bp: str) -> str:
    """``<bp>_diff_mmhg [<bp>_diff_lo, <bp>_diff_hi]`` of a row, to 2 decimals."""
    lo, hi = format_value(float(r[f"{bp}_diff_lo"]), 2), format_value(float(r[f"{bp}_diff_hi"]), 2)
    return f"{format_value(float(r[f'{bp}_diff_mmhg']), 2)} [{lo}, {hi}]"


def paired_rate_table(paired: pd.DataFrame) -> Table:
    """Families against the best at equal cuff rate (:func:`bprl.evaluation.paired_at_rate`)."""
    head = ["Family", "Subjects", "SBP MAE", "SBP − best [95 % CI]", "DBP MAE", "DBP − best [95 % CI]"]
    body = []
    for _, r in paired.iterrows():
        fam = f"{r['family']} (best)" if bool(r["best"]) else str(r["family"])
        cells = [fam, format_value(int(r["n_subjects"]))]
        for bp in ("sbp", "dbp"):
            cells.append(format_value(float(r[f"{bp}_mae_mmhg"])))
            cells.append(_diff_cell(r, bp))
        body.append(cells)
    return head, body


def safety_table(safety: pd.DataFrame) -> Table:
    """Residual agents against their base rule (:func:`bprl.evaluation.base_safety`)."""
    head = ["Agent", "Base rule", "Subjects", "Worse > 10 % SBP", "Worse > 10 % DBP", "Worst ratio SBP / DBP"]
    head += ["Agent − base SBP", "Agent − base DBP"]
    body = [
        [
            str(r["policy"]),
            str(r["base_policy"]),
            format_value(int(r["n_subjects"])),
            format_value(int(r["n_worse_sbp"])),
            format_value(int(r["n_worse_dbp"])),
            f"{format_value(float(r['worst_ratio_sbp']), 2)} / {format_value(float(r['worst_ratio_dbp']), 2)}",
            *(_diff_cell(r, bp) for bp in ("sbp", "dbp")),
        ]
        for _, r in safety.iterrows()
    ]
    return head, body


def rhythm_table(by_rhythm: pd.DataFrame) -> Table:
    """Error by rhythm (:func:`bprl.evaluation.evaluate_rhythm`): ME, SD, MAE per policy and rhythm."""
    head = ["Policy", "Rhythm", "Subjects", "Steps"]
    head += [f"{bp} {s}" for bp in ("SBP", "DBP") for s in ("ME", "SD", "MAE")]
    body = []
    for _, r in by_rhythm.iterrows():
        line = [str(r["policy"]), str(r["rhythm"]), format_value(r["n_subjects"]), format_value(r["n_steps"])]
        line += [format_value(r[f"{bp}_{s}_mmhg"]) for bp in ev.BP_KINDS for s in ("me", "sd", "mae")]
        body.append(line)
    return head, body


def population_table(population: pd.DataFrame) -> Table:
    """The test subjects (:func:`bprl.evaluation.test_population`): steps, hours, segments,
    reference SBP/DBP mean ± SD [min, max], and sex, age, category and rhythm where known."""
    has = set(population.columns)
    head = [
        "Subject",
        "Steps",
        "Hours",
        "Segments",
        "Ref SBP mean ± SD [min, max]",
        "Ref DBP mean ± SD [min, max]",
    ]
    extra = [
        (c, h) for c, h in (("sex", "Sex"), ("age_years", "Age (y)"), ("category", "Category")) if c in has
    ]
    rhythm = {"af_rate_per_h", "ectopic_prob"} <= has
    head += [h for _, h in extra] + (["AF episodes / h", "Ectopic beats %"] if rhythm else [])
    body = []
    for _, r in population.iterrows():
        line = [
            str(r["subject_id"]),
            format_value(r["n_steps"]),
            format_value(r["hours"], 2),
            format_value(r["n_segments"]),
        ]
        for bp in ev.BP_KINDS:
            line.append(
                f"{format_value(r[f'{bp}_mean_mmhg'])} ± {format_value(r[f'{bp}_sd_mmhg'])} "
                f"[{format_value(r[f'{bp}_min_mmhg'])}, {format_value(r[f'{bp}_max_mmhg'])}]"
            )
        line += [format_value(r[c], 0) if c == "age_years" else format_value(r[c]) for c, _ in extra]
        if rhythm:
            line += [format_value(r["af_rate_per_h"], 2), format_value(100.0 * float(r["ectopic_prob"]), 2)]
        body.append(line)
    return head, body


def requirements_table(requirements: pd.DataFrame) -> Table:
    """ISO 81060-2 sample requirements (:func:`bprl.evaluation.iso81060_2_sample_requirements`):
    requirement, required, measured, and ``pass`` / ``FAIL`` / ``not assessable``."""
    head = ["Requirement", "Required", "Test population", "Met"]
    body = []
    for _, r in requirements.iterrows():
        measured = float(r["measured"])
        text = (
            format_value(int(measured)) if r["requirement"] == "subjects" else f"{format_value(measured)} %"
        )
        met = r["met"]
        body.append(
            [
                str(r["requirement"]),
                str(r["required"]),
                text if np.isfinite(measured) else "–",
                "not assessable"
                if met is None or (isinstance(met, float) and np.isnan(met))
                else format_value(bool(met)),
            ]
        )
    return head, body


def markdown_table(head: list[str], body: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def html_table(head: list[str], body: list[list[str]]) -> str:
    """An HTML table (cells escaped); ``pass``/``FAIL`` and grades A-D get a CSS class for colour."""

    def cell(c: str) -> str:
        cls = {"pass": "pass", "FAIL": "fail", "not assessable": "na"}.get(c, "")
        if c in ("A", "B", "C", "D"):
            cls = "grade" + c
        return f'<td class="{cls}">{html.escape(c)}</td>' if cls else f"<td>{html.escape(c)}</td>"

    out = [
        "<table>",
        "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead>",
        "<tbody>",
    ]
    out += ["<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in body]
    out += ["</tbody>", "</table>"]
    return "\n".join(out)
