"""Camera chain: virtual video -> camera replay tables -> PPG-only estimator -> env -> calibrators.

A virtual cohort (seed 0, ``--subjects`` x ``--hours``) is made with ``--video`` (32x32 px,
15 fps to keep it fast), its camera replay set is built (:mod:`bprl.estimator.camera_replay`:
PPG-only features, delta-linear estimator fit on the train split), and classical calibrators run
on the test subjects of ``envs/camera.yaml``.

Printed: the HR error of the camera tables against the truth feet (per window), the estimator's
coefficients, its within-subject correlation with the reference SBP on the test subjects, and SBP /
DBP MAE per calibrator on the test subjects.

Usage: ``python -m benchmarks camera_chain`` (``--subjects``, ``--hours``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bprl.cohort import make_cohort
from bprl.cohort.video_subject import read_video_truth
from bprl.envs import make_env_from_spec
from bprl.estimator.camera_replay import build_camera_replay_set
from bprl.features.replay_set import read_replay_set
from bprl.policies.registry import make_calibrator
from bprl.policies.rollout import rollout

REPO = Path(__file__).resolve().parents[1]
SPEC = {"video_size_px": 32, "video_fps_hz": 15.0}
POLICIES = ("none", "one_shot", "periodic", "kalman")


def _within_r(t: pd.DataFrame) -> float:
    """Correlation of estimate and reference SBP after removing each subject's means."""
    ok = t[["est_sbp_mmhg", "ref_sbp_mmhg"]].notna().all(axis=1)
    t = t[ok]
    e = t["est_sbp_mmhg"] - t.groupby("subject_id")["est_sbp_mmhg"].transform("mean")
    r = t["ref_sbp_mmhg"] - t.groupby("subject_id")["ref_sbp_mmhg"].transform("mean")
    return float(np.corrcoef(e, r)[0, 1])


def main(argv: list[str] | None = None) -> None:
    """Run the chain and print its tables."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks camera_chain")
    ap.add_argument("--subjects", type=int, default=12)
    ap.add_argument("--hours", type=float, default=0.5)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_cohort(
            Path(tmp) / "cohort", args.subjects, args.hours, 0, spec=SPEC, progress=False, video=True
        )
        t_video = time.perf_counter() - t0
        rs = build_camera_replay_set(root, Path(tmp) / "replay")
        rs = read_replay_set(Path(tmp) / "replay")
        tables = {s: rs.table(s) for s in rs.subject_ids()}
        hr_err = []
        for sid, t in tables.items():
            gt = read_video_truth(root, sid)["feet"]["foot_s"].to_numpy()
            for row in t.itertuples():
                f = gt[(gt >= row.t_start_s) & (gt < row.t_end_s)]
                if len(f) > 2 and np.isfinite(row.hr_bpm):
                    hr_err.append(abs(row.hr_bpm - 60.0 * (len(f) - 1) / (f[-1] - f[0])))
        test = rs.subject_ids("test")
        env = make_env_from_spec(
            REPO / "envs" / "camera.yaml", split="test", replay_set=str(Path(tmp) / "replay")
        )
        rows = []
        for name in POLICIES:
            log = rollout(make_calibrator(name), env, seed=0)
            rows.append(
                {
                    "policy": name,
                    "SBP MAE": float(np.nanmean(np.abs(log.corr_sbp_mmhg - log.ref_sbp_mmhg))),
                    "DBP MAE": float(np.nanmean(np.abs(log.corr_dbp_mmhg - log.ref_dbp_mmhg))),
                    "cuffs/subject": float(log.cuff.sum() / log.subject_id.nunique()),
                }
            )
    est = rs.info["estimator"]
    all_t = pd.concat(tables.values(), ignore_index=True)
    test_t = all_t[all_t.subject_id.isin(test)]
    print(
        f"\n{args.subjects} subjects x {args.hours:g} h, video 32 px 15 fps, 30-s steps; test subjects {test}"
    )
    print(f"video rendering + cohort: {t_video:.0f} s")
    print(f"window HR |error| vs true feet: median {np.median(hr_err):.2f}, mean {np.mean(hr_err):.2f} bpm")
    cov = all_t[list(est["features"])].notna().mean().round(3).to_dict()
    print(f"feature coverage (share of steps): {cov}")
    print(f"estimator features {est['features']}")
    print(
        f"  SBP slopes {np.round(est['coef_sbp'], 3).tolist()}  DBP slopes {np.round(est['coef_dbp'], 3).tolist()}"
    )
    print(f"within-subject r (est vs ref SBP), test subjects: {_within_r(test_t):.2f}")
    print("\ncalibrators on the test subjects (envs/camera.yaml, seed 0):")
    print(pd.DataFrame(rows).round(2).to_string(index=False))
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
