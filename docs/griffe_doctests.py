"""Griffe extension for the API pages: docstrings written for Python read well as Markdown.

bprl's docstrings carry runnable examples (``>>> call()`` then the expected output) in their
body, where Markdown would read ``>>>`` as a quote and ``['A', 'B']`` as a link reference; and
they name objects with Sphinx roles (``:func:`rollout```). This extension, before a docstring is
parsed, fences each unindented run of doctest lines (prompt, ``...`` continuations and the output
up to the next blank line) as ``pycon`` code and turns a role into plain code (``rollout``).
Loaded by mkdocstrings through ``extensions:`` in mkdocs.yml; not a page of the site.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:mod|func|class|meth|attr|data|exc|obj|const):`~?([^`]+)`")


def fence_doctests(text: str) -> str:
    """``text`` with every top-level doctest run wrapped in a ```` ```pycon ```` fence."""
    out: list[str] = []
    lines = text.splitlines()
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and line.startswith(">>>"):
            out.append("```pycon")
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(" "):
                out.append(lines[i])
                i += 1
            out.append("```")
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctest runs and strip the Sphinx roles of every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring in place."""
        if obj.docstring is None:
            return
        text = _ROLE.sub(r"`\1`", obj.docstring.value)
        obj.docstring.value = fence_doctests(text) if ">>>" in text else text
