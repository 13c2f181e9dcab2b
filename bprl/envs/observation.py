"""What a calibration policy observes: the feature block, the calibration state, their scaling.

An observation is ``2F + 23`` float32 values, all clipped to ``+-OBS_CLIP``: the F observed
replay-table features (last valid value, normalised by :data:`FEATURE_NORMALIZATION`), their F
validity flags, then the calibration state, :data:`STATE_FIELDS`, always the tail of the vector.
:func:`decode_obs` turns that tail back into physical units; :func:`make_spaces` builds the
Gymnasium spaces.

>>> obs = np.zeros(2 * len(DEFAULT_FEATURES) + N_STATE, np.float32)
>>> state = decode_obs(obs)
>>> float(state["est_sbp"]), float(state["gain_sbp"]), float(state["since_cuff_h"])
(120.0, 1.0, 0.0)
>>> make_spaces(len(DEFAULT_FEATURES), "continuous")[1].shape
(5,)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

from bprl.envs.actions import CONTINUOUS_ACTIONS, DISCRETE_ACTIONS

__all__ = [
    "DBP_C",
    "DBP_S",
    "DEFAULT_FEATURES",
    "FEATURE_NORMALIZATION",
    "N_STATE",
    "OBS_CLIP",
    "PRIOR_DBP_MMHG",
    "PRIOR_SBP_MMHG",
    "SBP_C",
    "SBP_S",
    "STATE_FIELDS",
    "clip_obs",
    "decode_obs",
    "feature_scaling",
    "make_spaces",
]

#: features shown to the policy by default (a subset of bprl.schemas.REPLAY_FEATURES)
DEFAULT_FEATURES: tuple[str, ...] = (
    "pat_foot_ms",
    "pat_peak_ms",
    "hr_bpm",
    "ppg_amp",
    "ppg_rise_time_ms",
    "ppg_width_ms",
    "ppg_stiffness_index",
    "sqi_ecg",
    "sqi_ppg",
    "valid_beat_share",
)

#: feature -> (centre, scale): observation value = (x - centre) / scale, clipped to +-OBS_CLIP
FEATURE_NORMALIZATION: dict[str, tuple[float, float]] = {
    "pat_foot_ms": (250.0, 50.0),
    "pat_maxslope_ms": (270.0, 50.0),
    "pat_peak_ms": (400.0, 60.0),
    "rr_ms": (800.0, 150.0),
    "hr_bpm": (75.0, 15.0),
    "ppg_amp": (1.0, 1.0),
    "ppg_rise_time_ms": (150.0, 50.0),
    "ppg_width_ms": (300.0, 100.0),
    "ppg_stiffness_index": (7.0, 3.0),
    "sqi_ecg": (0.5, 0.5),
    "sqi_ppg": (0.5, 0.5),
    "n_beats": (37.0, 15.0),
    "valid_beat_share": (0.5, 0.5),
    "af_share": (0.0, 1.0),
    "ectopic_share": (0.0, 0.2),
    "qtc_ms": (420.0, 40.0),
    "pat_qrs_onset_ms": (290.0, 50.0),
}

#: calibration-state part of the observation, always the LAST len(STATE_FIELDS) elements, in this order
STATE_FIELDS: tuple[str, ...] = (
    "est_sbp",  # estimator SBP (last valid), (x - 120) / 20
    "est_dbp",  # estimator DBP (last valid), (x - 70) / 15
    "est_valid",  # 1 if the estimator produced a value in this window, else 0 (value carried)
    "corr_sbp",  # corrected SBP = gain_sbp * est_sbp + offset_sbp, (x - 120) / 20
    "corr_dbp",  # corrected DBP, (x - 70) / 15
    "offset_sbp",  # offset in force, mmHg / 20
    "offset_dbp",  # mmHg / 20
    "gain_sbp",  # (gain - 1) / 0.25
    "gain_dbp",  # (gain - 1) / 0.25
    "has_cuff",  # 1 once a cuff reading succeeded in this episode
    "new_reading",  # 1 if the previous step took a successful cuff reading
    "since_cuff_h",  # hours since the last successful reading (since episode start when none)
    "elapsed_h",  # hours since episode start
    "dpat_ms",  # PAT (foot) now minus at the last reading, ms / 20 (0 when none)
    "dhr_bpm",  # HR now minus at the last reading, bpm / 10 (0 when none)
    "cuff_minus_est_sbp",  # last reading minus the raw estimate at that time, mmHg / 20 (0 when none)
    "cuff_minus_est_dbp",  # mmHg / 20
    "cuffs_used",  # cuff requests charged in this episode / 10
    "budget_left",  # share of the per-episode cuff budget left (1 when unlimited)
    "time_left_h",  # hours from the end of this window to the end of the episode
    "cuffs_available",  # readings a request could use now (budget and per-hour pacing), count / 10
    "segment",  # index of the record segment this window belongs to (0, 1, ...), / 10
    "segment_start",  # 1 at a boundary: a later segment's first window, or after a PPG timing offset
)
N_STATE = len(STATE_FIELDS)
#: every observation value is clipped to +-OBS_CLIP
OBS_CLIP = 10.0
#: centre and scale of SBP / DBP values in the observation, mmHg
SBP_C, SBP_S = 120.0, 20.0
DBP_C, DBP_S = 70.0, 15.0
#: estimate used before the estimator produced its first value in an episode (population prior)
PRIOR_SBP_MMHG, PRIOR_DBP_MMHG = 120.0, 70.0

#: decoding of STATE_FIELDS back to physical units: name -> (centre, scale)
_STATE_DECODE: dict[str, tuple[float, float]] = {
    "est_sbp": (SBP_C, SBP_S),
    "est_dbp": (DBP_C, DBP_S),
    "corr_sbp": (SBP_C, SBP_S),
    "corr_dbp": (DBP_C, DBP_S),
    "offset_sbp": (0.0, 20.0),
    "offset_dbp": (0.0, 20.0),
    "gain_sbp": (1.0, 0.25),
    "gain_dbp": (1.0, 0.25),
    "dpat_ms": (0.0, 20.0),
    "dhr_bpm": (0.0, 10.0),
    "cuff_minus_est_sbp": (0.0, 20.0),
    "cuff_minus_est_dbp": (0.0, 20.0),
    "cuffs_used": (0.0, 10.0),
    "cuffs_available": (0.0, 10.0),
    "segment": (0.0, 10.0),
}

_DECODE_CENTRE = np.array([_STATE_DECODE.get(n, (0.0, 1.0))[0] for n in STATE_FIELDS])
_DECODE_SCALE = np.array([_STATE_DECODE.get(n, (0.0, 1.0))[1] for n in STATE_FIELDS])


def decode_obs(obs: np.ndarray) -> dict[str, np.ndarray]:
    """Calibration state of an observation (or a batch, last axis = observation) in physical units.

    Args:
        obs: one observation (``2F + 23`` values) or a batch of them (last axis).

    Returns:
        :data:`STATE_FIELDS` -> values: BP values in mmHg, gains as factors, times in hours, PAT in
        ms, HR in bpm, ``cuffs_used``, ``cuffs_available`` and ``segment`` as counts (an unlimited
        number of available readings shows as 100, the clip), flags as 0/1. Works for any feature selection
        because the state block is always the tail of the observation.
    """
    vals = np.asarray(obs, dtype=np.float64)[..., -N_STATE:] * _DECODE_SCALE + _DECODE_CENTRE
    return {name: vals[..., i] for i, name in enumerate(STATE_FIELDS)}


def clip_obs(x: float) -> float:
    """``x`` clipped to ``+-OBS_CLIP`` (a Python float; the single environment's fast scalar path)."""
    return OBS_CLIP if x > OBS_CLIP else (-OBS_CLIP if x < -OBS_CLIP else x)


def feature_scaling(features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(centre, scale) arrays of ``features`` from :data:`FEATURE_NORMALIZATION`.

    Raises:
        KeyError: a feature without a normalisation (callers check names first).
    """
    centre = np.array([FEATURE_NORMALIZATION[f][0] for f in features])
    scale = np.array([FEATURE_NORMALIZATION[f][1] for f in features])
    return centre, scale


def make_spaces(n_features: int, action_type: str) -> tuple[spaces.Box, spaces.Space]:
    """Observation and action spaces of an environment with ``n_features`` observed features.

    Args:
        n_features: F, the number of observed replay-table features.
        action_type: ``"discrete"`` (``Discrete(6)``) or ``"continuous"`` (``Box(-1, 1, (5,))``).

    Returns:
        ``(Box(-10, 10, (2F + 23,), float32), action space)``.
    """
    dim = 2 * n_features + N_STATE
    obs_space = spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(dim,), dtype=np.float32)
    if action_type == "discrete":
        act_space: spaces.Space = spaces.Discrete(len(DISCRETE_ACTIONS))
    else:
        act_space = spaces.Box(-1.0, 1.0, shape=(len(CONTINUOUS_ACTIONS),), dtype=np.float32)
    return obs_space, act_space
