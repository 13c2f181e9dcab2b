"""Deprecated: the calibration environments moved to :mod:`bprl.envs`.

``bprl.env`` is a thin shim kept so that old imports keep working: it warns on import and
re-exports the old names from their new homes (:mod:`bprl.envs.observation`,
:mod:`bprl.envs.actions`, :mod:`bprl.envs.rewards`, :mod:`bprl.envs.cuff`,
:mod:`bprl.envs.params`, :mod:`bprl.envs.replay_arrays`, :mod:`bprl.envs.replay_sets`,
:mod:`bprl.envs.calibration_env`, :mod:`bprl.envs.specs`, :mod:`bprl.envs.registration`,
:mod:`bprl.envs.synthetic`; :class:`~bprl.errors.InvalidActionError` from :mod:`bprl.errors`).
Import from :mod:`bprl.envs` instead.
"""

from __future__ import annotations

from bprl._deprecation import warn_moved
from bprl.envs.actions import ACTION_TYPES, CONTINUOUS_ACTIONS, DISCRETE_ACTIONS
from bprl.envs.calibration_env import BPCalibrationEnv
from bprl.envs.cuff import CuffModel
from bprl.envs.cuff import cuff_reference as _cuff_reference  # noqa: F401  (old private name)
from bprl.envs.observation import (  # noqa: F401  (old private names)
    _DECODE_CENTRE,
    _DECODE_SCALE,
    _STATE_DECODE,
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
from bprl.envs.observation import clip_obs as _clip  # noqa: F401  (old private name)
from bprl.envs.params import RECALIBRATION_MODES, START_MODES, EnvParams, params_dict
from bprl.envs.registration import ENV_ID, ENV_ID_CONTINUOUS, register_envs
from bprl.envs.replay_arrays import (  # noqa: F401  (old private names)
    _ARRAY_CACHE,
    ReplayArrays,
    _ffill,
    _open_replay_set,
    build_replay_arrays,
    load_replay_arrays,
)
from bprl.envs.replay_sets import (  # noqa: F401  (old private names)
    DEFAULT_DATA,
    _replace_dir,
    _reusable_replay_set,
    build_cohort_replay_set,
    cache_dir,
    default_replay_set,
    replay_set_for_cohort,
)
from bprl.envs.rewards import REWARDS, check_reward
from bprl.envs.specs import (  # noqa: F401  (old private name)
    _ACTION_FIELDS,
    SPEC_FIELDS,
    env_kwargs_from_spec,
    load_env_spec,
    make_env_from_spec,
)
from bprl.envs.synthetic import synthetic_replay_tables
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
    "ENV_ID_CONTINUOUS",
    "FEATURE_NORMALIZATION",
    "N_STATE",
    "OBS_CLIP",
    "PRIOR_DBP_MMHG",
    "PRIOR_SBP_MMHG",
    "RECALIBRATION_MODES",
    "REWARDS",
    "SBP_C",
    "SBP_S",
    "SPEC_FIELDS",
    "START_MODES",
    "STATE_FIELDS",
    "BPCalibrationEnv",
    "CuffModel",
    "EnvParams",
    "InvalidActionError",
    "ReplayArrays",
    "build_cohort_replay_set",
    "build_replay_arrays",
    "cache_dir",
    "check_reward",
    "decode_obs",
    "default_replay_set",
    "env_kwargs_from_spec",
    "load_env_spec",
    "load_replay_arrays",
    "make_env_from_spec",
    "make_spaces",
    "params_dict",
    "register_envs",
    "replay_set_for_cohort",
    "synthetic_replay_tables",
]

warn_moved("bprl.env", "bprl.envs")
