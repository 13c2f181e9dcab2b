"""Replay sets built from virtual cohorts, cached: the built-in default set and ``cohort:`` env specs.

An environment made without data replays :func:`default_replay_set` (a small virtual cohort with
the fast population ``PatLinearEstimator``); an env spec with ``cohort: path`` replays
:func:`replay_set_for_cohort`. Both are built once by :func:`build_cohort_replay_set` under
:func:`cache_dir`, in a temporary folder renamed into place, and rebuilt (with a log line saying
why) when they were built under other major versions of numpy, pandas or torch
(:mod:`bprl.cache_versions`) or by other beat and feature code
(:func:`bprl.features.feature_code_version`: a new R-peak detector or gating default gives new
tables).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from bprl.cache_versions import STAMP_KEY, cache_versions, log_rebuild, stale_reason
from bprl.errors import ConfigError
from bprl.features.cache import feature_code_version
from bprl.io import make_temp_dir

__all__ = [
    "DEFAULT_DATA",
    "build_cohort_replay_set",
    "cache_dir",
    "default_replay_set",
    "replay_set_for_cohort",
]

#: the built-in default data: a small virtual cohort and a PAT-linear estimator
DEFAULT_DATA: dict[str, Any] = {"subjects": 10, "hours": 0.5, "seed": 0, "name": "default_replay_set_v0"}
#: key of the beat and feature code version in ``replay_set.json`` (a set built by other code is rebuilt)
FEATURE_CODE_KEY = "feature_code_version"


def cache_dir() -> Path:
    """``$BPRL_CACHE_DIR`` or ``~/.cache/bprl``."""
    env = os.environ.get("BPRL_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "bprl"


def default_replay_set() -> Path:
    """The built-in replay set used when an environment is made without data (built once, cached).

    Lives in ``cache_dir() / "default_replay_set_v0"``. On first use a small virtual cohort
    (:data:`DEFAULT_DATA`: 10 subjects x 0.5 h, seed 0) is generated with ``bprl.cohort`` and turned
    into a replay set with the fast population ``PatLinearEstimator`` fitted on its train subjects
    (:func:`build_cohort_replay_set`); this takes about a minute. A cached set built under other
    major versions of numpy, pandas or torch is rebuilt, with a log line saying why
    (:mod:`bprl.cache_versions`).

    Returns:
        The replay-set folder.

    """
    root = cache_dir() / str(DEFAULT_DATA["name"])
    if _reusable_replay_set(root):
        return root
    from bprl.cohort import make_cohort

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


def replay_set_for_cohort(cohort_dir: str | os.PathLike[str]) -> Path:
    """Replay set of a virtual cohort built with ``PatLinearEstimator`` (built once, cached by path).

    Built in a temporary folder and renamed into place; a cached set built under other major
    versions of numpy, pandas or torch is rebuilt, with a log line saying why.

    Args:
        cohort_dir: the virtual-cohort folder (``$VARS`` and ``~`` expanded).

    Returns:
        ``cache_dir() / "replay_sets" / "<cohort name>-<hash of its path>"``.

    Raises:
        ConfigError: the folder does not exist, or the replay set cannot be built.
    """
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


def _reusable_replay_set(root: Path, quiet: bool = False) -> bool:
    """Whether the cached replay set at ``root`` exists and was built under this environment's major
    versions of numpy, pandas and torch and by this beat and feature code; a stale one is
    reported (log line) unless ``quiet``."""
    from bprl.features.replay_set import REPLAY_SET_INDEX, read_replay_set

    if not (root / REPLAY_SET_INDEX).is_file():
        return False
    try:
        info = read_replay_set(root).info
        why = stale_reason(info.get(STAMP_KEY))
        code = feature_code_version()  # a hash of the beat and feature files: computed once
        if why is None and info.get(FEATURE_CODE_KEY) != code:
            why = f"built by other beat and feature code ({info.get(FEATURE_CODE_KEY)}, now {code})"
    except (OSError, ValueError, AttributeError) as exc:
        why = f"unreadable ({type(exc).__name__}: {exc})"
    if why is not None and not quiet:
        log_rebuild(root, why)
    return why is None


def _replace_dir(new: Path, root: Path) -> None:
    """Move the folder ``new`` to ``root``; an existing ``root`` is moved aside first, then deleted."""
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
    and torch (:data:`bprl.cache_versions.STAMP_KEY`).

    Returns:
        ``out_dir``.

    Raises:
        ConfigError: no train subject has a usable record.
    """
    from bprl.cohort import load_manifest
    from bprl.estimator import PatLinearEstimator
    from bprl.features import build_replay_tables
    from bprl.features.replay_set import concat_records, write_replay_set

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
    meta[FEATURE_CODE_KEY] = feature_code_version()
    write_replay_set(out, tables, splits, meta)
    return out
