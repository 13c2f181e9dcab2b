"""Gymnasium environments in which a policy calibrates a cuffless BP estimator for one subject.

The environments replay *replay tables* (:mod:`bprl.features.replay_set`, columns :mod:`bprl.schemas`): one row per step (typically a 30-s
window) with PAT/HR/PPG features, the population estimator's SBP/DBP and the arterial reference.
All tables are turned once into padded 2-D numpy arrays, so that a step is a handful of array
look-ups. The package is organised as:

* :mod:`bprl.envs.observation` -- the observation layout (:data:`STATE_FIELDS`, feature
  normalisation), :func:`decode_obs`, :func:`make_spaces`;
* :mod:`bprl.envs.actions` -- the discrete and continuous action vocabularies;
* :mod:`bprl.envs.rewards` -- the reward registry (:data:`REWARDS`), ``module:function`` rewards
  and the ``bprl.rewards`` entry-point group, and the reward function signature;
* :mod:`bprl.envs.cuff` -- :class:`CuffModel`, what a cuff reading measures and costs;
* :mod:`bprl.envs.params` -- :class:`EnvParams`, the numeric settings of both environments;
* :mod:`bprl.envs.replay_arrays` -- :class:`ReplayArrays`, :func:`build_replay_arrays`,
  :func:`load_replay_arrays` (cached per process);
* :mod:`bprl.envs.replay_sets` -- the built-in default replay set and replay sets of virtual
  cohorts, built once and cached;
* :mod:`bprl.envs.calibration_env` -- :class:`BPCalibrationEnv`, one subject at a time;
* :mod:`bprl.envs.vector_env` -- :class:`BPCalibrationVectorEnv`, many at once, bit-identical;
* :mod:`bprl.envs.randomization` -- :class:`DomainRandomization`, perturbed training episodes
  (timing-offset steps, estimator gain, offset, noise and dropouts);
* :mod:`bprl.envs.specs` -- env specs (``envs/*.yaml``): :func:`make_env_from_spec`;
* :mod:`bprl.envs.registration` -- the Gymnasium ids :data:`ENV_ID`, :data:`ENV_ID_CONTINUOUS`;
* :mod:`bprl.envs.synthetic` -- :func:`synthetic_replay_tables` for tests and examples.

>>> import gymnasium
>>> from bprl.envs import ENV_ID, synthetic_replay_tables
>>> env = gymnasium.make(ENV_ID, tables=synthetic_replay_tables(n_subjects=2, n_steps=10))
>>> obs, info = env.reset(seed=1)
>>> env.observation_space.contains(obs)
True
"""

from __future__ import annotations

from bprl.envs.actions import ACTION_TYPES, CONTINUOUS_ACTIONS, DISCRETE_ACTIONS
from bprl.envs.calibration_env import BPCalibrationEnv
from bprl.envs.cuff import CuffModel, cuff_reference
from bprl.envs.observation import (
    DBP_C,
    DBP_S,
    DEFAULT_FEATURES,
    FEATURE_NORMALIZATION,
    N_STATE,
    OBS_CLIP,
    PRIOR_DBP_MMHG,
    PRIOR_SBP_MMHG,
    SBP_C,
    SBP_S,
    STATE_FIELDS,
    decode_obs,
    make_spaces,
)
from bprl.envs.params import RECALIBRATION_MODES, START_MODES, EnvParams, params_dict
from bprl.envs.randomization import DomainRandomization, DomainRandomizationSpec
from bprl.envs.registration import (
    ENV_ID,
    ENV_ID_CONTINUOUS,
    ENV_IDS,
    register_envs,
    register_variant,
)
from bprl.envs.replay_arrays import ReplayArrays, SubjectSeries, build_replay_arrays, load_replay_arrays
from bprl.envs.replay_sets import (
    DEFAULT_DATA,
    build_cohort_replay_set,
    cache_dir,
    default_replay_set,
    replay_set_for_cohort,
)
from bprl.envs.rewards import (
    ENTRY_POINT_GROUP as REWARD_ENTRY_POINT_GROUP,
)
from bprl.envs.rewards import (
    REWARDS,
    RewardEntry,
    RewardFunction,
    check_reward,
    known_rewards,
    resolve_reward,
)
from bprl.envs.specs import SPEC_FIELDS, EnvSpec, env_kwargs_from_spec, load_env_spec, make_env_from_spec
from bprl.envs.synthetic import synthetic_replay_tables
from bprl.envs.vector_env import BPCalibrationVectorEnv
from bprl.errors import InvalidActionError

__all__ = [
    "ACTION_TYPES",
    "CONTINUOUS_ACTIONS",
    "DBP_C",
    "DBP_S",
    "DEFAULT_DATA",
    "DEFAULT_FEATURES",
    "DISCRETE_ACTIONS",
    "ENV_ID",
    "ENV_IDS",
    "ENV_ID_CONTINUOUS",
    "FEATURE_NORMALIZATION",
    "N_STATE",
    "OBS_CLIP",
    "PRIOR_DBP_MMHG",
    "PRIOR_SBP_MMHG",
    "RECALIBRATION_MODES",
    "REWARDS",
    "REWARD_ENTRY_POINT_GROUP",
    "SBP_C",
    "SBP_S",
    "SPEC_FIELDS",
    "START_MODES",
    "STATE_FIELDS",
    "BPCalibrationEnv",
    "BPCalibrationVectorEnv",
    "CuffModel",
    "DomainRandomization",
    "DomainRandomizationSpec",
    "EnvParams",
    "EnvSpec",
    "InvalidActionError",
    "ReplayArrays",
    "RewardEntry",
    "RewardFunction",
    "SubjectSeries",
    "build_cohort_replay_set",
    "build_replay_arrays",
    "cache_dir",
    "check_reward",
    "cuff_reference",
    "decode_obs",
    "default_replay_set",
    "env_kwargs_from_spec",
    "known_rewards",
    "load_env_spec",
    "load_replay_arrays",
    "make_env_from_spec",
    "make_spaces",
    "params_dict",
    "register_envs",
    "register_variant",
    "replay_set_for_cohort",
    "resolve_reward",
    "synthetic_replay_tables",
]
