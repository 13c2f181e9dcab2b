"""Rendering the report's content as HTML (self-contained) and Markdown.

:class:`ReportContent` is a title, a summary line, notes and :class:`Section` s in order; each
section has text, tables, figures and optional preformatted text (the configuration).
:func:`render_html` writes one page with a table of contents, embedded CSS and base64 PNG figures
(each figure links its SVG and PDF twins in ``figures/``, each table its LaTeX and CSV files in
``tables/``); :func:`render_markdown` writes the same content with the figures linked as files.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field

from bprl.report.figures import ReportFigure
from bprl.report.tables import Table, html_table, markdown_table

__all__ = ["REPORT_CSS", "ReportContent", "ReportTable", "Section", "render_html", "render_markdown"]

#: the style sheet embedded in report.html
REPORT_CSS = """
body { font-family: Helvetica, Arial, sans-serif; color: #222; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.5em; border-bottom: 2px solid #222; padding-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #bbb; }
h3 { font-size: 1.0em; margin-top: 1.2em; }
nav.toc { background: #f6f6f6; padding: .4em 1em; font-size: .9em; }
nav.toc ol { columns: 2; margin: .3em 0; }
table { border-collapse: collapse; font-size: .82em; margin: .8em 0; font-variant-numeric: tabular-nums; }
thead th { border-top: 2px solid #222; border-bottom: 1px solid #222; padding: .3em .6em; text-align: left; }
tbody td { padding: .25em .6em; border-bottom: 1px solid #eee; white-space: nowrap; }
tbody tr:last-child td { border-bottom: 2px solid #222; }
td.pass, td.gradeA { color: #1a7f37; font-weight: 600; }
td.fail, td.gradeD { color: #b42318; font-weight: 600; }
td.na { color: #777; font-style: italic; }
td.gradeB { color: #4d7c0f; } td.gradeC { color: #b54708; }
.scroll { overflow-x: auto; }
figure { margin: 1.2em 0; } figure img { width: 100%; height: auto; }
figcaption { font-size: .85em; color: #555; }
.files { font-size: .8em; color: #555; }
pre { background: #f6f6f6; padding: .8em; font-size: .8em; overflow-x: auto; }
.note { background: #fff8e1; border-left: 4px solid #f5b400; padding: .5em .8em; font-size: .9em; }
""".strip()


@dataclass
class ReportTable:
    """One table of the report.

    Attributes:
        name: file stem of ``tables/<name>.tex`` / ``.csv``.
        title: heading above it (empty: none, the section's heading names it).
        caption: caption text.
        table: header and rows of formatted cells.
    """

    name: str
    title: str
    caption: str
    table: Table


@dataclass
class Section:
    """One section of the report (one entry of the table of contents).

    Attributes:
        anchor: HTML id (and Markdown anchor).
        title: heading.
        text: paragraphs (plain text, escaped in HTML), in order.
        tables: the section's tables.
        figures: the section's figures.
        preformatted: text shown verbatim (e.g. the configuration as YAML), or None.
    """

    anchor: str
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[ReportTable] = field(default_factory=list)
    figures: list[ReportFigure] = field(default_factory=list)
    preformatted: str | None = None


@dataclass
class ReportContent:
    """Everything the report shows, ready to render as Markdown or HTML.

    Attributes:
        title: report title.
        summary: one line: policies, subjects, seeds and steps.
        notes: notes shown before the contents (oracle, subject count, skipped inputs).
        sections: the sections in order.
    """

    title: str
    summary: str
    notes: list[str]
    sections: list[Section]

    @property
    def tables(self) -> list[ReportTable]:
        """Every table in report order."""
        return [t for s in self.sections for t in s.tables]

    @property
    def figures(self) -> list[ReportFigure]:
        """Every figure in report order."""
        return [f for s in self.sections for f in s.figures]


def _md_anchor(title: str) -> str:
    """The anchor GitHub and MkDocs give a Markdown heading (lower case, punctuation dropped)."""
    return re.sub(r"[^\w\- ]", "", title.lower()).strip().replace(" ", "-")


def render_markdown(content: ReportContent) -> str:
    """The Markdown report; figures are linked as ``figures/<name>.png``, tables as their files."""
    md = [f"# {content.title}", "", content.summary, ""]
    for n in content.notes:
        md += [f"> **Note.** {n}", ""]
    md += ["## Contents", ""]
    md += [f"{i}. [{s.title}](#{_md_anchor(s.title)})" for i, s in enumerate(content.sections, 1)]
    md.append("")
    for s in content.sections:
        md += [f"## {s.title}", ""]
        for p in s.text:
            md += [p, ""]
        for t in s.tables:
            if t.title:
                md += [f"### {t.title}", ""]
            md += [t.caption, "", markdown_table(*t.table), ""]
            md += [
                f"LaTeX: [tables/{t.name}.tex](tables/{t.name}.tex), CSV: [tables/{t.name}.csv](tables/{t.name}.csv)",
                "",
            ]
        for f in s.figures:
            md += [f"![{f.name}](figures/{f.name}.png)", "", f"*{f.caption}*", ""]
        if s.preformatted is not None:
            md += ["```yaml", s.preformatted.rstrip(), "```", ""]
    return "\n".join(md)


def _figure_html(f: ReportFigure) -> list[str]:
    """A ``<figure>`` with the embedded PNG, its caption and links to its vector files."""
    b64 = base64.b64encode(f.png).decode("ascii")
    links = " · ".join(
        f'<a href="figures/{html.escape(n)}">{n.rsplit(".", 1)[1].upper()}</a>'
        for n in f.files()
        if not n.endswith(".png")
    )
    return [
        f'<figure id="{f.name}"><img alt="{f.name}" src="data:image/png;base64,{b64}">',
        f"<figcaption>{html.escape(f.caption)}"
        + (f' <span class="files">({links})</span>' if links else "")
        + "</figcaption></figure>",
    ]


def render_html(content: ReportContent) -> str:
    """The self-contained HTML report: embedded CSS and base64 PNG figures, no external assets."""
    h = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(content.title)}</title>",
        f"<style>\n{REPORT_CSS}\n</style>",
        "</head><body>",
        f"<h1>{html.escape(content.title)}</h1>",
        f"<p>{html.escape(content.summary)}</p>",
    ]
    h += [f'<p class="note"><b>Note.</b> {html.escape(n)}</p>' for n in content.notes]
    h += ['<nav class="toc" id="contents"><b>Contents</b><ol>']
    h += [f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in content.sections]
    h += ["</ol></nav>"]
    for s in content.sections:
        h.append(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>')
        h += [f"<p>{html.escape(p)}</p>" for p in s.text]
        for t in s.tables:
            if t.title:
                h.append(f"<h3>{html.escape(t.title)}</h3>")
            h += [
                f'<p>{html.escape(t.caption)} <span class="files">(<a href="tables/{t.name}.tex">LaTeX</a> · '
                f'<a href="tables/{t.name}.csv">CSV</a>)</span></p>',
                f'<div class="scroll" id="table-{t.name}">',
                html_table(*t.table),
                "</div>",
            ]
        for f in s.figures:
            h += _figure_html(f)
        if s.preformatted is not None:
            h.append(f"<pre>{html.escape(s.preformatted)}</pre>")
        h.append("</section>")
    h += ["</body></html>", ""]
    return "\n".join(h)
