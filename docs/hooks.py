"""MkDocs hook: fill generated blocks of the docs from the code, so that they cannot drift.

A page writes a marker comment, alone on its line, and the hook replaces it at build time:

* ``<!-- bprl:spec MODULE:CLASS -->`` -> the field table of a pydantic spec
  (:func:`bprl.config.spec_reference_table`);
* ``<!-- bprl:cli -->`` -> the help text of every ``bprl`` command, from the Typer app itself;
* ``<!-- bprl:include PATH -->`` -> the text of a file of the repository (an example script, a YAML
  spec), fenced as code in the language of its suffix; a `.md` file (the shipped model card) is
  inlined as Markdown, its headings two levels down.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# a marker stands alone on its line, so that the docs can quote one in prose or a code span
_MARK = re.compile(r"^[ \t]*<!--\s*bprl:(?P<kind>spec|cli|include)\s*(?P<arg>[^>]*?)\s*-->[ \t]*$", re.M)
_LANG = {".py": "python", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".sh": "bash"}


def _spec(arg: str) -> str:
    from bprl.config import spec_reference_table

    module, _, name = arg.partition(":")
    return spec_reference_table(getattr(importlib.import_module(module), name))


def _cli(_: str) -> str:
    import typer
    import typer.core

    from bprl.cli import app

    root = typer.main.get_command(app)
    out: list[str] = []

    def walk(cmd: Any, path: list[str]) -> None:
        # Typer vendors its own click: build the context its commands expect; a group is
        # whatever lists sub-commands
        ctx = cmd.context_class(cmd, info_name=" ".join(path), terminal_width=100, max_content_width=100)
        out.append(f"### `{' '.join(path)}`\n\n```text\n{cmd.get_help(ctx).rstrip()}\n```\n")
        if hasattr(cmd, "list_commands"):
            for name in sorted(cmd.list_commands(ctx)):
                walk(cmd.get_command(ctx, name), [*path, name])

    # plain click help: Typer's rich help prints to the terminal instead of returning the text
    has_rich, typer.core.HAS_RICH = typer.core.HAS_RICH, False
    try:
        walk(root, ["bprl"])
    finally:
        typer.core.HAS_RICH = has_rich
    return "\n".join(out)


def _include(arg: str) -> str:
    path = REPO / arg
    if path.suffix == ".md":  # a generated Markdown file (a model card): inlined, headings two levels down
        text = path.read_text(encoding="utf-8").rstrip()
        return re.sub(r"^(#+) ", lambda m: "#" * min(len(m.group(1)) + 2, 6) + " ", text, flags=re.M) + "\n"
    return f"```{_LANG.get(path.suffix, 'text')}\n{path.read_text(encoding='utf-8').rstrip()}\n```\n"


_KINDS = {"spec": _spec, "cli": _cli, "include": _include}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace every ``bprl:`` marker of a page by its generated text."""
    return _MARK.sub(lambda m: _KINDS[m.group("kind")](m.group("arg")), markdown)
