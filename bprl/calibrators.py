"""Deprecated: the calibration policies moved to :mod:`bprl.policies`.

``bprl.calibrators`` is a thin shim kept so that old imports keep working: it warns on import and
re-exports the old names from their new homes (:mod:`bprl.policies.base`,
:mod:`bprl.policies.calibrators`, :mod:`bprl.policies.oracle`, :mod:`bprl.policies.registry`,
:mod:`bprl.policies.rollout`). Import from :mod:`bprl.policies` instead.
"""

from __future__ import annotations

from bprl._deprecation import warn_moved
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

warn_moved("bprl.calibrators", "bprl.policies")
