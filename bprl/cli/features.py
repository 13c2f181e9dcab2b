"""``bprl features``: build cached replay tables for a folder of records, show one record's table."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import typer

from bprl.errors import BprlError, RecordWarning
from bprl.features import FeatureConfig, build_replay_tables, load_replay_table


def _range(values: np.ndarray, unit: str) -> str:
    """``min-max unit (median m)`` of the finite values, or ``-`` when none."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return "-"
    return f"{v.min():.0f}-{v.max():.0f} {unit} (median {np.median(v):.0f})"


def register(app: typer.Typer) -> None:
    """Add the ``features`` command group to ``app``."""
    group = typer.Typer(no_args_is_help=True, help="Beats, PAT features and replay tables.")

    @group.command("build")
    def build(
        root: Path = typer.Argument(..., help="folder of records (cohort or MIMIC-style tree)"),
        cache: Path = typer.Option(Path("results/features"), "--cache", help="cache folder of replay tables"),
        window_s: float = typer.Option(30.0, "--window-s", help="window length (s)"),
        hop_s: float = typer.Option(30.0, "--hop-s", help="step between windows (s)"),
        workers: int = typer.Option(2, "--workers", help="processes"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
    ) -> None:
        """Build (or reuse from the cache) the replay table of every record under ROOT."""
        try:
            cfg = FeatureConfig(window_s=window_s, hop_s=hop_s)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RecordWarning)
                tables, skipped = build_replay_tables(root, cache, cfg, workers=workers, progress=progress)
        except BprlError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        n_err = int((skipped["status"] == "error").sum())
        typer.echo(
            f"built {len(tables)} replay table(s) in {cache}, skipped {len(skipped) - n_err}, "
            f"unreadable {n_err}"
        )
        for rec, path in sorted(tables.items()):
            typer.echo(f"  ok       {rec} -> {path.name}")
        for row in skipped.itertuples(index=False):
            reason = str(row.reason).removeprefix(f"{row.record_path}: ")
            typer.echo(f"  {row.status:<8} {row.record_path}: {reason}")
        for w in caught:
            if issubclass(w.category, RecordWarning):
                typer.echo(f"  warning  {w.message}")

    @group.command("show")
    def show(
        record: Path = typer.Argument(..., help="record (.hea path or name without extension)"),
        cache: Path | None = typer.Option(None, "--cache", help="cache folder (built when missing)"),
        window_s: float = typer.Option(30.0, "--window-s", help="window length (s)"),
        hop_s: float = typer.Option(30.0, "--hop-s", help="step between windows (s)"),
    ) -> None:
        """Print a summary of one record's replay table."""
        try:
            t = load_replay_table(record, FeatureConfig(window_s=window_s, hop_s=hop_s), cache)
        except BprlError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        n = len(t)
        ref = t["ref_sbp_mmhg"].notna()
        pat = t["pat_foot_ms"].notna()
        typer.echo(f"subject {t['subject_id'].iloc[0]}  record {t['record_id'].iloc[0]}  windows {n}")
        typer.echo(f"  windows with PAT        {int(pat.sum())} ({pat.mean():.0%})")
        typer.echo(f"  windows with reference  {int(ref.sum())} ({ref.mean():.0%})")
        typer.echo(f"  PAT foot    {_range(t['pat_foot_ms'].to_numpy(), 'ms')}")
        typer.echo(f"  HR          {_range(t['hr_bpm'].to_numpy(), 'bpm')}")
        typer.echo(f"  ref SBP     {_range(t['ref_sbp_mmhg'].to_numpy(), 'mmHg')}")
        typer.echo(f"  ref DBP     {_range(t['ref_dbp_mmhg'].to_numpy(), 'mmHg')}")
        typer.echo(f"  valid beat share (mean)  {t['valid_beat_share'].mean():.2f}")
        if "af_share" in t and t["af_share"].notna().any():
            af = t["af_share"].to_numpy(float)
            typer.echo(
                f"  rhythm      AF in {int((af >= 0.5).sum())} of {int(np.isfinite(af).sum())} windows; "
                f"ectopic beats {np.nanmean(t['ectopic_share'].to_numpy(float)):.1%}"
            )
            typer.echo(f"  QTc (Fridericia)  {_range(t['qtc_ms'].to_numpy(), 'ms')}")
            typer.echo(f"  PAT from QRS onset  {_range(t['pat_qrs_onset_ms'].to_numpy(), 'ms')}")

    app.add_typer(group, name="features")
