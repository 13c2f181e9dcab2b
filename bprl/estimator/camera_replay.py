"""Camera replay set: camera replay tables of a video cohort with a PPG-only estimator's estimates.

A camera has no ECG, so the PAT estimators do not apply. The camera estimator is a
:class:`~bprl.estimator.linear.DeltaLinearEstimator` (slopes fit within training subjects) on the
camera features :data:`bprl.features.camera_table.CAMERA_FEATURE_COLUMNS` (heart rate, pulse
amplitude, rise time and width), fit on the train split; it fills ``est_sbp_mmhg`` /
``est_dbp_mmhg`` of every table of the replay set.
"""

from __future__ import annotations

import os

from bprl.features.camera_table import CAMERA_FEATURE_COLUMNS, camera_replay_table
from bprl.features.config import FeatureConfig
from bprl.features.replay_set import ReplaySet, write_replay_set

__all__ = ["build_camera_replay_set"]


def build_camera_replay_set(
    cohort_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: FeatureConfig | None = None,
    features: tuple[str, ...] = CAMERA_FEATURE_COLUMNS,
) -> ReplaySet:
    """Camera replay set of a virtual cohort made with ``--video``, with delta-linear estimates.

    The estimator (:class:`~bprl.estimator.linear.DeltaLinearEstimator` on ``features``) is fit on
    the train split's tables and fills ``est_sbp_mmhg`` / ``est_dbp_mmhg`` of every table; its
    coefficients are kept in ``replay_set.json``.

    Raises:
        CohortError: a subject has no video.
        FeatureError: a video is shorter than one window.
        EstimatorError: too few usable training steps.
    """
    from bprl.cohort import load_manifest, read_truth
    from bprl.cohort.video_subject import video_clips
    from bprl.estimator.linear import DeltaLinearEstimator

    cfg = config or FeatureConfig()
    manifest = load_manifest(cohort_root)
    tables, splits = {}, {}
    for row in manifest.itertuples():
        sid = str(row.subject_id)
        clips = video_clips(cohort_root, sid)
        tables[sid] = camera_replay_table(clips, sid, str(row.record_id), read_truth(cohort_root, sid), cfg)
        splits[sid] = str(row.split)
    train = [t for s, t in tables.items() if splits[s] == "train"]
    est = DeltaLinearEstimator(features).fit(train)
    for t in tables.values():
        sbp, dbp = est.predict_table(t)
        t["est_sbp_mmhg"], t["est_dbp_mmhg"] = sbp, dbp
    info = {
        "source": "camera",
        "cohort": str(cohort_root),
        "features": cfg.model_dump(),
        "estimator": est.to_dict(),
    }
    return write_replay_set(out_dir, tables, splits, info)
