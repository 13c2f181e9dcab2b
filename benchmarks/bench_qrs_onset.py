"""QRS onset: the wavelet rule, a constant correction and the learned correction, out of sample.

The learned correction (:mod:`bprl.beats.qrs_onset_model`, ``ecg_delineate(..., qrs_onset="model")``)
is trained on LUDB, so its LUDB error is measured by 5-fold cross-validation with records as
units (:func:`bprl.beats.train_qrs_onset.cross_validate_shift`: each record's onsets corrected by a
model that has not seen it), and its QTDB error with the shipped model, which has never seen QTDB.
The **constant** baseline moves every wavelet onset by the median training error (per fold on
LUDB; all of LUDB for QTDB): the part of the gain a plain bias shift gives.

* LUDB (``ludb/`` of ``$BPRL_RHYTHM_DIR``, 150 records, 12 leads, 500 Hz): R peaks of lead II;
  lead II against its marks, every lead against its own, and the 12-lead median
  (:func:`bprl.beats.ecg_delineate_leads`, 6 of 12) against the lead II marks.
* QTDB (the 18 records of ``RECORDS-with-signals``, 250 Hz, q1c marks): R peaks of lead 0;
  lead 0, lead 1, the best lead (the QTDB literature's convention) and the earliest onset of the
  two leads (``rule="earliest"``: QTDB marks one global onset per beat).

Scoring as in :mod:`benchmarks.bench_delineation` (error = detected - marked in ms over the marks
with a detection within 150 ms, mean ± SD pooled, ``s_rec`` the mean per-record SD, Se / PPV).

Usage: ``python -m benchmarks qrs_onset`` (about 40 s); ``--rates`` adds the QTDB best lead with
the records resampled to 125 and 500 Hz (about 1 min more).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pandas as pd

from benchmarks.bench_delineation import GOAL, _in_s, _summary, aligned, as_bounds, counts, qtdb_items
from bprl.beats import ecg_delineate, ecg_peaks
from bprl.beats.delineation_leads import _combine_leads
from bprl.beats.rhythm_data import LUDB_LEADS
from bprl.beats.train_qrs_onset import (
    cross_validate_shift,
    ludb_onset_records,
    onset_table,
    record_folds,
    refined_delineations,
    trainable,
)

METHODS = ("wavelet", "constant", "model")


def _constant_shift(table: pd.DataFrame, rows: np.ndarray | None = None) -> float:
    """Median ``target_ms`` of the (training) rows the model would learn from (:func:`trainable`)."""
    part = table if rows is None else table.iloc[rows]
    return float(np.median(part["target_ms"].to_numpy()[trainable(part)]))


def _cell(c: tuple) -> str:
    _, mean, sd, s_rec, se, ppv = c
    return f"{mean:+.1f} ± {sd:.1f} ({s_rec:.1f}; {se:.1f} / {ppv:.1f})"


def _print_table(title: str, rows: dict[str, dict[str, list[dict]]]) -> list[str]:
    lines = [
        title,
        "",
        "| scope | " + " | ".join(METHODS) + " | beats |",
        "| --- " * (len(METHODS) + 2) + "|",
    ]
    for scope, by_method in rows.items():
        cells = {m: _summary(v)["qrs_onset"] for m, v in by_method.items()}
        n = cells["wavelet"][0]
        lines.append(f"| {scope} | " + " | ".join(_cell(cells[m]) for m in METHODS) + f" | {n} |")
    return [*lines, ""]


def run_ludb() -> tuple[list[str], float]:
    """The LUDB table (cross-validated) and the all-LUDB constant shift (ms) for QTDB."""
    records = list(ludb_onset_records())
    if not records:
        return ["LUDB: no records found"], float("nan")
    table = onset_table(records)
    const = np.full(len(table), np.nan)
    for train, test in record_folds(table):
        const[test] = _constant_shift(table, train)
    dels = {
        "wavelet": [r.delineations for r in records],
        "constant": refined_delineations(records, table, const),
        "model": refined_delineations(records, table, cross_validate_shift(table)),
    }
    scopes = ("lead II", "every lead (own marks)", "12-lead median vs lead II marks")
    rows: dict[str, dict[str, list[dict]]] = {s: {m: [] for m in METHODS} for s in scopes}
    for i, rec in enumerate(records):
        refs = {lead: _in_s(rec.marks[lead], rec.fs_hz) for lead in LUDB_LEADS}
        for m in METHODS:
            leads = dels[m][i]
            for k, lead in enumerate(LUDB_LEADS):
                c = counts(refs[lead], [aligned(refs[lead], as_bounds(leads[k]))])
                rows[scopes[1]][m].append(c)
                if lead == "ii":
                    rows[scopes[0]][m].append(c)
            med = as_bounds(_combine_leads(list(leads), 6, "median"))
            rows[scopes[2]][m].append(counts(refs["ii"], [aligned(refs["ii"], med)]))
    title = (
        f"LUDB ({len(records)} records), QRS onset error ms: mean ± SD (s_rec; Se / PPV %); "
        "constant and model out of fold (5-fold CV by record)"
    )
    return _print_table(title, rows), _constant_shift(table)


def run_qtdb(const_ms: float) -> list[str]:
    """The QTDB table: the shipped model (trained on LUDB only) and the all-LUDB constant."""
    scopes = ("lead 0", "lead 1", "best lead", "earliest of the two leads")
    rows: dict[str, dict[str, list[dict]]] = {s: {m: [] for m in METHODS} for s in scopes}
    n_rec = 0
    for _, sig, fs, ref, _ in qtdb_items():
        n_rec += 1
        r_s = ecg_peaks(sig[:, 0], fs)
        wav = [ecg_delineate(sig[:, k], fs, r_times_s=r_s) for k in range(2)]
        per = {
            "wavelet": wav,
            "constant": [d.assign(qrs_onset_s=d["qrs_onset_s"] + const_ms / 1000) for d in wav],
            "model": [ecg_delineate(sig[:, k], fs, r_times_s=r_s, qrs_onset="model") for k in range(2)],
        }
        for m, leads in per.items():
            a = [aligned(ref, as_bounds(d)) for d in leads]
            rows["lead 0"][m].append(counts(ref, a[:1], exhaustive=False))
            rows["lead 1"][m].append(counts(ref, a[1:], exhaustive=False))
            rows["best lead"][m].append(counts(ref, a, exhaustive=False))
            first = as_bounds(_combine_leads(leads, 1, "earliest"))
            rows["earliest of the two leads"][m].append(counts(ref, [aligned(ref, first)], exhaustive=False))
    if not n_rec:
        return ["QTDB: no records found"]
    title = (
        f"QTDB q1c ({n_rec} records, not used in training), QRS onset error ms: mean ± SD (s_rec; Se / PPV %); "
        f"model: the shipped one, constant: {const_ms:+.1f} ms (the LUDB median)"
    )
    return _print_table(title, rows)


def run_rates(rates_hz: tuple[float, ...] = (125.0, 250.0, 500.0)) -> list[str]:
    """QTDB best lead, wavelet rule and shipped model, with the records resampled
    (``scipy.signal.resample_poly``) from 250 Hz to each rate."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    lines = [
        "QTDB best lead at other rates (resampled from 250 Hz), QRS onset error ms: mean ± SD (Se %)",
        "",
    ]
    lines += ["| rate | wavelet | model |", "| --- | --- | --- |"]
    items = list(qtdb_items())
    for rate in rates_hz:
        q = Fraction(rate / 250.0).limit_denominator(100)
        per: dict[str, list[dict]] = {"wavelet": [], "model": []}
        for _, sig, fs, ref, _ in items:
            x = resample_poly(sig, q.numerator, q.denominator, axis=0) if q != 1 else sig
            f = fs * q.numerator / q.denominator
            r_s = ecg_peaks(x[:, 0], f)
            for m, runs in per.items():
                a = [
                    aligned(ref, as_bounds(ecg_delineate(x[:, k], f, r_times_s=r_s, qrs_onset=m)))
                    for k in range(2)
                ]
                runs.append(counts(ref, a, exhaustive=False))
        cells = []
        for m in ("wavelet", "model"):
            _, mean, sd, _, se, _ = _summary(per[m])["qrs_onset"]
            cells.append(f"{mean:+.1f} ± {sd:.1f} ({se:.1f})")
        lines.append(f"| {rate:g} Hz | " + " | ".join(cells) + " |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> None:
    """Print the LUDB and QTDB QRS onset tables."""
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_qrs_onset")
    ap.add_argument("--rates", action="store_true", help="also QTDB resampled to 125 and 500 Hz")
    args = ap.parse_args(argv if argv is not None else sys.argv[1:])
    print(f"QRS onset refinement, out of sample. Goal: {GOAL}\n")
    ludb, const_ms = run_ludb()
    print(*ludb, sep="\n", flush=True)
    if np.isfinite(const_ms):
        print(*run_qtdb(const_ms), sep="\n", flush=True)
    if args.rates:
        print(*run_rates(), sep="\n", flush=True)
    print(f"run time: {time.perf_counter() - t0:.0f} s wall")


if __name__ == "__main__":
    main()
