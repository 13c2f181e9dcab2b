"""Camera PPG: heart-rate accuracy on the real ``bias_eval_rppg`` clips, and speed.

Accuracy: absolute error of the mean heart rate of each clip (30 skin-ROI clips: 10 subjects x
forehead / left cheek / right cheek; India 8 subjects, Sierra Leone 2) against the subject's
ground-truth mean HR (pulse oximeter), per rPPG algorithm (GREEN, CHROM, POS, LGI, PBV), for the
per-clip fusion of all five algorithms, and per subject for the fusion of all three regions
(one method, or all 15 region x method signals). Rows: per region, per country, overall. Beside
them the baseline "quick spatial-mean POS + one Welch peak per clip" (POS without brightness-step
suppression, plain Welch average of 12 s segments, highest peak in 0.7-3.5 Hz).

Information: each estimate's MAE against the subject's own ground truth beside its MAE against the
other subjects' ground truths, and a constant at the mean ground truth: an estimate that carries
no subject information scores the same on both (the ground truths span only 66-85 bpm).

Speed: seconds per clip for decoding alone (OpenCV, one thread) and for decoding + each
algorithm + heart rate, as x real time (clip duration / processing time).

Data: ``bias_eval_rppg/`` of ``$BPRL_RPPG_DIR`` or ``../shared/data/rppg`` beside the repository.
Usage: ``python -m benchmarks camera`` (``taskset -c 0`` to pin it to one core).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from bprl.sources.camera import METHODS, fuse_spectra, hr_from_pulse, hr_over_time, read_video_rgb
from bprl.sources.camera.rppg import _pos_window, bandpass, peak_hz, pulse_spectrum


def _root() -> Path:
    """``$BPRL_RPPG_DIR/bias_eval_rppg`` or ``../shared/data/rppg/bias_eval_rppg`` next to the repo."""
    env = os.environ.get("BPRL_RPPG_DIR")
    base = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "rppg"
    return base / "bias_eval_rppg"


def baseline_hr(rgb: np.ndarray, fs_hz: float) -> float:
    """Quick POS: whole-clip normalised RGB, POS projection, band-pass, highest plain-Welch peak."""
    h = bandpass(_pos_window(rgb / rgb.mean(axis=0)), fs_hz)
    f, p = pulse_spectrum(h, fs_hz, normalise_segments=False)
    return 60.0 * peak_hz(f, p, harmonic_weight=0.0)


def evaluate(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per clip HR of every method + fusion + baseline, per subject fusion, timings, and the
    per clip HR as the median of 10 s window HRs (``hr_over_time``; fused: median over all 5
    methods' windows)."""
    man = pd.read_csv(root / "MANIFEST.csv")
    rows, med_rows, times, pulses = [], [], [], {}
    for r in man.itertuples():
        t0 = time.perf_counter()
        rgb, fs_hz, _ = read_video_rgb(root / r.path)
        t_dec = time.perf_counter() - t0
        row = {
            "subject": f"{r.country}/{r.video}",
            "country": r.country,
            "roi": r.roi,
            "gt": r.gt_mean_hr_bpm,
        }
        trow = {"clip": r.path, "dur_s": len(rgb) / fs_hz, "decode": t_dec}
        row["baseline"] = baseline_hr(rgb, fs_hz)
        clip_pulses = {}
        for name, fn in METHODS.items():
            t0 = time.perf_counter()
            x = fn(rgb, fs_hz)
            row[name] = hr_from_pulse(x, fs_hz)[0]
            trow[name] = time.perf_counter() - t0
            clip_pulses[name] = x
            pulses[(row["subject"], r.roi, name)] = (x, fs_hz)
        row["fused"] = fuse_spectra(clip_pulses, fs_hz)[0]
        rows.append(row)
        med = {k: row[k] for k in ("subject", "country", "roi", "gt")}
        tracks = {k: hr_over_time(x, fs_hz)[1] for k, x in clip_pulses.items()}
        med.update({k: float(np.median(h)) for k, h in tracks.items()})
        med["fused"] = float(np.median(np.concatenate(list(tracks.values()))))
        med_rows.append(med)
        times.append(trow)
    clips = pd.DataFrame(rows)
    subj = []
    for s, g in clips.groupby("subject"):
        out = {"subject": s, "country": g.country.iloc[0], "gt": g["gt"].iloc[0]}
        for m in [*METHODS, "fused"]:
            names = list(METHODS) if m == "fused" else [m]
            sig = {f"{k[1]}/{k[2]}": v[0] for k, v in pulses.items() if k[0] == s and k[2] in names}
            out[m] = fuse_spectra(sig, next(iter(pulses.values()))[1])[0]
        subj.append(out)
    return clips, pd.DataFrame(subj), pd.DataFrame(times), pd.DataFrame(med_rows)


def mae_table(df: pd.DataFrame, cols: list[str], by: str) -> pd.DataFrame:
    """MAE (bpm) of each column against ``gt``, per group of ``by`` and overall."""
    err = df[cols].sub(df["gt"], axis=0).abs()
    err[by] = df[by]
    tab = err.groupby(by)[cols].mean()
    tab.loc["all"] = err[cols].mean()
    tab["n"] = [*(df[by].value_counts().reindex(tab.index[:-1]).tolist()), len(df)]
    return tab.round(1)


#: a textbook adult resting heart rate (bpm): a blind guess that is not fit on the ground truth
TEXTBOOK_HR_BPM = 72.0


def information_table(df: pd.DataFrame, cols: list[str], unit: str) -> pd.DataFrame:
    """Does an estimate carry the subject's heart rate? MAE against the subject's own ground truth
    beside the mean MAE against the other subjects' ground truths (every pair of rows from
    different subjects). An estimate that holds no subject information scores the same on both;
    one that tracks the subject scores lower on its own. The constant row is the mean of the
    subjects' ground truths (an oracle: it needs the answers), the floor of a blind guess; the
    other constant is a textbook resting rate, fixed without looking at these data."""
    gt = df["gt"].to_numpy(dtype=float)
    subj = df["subject"].to_numpy()
    other = subj[:, None] != subj[None, :]
    per_subject_gt = df.groupby("subject")["gt"].first().mean()
    est = {c: df[c].to_numpy(dtype=float) for c in cols}
    est["constant (mean ground truth)"] = np.full(len(df), per_subject_gt)
    est[f"constant {TEXTBOOK_HR_BPM:.0f} bpm"] = np.full(len(df), TEXTBOOK_HR_BPM)
    rows = []
    for name, e in est.items():
        err = np.abs(e[:, None] - gt[None, :])
        own, others = float(np.mean(np.diag(err))), float(err[other].mean())
        rows.append({unit: name, "own": own, "others": others, "own - others": own - others})
    return pd.DataFrame(rows).set_index(unit).round(1)


def main(argv: list[str] | None = None) -> None:
    """Print the accuracy and speed tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    root = _root()
    if not (root / "MANIFEST.csv").is_file():
        print(f"skipped: rPPG clips not found at {root} (set BPRL_RPPG_DIR)")
        return
    cv2.setNumThreads(1)
    clips, subj, times, med = evaluate(root)
    cols = ["baseline", *METHODS, "fused"]
    pd.set_option("display.width", 200)
    print("HR MAE (bpm) per clip, by region (fused = 5 algorithms fused by quality per clip):")
    print(mae_table(clips, cols, "roi").to_string())
    print("\nHR MAE (bpm) per clip, by country (skin-tone bias):")
    print(mae_table(clips, cols, "country").to_string())
    print("\nHR MAE (bpm) per subject, 3 regions fused by quality (fused = 3 regions x 5 algorithms):")
    print(mae_table(subj, [*METHODS, "fused"], "country").to_string())
    print("\nHR MAE (bpm) per clip, HR = median of 10 s window HRs (fused: of all 5 methods' windows):")
    print(mae_table(med, [*METHODS, "fused"], "roi").to_string())
    print(mae_table(med, [*METHODS, "fused"], "country").to_string())
    print("\nInformation test, HR MAE (bpm) against the subject's own ground truth and against the")
    print(
        "other subjects' (per clip; the fused estimates, per clip and median of windows, and the baseline):"
    )
    info = clips[["subject", "gt", "baseline", "fused"]].rename(columns={"fused": "fused, spectral"})
    info["fused, median of windows"] = med["fused"].to_numpy()
    print(
        information_table(
            info, ["baseline", "fused, spectral", "fused, median of windows"], "estimate"
        ).to_string()
    )
    print("\nPer subject: ground truth and estimates (bpm):")
    print(subj.set_index("subject").round(1).to_string())
    dur = times["dur_s"].sum()
    print(f"\nSpeed over {len(times)} clips ({dur:.0f} s of 200x200 15 fps video), one OpenCV thread:")
    print(f"{'step':<18}{'s per clip':>12}{'x real time':>14}")
    dec = times["decode"].sum()
    print(f"{'decode only':<18}{dec / len(times):>12.3f}{dur / dec:>14.0f}")
    for m in METHODS:
        tot = dec + times[m].sum()
        print(f"{'decode + ' + m:<18}{tot / len(times):>12.3f}{dur / tot:>14.0f}")


if __name__ == "__main__":
    main()
