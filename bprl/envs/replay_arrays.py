"""Replay tables turned into padded arrays once, so that an environment step is a few look-ups.

:func:`build_replay_arrays` turns replay tables (subject id -> table, see :mod:`bprl.schemas`) into
:class:`ReplayArrays`: every per-step quantity the environments need, precomputed as (subject x
step) arrays, NaN features carried forward with a validity flag. :func:`load_replay_arrays` reads a
replay-set folder (or in-memory tables, or the built-in default set) and caches the arrays per
process, so that many environments over one replay set share memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bprl.envs import replay_sets
from bprl.envs.cuff import cuff_reference
from bprl.envs.observation import (
    DEFAULT_FEATURES,
    OBS_CLIP,
    PRIOR_DBP_MMHG,
    PRIOR_SBP_MMHG,
    feature_scaling,
)
from bprl.errors import BprlError, ConfigError
from bprl.schemas import OBSERVABLE_FEATURES, REPLAY_ESTIMATE

if TYPE_CHECKING:
    from bprl.features.replay_set import ReplaySet

__all__ = ["ReplayArrays", "SubjectSeries", "build_replay_arrays", "load_replay_arrays", "segment_index"]

#: columns every replay table needs besides the estimate and the observed features
_NEEDED = ("t_start_s", "t_end_s", "pat_foot_ms", "hr_bpm", "ref_sbp_mmhg", "ref_dbp_mmhg")


@dataclass(slots=True)
class SubjectSeries:
    """One subject's per-step scalars as Python lists (the single environment's fast scalar access).

    Units: BP in mmHg, PAT in ms, HR in bpm, times in s; NaN where a value is absent.
    """

    est_sbp: list[float]  #: raw estimator SBP (NaN where the estimator gave none)
    est_dbp: list[float]
    est_carry_sbp: list[float]  #: estimator SBP carried forward (population prior before the first)
    est_carry_dbp: list[float]
    est_valid: list[float]  #: 1.0 where the estimator gave a value
    ref_sbp: list[float]  #: reference SBP (privileged)
    ref_dbp: list[float]
    cuff_ref_sbp: list[float]  #: what a cuff reading at this step measures, before noise (privileged)
    cuff_ref_dbp: list[float]
    pat_ms: list[float]  #: PAT (foot) carried forward
    hr_bpm: list[float]  #: HR carried forward
    t_start_s: list[float]
    t_end_s: list[float]
    segment: list[int]  #: record segment index of each step (0, 1, ...)
    segment_start: list[float]  #: 1.0 at a boundary (a later segment's first step, a PPG timing offset)


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
        segment: (S, T) int64 index of the record segment of each step (:func:`segment_index`).
        segment_start: (S, T) 1.0 at a boundary: the first step of each segment after the first, or
            the first step after a detected PPG timing offset (``pat_offset_ms`` finite).
        af_share: (S, T) share of each step in atrial fibrillation (the table's ``af_share``
            column, 0 without it or where NaN): the cuff reads worse in AF
            (:meth:`bprl.envs.cuff.CuffModel.reading_sd`).
        rhythm_known: (S,) True for subjects whose table has the rhythm column ``af_share``.
        cuff_duration_s: the cuff duration ``cuff_ref`` was computed for.
        source: where the tables came from (for messages).
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
    segment: np.ndarray
    segment_start: np.ndarray
    af_share: np.ndarray
    rhythm_known: np.ndarray
    cuff_duration_s: float
    source: str = ""
    _series: dict[int, SubjectSeries] = field(default_factory=dict, repr=False)

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return len(self.subject_ids)

    def subject_series(self, i: int) -> SubjectSeries:
        """Python lists of subject ``i``'s per-step scalars (cached; fast scalar access in ``step``)."""
        got = self._series.get(i)
        if got is None:
            n = int(self.lengths[i])
            got = SubjectSeries(
                est_sbp=self.est[i, :n, 0].tolist(),
                est_dbp=self.est[i, :n, 1].tolist(),
                est_carry_sbp=self.est_carry[i, :n, 0].tolist(),
                est_carry_dbp=self.est_carry[i, :n, 1].tolist(),
                est_valid=self.est_valid[i, :n].tolist(),
                ref_sbp=self.ref[i, :n, 0].tolist(),
                ref_dbp=self.ref[i, :n, 1].tolist(),
                cuff_ref_sbp=self.cuff_ref[i, :n, 0].tolist(),
                cuff_ref_dbp=self.cuff_ref[i, :n, 1].tolist(),
                pat_ms=self.pat_carry[i, :n].tolist(),
                hr_bpm=self.hr_carry[i, :n].tolist(),
                t_start_s=self.t_start_s[i, :n].tolist(),
                t_end_s=self.t_end_s[i, :n].tolist(),
                segment=self.segment[i, :n].tolist(),
                segment_start=self.segment_start[i, :n].tolist(),
            )
            if len(self._series) >= 512:  # bound the memory of very large replay sets
                self._series.clear()
            self._series[i] = got
        return got


def _ffill(x: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along axis 0 (leading NaN stay NaN); a new array (pandas 3: never a view)."""
    return pd.DataFrame(x).ffill().to_numpy(copy=True)


def _check_tables(tables: Mapping[str, pd.DataFrame], features: tuple[str, ...], source: str) -> int:
    """Check the feature names and every table's columns and rows; the longest table's length.

    Raises:
        ConfigError: unknown or no features, no subjects.
        BprlError: naming the subject, when a table lacks columns or has no rows.
    """
    bad = [f for f in features if f not in OBSERVABLE_FEATURES]
    if bad:
        raise ConfigError(f"features: unknown feature(s) {bad}; valid: {list(OBSERVABLE_FEATURES)}")
    if not features:
        raise ConfigError("features: at least one feature is needed")
    if not tables:
        raise ConfigError(f"{source or 'tables'}: no subjects to replay")
    need = [*_NEEDED, *REPLAY_ESTIMATE]
    need += [f for f in features if f not in need]
    tmax = 0
    for sid, df in tables.items():
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise BprlError(f"{source or 'replay table'} subject {sid!r}: missing columns {missing}")
        if len(df) == 0:
            raise BprlError(f"{source or 'replay table'} subject {sid!r}: replay table has no rows")
        tmax = max(tmax, len(df))
    return tmax


def _padded(n_subjects: int, tmax: int, n_features: int) -> dict[str, np.ndarray]:
    """The empty padded arrays of :class:`ReplayArrays` (NaN where values can be absent)."""
    s = n_subjects
    return {
        "feat_obs": np.zeros((s, tmax, 2 * n_features), np.float32),
        "est": np.full((s, tmax, 2), np.nan),
        "est_carry": np.full((s, tmax, 2), np.nan),
        "est_valid": np.zeros((s, tmax)),
        "ref": np.full((s, tmax, 2), np.nan),
        "cuff_ref": np.full((s, tmax, 2), np.nan),
        "pat_carry": np.full((s, tmax), np.nan),
        "hr_carry": np.full((s, tmax), np.nan),
        "t_start_s": np.zeros((s, tmax)),
        "t_end_s": np.zeros((s, tmax)),
        "segment": np.zeros((s, tmax), np.int64),
        "segment_start": np.zeros((s, tmax)),
        "af_share": np.zeros((s, tmax)),
        "rhythm_known": np.zeros(s, bool),
    }


def segment_index(df: pd.DataFrame) -> np.ndarray:
    """Record segment index (0, 1, ...) of each row of one subject's replay table, in row order.

    The table's ``segment`` column when it has one (written by
    :func:`bprl.features.replay_set.concat_records`), else a new index each time ``record_id``
    changes, else 0 everywhere. PAT can jump between segments at unchanged BP (a new sensor
    placement or recording), so a boundary is where a policy may want a fresh reading.
    """
    if "segment" in df.columns:
        seg = df["segment"].to_numpy()
        if len(seg) and np.isfinite(seg.astype(np.float64)).all():
            return seg.astype(np.int64)
    if "record_id" in df.columns and len(df):
        rid = df["record_id"].astype(str).to_numpy()
        return np.concatenate([[0], np.cumsum(rid[1:] != rid[:-1])]).astype(np.int64)
    return np.zeros(len(df), np.int64)


def _fill_features(out: dict[str, np.ndarray], i: int, df: pd.DataFrame, features: tuple[str, ...]) -> None:
    """Subject ``i``'s normalised carried features and validity flags into ``feat_obs``."""
    n, nf = len(df), len(features)
    centre, scale = feature_scaling(features)
    x = df[list(features)].to_numpy(np.float64)
    valid = np.isfinite(x)
    xn = (_ffill(np.where(valid, x, np.nan)) - centre) / scale
    xn = np.clip(np.nan_to_num(xn, nan=0.0), -OBS_CLIP, OBS_CLIP)
    out["feat_obs"][i, :n, :nf] = xn
    out["feat_obs"][i, :n, nf:] = valid


def _fill_estimate(out: dict[str, np.ndarray], i: int, df: pd.DataFrame) -> None:
    """Subject ``i``'s raw estimate, the estimate carried forward (prior before the first), validity."""
    n = len(df)
    e = df[list(REPLAY_ESTIMATE)].to_numpy(np.float64, copy=True)  # written into: a copy (pandas 3)
    e[~np.isfinite(e)] = np.nan
    out["est"][i, :n] = e
    ec = _ffill(e)
    ec[:, 0] = np.where(np.isnan(ec[:, 0]), PRIOR_SBP_MMHG, ec[:, 0])
    ec[:, 1] = np.where(np.isnan(ec[:, 1]), PRIOR_DBP_MMHG, ec[:, 1])
    out["est_carry"][i, :n] = ec
    out["est_valid"][i, :n] = np.isfinite(e).all(axis=1)


def _fill_reference(
    out: dict[str, np.ndarray], i: int, df: pd.DataFrame, sid: str, cuff_duration_s: float, source: str
) -> None:
    """Subject ``i``'s window times, reference, cuff reference, PAT and HR carried forward.

    Raises:
        BprlError: non-finite window times (naming the subject).
    """
    n = len(df)
    r = df[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy(np.float64, copy=True)  # written into: a copy
    r[~np.isfinite(r)] = np.nan
    out["ref"][i, :n] = r
    t0, t1 = out["t_start_s"][i, :n], out["t_end_s"][i, :n]
    t0[:] = df["t_start_s"].to_numpy(np.float64)
    t1[:] = df["t_end_s"].to_numpy(np.float64)
    if not (np.isfinite(t0).all() and np.isfinite(t1).all()):
        raise BprlError(f"{source or 'replay table'} subject {sid!r}: non-finite t_start_s/t_end_s")
    out["cuff_ref"][i, :n] = cuff_reference(r, t0, t1, cuff_duration_s)
    p = df["pat_foot_ms"].to_numpy(np.float64)
    h = df["hr_bpm"].to_numpy(np.float64)
    out["pat_carry"][i, :n] = _ffill(np.where(np.isfinite(p), p, np.nan)[:, None])[:, 0]
    out["hr_carry"][i, :n] = _ffill(np.where(np.isfinite(h), h, np.nan)[:, None])[:, 0]
    seg = segment_index(df)
    out["segment"][i, :n] = seg
    boundary = np.zeros(n, bool)
    boundary[1:] = seg[1:] != seg[:-1]
    if "pat_offset_ms" in df.columns:  # a detected PPG timing offset is a boundary too (issue 16)
        boundary |= np.isfinite(df["pat_offset_ms"].to_numpy(np.float64))
    out["segment_start"][i, :n] = boundary
    if "af_share" in df.columns:
        out["rhythm_known"][i] = True
        af = df["af_share"].to_numpy(np.float64)
        out["af_share"][i, :n] = np.clip(np.where(np.isfinite(af), af, 0.0), 0.0, 1.0)


def build_replay_arrays(
    tables: Mapping[str, pd.DataFrame],
    features: Sequence[str] = DEFAULT_FEATURES,
    cuff_duration_s: float = 45.0,
    source: str = "",
) -> ReplayArrays:
    """Turn replay tables (subject id -> table) into padded :class:`ReplayArrays`.

    Args:
        tables: subject id -> replay table (rows sorted by ``step`` when it has that column).
        features: the observed feature columns (:data:`bprl.schemas.OBSERVABLE_FEATURES`: the
            replay features and, in tables that have them, the rhythm columns).
        cuff_duration_s: the cuff's measurement duration, s (for ``cuff_ref``).
        source: where the tables come from, for messages.

    Raises:
        ConfigError: unknown features, no features or no subjects.
        BprlError: naming the subject, when a table lacks columns, has no rows or non-finite times.
    """
    features = tuple(features)
    tmax = _check_tables(tables, features, source)
    sids = list(tables)
    out = _padded(len(sids), tmax, len(features))
    lengths = np.zeros(len(sids), np.int64)
    for i, sid in enumerate(sids):
        df = tables[sid]
        if "step" in df.columns:
            df = df.sort_values("step", kind="stable")
        lengths[i] = len(df)
        _fill_features(out, i, df, features)
        _fill_estimate(out, i, df)
        _fill_reference(out, i, df, sid, cuff_duration_s, source)
    return ReplayArrays(
        subject_ids=[str(x) for x in sids],
        features=features,
        lengths=lengths,
        cuff_duration_s=float(cuff_duration_s),
        source=source,
        **out,
    )


_ARRAY_CACHE: dict[tuple, ReplayArrays] = {}


def _open_replay_set(path: str | os.PathLike[str]) -> ReplaySet:
    """The replay set of a folder; ConfigError naming ``replay_set`` when it is not one."""
    from bprl.features.replay_set import read_replay_set

    try:
        return read_replay_set(path)
    except ValueError as exc:
        raise ConfigError(f"replay_set: {exc}") from exc


def _tables_selection(
    tables: Mapping[str, pd.DataFrame], subject_ids: Sequence[str] | None
) -> dict[str, pd.DataFrame]:
    """The in-memory tables of ``subject_ids`` (all when None); ConfigError for missing or none."""
    sids = list(subject_ids) if subject_ids is not None else list(tables)
    missing = [s for s in sids if s not in tables]
    if missing:
        raise ConfigError(f"subject_ids: not in the given tables: {missing}")
    if not sids:
        raise ConfigError("subject_ids: empty selection of subjects")
    return {s: tables[s] for s in sids}


def _replay_set_selection(rs: ReplaySet, split: str | None, subject_ids: Sequence[str] | None) -> list[str]:
    """Subjects of a replay set: ``subject_ids`` when given, else the split (None: all).

    Raises:
        ConfigError: unknown subjects, an unknown split, or an empty selection.
    """
    if subject_ids is not None:
        sids = [str(s) for s in subject_ids]
        if not sids:
            raise ConfigError(f"subject_ids: empty selection of subjects (replay set {rs.root})")
        known = set(rs.subject_ids())
        missing = [s for s in sids if s not in known]
        if missing:
            raise ConfigError(f"subject_ids: not in replay set {rs.root}: {missing}")
    else:
        known_splits = set(rs.subjects["split"].astype(str))
        if split is not None and split not in known_splits and split not in ("train", "val", "test"):
            raise ConfigError(f"split: unknown split {split!r} (replay set {rs.root})")
        sids = rs.subject_ids(split)
    if not sids:
        raise ConfigError(f"split: no subjects in split {split!r} of replay set {rs.root}")
    return sids


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
    replay set is used (:func:`bprl.envs.replay_sets.default_replay_set`).

    Raises:
        ConfigError: an empty or unknown selection, a folder that is not a replay set.
        BprlError: a replay table that cannot be read or is malformed (naming the subject).
    """
    if tables is not None:
        chosen = _tables_selection(tables, subject_ids)
        return build_replay_arrays(chosen, features, cuff_duration_s, "tables")
    # imported here: reading in-memory tables (tests, benchmarks) does not load bprl.features
    from bprl.features.replay_set import ReplaySet

    if replay_set is None:
        replay_set = replay_sets.default_replay_set()
    rs = replay_set if isinstance(replay_set, ReplaySet) else _open_replay_set(replay_set)
    sids = _replay_set_selection(rs, split, subject_ids)
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
