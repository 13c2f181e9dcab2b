"""Calibration policies: the Policy protocol, classical calibrators, the oracle, the registry, rollout.

Every policy, classical or learned, satisfies :class:`Policy` (SB3's ``predict``) and is run by
:func:`rollout` into an episode log. The package is organised as:

* :mod:`bprl.policies.base` -- :class:`Policy`, the :class:`Calibrator` base class, action codes;
* :mod:`bprl.policies.calibrators` -- the simple rules (none, one-shot, periodic, drift, Kalman);
* :mod:`bprl.policies.fitting` -- what calibrators fit on training subjects (error variogram,
  gain prior, feature changes); :mod:`bprl.policies.filters` -- the Kalman rules fit there
  (``kalman_ou``, ``rls_gain``, ``variance_trigger``); :mod:`bprl.policies.feature_correction`;
* :mod:`bprl.policies.oracle` -- :class:`OracleCalibrator`, an UPPER BOUND that reads the reference;
* :mod:`bprl.policies.registry` -- :data:`CALIBRATORS`, :func:`make_calibrator`,
  :func:`known_calibrators`, ``module:Class`` specs and the ``bprl.calibrators`` entry-point group;
* :mod:`bprl.policies.residual` -- :class:`ResidualCalibrationEnv` and :class:`ResidualPolicy`: a
  learned bounded correction and cuff decision on top of a classical calibrator;
* :mod:`bprl.policies.rollout` -- :func:`fit_calibrator` on training subjects, :func:`rollout` to an
  episode log;
* :mod:`bprl.policies.agents` -- RL agents (PPO, DQN, RecurrentPPO): :class:`AgentSpec`,
  :func:`train_agent`, :func:`load_agent` and :class:`AgentPolicy` (stable-baselines3 and torch
  are imported only when an agent is validated, trained or loaded).

>>> from bprl.policies import make_calibrator
>>> make_calibrator("one_shot", max_attempts=2).max_attempts
2
"""

from __future__ import annotations

from bprl.policies.agents import AgentPolicy, AgentSpec, load_agent, train_agent
from bprl.policies.base import (
    ACTION_TYPES,
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
from bprl.policies.feature_correction import FeatureCorrectionCalibrator
from bprl.policies.filters import KalmanOUCalibrator, RLSGainCalibrator, VarianceTriggerCalibrator
from bprl.policies.fitting import TrainingSubjects, training_subjects
from bprl.policies.oracle import OracleCalibrator
from bprl.policies.registry import (
    CALIBRATORS,
    ENTRY_POINT_GROUP,
    known_calibrators,
    load_class_spec,
    make_calibrator,
    plugin_calibrators,
    resolve_calibrator,
)
from bprl.policies.residual import ResidualCalibrationEnv, ResidualPolicy
from bprl.policies.rollout import episode_seed, fit_calibrator, rollout

__all__ = [
    "ACTION_TYPES",
    "CALIBRATORS",
    "CUFF",
    "DBP_DOWN",
    "DBP_UP",
    "ENTRY_POINT_GROUP",
    "HOLD",
    "SBP_DOWN",
    "SBP_UP",
    "AgentPolicy",
    "AgentSpec",
    "Calibrator",
    "DriftCalibrator",
    "FeatureCorrectionCalibrator",
    "KalmanCalibrator",
    "KalmanOUCalibrator",
    "NoCalibration",
    "OneShotCalibrator",
    "OracleCalibrator",
    "PeriodicCalibrator",
    "Policy",
    "RLSGainCalibrator",
    "ResidualCalibrationEnv",
    "ResidualPolicy",
    "TrainingSubjects",
    "VarianceTriggerCalibrator",
    "episode_seed",
    "fit_calibrator",
    "known_calibrators",
    "load_agent",
    "load_class_spec",
    "make_calibrator",
    "plugin_calibrators",
    "resolve_calibrator",
    "rollout",
    "train_agent",
    "training_subjects",
]
