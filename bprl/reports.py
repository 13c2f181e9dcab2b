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
"""

from __future__ import annotations

import base64
import html
import importlib.metadata
import io
import json
import math
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bprl import evaluation as ev
from bprl.tables import atomic_output, write_text_atomic

#: packages whose versions go into the provenance section
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

#: at most this many points per policy in a Bland-Altman panel (seeded subsample beyond it)
MAX_SCATTER_POINTS = 20000

_RC = {
    "svg.hashsalt": "bprl",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}
_PNG_METADATA = {"Software": None}
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass
class _Figure:
    name: str
    caption: str
    png: bytes


# ------------------------------------------------------------------ helpers
def collect_provenance() -> dict[str, str]:
    """Python and package versions and the git commit of the bprl source tree (``unknown`` when not a checkout)."""
    out = {"python": platform.python_version()}
    for pkg in PROVENANCE_PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        out["git_commit"] = res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = "unknown"
    return out


def pareto_front(cost_a: Sequence[float], cost_b: Sequence[float]) -> list[int]:
    """Indices of the points not dominated when both costs are minimised, ordered by ``cost_a``.

    A point is dominated when another is no worse in both costs and better in one.
    Points with a non-finite cost are never on the front.
    """
    a, b = np.asarray(cost_a, dtype=float), np.asarray(cost_b, dtype=float)
    ok = np.flatnonzero(np.isfinite(a) & np.isfinite(b))
    front = []
    for i in ok:
        dominated = np.any((a[ok] <= a[i]) & (b[ok] <= b[i]) & ((a[ok] < a[i]) | (b[ok] < b[i])))
        if not dominated:
            front.append(int(i))
    return sorted(front, key=lambda i: (a[i], b[i], i))


def _flatten(d: dict, prefix: str = "") -> list[list[str]]:
    """``[[key, value], ...]`` of a nested mapping, nested keys joined with dots, in key order."""
    rows: list[list[str]] = []
    for k in sorted(d, key=str):
        v = d[k]
        if isinstance(v, dict):
            rows += _flatten(v, f"{prefix}{k}.")
        else:
            rows.append([f"{prefix}{k}", json.dumps(v) if isinstance(v, list | tuple) else str(v)])
    return rows


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="png", dpi=100, metadata=_PNG_METADATA)
    return buf.getvalue()


def _fmt(x: object, digits: int = 1) -> str:
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


def _policy_colors(policies: Sequence[str]) -> dict[str, str]:
    return {p: _COLORS[i % len(_COLORS)] for i, p in enumerate(policies)}


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


# ------------------------------------------------------------------ figures
def _fig_bland_altman(ann: pd.DataFrame, policies: list[str], bp: str, seed: int) -> _Figure:
    rows, cols = _grid(len(policies))
    with matplotlib.rc_context(_RC):
        fig = _new_figure(3.2 * cols, 2.7 * rows)
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
        for ax in axes.ravel()[len(policies) :]:
            ax.set_visible(False)
        for ax, policy in zip(axes.ravel(), policies, strict=False):
            g = ann[ann["policy"] == policy]
            ref, corr = g[f"ref_{bp}_mmhg"].to_numpy(float), g[f"corr_{bp}_mmhg"].to_numpy(float)
            ok = np.isfinite(ref) & np.isfinite(corr)
            mean, diff = (ref[ok] + corr[ok]) / 2.0, corr[ok] - ref[ok]
            if diff.size > MAX_SCATTER_POINTS:
                keep = np.sort(
                    np.random.default_rng(seed).choice(diff.size, MAX_SCATTER_POINTS, replace=False)
                )
                mean_s, diff_s = mean[keep], diff[keep]
            else:
                mean_s, diff_s = mean, diff
            ax.scatter(mean_s, diff_s, s=4, alpha=0.35, color="#4c72b0", linewidths=0, rasterized=True)
            ax.set_title(policy)
            if diff.size > 1:
                bias, sd = float(diff.mean()), float(diff.std(ddof=1))
                ax.axhline(bias, color="black", lw=1.0, label=f"bias {bias:+.1f}")
                for sign in (-1, 1):
                    ax.axhline(bias + sign * 1.96 * sd, color="black", lw=0.8, ls="--")
                ax.text(
                    0.02,
                    0.97,
                    f"bias {bias:+.1f}, LoA [{bias - 1.96 * sd:.1f}, {bias + 1.96 * sd:.1f}]",
                    transform=ax.transAxes,
                    va="top",
                    fontsize=7,
                )
            ax.axhline(0.0, color="#999999", lw=0.6)
        fig.supxlabel(f"mean of corrected and reference {bp.upper()} (mmHg)", fontsize=9)
        fig.supylabel("corrected − reference (mmHg)", fontsize=9)
    return _Figure(
        f"bland_altman_{bp}",
        f"Bland-Altman plot of {bp.upper()} per policy (all seeds): bias (solid) and 95 % limits of "
        "agreement, bias ± 1.96 SD (dashed).",
        _png(fig),
    )


def _fig_error_vs_time(ann: pd.DataFrame, policies: list[str], colors: dict[str, str]) -> _Figure | None:
    t = ann["t_since_cal_s"].to_numpy(float) / 60.0
    if not np.isfinite(t).any():
        return None
    t_max = float(np.nanmax(t))
    edges = np.linspace(0.0, t_max if t_max > 0 else 1.0, 13)
    with matplotlib.rc_context(_RC):
        fig = _new_figure(7.0, 2.8)
        axes = fig.subplots(1, 2, sharex=True)
        for ax, bp in zip(axes, ev.BP_KINDS, strict=True):
            for policy in policies:
                g = ann[ann["policy"] == policy]
                tt = g["t_since_cal_s"].to_numpy(float) / 60.0
                err = np.abs(g[f"corr_{bp}_mmhg"].to_numpy(float) - g[f"ref_{bp}_mmhg"].to_numpy(float))
                ok = np.isfinite(tt) & np.isfinite(err)
                if not ok.any():
                    continue
                idx = np.clip(np.searchsorted(edges, tt[ok], side="right") - 1, 0, len(edges) - 2)
                sums = np.bincount(idx, weights=err[ok], minlength=len(edges) - 1)
                counts = np.bincount(idx, minlength=len(edges) - 1)
                centres = (edges[:-1] + edges[1:]) / 2.0
                has = counts > 0
                ax.plot(
                    centres[has],
                    sums[has] / counts[has],
                    marker="o",
                    ms=3,
                    color=colors[policy],
                    label=policy,
                )
            ax.set_title(bp.upper())
            ax.set_xlabel("time since last cuff reading (min)")
            ax.set_ylabel("mean |error| (mmHg)")
            ax.set_ylim(bottom=0)
        axes[1].legend(frameon=False)
    return _Figure(
        "error_vs_time_since_calibration",
        "Mean absolute error against time since the last cuff reading (12 equal bins; steps before the "
        "first cuff reading are left out).",
        _png(fig),
    )


def _fig_cuffs_vs_mae(metrics: pd.DataFrame, colors: dict[str, str]) -> _Figure:
    with matplotlib.rc_context(_RC):
        fig = _new_figure(7.0, 2.9)
        axes = fig.subplots(1, 2)
        x = metrics["cuffs_per_hour"].to_numpy(float)
        for ax, bp in zip(axes, ev.BP_KINDS, strict=True):
            y = metrics[f"{bp}_mae_mmhg"].to_numpy(float)
            for i, policy in enumerate(metrics["policy"]):
                ax.scatter([x[i]], [y[i]], color=colors[policy], s=28, zorder=3)
                ax.annotate(str(policy), (x[i], y[i]), xytext=(4, 3), textcoords="offset points", fontsize=7)
            front = pareto_front(x, y)
            if front:
                fx, fy = x[front], y[front]
                x_end = max(float(np.nanmax(x)), float(fx[-1]))
                ax.step(
                    np.append(fx, x_end),
                    np.append(fy, fy[-1]),
                    where="post",
                    color="black",
                    lw=0.9,
                    ls="--",
                    label="Pareto front",
                )
                ax.scatter(fx, fy, s=70, facecolors="none", edgecolors="black", lw=0.8, zorder=4)
                ax.legend(frameon=False, loc="upper right")
            ax.set_xlabel("cuff readings per hour")
            ax.set_ylabel(f"{bp.upper()} MAE (mmHg)")
            ax.set_title(bp.upper())
    return _Figure(
        "cuffs_vs_mae",
        "Cuff readings per hour against MAE (pooled over seeds); the dashed line joins the policies that no "
        "other policy beats on both.",
        _png(fig),
    )


def _fig_per_subject(
    subjects: pd.DataFrame, policies: list[str], colors: dict[str, str], seed: int
) -> _Figure:
    per = subjects.groupby(["policy", "subject_id"], sort=False)[["sbp_mae_mmhg", "dbp_mae_mmhg"]].mean()
    rng = np.random.default_rng(seed)
    with matplotlib.rc_context(_RC):
        fig = _new_figure(max(4.0, 1.2 * len(policies) + 2.0) * 1.6, 3.0)
        axes = fig.subplots(1, 2)
        for ax, bp in zip(axes, ev.BP_KINDS, strict=True):
            data = []
            for policy in policies:
                v = per.loc[policy, f"{bp}_mae_mmhg"].to_numpy(float) if policy in per.index else np.empty(0)
                data.append(v[np.isfinite(v)])
            ax.boxplot(
                data, tick_labels=policies, widths=0.5, showfliers=False, medianprops={"color": "black"}
            )
            for i, (policy, v) in enumerate(zip(policies, data, strict=True)):
                jitter = rng.uniform(-0.12, 0.12, v.size)
                ax.scatter(i + 1 + jitter, v, s=10, color=colors[policy], alpha=0.8, zorder=3, linewidths=0)
            ax.set_ylabel(f"per-subject {bp.upper()} MAE (mmHg)")
            ax.tick_params(axis="x", labelrotation=30)
            ax.set_ylim(bottom=0)
    return _Figure(
        "per_subject_errors",
        "Per-subject mean absolute error (mean over seeds), box and points per policy.",
        _png(fig),
    )


def _fig_trace(ann: pd.DataFrame, policies: list[str], colors: dict[str, str]) -> tuple[_Figure, str]:
    subject = sorted(ann["subject_id"].unique())[0]
    seed = int(ann.loc[ann["subject_id"] == subject, "seed"].min())
    with matplotlib.rc_context(_RC):
        fig = _new_figure(7.0, 1.9 * len(policies) + 0.4)
        axes = fig.subplots(len(policies), 1, squeeze=False, sharex=True)[:, 0]
        for ax, policy in zip(axes, policies, strict=True):
            g = ann[(ann["policy"] == policy) & (ann["subject_id"] == subject) & (ann["seed"] == seed)]
            if g.empty:
                ax.set_title(f"{policy}: no episode for subject {subject}")
                continue
            g = g[g["episode"] == g["episode"].min()]
            t_h = g["t_s"].to_numpy(float) / 3600.0
            for bp, lw in (("sbp", 1.2), ("dbp", 1.0)):
                ax.plot(
                    t_h, g[f"ref_{bp}_mmhg"], color="black", lw=lw, label="reference" if bp == "sbp" else None
                )
                ax.plot(
                    t_h,
                    g[f"est_{bp}_mmhg"],
                    color="#888888",
                    lw=0.8,
                    ls="--",
                    label="raw estimate" if bp == "sbp" else None,
                )
                ax.plot(
                    t_h,
                    g[f"corr_{bp}_mmhg"],
                    color=colors[policy],
                    lw=1.0,
                    label="corrected" if bp == "sbp" else None,
                )
            cuff = g["cuff"].to_numpy(bool)
            if cuff.any():
                ax.scatter(
                    np.concatenate([t_h[cuff], t_h[cuff]]),
                    np.concatenate(
                        [g["cuff_sbp_mmhg"].to_numpy(float)[cuff], g["cuff_dbp_mmhg"].to_numpy(float)[cuff]]
                    ),
                    marker="v",
                    color="#d62728",
                    s=22,
                    zorder=4,
                    label="cuff reading",
                )
            ax.set_title(f"{policy}  (subject {subject}, seed {seed})")
            ax.set_ylabel("BP (mmHg)")
            ax.legend(frameon=False, ncols=4, loc="upper right", fontsize=7)
        axes[-1].set_xlabel("time (h)")
    return (
        _Figure(
            "example_trace",
            f"Example episode of subject {subject} (seed {seed}): reference, raw estimator output, corrected "
            "estimate (SBP upper and DBP lower traces) and cuff readings.",
            _png(fig),
        ),
        str(subject),
    )


# ------------------------------------------------------------------ tables
_STANDARD_COLS: list[tuple[str, str]] = [
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


def _ci(row: pd.Series, bp: str, stat: str) -> str:
    return f"{_fmt(row[f'{bp}_{stat}_mmhg'])} [{_fmt(row[f'{bp}_{stat}_ci_lo_mmhg'])}, {_fmt(row[f'{bp}_{stat}_ci_hi_mmhg'])}]"


def _accuracy_table(metrics: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    head = ["Policy", "Subjects", "Seeds"]
    for bp in ("SBP", "DBP"):
        head += [f"{bp} ME", f"{bp} SD", f"{bp} MAE", f"{bp} MAE IQM over seeds"]
    head += ["Cuffs / h"]
    body = []
    for _, r in metrics.iterrows():
        line = [str(r["policy"]), _fmt(r["n_subjects"]), _fmt(r["n_seeds"])]
        for bp in ev.BP_KINDS:
            iqm = (
                f"{_fmt(r[f'{bp}_mae_mmhg_seed_iqm'])} [{_fmt(r[f'{bp}_mae_mmhg_seed_iqm_ci_lo'])}, "
                f"{_fmt(r[f'{bp}_mae_mmhg_seed_iqm_ci_hi'])}]"
            )
            line += [_ci(r, bp, "me"), _ci(r, bp, "sd"), _ci(r, bp, "mae"), iqm]
        line.append(_fmt(r["cuffs_per_hour"], 2))
        body.append(line)
    return head, body


def _standards_table(metrics: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    head = ["Policy"] + [h for h, _ in _STANDARD_COLS] + ["HTN sensitivity", "HTN specificity", "Category κ"]
    body = []
    for _, r in metrics.iterrows():
        line = [str(r["policy"])] + [_fmt(r[c]) for _, c in _STANDARD_COLS]
        line += [_fmt(r["htn_sensitivity"], 2), _fmt(r["htn_specificity"], 2), _fmt(r["category_kappa"], 2)]
        body.append(line)
    return head, body


def _detail_table(metrics: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
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
                    _fmt(r[f"{bp}_subject_me_sd_mmhg"], 2),
                    _fmt(r[f"{bp}_aami_c2_limit_mmhg"], 2),
                    " / ".join(_fmt(r[f"{bp}_bhs_pct{k}"]) for k in (5, 10, 15)),
                    _fmt(r[f"{bp}_iso3_n_changes"]),
                    _fmt(r[f"{bp}_iso3_ape_median_pct"]),
                    _fmt(r[f"{bp}_iso3_ape_p85_pct"]),
                ]
            )
    return head, body


def _change_table(bins: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    labels = list(dict.fromkeys(bins["change_bin"]))
    head = ["Policy", "BP"] + [f"|Δref| {lab}" if lab != "no calibration" else lab for lab in labels]
    body = []
    for (policy, bp), g in bins.groupby(["policy", "bp"], sort=False):
        g = g.set_index("change_bin")
        line = [str(policy), str(bp).upper()]
        for lab in labels:
            if lab in g.index and g.loc[lab, "n_pairs"] > 0:
                line.append(
                    f"{_fmt(g.loc[lab, 'mae_mmhg'])} ({g.loc[lab, 'grade']}, n={int(g.loc[lab, 'n_pairs'])})"
                )
            else:
                line.append("–")
        body.append(line)
    return head, body


def _md_table(head: list[str], body: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def _html_table(head: list[str], body: list[list[str]]) -> str:
    def cell(c: str) -> str:
        cls = {"pass": "pass", "FAIL": "fail"}.get(c, "")
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


# ------------------------------------------------------------------ report
_CSS = """
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


def _notes(metrics: pd.DataFrame, problems: Sequence[str]) -> list[str]:
    notes = []
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


_METHODS = (
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

    Returns:
        ``(html_path, md_path)``. Every file is written atomically; the same inputs give
        byte-identical files.
    """
    out = Path(results_dir)
    log = ev.check_episode_log(logs)
    if metrics is None:
        metrics = ev.compare_policies(log, n_resamples=n_resamples, seed=seed)
    ann = ev.annotate_calibration(log)
    policies = [str(p) for p in metrics["policy"]] + [
        str(p) for p in pd.unique(ann["policy"]) if str(p) not in set(metrics["policy"].astype(str))
    ]
    colors = _policy_colors(policies)
    subjects = ev.evaluate_subjects(log)
    bins = ev.evaluate_change_bins(log)

    figures = [_fig_bland_altman(ann, policies, bp, seed) for bp in ev.BP_KINDS]
    tfig = _fig_error_vs_time(ann, policies, colors)
    if tfig is not None:
        figures.append(tfig)
    figures.append(_fig_cuffs_vs_mae(metrics, colors))
    figures.append(_fig_per_subject(subjects, policies, colors, seed))
    figures.append(_fig_trace(ann, policies, colors)[0])

    for f in figures:
        with atomic_output(out / "figures" / f"{f.name}.png") as tmp:
            tmp.write_bytes(f.png)

    if provenance is None:
        recorded = out / "provenance.json"
        if recorded.is_file():
            try:
                provenance = json.loads(recorded.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                problems = [*problems, f"{recorded}: unreadable provenance ({exc})"]
        if provenance is None and config is not None:
            provenance = collect_provenance()
    prov_rows = _flatten(provenance) if provenance else []
    notes = _notes(metrics, problems)
    min_change = ev.ISO3_MIN_CHANGE_MMHG
    tables = [
        (
            "Accuracy",
            "ME, SD and MAE in mmHg with 95 % bootstrap intervals over subjects.",
            _accuracy_table(metrics),
        ),
        ("Standards", "Pass/fail and grades per standard (pooled over seeds).", _standards_table(metrics)),
        (
            "Criterion details",
            "AAMI criterion 2, BHS percentages and ISO 81060-3 change tracking.",
            _detail_table(metrics),
        ),
        (
            "IEEE 1708 by BP change since calibration",
            "MAE in mmHg (grade, pairs) by |reference − reference at the last cuff reading|.",
            _change_table(bins),
        ),
    ]
    methods = _METHODS.format(min_change=min_change)
    cfg_text = (
        yaml.safe_dump(config, sort_keys=True, default_flow_style=False) if config is not None else None
    )
    n_steps = len(log)

    # ---- Markdown
    md = [f"# {title}", ""]
    md.append(
        f"{len(policies)} policies, {log['subject_id'].nunique()} subjects, {log['seed'].nunique()} seeds, {n_steps} steps."
    )
    md.append("")
    for n in notes:
        md += [f"> **Note.** {n}", ""]
    for name, caption, (head, body) in tables:
        md += [f"## {name}", "", caption, "", _md_table(head, body), ""]
    md += ["## Methods", "", methods, ""]
    md += ["## Figures", ""]
    for f in figures:
        md += [f"![{f.name}](figures/{f.name}.png)", "", f"*{f.caption}*", ""]
    if cfg_text is not None:
        md += ["## Configuration", "", "```yaml", cfg_text.rstrip(), "```", ""]
    if prov_rows:
        md += ["## Provenance", "", _md_table(["Item", "Value"], prov_rows), ""]
    md_path = write_text_atomic("\n".join(md), out / "report.md")

    # ---- HTML
    h = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(policies)} policies, {log['subject_id'].nunique()} subjects, {log['seed'].nunique()} seeds, {n_steps} steps.</p>",
    ]
    h += [f'<p class="note"><b>Note.</b> {html.escape(n)}</p>' for n in notes]
    for name, caption, (head, body) in tables:
        h += [f"<h2>{html.escape(name)}</h2>", f"<p>{html.escape(caption)}</p>", _html_table(head, body)]
    h += ["<h2>Methods</h2>", f"<p>{html.escape(methods)}</p>", "<h2>Figures</h2>"]
    for f in figures:
        b64 = base64.b64encode(f.png).decode("ascii")
        h += [
            f'<figure id="{f.name}"><img alt="{f.name}" src="data:image/png;base64,{b64}">',
            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>",
        ]
    if cfg_text is not None:
        h += ["<h2>Configuration</h2>", f"<pre>{html.escape(cfg_text)}</pre>"]
    if prov_rows:
        h += ["<h2>Provenance</h2>", _html_table(["Item", "Value"], prov_rows)]
    h += ["</body></html>", ""]
    html_path = write_text_atomic("\n".join(h), out / "report.html")
    return html_path, md_path
