"""The report's matplotlib figures, each rendered to PNG, SVG and PDF by one function.

Bland-Altman plots (one panel per policy), mean absolute error against time since the last
cuff reading, cuff readings per hour against MAE with the Pareto front of the deployable
policies, the cuff-rate curves of a sweep and the reference-BP distribution of the test
population. Per-subject figures (errors, traces) are in :mod:`bprl.report.subject_figures`.
Every function takes episode-log derived tables (the output of
:func:`bprl.evaluation.annotate_calibration`, :func:`bprl.evaluation.compare_policies` or
:func:`bprl.evaluation.evaluate_subjects`) and returns a :class:`ReportFigure`.

Rendering is deterministic: the Agg canvas, fixed rc parameters (including the SVG hash salt),
no software or date stamp in the PNG, SVG or PDF metadata, and seeded scatter subsampling and
jitter. Legends sit outside the axes, so they never cover data.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bprl import evaluation as ev

#: at most this many points per policy in a Bland-Altman panel (seeded subsample beyond it)
MAX_SCATTER_POINTS = 20000

_RC = {
    "svg.hashsalt": "bprl",
    # text stays text: editable in a vector editor, searchable; TrueType (Type 42) in PDF, as
    # journals that refuse Type 3 fonts ask
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}
_METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
}
#: resolution of the PNG figures (report.html embeds them; the SVG and PDF twins are vector)
PNG_DPI = 150
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass
class ReportFigure:
    """One rendered figure of the report.

    Attributes:
        name: file stem (``figures/<name>.png`` / ``.svg`` / ``.pdf``) and HTML element id.
        caption: caption text (plain text, escaped when written to HTML).
        png: the PNG bytes (:data:`PNG_DPI`).
        svg: the SVG bytes (empty: not rendered).
        pdf: the PDF bytes (empty: not rendered).
    """

    name: str
    caption: str
    png: bytes
    svg: bytes = b""
    pdf: bytes = b""

    def files(self) -> dict[str, bytes]:
        """``{file name: bytes}`` of every rendered format."""
        return {
            f"{self.name}.{ext}": data
            for ext, data in (("png", self.png), ("svg", self.svg), ("pdf", self.pdf))
            if data
        }


# ------------------------------------------------------------------ helpers
def policy_colors(policies: Sequence[str]) -> dict[str, str]:
    """A fixed colour (hex string) per policy, cycling through eight colours in the given order."""
    return {p: _COLORS[i % len(_COLORS)] for i, p in enumerate(policies)}


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    """``(rows, cols)`` of a panel grid for ``n`` panels, at most ``max_cols`` wide."""
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure of ``width`` x ``height`` inches on an Agg canvas."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, fmt: str, dpi: float = PNG_DPI) -> bytes:
    """``fig`` as ``fmt`` (png, svg, pdf) bytes, without software or date stamps."""
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
    return buf.getvalue()


def rendered(fig: Figure, name: str, caption: str, png_dpi: float = PNG_DPI) -> ReportFigure:
    """``fig`` rendered as PNG (``png_dpi``), SVG and PDF into a :class:`ReportFigure`."""
    return ReportFigure(name, caption, _save(fig, "png", png_dpi), _save(fig, "svg"), _save(fig, "pdf"))


# ------------------------------------------------------------------ Bland-Altman
def _bland_altman_panel(ax: Axes, g: pd.DataFrame, policy: str, bp: str, seed: int) -> None:
    """Draw one policy's Bland-Altman scatter, bias and 95 % limits of agreement on ``ax``."""
    ref, corr = g[f"ref_{bp}_mmhg"].to_numpy(float), g[f"corr_{bp}_mmhg"].to_numpy(float)
    ok = np.isfinite(ref) & np.isfinite(corr)
    mean, diff = (ref[ok] + corr[ok]) / 2.0, corr[ok] - ref[ok]
    if diff.size > MAX_SCATTER_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(diff.size, MAX_SCATTER_POINTS, replace=False))
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


def bland_altman_figure(ann: pd.DataFrame, policies: list[str], bp: str, seed: int) -> ReportFigure:
    """Bland-Altman plot of one BP kind, one panel per policy, all seeds pooled.

    Args:
        ann: annotated episode log (:func:`bprl.evaluation.annotate_calibration`).
        policies: policies to draw, in panel order.
        bp: ``"sbp"`` or ``"dbp"``.
        seed: seed of the subsample drawn when a policy has more than
            :data:`MAX_SCATTER_POINTS` pairs.

    Returns:
        The figure ``bland_altman_<bp>``.
    """
    rows, cols = _grid(len(policies))
    with matplotlib.rc_context(_RC):
        fig = _new_figure(3.2 * cols, 2.7 * rows)
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
        for ax in axes.ravel()[len(policies) :]:
            ax.set_visible(False)
        for ax, policy in zip(axes.ravel(), policies, strict=False):
            _bland_altman_panel(ax, ann[ann["policy"] == policy], policy, bp, seed)
        fig.supxlabel(f"mean of corrected and reference {bp.upper()} (mmHg)", fontsize=9)
        fig.supylabel("corrected − reference (mmHg)", fontsize=9)
    return rendered(
        fig,
        f"bland_altman_{bp}",
        f"Bland-Altman plot of {bp.upper()} per policy (all seeds): bias (solid) and 95 % limits of "
        "agreement, bias ± 1.96 SD (dashed).",
    )


# ------------------------------------------------------------------ error vs time
def _binned_abs_error(
    g: pd.DataFrame, bp: str, edges_min: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(bin centres in min, mean |error| in mmHg)`` of the non-empty time bins, None without pairs."""
    tt = g["t_since_cal_s"].to_numpy(float) / 60.0
    err = np.abs(g[f"corr_{bp}_mmhg"].to_numpy(float) - g[f"ref_{bp}_mmhg"].to_numpy(float))
    ok = np.isfinite(tt) & np.isfinite(err)
    if not ok.any():
        return None
    idx = np.clip(np.searchsorted(edges_min, tt[ok], side="right") - 1, 0, len(edges_min) - 2)
    sums = np.bincount(idx, weights=err[ok], minlength=len(edges_min) - 1)
    counts = np.bincount(idx, minlength=len(edges_min) - 1)
    centres = (edges_min[:-1] + edges_min[1:]) / 2.0
    has = counts > 0
    return centres[has], sums[has] / counts[has]


def error_vs_time_figure(
    ann: pd.DataFrame, policies: list[str], colors: dict[str, str]
) -> ReportFigure | None:
    """Mean absolute error against time since the last cuff reading (12 equal bins), SBP and DBP panels.

    Args:
        ann: annotated episode log (:func:`bprl.evaluation.annotate_calibration`).
        policies: policies to draw (one line each).
        colors: colour per policy (:func:`policy_colors`).

    Returns:
        The figure ``error_vs_time_since_calibration``, or None when no step follows a cuff reading.
    """
    t = ann["t_since_cal_s"].to_numpy(float) / 60.0
    if not np.isfinite(t).any():
        return None
    t_max = float(np.nanmax(t))
    edges = np.linspace(0.0, t_max if t_max > 0 else 1.0, 13)
    with matplotlib.rc_context(_RC):
        fig = _new_figure(8.2, 2.8)
        axes = fig.subplots(1, 2, sharex=True)
        for ax, bp in zip(axes, ev.BP_KINDS, strict=True):
            for policy in policies:
                binned = _binned_abs_error(ann[ann["policy"] == policy], bp, edges)
                if binned is None:
                    continue
                ax.plot(*binned, marker="o", ms=3, color=colors[policy], label=policy)
            ax.set_title(bp.upper())
            ax.set_xlabel("time since last cuff reading (min)")
            ax.set_ylabel("mean |error| (mmHg)")
            ax.set_ylim(bottom=0)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", frameon=False, fontsize=7)
    return rendered(
        fig,
        "error_vs_time_since_calibration",
        "Mean absolute error against time since the last cuff reading (12 equal bins; steps before the "
        "first cuff reading are left out).",
    )


# ------------------------------------------------------------------ cuffs vs MAE
def _draw_pareto_front(ax: Axes, deploy: pd.DataFrame, bp: str) -> None:
    """Draw the deployable policies' Pareto front (:func:`bprl.evaluation.deployable_front`) as a
    dashed step line with ringed points."""
    front = ev.deployable_front(deploy, bp)
    if not front:
        return
    on = deploy.set_index("policy").loc[front]
    fx, fy = on["cuffs_per_hour"].to_numpy(float), on[f"{bp}_mae_mmhg"].to_numpy(float)
    x_end = max(float(np.nanmax(deploy["cuffs_per_hour"].to_numpy(float))), float(fx[-1]))
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


#: marker cycle of the cuffs-vs-MAE figure (with the colour cycle: 64 distinct policies)
_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")


def cuffs_vs_mae_figure(metrics: pd.DataFrame, colors: dict[str, str]) -> ReportFigure:
    """Cuff readings per hour against MAE of the deployable policies, with their Pareto front, SBP
    and DBP panels; bound policies (the oracle: :func:`bprl.evaluation.is_bound_policy`) are drawn
    apart as a horizontal grey line and never join the front.

    Args:
        metrics: policy comparison (:func:`bprl.evaluation.compare_policies`).
        colors: colour per policy (:func:`policy_colors`).

    Returns:
        The figure ``cuffs_vs_mae``; policies are named in a legend beside the panels (no labels
        at the points, so nearby points never overlap their names).
    """
    bound = metrics["policy"].map(ev.is_bound_policy).to_numpy(bool)
    deploy, bounds = metrics[~bound], metrics[bound]
    with matplotlib.rc_context(_RC):
        fig = _new_figure(8.2, 3.0)
        axes = fig.subplots(1, 2)
        x = deploy["cuffs_per_hour"].to_numpy(float)
        for ax, bp in zip(axes, ev.BP_KINDS, strict=True):
            y = deploy[f"{bp}_mae_mmhg"].to_numpy(float)
            for i, policy in enumerate(deploy["policy"]):
                ax.scatter(
                    [x[i]],
                    [y[i]],
                    color=colors[policy],
                    marker=_MARKERS[(i // 8) % len(_MARKERS)],
                    s=30,
                    zorder=3,
                    label=str(policy),
                )
            if len(deploy):
                _draw_pareto_front(ax, deploy, bp)
            for _, r in bounds.iterrows():
                ax.axhline(
                    float(r[f"{bp}_mae_mmhg"]), color="grey", ls="-.", lw=0.9, label=f"{r['policy']} (bound)"
                )
            ax.set_xlabel("cuff readings per hour")
            ax.set_ylabel(f"{bp.upper()} MAE (mmHg)")
            ax.set_title(bp.upper())
            ax.set_ylim(bottom=0)
            ax.set_xlim(left=-0.05 * max(1.0, float(np.nanmax(x)) if np.isfinite(x).any() else 1.0))
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", frameon=False, fontsize=7)
    return rendered(
        fig,
        "cuffs_vs_mae",
        "Cuff readings per hour against MAE of the deployable policies (pooled over seeds); the dashed "
        "line joins those that no other deployable policy beats on both. The oracle reads the "
        "reference: drawn as a grey bound, not a point of the front.",
    )


# ------------------------------------------------------------------ test population
def population_figure(ref: pd.DataFrame) -> ReportFigure:
    """Histograms of the test population's reference SBP and DBP (every test step; each subject
    weighted by 1 / its steps, as a validation takes the same number of readings per subject),
    with the ISO 81060-2 thresholds (:data:`bprl.evaluation.ISO81060_2_BP_REQUIREMENTS`).

    Args:
        ref: :func:`bprl.evaluation.population.reference_steps`.

    Returns:
        The figure ``test_population``.
    """
    n_per = ref.groupby("subject_id")["subject_id"].transform("size").to_numpy(float)
    with matplotlib.rc_context(_RC):
        fig = _new_figure(7.0, 2.6)
        axes = fig.subplots(1, 2)
        for ax, bp in zip(axes, ev.BP_KINDS, strict=True):
            v = ref[f"ref_{bp}_mmhg"].to_numpy(float)
            ok = np.isfinite(v)
            w = 100.0 / n_per[ok] / max(1, ref.loc[ok, "subject_id"].nunique())
            ax.hist(v[ok], bins=np.arange(20.0, 260.0, 5.0), weights=w, color="#4c72b0", alpha=0.85)
            for _label, kind, _op, thr, _need in ev.ISO81060_2_BP_REQUIREMENTS:
                if kind == bp:
                    ax.axvline(thr, color="#b42318", lw=0.8, ls="--")
            if ok.any():
                ax.set_xlim(
                    min(40.0, float(v[ok].min()) - 5),
                    max(200.0 if bp == "sbp" else 120.0, float(v[ok].max()) + 5),
                )
            ax.set_xlabel(f"reference {bp.upper()} (mmHg)")
            ax.set_ylabel("% of readings")
            ax.set_title(bp.upper())
    return rendered(
        fig,
        "test_population",
        "Reference BP of the test steps (each subject weighted equally); dashed red: the ISO 81060-2 "
        "thresholds (SBP ≤ 100, ≥ 140, ≥ 160; DBP ≤ 60, ≥ 85, ≥ 100 mmHg).",
    )


# ------------------------------------------------------------------ cuff-rate curves
def cuff_rate_figure(curves: pd.DataFrame, colors: dict[str, str]) -> ReportFigure:
    """MAE against achieved cuffs per hour for every swept family, SBP and DBP panels (log rate axis).

    Each family is a line through its budgets with the bootstrap interval as error bars; policies
    outside the sweep are horizontal lines (dotted: no calibration and other references; dashed
    grey: an upper bound such as the oracle, shown apart, never on the front).

    Args:
        curves: :func:`bprl.evaluation.cuff_rate_curves`.
        colors: colour per family.
    """
    swept = curves[np.isfinite(curves["target_cuffs_per_h"].to_numpy(float))]
    fixed = curves[~np.isfinite(curves["target_cuffs_per_h"].to_numpy(float))]
    with matplotlib.rc_context(_RC):
        fig = _new_figure(10.0, 3.4)
        axes = fig.subplots(1, 2)
        for ax, bp in zip(axes, ev.BP_KINDS, strict=True):
            for fam, g in swept.groupby("family", sort=False):
                g = g.sort_values("cuffs_per_hour")
                x = g["cuffs_per_hour"].to_numpy(float)
                y = g[f"{bp}_mae_mmhg"].to_numpy(float)
                err = np.abs(
                    np.stack([y - g[f"{bp}_mae_lo"].to_numpy(float), g[f"{bp}_mae_hi"].to_numpy(float) - y])
                )
                ax.errorbar(
                    x,
                    y,
                    yerr=np.nan_to_num(err),
                    color=colors.get(str(fam), "C0"),
                    marker="o",
                    ms=3,
                    lw=1.1,
                    capsize=2,
                    label=str(fam),
                )
            for _, r in fixed.iterrows():
                bound = bool(r["bound"])
                ax.axhline(
                    float(r[f"{bp}_mae_mmhg"]),
                    color="grey" if bound else colors.get(str(r["family"]), "k"),
                    ls="--" if bound else ":",
                    lw=1.0,
                    label=f"{r['family']} (bound)"
                    if bound
                    else f"{r['family']} ({r['cuffs_per_hour']:.2f}/h, {r[f'{bp}_mae_mmhg']:.1f} mmHg)",
                )
            ax.set_xscale("log")
            ticks = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            x_all = swept["cuffs_per_hour"].to_numpy(float)
            if (x_all > 0).any():
                ax.set_xlim(0.8 * np.nanmin(x_all[x_all > 0]), 1.25 * np.nanmax(x_all))
            hi = swept[f"{bp}_mae_hi"].to_numpy(float)
            if np.isfinite(hi).any():  # a reference line far above the curves is named, not drawn to scale
                ax.set_ylim(0.0, 1.3 * np.nanmax(hi))
            ax.set_xlabel("cuff readings per hour (achieved)")
            ax.set_ylabel(f"{bp.upper()} MAE (mmHg)")
            ax.set_title(bp.upper())
        axes[1].legend(frameon=False, fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return rendered(
        fig,
        "cuff_rate_curves",
        "MAE against achieved cuff readings per hour for each calibrator family swept over per-hour "
        "budgets (means over subjects, 95 % bootstrap intervals); horizontal lines: policies outside "
        "the sweep, the oracle dashed as an upper bound.",
    )
