"""Rollout: run a policy for one whole-record episode per subject and return the episode log.

The log has exactly :data:`bprl.tables.EPISODE_LOG_COLUMNS` (one row per step); evaluation and
reports work from it, never from a live environment. Episode seeds depend on ``(seed, subject)``
only (:func:`episode_seed`), so a subject's episode is the same whatever the order or number of
subjects in a run.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from bprl.envs import BPCalibrationEnv, make_env_from_spec
from bprl.errors import ConfigError
from bprl.policies.base import Calibrator, Policy
from bprl.schemas import EPISODE_LOG_COLUMNS

__all__ = ["episode_seed", "fit_calibrator", "rollout"]

#: episode-log columns copied from the step's ``info`` (None -> NaN)
_INFO_BP_COLUMNS: tuple[str, ...] = (
    "est_sbp_mmhg",
    "est_dbp_mmhg",
    "corr_sbp_mmhg",
    "corr_dbp_mmhg",
    "ref_sbp_mmhg",
    "ref_dbp_mmhg",
    "cuff_sbp_mmhg",
    "cuff_dbp_mmhg",
)


def episode_seed(seed: int, subject_id: str) -> int:
    """Seed of one subject's episode: depends on (seed, subject) only, not on the subject order.

    Args:
        seed: the run's seed.
        subject_id: the subject whose episode is reset with the returned seed.

    Returns:
        A 32-bit seed from ``numpy.random.SeedSequence([seed, crc32(subject_id)])``.
    """
    return int(np.random.SeedSequence([int(seed), zlib.crc32(subject_id.encode())]).generate_state(1)[0])


def _as_env(
    env_or_spec: gym.Env | str | os.PathLike[str] | Mapping[str, Any], subject_ids: Sequence[str] | None
) -> gym.Env:
    """The environment given, or one made from an env spec with all its subjects available."""
    if isinstance(env_or_spec, gym.Env):
        return env_or_spec
    return make_env_from_spec(env_or_spec, split=None, subject_ids=list(subject_ids) if subject_ids else None)


def _subjects_to_run(base: BPCalibrationEnv, subject_ids: Sequence[str] | None) -> list[str]:
    """``subject_ids`` as strings (default: all of the env's); ConfigError naming unknown ones."""
    sids = list(base.subject_ids) if subject_ids is None else [str(s) for s in subject_ids]
    unknown = [s for s in sids if s not in base.subject_ids]
    if unknown:
        raise ConfigError(f"rollout: subjects not in the environment: {unknown}")
    return sids


def _prepare_policy(policy: Policy, base: BPCalibrationEnv) -> None:
    """Refuse a cuff-needing policy on a zero budget; adopt the env's step sizes; bind the oracle."""
    if getattr(policy, "needs_cuff", False) and base.cuff.budget == 0:
        raise ConfigError(
            f"rollout: policy {getattr(policy, 'name', policy)!r} calibrates with cuff readings but the "
            "environment's cuff budget is 0; set cuff.budget > 0 or use the 'none' policy"
        )
    if isinstance(policy, Calibrator):
        policy.configure_for(base)
        if policy.fits and policy.fitted is None:
            raise ConfigError(
                f"rollout: calibrator {policy.name!r} is fit on training subjects; call "
                "bprl.policies.fit_calibrator(calibrator, train_env) first (the experiment runner "
                "fits it on the train split)"
            )
    if hasattr(policy, "bind"):
        policy.bind(base)


def _run_episode(
    policy: Policy,
    env: gym.Env,
    sid: str,
    seed: int,
    episode: int,
    name: str,
    cols: dict[str, list],
) -> None:
    """One whole-record episode of subject ``sid``; its rows are appended to ``cols``."""
    obs, _ = env.reset(seed=episode_seed(seed, sid), options={"subject_id": sid, "whole_record": True})
    state = None
    start = True
    done = False
    while not done:
        action, state = policy.predict(obs, state=state, episode_start=np.array([start]), deterministic=True)
        start = False
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        cols["policy"].append(name)
        cols["seed"].append(int(seed))
        cols["subject_id"].append(sid)
        cols["episode"].append(episode)
        cols["step"].append(info["step"])
        cols["t_s"].append(info["t_s"])
        for c in _INFO_BP_COLUMNS:
            v = info[c]
            cols[c].append(math.nan if v is None else v)
        cols["cuff"].append(bool(info["cuff"]))
        cols["reward"].append(float(reward))
        cols["cuff_refused"].append(bool(info["cuff_refused"]))
        cols["segment"].append(int(info["segment"]))
        af = info.get("af_share")
        cols["af_share"].append(math.nan if af is None else float(af))


def fit_calibrator(policy: Policy, train_env: gym.Env | Any) -> dict[str, Any] | None:
    """Fit a calibrator that ``fits`` on the subjects of ``train_env`` (its train split); else nothing.

    Args:
        policy: any policy; only a :class:`Calibrator` with ``fits = True`` is fitted.
        train_env: a BPCalibrationEnv over the **training** subjects (never the test subjects), or
            its :class:`~bprl.envs.replay_arrays.ReplayArrays`.

    Returns:
        What the calibrator fitted (None when it fits nothing).
    """
    from bprl.policies.fitting import training_subjects

    if not (isinstance(policy, Calibrator) and policy.fits):
        return None
    data = train_env.unwrapped.data if isinstance(train_env, gym.Env) else train_env
    if isinstance(train_env, gym.Env):
        policy.configure_for(train_env)  # the trigger is set for the env's budget
    return policy.fit(training_subjects(data))


def rollout(
    policy: Policy,
    env_or_spec: gym.Env | str | os.PathLike[str] | Mapping[str, Any],
    subject_ids: Sequence[str] | None = None,
    seed: int = 0,
    policy_name: str | None = None,
) -> pd.DataFrame:
    """Run ``policy`` for one whole-record episode per subject and return the episode log.

    Args:
        policy: anything with ``predict(obs, state, episode_start, deterministic)`` (calibrators,
            SB3 models). A calibrator adopts the env's action step sizes (``configure_for``); a
            policy with ``bind`` (the oracle) is bound to the environment first.
        env_or_spec: a BPCalibrationEnv (possibly wrapped) or an env spec (path / dict; then all its
            subjects are available, whatever the split).
        subject_ids: subjects to run (default: all of the environment's subjects).
        seed: episode ``k`` of subject ``sid`` is reset with a seed derived from ``(seed, sid)``, so
            the log is identical for the same seed whatever the order or number of subjects.
        policy_name: the ``policy`` column (default ``policy.name``).

    Returns:
        DataFrame with :data:`bprl.tables.EPISODE_LOG_COLUMNS` (dtypes as declared), then
        ``cuff_refused``, ``segment`` and ``af_share`` (NaN when the replay tables have no rhythm
        columns) of :data:`bprl.schemas.EPISODE_LOG_OPTIONAL`.

    Raises:
        ConfigError: the env is not a BPCalibrationEnv, a subject is not in it, a policy that needs
            cuff readings meets a cuff budget of 0, or a calibrator's action type is not the env's.
    """
    env = _as_env(env_or_spec, subject_ids)
    base = env.unwrapped
    if not isinstance(base, BPCalibrationEnv):
        raise ConfigError(f"rollout: expected a BPCalibrationEnv, got {type(base).__name__}")
    sids = _subjects_to_run(base, subject_ids)
    _prepare_policy(policy, base)
    name = policy_name or str(getattr(policy, "name", type(policy).__name__))
    cols: dict[str, list] = {c: [] for c in [*EPISODE_LOG_COLUMNS, "cuff_refused", "segment", "af_share"]}
    for episode, sid in enumerate(sids):
        _run_episode(policy, env, sid, seed, episode, name, cols)
    df = pd.DataFrame(cols)
    return df.astype(
        {**EPISODE_LOG_COLUMNS, "cuff_refused": "bool", "segment": "int64", "af_share": "float64"}
    )
