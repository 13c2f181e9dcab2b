"""``bprl run`` (run an experiment file) and ``bprl report`` (rebuild a report from saved logs)."""

from __future__ import annotations

from pathlib import Path

import typer

from bprl.errors import BprlError


def register(app: typer.Typer) -> None:
    """Add the ``run`` and ``report`` commands to ``app``."""

    @app.command("run")
    def run_cmd(
        experiment: Path = typer.Argument(..., help="experiment file, e.g. experiments/quickstart.yaml"),
        results: Path | None = typer.Option(
            None,
            "--results",
            help="results folder (default results/<name>/): new, empty, or one an earlier run wrote",
        ),
        backend: str | None = typer.Option(
            None, "--backend", help="local or ray (default: the file's backend)"
        ),
        ray_address: str | None = typer.Option(
            None,
            "--ray-address",
            help="Ray cluster address for ray.init(address=...); default a local instance",
        ),
        workers: int | None = typer.Option(
            None, "--workers", min=1, help="processes / Ray CPUs, 1-256 (default 2)"
        ),
        resume: bool = typer.Option(
            True,
            "--resume/--no-resume",
            help="skip units finished by an earlier run (--no-resume: delete the folder's earlier outputs)",
        ),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
    ) -> None:
        """Run an experiment: build what is missing, evaluate every policy, write the results folder."""
        from bprl.experiments import run_experiment

        try:
            out = run_experiment(
                experiment,
                results_dir=results,
                backend=backend,
                workers=workers,
                resume=resume,
                ray_address=ray_address,
                progress=not quiet,
            )
        except BprlError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"results: {out}")
        for name in ("report.html", "report.md", "metrics.csv"):
            if (out / name).is_file():
                typer.echo(f"  {out / name}")

    @app.command("report")
    def report_cmd(
        results_dir: Path = typer.Argument(..., help="a results folder written by `bprl run`"),
    ) -> None:
        """Recompute metrics and rebuild the report from a results folder's saved episode logs."""
        from bprl.experiments import rebuild_report

        try:
            out = rebuild_report(results_dir)
        except BprlError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"report: {out / 'report.html'}")
