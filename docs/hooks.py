"""MkDocs hook: fill generated blocks of the docs from the code, so that they cannot drift.

A page writes a marker comment and the hook replaces it at build time:

* ``<!-- bprl:spec MODULE:CLASS -->`` -> the field table of a pydantic spec
  (:func:`bprl.config.spec_reference_table`);
* ``<!-- bprl:cli -->`` -> the help text of every ``bprl`` command, from the Typer app itself;
* ``<!-- bprl:include PATH -->`` -> the text of a file of the repository (an example script, a YAML
  spec), fenced as code in the language of its suffix.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_MARK = re.compile(r"<!--\s*bprl:(?P<kind>spec|cli|include)\s*(?P<arg>[^>]*?)\s*-->")
_LANG = {".py": "python", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".sh": "bash"}


def _spec(arg: str) -> str:
    from bprl.config import spec_reference_table

    module, _, name = arg.partition(":")
    return spec_reference_table(getattr(importlib.import_module(module), name))


def _cli(_: str) -> str:
    import click
    import typer

    from bprl.cli import app

    root = typer.main.get_command(app)
    out: list[str] = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        ctx = click.Context(cmd, info_name=" ".join(path))
        out.append(f"### `{' '.join(path)}`\n\n```text\n{cmd.get_help(ctx)}\n```\n")
        if isinstance(cmd, click.Group):
            for name in sorted(cmd.list_commands(ctx)):
                walk(cmd.get_command(ctx, name), [*path, name])

    walk(root, ["bprl"])
    return "\n".join(out)


def _include(arg: str) -> str:
    path = REPO / arg
    return f"```{_LANG.get(path.suffix, 'text')}\n{path.read_text(encoding='utf-8').rstrip()}\n```\n"


_KINDS = {"spec": _spec, "cli": _cli, "include": _include}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace every ``bprl:`` marker of a page by its generated text."""
    return _MARK.sub(lambda m: _KINDS[m.group("kind")](m.group("arg")), markdown)
