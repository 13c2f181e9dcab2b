"""Virtual-cohort speed: simulated subject-hours per minute on one core, against NeuroKit2's simulators.

bprl: full pipeline per subject (dynamics, beats, ECG 250 Hz + PPG 125 Hz + ABP 125 Hz with
artefacts, WFDB + Parquet writing) through ``make_cohort(workers=1)``.
NeuroKit2: ``ecg_simulate`` (ECGSYN, 250 Hz) + ``ppg_simulate`` (125 Hz) for a shorter stretch,
scaled linearly to one hour (no ABP, no files: a lower bound on its cost).

Usage: ``python -m benchmarks cohort`` or ``python -m benchmarks.bench_cohort --hours 1 --subjects 2 --nk-minutes 5``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _bprl(n_subjects: int, hours: float) -> tuple[float, float]:
    from bprl.cohort import make_cohort

    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        make_cohort(tmp, n_subjects, hours, seed=0, workers=1, progress=False)
        return time.perf_counter() - t0, time.process_time() - c0


def _neurokit(minutes: float) -> tuple[float, float] | None:
    try:
        import neurokit2 as nk
    except ImportError:  # pragma: no cover - the bench extra is not installed
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0, c0 = time.perf_counter(), time.process_time()
        nk.ecg_simulate(duration=int(minutes * 60), sampling_rate=250, heart_rate=75, random_state=0)
        nk.ppg_simulate(duration=int(minutes * 60), sampling_rate=125, heart_rate=75, random_state=0)
        return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a table of subject-hours per minute."""
    ap = argparse.ArgumentParser(prog="bench_cohort")
    ap.add_argument("--hours", type=float, default=1.0, help="hours per subject for bprl")
    ap.add_argument("--subjects", type=int, default=2, help="subjects for bprl")
    ap.add_argument(
        "--nk-minutes", type=float, default=5.0, help="minutes simulated by NeuroKit2 (scaled to 1 h)"
    )
    args = ap.parse_args(argv if argv is not None else None)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass

    wall, cpu = _bprl(args.subjects, args.hours)
    sh = args.subjects * args.hours
    rows = [("bprl make_cohort (ECG+PPG+ABP, artefacts, WFDB)", f"{sh:.2f} h", wall, cpu, sh)]
    nk = _neurokit(args.nk_minutes)
    if nk is not None:
        rows.append(
            (
                "neurokit2 ecg_simulate + ppg_simulate",
                f"{args.nk_minutes:g} min",
                nk[0],
                nk[1],
                args.nk_minutes / 60,
            )
        )
    print("one process, 1 thread; rates from CPU time (process_time), wall time shown for reference")
    print(
        f"{'simulator':48s} {'simulated':>10s} {'wall s':>8s} {'CPU s':>8s} {'CPU s / subject-h':>18s} {'subject-h / CPU-min':>20s}"
    )
    for name, what, w, c, h in rows:
        print(f"{name:48s} {what:>10s} {w:8.2f} {c:8.2f} {c / h:18.2f} {h / (c / 60):20.2f}")
    if nk is None:
        print("neurokit2 not installed: pip install -e '.[bench]'")
        return
    ratio = (rows[1][3] / rows[1][4]) / (cpu / sh)
    print(
        f"bprl is {ratio:.0f}x faster than NeuroKit2 per subject-hour (NeuroKit2 timed on {args.nk_minutes:g} min, scaled linearly)"
    )


if __name__ == "__main__":
    main()
