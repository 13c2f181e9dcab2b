"""The report's matplotlib figures, each rendered to PNG bytes by one function.

Bland-Altman plots (one panel per policy), mean absolute error against time since the last
cuff reading, cuff readings per hour against MAE with the Pareto front, per-subject errors
and an example episode trace. Every function takes episode-log derived tables (the output of
:func:`bprl.evaluation.annotate_calibration`, :func:`bprl.evaluation.compare_policies` or
:func:`bprl.evaluation.evaluate_subjects`) and returns a :class:`ReportFigure`.

Rendering is deterministic: the Agg canvas, fixed rc parameters, no software stamp in the
PNG metadata, and seeded scatter subsampling and jitter.
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
from bprl.evaluation.pareto import pareto_front

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
class ReportFigure:
    """One rendered figure of the report.

    Attributes:
        name: file stem (``figures/<name>.png``) and HTML element id.
        caption: caption text (plain text, escaped when written to HTML).
        png: the PNG bytes.
    """

    name: str
    caption: str
    png: bytes


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


def _png(fig: Figure) -> bytes:
    """PNG bytes of ``fig`` at 100 dpi, without a software stamp."""
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="png", dpi=100, metadata=_PNG_METADATA)
    return buf.getvalue()


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
    return ReportFigure(
        f"bland_altman_{bp}",
        f"Bland-Altman plot of {bp.upper()} per policy (all seeds): bias (solid) and 95 % limits of "
        "agreement, bias ± 1.96 SD (dashed).",
        _png(fig),
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
        fig = _new_figure(7.0, 2.8)
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
        axes[1].legend(frameon=False)
    return ReportFigure(
        "error_vs_time_since_calibration",
        "Mean absolute error against time since the last cuff reading (12 equal bins; steps before the "
        "first cuff reading are left out).",
        _png(fig),
    )


# ------------------------------------------------------------------ cuffs vs MAE
def _draw_pareto_front(ax: Axes, x: np.ndarray, y: np.ndarray) -> None:
    """Draw the Pareto front of ``(x, y)`` (both minimised) as a dashed step line with ringed points."""
    front = pareto_front(x, y)
    if not front:
        return
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


def cuffs_vs_mae_figure(metrics: pd.DataFrame, colors: dict[str, str]) -> ReportFigure:
    """Cuff readings per hour against MAE per policy, with the Pareto front, SBP and DBP panels.

    Args:
        metrics: policy comparison (:func:`bprl.evaluation.compare_policies`).
        colors: colour per policy (:func:`policy_colors`).

    Returns:
        The figure ``cuffs_vs_mae``.
    """
    with matplotlib.rc_context(_RC):
        fig = _new_figure(7.0, 2.9)
        axes = fig.subplots(1, 2)
        x = metrics["cuffs_per_hour"].to_numpy(float)
        for ax, bp in zip(axes, ev.BP_KINDS, strict=True):
            y = metrics[f"{bp}_mae_mmhg"].to_numpy(float)
            for i, policy in enumerate(metrics["policy"]):
                ax.scatter([x[i]], [y[i]], color=colors[policy], s=28, zorder=3)
                ax.annotate(str(policy), (x[i], y[i]), xytext=(4, 3), textcoords="offset points", fontsize=7)
            _draw_pareto_front(ax, x, y)
            ax.set_xlabel("cuff readings per hour")
            ax.set_ylabel(f"{bp.upper()} MAE (mmHg)")
            ax.set_title(bp.upper())
    return ReportFigure(
        "cuffs_vs_mae",
        "Cuff readings per hour against MAE (pooled over seeds); the dashed line joins the policies that no "
        "other policy beats on both.",
        _png(fig),
    )


# ------------------------------------------------------------------ per subject
def per_subject_figure(
    subjects: pd.DataFrame, policies: list[str], colors: dict[str, str], seed: int
) -> ReportFigure:
    """Per-subject MAE (mean over seeds) as a box and jittered points per policy, SBP and DBP panels.

    Args:
        subjects: per-subject table (:func:`bprl.evaluation.evaluate_subjects`).
        policies: policies to draw, in box order.
        colors: colour per policy (:func:`policy_colors`).
        seed: seed of the horizontal jitter.

    Returns:
        The figure ``per_subject_errors``.
    """
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
    return ReportFigure(
        "per_subject_errors",
        "Per-subject mean absolute error (mean over seeds), box and points per policy.",
        _png(fig),
    )


# ------------------------------------------------------------------ example trace
def _trace_panel(ax: Axes, g: pd.DataFrame, color: str) -> None:
    """Draw one episode's reference, raw and corrected SBP/DBP and its cuff readings on ``ax``."""
    t_h = g["t_s"].to_numpy(float) / 3600.0
    for bp, lw in (("sbp", 1.2), ("dbp", 1.0)):
        ax.plot(t_h, g[f"ref_{bp}_mmhg"], color="black", lw=lw, label="reference" if bp == "sbp" else None)
        ax.plot(
            t_h,
            g[f"est_{bp}_mmhg"],
            color="#888888",
            lw=0.8,
            ls="--",
            label="raw estimate" if bp == "sbp" else None,
        )
        ax.plot(t_h, g[f"corr_{bp}_mmhg"], color=color, lw=1.0, label="corrected" if bp == "sbp" else None)
    if "segment" in g.columns:  # record segments: PAT can jump at a boundary at unchanged BP
        seg = g["segment"].to_numpy()
        for k, i in enumerate(np.flatnonzero(seg[1:] != seg[:-1]) + 1):
            ax.axvline(t_h[i], color="#9467bd", lw=0.8, ls=":", label="segment boundary" if k == 0 else None)
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


def trace_figure(ann: pd.DataFrame, policies: list[str], colors: dict[str, str]) -> tuple[ReportFigure, str]:
    """An example episode per policy: the first subject (sorted ids), its lowest seed, first episode.

    Args:
        ann: annotated episode log (:func:`bprl.evaluation.annotate_calibration`).
        policies: policies to draw, one panel each.
        colors: colour per policy (:func:`policy_colors`).

    Returns:
        ``(figure example_trace, subject id shown)``.
    """
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
            _trace_panel(ax, g[g["episode"] == g["episode"].min()], colors[policy])
            ax.set_title(f"{policy}  (subject {subject}, seed {seed})")
            ax.set_ylabel("BP (mmHg)")
            ax.legend(frameon=False, ncols=4, loc="upper right", fontsize=7)
        axes[-1].set_xlabel("time (h)")
    return (
        ReportFigure(
            "example_trace",
            f"Example episode of subject {subject} (seed {seed}): reference, raw estimator output, corrected "
            "estimate (SBP upper and DBP lower traces), cuff readings and record-segment boundaries.",
            _png(fig),
        ),
        str(subject),
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
    return ReportFigure(
        "cuff_rate_curves",
        "MAE against achieved cuff readings per hour for each calibrator family swept over per-hour "
        "budgets (means over subjects, 95 % bootstrap intervals); horizontal lines: policies outside "
        "the sweep, the oracle dashed as an upper bound.",
        _png(fig),
    )
