"""Multi-lead delineation: the median over leads (:func:`bprl.beats.ecg_delineate_leads`) against
each lead's own delineation, on LUDB (12 leads) and QTDB (2 leads).

LUDB (``ludb/`` of ``$BPRL_RHYTHM_DIR``, 150 records, 10 s, 500 Hz): R peaks from lead II
(:func:`bprl.beats.ecg_peaks`), the 12 leads delineated at them, and the beat's boundaries
scored against the cardiologists' lead II marks and against every lead's marks (the same beat
once per lead), with ``min_leads`` 6 (the default, half of the leads) and 4, and with
``rule="earliest"`` (the earliest onset and latest offset over the leads). Beside them: each lead
delineated alone, scored against its own marks (the tables of ``bench_delineation``), and the
**reference spread**: each lead's mark minus the median of the 12 leads' marks of the same
beat, which is the error of a perfect one-instant-per-beat delineator against every lead's marks.
QTDB (18 records with signals, q1c marks): the median of the two leads (``min_leads`` 1) and their
earliest onset / latest offset beside lead 0 alone. Scoring as in :mod:`benchmarks.bench_delineation` (150 ms tolerance, Se / PPV,
pooled mean ± SD, ``s_rec`` the mean per-record SD).

Usage: ``python -m benchmarks delineation_leads`` (about 1 min on one core), or
``python -m benchmarks.bench_delineation_leads [--datasets ludb,qtdb]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pandas as pd
import wfdb

from benchmarks.bench_delineation import (
    LUDB_LEADS,
    _in_s,
    _pair_beats,
    aligned,
    as_bounds,
    counts,
    parse_wave_marks,
    qtdb_items,
    table,
)
from benchmarks.bench_features import _rhythm
from bprl.beats import ecg_delineate, ecg_peaks
from bprl.beats.delineation_leads import _combine_leads

DATASETS = ("ludb", "qtdb")
SPREAD_BOUNDS = ("p_onset", "qrs_onset", "qrs_offset", "t_end")


def _per_lead(sig: np.ndarray, fs: float, r_s: np.ndarray) -> list[pd.DataFrame]:
    """Each lead's delineation at the R peaks ``r_s`` (done once; the multi-lead rules combine
    these, as :func:`bprl.beats.ecg_delineate_leads` does)."""
    return [ecg_delineate(sig[:, k], fs, r_times_s=r_s) for k in range(sig.shape[1])]


def _ludb_records():
    """``(name, record, references by lead)`` of every LUDB record with all 12 leads marked."""
    top = _rhythm() / "ludb"
    listed = top / "RECORDS"
    for entry in listed.read_text().split() if listed.is_file() else []:
        path = top / entry
        if not path.with_suffix(".hea").is_file():
            continue
        if not all(path.with_suffix(f".{lead}").is_file() for lead in LUDB_LEADS):
            continue
        rec = wfdb.rdrecord(str(path))
        refs = {}
        for lead in LUDB_LEADS:
            ann = wfdb.rdann(str(path), lead)
            refs[lead] = _in_s(parse_wave_marks(ann.sample, ann.symbol), float(rec.fs))
        yield path.name, rec, refs


def _spread(refs: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """Each lead's mark minus the median of the 12 leads' marks of the same beat (ms)."""
    base = refs["ii"]["r"].to_numpy()
    out = {}
    for b in SPREAD_BOUNDS:
        marks = np.full((len(LUDB_LEADS), len(base)), np.nan)
        for k, lead in enumerate(LUDB_LEADS):
            idx = _pair_beats(base, refs[lead]["r"].to_numpy(), 0.15)
            ok = idx >= 0
            marks[k, ok] = refs[lead][b].to_numpy()[idx[ok]]
        n = np.isfinite(marks).sum(axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dev = 1000 * (marks - np.nanmedian(marks, axis=0))
        dev = dev[:, n >= len(LUDB_LEADS) // 2]
        out[b] = dev[np.isfinite(dev)]
    return out


def run_ludb() -> list[str]:
    """The LUDB tables and the reference-spread line."""
    scopes = ("lead II marks", "every lead's marks")
    acc: dict[str, dict[str, list]] = {s: {} for s in scopes}
    spread: dict[str, list[np.ndarray]] = {b: [] for b in SPREAD_BOUNDS}
    n_rec = 0
    for _, rec, refs in _ludb_records():
        n_rec += 1
        fs = float(rec.fs)
        sig = rec.p_signal[:, [rec.sig_name.index(lead) for lead in LUDB_LEADS]]
        r_s = ecg_peaks(sig[:, LUDB_LEADS.index("ii")], fs)
        per_lead = _per_lead(sig, fs, r_s)
        dets = {f"median, {k} of 12": as_bounds(_combine_leads(per_lead, k, "median")) for k in (6, 4)}
        dets["earliest onset / latest offset, 6 of 12"] = as_bounds(_combine_leads(per_lead, 6, "earliest"))
        for k, lead in enumerate(LUDB_LEADS):
            ref = refs[lead]
            for m, d in {"each lead alone": as_bounds(per_lead[k]), **dets}.items():
                c = counts(ref, [aligned(ref, d)])
                acc[scopes[1]].setdefault(m, []).append(c)
                if lead == "ii":
                    acc[scopes[0]].setdefault(m, []).append(c)
        for b, v in _spread(refs).items():
            spread[b].append(v)
    if not n_rec:
        return ["LUDB: no records with 12 marked leads found"]
    out = []
    for scope in scopes:
        out += _method_tables(f"LUDB ({n_rec} records, 12 leads), scored against {scope}", acc[scope])
    cells = []
    for b, parts in spread.items():
        v = np.concatenate(parts)
        cells.append(f"{b} {v.mean():+.1f} ± {v.std():.1f} ({100 * np.mean(np.abs(v) > 10):.0f} % > 10 ms)")
    out.append(
        "LUDB reference spread (each lead's mark - median of the 12 leads' marks of the beat, ms): "
        + "; ".join(cells)
    )
    return out


def _method_tables(title: str, by_method: dict[str, list[dict]]) -> list[str]:
    """One :func:`benchmarks.bench_delineation.table` per method (its labels are fixed)."""
    lines = []
    for m, v in by_method.items():
        lines += table(f"{title}; {m}, error ms, Se/PPV %:", {"bprl": v})
    return lines


def run_qtdb() -> list[str]:
    """QTDB: the two-lead median against lead 0 alone."""
    acc: dict[str, list] = {
        "lead 0 alone": [],
        "median of both leads": [],
        "earliest onset / latest offset of both leads": [],
    }
    n_rec = 0
    for _, sig, fs, ref, _ in qtdb_items():
        n_rec += 1
        r_s = ecg_peaks(sig[:, 0], fs)
        per_lead = _per_lead(sig, fs, r_s)
        own = as_bounds(per_lead[0])
        both = as_bounds(_combine_leads(per_lead, 1, "median"))
        first = as_bounds(_combine_leads(per_lead, 1, "earliest"))
        acc["lead 0 alone"].append(counts(ref, [aligned(ref, own)], exhaustive=False))
        acc["median of both leads"].append(counts(ref, [aligned(ref, both)], exhaustive=False))
        acc["earliest onset / latest offset of both leads"].append(
            counts(ref, [aligned(ref, first)], exhaustive=False)
        )
    if not n_rec:
        return ["QTDB: no records found"]
    return _method_tables(f"QTDB q1c ({n_rec} records)", acc)


def main(argv: list[str] | None = None) -> None:
    """Print the multi-lead delineation tables."""
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_delineation_leads")
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated, of ludb,qtdb")
    args = ap.parse_args(argv if argv is not None else sys.argv[1:])
    datasets = [d for d in args.datasets.split(",") if d]
    if set(datasets) - set(DATASETS):
        ap.error(f"unknown data set(s); one of {list(DATASETS)}")
    print("Multi-lead delineation (median over leads), tolerance 150 ms; error = detected - reference\n")
    for ds in datasets:
        print(*(run_ludb() if ds == "ludb" else run_qtdb()), sep="\n", flush=True)
        print()
    print(f"run time: {time.perf_counter() - t0:.0f} s wall")


if __name__ == "__main__":
    main()
