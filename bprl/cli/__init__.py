"""The ``bprl`` command line: one sub-command group per room.

Each group lives in its own module of this package and is added below.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="bprl: RL calibration of cuffless BP estimators."
)

# (module in bprl.cli, attribute) of each sub-command group; a group whose module is
# absent is skipped so the CLI works while rooms are being added.
_GROUPS = ("records", "cohort", "features", "estimator", "train", "run", "docs")


def _print_version(value: bool) -> None:
    """``--version``: print ``bprl <version>`` and exit."""
    if value:
        from bprl import __version__

        typer.echo(f"bprl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the bprl version and exit.",
    ),
) -> None:
    """bprl: RL calibration of cuffless BP estimators."""


for _name in _GROUPS:
    try:
        _mod = importlib.import_module(f"bprl.cli.{_name}")
    except ModuleNotFoundError as exc:  # pragma: no cover - only while a room is missing
        if exc.name != f"bprl.cli.{_name}":
            raise
        continue
    _mod.register(app)


def main() -> None:
    """Entry point of the ``bprl`` console script."""
    app()
