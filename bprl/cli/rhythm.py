"""``bprl rhythm RECORD``: a record's rhythm label, beat classes, intervals and AF per window."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer

from bprl.errors import BprlError

if TYPE_CHECKING:
    from bprl.beats.rhythm_summary import RhythmSummary


def _ms(x: float) -> str:
    """An interval in ms, ``–`` when unknown."""
    return "–" if not math.isfinite(x) else f"{x:.0f}"


def _echo_summary(s: RhythmSummary, head: list[str], window_s: float) -> None:
    """Print the summary ``s`` after the ``head`` lines."""
    for line in head:
        typer.echo(line)
    typer.echo(f"rhythm: {s.label}" + (f"  ({s.reason})" if s.reason else ""))
    if s.classifier:
        typer.echo(f"single-lead classifier (CinC 2017 classes): {s.classifier}")
    cc = s.class_counts
    hr = "–" if not math.isfinite(s.hr_bpm) else f"{s.hr_bpm:.0f}"
    typer.echo(
        f"beats: {s.n_beats} (N {cc['N']}, S {cc['S']}, V {cc['V']}, unknown {cc['Q']}); "
        f"HR {hr} bpm (median of N beats)"
    )
    iv = s.intervals_ms
    typer.echo(
        f"intervals (median, ms): PR {_ms(iv['pr_ms'])}, QRS {_ms(iv['qrs_ms'])}, QT {_ms(iv['qt_ms'])}, "
        f"QTc {_ms(iv['qtc_bazett_ms'])} (Bazett) / {_ms(iv['qtc_fridericia_ms'])} (Fridericia)"
    )
    typer.echo(f"windows ({window_s:g} s):")
    typer.echo("  start_s   end_s  rhythm    p(AF)  beats  HR_bpm  ectopic  QRS_ms  QTcF_ms")
    for _, w in s.windows.iterrows():
        p = "–" if not math.isfinite(w["af_probability"]) else f"{w['af_probability']:.2f}"
        typer.echo(
            f"  {w['t_start_s']:7.1f} {w['t_end_s']:7.1f}  {w['label']:<8} {p:>6} {int(w['n_beats']):6d} "
            f"{_ms(w['hr_bpm']):>7} {int(w['n_ectopic']):8d} {_ms(w['qrs_ms']):>7} {_ms(w['qtc_fridericia_ms']):>8}"
        )


def register(app: typer.Typer) -> None:
    """Add the ``rhythm`` command to ``app``."""

    @app.command("rhythm")
    def rhythm_cmd(
        record: Path = typer.Argument(..., help="record (.hea path or name without extension)"),
        lead: str | None = typer.Option(None, "--lead", help="ECG channel name (default: the preferred ECG)"),
        window_s: float = typer.Option(30.0, "--window-s", help="length of the AF windows, s"),
        csv: Path | None = typer.Option(
            None, "--csv", help="also write the per-window table to this CSV file"
        ),
        all_leads: bool = typer.Option(
            False,
            "--all-leads",
            help="intervals from the median over every ECG lead at the lead's rate and length "
            "(e.g. the 12 leads of LUDB); the rhythm still comes from the one lead",
        ),
        qrs_onset: str = typer.Option(
            "wavelet",
            "--qrs-onset",
            help="QRS onset of the delineation: wavelet (threshold rule) or model (learned on LUDB; "
            "closer to cardiologists' marks, see the delineation guide)",
        ),
    ) -> None:
        """Print the rhythm of a record's ECG: its label (e.g. `rhythm: AF`), beat classes, median
        intervals (PR, QRS, QT, QTc) and one line per window with the AF probability."""
        from bprl.beats.rhythm_summary import rhythm_summary
        from bprl.io import atomic_output
        from bprl.sources import read_record

        try:
            rec = read_record(record)
            if lead is None:
                if not rec.has("ecg"):
                    raise BprlError(f"{rec.path}: no ECG channel (has {[c.name for c in rec.channels]})")
                ch = rec.channel("ecg")
            else:
                found = [c for c in rec.channels if c.name == lead]
                if not found:
                    raise BprlError(f"{rec.path}: no channel {lead!r} (has {[c.name for c in rec.channels]})")
                ch = found[0]
            others = [
                c.samples
                for c in rec.channels
                if all_leads
                and c.role == "ecg"
                and c is not ch
                and c.fs_hz == ch.fs_hz
                and len(c.samples) == len(ch.samples)
            ]
            s = rhythm_summary(
                ch.samples,
                ch.fs_hz,
                window_s,
                other_leads=np.column_stack(others) if others else None,
                qrs_onset=qrs_onset,
            )
        except BprlError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        head = [f"record: {rec.path}  (lead {ch.name}, {ch.fs_hz:g} Hz, {s.duration_s:.1f} s)"]
        if all_leads:
            head.append(f"intervals from {1 + len(others)} leads (median of each boundary)")
        if qrs_onset != "wavelet":
            head.append(f"QRS onset: {qrs_onset}")
        _echo_summary(s, head, window_s)
        if csv is not None:
            with atomic_output(csv) as tmp:
                s.windows.to_csv(tmp, index=False)
            typer.echo(f"windows: {csv}")
