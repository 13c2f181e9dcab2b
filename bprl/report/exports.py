"""Tables and figures of the report as files for a paper: ``tables/<name>.tex`` (LaTeX, booktabs),
``tables/<name>.csv`` and ``figures/<name>.png|svg|pdf``.

A LaTeX table is a bare ``tabular`` with ``\\toprule`` / ``\\midrule`` / ``\\bottomrule`` (the
``booktabs`` package) and the caption as a comment above it, so that it can be ``\\input`` into
a ``table`` float of the paper's own style. Cell text is escaped for LaTeX, and the symbols the
report uses (``±``, ``≤``, ``≥``, ``−``, ``κ``, ``Δ``, ``–``, ``×``, ``²``, ...) become math-mode or
ASCII forms; any other non-ASCII character is decomposed to ASCII. The output is pure ASCII, so a
plain pdflatex document compiles it without packages beyond booktabs (checked with pdflatex on a
quickstart report).
The CSV holds the same cells as the report (numbers with their intervals as text); the raw
numbers are in ``metrics*.csv``.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from pathlib import Path

from bprl.io import atomic_output, write_text_atomic
from bprl.report.figures import ReportFigure
from bprl.report.tables import Table

__all__ = ["latex_escape", "latex_table", "slug", "write_figure_files", "write_table_files"]

#: LaTeX special characters and the report's non-ASCII symbols, in replacement order
_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "−": r"$-$",
    "κ": r"$\kappa$",
    "–": "--",
    "×": r"$\times$",
    "²": r"$^{2}$",
    "·": r"$\cdot$",
    "→": r"$\rightarrow$",
    "Δ": r"$\Delta$",
    "δ": r"$\delta$",
    "σ": r"$\sigma$",
    "μ": r"$\mu$",
    "°": r"$^{\circ}$",
    "…": r"\ldots{}",
    "’": "'",
    "‘": "`",
    "“": "``",
    "”": "''",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX))


def _ascii(ch: str) -> str:
    """A non-ASCII character without a LaTeX form: its ASCII decomposition (é -> e), else ``?``."""
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode("ascii")
    return plain or "?"


def latex_escape(text: str) -> str:
    r"""``text`` safe in LaTeX text mode, in ASCII only (pdflatex needs no Unicode set-up).

    >>> latex_escape("4.3 ± 0.2 [3.9, 4.8] ≤ 5 % of kalman_ou, |Δref| 10–20, Müller")
    '4.3 $\\pm$ 0.2 [3.9, 4.8] $\\leq$ 5 \\% of kalman\\_ou, |$\\Delta$ref| 10--20, Muller'
    """
    out = _LATEX_RE.sub(lambda m: _LATEX[m.group(0)], text)
    return "".join(c if ord(c) < 128 else _ascii(c) for c in out)


def latex_table(table: Table, caption: str = "") -> str:
    r"""A booktabs ``tabular`` of ``table``: first column left-aligned, the others right-aligned.

    Args:
        table: ``(head, body)`` of formatted cells.
        caption: written as a ``%`` comment above the tabular.

    Returns:
        The LaTeX source, ending with a newline.

    >>> print(latex_table((["Policy", "MAE"], [["kalman_ou", "4.3"]]), "MAE in mmHg"), end="")
    % MAE in mmHg
    % needs \usepackage{booktabs}
    \begin{tabular}{lr}
    \toprule
    Policy & MAE \\
    \midrule
    kalman\_ou & 4.3 \\
    \bottomrule
    \end{tabular}
    """
    head, body = table
    lines = [f"% {latex_escape(c)}" for c in caption.splitlines() if c.strip()]
    lines += [
        r"% needs \usepackage{booktabs}",
        r"\begin{tabular}{" + "l" + "r" * (len(head) - 1) + "}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in head) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def csv_table(table: Table) -> str:
    """``table`` as CSV text (header row first, ``\\n`` line ends)."""
    head, body = table
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    w.writerows(body)
    return buf.getvalue()


def slug(name: str) -> str:
    """A file stem from a section name: lower case, runs of other characters as ``_``.

    >>> slug("IEEE 1708 by BP change since calibration")
    'ieee_1708_by_bp_change_since_calibration'
    """
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "table"


def write_table_files(out_dir: str | Path, name: str, table: Table, caption: str = "") -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.tex`` and ``.csv`` atomically.

    Returns:
        ``(tex path, csv path)``.
    """
    out = Path(out_dir)
    return (
        write_text_atomic(latex_table(table, caption), out / f"{name}.tex"),
        write_text_atomic(csv_table(table), out / f"{name}.csv"),
    )


def write_figure_files(out_dir: str | Path, figure: ReportFigure) -> list[Path]:
    """Write every rendered format of ``figure`` into ``out_dir`` atomically; returns the paths."""
    paths = []
    for file_name, data in figure.files().items():
        path = Path(out_dir) / file_name
        with atomic_output(path) as tmp:
            tmp.write_bytes(data)
        paths.append(path)
    return paths
