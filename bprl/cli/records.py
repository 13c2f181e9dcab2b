"""``bprl records``: inspect one record, scan a tree of records."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import typer

from bprl.errors import BprlError, RecordWarning
from bprl.io import atomic_output
from bprl.sources import ROLES, Record, read_record, scan_records

records_app = typer.Typer(no_args_is_help=True, help="Read WFDB / MIMIC records: inspect one, scan a folder.")


def _fmt(v: float) -> str:
    """Compact number for the inspect table."""
    return "nan" if not np.isfinite(v) else f"{v:.4g}"


def format_record_table(rec: Record) -> str:
    """A readable per-channel table of a record: role, rate, units, duration, NaN share, value ranges."""
    head = (
        "#",
        "channel",
        "role",
        "fs_hz",
        "units",
        "n_samples",
        "duration_s",
        "nan_%",
        "min",
        "p1",
        "p99",
        "max",
    )
    rows = []
    for i, c in enumerate(rec.channels):
        x = c.samples[np.isfinite(c.samples)]
        if x.size:
            lo, p1, p99, hi = (float(x.min()), *np.percentile(x, [1.0, 99.0]).tolist(), float(x.max()))
        else:
            lo = p1 = p99 = hi = float("nan")
        rows.append(
            (
                str(i),
                c.name,
                c.role or "-",
                f"{c.fs_hz:.6g}",
                c.units or "-",
                str(len(c.samples)),
                f"{c.duration_s:.1f}",
                f"{100 * c.nan_share:.2f}",
                _fmt(lo),
                _fmt(p1),
                _fmt(p99),
                _fmt(hi),
            )
        )
    widths = [max(len(h), *(len(r[j]) for r in rows)) if rows else len(h) for j, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


@records_app.command("inspect")
def inspect_cmd(
    path: Path = typer.Argument(
        ..., help="Record: .hea file, record path without extension, or .mat excerpt."
    ),
    names: str | None = typer.Option(
        None, "--names", help="Comma-separated channel names (all columns of a .mat excerpt, or a selection)."
    ),
    fs: float | None = typer.Option(None, "--fs", help="Sampling rate in Hz of a .mat excerpt."),
) -> None:
    """Print channels, roles, rates, duration, NaN share and value ranges of one record."""
    channel_names = [n.strip() for n in names.split(",") if n.strip()] if names else None
    try:
        with warnings.catch_warnings():  # printed below from rec.warnings / rec.problems
            warnings.simplefilter("ignore", RecordWarning)
            rec = read_record(path, channel_names=channel_names, fs_hz=fs)
    except BprlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    start = rec.start_time.isoformat(sep=" ") if rec.start_time else "-"
    typer.echo(f"record {rec.record_id}  subject {rec.subject_id}  path {rec.path}")
    typer.echo(f"start {start}  duration {rec.duration_s:.1f} s  roles {', '.join(rec.roles) or '-'}")
    preferred = {r: rec.channel(r).name for r in ROLES if rec.has(r)}
    typer.echo("preferred: " + (", ".join(f"{r}={n}" for r, n in preferred.items()) or "-"))
    typer.echo(format_record_table(rec))
    for msg in rec.warnings:
        typer.echo(f"warning: {msg}")
    for msg in rec.problems:
        typer.echo(f"implausible: {msg}")


@records_app.command("scan")
def scan_cmd(
    directory: Path = typer.Argument(..., help="Folder to search recursively for WFDB headers."),
    out: Path = typer.Option(..., "--out", help="Output table: .csv or .parquet (written atomically)."),
    check_signals: bool = typer.Option(
        False, "--check-signals", help="Also read the signals (catches truncated files)."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
) -> None:
    """Summarise every record under DIRECTORY (one row per record) and write the table to --out."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        typer.echo(f"error: {out}: output must end in .csv or .parquet", err=True)
        raise typer.Exit(2)
    if not directory.is_dir():
        typer.echo(f"error: {directory}: folder does not exist", err=True)
        raise typer.Exit(2)
    df = scan_records(directory, check_signals=check_signals, workers=workers, progress=True)
    with atomic_output(out) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    ok = df[df["error"] == ""]
    bad = df[df["error"] != ""]
    n_implausible = int((ok["problems"] != "").sum())
    typer.echo(
        f"{len(df)} records under {directory}: {len(ok)} readable, {len(bad)} unreadable, "
        f"{n_implausible} readable with implausible signals -> {out}"
    )
    if len(ok):
        typer.echo("readable with " + ", ".join(f"{r}: {int(ok[f'has_{r}'].sum())}" for r in ROLES))
        both = int((ok["has_ecg"] & ok["has_ppg"]).sum())
        full = int((ok["has_ecg"] & ok["has_ppg"] & ok["has_abp"]).sum())
        typer.echo(f"ECG+PPG: {both}, ECG+PPG+ABP: {full}, hours: {ok['duration_s'].sum() / 3600:.2f}")
    for _, row in bad.iterrows():
        typer.echo(f"unreadable: {row['path']}: {row['error'].removeprefix(row['path'] + ': ')}")
    for _, row in ok[ok["problems"] != ""].iterrows():  # the messages name the file
        typer.echo(f"implausible: {row['problems']}")
    for _, row in ok[ok["warnings"] != ""].iterrows():
        typer.echo(f"warning: {row['warnings']}")


def register(app: typer.Typer) -> None:
    """Add the ``records`` command group to the bprl app."""
    app.add_typer(records_app, name="records")
