"""Deprecated: the evaluation report moved to the package :mod:`bprl.report`.

``bprl.reports`` is a thin shim kept so that old imports keep working: it warns on import
and re-exports the old public names from their new homes (:mod:`bprl.report.write`,
:mod:`bprl.report.figures` and :mod:`bprl.evaluation.pareto`). Import from
:mod:`bprl.report` instead.
"""

from __future__ import annotations

import sys
import warnings

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

#: bprl modules that still import this shim and switch to bprl.report in their own step of
#: issue 12; they import it silently (pytest turns bprl's DeprecationWarnings into errors).
#: Empty this tuple once they have switched.
_NOT_YET_MIGRATED: tuple[str, ...] = ("bprl.experiments",)


def _is_import_machinery(filename: str) -> bool:
    """Whether a frame's file is importlib's bootstrap (the frames ``warnings`` also skips)."""
    return "importlib" in filename and "_bootstrap" in filename


def _importer() -> str:
    """Name of the module whose code imports this one (import-machinery frames skipped)."""
    frame = sys._getframe(2)  # 0: here, 1: this module's body
    while frame is not None and _is_import_machinery(frame.f_code.co_filename):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "") if frame is not None else ""


_by = _importer()
if not any(_by == m or _by.startswith(m + ".") for m in _NOT_YET_MIGRATED):
    warnings.warn("bprl.reports is deprecated; import from bprl.report", DeprecationWarning, stacklevel=2)
del _by
