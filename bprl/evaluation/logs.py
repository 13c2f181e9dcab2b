"""Episode logs as the evaluation reads them: checks, reading, cuff usage and calibration state.

Everything in :mod:`bprl.evaluation` works on episode logs
(:data:`bprl.tables.EPISODE_LOG_COLUMNS`: one row per step of one policy on one subject
and seed), never on a live environment. This module validates and reads them
(:func:`check_episode_log`, :func:`read_episode_logs`), measures cuff usage
(:func:`episode_durations_h`, :func:`cuffs_per_hour`) and adds the state of the last
cuff calibration to each step (:func:`annotate_calibration`). :func:`results_logs` finds the
current logs of a results folder of ``bprl run`` (used by ``bprl report`` and ``bprl compare``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bprl.errors import EvaluationError
from bprl.schemas import EPISODE_LOG_COLUMNS, EPISODE_LOG_OPTIONAL

#: the two BP quantities evaluated
BP_KINDS: tuple[str, ...] = ("sbp", "dbp")

#: columns that identify one episode in a log
EPISODE_KEYS: list[str] = ["policy", "seed", "subject_id", "episode"]


# ------------------------------------------------------------------ log checks
def check_episode_log(log: pd.DataFrame, what: str = "episode log") -> pd.DataFrame:
    """Validate an episode log and return a normalised copy (typed columns, ``cuff`` as bool).

    Args:
        log: an episode log.
        what: a file name or description, used in error messages.

    Returns:
        A copy with the declared dtypes, ``cuff`` as bool and ``policy`` / ``subject_id`` as str.

    Raises:
        EvaluationError: naming ``what`` and the problem: not a DataFrame, missing
            columns, no rows, a ``cuff`` column with missing values, or a bad column type.
    """
    if not isinstance(log, pd.DataFrame):
        raise EvaluationError(f"{what}: expected a pandas DataFrame, got {type(log).__name__}")
    missing = [c for c in EPISODE_LOG_COLUMNS if c not in log.columns]
    if missing:
        raise EvaluationError(f"{what}: missing columns {missing}")
    if log.empty:
        raise EvaluationError(f"{what}: no rows")
    out = log.copy()
    for col, (_dtype, default) in EPISODE_LOG_OPTIONAL.items():
        if col not in out.columns:
            out[col] = out["policy"] if col == "family" else default
    if out["cuff"].isna().any():
        raise EvaluationError(f"{what}: column 'cuff' has missing values")
    try:
        out["cuff"] = out["cuff"].astype(bool)
        out["cuff_refused"] = out["cuff_refused"].fillna(False).astype(bool)
        out["segment"] = pd.to_numeric(out["segment"], errors="raise").fillna(0).astype("int64")
        out["target_cuffs_per_h"] = pd.to_numeric(out["target_cuffs_per_h"], errors="raise").astype("float64")
        out["family"] = out["family"].fillna(out["policy"]).astype(str)
        out["base_policy"] = out["base_policy"].astype("string")
        out["af_share"] = pd.to_numeric(out["af_share"], errors="raise").astype("float64")
        for col, dtype in EPISODE_LOG_COLUMNS.items():
            if dtype == "float64":
                out[col] = pd.to_numeric(out[col], errors="raise").astype("float64")
            elif dtype == "int64":
                out[col] = pd.to_numeric(out[col], errors="raise").astype("int64")
        out["policy"] = out["policy"].astype(str)
        out["subject_id"] = out["subject_id"].astype(str)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"{what}: bad column type ({exc})") from exc
    return out


def read_episode_logs(paths: Sequence[str | Path]) -> tuple[pd.DataFrame, list[str]]:
    """Read and concatenate episode-log Parquet files, skipping bad ones.

    Args:
        paths: Parquet files, each an episode log.

    Returns:
        ``(log, problems)``: the validated, concatenated log and one message per
        skipped file (naming the file and the problem).

    Raises:
        EvaluationError: no file could be read.
    """
    frames: list[pd.DataFrame] = []
    problems: list[str] = []
    for p in paths:
        try:
            df = pd.read_parquet(p)
            frames.append(check_episode_log(df, what=str(p)))
        except EvaluationError as exc:
            problems.append(str(exc))
        except (OSError, ValueError) as exc:
            problems.append(f"{p}: cannot read Parquet ({exc})")
    if not frames:
        raise EvaluationError(f"no readable episode log among {len(paths)} files: {problems}")
    return pd.concat(frames, ignore_index=True), problems


# ------------------------------------------------------------------ a results folder's logs
def rollout_status(results: Path, stem: str) -> str | None:
    """``status`` in the rollout marker ``state/rollouts/<stem>.json`` of a results folder (None:
    no readable marker)."""
    try:
        return str(json.loads((results / "state" / "rollouts" / f"{stem}.json").read_text())["status"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def results_logs(
    results: Path, config: Mapping[str, Any] | None, swept: Callable[[Mapping[str, Any]], bool] | None = None
) -> list[Path]:
    """The episode logs of an experiment's current policies and seeds, in the experiment's order.

    ``logs/<policy>__seed<k>.parquet`` of the policies and seeds of ``config`` (the resolved
    experiment), ``<policy>@<rate>`` for each rate of a cuff-rate sweep when the policy is swept;
    a log whose rollout marker says it was not finished is not current, nor are logs of policies
    or seeds removed from the experiment since (kept, not deleted). Without policies and seeds in
    ``config`` every log is used.

    Args:
        results: the results folder.
        config: its resolved configuration (``policies``, ``seeds``, ``budgets.sweep_cuffs_per_h``).
        swept: whether a policy entry runs once per rate of the sweep (the runner knows from the
            calibrator class); default: whether the folder holds ``<name>@...`` logs of it.
    """
    logs = sorted((results / "logs").glob("*.parquet"))
    cfg = config or {}
    rates = (cfg.get("budgets") or {}).get("sweep_cuffs_per_h") or []
    stems = {p.stem for p in logs}

    def is_swept(entry: Mapping[str, Any]) -> bool:
        if swept is not None:
            return swept(entry)
        return any(s.startswith(f"{entry.get('name')}@") for s in stems)

    order = []
    for p in cfg.get("policies") or []:
        if isinstance(p, dict):
            if rates and is_swept(p):
                order += [f"{p.get('name')}@{float(r):g}" for r in rates]
            else:
                order.append(str(p.get("name")))
    seeds = [int(s) for s in cfg.get("seeds") or []]
    if order and seeds:
        wanted = {f"{p}__seed{s}": (i, j) for i, p in enumerate(order) for j, s in enumerate(seeds)}
        logs = [p for p in logs if p.stem in wanted and rollout_status(results, p.stem) in (None, "done")]
        return sorted(logs, key=lambda p: wanted[p.stem])
    return logs


# ------------------------------------------------------------------ cuff usage
def _step_duration_s(log: pd.DataFrame) -> pd.Series:
    """Median step spacing of each episode (NaN for one-step episodes)."""
    diffs = log.sort_values([*EPISODE_KEYS, "step"]).groupby(EPISODE_KEYS, sort=False)["t_s"].diff()
    return diffs.groupby([log.loc[diffs.index, k] for k in EPISODE_KEYS], sort=False).median()


def episode_durations_h(log: pd.DataFrame) -> pd.DataFrame:
    """Per episode: number of cuff readings and duration in hours.

    Duration = ``max(t_s) - min(t_s) + step``, where ``step`` is the episode's median
    spacing of ``t_s`` (``t_s`` is the window end, so the first window adds one step);
    one-step episodes use the median step of the whole log.

    Args:
        log: a checked episode log (:func:`check_episode_log`).

    Returns:
        One row per episode: the :data:`EPISODE_KEYS` columns, ``n_cuff`` and ``duration_h``.
    """
    g = log.groupby(EPISODE_KEYS, sort=False)
    out = pd.DataFrame(
        {"n_cuff": g["cuff"].sum().astype(int), "t_min": g["t_s"].min(), "t_max": g["t_s"].max()}
    )
    step = _step_duration_s(log).reindex(out.index)
    fallback = float(np.nanmedian(step.to_numpy())) if np.isfinite(step.to_numpy()).any() else math.nan
    step = step.fillna(fallback)
    out["duration_h"] = (out["t_max"] - out["t_min"] + step) / 3600.0
    return out[["n_cuff", "duration_h"]].reset_index()


def cuffs_per_hour(log: pd.DataFrame) -> float:
    """Cuff readings per hour of monitoring: total cuff readings / total episode hours of ``log``.

    Args:
        log: a checked episode log (:func:`check_episode_log`).

    Returns:
        Cuff readings per hour (1/h); NaN when the log spans no time.
    """
    d = episode_durations_h(log)
    hours = float(d["duration_h"].sum())
    return float(d["n_cuff"].sum() / hours) if hours > 0 else math.nan


# ------------------------------------------------------------------ calibration state
def _sorted_by_episode(log: pd.DataFrame) -> pd.DataFrame:
    """A copy sorted by episode and step; policies keep their order of first appearance."""
    rank = {p: i for i, p in enumerate(pd.unique(log["policy"]))}
    order = log.assign(_policy_rank=log["policy"].map(rank))
    out = order.sort_values(["_policy_rank", *EPISODE_KEYS[1:], "step"], kind="mergesort")
    return out.drop(columns="_policy_rank").reset_index(drop=True)


def _last_cuff_row(out: pd.DataFrame) -> np.ndarray:
    """Row index of the last cuff step at or before each step of its episode (NaN before the first).

    A cuff step whose reference is NaN still resets the calibration point.
    """
    cuff = out["cuff"].to_numpy(dtype=bool)
    keys = [out[k] for k in EPISODE_KEYS]
    cal_row = pd.Series(np.where(cuff, np.arange(len(out)), np.nan), index=out.index)
    return cal_row.groupby(keys, sort=False).ffill().to_numpy()


def annotate_calibration(log: pd.DataFrame) -> pd.DataFrame:
    """Add the state of the last cuff calibration to each step (a copy, sorted by episode and step).

    New columns: ``cal_t_s`` (time of the last cuff reading at or before the step),
    ``t_since_cal_s``, ``ref_sbp_at_cal_mmhg`` / ``ref_dbp_at_cal_mmhg`` (the reference
    at that step), ``corr_sbp_at_cal_mmhg`` / ``corr_dbp_at_cal_mmhg`` (the corrected
    estimate reported at that step), ``d_ref_sbp_mmhg`` / ``d_corr_sbp_mmhg`` (and DBP):
    change of reference and corrected estimate since then. NaN before the first cuff.

    Args:
        log: a checked episode log (:func:`check_episode_log`).

    Returns:
        The annotated, sorted copy (policies in their order of first appearance).
    """
    out = _sorted_by_episode(log)
    src = {"cal_t_s": "t_s"}
    for bp in BP_KINDS:
        src[f"ref_{bp}_at_cal_mmhg"] = f"ref_{bp}_mmhg"
        src[f"corr_{bp}_at_cal_mmhg"] = f"corr_{bp}_mmhg"
    idx = _last_cuff_row(out)
    valid = np.isfinite(idx)
    rows = idx[valid].astype(int)
    for new, old in src.items():
        vals = np.full(len(out), np.nan)
        vals[valid] = out[old].to_numpy(dtype=float)[rows]
        out[new] = vals
    out["t_since_cal_s"] = out["t_s"] - out["cal_t_s"]
    for bp in BP_KINDS:
        out[f"d_ref_{bp}_mmhg"] = out[f"ref_{bp}_mmhg"] - out[f"ref_{bp}_at_cal_mmhg"]
        out[f"d_corr_{bp}_mmhg"] = out[f"corr_{bp}_mmhg"] - out[f"corr_{bp}_at_cal_mmhg"]
    return out
