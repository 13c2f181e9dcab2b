"""The ``bprl`` command line: one sub-command group per package.

Each group lives in its own module of this package (``bprl.cli.records``, ``bprl.cli.cohort``, ...)
and adds its commands to :data:`app` through its ``register`` function.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="bprl: RL calibration of cuffless BP estimators."
)

#: modules of bprl.cli with a ``register(app)`` function, in the order of ``bprl --help``
_GROUPS = (
    "records",
    "cohort",
    "features",
    "rhythm",
    "video",
    "estimator",
    "train",
    "run",
    "compare",
    "view",
    "docs",
)


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
    importlib.import_module(f"bprl.cli.{_name}").register(app)


def main() -> None:
    """Entry point of the ``bprl`` console script."""
    app()
