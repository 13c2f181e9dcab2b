"""The report's per-subject figures: errors of every subject and the episode traces of every subject.

* :func:`per_subject_figures`: a dot plot, one row per subject (named), one marker per policy,
  SBP and DBP panels; the figure grows with the number of subjects and is split into pages of
  :data:`SUBJECTS_PER_PAGE`, so it stays readable at any cohort size.
* :func:`trace_figure` / :func:`trace_figures`: one figure per subject, one panel per policy:
  reference, raw estimate, corrected estimate, cuff readings and record-segment boundaries.

Rendering as in :mod:`bprl.report.figures` (PNG, SVG and PDF, deterministic).
"""

from __future__ import annotations

import re

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from bprl import evaluation as ev
from bprl.report.figures import _RC, ReportFigure, _new_figure, rendered

#: subjects per page of the per-subject error figure
SUBJECTS_PER_PAGE = 40

#: PNG resolution of the trace figures (one per subject: kept small in report.html; SVG/PDF are vector)
TRACE_PNG_DPI = 100

__all__ = ["SUBJECTS_PER_PAGE", "per_subject_figure", "per_subject_figures", "trace_figure", "trace_figures"]


# ------------------------------------------------------------------ per-subject errors
def per_subject_figures(
    subjects: pd.DataFrame, policies: list[str], colors: dict[str, str]
) -> list[ReportFigure]:
    """Per-subject MAE (mean over seeds) of every policy: one row per subject, SBP and DBP panels.

    Subjects are sorted by the mean of their MAEs over the policies (hardest at the top); the
    figure height grows with the subjects, and more than :data:`SUBJECTS_PER_PAGE` subjects are
    split into pages.

    Args:
        subjects: per-subject table (:func:`bprl.evaluation.evaluate_subjects`).
        policies: policies to draw (markers and legend in this order).
        colors: colour per policy (:func:`bprl.report.figures.policy_colors`).

    Returns:
        ``per_subject_errors`` (and ``per_subject_errors_2``, ... for further pages).
    """
    per = subjects.groupby(["policy", "subject_id"], sort=False)[["sbp_mae_mmhg", "dbp_mae_mmhg"]].mean()
    wide = {bp: per[f"{bp}_mae_mmhg"].unstack("policy").reindex(columns=policies) for bp in ev.BP_KINDS}
    order = wide["sbp"].mean(axis=1).sort_values(ascending=True, kind="stable").index.astype(str).tolist()
    x_max = max(
        float(np.nanmax(w.to_numpy(float))) if np.isfinite(w.to_numpy(float)).any() else 1.0
        for w in wide.values()
    )
    pages = [order[i : i + SUBJECTS_PER_PAGE] for i in range(0, len(order), SUBJECTS_PER_PAGE)] or [[]]
    figures = []
    for k, page in enumerate(pages):
        with matplotlib.rc_context(_RC):
            fig = _new_figure(8.2, 1.1 + 0.22 * max(len(page), 3))
            axes = fig.subplots(1, 2, sharey=True)
            y = np.arange(len(page))
            for ax, bp in zip(axes, ev.BP_KINDS, strict=True):
                w = wide[bp].reindex(page)
                ax.hlines(y, 0, x_max * 1.05, color="#eeeeee", lw=0.6, zorder=1)
                for policy in policies:
                    ax.scatter(
                        w[policy].to_numpy(float),
                        y,
                        s=14,
                        color=colors[policy],
                        zorder=3,
                        label=policy,
                        linewidths=0,
                    )
                ax.set_yticks(y, page, fontsize=7)
                ax.set_xlim(0, x_max * 1.05)
                ax.set_xlabel(f"per-subject {bp.upper()} MAE (mmHg)")
                ax.set_title(bp.upper())
            handles, labels = axes[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside right center", frameon=False, fontsize=7)
        name = "per_subject_errors" if k == 0 else f"per_subject_errors_{k + 1}"
        part = f" (page {k + 1} of {len(pages)})" if len(pages) > 1 else ""
        figures.append(
            rendered(
                fig,
                name,
                f"Mean absolute error of each test subject (mean over seeds), one marker per policy; "
                f"subjects sorted by their mean SBP MAE over the policies{part}.",
            )
        )
    return figures


def per_subject_figure(
    subjects: pd.DataFrame, policies: list[str], colors: dict[str, str], seed: int = 0
) -> ReportFigure:
    """The first page of :func:`per_subject_figures` (``seed`` is unused: nothing is jittered)."""
    return per_subject_figures(subjects, policies, colors)[0]


# ------------------------------------------------------------------ traces
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


def _file_stem(subject: str) -> str:
    """A file-name-safe form of a subject id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", subject)


def trace_figure(
    ann: pd.DataFrame,
    policies: list[str],
    colors: dict[str, str],
    subject: str | None = None,
    name: str = "example_trace",
) -> tuple[ReportFigure, str]:
    """One subject's episode per policy (its lowest seed, first episode), one panel each.

    Args:
        ann: annotated episode log (:func:`bprl.evaluation.annotate_calibration`).
        policies: policies to draw, one panel each.
        colors: colour per policy (:func:`bprl.report.figures.policy_colors`).
        subject: the subject (default: the first in sorted order).
        name: the figure's file stem.

    Returns:
        ``(figure, subject id shown)``; the legend sits above the panels.
    """
    subject = str(subject if subject is not None else sorted(ann["subject_id"].astype(str).unique())[0])
    of_subject = ann[ann["subject_id"].astype(str) == subject]
    seed = int(of_subject["seed"].min())
    with matplotlib.rc_context(_RC):
        fig = _new_figure(8.2, 1.6 * len(policies) + 0.8)
        axes = fig.subplots(len(policies), 1, squeeze=False, sharex=True)[:, 0]
        for ax, policy in zip(axes, policies, strict=True):
            g = of_subject[(of_subject["policy"] == policy) & (of_subject["seed"] == seed)]
            if g.empty:
                ax.set_title(f"{policy}: no episode for subject {subject}", loc="left")
                continue
            _trace_panel(ax, g[g["episode"] == g["episode"].min()], colors[policy])
            ax.set_title(policy, loc="left")
            ax.set_ylabel("BP (mmHg)")
        labels: dict[str, object] = {}
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels and lab != "corrected":
                    labels[lab] = h
        fig.legend(list(labels.values()), list(labels), loc="outside upper center", ncols=5, frameon=False)
        axes[-1].set_xlabel("time (h)")
    return (
        rendered(
            fig,
            name,
            f"Subject {subject} (seed {seed}): reference (black), raw estimator output (grey dashed), "
            "corrected estimate (colour; SBP upper and DBP lower traces), cuff readings and record-segment "
            "boundaries, one panel per policy.",
            png_dpi=TRACE_PNG_DPI,
        ),
        subject,
    )


def trace_figures(ann: pd.DataFrame, policies: list[str], colors: dict[str, str]) -> list[ReportFigure]:
    """:func:`trace_figure` of every subject in sorted order, named ``trace_<subject>``."""
    return [
        trace_figure(ann, policies, colors, subject=s, name=f"trace_{_file_stem(s)}")[0]
        for s in sorted(ann["subject_id"].astype(str).unique())
    ]
