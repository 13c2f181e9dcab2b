"""R peaks at fast heart rates: Se by heart-rate band, bprl vs NeuroKit2, on virtual subjects
with tachycardia (scored against the simulated R times) and on CinC 2017 (no beat annotations:
the records where one detector finds fewer than half of the other's beats).

Virtual: the ``timing_events`` cohort spec (its timing events include tachycardia episodes),
cohort seed 14 (the seed of ``experiments/residual_events.yaml``), the first ``--subjects``
subjects of 4 h, lead II at 250 Hz, every subject as it comes (none picked). A reference beat is
found when a detection lies within 150 ms (``wfdb.processing.compare_annotations``); beats are
binned by the truth's instantaneous heart rate; false detections are pooled. The row "bprl, no
trough cap" is ``ecg_peaks`` with its noise floor uncapped
(``bprl.beats.ecg._NOISE_FLOOR_TROUGH_CAP`` = inf), the detector before 2026-12-05. NeuroKit2
runs its own pipeline, ``ecg_clean`` then ``ecg_peaks`` (on the raw virtual lead, without
``ecg_clean``, it loses 42 % of subject 1's beats to the baseline wander).

Usage: ``python -m benchmarks fast_rhythm`` (options: ``--subjects N``, ``--no-cinc``).
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from pathlib import Path

import numpy as np
from wfdb import processing

from benchmarks.bench_features import _rhythm
from bprl.beats import ecg as ecg_module
from bprl.beats import ecg_peaks

SEED = 14
HOURS = 4.0
BANDS_BPM = (0.0, 100.0, 130.0, 160.0, np.inf)
SPEC = Path(__file__).resolve().parents[1] / "bprl" / "cohort" / "specs" / "timing_events.yaml"


def _bprl(x: np.ndarray, fs: float) -> np.ndarray:
    return np.asarray(ecg_peaks(x, fs, return_times=False), dtype=np.int64)


def _bprl_uncapped(x: np.ndarray, fs: float) -> np.ndarray:
    cap = ecg_module._NOISE_FLOOR_TROUGH_CAP
    ecg_module._NOISE_FLOOR_TROUGH_CAP = np.inf
    try:
        return _bprl(x, fs)
    finally:
        ecg_module._NOISE_FLOOR_TROUGH_CAP = cap


def _nk(x: np.ndarray, fs: float) -> np.ndarray:
    import neurokit2 as nk

    _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=round(fs)), sampling_rate=round(fs))
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


DETECTORS = {"bprl": _bprl, "bprl, no trough cap": _bprl_uncapped, "neurokit2": _nk}


def virtual_subject(i: int) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Lead II, its rate, the true R samples and the true heart rate per beat of subject ``i``."""
    from bprl.cohort.make import _subject, simulate_subject
    from bprl.cohort.spec import load_spec

    spec = load_spec(SPEC)
    params, _ = _subject(spec, SEED, i)
    waves, truth = simulate_subject(params, HOURS, np.random.default_rng([SEED, i, 1]), spec)
    ecg, fs = waves.waves["II"]
    ref = np.round(truth["r_time_s"].to_numpy() * fs).astype(np.int64)
    return ecg, fs, ref, truth["hr_bpm"].to_numpy()


def score_bands(ref: np.ndarray, hr_bpm: np.ndarray, det: np.ndarray, fs: float) -> np.ndarray:
    """Per heart-rate band: (reference beats, found); last row: (detections, false)."""
    c = processing.compare_annotations(ref, np.sort(det), int(0.15 * fs))
    found = np.zeros(len(ref), dtype=bool)
    found[np.asarray(c.matching_sample_nums) >= 0] = True
    band = np.digitize(hr_bpm, BANDS_BPM[1:-1])
    out = np.zeros((len(BANDS_BPM), 2), dtype=np.int64)
    for b in range(len(BANDS_BPM) - 1):
        out[b] = (np.sum(band == b), np.sum(found & (band == b)))
    out[-1] = (len(det), c.fp)
    return out


def run_virtual(n_subjects: int) -> tuple[dict[str, np.ndarray], float]:
    """Pooled band counts per detector over the first ``n_subjects`` subjects; share of beats > 130 bpm."""
    acc = {d: np.zeros((len(BANDS_BPM), 2), dtype=np.int64) for d in DETECTORS}
    fast, total = 0, 0
    for i in range(n_subjects):
        ecg, fs, ref, hr = virtual_subject(i)
        fast += int(np.sum(hr > 130))
        total += len(hr)
        for name, fn in DETECTORS.items():
            acc[name] += score_bands(ref, hr, fn(ecg, fs), fs)
    return acc, fast / max(total, 1)


def run_cinc(folder: Path) -> dict[str, int]:
    """CinC 2017 records on which each detector finds fewer than half of NeuroKit2's beats (and
    NeuroKit2 fewer than half of bprl's)."""
    import wfdb

    counts = {"records": 0, "bprl < nk / 2": 0, "bprl no cap < nk / 2": 0, "nk < bprl / 2": 0}
    for hea in sorted(folder.glob("*.hea")):
        rec = wfdb.rdrecord(str(hea.with_suffix("")), channels=[0])
        x, fs = rec.p_signal[:, 0], float(rec.fs)
        b, u, k = len(_bprl(x, fs)), len(_bprl_uncapped(x, fs)), len(_nk(x, fs))
        counts["records"] += 1
        counts["bprl < nk / 2"] += b < k / 2
        counts["bprl no cap < nk / 2"] += u < k / 2
        counts["nk < bprl / 2"] += k < b / 2
    return counts


def main(argv: list[str] | None = None) -> None:
    """Print the Se table by heart-rate band and the CinC 2017 disagreement counts."""
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(prog="python -m benchmarks fast_rhythm")
    ap.add_argument("--subjects", type=int, default=12, help="virtual subjects (the first N of the cohort)")
    ap.add_argument("--no-cinc", action="store_true", help="leave out the CinC 2017 counts")
    args = ap.parse_args(argv or [])
    t0 = time.perf_counter()
    acc, fast = run_virtual(args.subjects)
    print(
        f"virtual: timing_events spec, seed {SEED}, subjects 0-{args.subjects - 1} x {HOURS:g} h, lead II 250 Hz; "
        f"{100 * fast:.1f} % of beats above 130 bpm; Se by the truth's heart rate, 150 ms window"
    )
    labels = [
        f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">= {lo:g}" for lo, hi in itertools.pairwise(BANDS_BPM)
    ]
    print(
        f"{'detector':<22}"
        + "".join(f"{'Se ' + lab + ' bpm':>17}" for lab in labels)
        + f"{'Se all':>9}{'PPV':>9}"
    )
    first = next(iter(acc.values()))
    print(
        f"{'(reference beats)':<22}"
        + "".join(f"{int(n):>17}" for n in first[:-1, 0])
        + f"{int(first[:-1, 0].sum()):>9}"
    )
    for name, a in acc.items():
        se = [f"{f / n:.4f}" if n else "-" for n, f in a[:-1]]
        tp = a[:-1, 1].sum()
        det, fp = a[-1]
        print(
            f"{name:<22}"
            + "".join(f"{s:>17}" for s in se)
            + f"{tp / a[:-1, 0].sum():9.4f}{(det - fp) / max(det, 1):9.4f}"
        )
    cinc = _rhythm() / "cinc2017" / "training_subset"
    if not args.no_cinc and cinc.is_dir():
        c = run_cinc(cinc)
        print(
            f"CinC 2017 dev subset ({c['records']} records, no beat annotations), records with fewer than half "
            f"of the other detector's beats: bprl {c['bprl < nk / 2']}, bprl without the trough cap "
            f"{c['bprl no cap < nk / 2']}, NeuroKit2 {c['nk < bprl / 2']}"
        )
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
