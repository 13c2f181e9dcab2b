"""The functions the experiment's units call, one per kind of unit, and :class:`Stages` that holds them.

They are module-level so that they pickle (the local process pool and Ray run them in other
processes) and import the stage packages lazily, so that a worker loads only what its unit
needs. Tests replace some of them (:func:`dataclasses.replace` on :func:`default_stages`) to
exercise scheduling, markers and resume without the heavy stages.

A unit with an output gets ``out``: an empty temporary folder (folder outputs) or a path that
does not exist yet (file outputs), renamed onto the final path when the function returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from bprl.errors import BprlError
from bprl.io import write_parquet_atomic

if TYPE_CHECKING:
    from bprl.cohort.spec import CohortSpec
    from bprl.estimator.config import TrainConfig
    from bprl.features.config import FeatureConfig

__all__ = [
    "Stages",
    "default_stages",
    "stage_agent",
    "stage_cohort",
    "stage_estimator",
    "stage_evaluate",
    "stage_features",
    "stage_list_real",
    "stage_list_virtual",
    "stage_replay_set",
    "stage_report",
    "stage_rollout",
]

RECORD_COLUMNS = ["subject_id", "record_id", "record_path"]


@dataclass(frozen=True)
class Stages:
    """The functions the runner calls for each unit; module-level so that they pickle.

    Tests replace some of them (with :func:`dataclasses.replace`) to exercise
    scheduling, markers and resume without the heavy stages.

    Attributes:
        cohort: ``(out, n_subjects, hours, seed, spec, workers[, video]) -> None``: build a virtual
            cohort in ``out``; ``spec`` is a parameter file, a :class:`bprl.cohort.CohortSpec` or
            ``None``; ``video`` (camera experiments only) also renders its virtual-camera clips.
        list_virtual: ``(cohort_dir) -> DataFrame[subject_id, record_id, record_path]``.
        list_real: ``(folders, require, min_duration_s) -> (DataFrame[subject_id, record_id, record_path], skipped)``.
        features: ``(record_path, features, cache_dir) -> dict``: build one record's replay table in
            the cache; ``features`` is a :class:`bprl.features.FeatureConfig`.
        estimator: ``(out, kind, train, seed, records, features, cache_dir, checkpoint) -> None``;
            ``train`` is a :class:`bprl.estimator.TrainConfig`; ``records`` are dicts
            ``subject_id, record_id, record_path, split``.
        replay_set: ``(out, estimator_dir, records, splits, features, cache_dir) -> None``.
        agent: ``(out, env, agent_spec, seed, timesteps, params) -> None``.
        rollout: ``(out, policy, env, subject_ids, seed, agent_dir) -> None``: write an episode log (Parquet).
        evaluate: ``(logs, n_resamples, confidence, seed) -> dict[str, DataFrame]`` with at least ``"metrics"``.
        report: ``(results_dir, logs, tables, config, problems) -> None``.
    """

    cohort: Callable[..., Any]
    list_virtual: Callable[..., pd.DataFrame]
    list_real: Callable[..., tuple[pd.DataFrame, list[tuple[str, str]]]]
    features: Callable[..., Any]
    estimator: Callable[..., Any]
    replay_set: Callable[..., Any]
    agent: Callable[..., Any]
    rollout: Callable[..., Any]
    evaluate: Callable[..., dict[str, pd.DataFrame]]
    report: Callable[..., Any]


# ---------------------------------------------------------------- cohort and records
def stage_cohort(
    out: Path,
    n_subjects: int,
    hours: float,
    seed: int,
    spec: str | CohortSpec | None,
    workers: int,
    video: bool = False,
) -> dict[str, Any]:
    """Build a virtual cohort with :func:`bprl.cohort.make_cohort` (``hours`` per subject, h; with
    ``video``, also its virtual-camera clips)."""
    from bprl.cohort import make_cohort

    make_cohort(
        out,
        n_subjects=n_subjects,
        hours=hours,
        seed=seed,
        spec=spec,
        workers=workers,
        progress=False,
        video=video,
    )
    return {"subjects": n_subjects}


def stage_list_virtual(cohort_dir: Path) -> pd.DataFrame:
    """Records of a virtual cohort from its manifest: ``subject_id, record_id, record_path``."""
    from bprl.cohort.layout import load_manifest, record_path

    man = load_manifest(cohort_dir)
    rows = [
        {
            "subject_id": str(r.subject_id),
            "record_id": str(r.record_id),
            "record_path": str(record_path(cohort_dir, str(r.subject_id), str(r.record_id))),
        }
        for r in man.itertuples()
    ]
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def _why_unusable(r: Any, require: list[str], min_duration_s: float) -> str | None:
    """Why a scanned record cannot be used (error, missing role, too short), or ``None``."""
    missing = [role for role in require if not bool(getattr(r, f"has_{role}"))]
    if r.error:
        return str(r.error)
    if missing:
        return f"no {'/'.join(missing)} channel"
    if float(r.duration_s) < min_duration_s:
        return f"{float(r.duration_s):.1f} s < min_duration_s {min_duration_s:g}"
    return None


def stage_list_real(
    folders: list[str], require: list[str], min_duration_s: float
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Find real records under ``folders`` that have the required channel roles (headers only).

    Uses :func:`bprl.sources.scan_records` (multi-segment records count once;
    subject ids from the header comment or the ``p<id>`` folder). Returns the
    usable records (``subject_id, record_id, record_path``) and the others as
    ``(path, reason)``.
    """
    from bprl.sources import scan_records

    rows, skipped = [], []
    for folder in folders:
        for r in scan_records(folder).itertuples(index=False):
            why = _why_unusable(r, require, min_duration_s)
            if why is not None:
                skipped.append((str(r.path), why))
            else:
                rows.append(
                    {
                        "subject_id": str(r.subject_id),
                        "record_id": str(r.record_id),
                        "record_path": str(r.path),
                    }
                )
    return pd.DataFrame(rows, columns=RECORD_COLUMNS), skipped


# ---------------------------------------------------------------- features and estimator
def stage_features(record_path: str, features: FeatureConfig, cache_dir: str) -> dict[str, Any]:
    """Build (or find cached) one record's replay table with :func:`bprl.features.load_replay_table`."""
    from bprl.features import load_replay_table

    table = load_replay_table(record_path, features, cache_dir)
    n_ref = int(table["ref_sbp_mmhg"].notna().sum()) if "ref_sbp_mmhg" in table else 0
    return {"rows": len(table), "rows_with_reference": n_ref}


def _cohort_view(root: Path, records: list[dict[str, str]]) -> Path:
    """A folder in the virtual-cohort layout (manifest + ``waves/<sid>/<rid>`` links) over any records.

    :func:`bprl.estimator.train_estimator` reads a cohort folder; the view gives it
    the experiment's own split assignment and lets it read real records in place.
    """
    from bprl.cohort.layout import record_folder

    root.mkdir(parents=True, exist_ok=True)
    for r in records:
        link = record_folder(root, r["subject_id"], r["record_id"])
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink(Path(r["record_path"]).resolve().parent, link, target_is_directory=True)
    man = pd.DataFrame(records)[["subject_id", "record_id", "split"]]
    write_parquet_atomic(man, root / "manifest.parquet")
    return root


def _copy_checkpoint(out: Path, checkpoint: str) -> dict[str, Any]:
    """Copy a given estimator (folder or file) into ``out``."""
    src = Path(checkpoint)
    if src.is_dir():
        shutil.copytree(src, out, dirs_exist_ok=True)
    else:
        shutil.copy2(src, out / src.name)
    return {"checkpoint": str(src)}


def _validation_summary(out: Path) -> dict[str, Any]:
    """SBP / DBP MAE on the val and test splits from a trained checkpoint's ``metrics.json``."""
    from bprl.estimator import METRICS_FILE

    path = out / METRICS_FILE
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    summary: dict[str, Any] = {}
    for split in ("val", "test"):
        with contextlib.suppress(KeyError, TypeError):
            summary[split] = {f"{bp}_mae_mmhg": metrics[split][bp]["model"]["mae"] for bp in ("sbp", "dbp")}
    return summary


def stage_estimator(
    out: Path,
    kind: str,
    train: TrainConfig,
    seed: int,
    records: list[dict[str, str]],
    features: FeatureConfig,
    cache_dir: str,
    checkpoint: str | None,
) -> dict[str, Any]:
    """Train the population estimator on the train split (or copy a given checkpoint) into ``out``.

    ``cnn_gru``: :func:`bprl.estimator.train_estimator` with ``train`` (its ``model`` gives the
    :class:`~bprl.estimator.ModelConfig`), early stopping on the val split. ``pat_linear``:
    :class:`~bprl.estimator.PatLinearEstimator` fitted on the train split's replay tables,
    saved as ``pat_linear.json``.
    """
    from bprl import estimator as est

    out.mkdir(parents=True, exist_ok=True)
    if checkpoint:
        return _copy_checkpoint(out, checkpoint)
    if kind == "pat_linear":
        tables = [
            est.load_table(r["record_path"], features, cache_dir) for r in records if r["split"] == "train"
        ]
        model = est.PatLinearEstimator().fit(tables)
        model.save(out / "pat_linear.json")
        return {"n_steps": model.info.get("n_steps"), "residual_sd_mmhg": model.info.get("residual_sd_mmhg")}
    with tempfile.TemporaryDirectory(prefix=".cohort-view-", dir=out.parent) as tmp:
        view = _cohort_view(Path(tmp), records)
        est.train_estimator(
            view, out, config=train, seed=seed, feature_config=features, cache_dir=cache_dir, progress=False
        )
    return _validation_summary(out)


def _estimator_path(estimator_dir: Path) -> Path:
    """The estimator in a folder: the folder of a CNN-GRU checkpoint, else its first ``*.json`` / ``*.onnx``."""
    from bprl.estimator import MODEL_FILE

    root = Path(estimator_dir)
    if (root / MODEL_FILE).is_file():
        return root
    for pattern in ("*.json", "*.onnx"):
        found = sorted(p for p in root.glob(pattern) if not p.name.startswith("."))
        if found:
            return found[0]
    raise BprlError(f"{root}: no estimator checkpoint (model.pt, *.json or *.onnx)")


def stage_replay_set(
    out: Path,
    estimator_dir: str,
    records: list[dict[str, str]],
    splits: dict[str, str],
    features: FeatureConfig,
    cache_dir: str,
) -> dict[str, Any]:
    """Fill the estimator columns of every record's replay table and write the replay set.

    A subject with several records gets one table: its records in record-id
    order, steps renumbered and times shifted so they follow one another.
    Records whose estimates fail are left out (listed in ``replay_set.json``).
    """
    from bprl import estimator as est
    from bprl.features import concat_records, write_replay_set

    model_path = _estimator_path(Path(estimator_dir))
    model = est.load_estimator(model_path)
    by_subject: dict[str, list[pd.DataFrame]] = {}
    failed: list[dict[str, str]] = []
    for r in sorted(records, key=lambda r: (r["subject_id"], r["record_id"])):
        try:
            table = est.estimate_replay_table(r["record_path"], model, cache_dir, features)
        except BprlError as exc:
            failed.append({"record": r["record_path"], "error": str(exc)})
            continue
        by_subject.setdefault(r["subject_id"], []).append(table)
    tables = {sid: concat_records(parts).assign(subject_id=sid) for sid, parts in by_subject.items()}
    info = {
        "estimator": str(model_path),
        "estimator_fingerprint": model.fingerprint(),
        "features": features.model_dump(mode="json"),
        "records": [r["record_path"] for r in records],
        "failed": failed,
    }
    write_replay_set(out, tables, {s: splits[s] for s in tables}, info)
    return {"subjects": len(tables), "failed": len(failed)}


# ---------------------------------------------------------------- agents and rollouts
def _agent_spec_with(agent_spec: str, params: dict[str, Any]) -> str | dict[str, Any]:
    """The agent file, or a dict in the same layout with ``params`` set in every entry."""
    if not params:
        return agent_spec
    doc = yaml.safe_load(Path(agent_spec).read_text(encoding="utf-8")) or {}
    algo = doc.pop("algo", None) or Path(agent_spec).stem
    return {"algo": algo, **{k: ({**v, **params} if isinstance(v, dict) else v) for k, v in doc.items()}}


def stage_agent(
    out: Path, env: dict[str, Any], agent_spec: str, seed: int, timesteps: int, params: dict[str, Any]
) -> dict[str, Any]:
    """Train one RL agent with ``train_agent`` (``params`` override its hyperparameters)."""
    from bprl.policies.agents import train_agent

    train_agent(
        env["spec"],
        _agent_spec_with(agent_spec, params),
        seed=seed,
        out_dir=out,
        timesteps=timesteps,
        env_overrides=env["overrides"],
    )
    meta = json.loads((out / "agent.json").read_text())
    return {"timesteps": timesteps, "best": meta.get("best")}


def stage_rollout(
    out: Path,
    policy: dict[str, Any],
    env: dict[str, Any],
    subject_ids: list[str],
    seed: int,
    agent_dir: str | None,
) -> dict[str, Any]:
    """Run one policy on the test subjects for one seed; write its episode log (Parquet).

    ``policy`` holds ``name``, ``calibrator`` (a name, plugin or ``module:Class`` spec for
    :func:`bprl.policies.make_calibrator`), ``agent`` and ``params``.
    """
    from bprl.envs import make_env_from_spec
    from bprl.policies import fit_calibrator, make_calibrator, rollout

    if agent_dir is not None:
        from bprl.policies.agents import load_agent

        pol = load_agent(agent_dir, name=policy["name"])
        if pol.meta.get("residual"):  # a residual agent acts with its base rule, refit on the train split
            from bprl.policies.agents import residual_policy

            pol = residual_policy(pol, env["spec"], env["overrides"], name=policy["name"])
    live = make_env_from_spec(env["spec"], split="test", **env["overrides"])
    fitted = None
    if agent_dir is None:
        action_type = live.unwrapped.params.action_type
        pol = make_calibrator(policy["calibrator"], action_type=action_type, **policy.get("params", {}))
        if getattr(pol, "fits", False):  # fit on the train split only, never the test subjects
            train = make_env_from_spec(env["spec"], split="train", **env["overrides"])
            try:
                fitted = fit_calibrator(pol, train)
            finally:
                train.close()
    try:
        log = rollout(pol, live, subject_ids, seed=seed, policy_name=policy["name"])
    finally:
        live.close()
    log["family"] = pd.array([policy.get("family") or policy["name"]] * len(log), dtype="string")
    # a residual agent names its base rule, for the safety comparison of the report: the label of
    # the experiment's policy that runs that rule (``base_label``, set by the rollouts stage when it
    # differs from the calibrator's name), else the calibrator's name
    base_name = policy.get("base_label") or (pol.core.base.name if hasattr(pol, "core") else None)
    log["base_policy"] = pd.array([base_name] * len(log), dtype="string")
    rate = policy.get("target_cuffs_per_h")
    log["target_cuffs_per_h"] = float("nan") if rate is None else float(rate)
    write_parquet_atomic(log, out)
    return {"rows": len(log), "fitted": fitted}


# ---------------------------------------------------------------- evaluation and report
def stage_evaluate(
    logs: pd.DataFrame, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """Standards metrics: per policy (``metrics``), per (policy, seed), per subject, by BP change;
    with a cuff-rate sweep also the error-against-rate curves (``cuff_rate``) and the families
    compared, paired per subject, at 0.5, 1 and 2 readings per hour where the sweep reaches them
    (``paired_at_<rate>_per_h``, :func:`bprl.evaluation.compare_rates`)."""
    from bprl import evaluation as ev

    boot = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    tables = {
        "metrics": ev.compare_policies(logs, **boot),
        "per_seed": ev.evaluate_log(logs, **boot),
        "per_subject": ev.evaluate_subjects(logs),
        "change_bins": ev.evaluate_change_bins(logs),
    }
    if "target_cuffs_per_h" in logs and np.isfinite(logs["target_cuffs_per_h"].to_numpy(float)).any():
        tables["cuff_rate"] = ev.cuff_rate_curves(logs, **boot)
        for rate in ev.compare_rates(logs):
            paired = ev.paired_at_rate(logs, rate, **boot)
            if not paired.empty:
                tables[f"paired_at_{rate:g}_per_h"] = paired
    return tables


def stage_report(
    results_dir: Path, logs: pd.DataFrame, tables: dict[str, pd.DataFrame], config: dict, problems: list[str]
) -> Any:
    """Write figures, tables and the HTML/Markdown report (:func:`bprl.report.write_report`); the
    cohort manifest under ``work/cohort`` (virtual subjects' sex, age, category and rhythm
    settings) describes the test population when it is there."""
    from bprl.report import write_report
    from bprl.report.write import results_subjects

    boot = (config or {}).get("evaluation") or {}
    subjects = results_subjects(results_dir)
    return write_report(
        results_dir,
        logs,
        tables["metrics"],
        config=config,
        problems=problems,
        seed=int(boot.get("seed", 0)),
        n_resamples=int(boot.get("n_resamples", 1000)),
        subjects=subjects,
    )


def default_stages() -> Stages:
    """The real stage functions (cohort, features, estimator, agents, calibrators, evaluation, report)."""
    return Stages(
        cohort=stage_cohort,
        list_virtual=stage_list_virtual,
        list_real=stage_list_real,
        features=stage_features,
        estimator=stage_estimator,
        replay_set=stage_replay_set,
        agent=stage_agent,
        rollout=stage_rollout,
        evaluate=stage_evaluate,
        report=stage_report,
    )
