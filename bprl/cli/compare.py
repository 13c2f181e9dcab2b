"""``bprl compare``: one report comparing the policies of several results folders, paired per subject."""

from __future__ import annotations

from pathlib import Path

import typer

from bprl.errors import BprlError


def register(app: typer.Typer) -> None:
    """Add the ``compare`` command to ``app``."""

    @app.command("compare")
    def compare_cmd(
        folders: list[Path] = typer.Argument(
            ...,
            help="two or more results folders of `bprl run` with the same test subjects; the first is the reference",
        ),
        out: Path | None = typer.Option(
            None, "--out", help="output folder (default results/compare_<label>_<label>...)"
        ),
        label: list[str] | None = typer.Option(
            None,
            "--label",
            help="name of a run in the report, once per folder in their order (default: the folder names)",
        ),
        seed: int = typer.Option(0, "--seed", min=0, help="seed of the bootstrap intervals and the report"),
        n_resamples: int = typer.Option(1000, "--n-resamples", min=1, help="bootstrap resamples"),
    ) -> None:
        """Compare policies across results folders: one report, paired per-subject differences."""
        from bprl.report.compare import compare_results

        try:
            result = compare_results(
                folders, out=out, labels=label or None, seed=seed, n_resamples=n_resamples
            )
        except BprlError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"report: {result.report}")
        typer.echo(f"  {result.out / 'paired_differences.csv'}")
