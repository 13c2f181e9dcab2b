"""Beat pipeline speed and R-peak accuracy: bprl vs NeuroKit2 vs wfdb XQRS.

Speed: one hour of a MIMIC-IV-like record (ECG 250 Hz, PPG 125 Hz, ABP 125 Hz) from the
virtual cohort: bprl's whole pipeline (R peaks, PPG fiducials, ABP beats, quality, beat
features, replay table) against NeuroKit2's ``ecg_peaks`` + ``ppg_peaks`` alone and against
``wfdb.processing.xqrs_detect`` alone. Accuracy: R-peak sensitivity / positive predictivity
(150 ms matching window, beat annotations only) pooled over MIT-BIH 100, 103, 105, 106 (first
lead, 360 Hz), plus the time error of matched peaks against the annotations, and the same
Se/PPV on the records resampled (``scipy.signal.resample_poly``) to 250 and 125 Hz.

Per record: bprl and NeuroKit2 side by side on every annotated dev record, at the native rate
and resampled to 250 and 125 Hz, with a pooled row per data set: MIT-BIH (``mitdb/`` of
``$BPRL_PHYSIONET_DIR``, first lead, ``.atr`` beats), QTDB (``qtdb/`` of ``$BPRL_RHYTHM_DIR``,
records of ``RECORDS-with-signals`` that have an ``.atr``, first lead, 250 Hz) and LUDB
(``ludb/``, lead II, 500 Hz, reference = the QRS peaks ``N`` of the ``ii`` annotations, scored
only inside the annotated stretch and ≥ 0.25 s from either end, see ``beat_counts``).

Stages (``--stages``, only this table): CPU ms and minor page faults per call of each stage of
the pipeline without the rhythm columns (R peaks and, within them, the QRS energy; ECG quality;
PPG columns; ABP columns; replay table) on the same hour, best of ``--repeat`` rounds.

Usage: ``python -m benchmarks features``, or with options
``python -m benchmarks features [--hours H] [--repeat N] [--datasets mitdb,qtdb,ludb] [--stages]``
(``--datasets ""`` leaves the per-record table out).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import wfdb
from scipy.signal import resample_poly
from wfdb import processing

from bprl.beats import ecg_peaks
from bprl.features import FeatureConfig, record_beats, replay_table_from_beats
from bprl.sources import read_record

BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
MITDB = ("100", "103", "105", "106")
RATES = (250, 125)  # resampled rates of the extra Se/PPV columns
DATASETS = ("mitdb", "qtdb", "ludb")  # data sets of the per-record table
LABELS = {"mitdb": "MIT-BIH", "qtdb": "QTDB", "ludb": "LUDB"}
WINDOW_S = 0.15  # R-peak matching window
LUDB_EDGE_S = 0.25  # LUDB: references and detections this close to either end are not scored
LUDB_LIST_BELOW = 0.99  # LUDB: records listed when a detector's Se or PPV is below this


def _physionet() -> Path:
    """Folder of the real records (same rule as tests/conftest.py)."""
    env = os.environ.get("BPRL_PHYSIONET_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "physionet"


def _rhythm() -> Path:
    """Folder of the rhythm / delineation records (``qtdb/``, ``ludb/``): ``$BPRL_RHYTHM_DIR`` or
    ``../shared/data/rhythm`` next to the repository (the rule of ``_physionet``)."""
    env = os.environ.get("BPRL_RHYTHM_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "rhythm"


def _timed(fns: dict, repeat: int) -> dict[str, float]:
    """Best CPU time (s, ``time.process_time``) of each function over ``repeat`` interleaved rounds.

    CPU time of this process, and interleaving, keep the comparison fair on a shared machine
    where wall time depends on the other processes' load.
    """
    best = dict.fromkeys(fns, np.inf)
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    return {k: float(v) for k, v in best.items()}


def _nk_ecg(x: np.ndarray, fs: float) -> np.ndarray:
    import neurokit2 as nk

    _, info = nk.ecg_peaks(x, sampling_rate=round(fs))
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def _nk_both(ecg: np.ndarray, fs_ecg: float, ppg: np.ndarray, fs_ppg: float) -> None:
    import neurokit2 as nk

    nk.ecg_peaks(np.nan_to_num(ecg), sampling_rate=round(fs_ecg))
    nk.ppg_peaks(np.nan_to_num(ppg), sampling_rate=round(fs_ppg))


def _nk_delineate(ecg: np.ndarray, fs_ecg: float, r_peaks: np.ndarray) -> None:
    """NeuroKit2's wave delineation (``ecg_delineate``, DWT) of given R peaks: its counterpart of the
    rhythm columns' delineation (it has no beat classifier or AF detector)."""
    import neurokit2 as nk

    nk.ecg_delineate(np.nan_to_num(ecg), r_peaks, sampling_rate=round(fs_ecg), method="dwt")


def _xqrs(x: np.ndarray, fs: float) -> np.ndarray:
    return np.asarray(processing.xqrs_detect(np.nan_to_num(x), fs=fs, verbose=False), dtype=np.int64)


def _bprl_ecg(x: np.ndarray, fs: float) -> np.ndarray:
    return ecg_peaks(x, fs, return_times=False)


def beat_counts(
    ref: np.ndarray, det: np.ndarray, tol: int, window: tuple[int, int] | None = None
) -> tuple[int, int, int, np.ndarray]:
    """(TP, FN, FP, detected − annotated sample offsets of the matched scored beats) of detections
    ``det`` against reference beats ``ref`` (sample indices), matched one to one within ``tol``
    samples by ``wfdb.processing.compare_annotations``.

    ``window=(lo, hi)`` scores only the references and the detections in ``[lo, hi]``: both are
    matched over the whole record first, so a scored reference whose detection fell just outside
    the window is a TP, and a detection inside matched to a reference outside is neither a TP nor
    an FP. Without a window the counts are those of ``compare_annotations`` itself.
    """
    ref = np.sort(np.asarray(ref, dtype=np.int64))
    det = np.sort(np.asarray(det, dtype=np.int64))
    match = np.full(ref.size, -1, dtype=np.int64)  # index into det of each reference's match
    if ref.size and det.size:
        match = np.asarray(processing.compare_annotations(ref, det, tol).matching_sample_nums, dtype=np.int64)
    if window is None:
        ref_in, det_in = np.ones(ref.size, bool), np.ones(det.size, bool)
    else:
        lo, hi = window
        ref_in, det_in = (ref >= lo) & (ref <= hi), (det >= lo) & (det <= hi)
    hit = match >= 0
    det_matched = np.zeros(det.size, bool)
    det_matched[match[hit]] = True
    tp = int(np.sum(ref_in & hit))
    fn = int(np.sum(ref_in & ~hit))
    fp = int(np.sum(det_in & ~det_matched))
    errs = det[match[ref_in & hit]] - ref[ref_in & hit]
    return tp, fn, fp, errs


def _first_lead(path: Path) -> tuple[np.ndarray, float]:
    rec = wfdb.rdrecord(str(path), channels=[0])
    return rec.p_signal[:, 0], float(rec.fs)


def _atr_beats(path: Path) -> np.ndarray:
    ann = wfdb.rdann(str(path), "atr")
    return np.array([s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in BEAT_SYMBOLS])


def load_records(dataset: str) -> list[tuple[str, np.ndarray, float, np.ndarray, tuple[int, int] | None]]:
    """``(name, signal, fs, reference beat samples, scored window or None)`` of every annotated
    record of ``dataset`` ("mitdb", "qtdb", "ludb") found here; [] when its folder is absent."""
    out = []
    if dataset == "mitdb":
        folder = _physionet() / "mitdb"
        names = sorted(p.stem for p in folder.glob("*.atr") if p.with_suffix(".hea").is_file())
        for name in names:
            x, fs = _first_lead(folder / name)
            out.append((name, x, fs, _atr_beats(folder / name), None))
    elif dataset == "qtdb":
        top = _rhythm() / "qtdb"
        listed = top / "RECORDS-with-signals"
        names = listed.read_text().split() if listed.is_file() else []
        for name in names:
            path = top / "data" / name
            if path.with_suffix(".atr").is_file() and path.with_suffix(".hea").is_file():
                x, fs = _first_lead(path)
                out.append((name, x, fs, _atr_beats(path), None))
    elif dataset == "ludb":
        top = _rhythm() / "ludb"
        listed = top / "RECORDS"
        names = listed.read_text().split() if listed.is_file() else []
        for entry in sorted(names, key=lambda n: (len(Path(n).name), Path(n).name)):
            path = top / entry
            if not (path.with_suffix(".hea").is_file() and path.with_suffix(".ii").is_file()):
                continue
            rec = wfdb.rdrecord(str(path), channel_names=["ii"])
            ann = wfdb.rdann(str(path), "ii")
            fs, x = float(rec.fs), rec.p_signal[:, 0]
            sym = np.asarray(ann.symbol)
            edge = round(LUDB_EDGE_S * fs)
            # annotated stretch (first to last wave mark) less 0.25 s at either end of the record
            window = (max(int(ann.sample[0]), edge), min(int(ann.sample[-1]), x.size - 1 - edge))
            out.append((Path(entry).name, x, fs, np.asarray(ann.sample)[sym == "N"], window))
    else:
        raise ValueError(f"unknown data set {dataset!r}; one of {DATASETS}")
    return out


def _at_rate(x, fs, ref, window, fs_new):
    """The record resampled to ``fs_new`` Hz (``resample_poly``), reference and window rescaled."""
    if fs_new is None or fs_new == round(fs):
        return x, fs, ref, window
    x = resample_poly(x, fs_new, round(fs))
    ref = np.round(np.asarray(ref) * fs_new / fs).astype(np.int64)
    if window is not None:
        window = (round(window[0] * fs_new / fs), round(window[1] * fs_new / fs))
    return x, float(fs_new), ref, window


def record_counts(detector, rec, fs_new: int | None = None) -> tuple[int, int, int, np.ndarray]:
    """:func:`beat_counts` of ``detector(x, fs) -> sample indices`` on one record of
    :func:`load_records` at its native rate or resampled to ``fs_new``; the offsets in ms."""
    _, x, fs, ref, window = rec
    x, fs, ref, window = _at_rate(x, fs, ref, window, fs_new)
    tp, fn, fp, errs = beat_counts(ref, detector(x, fs), int(WINDOW_S * fs), window)
    return tp, fn, fp, errs / fs * 1000


def _pooled(counts) -> tuple[float, float, float, float]:
    tp, fn, fp = (sum(c[i] for c in counts) for i in range(3))
    e = np.abs(np.concatenate([c[3] for c in counts]))
    return tp / (tp + fn), tp / (tp + fp), float(np.mean(e)), float(np.percentile(e, 95))


def mitdb_accuracy(detector, root: Path, fs_new: int | None = None) -> tuple[float, float, float, float]:
    """Pooled (Se, PPV, mean and 95th percentile of |time error| in ms) of ``detector(x, fs) -> sample
    indices`` on MIT-BIH, at the native 360 Hz or resampled to ``fs_new`` Hz."""
    counts = []
    for name in MITDB:
        x, fs = _first_lead(root / "mitdb" / name)
        counts.append(record_counts(detector, (name, x, fs, _atr_beats(root / "mitdb" / name), None), fs_new))
    return _pooled(counts)


def _se_ppv(tp: int, fn: int, fp: int) -> tuple[float, float]:
    return (100 * tp / (tp + fn) if tp + fn else np.nan), (100 * tp / (tp + fp) if tp + fp else np.nan)


def per_record_table(datasets=DATASETS) -> tuple[list[str], dict]:
    """Lines of the per-record bprl vs NeuroKit2 table, and the counts ``{(dataset, record, rate,
    detector): (tp, fn, fp, errs_ms)}`` (rate None = native; pooled rows use record "pooled")."""
    rates = (None, *RATES)
    dets = {"bprl": _bprl_ecg, "nk": _nk_ecg}
    counts: dict = {}
    blk = "  ".join(f"{h:>13s}" for h in ("bprl Se/PPV", "nk Se/PPV", "dSe/dPPV"))
    head = f"{'record':9s} {'fs':>4s} {'beats':>6s} | " + " | ".join(blk for _ in rates)
    top = (
        f"{'':21s} | " + " | ".join(f"{(f'{r} Hz' if r else 'native'):^{len(blk)}s}" for r in rates)
    ).rstrip()
    lines = []

    def row(label, fs, n, per_rate) -> str:
        cells = []
        for c in per_rate:
            b, k = _se_ppv(*c["bprl"][:3]), _se_ppv(*c["nk"][:3])
            cells.append(
                f"{f'{b[0]:.2f}/{b[1]:.2f}':>13s}  {f'{k[0]:.2f}/{k[1]:.2f}':>13s}  "
                f"{f'{b[0] - k[0]:+.2f}/{b[1] - k[1]:+.2f}':>13s}"
            )
        return f"{label:9s} {fs:>4s} {n:6d} | " + " | ".join(cells)

    for ds in datasets:
        recs = load_records(ds)
        if not recs:
            lines += [f"{LABELS[ds]}: no records found", ""]
            continue
        body, listed = [], 0
        for rec in recs:
            name, _, fs, _, _ = rec
            per_rate = []
            for r in rates:
                same = r is not None and r == round(fs)  # e.g. QTDB at 250 Hz: the native run
                per_rate.append(
                    {
                        d: counts[(ds, name, None, d)] if same else record_counts(fn, rec, r)
                        for d, fn in dets.items()
                    }
                )
                for d in dets:
                    counts[(ds, name, r, d)] = per_rate[-1][d]
            n = per_rate[0]["bprl"][0] + per_rate[0]["bprl"][1]
            low = any(v < 100 * LUDB_LIST_BELOW for c in per_rate for d in dets for v in _se_ppv(*c[d][:3]))
            if ds != "ludb" or low:
                body.append(row(name, f"{fs:g}", n, per_rate))
                listed += 1
        pooled = []
        for r in rates:
            pooled.append(
                {d: tuple(sum(counts[(ds, rec[0], r, d)][i] for rec in recs) for i in range(3)) for d in dets}
            )
            for d in dets:
                counts[(ds, "pooled", r, d)] = (*pooled[-1][d], np.array([]))
        fss = sorted({f"{rec[2]:g}" for rec in recs})
        title = f"{LABELS[ds]} ({len(recs)} records)"
        if ds == "ludb":
            title += f", {listed} listed: Se or PPV < {100 * LUDB_LIST_BELOW:g} % for a detector at a rate"
        lines.append(title)
        lines += [top, head, *body]
        lines.append(row("pooled", "/".join(fss), pooled[0]["bprl"][0] + pooled[0]["bprl"][1], pooled))
        lines.append("")
    return lines, counts


def stage_table(rec, repeat: int) -> list[str]:
    """CPU ms (best of ``repeat``) and minor page faults (last round) per call of each stage of the
    pipeline without the rhythm columns, on record ``rec``."""
    import resource

    from bprl.beats.ecg import _ecg_energy, _ecg_peaks_filled
    from bprl.beats.filters import signal_fill_nan
    from bprl.beats.quality import _beat_sqi_filled
    from bprl.features import beats as feature_beats

    cfg = FeatureConfig(rhythm=False, ectopic_gating="rr")
    ecg = rec.channel("ecg")
    ecg_x, ecg_nan = signal_fill_nan(ecg.samples)
    r = _ecg_peaks_filled(ecg_x, ecg_nan, ecg.fs_hz, True)
    table = record_beats(rec, cfg)
    stages = {
        "pipeline without the rhythm columns": lambda: replay_table_from_beats(
            record_beats(rec, cfg), rec.duration_s, rec.subject_id, rec.record_id
        ),
        "ECG R peaks (NaN-filled lead)": lambda: _ecg_peaks_filled(ecg_x, ecg_nan, ecg.fs_hz, True),
        "  of which the QRS energy": lambda: _ecg_energy(ecg_x, ecg.fs_hz),
        "ECG quality (SQI per beat)": lambda: _beat_sqi_filled(ecg_x, ecg_nan, ecg.fs_hz, r, 0.2, 0.4),
        "PPG columns (fiducials, PAT, SQI)": lambda: feature_beats._ppg_columns(rec, r, cfg),
        "ABP columns (beats, reject rules)": lambda: feature_beats._abp_columns(rec, r, cfg),
        "replay table from the beats": lambda: replay_table_from_beats(
            table, rec.duration_s, rec.subject_id, rec.record_id
        ),
    }
    out = [f"{'stage':40s} {'CPU ms':>8s} {'page faults':>12s}"]
    for name, fn in stages.items():
        fn()  # warm: caches and the allocator's first pages
        best, faults = np.inf, 0
        for _ in range(repeat):
            f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
            fn()
            best = min(best, time.process_time() - t0)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        out.append(f"{name:40s} {1000 * best:8.1f} {faults:12d}")
    out.append(f"CPU ms: best of {repeat} rounds, one process; page faults: minor faults of the last round.")
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the speed / accuracy table, then the per-record R-peak table (or, with ``--stages``,
    only the stage table)."""
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    t_start = time.perf_counter()
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_features")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--datasets",
        default=",".join(DATASETS),
        help=f"comma-separated data sets of the per-record table, of {','.join(DATASETS)} ('' for none)",
    )
    ap.add_argument("--stages", action="store_true", help="print only the per-stage CPU time and page faults")
    args = ap.parse_args(argv if argv is not None else sys.argv[1:])
    datasets = [d for d in args.datasets.split(",") if d]
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        ap.error(f"unknown data set(s) {unknown}; one of {list(DATASETS)}")
    from bprl.cohort import make_cohort

    with tempfile.TemporaryDirectory() as tmp:
        make_cohort(tmp, n_subjects=1, hours=args.hours, seed=11, progress=False)
        rec = read_record(next(Path(tmp).rglob("*.hea")))
    ecg, ppg = rec.channel("ecg"), rec.channel("ppg")
    print(
        f"record: {rec.duration_s / 3600:.2f} h, ECG {ecg.fs_hz:g} Hz, PPG {ppg.fs_hz:g} Hz, ABP {rec.channel('abp').fs_hz:g} Hz"
    )

    if args.stages:
        print(*stage_table(rec, args.repeat), sep="\n")
        return

    def pipeline(rhythm: bool = True) -> None:
        beats = record_beats(rec, FeatureConfig(rhythm=rhythm, ectopic_gating="classes" if rhythm else "rr"))
        replay_table_from_beats(beats, rec.duration_s, rec.subject_id, rec.record_id)

    tm = _timed(
        {
            "full": pipeline,
            "beats": lambda: pipeline(False),
            "ecg": lambda: ecg_peaks(ecg.samples, ecg.fs_hz),
            "nk": lambda: _nk_both(ecg.samples, ecg.fs_hz, ppg.samples, ppg.fs_hz),
        },
        args.repeat,
    )
    nk_r = _nk_ecg(np.nan_to_num(ecg.samples), ecg.fs_hz)
    tm.update(
        _timed(
            {
                "xqrs": lambda: _xqrs(ecg.samples, ecg.fs_hz),
                "nk_delin": lambda: _nk_delineate(ecg.samples, ecg.fs_hz, nk_r),
            },
            1,
        )
    )
    t_bprl = tm["full"]
    # per-record table first: its MIT-BIH counts also give the pooled bprl / NeuroKit2 columns below
    table, counts = per_record_table(datasets) if datasets else ([], {})
    root = _physionet()
    acc, acc_rate = {}, {}
    if (root / "mitdb").is_dir():
        for key, det in (("bprl", _bprl_ecg), ("nk", _nk_ecg), ("xqrs", _xqrs)):
            if all(("mitdb", name, None, key) in counts for name in MITDB):
                acc[key] = _pooled([counts[("mitdb", name, None, key)] for name in MITDB])
                acc_rate[key] = [
                    _pooled([counts[("mitdb", name, r, key)] for name in MITDB])[:2] for r in RATES
                ]
            else:
                acc[key] = mitdb_accuracy(det, root)
                acc_rate[key] = [mitdb_accuracy(det, root, r)[:2] for r in RATES]
    rows = [
        ("bprl full pipeline (R, PPG, ABP, SQI, features, table)", tm["full"], "bprl"),
        ("  without the rhythm columns (rhythm: false, rr gating)", tm["beats"], "bprl"),
        ("bprl ecg_peaks only", tm["ecg"], "bprl"),
        ("neurokit2 ecg_peaks + ppg_peaks", tm["nk"], "nk"),
        ("neurokit2 ecg_delineate (dwt) of its R peaks", tm["nk_delin"], "nk"),
        ("wfdb xqrs_detect (ECG only)", tm["xqrs"], "xqrs"),
    ]
    rate_cols = " ".join(f"{f'Se/PPV {r} Hz':>14s}" for r in RATES)
    print(
        f"{'method':58s} {'CPU s / 1 h':>12s} {'x bprl full':>11s} {'Se':>8s} {'PPV':>8s} {'|dt| ms':>8s} {'p95 ms':>7s} "
        + rate_cols
    )
    for label, t, key in rows:
        se, ppv, dt, dt95 = acc.get(key, (np.nan,) * 4)
        at_rates = acc_rate.get(key, [(np.nan, np.nan)] * len(RATES))
        cols = " ".join(f"{f'{100 * a:.2f}/{100 * b:.2f}':>14s}" for a, b in at_rates)
        print(f"{label:58s} {t:12.3f} {t / t_bprl:11.2f} {se:8.4f} {ppv:8.4f} {dt:8.1f} {dt95:7.1f} {cols}")
    print(f"CPU s: best of {args.repeat} interleaved rounds (xqrs, delineate: 1 round), this process only.")
    print(
        f"Like for like: neurokit2 peaks / bprl pipeline without rhythm columns = {tm['nk'] / tm['beats']:.2f}x; "
        f"neurokit2 peaks + delineation / bprl full pipeline (peaks, delineation, beat classes, AF) = "
        f"{(tm['nk'] + tm['nk_delin']) / tm['full']:.2f}x."
    )
    print("Se/PPV: MIT-BIH 100, 103, 105, 106 pooled, 150 ms window (neurokit2: ecg_peaks on the raw lead);")
    print(f"Se/PPV at {', '.join(map(str, RATES))} Hz (%): the same records resampled with resample_poly.")
    print("|dt|: mean and 95th percentile of |detected - annotated| R time over matched beats.")
    if table:
        print()
        print("R peaks per record, bprl (ecg_peaks) vs NeuroKit2 (ecg_peaks, default method), Se/PPV in %:")
        print(*table, sep="\n")
        print(
            "Beats: scored reference beats at the native rate. 150 ms matching window (wfdb compare_annotations)\n"
            "at every rate; 250 and 125 Hz: the record resampled with resample_poly (QTDB is 250 Hz: its 250 Hz\n"
            "column repeats the native one). dSe/dPPV: bprl - NeuroKit2 in percentage points, Se and PPV\n"
            "separately, since missed beats (Se) and extra beats (PPV) are different failures.\n"
            "MIT-BIH and QTDB: first lead, .atr beat annotations (N L R B A a J S V r F e j n E / f Q ?), whole\n"
            "record. LUDB: lead II; reference = QRS peaks (N) of the 'ii' annotations; the annotators left the\n"
            "first and last beats unannotated, so only the annotated stretch (first to last wave mark) is scored,\n"
            f"and never within {LUDB_EDGE_S:g} s of either end: references and detections outside it are ignored\n"
            "(matching is done over the whole record, so a beat at the border is neither a false FN nor FP).\n"
            f"LUDB lists only the records where either detector has Se or PPV < {100 * LUDB_LIST_BELOW:g} % at some rate; the pooled\n"
            "row counts all of them."
        )
    print(f"run time: {time.perf_counter() - t_start:.0f} s wall")


if __name__ == "__main__":
    main()
