"""Deprecated: the calibration policies moved to :mod:`bprl.policies`.

``bprl.calibrators`` is a thin shim kept so that old imports keep working: it warns on import and
re-exports the old names from their new homes (:mod:`bprl.policies.base`,
:mod:`bprl.policies.calibrators`, :mod:`bprl.policies.oracle`, :mod:`bprl.policies.registry`,
:mod:`bprl.policies.rollout`). Import from :mod:`bprl.policies` instead.
"""

from __future__ import annotations

import sys
import types
import warnings

from bprl.policies.base import (
    CUFF,
    DBP_DOWN,
    DBP_UP,
    HOLD,
    SBP_DOWN,
    SBP_UP,
    Calibrator,
    Policy,
)
from bprl.policies.calibrators import (
    DriftCalibrator,
    KalmanCalibrator,
    NoCalibration,
    OneShotCalibrator,
    PeriodicCalibrator,
)
from bprl.policies.oracle import OracleCalibrator
from bprl.policies.registry import CALIBRATORS, make_calibrator
from bprl.policies.rollout import episode_seed as _episode_seed  # noqa: F401  (old private name)
from bprl.policies.rollout import rollout

__all__ = [
    "CALIBRATORS",
    "CUFF",
    "DBP_DOWN",
    "DBP_UP",
    "HOLD",
    "SBP_DOWN",
    "SBP_UP",
    "Calibrator",
    "DriftCalibrator",
    "KalmanCalibrator",
    "NoCalibration",
    "OneShotCalibrator",
    "OracleCalibrator",
    "PeriodicCalibrator",
    "Policy",
    "make_calibrator",
    "rollout",
]

#: bprl modules that still import this shim and switch to bprl.policies in their own step of
#: issue 12; they import it silently (pytest turns bprl's DeprecationWarnings into errors).
#: Empty this tuple once they have switched.
_NOT_YET_MIGRATED: tuple[str, ...] = ("bprl.experiments",)


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
    warnings.warn(
        "bprl.calibrators is deprecated; import from bprl.policies", DeprecationWarning, stacklevel=2
    )
del _by
