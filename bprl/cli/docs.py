"""``bprl docs``: pages of the docs site generated from results, so that no result is typed."""

from __future__ import annotations

from pathlib import Path

import typer

from bprl.errors import BprlError

docs_app = typer.Typer(no_args_is_help=True, help="Docs site: pages generated from results folders.")


@docs_app.command("results-page")
def results_page_cmd(
    results_dir: Path = typer.Argument(..., help="a results folder written by `bprl run`"),
    page: Path = typer.Argument(..., help="the Markdown page to write, e.g. docs/results/quickstart.md"),
    command: str | None = typer.Option(
        None,
        "--command",
        help="the command that made the folder, shown on the page "
        "(default: `bprl run <experiment file>` from config.resolved.yaml)",
    ),
) -> None:
    """Write the results page of RESULTS_DIR (metrics with intervals, standards, provenance) to PAGE."""
    from bprl.report.docs_page import write_results_page

    try:
        out = write_results_page(results_dir, page, command)
    except BprlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"page: {out}")


@docs_app.command("agents-table")
def agents_table_cmd(
    results_dirs: list[Path] = typer.Argument(..., help="results folders written by `bprl run`"),
    resamples: int = typer.Option(1000, "--resamples", min=1, help="bootstrap resamples over subjects"),
    wide: bool = typer.Option(False, "--wide", help="one row per experiment and rate, one column per agent"),
    agents: str | None = typer.Option(
        None, "--agents", help="comma-separated agent names: only these, in this order (default: all)"
    ),
) -> None:
    """Print each agent of RESULTS_DIRS against the best classical rule at the same cuff rate (Markdown)."""
    from bprl.report.agent_table import agent_table_markdown

    names = [a.strip() for a in agents.split(",") if a.strip()] if agents is not None else None
    try:
        typer.echo(
            agent_table_markdown(results_dirs, n_resamples=resamples, wide=wide, agents=names), nl=False
        )
    except BprlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """Add the ``docs`` group to ``app``."""
    app.add_typer(docs_app, name="docs")
