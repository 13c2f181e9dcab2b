"""``bprl cohort``: generate a virtual cohort, describe one."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from bprl.errors import BprlError

cohort_app = typer.Typer(
    no_args_is_help=True, help="Virtual cohort: simulated subjects written as MIMIC-style WFDB records."
)


@cohort_app.command("make")
def make_cmd(
    out: Path = typer.Option(
        ..., "--out", help="output folder (created; a rerun completes an interrupted cohort)"
    ),
    subjects: int = typer.Option(..., "--subjects", help="number of subjects"),
    hours: float = typer.Option(..., "--hours", help="hours of signal per subject"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed -> identical files)"),
    spec: Path | None = typer.Option(
        None, "--spec", help="YAML file of CohortSpec fields (population, dynamics, rates)"
    ),
    workers: int = typer.Option(1, "--workers", help="worker processes (results do not depend on it)"),
    video: bool = typer.Option(
        False,
        "--video",
        help="also render virtual-camera skin-region clips (spec fields video_*) into OUT/video",
    ),
) -> None:
    """Generate SUBJECTS virtual subjects of HOURS each into OUT."""
    from bprl.cohort import describe_cohort, make_cohort

    try:
        root = make_cohort(out, subjects, hours, seed, spec=spec, workers=workers, progress=True, video=video)
        d = describe_cohort(root)
    except BprlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {d['n_subjects']} subjects x {hours:g} h ({d['n_beats']} beats) to {root}")
    if video:
        typer.echo(f"virtual-camera clips in {root / 'video'}")


def format_description(d: dict) -> str:
    """Human-readable text of :func:`bprl.cohort.describe_cohort`'s dictionary."""
    lines = [
        f"subjects: {d['n_subjects']} x {d['hours_per_subject']:g} h   splits: {d['splits']}   categories: {d['categories']}",
        f"beats: {d['n_beats']}   readings (per-minute medians): {d['n_readings']}",
        "",
        f"{'':10s} {'mean':>7s} {'sd':>6s} {'p5':>7s} {'p25':>7s} {'p50':>7s} {'p75':>7s} {'p95':>7s}",
    ]
    for key in ("sbp_mmhg", "dbp_mmhg", "hr_bpm", "pat_ms"):
        s = d[key]
        lines.append(
            f"{key:10s} {s['mean']:7.1f} {s['sd']:6.1f} {s['p5']:7.1f} {s['p25']:7.1f} {s['p50']:7.1f} {s['p75']:7.1f} {s['p95']:7.1f}"
        )
    lines += [
        "",
        f"hypertensive subjects (mean SBP >= 140): {100 * d['hypertensive_subject_share']:.1f} %",
        "",
    ]
    lines.append("AAMI-style distribution of readings (ISO 81060-2 asks at least the share shown):")
    names = {
        "sbp_ge_140": ("SBP >= 140", 20),
        "sbp_le_100": ("SBP <= 100", 5),
        "sbp_ge_160": ("SBP >= 160", 5),
        "dbp_ge_85": ("DBP >= 85", 20),
        "dbp_le_60": ("DBP <= 60", 5),
        "dbp_ge_100": ("DBP >= 100", 5),
    }
    for k, (label, need) in names.items():
        got = 100 * d["aami_targets"][k]
        lines.append(f"  {label:11s} {got:5.1f} %   (>= {need} %: {'met' if got >= need else 'not met'})")
    a = d["artefact_share"]
    lines += [
        "",
        f"beats touched by artefacts: ECG {100 * a['ecg']:.1f} %, PPG {100 * a['ppg']:.1f} %, ABP {100 * a['abp']:.1f} %",
        f"ectopic beats: {100 * d['ectopic_beat_share']:.2f} %   AF beats: {100 * d['af_beat_share']:.2f} % "
        f"({d['af_subjects']} subjects with AF)",
    ]
    return "\n".join(lines)


@cohort_app.command("describe")
def describe_cmd(
    cohort_dir: Path = typer.Argument(..., help="a folder written by `bprl cohort make`"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Print the population of a cohort: BP distribution, AAMI targets, artefact, ectopy and AF burden."""
    from bprl.cohort import describe_cohort

    try:
        d = describe_cohort(cohort_dir)
    except BprlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(d, indent=2) if as_json else format_description(d))


def register(app: typer.Typer) -> None:
    """Add the ``cohort`` command group to the ``bprl`` app."""
    app.add_typer(cohort_app, name="cohort")
