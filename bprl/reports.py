"""Deprecated: the evaluation report moved to the package :mod:`bprl.report`.

``bprl.reports`` is a thin shim kept so that old imports keep working: it warns on import
and re-exports the old public names from their new homes (:mod:`bprl.report.write`,
:mod:`bprl.report.figures` and :mod:`bprl.evaluation.pareto`). Import from
:mod:`bprl.report` instead.
"""

from __future__ import annotations

from bprl._deprecation import warn_moved
from bprl.evaluation.pareto import pareto_front
from bprl.report.figures import MAX_SCATTER_POINTS
from bprl.report.write import PROVENANCE_PACKAGES, collect_provenance, write_report

__all__ = [
    "MAX_SCATTER_POINTS",
    "PROVENANCE_PACKAGES",
    "collect_provenance",
    "pareto_front",
    "write_report",
]

warn_moved("bprl.reports", "bprl.report")
