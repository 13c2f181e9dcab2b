"""Gymnasium environments in which a policy calibrates a cuffless BP estimator for one subject.

The environments replay *replay tables* (:mod:`bprl.tables`): one row per step (typically a 30-s
window) with PAT/HR/PPG features, the population estimator's SBP/DBP and the arterial reference.
All tables are turned once into padded 2-D numpy arrays (:class:`ReplayArrays`), so that a step
is a handful of array look-ups; :class:`BPCalibrationEnv` steps one subject, and
:class:`bprl.vector_env.BPCalibrationVectorEnv` steps many at once with the same semantics.

Public API: :class:`BPCalibrationEnv`, :class:`CuffModel`, :func:`load_replay_arrays`,
:func:`make_env_from_spec`, :func:`load_env_spec`, :func:`register_envs`, :func:`decode_obs`,
:data:`REWARDS`, :data:`STATE_FIELDS`, :data:`DEFAULT_FEATURES`, :data:`FEATURE_NORMALIZATION`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from bprl.cache_versions import STAMP_KEY, cache_versions, log_rebuild, stale_reason
from bprl.errors import BprlError, ConfigError
from bprl.tables import (
    REPLAY_ESTIMATE,
    REPLAY_FEATURES,
    REPLAY_SET_INDEX,
    ReplaySet,
    make_temp_dir,
    read_replay_set,
)

ENV_ID = "bprl/BPCalibration-v0"
ENV_ID_CONTINUOUS = "bprl/BPCalibrationContinuous-v0"

# ------------------------------------------------------------------ observation layout
#: features shown to the policy by default (a subset of bprl.tables.REPLAY_FEATURES)
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
    "budget_left",  # share of the cuff budget left (1 when unlimited)
)
N_STATE = len(STATE_FIELDS)
OBS_CLIP = 10.0
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
}


_DECODE_CENTRE = np.array([_STATE_DECODE.get(n, (0.0, 1.0))[0] for n in STATE_FIELDS])
_DECODE_SCALE = np.array([_STATE_DECODE.get(n, (0.0, 1.0))[1] for n in STATE_FIELDS])


def decode_obs(obs: np.ndarray) -> dict[str, np.ndarray]:
    """Calibration state of an observation (or a batch, last axis = observation) in physical units.

    Keys are :data:`STATE_FIELDS`: BP values in mmHg, gains as factors, times in hours, PAT in ms,
    HR in bpm, ``cuffs_used`` as a count, flags as 0/1. Works for any feature selection because the
    state block is always the tail of the observation.
    """
    vals = np.asarray(obs, dtype=np.float64)[..., -N_STATE:] * _DECODE_SCALE + _DECODE_CENTRE
    return {name: vals[..., i] for i, name in enumerate(STATE_FIELDS)}


# ------------------------------------------------------------------------- rewards
#: reward name -> description (the step reward is computed in BPCalibrationEnv._reward / the vector env)
REWARDS: dict[str, str] = {
    "mae": "-(|SBP err| + |DBP err|) / scale_mmhg on steps with a reference",
    "squared": "-(SBP err^2 + DBP err^2) / scale_mmhg^2 on steps with a reference",
    "aami_band": "-(number of SBP/DBP errors outside +-band_mmhg) on steps with a reference",
}


def check_reward(name: str) -> str:
    """Return ``name`` if it is a known reward, else raise ConfigError listing the valid names."""
    if name not in REWARDS:
        raise ConfigError(f"reward: unknown reward {name!r}; valid names: {sorted(REWARDS)}")
    return name


# ---------------------------------------------------------------------- cuff model
@dataclass(frozen=True)
class CuffModel:
    """Oscillometric cuff: what a requested reading returns and costs.

    A reading taken at step t averages the reference SBP/DBP over the ``duration_s`` seconds ending
    at the end of window t (rows weighted by their overlap with that interval) and adds Gaussian
    error with SD ``sd_sbp_mmhg`` / ``sd_dbp_mmhg`` (defaults 5 / 4 mmHg, typical of validated
    oscillometric devices against intra-arterial BP; ISO 81060-2 accepts an error SD up to 8 mmHg).
    The reading fails (NaN) when rows with a valid reference cover less than half of the interval;
    a failed attempt still counts against the budget and costs ``cost`` (the cuff still inflated).
    With a ``budget`` (readings per episode), requests beyond it are refused: no reading, no cost.

    Attributes:
        duration_s: measurement duration in seconds (default 45).
        sd_sbp_mmhg: SD of the SBP reading error.
        sd_dbp_mmhg: SD of the DBP reading error.
        cost: reward subtracted per charged request.
        budget: hard limit on charged requests per episode, or None (unlimited).
    """

    duration_s: float = 45.0
    sd_sbp_mmhg: float = 5.0
    sd_dbp_mmhg: float = 4.0
    cost: float = 0.5
    budget: int | None = None

    def __post_init__(self) -> None:
        """Validate the settings (ConfigError naming the field)."""
        for name in ("duration_s", "sd_sbp_mmhg", "sd_dbp_mmhg", "cost"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"cuff.{name}: must be a finite number >= 0, got {v!r}")
        if self.duration_s <= 0:
            raise ConfigError(f"cuff.duration_s: must be > 0, got {self.duration_s!r}")
        if self.budget is not None and (
            isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 0
        ):
            raise ConfigError(f"cuff.budget: must be an integer >= 0 or null, got {self.budget!r}")

    @classmethod
    def from_any(cls, value: CuffModel | Mapping[str, Any] | None) -> CuffModel:
        """A CuffModel from an instance, a mapping of its fields, or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, CuffModel):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"cuff: expected a mapping of cuff settings, got {type(value).__name__}")
        unknown = sorted(set(value) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"cuff: unknown field(s) {unknown}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**dict(value))


# ------------------------------------------------------------------- replay arrays
@dataclass
class ReplayArrays:
    """Replay tables of several subjects padded into 2-D arrays (subject x step).

    Everything the environments need per step is precomputed here; NaN features are carried
    forward (the last valid value) with a validity flag, so no NaN reaches an observation.

    Attributes:
        subject_ids: subject ids, row order of the arrays.
        features: feature columns shown in the observation.
        lengths: number of steps per subject.
        feat_obs: (S, T, 2F) float32, normalised carried features then their validity flags.
        est: (S, T, 2) raw estimator SBP/DBP (NaN where the estimator gave none).
        est_carry: (S, T, 2) estimator SBP/DBP carried forward (population prior before the first).
        est_valid: (S, T) 1.0 where the estimator gave a value.
        ref: (S, T, 2) reference SBP/DBP (NaN where none). Privileged: never observed directly.
        cuff_ref: (S, T, 2) overlap-weighted reference over the cuff interval ending at each step
            (NaN where a reading fails). Privileged.
        pat_carry, hr_carry: (S, T) PAT foot (ms) and HR (bpm) carried forward (NaN before the first).
        t_start_s, t_end_s: (S, T) window times.
        cuff_duration_s: the cuff duration ``cuff_ref`` was computed for.
    """

    subject_ids: list[str]
    features: tuple[str, ...]
    lengths: np.ndarray
    feat_obs: np.ndarray
    est: np.ndarray
    est_carry: np.ndarray
    est_valid: np.ndarray
    ref: np.ndarray
    cuff_ref: np.ndarray
    pat_carry: np.ndarray
    hr_carry: np.ndarray
    t_start_s: np.ndarray
    t_end_s: np.ndarray
    cuff_duration_s: float
    source: str = ""
    _lists: dict[int, dict[str, list]] = field(default_factory=dict, repr=False)

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return len(self.subject_ids)

    def episode_lists(self, i: int) -> dict[str, list]:
        """Python lists of one subject's per-step scalars (cached; fast scalar access in step())."""
        got = self._lists.get(i)
        if got is None:
            n = int(self.lengths[i])
            got = {
                "est_s": self.est[i, :n, 0].tolist(),
                "est_d": self.est[i, :n, 1].tolist(),
                "ec_s": self.est_carry[i, :n, 0].tolist(),
                "ec_d": self.est_carry[i, :n, 1].tolist(),
                "ev": self.est_valid[i, :n].tolist(),
                "ref_s": self.ref[i, :n, 0].tolist(),
                "ref_d": self.ref[i, :n, 1].tolist(),
                "cr_s": self.cuff_ref[i, :n, 0].tolist(),
                "cr_d": self.cuff_ref[i, :n, 1].tolist(),
                "pat": self.pat_carry[i, :n].tolist(),
                "hr": self.hr_carry[i, :n].tolist(),
                "t0": self.t_start_s[i, :n].tolist(),
                "t1": self.t_end_s[i, :n].tolist(),
            }
            if len(self._lists) >= 512:  # bound the memory of very large replay sets
                self._lists.clear()
            self._lists[i] = got
        return got


def _cuff_reference(ref: np.ndarray, t0: np.ndarray, t1: np.ndarray, duration_s: float) -> np.ndarray:
    """Overlap-weighted mean reference over [t1[t] - duration, t1[t]] for every step t of one subject."""
    n = len(t1)
    out = np.full((n, 2), np.nan)
    if n == 0:
        return out
    lo = t1 - duration_s
    cover = np.zeros(n)
    valid_w = np.zeros(n)
    acc = np.zeros((n, 2))
    finite = np.isfinite(ref).all(axis=1)
    for k in range(n):  # lag k: row t-k against the interval of row t; stops when no row overlaps
        idx = np.arange(k, n)
        j = idx - k
        ov = np.clip(np.minimum(t1[j], t1[idx]) - np.maximum(t0[j], lo[idx]), 0.0, None)
        if not ov.any():
            if k > 0:
                break
            continue
        cover[idx] += ov
        w = np.where(finite[j], ov, 0.0)
        valid_w[idx] += w
        acc[idx] += w[:, None] * np.where(finite[j, None], ref[j], 0.0)
    ok = (cover > 0) & (valid_w >= 0.5 * cover) & (valid_w > 0)
    out[ok] = acc[ok] / valid_w[ok, None]
    return out


def _ffill(x: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along axis 0 (leading NaN stay NaN)."""
    return pd.DataFrame(x).ffill().to_numpy(copy=True)


def build_replay_arrays(
    tables: Mapping[str, pd.DataFrame],
    features: Sequence[str] = DEFAULT_FEATURES,
    cuff_duration_s: float = 45.0,
    source: str = "",
) -> ReplayArrays:
    """Turn replay tables (subject id -> table) into padded :class:`ReplayArrays`.

    Raises ConfigError for unknown features and a BprlError naming the subject when a table lacks
    columns or has no rows.
    """
    features = tuple(features)
    bad = [f for f in features if f not in REPLAY_FEATURES]
    if bad:
        raise ConfigError(f"features: unknown feature(s) {bad}; valid: {list(REPLAY_FEATURES)}")
    if not features:
        raise ConfigError("features: at least one feature is needed")
    if not tables:
        raise ConfigError(f"{source or 'tables'}: no subjects to replay")
    need = ["t_start_s", "t_end_s", "pat_foot_ms", "hr_bpm", "ref_sbp_mmhg", "ref_dbp_mmhg"]
    need += list(REPLAY_ESTIMATE) + [f for f in features if f not in need]
    sids = list(tables)
    tmax = 0
    for sid in sids:
        df = tables[sid]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise BprlError(f"{source or 'replay table'} subject {sid!r}: missing columns {missing}")
        if len(df) == 0:
            raise BprlError(f"{source or 'replay table'} subject {sid!r}: replay table has no rows")
        tmax = max(tmax, len(df))
    s, nf = len(sids), len(features)
    centre = np.array([FEATURE_NORMALIZATION[f][0] for f in features])
    scale = np.array([FEATURE_NORMALIZATION[f][1] for f in features])
    feat_obs = np.zeros((s, tmax, 2 * nf), np.float32)
    est = np.full((s, tmax, 2), np.nan)
    est_carry = np.full((s, tmax, 2), np.nan)
    est_valid = np.zeros((s, tmax))
    ref = np.full((s, tmax, 2), np.nan)
    cuff_ref = np.full((s, tmax, 2), np.nan)
    pat = np.full((s, tmax), np.nan)
    hr = np.full((s, tmax), np.nan)
    t0 = np.zeros((s, tmax))
    t1 = np.zeros((s, tmax))
    lengths = np.zeros(s, np.int64)
    for i, sid in enumerate(sids):
        df = tables[sid]
        if "step" in df.columns:
            df = df.sort_values("step", kind="stable")
        n = len(df)
        lengths[i] = n
        x = df[list(features)].to_numpy(np.float64)
        valid = np.isfinite(x)
        xn = (_ffill(np.where(valid, x, np.nan)) - centre) / scale
        xn = np.clip(np.nan_to_num(xn, nan=0.0), -OBS_CLIP, OBS_CLIP)
        feat_obs[i, :n, :nf] = xn
        feat_obs[i, :n, nf:] = valid
        e = df[list(REPLAY_ESTIMATE)].to_numpy(np.float64, copy=True)
        e[~np.isfinite(e)] = np.nan
        est[i, :n] = e
        ec = _ffill(e)
        ec[:, 0] = np.where(np.isnan(ec[:, 0]), PRIOR_SBP_MMHG, ec[:, 0])
        ec[:, 1] = np.where(np.isnan(ec[:, 1]), PRIOR_DBP_MMHG, ec[:, 1])
        est_carry[i, :n] = ec
        est_valid[i, :n] = np.isfinite(e).all(axis=1)
        r = df[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy(np.float64, copy=True)
        r[~np.isfinite(r)] = np.nan
        ref[i, :n] = r
        t0[i, :n] = df["t_start_s"].to_numpy(np.float64)
        t1[i, :n] = df["t_end_s"].to_numpy(np.float64)
        if not (np.isfinite(t0[i, :n]).all() and np.isfinite(t1[i, :n]).all()):
            raise BprlError(f"{source or 'replay table'} subject {sid!r}: non-finite t_start_s/t_end_s")
        cuff_ref[i, :n] = _cuff_reference(r, t0[i, :n], t1[i, :n], cuff_duration_s)
        p = df["pat_foot_ms"].to_numpy(np.float64)
        h = df["hr_bpm"].to_numpy(np.float64)
        pat[i, :n] = _ffill(np.where(np.isfinite(p), p, np.nan)[:, None])[:, 0]
        hr[i, :n] = _ffill(np.where(np.isfinite(h), h, np.nan)[:, None])[:, 0]
    return ReplayArrays(
        subject_ids=[str(x) for x in sids],
        features=features,
        lengths=lengths,
        feat_obs=feat_obs,
        est=est,
        est_carry=est_carry,
        est_valid=est_valid,
        ref=ref,
        cuff_ref=cuff_ref,
        pat_carry=pat,
        hr_carry=hr,
        t_start_s=t0,
        t_end_s=t1,
        cuff_duration_s=float(cuff_duration_s),
        source=source,
    )


_ARRAY_CACHE: dict[tuple, ReplayArrays] = {}


def load_replay_arrays(
    replay_set: str | os.PathLike[str] | ReplaySet | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    split: str | None = "train",
    subject_ids: Sequence[str] | None = None,
    features: Sequence[str] = DEFAULT_FEATURES,
    cuff_duration_s: float = 45.0,
) -> ReplayArrays:
    """Load the subjects of a replay set (folder or :class:`ReplaySet`) or in-memory tables as arrays.

    ``subject_ids`` (when given) overrides ``split``; ``split=None`` takes all subjects. Folder loads
    are cached per process (key: folder, its index file's mtime, subjects, features, cuff duration),
    so many environments over one replay set share memory. With neither source, the built-in default
    replay set is used (:func:`default_replay_set`). Raises ConfigError for an empty selection.
    """
    if tables is not None:
        sids = list(subject_ids) if subject_ids is not None else list(tables)
        missing = [s for s in sids if s not in tables]
        if missing:
            raise ConfigError(f"subject_ids: not in the given tables: {missing}")
        if not sids:
            raise ConfigError("subject_ids: empty selection of subjects")
        return build_replay_arrays({s: tables[s] for s in sids}, features, cuff_duration_s, "tables")
    if replay_set is None:
        replay_set = default_replay_set()
    rs = replay_set if isinstance(replay_set, ReplaySet) else _open_replay_set(replay_set)
    if subject_ids is not None:
        sids = [str(s) for s in subject_ids]
        if not sids:
            raise ConfigError(f"subject_ids: empty selection of subjects (replay set {rs.root})")
        known = set(rs.subject_ids())
        missing = [s for s in sids if s not in known]
        if missing:
            raise ConfigError(f"subject_ids: not in replay set {rs.root}: {missing}")
    else:
        if (
            split is not None
            and split not in set(rs.subjects["split"].astype(str))
            and split
            not in (
                "train",
                "val",
                "test",
            )
        ):
            raise ConfigError(f"split: unknown split {split!r} (replay set {rs.root})")
        sids = rs.subject_ids(split)
    if not sids:
        raise ConfigError(f"split: no subjects in split {split!r} of replay set {rs.root}")
    index = Path(rs.root) / "subjects.csv"
    mtime = index.stat().st_mtime_ns if index.exists() else 0
    key = (str(Path(rs.root).resolve()), mtime, tuple(sids), tuple(features), float(cuff_duration_s))
    got = _ARRAY_CACHE.get(key)
    if got is None:
        tabs = {}
        for sid in sids:
            try:
                tabs[sid] = rs.table(sid)
            except (OSError, ValueError, KeyError) as exc:
                raise BprlError(f"{rs.root}: cannot read the replay table of {sid!r}: {exc}") from exc
        got = build_replay_arrays(tabs, features, cuff_duration_s, str(rs.root))
        if len(_ARRAY_CACHE) > 32:
            _ARRAY_CACHE.clear()
        _ARRAY_CACHE[key] = got
    return got


def _open_replay_set(path: str | os.PathLike[str]) -> ReplaySet:
    try:
        return read_replay_set(path)
    except ValueError as exc:
        raise ConfigError(f"replay_set: {exc}") from exc


def cache_dir() -> Path:
    """``$BPRL_CACHE_DIR`` or ``~/.cache/bprl``."""
    env = os.environ.get("BPRL_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "bprl"


#: the built-in default data: a small virtual cohort and a PAT-linear estimator
DEFAULT_DATA: dict[str, Any] = {"subjects": 10, "hours": 0.5, "seed": 0, "name": "default_replay_set_v0"}


def default_replay_set() -> Path:
    """The built-in replay set used when an environment is made without data (built once, cached).

    Lives in ``cache_dir() / "default_replay_set_v0"``. On first use a small virtual cohort
    (:data:`DEFAULT_DATA`: 10 subjects x 0.5 h, seed 0) is generated with ``bprl.cohort`` and turned
    into a replay set with the fast population ``PatLinearEstimator`` fitted on its train subjects
    (:func:`build_cohort_replay_set`); this takes about a minute. A cached set built under other
    major versions of numpy, pandas or torch is rebuilt, with a log line saying why
    (:mod:`bprl.cache_versions`). Raises ConfigError when those modules are not available.
    """
    root = cache_dir() / str(DEFAULT_DATA["name"])
    if _reusable_replay_set(root):
        return root
    try:
        import importlib

        for mod in ("bprl.estimator", "bprl.features"):  # checked before the cohort is generated
            importlib.import_module(mod)
        from bprl.cohort import make_cohort
    except ImportError as exc:
        raise ConfigError(
            "no replay data given and the default replay set cannot be built "
            f"(bprl.cohort / bprl.features / bprl.estimator unavailable: {exc}); "
            "pass replay_set=... or tables=..."
        ) from exc
    import tempfile

    base = cache_dir()
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base, prefix=".default-build-") as tmp:
        cohort = make_cohort(
            Path(tmp) / "cohort",
            n_subjects=int(DEFAULT_DATA["subjects"]),
            hours=float(DEFAULT_DATA["hours"]),
            seed=int(DEFAULT_DATA["seed"]),
            progress=False,
        )
        out = Path(tmp) / "replay"
        build_cohort_replay_set(cohort, out, info={"default_data": DEFAULT_DATA})
        if not _reusable_replay_set(root, quiet=True):  # unless another process built it meanwhile
            _replace_dir(out, root)
    return root


def _reusable_replay_set(root: Path, quiet: bool = False) -> bool:
    """Whether the cached replay set at ``root`` exists and was built under this environment's major
    versions of numpy, pandas and torch; a stale one is reported (log line) unless ``quiet``."""
    if not (root / REPLAY_SET_INDEX).is_file():
        return False
    try:
        why = stale_reason(read_replay_set(root).info.get(STAMP_KEY))
    except (OSError, ValueError, AttributeError) as exc:
        why = f"unreadable ({type(exc).__name__}: {exc})"
    if why is not None and not quiet:
        log_rebuild(root, why)
    return why is None


def _replace_dir(new: Path, root: Path) -> None:
    """Move the folder ``new`` to ``root``; an existing ``root`` is moved aside first, then deleted."""
    import shutil
    import uuid

    old = None
    if root.exists():
        old = root.with_name(f".{root.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(root, old)
    root.parent.mkdir(parents=True, exist_ok=True)
    os.replace(new, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_cohort_replay_set(
    cohort_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    info: dict | None = None,
    features_cache: str | os.PathLike[str] | None = None,
) -> Path:
    """Replay set of a virtual cohort with the population ``PatLinearEstimator`` (fitted on its train split).

    Features come from ``bprl.features.build_replay_tables``, cached in ``features_cache`` (default:
    next to ``out_dir``); a subject's records are concatenated in record order (times shifted to
    follow each other). ``replay_set.json`` records ``info`` and the major versions of numpy, pandas
    and torch (:data:`bprl.cache_versions.STAMP_KEY`). Raises ConfigError when the feature or
    estimator modules are unavailable.
    """
    try:
        from bprl.cohort import load_manifest
        from bprl.estimator import PatLinearEstimator
        from bprl.features import build_replay_tables
    except ImportError as exc:
        raise ConfigError(f"cannot build a replay set for cohort {cohort_dir}: {exc}") from exc
    from bprl.tables import concat_records, write_replay_set

    cohort, out = Path(cohort_dir), Path(out_dir)
    manifest = load_manifest(cohort)
    feats = Path(features_cache) if features_cache is not None else out.parent / f".{out.name}-features"
    paths, _skipped = build_replay_tables(cohort / "waves", feats, workers=1, progress=False)
    by_record = {Path(k).stem: v for k, v in paths.items()}
    tables: dict[str, pd.DataFrame] = {}
    splits: dict[str, str] = {}
    for sid, rows in manifest.groupby("subject_id", sort=True):
        rids = [r for r in sorted(rows["record_id"].astype(str)) if r in by_record]
        if rids:
            tables[str(sid)] = concat_records([pd.read_parquet(by_record[r]) for r in rids])
            splits[str(sid)] = str(rows["split"].iloc[0])
    train = [t for s, t in tables.items() if splits[s] == "train"]
    if not train:
        raise ConfigError(f"{cohort}: no train subjects with usable records to fit the estimator")
    est = PatLinearEstimator().fit(train)
    for table in tables.values():
        sbp, dbp = est.predict_table(table)
        table["est_sbp_mmhg"], table["est_dbp_mmhg"] = sbp, dbp
    meta = {"cohort": str(cohort), "estimator": est.to_dict(), **(info or {}), STAMP_KEY: cache_versions()}
    write_replay_set(out, tables, splits, meta)
    return out


# ---------------------------------------------------------------------- the env
class InvalidActionError(BprlError, ValueError):
    """An action outside the environment's action space was passed to ``step``."""


#: discrete actions: index -> meaning
DISCRETE_ACTIONS: tuple[str, ...] = (
    "hold",
    "cuff",  # request a cuff reading and recalibrate the offsets to it
    "sbp_up",  # offset_sbp += nudge_mmhg
    "sbp_down",
    "dbp_up",  # offset_dbp += nudge_mmhg
    "dbp_down",
)
#: continuous action components, each in [-1, 1]
CONTINUOUS_ACTIONS: tuple[str, ...] = ("d_offset_sbp", "d_offset_dbp", "d_gain_sbp", "d_gain_dbp", "cuff")
ACTION_TYPES = ("discrete", "continuous")
START_MODES = ("zero", "random")


#: how a successful cuff reading updates the offsets: "reset" sets them to the reading,
#: "kalman" moves them towards it by a scalar Kalman gain (see BPCalibrationEnv)
RECALIBRATION_MODES: tuple[str, ...] = ("reset", "kalman")


@dataclass(frozen=True)
class EnvParams:
    """Numeric settings shared by the single and the vector environment (see BPCalibrationEnv)."""

    action_type: str = "discrete"
    reward: str = "mae"
    reward_scale_mmhg: float = 10.0
    aami_band_mmhg: float = 5.0
    max_steps: int | None = None
    start: str = "zero"
    nudge_mmhg: float = 2.0
    max_offset_step_mmhg: float = 5.0
    max_gain_step: float = 0.02
    offset_limit_mmhg: float = 80.0
    gain_min: float = 0.5
    gain_max: float = 1.5
    recalibrate_on_cuff: bool = True
    recalibration: str = "reset"
    kalman_q_mmhg2_per_h: float = 16.0

    def __post_init__(self) -> None:
        """Validate (ConfigError naming the field)."""
        if self.action_type not in ACTION_TYPES:
            raise ConfigError(f"action_type: {self.action_type!r} is not one of {ACTION_TYPES}")
        check_reward(self.reward)
        if self.start not in START_MODES:
            raise ConfigError(f"start: {self.start!r} is not one of {START_MODES}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ConfigError(f"max_steps: must be a positive integer or null, got {self.max_steps!r}")
        for name in (
            "reward_scale_mmhg",
            "aami_band_mmhg",
            "nudge_mmhg",
            "max_offset_step_mmhg",
            "max_gain_step",
            "offset_limit_mmhg",
            "gain_min",
            "gain_max",
        ):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{name}: must be a finite number > 0, got {v!r}")
        if self.recalibration not in RECALIBRATION_MODES:
            raise ConfigError(f"recalibration: {self.recalibration!r} is not one of {RECALIBRATION_MODES}")
        q = self.kalman_q_mmhg2_per_h
        if not isinstance(q, int | float) or not math.isfinite(q) or q < 0:
            raise ConfigError(f"kalman_q_mmhg2_per_h: must be a finite number >= 0, got {q!r}")
        if self.gain_min > 1.0 or self.gain_max < 1.0:
            raise ConfigError(f"gain_min/gain_max: must bracket 1.0, got {self.gain_min}/{self.gain_max}")


def make_spaces(n_features: int, action_type: str) -> tuple[spaces.Box, spaces.Space]:
    """Observation and action spaces of an environment with ``n_features`` observed features."""
    dim = 2 * n_features + N_STATE
    obs_space = spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(dim,), dtype=np.float32)
    if action_type == "discrete":
        act_space: spaces.Space = spaces.Discrete(len(DISCRETE_ACTIONS))
    else:
        act_space = spaces.Box(-1.0, 1.0, shape=(len(CONTINUOUS_ACTIONS),), dtype=np.float32)
    return obs_space, act_space


def _clip(x: float) -> float:
    return OBS_CLIP if x > OBS_CLIP else (-OBS_CLIP if x < -OBS_CLIP else x)


class BPCalibrationEnv(gym.Env):
    """Per-subject calibration of a cuffless blood-pressure estimator.

    ## Description

    A population-trained estimator (e.g. the CNN-GRU of :mod:`bprl.estimator`) turns ECG/PPG
    features into SBP/DBP, but every subject has their own bias, which drifts over hours. An episode
    replays one subject's record window by window (one step = one replay-table row, typically a
    30-s window). At each step the policy sees the features, the raw estimate and its calibration
    state, and may adjust the correction ``corrected = gain * estimate + offset`` (separately for
    SBP and DBP) or ask for a cuff reading. The goal: stay close to the arterial reference while
    asking for few cuff readings. The reference BP is never observed, except through the readings
    the policy asked for.

    ## Action Space

    ``bprl/BPCalibration-v0`` (``action_type="discrete"``, for DQN): ``Discrete(6)``

    | action | meaning |
    |---|---|
    | 0 hold | keep the correction |
    | 1 cuff | request a cuff reading; on success set ``offset = reading - gain * estimate`` (SBP and DBP) |
    | 2 / 3 | SBP offset +/- ``nudge_mmhg`` (default 2 mmHg) |
    | 4 / 5 | DBP offset +/- ``nudge_mmhg`` |

    ``bprl/BPCalibrationContinuous-v0`` (``action_type="continuous"``, for PPO): ``Box(-1, 1, (5,))``:
    ``[d_offset_sbp, d_offset_dbp, d_gain_sbp, d_gain_dbp, cuff]``. Offsets change by
    ``a * max_offset_step_mmhg`` (5 mmHg), gains by ``a * max_gain_step`` (0.02); offsets are kept in
    ``+-offset_limit_mmhg`` (80) and gains in ``[gain_min, gain_max]`` (0.5, 1.5). ``cuff > 0``
    requests a reading; on success the offsets are reset to it as in the discrete variant (after the
    gain change; the offset deltas of that step are ignored). With ``recalibrate_on_cuff=False`` a
    reading only updates the observation. An action outside the space raises
    :class:`InvalidActionError`.

    ## Observation Space

    ``Box(-10, 10, (2F + 19,), float32)``, F = number of ``features`` (10 by default). Elements
    ``0 .. F-1``: each feature's last valid value normalised as ``(x - centre) / scale``
    (:data:`FEATURE_NORMALIZATION`; 0 before the first valid value). Elements ``F .. 2F-1``: 1 if
    the feature was valid in this window, else 0. The last 19 elements (:data:`STATE_FIELDS`,
    decoded by :func:`decode_obs`) are: estimator SBP, DBP (last valid value, prior 120/70 mmHg before
    the first), estimator-valid flag, corrected SBP, DBP, offsets, gains, has-cuff flag, new-reading
    flag, hours since the last successful reading, hours since episode start, PAT and HR change
    since the last reading, last reading minus the raw estimate at that time (SBP, DBP), cuff
    requests used, share of the budget left. Everything is clipped to +-10.

    ## Rewards

    Per step, on steps whose window has a reference: ``reward`` selects ``"mae"`` (default,
    ``-(|e_sbp| + |e_dbp|) / reward_scale_mmhg``, scale 10 mmHg), ``"squared"``
    (``-(e_sbp^2 + e_dbp^2) / reward_scale_mmhg^2``) or ``"aami_band"`` (``-1`` for each of SBP and
    DBP outside ``+-aami_band_mmhg``, 5 mmHg), with ``e`` = corrected estimate minus reference after
    the step's action. Steps without a reference contribute 0. Each charged cuff request subtracts
    ``cuff.cost`` (0.5).

    ## Starting State

    Offsets 0, gains 1, no reading. The subject is drawn uniformly from the split with
    ``self.np_random`` (or ``reset(options={"subject_id": ...})``); the first step is 0
    (``start="zero"``) or uniform in the record (``start="random"``; ``options={"start_step": k}``).
    The cuff noise of the episode is drawn at reset (one pair of standard normals per step).

    ## Episode End

    Never terminated; truncated at the end of the record or after ``max_steps`` steps
    (``options={"whole_record": True}`` ignores ``max_steps`` and ``start``).

    ## Arguments

    ``replay_set`` (folder or ReplaySet) or ``tables`` (subject id -> DataFrame), ``split``,
    ``subject_ids``, ``features``, ``action_type``, ``cuff`` (:class:`CuffModel` or mapping),
    ``reward``, ``reward_scale_mmhg``, ``aami_band_mmhg``, ``max_steps``, ``start``, ``nudge_mmhg``,
    ``max_offset_step_mmhg``, ``max_gain_step``, ``offset_limit_mmhg``, ``gain_min``, ``gain_max``,
    ``recalibrate_on_cuff``, ``recalibration`` (``"reset"``: a reading sets the offset to match it;
    ``"kalman"``: scalar Kalman update of the offset towards it, process noise
    ``kalman_q_mmhg2_per_h`` (16) per hour, measurement noise the cuff variance; see
    ``_kalman_offsets``). Without data, the built-in default replay set is used.

    ``info`` per step: ``subject_id, step, t_s, est_sbp_mmhg, est_dbp_mmhg, corr_sbp_mmhg,
    corr_dbp_mmhg, ref_sbp_mmhg, ref_dbp_mmhg, cuff, cuff_failed, cuff_refused, cuff_sbp_mmhg,
    cuff_dbp_mmhg, cuffs_used, offset_sbp_mmhg, offset_dbp_mmhg, gain_sbp, gain_dbp`` (mmHg as
    floats; ``None`` where a value is absent: no estimate, no reference, no reading, so that
    ``info`` compares equal across identical runs; the episode log turns ``None`` into NaN).

    ## Version History

    * v0: initial version; ``recalibration: kalman`` added as an option (default ``reset`` keeps
      the original behaviour, so the id stays v0).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        replay_set: str | os.PathLike[str] | ReplaySet | None = None,
        tables: Mapping[str, pd.DataFrame] | None = None,
        split: str | None = "train",
        subject_ids: Sequence[str] | None = None,
        features: Sequence[str] = DEFAULT_FEATURES,
        action_type: str = "discrete",
        cuff: CuffModel | Mapping[str, Any] | None = None,
        reward: str = "mae",
        reward_scale_mmhg: float = 10.0,
        aami_band_mmhg: float = 5.0,
        max_steps: int | None = None,
        start: str = "zero",
        nudge_mmhg: float = 2.0,
        max_offset_step_mmhg: float = 5.0,
        max_gain_step: float = 0.02,
        offset_limit_mmhg: float = 80.0,
        gain_min: float = 0.5,
        gain_max: float = 1.5,
        recalibrate_on_cuff: bool = True,
        recalibration: str = "reset",
        kalman_q_mmhg2_per_h: float = 16.0,
        render_mode: str | None = None,
        data: ReplayArrays | None = None,
    ) -> None:
        """Create the environment; see the class docstring for the arguments."""
        super().__init__()
        self.params = EnvParams(
            action_type=action_type,
            reward=reward,
            reward_scale_mmhg=reward_scale_mmhg,
            aami_band_mmhg=aami_band_mmhg,
            max_steps=max_steps,
            start=start,
            nudge_mmhg=nudge_mmhg,
            max_offset_step_mmhg=max_offset_step_mmhg,
            max_gain_step=max_gain_step,
            offset_limit_mmhg=offset_limit_mmhg,
            gain_min=gain_min,
            gain_max=gain_max,
            recalibrate_on_cuff=recalibrate_on_cuff,
            recalibration=recalibration,
            kalman_q_mmhg2_per_h=kalman_q_mmhg2_per_h,
        )
        self.cuff = CuffModel.from_any(cuff)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode: {render_mode!r} not in {self.metadata['render_modes']}")
        self.render_mode = render_mode
        if data is None:
            data = load_replay_arrays(replay_set, tables, split, subject_ids, features, self.cuff.duration_s)
        self.data = data
        self.observation_space, self.action_space = make_spaces(len(data.features), action_type)
        self._discrete = action_type == "discrete"
        self._nf2 = 2 * len(data.features)
        self._reward_kind = ("mae", "squared", "aami_band").index(reward)
        self._ep: dict[str, list] | None = None
        self._subj = -1
        self._t = 0
        self._end = 0
        self._last_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    @property
    def subject_ids(self) -> list[str]:
        """Subjects this environment draws episodes from."""
        return self.data.subject_ids

    @property
    def subject_id(self) -> str:
        """Subject of the current episode."""
        return self.data.subject_ids[self._subj]

    @property
    def current_step(self) -> int:
        """Replay-table row the next ``step`` acts on."""
        return self._t

    def _obs(self) -> np.ndarray:
        ep = self._ep
        t = min(self._t, self._end - 1)
        es, ed = ep["ec_s"][t], ep["ec_d"][t]
        gs, gd, os_, od = self._gain_s, self._gain_d, self._off_s, self._off_d
        cs, cd = gs * es + os_, gd * ed + od
        t1 = ep["t1"][t]
        if self._has_cuff:
            dp = ep["pat"][t] - self._pat_at
            dh = ep["hr"][t] - self._hr_at
            if dp != dp:
                dp = 0.0
            if dh != dh:
                dh = 0.0
        else:
            dp = dh = 0.0
        budget = self.cuff.budget
        left = 1.0 if budget is None else ((budget - self._used) / budget if budget > 0 else 0.0)
        obs = np.empty(self._nf2 + N_STATE, np.float32)
        obs[: self._nf2] = self.data.feat_obs[self._subj, t]
        obs[self._nf2 :] = (
            _clip((es - SBP_C) / SBP_S),
            _clip((ed - DBP_C) / DBP_S),
            ep["ev"][t],
            _clip((cs - SBP_C) / SBP_S),
            _clip((cd - DBP_C) / DBP_S),
            _clip(os_ / 20.0),
            _clip(od / 20.0),
            _clip((gs - 1.0) / 0.25),
            _clip((gd - 1.0) / 0.25),
            float(self._has_cuff),
            float(self._new_reading),
            _clip((t1 - self._t_cuff) / 3600.0),
            _clip((t1 - self._t_begin) / 3600.0),
            _clip(dp / 20.0),
            _clip(dh / 10.0),
            _clip(self._cme_s / 20.0),
            _clip(self._cme_d / 20.0),
            _clip(self._used / 10.0),
            left,
        )
        return obs

    # --------------------------------------------------------------------- API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode: pick the subject and first step, draw the episode's cuff noise.

        Options: ``subject_id`` (str), ``start_step`` (int), ``whole_record`` (bool: from step 0 to
        the end, ignoring ``max_steps`` and ``start``).
        """
        super().reset(seed=seed)
        options = options or {}
        data, p = self.data, self.params
        sid = options.get("subject_id")
        if sid is None:
            i = int(self.np_random.integers(data.n_subjects))
        else:
            try:
                i = data.subject_ids.index(str(sid))
            except ValueError:
                raise ConfigError(f"reset options: subject_id {sid!r} is not in this environment") from None
        n = int(data.lengths[i])
        whole = bool(options.get("whole_record", False))
        if "start_step" in options:
            t0 = int(options["start_step"])
            if not 0 <= t0 < n:
                raise ConfigError(f"reset options: start_step {t0} outside 0..{n - 1} for subject {sid!r}")
        elif p.start == "random" and not whole:
            t0 = int(self.np_random.integers(n))
        else:
            t0 = 0
        end = n if (whole or p.max_steps is None) else min(n, t0 + p.max_steps)
        self._subj, self._t, self._start, self._end = i, t0, t0, end
        self._ep = data.episode_lists(i)
        noise = self.np_random.standard_normal((end - t0, 2))
        self._noise_s = noise[:, 0].tolist()
        self._noise_d = noise[:, 1].tolist()
        self._off_s = self._off_d = 0.0
        self._gain_s = self._gain_d = 1.0
        self._used = 0
        self._has_cuff = False
        self._new_reading = False
        self._t_begin = self._t_cuff = self._ep["t0"][t0]
        self._pat_at = self._hr_at = 0.0
        self._cme_s = self._cme_d = 0.0
        self._kp_s = self._kp_d = 0.0
        info = {"subject_id": data.subject_ids[i], "step": t0, "t_s": self._ep["t1"][t0]}
        return self._obs(), info

    def _parse_action(self, action: Any) -> tuple[float, float, float, float, bool]:
        p = self.params
        if self._discrete:
            try:
                a = int(action)
            except (TypeError, ValueError):
                raise InvalidActionError(f"action {action!r}: expected an integer in 0..5") from None
            if a != action or not 0 <= a < 6:
                raise InvalidActionError(f"action {action!r}: outside Discrete(6) {DISCRETE_ACTIONS}")
            nd = p.nudge_mmhg
            return (
                nd if a == 2 else (-nd if a == 3 else 0.0),
                nd if a == 4 else (-nd if a == 5 else 0.0),
                0.0,
                0.0,
                a == 1,
            )
        try:
            v = action.tolist() if isinstance(action, np.ndarray) else [float(x) for x in action]
            ok = len(v) == 5 and all(-1.000001 <= x <= 1.000001 for x in v)  # NaN fails too
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidActionError(
                f"action {action!r}: expected shape (5,) with values in [-1, 1] {CONTINUOUS_ACTIONS}"
            )
        return (
            v[0] * p.max_offset_step_mmhg,
            v[1] * p.max_offset_step_mmhg,
            v[2] * p.max_gain_step,
            v[3] * p.max_gain_step,
            v[4] > 0.0,
        )

    def _kalman_offsets(self, ns: float, nd: float, os_: float, od: float, t1: float) -> tuple[float, float]:
        """Kalman update of the offsets towards the reading-matching offsets ``ns``, ``nd``.

        The offset error variance P (SBP, DBP) grows by ``kalman_q_mmhg2_per_h`` per hour since the
        last reading; gain K = P / (P + R) with R the cuff variance; offset += K (match - offset),
        P = (1 - K) P. The first reading of an episode has K = 1 and leaves P = R.
        """
        rs2, rd2 = self.cuff.sd_sbp_mmhg**2, self.cuff.sd_dbp_mmhg**2
        if not self._has_cuff:
            ks = kd = 1.0
            self._kp_s, self._kp_d = rs2, rd2
        else:
            grow = self.params.kalman_q_mmhg2_per_h * ((t1 - self._t_cuff) / 3600.0)
            ps, pd = self._kp_s + grow, self._kp_d + grow
            ks, kd = ps / (ps + rs2), pd / (pd + rd2)
            self._kp_s, self._kp_d = (1.0 - ks) * ps, (1.0 - kd) * pd
        return os_ + ks * (ns - os_), od + kd * (nd - od)

    def step(self, action: Any):
        """Apply ``action`` to the current window, score it, and move to the next window."""
        if self._ep is None:
            raise ConfigError("step() called before reset()")
        if self._t >= self._end:
            raise ConfigError("step() called after the episode ended; call reset()")
        dos, dod, dgs, dgd, want = self._parse_action(action)
        p, cuff, ep, t = self.params, self.cuff, self._ep, self._t
        lim = p.offset_limit_mmhg
        gs = min(max(self._gain_s + dgs, p.gain_min), p.gain_max)
        gd = min(max(self._gain_d + dgd, p.gain_min), p.gain_max)
        os_ = min(max(self._off_s + dos, -lim), lim)
        od = min(max(self._off_d + dod, -lim), lim)
        es, ed = ep["ec_s"][t], ep["ec_d"][t]
        reward = 0.0
        failed = refused = False
        rs = rd = math.nan
        self._new_reading = False
        if want:
            if cuff.budget is not None and self._used >= cuff.budget:
                refused = True
                want = False
            else:
                self._used += 1
                reward -= cuff.cost
                k = t - self._start
                rs = ep["cr_s"][t] + cuff.sd_sbp_mmhg * self._noise_s[k]
                rd = ep["cr_d"][t] + cuff.sd_dbp_mmhg * self._noise_d[k]
                if rs != rs or rd != rd:
                    failed = True
                    rs = rd = math.nan
                else:
                    if p.recalibrate_on_cuff:
                        ns, nd = rs - gs * es, rd - gd * ed  # offsets that match the reading
                        if p.recalibration == "kalman":
                            ns, nd = self._kalman_offsets(ns, nd, os_, od, ep["t1"][t])
                        os_ = min(max(ns, -lim), lim)
                        od = min(max(nd, -lim), lim)
                    self._has_cuff = True
                    self._new_reading = True
                    self._t_cuff = ep["t1"][t]
                    self._pat_at, self._hr_at = ep["pat"][t], ep["hr"][t]
                    self._cme_s, self._cme_d = rs - es, rd - ed
        self._gain_s, self._gain_d, self._off_s, self._off_d = gs, gd, os_, od
        cs, cd = gs * es + os_, gd * ed + od
        refs, refd = ep["ref_s"][t], ep["ref_d"][t]
        kind = self._reward_kind
        for c, r in ((cs, refs), (cd, refd)):
            if r == r:
                e = c - r
                if kind == 0:
                    reward -= abs(e) / p.reward_scale_mmhg
                elif kind == 1:
                    reward -= (e * e) / (p.reward_scale_mmhg * p.reward_scale_mmhg)
                elif abs(e) > p.aami_band_mmhg:
                    reward -= 1.0
        es_raw, ed_raw = ep["est_s"][t], ep["est_d"][t]
        info = {
            "subject_id": self.data.subject_ids[self._subj],
            "step": t,
            "t_s": ep["t1"][t],
            "est_sbp_mmhg": es_raw if es_raw == es_raw else None,
            "est_dbp_mmhg": ed_raw if ed_raw == ed_raw else None,
            "corr_sbp_mmhg": cs,
            "corr_dbp_mmhg": cd,
            "ref_sbp_mmhg": refs if refs == refs else None,
            "ref_dbp_mmhg": refd if refd == refd else None,
            "cuff": want,
            "cuff_failed": failed,
            "cuff_refused": refused,
            "cuff_sbp_mmhg": rs if rs == rs else None,
            "cuff_dbp_mmhg": rd if rd == rd else None,
            "cuffs_used": self._used,
            "offset_sbp_mmhg": os_,
            "offset_dbp_mmhg": od,
            "gain_sbp": gs,
            "gain_dbp": gd,
        }
        self._last_info = info
        self._t = t + 1
        truncated = self._t >= self._end
        return self._obs(), reward, False, truncated, info

    def render(self) -> str | None:
        """``render_mode="ansi"``: one text line with the last step's estimate, reference and cuff."""
        if self.render_mode != "ansi":
            return None
        i = self._last_info
        if not i:
            return f"{self.subject_id} step {self._t}: no step yet"

        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.1f}"

        return (
            f"{i['subject_id']} step {i['step']} t={i['t_s']:.0f}s corr {f(i['corr_sbp_mmhg'])}/"
            f"{f(i['corr_dbp_mmhg'])} ref {f(i['ref_sbp_mmhg'])}/{f(i['ref_dbp_mmhg'])} mmHg"
            + (f" cuff {f(i['cuff_sbp_mmhg'])}/{f(i['cuff_dbp_mmhg'])}" if i["cuff"] else "")
        )

    def reference_now(self) -> tuple[float, float, float, float]:
        """PRIVILEGED: (ref SBP, ref DBP, carried estimator SBP, DBP) of the current window.

        Only :class:`bprl.calibrators.OracleCalibrator` (an upper bound, bound explicitly with
        ``bind(env)``) may call this; no observation contains it.
        """
        ep, t = self._ep, min(self._t, self._end - 1)
        if ep is None:
            raise ConfigError("reference_now() called before reset()")
        return ep["ref_s"][t], ep["ref_d"][t], ep["ec_s"][t], ep["ec_d"][t]


# ---------------------------------------------------------------- env specs (YAML)
#: top-level fields of an env spec (envs/*.yaml) and their meaning
SPEC_FIELDS: dict[str, str] = {
    "id": "registered id this spec is a variant of (informational; sets action_type when given)",
    "description": "free text",
    "replay_set": "replay-set folder (relative paths: to the YAML file, else the working directory)",
    "cohort": "virtual-cohort folder; its replay set is built once with PatLinearEstimator and cached",
    "split": "train / val / test (make_env_from_spec's split argument overrides it)",
    "subject_ids": "explicit subject list (overrides split)",
    "features": "observed feature columns",
    "action_type": "discrete or continuous",
    "cuff": "CuffModel fields: duration_s, sd_sbp_mmhg, sd_dbp_mmhg, cost, budget",
    "reward": "reward name, or {name, scale_mmhg, band_mmhg}",
    "max_steps": "step limit per episode (null: whole record)",
    "start": "zero or random",
    "actions": "nudge_mmhg, max_offset_step_mmhg, max_gain_step, offset_limit_mmhg, gain_min, gain_max, "
    "recalibrate_on_cuff, recalibration, kalman_q_mmhg2_per_h",
}
_ACTION_FIELDS = (
    "nudge_mmhg",
    "max_offset_step_mmhg",
    "max_gain_step",
    "offset_limit_mmhg",
    "gain_min",
    "gain_max",
    "recalibrate_on_cuff",
    "recalibration",
    "kalman_q_mmhg2_per_h",
)


def load_env_spec(path_or_dict: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Read an env spec (YAML file or mapping) and check its top-level fields (ConfigError naming them)."""
    import yaml

    base: Path | None = None
    if isinstance(path_or_dict, Mapping):
        spec = dict(path_or_dict)
    else:
        path = Path(path_or_dict)
        if not path.is_file():
            raise ConfigError(f"{path}: env spec file not found")
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: an env spec must be a mapping, got {type(spec).__name__}")
        base = path.parent
        spec["_path"] = str(path)
    unknown = sorted(k for k in spec if k not in SPEC_FIELDS and k != "_path")
    if unknown:
        where = spec.get("_path", "env spec")
        raise ConfigError(f"{where}: unknown field(s) {unknown}; valid: {sorted(SPEC_FIELDS)}")
    for key in ("replay_set", "cohort"):
        if spec.get(key) is not None and base is not None:
            p = Path(os.path.expandvars(str(spec[key]))).expanduser()
            if not p.is_absolute() and (base / p).exists():
                spec[key] = str(base / p)
    return spec


def env_kwargs_from_spec(
    spec: Mapping[str, Any], split: str | None = "train", **overrides: Any
) -> dict[str, Any]:
    """Translate a checked spec plus overrides into BPCalibrationEnv keyword arguments."""
    spec = dict(spec)
    where = spec.pop("_path", "env spec")
    for k, v in overrides.items():
        if k in ("cuff", "actions") and isinstance(v, Mapping) and isinstance(spec.get(k), Mapping):
            spec[k] = {**spec[k], **v}
        else:
            spec[k] = v
    kw: dict[str, Any] = {}
    env_id = spec.get("id")
    if env_id is not None:
        if env_id not in (ENV_ID, ENV_ID_CONTINUOUS):
            raise ConfigError(f"{where}: id: unknown env id {env_id!r}; valid: {[ENV_ID, ENV_ID_CONTINUOUS]}")
        kw["action_type"] = "discrete" if env_id == ENV_ID else "continuous"
    if "action_type" in spec:
        kw["action_type"] = spec["action_type"]
    if spec.get("replay_set") is not None and spec.get("cohort") is not None:
        raise ConfigError(f"{where}: give either replay_set or cohort, not both")
    if spec.get("replay_set") is not None:
        kw["replay_set"] = os.path.expandvars(str(spec["replay_set"]))
    elif spec.get("cohort") is not None:
        kw["replay_set"] = replay_set_for_cohort(spec["cohort"])
    if "tables" in spec:
        kw["tables"] = spec["tables"]
    kw["split"] = spec.get("split", split) if split is None else split
    if spec.get("subject_ids") is not None:
        kw["subject_ids"] = [str(s) for s in spec["subject_ids"]]
    if spec.get("features") is not None:
        if not isinstance(spec["features"], list | tuple):
            raise ConfigError(f"{where}: features: expected a list of feature names")
        kw["features"] = tuple(spec["features"])
    if spec.get("cuff") is not None:
        kw["cuff"] = spec["cuff"]
    reward = spec.get("reward")
    if isinstance(reward, Mapping):
        unknown = sorted(set(reward) - {"name", "scale_mmhg", "band_mmhg"})
        if unknown:
            raise ConfigError(
                f"{where}: reward: unknown field(s) {unknown}; valid: name, scale_mmhg, band_mmhg"
            )
        kw["reward"] = reward.get("name", "mae")
        if "scale_mmhg" in reward:
            kw["reward_scale_mmhg"] = reward["scale_mmhg"]
        if "band_mmhg" in reward:
            kw["aami_band_mmhg"] = reward["band_mmhg"]
    elif reward is not None:
        kw["reward"] = reward
    if "reward" in kw:
        try:
            check_reward(kw["reward"])
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if "max_steps" in spec:
        kw["max_steps"] = spec["max_steps"]
    if spec.get("start") is not None:
        kw["start"] = spec["start"]
    actions = spec.get("actions") or {}
    if not isinstance(actions, Mapping):
        raise ConfigError(f"{where}: actions: expected a mapping")
    unknown = sorted(set(actions) - set(_ACTION_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: actions: unknown field(s) {unknown}; valid: {list(_ACTION_FIELDS)}")
    kw.update(actions)
    for k in (
        "reward_scale_mmhg",
        "aami_band_mmhg",
        *_ACTION_FIELDS,
    ):
        if k in spec:
            kw[k] = spec[k]
    return kw


def make_env_from_spec(
    path_or_dict: str | os.PathLike[str] | Mapping[str, Any],
    split: str | None = "train",
    **overrides: Any,
) -> BPCalibrationEnv:
    """Build a :class:`BPCalibrationEnv` from an env spec (``envs/*.yaml`` or a dict).

    ``split`` selects the subjects (``None``: the spec's own split, else all). ``overrides`` replace
    top-level spec fields (``cuff`` and ``actions`` mappings are merged), e.g.
    ``make_env_from_spec("envs/default.yaml", split="test", reward="squared", cuff={"budget": 4})``.
    Errors (unknown field, unknown reward, empty split, bad value) are ConfigError naming the field.
    """
    spec = load_env_spec(path_or_dict)
    where = spec.get("_path", "env spec")
    kw = env_kwargs_from_spec(spec, split, **overrides)
    try:
        return BPCalibrationEnv(**kw)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def replay_set_for_cohort(cohort_dir: str | os.PathLike[str]) -> Path:
    """Replay set of a virtual cohort built with ``PatLinearEstimator`` (built once, cached by path).

    Built in a temporary folder and renamed into place; a cached set built under other major
    versions of numpy, pandas or torch is rebuilt, with a log line saying why.
    """
    import hashlib
    import shutil

    cohort = Path(os.path.expandvars(str(cohort_dir))).expanduser().resolve()
    if not cohort.is_dir():
        raise ConfigError(f"cohort: folder {cohort} not found")
    key = hashlib.sha1(str(cohort).encode()).hexdigest()[:12]
    root = cache_dir() / "replay_sets" / f"{cohort.name}-{key}"
    if _reusable_replay_set(root):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(root.parent, prefix=f".{root.name}.")
    try:
        build_cohort_replay_set(cohort, tmp / "replay", features_cache=root.parent / f".{root.name}-features")
        _replace_dir(tmp / "replay", root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


# ------------------------------------------------------------------- registration
def register_envs() -> None:
    """Register ``bprl/BPCalibration-v0`` and ``bprl/BPCalibrationContinuous-v0`` (idempotent).

    ``import bprl`` already does this; entry points are strings, so it stays light.
    """
    import bprl

    bprl._register_envs()


def params_dict(env: BPCalibrationEnv) -> dict[str, Any]:
    """Settings of an environment as a plain dict (for provenance)."""
    return {**asdict(env.params), "cuff": asdict(env.cuff), "features": list(env.data.features)}


# ------------------------------------------------------------------ synthetic data
def synthetic_replay_tables(
    n_subjects: int = 4,
    n_steps: int = 120,
    seed: int = 0,
    hop_s: float = 30.0,
    bias_sd_mmhg: float = 10.0,
    drift_sd_mmhg_per_h: float = 4.0,
    gap_share: float = 0.05,
    ref_gap_steps: int = 4,
) -> dict[str, pd.DataFrame]:
    """Small physiologically shaped replay tables (with estimator columns) for tests and benchmarks.

    Per subject: a true BP trajectory (baseline plus slow oscillation and random walk), PAT that
    falls with SBP (about -0.5 ms/mmHg), HR, PPG morphology and quality; an estimator that reads BP
    from PAT with a per-subject bias (SD ``bias_sd_mmhg``) and a linear bias drift (SD
    ``drift_sd_mmhg_per_h`` per hour); NaN gaps in the reference and the features (``gap_share`` of
    the rows each) plus one contiguous reference gap of ``ref_gap_steps`` steps (a flushed arterial
    line). Deterministic by ``seed``.
    """
    out: dict[str, pd.DataFrame] = {}
    for i in range(n_subjects):
        rng = np.random.default_rng([seed, i])
        n = n_steps
        t0 = np.arange(n) * hop_s
        t1 = t0 + hop_s
        h = t1 / 3600.0
        sbp0, dbp0 = rng.normal(125, 12), rng.normal(72, 8)
        walk = np.cumsum(rng.normal(0, 0.6, n))
        osc = 6 * np.sin(2 * np.pi * h / rng.uniform(0.5, 2.0) + rng.uniform(0, 6.3))
        sbp = sbp0 + osc + walk
        dbp = dbp0 + 0.6 * (osc + walk)
        pat = 250 - 0.5 * (sbp - 120) + rng.normal(0, 1, n)
        hr = 72 + 0.3 * (sbp - sbp0) + rng.normal(0, 2, n)
        bias_s = rng.normal(0, bias_sd_mmhg) + rng.normal(0, drift_sd_mmhg_per_h) * h
        bias_d = 0.6 * bias_s + rng.normal(0, 3)
        est_s = 120 - 2.0 * (pat - 250) + bias_s + rng.normal(0, 2, n)
        est_d = 70 + 0.6 * (est_s - bias_s - 120) + bias_d + rng.normal(0, 1.5, n)
        ref_s = sbp + rng.normal(0, 1, n)
        ref_d = dbp + rng.normal(0, 1, n)
        gap = rng.random(n) < gap_share
        if ref_gap_steps > 0 and n > ref_gap_steps + 1:  # one contiguous gap, as from a flushed line
            g0 = int(rng.integers(0, n - ref_gap_steps))
            ref_s[g0 : g0 + ref_gap_steps] = np.nan
            ref_d[g0 : g0 + ref_gap_steps] = np.nan
        ref_s[gap] = np.nan
        ref_d[gap] = np.nan
        fgap = rng.random(n) < gap_share
        df = pd.DataFrame(
            {
                "subject_id": f"s{i:03d}",
                "record_id": f"r{i:03d}",
                "step": np.arange(n, dtype=np.int64),
                "t_start_s": t0,
                "t_end_s": t1,
                "pat_foot_ms": pat,
                "pat_maxslope_ms": pat + 18,
                "pat_peak_ms": pat + 140 + rng.normal(0, 3, n),
                "rr_ms": 60000.0 / hr,
                "hr_bpm": hr,
                "ppg_amp": np.abs(rng.normal(1.0, 0.1, n)),
                "ppg_rise_time_ms": rng.normal(150, 10, n),
                "ppg_width_ms": rng.normal(300, 20, n),
                "ppg_stiffness_index": rng.normal(7, 1, n),
                "sqi_ecg": rng.uniform(0.8, 1.0, n),
                "sqi_ppg": rng.uniform(0.7, 1.0, n),
                "n_beats": np.round(hr * hop_s / 60).astype(np.int64),
                "valid_beat_share": rng.uniform(0.8, 1.0, n),
                "ref_sbp_mmhg": ref_s,
                "ref_dbp_mmhg": ref_d,
                "ref_map_mmhg": (ref_s + 2 * ref_d) / 3,
                "ref_valid_share": np.where(np.isnan(ref_s), 0.0, 1.0),
                "est_sbp_mmhg": est_s,
                "est_dbp_mmhg": est_d,
            }
        )
        feat_cols = [c for c in REPLAY_FEATURES if c not in ("n_beats",)]
        df.loc[fgap, feat_cols] = np.nan
        df.loc[fgap, ["est_sbp_mmhg", "est_dbp_mmhg"]] = np.nan
        out[f"s{i:03d}"] = df
    return out
