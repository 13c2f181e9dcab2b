"""Rhythm gating of PAT: how much the beats left out as ectopic change the PAT feature's noise.

Two virtual cohorts with ectopy in every subject and paroxysmal AF in half of them (their ground
truth marks each beat's PAT, ectopy and AF): one with the cohort's default ectopy (0.5-3 % of
beats) and one with frequent ectopy (10-40 % of beats, towards bigeminy). Each record's replay table is built three times, with
``ectopic_gating`` = ``none`` (every beat with a valid PPG upstroke counts), ``rr`` (the RR rule:
a beat whose RR differs from the local median by more than 25 %) and ``classes`` (beats classed
S or V by :func:`bprl.beats.ecg_beat_classes` and the beat after each). The reference of a step is
the median true PAT of its beats that are neither ectopic nor right after one (AF beats count:
their PAT is the subject's PAT in AF); the PAT-feature noise of a subject is the SD over its
steps of (feature PAT foot - reference), after its median difference (the foot fiducial's
constant offset) is removed; reported as the mean over subjects for sinus steps, steps with an
ectopic beat and steps in AF, with the share of steps that have a PAT feature at all.

Calibrated error, the same pipeline for every mode: a PAT-linear SBP estimate recalibrated by a
cuff reading every 30 min (true window SBP + N(0, 5 mmHg), seeded), SBP(t) = cuff + b (PAT(t) -
PAT(at the cuff)), with one population slope b per mode fitted on the subjects' demeaned (SBP,
PAT) windows (the feature PAT carried forward over windows without one); the MAE against the
true window SBP, mean over subjects.

Usage: ``python -m benchmarks gating`` or ``python -m benchmarks.bench_gating [--subjects N]
[--hours H] [--seed S]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bprl.cohort import make_cohort
from bprl.cohort.layout import load_manifest, read_truth, record_path
from bprl.features.config import FeatureConfig
from bprl.features.replay_table import build_replay_table
from bprl.sources import read_record

MODES = ("none", "rr", "classes")
#: the cohorts: ectopy in every subject, paroxysmal AF (2 episodes / h) in half of them; the
#: cohort's default ectopy (0.5-3 % of beats) and frequent ectopy (10-40 %, towards bigeminy)
COHORTS = {
    "default ectopy (0.5-3 %)": {"ectopic_subject_share": 1.0, "af_subject_share": 0.5, "af_rate_per_h": 2.0},
    "frequent ectopy (10-40 %)": {
        "ectopic_subject_share": 1.0,
        "ectopic_prob_min": 0.1,
        "ectopic_prob_max": 0.4,
        "af_subject_share": 0.5,
        "af_rate_per_h": 2.0,
    },
}


def _reference_pat(truth: pd.DataFrame, t0: np.ndarray, t1: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per window: median true PAT of the sinus beats (not ectopic, not after one), whether the window
    holds an ectopic beat, and its AF share."""
    r = truth["r_time_s"].to_numpy()
    ect = truth["ectopic"].to_numpy(bool)
    post = np.zeros_like(ect)
    post[1:] = ect[:-1]
    sinus = ~ect & ~post
    pat = truth["pat_ms"].to_numpy()
    ref, has_ect, af = (np.full(len(t0), np.nan) for _ in range(3))
    for k, (a, b) in enumerate(zip(t0, t1, strict=True)):
        sel = (r >= a) & (r < b)
        ok = sel & sinus
        ref[k] = np.median(pat[ok]) if ok.sum() >= 3 else np.nan
        has_ect[k] = ect[sel].any()
        af[k] = truth["af"].to_numpy(bool)[sel].mean() if sel.any() else np.nan
    return ref, has_ect.astype(bool), af


def _noise(err: np.ndarray, sel: np.ndarray) -> float:
    """SD of the finite errors under ``sel`` (NaN with fewer than 3)."""
    e = err[sel & np.isfinite(err)]
    return float(np.std(e, ddof=1)) if e.size >= 3 else float("nan")


def _true_sbp(truth: pd.DataFrame, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """Median true SBP of the beats of each window."""
    r, sbp = truth["r_time_s"].to_numpy(), truth["sbp_mmhg"].to_numpy()
    return np.array(
        [
            np.median(sbp[(r >= a) & (r < b)]) if ((r >= a) & (r < b)).any() else np.nan
            for a, b in zip(t0, t1, strict=True)
        ]
    )


def _ffill(x: np.ndarray) -> np.ndarray:
    """``x`` with NaN replaced by the last finite value (leading NaN by the first)."""
    s = pd.Series(x).ffill().bfill()
    return s.to_numpy(float)


def calibrated_mae(
    series: list[tuple[np.ndarray, np.ndarray]], seed: int, period_steps: int = 60
) -> list[float]:
    """Per subject, the MAE (mmHg) of the PAT-linear estimate recalibrated every ``period_steps``
    windows (module docstring); ``series`` = (feature PAT, true SBP) per subject."""
    xs, ys = [], []
    for pat, sbp in series:
        ok = np.isfinite(pat) & np.isfinite(sbp)
        if ok.sum() > 3:
            xs.append(pat[ok] - pat[ok].mean())
            ys.append(sbp[ok] - sbp[ok].mean())
    x, y = np.concatenate(xs), np.concatenate(ys)
    b = float(np.dot(x, y) / np.dot(x, x))
    rng = np.random.default_rng(seed)
    out = []
    for pat, sbp in series:
        p = _ffill(pat)
        est = np.full(len(p), np.nan)
        for k in range(0, len(p), period_steps):
            cuff = sbp[k] + rng.normal(0.0, 5.0)
            est[k : k + period_steps] = cuff + b * (p[k : k + period_steps] - p[k])
        out.append(float(np.nanmean(np.abs(est - sbp))))
    return out


def measure(cohort: Path, seed: int = 0) -> pd.DataFrame:
    """One row per (subject, mode): PAT-feature noise for sinus / ectopic / AF steps, coverage and
    the calibrated SBP MAE."""
    man = load_manifest(cohort)
    rows = []
    series: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {m: [] for m in MODES}
    for sid in man["subject_id"].astype(str):
        truth = read_truth(cohort, sid)
        rec = read_record(record_path(cohort, sid))
        for mode in MODES:
            tab = build_replay_table(rec, FeatureConfig(ectopic_gating=mode))
            ref, has_ect, af = _reference_pat(truth, tab["t_start_s"].to_numpy(), tab["t_end_s"].to_numpy())
            pat = tab["pat_foot_ms"].to_numpy(float)
            series[mode].append(
                (pat, _true_sbp(truth, tab["t_start_s"].to_numpy(), tab["t_end_s"].to_numpy()))
            )
            diff = pat - ref
            diff = diff - np.nanmedian(diff) if np.isfinite(diff).any() else diff
            in_af = np.nan_to_num(af) >= 0.5
            rows.append(
                {
                    "subject_id": sid,
                    "mode": mode,
                    "noise_all_ms": _noise(diff, ~in_af),
                    "noise_ectopic_ms": _noise(diff, has_ect & ~in_af),
                    "noise_af_ms": _noise(diff, in_af),
                    "coverage": float(np.isfinite(pat).mean()),
                    "coverage_af": float(np.isfinite(pat[in_af]).mean()) if in_af.any() else float("nan"),
                }
            )
    out = pd.DataFrame(rows)
    for mode in MODES:
        out.loc[out["mode"] == mode, "sbp_mae_mmhg"] = calibrated_mae(series[mode], seed)
    return out


def table(per: pd.DataFrame) -> str:
    """The Markdown table: mean over subjects per gating mode."""
    agg = per.groupby("mode", sort=False).mean(numeric_only=True).reindex(list(MODES))
    lines = [
        "| gating | PAT noise, sinus steps (ms) | steps with an ectopic beat (ms) | AF steps (ms) | "
        "steps with PAT | AF steps with PAT | calibrated SBP MAE (mmHg) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode, r in agg.iterrows():
        lines.append(
            f"| {mode} | {r['noise_all_ms']:.2f} | {r['noise_ectopic_ms']:.2f} | {r['noise_af_ms']:.2f} | "
            f"{100 * r['coverage']:.1f} % | {100 * r['coverage_af']:.1f} % | {r['sbp_mae_mmhg']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Make the cohort, measure every mode, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=12)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    for name, params in COHORTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            cohort = make_cohort(
                Path(tmp) / "cohort", args.subjects, args.hours, args.seed, spec=params, progress=False
            )
            per = measure(cohort)
        n_af = int((per[per["mode"] == "none"]["coverage_af"].notna()).sum())
        print(
            f"\nPAT-feature noise by rhythm gating, {name}: {args.subjects} virtual subjects x {args.hours:g} h "
            f"(seed {args.seed}; ectopy in all, AF in {n_af}); mean over subjects"
        )
        print(table(per))


if __name__ == "__main__":
    main()
