"""Does the camera PPG carry BP within a subject? The simulator's truth against the camera features.

Reads the results folder of ``bprl run experiments/camera.yaml`` (default ``results/camera``): its
virtual cohort (truth tables, subject parameters), its camera replay tables and its split. Per
subject and 30-s window (the experiment's steps) it prints:

1. **the simulator** (``bprl.cohort.waveforms``): the PPG pulse amplitude of the model,
   ``(1 + 0.012 (PP - 45)) exp(-0.2 tone)`` (pulse pressure widens it, sympathetic tone narrows
   it), the delay of the reflected (dicrotic) wave after the systolic peak,
   ``height / (1.1 PWV)`` with PWV from MAP (Moens-Korteweg/Hughes), that delay as a share of the
   beat (where it sits in the pulse), and HR: within-subject r with the window's SBP and the
   within-subject SD of each (what a perfect measurement of the PPG shape could use);
2. **the camera features** (``bprl.features.camera_table``): within-subject r with SBP;
3. **within-subject delta-linear estimators** fit on the train subjects, tracking
   (:mod:`bprl.tracking`: median r over subjects with its 95 % bootstrap interval, trend ratio
   against *hold*) on the val and test subjects: the shipped camera features, subsets of them,
   and the truth's PPG-shape quantities of (1) measured perfectly (an upper bound);
4. **the reflected wave measured from a pulse**: per window, the mean of the beats aligned on their
   feet (amplitude-normalised, 0-600 ms after the foot, the pulse interpolated 8x), and the lag
   (ms; cross-correlation of first differences, parabolic peak) of its late decay (40-400 ms after
   the systolic peak, where the dicrotic wave sits) against the subject's mean beat: within-subject
   r with SBP for the rendered noiseless pulse at the frame rate with the true feet (what the
   frames could carry), the same band-passed 0.5-8 Hz as the camera's wide-band pulse, with white
   noise of 10 % and 20 % of its SD added (seeded), the camera's wide-band POS pulse with the true
   feet, and with its own feet (:func:`bprl.features.camera_table.camera_beats`).

With ``--clean-video`` it prints table 4 instead for a small cohort rendered here under better
conditions (3 subjects x 0.25 h, 64x64 px at 30 fps, skin types I-III, no motion, steady light;
sensor noise, 8 bits and MJPG remain): how much of the reflected wave a cleaner camera keeps.

Usage: ``python -m benchmarks camera_info`` (reads ``results/camera``) or
``python -m benchmarks.bench_camera_info [--results DIR] [--clean-video]``; without a camera replay
set it says so and returns.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal

from bprl.cohort import load_manifest, read_truth
from bprl.cohort.video_subject import read_video_truth, video_clips
from bprl.errors import EstimatorError
from bprl.estimator.linear import DeltaLinearEstimator
from bprl.features.camera_table import CAMERA_FEATURE_COLUMNS, camera_beats
from bprl.features.replay_set import read_replay_set
from bprl.sources.camera import bandpass
from bprl.sources.camera.pulse_feet import WIDE_BAND_HZ
from bprl.tracking import pooled_tracking, subject_tracking

TRUTH_COLUMNS = ("truth_amp", "truth_reflection_ms", "truth_reflection_share", "truth_hr_bpm")
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "camera: hr, amp, rise, width (shipped)": CAMERA_FEATURE_COLUMNS,
    "camera: amp": ("ppg_amp",),
    "camera: hr, amp": ("hr_bpm", "ppg_amp"),
    "camera: rise, width": ("ppg_rise_time_ms", "ppg_width_ms"),
    "truth: amplitude": ("truth_amp",),
    "truth: reflection delay": ("truth_reflection_ms",),
    "truth: amplitude, reflection, share, hr": TRUTH_COLUMNS,
}


def _truth_windows(
    cohort: Path, sid: str, params: pd.Series, starts_s: np.ndarray, window_s: float
) -> pd.DataFrame:
    """Per window: medians of the model's PPG amplitude, reflection delay (ms and share of the beat), HR."""
    t = read_truth(cohort, sid)
    t = t[~t["ectopic"].to_numpy(bool)]
    pp = t["sbp_mmhg"] - t["dbp_mmhg"]
    amp = (1 + 0.012 * (pp - 45)) * np.exp(-0.2 * t["sympathetic_tone"])
    refl_ms = float(params["height_cm"]) / 100.0 / (1.1 * t["pwv_m_s"]) * 1e3
    per_beat = pd.DataFrame(
        {
            "r": t["r_time_s"],
            "truth_amp": amp,
            "truth_reflection_ms": refl_ms,
            "truth_reflection_share": refl_ms / t["rr_ms"],
            "truth_hr_bpm": t["hr_bpm"],
        }
    )
    rows = []
    for s in starts_s:
        b = per_beat[(per_beat["r"] >= s) & (per_beat["r"] < s + window_s)]
        rows.append(
            b[list(TRUTH_COLUMNS)].median() if len(b) else pd.Series(np.nan, index=list(TRUTH_COLUMNS))
        )
    return pd.DataFrame(rows).reset_index(drop=True)


def _within_r(g: pd.DataFrame, col: str) -> float:
    d = g[[col, "ref_sbp_mmhg"]].dropna()
    if len(d) < 5 or d[col].std() == 0:
        return float("nan")
    return float(np.corrcoef(d[col], d["ref_sbp_mmhg"])[0, 1])


def _tracking(table: pd.DataFrame, train: list[str], subjects: list[str], cols: tuple[str, ...]) -> dict:
    est = DeltaLinearEstimator(cols).fit(table[table["subject_id"].isin(train)])
    part = table[table["subject_id"].isin(subjects)].copy()
    part["est_sbp_mmhg"], part["est_dbp_mmhg"] = est.predict_table(part)
    steps = part.assign(t_s=part["t_start_s"])
    return pooled_tracking(subject_tracking(steps), seed=0)["sbp"]


TEMPLATE_DT_S = 0.002  # grid of the mean beat, s
TEMPLATE_S = 0.6  # mean beat from the foot to 600 ms after it
MAX_LAG = 40  # samples of TEMPLATE_DT_S: +-80 ms


def _beat_matrix(y: np.ndarray, fs_hz: float, feet_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude-normalised beats on a common grid from each foot (beats of 0.45-2 s), and their feet."""
    t = np.arange(len(y)) / fs_hz
    grid = np.arange(0.0, TEMPLATE_S, TEMPLATE_DT_S)
    beats, feet = [], []
    for a, b in itertools.pairwise(feet_s):
        if 0.45 < b - a < 2.0:
            seg = np.interp(a + grid, t, y)
            amp = seg.max() - seg[0]
            if amp > 0:
                beats.append((seg - seg[0]) / amp)
                feet.append(a)
    return np.asarray(beats), np.asarray(feet)


def _late_lag_ms(beat: np.ndarray, ref: np.ndarray, lo: int, hi: int) -> float:
    """Lag of ``beat`` against ``ref`` over samples ``lo:hi`` (first differences), ms."""
    a, b = np.diff(beat)[lo:hi], np.diff(ref)[lo:hi]
    a, b = a - a.mean(), b - b.mean()
    c = np.array(
        [np.dot(np.roll(a, k)[MAX_LAG:-MAX_LAG], b[MAX_LAG:-MAX_LAG]) for k in range(-MAX_LAG, MAX_LAG + 1)]
    )
    i = int(np.argmax(c))
    frac = 0.0
    if 0 < i < len(c) - 1 and (c[i - 1] - 2 * c[i] + c[i + 1]) != 0:
        frac = (c[i - 1] - c[i + 1]) / (2 * (c[i - 1] - 2 * c[i] + c[i + 1]))
    return (i - MAX_LAG + frac) * TEMPLATE_DT_S * 1e3


def _lag_r(y: np.ndarray, fs_hz: float, feet_s: np.ndarray, truth: pd.DataFrame, window_s: float) -> float:
    """Within-subject r of the late-decay lag per window with the window's median SBP."""
    y_up = signal.resample_poly(y, 8, 1)
    beats, feet = _beat_matrix(y_up, fs_hz * 8, feet_s)
    ref = np.median(beats, axis=0)
    ip = int(np.argmax(ref))
    lo, hi = ip + int(0.04 / TEMPLATE_DT_S), min(ip + int(0.40 / TEMPLATE_DT_S), len(ref) - 2)
    w = (feet // window_s).astype(int)
    lag, sbp = [], []
    for k in np.unique(w):
        if (w == k).sum() >= 5:
            tb = truth[(truth["r_time_s"] >= k * window_s) & (truth["r_time_s"] < (k + 1) * window_s)]
            lag.append(_late_lag_ms(np.median(beats[w == k], axis=0), ref, lo, hi))
            sbp.append(tb["sbp_mmhg"].median())
    return float(np.corrcoef(lag, sbp)[0, 1]) if len(lag) >= 5 else float("nan")


def _reflection_from_pulses(cohort: Path, subjects: list[str], window_s: float) -> pd.DataFrame:
    """Section 4: per subject, r of the late-decay lag with SBP for each pulse."""
    rows = []
    for sid in subjects:
        vt, truth = read_video_truth(cohort, sid), read_truth(cohort, sid)
        fs = float(vt["meta"]["fps_hz"])
        cam_beats, _, pulse = camera_beats(video_clips(cohort, sid))
        cam_feet = cam_beats["t_foot_s"].to_numpy()
        true_feet = vt["feet"]["foot_s"].to_numpy()
        rendered = vt["frames"]["ppg"].to_numpy()
        banded = bandpass(rendered, fs, WIDE_BAND_HZ)
        rng = np.random.default_rng([0, int(sid.lstrip("v"))])
        noisy = {
            f"rendered band-passed + {share:.0%} noise, true feet": _lag_r(
                banded + rng.normal(0.0, share * banded.std(), len(banded)), fs, true_feet, truth, window_s
            )
            for share in (0.1, 0.2)
        }
        rows.append(
            {
                "subject": sid,
                "skin_type": vt["meta"]["skin_type"],
                "rendered pulse, true feet": _lag_r(rendered, fs, true_feet, truth, window_s),
                "rendered band-passed 0.5-8 Hz, true feet": _lag_r(banded, fs, true_feet, truth, window_s),
                **noisy,
                "camera pulse, true feet": _lag_r(pulse, fs, true_feet, truth, window_s),
                "camera pulse, camera feet": _lag_r(pulse, fs, cam_feet, truth, window_s),
            }
        )
    return pd.DataFrame(rows)


CLEAN_VIDEO_SPEC = {
    "video_size_px": 64,
    "video_fps_hz": 30.0,
    "video_skin_types": [1, 2, 3],
    "video_motion_px": 0.0,
    "video_light_sd": 0.0,
    "video_light_steps_per_min": 0.0,
}


def _clean_video() -> None:
    """Table 4 on 3 subjects x 0.25 h of cleaner video (:data:`CLEAN_VIDEO_SPEC`), rendered in a temporary folder."""
    import tempfile
    import time

    from bprl.cohort import make_cohort

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cohort = make_cohort(Path(tmp) / "c", 3, 0.25, 0, spec=CLEAN_VIDEO_SPEC, progress=False, video=True)
        subjects = sorted(load_manifest(cohort)["subject_id"].astype(str))
        lag = _reflection_from_pulses(cohort, subjects, 30.0)
    print(f"\n4'. reflected-wave lag on cleaner video {CLEAN_VIDEO_SPEC}, 3 subjects x 0.25 h, seed 0")
    print(lag.set_index("subject").round(2).T.to_string())
    print(f"({time.perf_counter() - t0:.0f} s)")


def main(argv: list[str] | None = None) -> None:
    """Print the four tables."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_camera_info")
    ap.add_argument("--results", default="results/camera", help="results folder of experiments/camera.yaml")
    ap.add_argument(
        "--clean-video", action="store_true", help="table 4 on a cleaner video cohort rendered here"
    )
    args = ap.parse_args(argv)
    if args.clean_video:
        _clean_video()
        return
    res = Path(args.results)
    cohort, rs_dir = res / "work" / "cohort", res / "work" / "replay_set"
    if not (rs_dir / "replay_set.json").is_file():
        # a message, not an exit: `python -m benchmarks` (every benchmark) goes on with the others
        print(f"skipped: {res} has no camera replay set; run `bprl run experiments/camera.yaml` first")
        return
    rs = read_replay_set(rs_dir)
    man = load_manifest(cohort).set_index("subject_id")
    tables = []
    for sid in rs.subject_ids():
        t = rs.table(sid).reset_index(drop=True)
        window_s = float((t["t_end_s"] - t["t_start_s"]).iloc[0])
        truth = _truth_windows(cohort, sid, man.loc[sid], t["t_start_s"].to_numpy(), window_s)
        tables.append(pd.concat([t, truth], axis=1))
    table = pd.concat(tables, ignore_index=True)
    train, val, test = (rs.subject_ids(k) for k in ("train", "val", "test"))
    print(f"\n{res}: {len(rs.subject_ids())} subjects ({len(train)} train, {len(val)} val, {len(test)} test)")

    print("\n1-2. within-subject r with the window's SBP (median over all subjects [min, max]) and SD")
    rows = []
    for col in (*TRUTH_COLUMNS, *CAMERA_FEATURE_COLUMNS, "sqi_ppg"):
        r = table.groupby("subject_id").apply(lambda g, c=col: _within_r(g, c))
        sd = table.groupby("subject_id")[col].std()
        rows.append(
            {
                "quantity": col,
                "r median": r.median(),
                "r min": r.min(),
                "r max": r.max(),
                "within SD (median)": sd.median(),
            }
        )
    sbp_sd = table.groupby("subject_id")["ref_sbp_mmhg"].std().median()
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    print(f"within-subject SD of the window SBP: median {sbp_sd:.1f} mmHg")

    print(
        "\n3. delta-linear estimators fit on the train subjects: SBP tracking (median over subjects, 95 % CI)"
    )
    rows = []
    for label, cols in FEATURE_SETS.items():
        for name, ids in (("val", val), ("test", test)):
            try:
                p = _tracking(table, train, ids, cols)
            except EstimatorError as exc:
                rows.append({"features": label, "subjects": name, "r": str(exc)})
                continue
            r, tr = p["r"], p["trend_ratio"]
            rows.append(
                {
                    "features": label,
                    "subjects": f"{name} ({p['n_subjects']})",
                    "r": f"{r['median']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]",
                    "trend/hold": f"{tr['median']:.2f}",
                }
            )
    print(pd.DataFrame(rows).to_string(index=False))

    print("\n4. reflected-wave lag (late decay of the window's mean beat): within-subject r with SBP")
    lag = _reflection_from_pulses(cohort, rs.subject_ids(), window_s)
    print(lag.set_index("subject").round(2).T.to_string())
    print("median:", lag.drop(columns=["subject", "skin_type"]).median().round(2).to_dict())


if __name__ == "__main__":
    main()
