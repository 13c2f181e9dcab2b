"""Deprecated: the batched vector environment moved to :mod:`bprl.envs.vector_env`.

``bprl.vector_env`` is a thin shim kept so that old imports keep working: it warns on import and
re-exports :class:`~bprl.envs.vector_env.BPCalibrationVectorEnv`. Import from :mod:`bprl.envs`
instead.
"""

from __future__ import annotations

import sys
import types
import warnings

from bprl.envs.vector_env import BPCalibrationVectorEnv

__all__ = ["BPCalibrationVectorEnv"]

#: bprl modules that still import this shim and switch to bprl.envs in their own step of issue 12;
#: they import it silently (pytest turns bprl's DeprecationWarnings into errors). Empty this tuple
#: once they have switched.
_NOT_YET_MIGRATED: tuple[str, ...] = (
    "bprl.policies",
    "bprl.agents",
    "bprl.experiments",
    "bprl.estimator",
    "bprl.cli",
)


def _is_import_machinery(frame: types.FrameType) -> bool:
    """Whether a frame is importlib's (its bootstrap, which ``warnings`` also skips, or import_module)."""
    filename = frame.f_code.co_filename
    return ("importlib" in filename and "_bootstrap" in filename) or frame.f_globals.get(
        "__name__"
    ) == "importlib"


def _importer() -> str:
    """Name of the module whose code imports this one (import-machinery frames skipped)."""
    frame = sys._getframe(2)  # 0: here, 1: this module's body
    while frame is not None and _is_import_machinery(frame):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "") if frame is not None else ""


_by = _importer()
if not any(_by == m or _by.startswith(m + ".") for m in _NOT_YET_MIGRATED):
    warnings.warn("bprl.vector_env is deprecated; import from bprl.envs", DeprecationWarning, stacklevel=2)
del _by
