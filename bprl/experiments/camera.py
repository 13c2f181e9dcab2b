"""The camera path of an experiment: virtual video -> camera replay tables -> camera estimator.

An experiment with ``cohort.virtual.video: true`` and ``estimator.kind: camera_linear``
(:attr:`bprl.experiments.schema.ExperimentConfig.camera`) runs :data:`CAMERA_PIPELINE`: the stages
of :data:`bprl.experiments.stages.PIPELINE` with four replaced by their camera versions:

==============  =====================================================================
cohort          the virtual cohort made with ``video=True`` (skin-region clips + truth)
features        one camera replay table per record (:func:`stage_camera_features`:
                :func:`bprl.features.camera_table.camera_replay_table` of the subject's clips,
                reference BP from its truth table), ``work/camera_tables/<sid>__<rid>.parquet``
estimator       :class:`~bprl.estimator.linear.DeltaLinearEstimator` on
                :data:`~bprl.features.camera_table.CAMERA_FEATURE_COLUMNS`, fit on the train
                split's camera tables (:func:`stage_camera_estimator`), ``camera_linear.json``
replay_set      the camera tables with the estimates filled (:func:`stage_camera_replay_set`)
==============  =====================================================================

Records, agents, rollouts, evaluation and report are the ordinary stages. The unit functions are
module-level (they pickle for the process pool and Ray).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bprl.errors import EstimatorError
from bprl.experiments.loading import Experiment
from bprl.experiments.stages import (
    PIPELINE,
    CohortStage,
    EstimatorStage,
    FeaturesStage,
    ReplaySetStage,
    Stage,
)
from bprl.experiments.state import RunContext, RunState
from bprl.experiments.units import Unit, fingerprint
from bprl.features import feature_code_version
from bprl.features.config import FeatureConfig
from bprl.io import sha256_files, write_parquet_atomic

__all__ = [
    "CAMERA_ESTIMATOR_FILE",
    "CAMERA_PIPELINE",
    "CAMERA_TABLES_DIR",
    "CameraCohortStage",
    "CameraEstimatorStage",
    "CameraFeaturesStage",
    "CameraReplaySetStage",
    "camera_code_version",
    "pipeline_for",
    "stage_camera_estimator",
    "stage_camera_features",
    "stage_camera_replay_set",
]

#: folder of the camera replay tables under the run's ``work/``
CAMERA_TABLES_DIR = "camera_tables"
#: file name of the fitted camera estimator in ``work/estimator``
CAMERA_ESTIMATOR_FILE = "camera_linear.json"
#: file names of the BP-range classifiers (``estimator.range_classifier``) in ``work/estimator``
CAMERA_RANGE_FILES = {"plain": "camera_range.json", "oversampled": "camera_range_oversampled.json"}


def camera_code_version() -> str:
    """sha256 of the camera code (``bprl/sources/camera/*.py``): with
    :func:`~bprl.features.feature_code_version` part of the camera tables' fingerprints."""
    import bprl.sources.camera as camera_pkg

    return sha256_files(sorted(Path(camera_pkg.__file__).parent.glob("*.py")))


def _table_path(tables_dir: str | os.PathLike[str], subject_id: str, record_id: str) -> Path:
    """``<tables_dir>/<subject_id>__<record_id>.parquet``."""
    return Path(tables_dir) / f"{subject_id}__{record_id}.parquet"


# ---------------------------------------------------------------- unit functions
def stage_camera_features(
    out: Path, cohort_dir: str, subject_id: str, record_id: str, features: FeatureConfig
) -> dict[str, Any]:
    """Write one record's camera replay table (Parquet) to ``out``.

    The table is :func:`bprl.features.camera_table.camera_replay_table` of the subject's region
    clips with the reference BP of its truth table.

    Raises:
        CohortError: the subject has no video (the cohort was made without it).
        FeatureError: the video is shorter than one window.
    """
    from bprl.cohort import read_truth
    from bprl.cohort.video_subject import video_clips
    from bprl.features.camera_table import camera_replay_table

    clips = video_clips(cohort_dir, subject_id)
    table = camera_replay_table(clips, subject_id, record_id, read_truth(cohort_dir, subject_id), features)
    write_parquet_atomic(table, out)
    n_ref = int(table["ref_sbp_mmhg"].notna().sum())
    return {"rows": len(table), "rows_with_reference": n_ref}


def _read_tables(records: list[dict[str, str]], tables_dir: str) -> dict[str, list[pd.DataFrame]]:
    """The camera tables of ``records`` by subject, in record-id order."""
    by_subject: dict[str, list[pd.DataFrame]] = {}
    for r in sorted(records, key=lambda r: (r["subject_id"], r["record_id"])):
        path = _table_path(tables_dir, r["subject_id"], r["record_id"])
        by_subject.setdefault(r["subject_id"], []).append(pd.read_parquet(path))
    return by_subject


def stage_camera_estimator(
    out: Path, records: list[dict[str, str]], tables_dir: str, range_classifier: bool = False
) -> dict[str, Any]:
    """Fit the camera estimator on the train split's camera tables; write ``camera_linear.json`` in ``out``.

    The estimator is a :class:`~bprl.estimator.linear.DeltaLinearEstimator` on
    :data:`~bprl.features.camera_table.CAMERA_FEATURE_COLUMNS` (slopes within subjects). With
    ``range_classifier`` two :class:`~bprl.estimator.range_classifier.RangeClassifier` on the same
    columns are fit too (without and with range-stratified oversampling, files
    :data:`CAMERA_RANGE_FILES`) and scored on the test split's steps beside the majority range of
    the train split (``ranges`` of the result: :func:`~bprl.estimator.ranges.range_metrics` of
    each, with the population estimate's MAE per range).

    Raises:
        EstimatorError: too few usable training steps.
    """
    from bprl.estimator.linear import DeltaLinearEstimator
    from bprl.features.camera_table import CAMERA_FEATURE_COLUMNS

    out.mkdir(parents=True, exist_ok=True)
    train = [r for r in records if r["split"] == "train"]
    tables = [t for parts in _read_tables(train, tables_dir).values() for t in parts]
    est = DeltaLinearEstimator(CAMERA_FEATURE_COLUMNS).fit(tables)
    est.save(out / CAMERA_ESTIMATOR_FILE)
    result: dict[str, Any] = {
        "n_steps": est.info.get("n_steps"),
        "coef_sbp": [round(float(c), 6) for c in est.coef_sbp],
        "within_residual_sd_mmhg": est.info.get("within_residual_sd_mmhg"),
    }
    if range_classifier:
        test = [r for r in records if r["split"] == "test"]
        test_tables = [t for parts in _read_tables(test, tables_dir).values() for t in parts]
        result["ranges"] = _fit_range_classifiers(out, est, tables, test_tables, CAMERA_FEATURE_COLUMNS)
    return result


def _fit_range_classifiers(
    out: Path, est: Any, train: list[pd.DataFrame], test: list[pd.DataFrame], features: tuple[str, ...]
) -> dict[str, Any]:
    """Fit the plain and the oversampled range classifier on ``train``; their test-split scores (an
    ``error`` entry instead when they cannot be fit, e.g. every train step in one range)."""
    from bprl.estimator.range_classifier import RangeClassifier
    from bprl.estimator.ranges import BP_RANGES, bp_range, range_metrics

    data = pd.concat(test, ignore_index=True) if test else pd.DataFrame()
    if data.empty:
        return {"error": "no test steps"}
    ref = data[["ref_sbp_mmhg", "ref_dbp_mmhg"]].to_numpy(np.float64)
    pop = np.column_stack(est.predict_table(data))  # the population estimate, no calibration
    train_ranges = bp_range(*(pd.concat(train)[c].to_numpy(float) for c in ("ref_sbp_mmhg", "ref_dbp_mmhg")))
    majority = int(np.bincount(train_ranges[train_ranges >= 0], minlength=len(BP_RANGES)).argmax())
    scores: dict[str, Any] = {"majority_range": BP_RANGES[majority]}
    scores["majority"] = range_metrics(pop, ref, np.full(len(data), majority))
    for name, oversample in (("plain", False), ("oversampled", True)):
        try:
            clf = RangeClassifier(features, oversample=oversample).fit(train)
        except EstimatorError as err:  # e.g. one range among the train steps: reported, not fatal
            return {**scores, "error": str(err)}
        clf.save(out / CAMERA_RANGE_FILES[name])
        scores[name] = range_metrics(pop, ref, clf.predict_table(data))
        scores[name]["train_steps_per_range"] = clf.info["train_steps_per_range"]
    return scores


def stage_camera_replay_set(
    out: Path,
    estimator_dir: str,
    records: list[dict[str, str]],
    splits: dict[str, str],
    tables_dir: str,
    features: FeatureConfig,
) -> dict[str, Any]:
    """Fill the estimates of every camera table and write the replay set (one table per subject)."""
    from bprl.estimator.linear import DeltaLinearEstimator
    from bprl.features import concat_records, write_replay_set

    model_path = Path(estimator_dir) / CAMERA_ESTIMATOR_FILE
    est = DeltaLinearEstimator.load(model_path)
    tables = {}
    for sid, parts in _read_tables(records, tables_dir).items():
        table = concat_records(parts).assign(subject_id=sid)
        table["est_sbp_mmhg"], table["est_dbp_mmhg"] = est.predict_table(table)
        tables[sid] = table
    info = {
        "source": "camera",
        "estimator": str(model_path),
        "estimator_fingerprint": est.fingerprint(),
        "features": features.model_dump(mode="json"),
        "records": [r["record_path"] for r in records],
        "failed": [],
    }
    write_replay_set(out, tables, {s: splits[s] for s in tables}, info)
    return {"subjects": len(tables)}


# ---------------------------------------------------------------- stages
class CameraCohortStage(CohortStage):
    """The virtual cohort with its virtual-camera video (``make_cohort(..., video=True)``)."""

    def units(self, ctx: RunContext, state: RunState) -> list[Unit]:
        """The cohort unit of :class:`CohortStage` with ``video=True`` (its fingerprint includes it)."""
        units = super().units(ctx, state)
        for u in units:
            u.kwargs["video"] = True
            u.fingerprint = fingerprint(u.fingerprint, "video")
        return units


class CameraFeaturesStage(FeaturesStage):
    """One camera replay table per record, in ``work/camera_tables``."""

    def units(self, ctx: RunContext, state: RunState) -> list[Unit]:
        """One unit ``features/<subject>__<record>`` per record, writing its camera table."""
        cfg = ctx.exp.config
        features_fp = fingerprint(
            "camera_features",
            cfg.features.model_dump(mode="json"),
            state.fingerprints["cohort"],
            feature_code_version(),
            camera_code_version(),
        )
        state.fingerprints["features"] = features_fp
        tables = ctx.work / CAMERA_TABLES_DIR
        return [
            Unit(
                f"features/{r.subject_id}__{r.record_id}",
                stage_camera_features,
                {
                    "cohort_dir": str(ctx.work / "cohort"),
                    "subject_id": r.subject_id,
                    "record_id": r.record_id,
                    "features": cfg.features,
                },
                _table_path(tables, r.subject_id, r.record_id),
                ctx.marker("features", f"{r.subject_id}__{r.record_id}"),
                fingerprint(features_fp, r.subject_id, r.record_id),
            )
            for r in state.records.itertuples()
        ]


class CameraEstimatorStage(EstimatorStage):
    """The camera estimator, fit on the train split's camera tables, in ``work/estimator``."""

    def units(self, ctx: RunContext, state: RunState) -> list[Unit]:
        """One unit ``estimator/estimator``."""
        records = state.record_list()
        fp = fingerprint(
            "camera_estimator",
            ctx.exp.config.estimator.model_dump(mode="json"),
            state.fingerprints["features"],
            records,
            state.run_ids["features"],
        )
        state.fingerprints["estimator"] = fp
        kwargs = {
            "records": records,
            "tables_dir": str(ctx.work / CAMERA_TABLES_DIR),
            "range_classifier": ctx.exp.config.estimator.range_classifier,
        }
        return [
            Unit(
                "estimator/estimator",
                stage_camera_estimator,
                kwargs,
                ctx.work / "estimator",
                ctx.marker("estimator", "estimator"),
                fp,
                output_is_dir=True,
            )
        ]


class CameraReplaySetStage(ReplaySetStage):
    """The camera replay set (estimates filled), in ``work/replay_set``; the env settings."""

    def units(self, ctx: RunContext, state: RunState) -> list[Unit]:
        """One unit ``replay_set/replay_set``."""
        records = state.record_list()
        fp = fingerprint(
            "camera_replay_set", state.fingerprints["estimator"], records, state.run_ids["estimator"]
        )
        state.fingerprints["replay_set"] = fp
        kwargs = {
            "estimator_dir": str(ctx.work / "estimator"),
            "records": records,
            "splits": state.splits,
            "tables_dir": str(ctx.work / CAMERA_TABLES_DIR),
            "features": ctx.exp.config.features,
        }
        return [
            Unit(
                "replay_set/replay_set",
                stage_camera_replay_set,
                kwargs,
                ctx.work / "replay_set",
                ctx.marker("replay_set", "replay_set"),
                fp,
                output_is_dir=True,
            )
        ]


#: the stages of :data:`PIPELINE` that a camera experiment replaces, and their camera versions
_CAMERA_STAGES: dict[type[Stage], type[Stage]] = {
    CohortStage: CameraCohortStage,
    FeaturesStage: CameraFeaturesStage,
    EstimatorStage: CameraEstimatorStage,
    ReplaySetStage: CameraReplaySetStage,
}


#: the stages of a camera experiment, in order
CAMERA_PIPELINE: tuple[Stage, ...] = tuple(
    _CAMERA_STAGES[type(s)]() if type(s) in _CAMERA_STAGES else s for s in PIPELINE
)


def pipeline_for(exp: Experiment) -> tuple[Stage, ...]:
    """:data:`CAMERA_PIPELINE` for a camera experiment (``cohort.virtual.video: true``), else
    :data:`~bprl.experiments.stages.PIPELINE`."""
    return CAMERA_PIPELINE if exp.config.camera else PIPELINE
