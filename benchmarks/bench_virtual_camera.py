"""Virtual camera: heart rate and pulse-foot timing of rendered skin-region video against ground truth.

Subjects of the virtual cohort (seed 0, default spec) are simulated for ``--seconds``; their
noiseless PPG is rendered by the virtual camera (:mod:`bprl.cohort.video_subject`: skin optics,
illumination, motion, sensor noise, 8 bits, MJPG) into forehead / left-cheek / right-cheek
clips, written to a temporary folder, read back and run through the existing chain
(:func:`bprl.sources.camera.video_ppg`, all five methods fused, and POS alone).

Printed:

1. **clean video** (a still subject under steady light: no illumination change or motion; the
   camera's own sensor noise, 2 DN, 8-bit rounding and MJPG remain), Fitzpatrick type III: HR MAE of the clip mean (against ``60 (n-1) / (t_last - t_first)``
   of the true pulse feet) and of the 10-s windows every 2 s (against the true feet in each
   window);
2. **pulse-foot timing** on the same clips: intersecting-tangents feet
   (:func:`bprl.sources.camera.pulse_feet.pulse_feet`) of the record's pulse (band 0.7-3.5 Hz) and
   of the wide-band POS pulse (0.5-8 Hz, regions averaged), against ``ppg_foot_s``: median and 95th
   percentile of |error|, median signed error, share of true feet matched within 250 ms;
3. **HR error against noise level and skin tone**: window-HR MAE (bpm) of the fused estimate per
   noise level (x the default spec's sensor noise 2 DN, illumination drift SD 0.02, 0.5
   illumination steps per minute, motion SD 0.5 px; level 0: none at all, not even sensor noise)
   and Fitzpatrick type, with the mean SNR (dB).

Usage: ``python -m benchmarks virtual_camera`` (``--subjects``, ``--seconds``, ``--levels``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bprl.cohort import CohortSpec, sample_subject, simulate_subject
from bprl.cohort.video_subject import read_video_truth, video_clips, write_subject_video
from bprl.sources.camera import fuse_signals, read_regions
from bprl.sources.camera.pulse_feet import match_feet, pulse_feet, wideband_pulse
from bprl.sources.camera.record import analyse_regions

SEED = 0
#: nuisance settings at noise level 1 (the spec defaults)
LEVEL1 = {
    "video_noise_dn": 2.0,
    "video_light_sd": 0.02,
    "video_light_steps_per_min": 0.5,
    "video_motion_px": 0.5,
}


#: clean video: still subject, steady light, the camera's own sensor noise
CLEAN = {**dict.fromkeys(LEVEL1, 0.0), "video_noise_dn": LEVEL1["video_noise_dn"]}


def video_spec(level: float, skin_type: int, clean: bool = False) -> CohortSpec:
    """The default spec with nuisance scaled by ``level`` (or the clean settings) and one skin type."""
    fields = CLEAN if clean else {k: v * level for k, v in LEVEL1.items()}
    return CohortSpec(video_skin_types=(skin_type,), **fields)


def subjects(n: int, seconds: float) -> list[tuple]:
    """``n`` simulated subjects: (index, params, waveforms, truth)."""
    spec = CohortSpec()
    out = []
    for i in range(n):
        p = sample_subject(spec, i, np.random.default_rng([SEED, i, 0]))
        waves, truth = simulate_subject(p, seconds / 3600.0, np.random.default_rng([SEED, i, 1]), spec)
        out.append((i, p, waves, truth))
    return out


def evaluate(root: Path, subj: tuple, spec: CohortSpec) -> dict:
    """Render one subject with ``spec`` into ``root``, run the chain, compare with the truth."""
    i, p, waves, truth = subj
    write_subject_video(root, i, p, waves, truth, spec, SEED)
    sid = p.subject_id
    regions, fs_hz = read_regions(video_clips(root, sid))
    res = analyse_regions(regions, fs_hz, "fused")
    pos = analyse_regions(regions, fs_hz, "pos")
    gt = read_video_truth(root, sid)
    hr_true = gt["hr"]["hr_bpm"].to_numpy()
    n = min(len(hr_true), len(res.hr_t_bpm))
    ok = np.isfinite(hr_true[:n])
    dur_s = gt["meta"]["duration_s"]
    feet_true = gt["feet"]["foot_s"].to_numpy()
    feet_true = feet_true[(feet_true > 2.0) & (feet_true < dur_s - 2.0)]
    wide = fuse_signals(
        {r: wideband_pulse(v, fs_hz) for r, v in regions.items()}, dict.fromkeys(regions, 1.0)
    )
    err_rec = match_feet(pulse_feet(res.pulse, fs_hz, res.hr_bpm)["t_foot_s"].to_numpy(), feet_true)
    err_wide = match_feet(pulse_feet(wide, fs_hz, res.hr_bpm)["t_foot_s"].to_numpy(), feet_true)
    return {
        "subject": sid,
        "skin_type": gt["meta"]["skin_type"],
        "hr_true": gt["meta"]["mean_hr_bpm"],
        "hr_fused": res.hr_bpm,
        "hr_pos": pos.hr_bpm,
        "win_err_fused": np.abs(res.hr_t_bpm[:n] - hr_true[:n])[ok],
        "win_err_pos": np.abs(pos.hr_t_bpm[:n] - hr_true[:n])[ok],
        "snr_db": res.snr_db,
        "feet_err_record_ms": 1e3 * err_rec,
        "feet_err_wide_ms": 1e3 * err_wide,
    }


def _feet_row(name: str, err_ms: np.ndarray) -> dict:
    a = np.abs(err_ms[np.isfinite(err_ms)])
    return {
        "pulse": name,
        "median |err| ms": np.median(a),
        "p95 |err| ms": np.percentile(a, 95),
        "median err ms": np.nanmedian(err_ms),
        "matched %": 100.0 * np.isfinite(err_ms).mean(),
        "feet": len(err_ms),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the clean-video, foot-timing and noise x skin-tone tables."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks virtual_camera")
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0])
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    subj = subjects(args.subjects, args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        clean = [evaluate(Path(tmp) / "clean", s, video_spec(0.0, 3, clean=True)) for s in subj]
        rows = []
        for level in args.levels:
            for skin in range(1, 7):
                for s in subj:
                    r = evaluate(Path(tmp) / f"l{level}_s{skin}", s, video_spec(level, skin))
                    rows.append({"level": level, "skin_type": skin, **r})
    pd.set_option("display.width", 140)
    print(f"\n{args.subjects} subjects x {args.seconds:g} s, 30 fps, 64x64 px, MJPG q90 (seed {SEED})")
    print("\n1. clean video (type III, still, steady light, sensor noise 2 DN): HR MAE, bpm")
    t = pd.DataFrame(clean)
    print(
        t[["subject", "hr_true", "hr_fused", "hr_pos", "snr_db"]].round(2).to_string(index=False),
        f"\nclip mean HR MAE: fused {np.mean(np.abs(t.hr_fused - t.hr_true)):.2f}, "
        f"pos {np.mean(np.abs(t.hr_pos - t.hr_true)):.2f} bpm",
        f"\n10-s window HR MAE: fused {np.mean(np.concatenate(list(t.win_err_fused))):.2f}, "
        f"pos {np.mean(np.concatenate(list(t.win_err_pos))):.2f} bpm",
    )
    print("\n2. pulse-foot timing on the clean clips (error = detected - true foot)")
    feet = [
        _feet_row("record pulse 0.7-3.5 Hz (fused)", np.concatenate(list(t.feet_err_record_ms))),
        _feet_row("wide-band POS 0.5-8 Hz", np.concatenate(list(t.feet_err_wide_ms))),
    ]
    print(pd.DataFrame(feet).round(1).to_string(index=False))
    d = pd.DataFrame(rows)
    d["win_mae"] = [float(np.mean(e)) if len(e) else np.nan for e in d.win_err_fused]
    d["clip_err"] = np.abs(d.hr_fused - d.hr_true)
    print("\n3. window-HR MAE (bpm) of the fused estimate, noise level (rows) x Fitzpatrick type (columns)")
    print(
        d.pivot_table(index="level", columns="skin_type", values="win_mae", aggfunc="mean")
        .round(2)
        .to_string()
    )
    print("\n   clip mean-HR MAE (bpm)")
    print(
        d.pivot_table(index="level", columns="skin_type", values="clip_err", aggfunc="mean")
        .round(2)
        .to_string()
    )
    print("\n   mean SNR of the fused spectrum (dB)")
    print(
        d.pivot_table(index="level", columns="skin_type", values="snr_db", aggfunc="mean")
        .round(1)
        .to_string()
    )
    feet_noise = d.groupby("level").apply(
        lambda g: pd.Series(_feet_row("wide", np.concatenate(list(g.feet_err_wide_ms)))), include_groups=False
    )
    print("\n   wide-band foot timing by noise level (all skin types)")
    print(feet_noise[["median |err| ms", "p95 |err| ms", "median err ms", "matched %"]].round(1).to_string())
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
