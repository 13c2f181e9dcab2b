"""ECG delineation accuracy: bprl vs NeuroKit2 (``method="dwt"``) vs ecgpuwave, on LUDB and QTDB.

For each record and lead, R peaks come from :func:`bprl.beats.ecg_peaks`; bprl
(:func:`bprl.beats.ecg_delineate` with those R times) and NeuroKit2
(``nk.ecg_delineate(nk.ecg_clean(x, fs), rpeaks, fs, method="dwt")`` with the same R peaks as
sample indices) delineate the same beats. On QTDB the ecgpuwave boundaries shipped with the
database (``.pu``, one set per lead) are a third column, with ecgpuwave's own beats.

References: LUDB (``ludb/`` of ``$BPRL_RHYTHM_DIR``, 500 Hz, 10 s) lead II (``--ludb-leads all``:
the 12 leads), the cardiologists' per-lead marks; QTDB (``qtdb/``, the records of
``RECORDS-with-signals``, 250 Hz, 15 min), the ``q1c`` marks of cardiologist 1 (about 30-100
beats per record), scored on lead 0, on lead 1, and on the **best lead**: per beat and
boundary, the lead whose mark is closer to the reference (Martínez et al. 2004; Zhang et al.
2006; Vázquez-Seisdedos et al. 2011), and when the reference has no such mark, a false
positive only if both leads mark one.

Scoring: reference beats (QRS peaks) are paired one to one with the delineated beats whose R
lies within 150 ms (nearest first). For each boundary of a paired beat: a reference mark with a
detected mark within ``TOL_MS`` = 150 ms is a true positive (its error, detected − reference in
ms, enters mean ± SD), a reference mark without one is a false negative (as are the marks of
unpaired reference beats), a detected mark without a reference mark within 150 ms a false
positive (on QTDB only for boundary kinds the annotator marked somewhere in that record: q1c
has no P marks in sel232, whose P waves are plain, nor any T onset; LUDB marks every wave of
every lead, so a P found in atrial fibrillation is a false positive), counted only between the
record's first and last reference mark (LUDB leaves the first and last beats unannotated). Se = TP / (TP + FN),
PPV = TP / (TP + FP). SD is over all matched beats pooled; ``s_rec`` is the mean over records of
the per-record SD (the convention of several QTDB papers).

Usage: ``python -m benchmarks delineation``, or
``python -m benchmarks.bench_delineation [--datasets ludb,qtdb] [--ludb-leads ii|all]
[--no-nk] [--per-record] [--rates]`` (``--rates``: the same LUDB beats resampled to 250, 360 and
1000 Hz and inverted, against 500 Hz). The default run takes about 4 min of CPU, nearly all of
it NeuroKit2 on the 15-min QTDB records; ``--no-nk`` takes about 15 s.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from benchmarks.bench_features import _rhythm
from bprl.beats import ecg_delineate, ecg_peaks
from bprl.beats.rhythm_data import LUDB_LEADS, WAVE_BOUNDS, parse_wave_marks

BOUNDS = WAVE_BOUNDS
TOL_MS = 150.0  # boundary (and beat) matching tolerance
DATASETS = ("ludb", "qtdb")
NK_MAP = {
    "p_onset": "ECG_P_Onsets",
    "p_peak": "ECG_P_Peaks",
    "p_offset": "ECG_P_Offsets",
    "qrs_onset": "ECG_R_Onsets",
    "qrs_offset": "ECG_R_Offsets",
    "t_peak": "ECG_T_Peaks",
    "t_end": "ECG_T_Offsets",
}
GOAL = "QRS onset within 1 +- 10 ms (ecgpuwave on QTDB: about +1 +- 15 ms)"


def _in_s(df: pd.DataFrame, fs: float) -> pd.DataFrame:
    """Sample columns (and the annotated span) of :func:`parse_wave_marks` in seconds."""
    out = df / fs
    out.attrs["span"] = tuple(v / fs for v in df.attrs["span"])
    return out


def _pair_beats(ref_r: np.ndarray, det_r: np.ndarray, tol: float) -> np.ndarray:
    """Index into ``det_r`` of the beat paired with each reference beat (-1: none), one to one,
    nearest pairs first, within ``tol`` (same units)."""
    out = np.full(len(ref_r), -1)
    if len(ref_r) == 0 or len(det_r) == 0:
        return out
    d = np.abs(ref_r[:, None] - det_r[None, :])
    used = np.zeros(len(det_r), bool)
    for flat in np.argsort(d, axis=None):
        i, j = divmod(int(flat), len(det_r))
        if d[i, j] > tol:
            break
        if out[i] < 0 and not used[j]:
            out[i], used[j] = j, True
    return out


def aligned(ref: pd.DataFrame, det: pd.DataFrame) -> pd.DataFrame:
    """Detected boundaries (s) aligned with the reference beats (NaN where no beat was paired)."""
    idx = _pair_beats(ref["r"].to_numpy(), det["r"].to_numpy(), TOL_MS / 1000)
    out = pd.DataFrame(np.nan, index=ref.index, columns=list(BOUNDS))
    hit = idx >= 0
    out.loc[hit, :] = det[list(BOUNDS)].to_numpy()[idx[hit]]
    return out


def counts(ref: pd.DataFrame, det_by_lead: list[pd.DataFrame], exhaustive: bool = True) -> dict[str, tuple]:
    """Per boundary (TP, FN, FP, errors ms) of one record; several leads: best lead per beat.

    ``exhaustive``: the reference marks every wave present (LUDB), so a detection where it has
    none is a false positive; otherwise (QTDB q1c) only for kinds it marked in the record.
    """
    tol = TOL_MS / 1000
    lo, hi = ref.attrs.get("span", (-np.inf, np.inf))
    res = {}
    for b in BOUNDS:
        r = ref[b].to_numpy()
        dets = np.stack([d[b].to_numpy() for d in det_by_lead])  # leads x beats
        err = dets - r[None, :]
        with np.errstate(invalid="ignore"):
            close = np.abs(err) <= tol
        best = np.where(close, np.abs(err), np.inf).argmin(axis=0)
        e = err[best, np.arange(len(r))]
        tp = close.any(axis=0) & np.isfinite(r)
        fn = np.isfinite(r) & ~tp
        marked = exhaustive or np.isfinite(r).any()
        with np.errstate(invalid="ignore"):
            inside = ((dets >= lo) & (dets <= hi)).all(axis=0)  # within the annotated stretch
        fp_far = np.isfinite(r) & ~tp & inside
        fp_none = ~np.isfinite(r) & inside
        fp = int((fp_far | fp_none).sum()) if marked else 0
        res[b] = (int(tp.sum()), int(fn.sum()), fp, 1000 * e[tp])
    return res


def _nk(x: np.ndarray, fs: float, r_s: np.ndarray) -> pd.DataFrame:
    import neurokit2 as nk

    rp = np.rint(r_s * fs).astype(int)
    out = pd.DataFrame({"r": r_s})
    try:
        _, waves = nk.ecg_delineate(
            nk.ecg_clean(x, sampling_rate=round(fs)), rp, sampling_rate=round(fs), method="dwt"
        )
    except Exception:  # NeuroKit2 fails on some short or odd records: no marks
        waves = {}
    for b, key in NK_MAP.items():
        v = np.asarray(waves.get(key, []), dtype=float)
        out[b] = v / fs if len(v) == len(rp) else np.nan
    return out


def as_bounds(d: pd.DataFrame) -> pd.DataFrame:
    """A bprl delineation frame with the benchmark's column names (``r`` and :data:`BOUNDS`)."""
    return d.rename(columns={f"{b}_s": b for b in BOUNDS}).rename(columns={"r_s": "r"})


def _bprl(x: np.ndarray, fs: float, r_s: np.ndarray) -> pd.DataFrame:
    return as_bounds(ecg_delineate(x, fs, r_times_s=r_s))


def _timed(fn, *args):
    t0 = time.process_time()
    out = fn(*args)
    return out, time.process_time() - t0


def ludb_items(leads: tuple[str, ...]):
    """``(record, lead, signal, fs, reference beats in s)`` of every LUDB record and lead found."""
    top = _rhythm() / "ludb"
    listed = top / "RECORDS"
    names = listed.read_text().split() if listed.is_file() else []
    for entry in sorted(names, key=lambda n: (len(Path(n).name), Path(n).name)):
        path = top / entry
        if not path.with_suffix(".hea").is_file():
            continue
        rec = wfdb.rdrecord(str(path))
        fs = float(rec.fs)
        for lead in leads:
            if not path.with_suffix(f".{lead}").is_file():
                continue
            ann = wfdb.rdann(str(path), lead)
            ref = _in_s(parse_wave_marks(ann.sample, ann.symbol), fs)
            yield Path(entry).name, lead, rec.p_signal[:, rec.sig_name.index(lead)], fs, ref


def qtdb_items():
    """``(record, signals (n x 2), fs, reference beats in s, ecgpuwave beats per lead in s)``."""
    top = _rhythm() / "qtdb"
    listed = top / "RECORDS-with-signals"
    for name in listed.read_text().split() if listed.is_file() else []:
        path = top / "data" / name
        if not (path.with_suffix(".hea").is_file() and path.with_suffix(".q1c").is_file()):
            continue
        rec = wfdb.rdrecord(str(path))
        fs = float(rec.fs)
        ann = wfdb.rdann(str(path), "q1c")
        ref = _in_s(parse_wave_marks(ann.sample, ann.symbol), fs)
        pu = []
        if path.with_suffix(".pu").is_file():
            a = wfdb.rdann(str(path), "pu")
            for c in range(rec.p_signal.shape[1]):
                m = np.asarray(a.chan) == c
                sym = [s for s, k in zip(a.symbol, m, strict=True) if k]
                pu.append(_in_s(parse_wave_marks(np.asarray(a.sample)[m], sym, rec.p_signal[:, c]), fs))
        yield name, rec.p_signal, fs, ref, pu


def _method_rows(x, fs, use_nk: bool) -> tuple[dict, dict]:
    """Delineations and CPU times of bprl and NeuroKit2 on one lead (the same bprl R peaks)."""
    r_s, t_r = _timed(ecg_peaks, x, fs)
    dets, cpu = {}, {"R peaks": t_r}
    dets["bprl"], cpu["bprl"] = _timed(_bprl, x, fs, r_s)
    if use_nk:
        dets["nk"], cpu["nk"] = _timed(_nk, x, fs, r_s)
    return dets, cpu


def _summary(per_record: list[dict]) -> dict[str, tuple]:
    """Pooled (n, mean, SD, mean per-record SD, Se %, PPV %) per boundary over records."""
    out = {}
    for b in BOUNDS:
        tp, fn, fp = (sum(c[b][i] for c in per_record) for i in range(3))
        errs = [c[b][3] for c in per_record]
        e = np.concatenate(errs) if errs else np.zeros(0)
        sds = [float(np.std(v)) for v in errs if len(v) >= 2]
        out[b] = (
            tp,
            float(np.mean(e)) if len(e) else np.nan,
            float(np.std(e)) if len(e) else np.nan,
            float(np.mean(sds)) if sds else np.nan,
            100 * tp / (tp + fn) if tp + fn else np.nan,
            100 * tp / (tp + fp) if tp + fp else np.nan,
        )
    return out


def table(title: str, by_method: dict[str, list[dict]]) -> list[str]:
    """Lines of one error table: a row per boundary, a block per method."""
    labels = {"bprl": "bprl", "nk": "NeuroKit2 dwt", "pu": "ecgpuwave (.pu)"}
    sums = {m: _summary(v) for m, v in by_method.items() if v}
    blk = f"{'n':>5s} {'mean ± SD':>14s} {'s_rec':>5s} {'Se':>5s} {'PPV':>5s}"
    lines = [title, f"{'':10s} | " + " | ".join(f"{labels[m]:^{len(blk)}s}" for m in sums)]
    lines.append(f"{'boundary':10s} | " + " | ".join(blk for _ in sums))
    for b in BOUNDS:
        cells = []
        for m in sums:
            n, mu, sd, srec, se, ppv = sums[m][b]
            cells.append(f"{n:5d} {f'{mu:+6.1f} ± {sd:5.1f}':>14s} {srec:5.1f} {se:5.1f} {ppv:5.1f}")
        lines.append(f"{b:10s} | " + " | ".join(cells))
    return [*lines, ""]


def _cpu_line(label: str, cpu: dict[str, list[float]]) -> str:
    parts = [f"{k} {1000 * np.median(v):.1f} ms (total {sum(v):.2f} s)" for k, v in cpu.items() if v]
    return f"{label} CPU per record and lead, median: " + ", ".join(parts)


def run_ludb(leads: tuple[str, ...], use_nk: bool, per_record: bool) -> list[str]:
    acc: dict[str, dict[str, list]] = {}
    cpu: dict[str, list[float]] = {"R peaks": [], "bprl": [], "nk": []}
    n_rec, n_beats, rec_lines = set(), 0, []
    atrial = _ludb_atrial_records()
    af_p: dict[str, list[int]] = {}  # method -> [beats with a P wave, beats] in AF / flutter records
    for name, lead, x, fs, ref in ludb_items(leads):
        dets, t = _method_rows(x, fs, use_nk)
        for k, v in t.items():
            cpu[k].append(v)
        n_rec.add(name)
        n_beats += len(ref)
        for m, d in dets.items():
            if name in atrial:
                tally = af_p.setdefault(m, [0, 0])
                tally[0] += int(d["p_peak"].notna().sum())
                tally[1] += len(d)
            c = counts(ref, [aligned(ref, d)])
            for scope in (
                (f"lead {lead.upper()}", "all leads") if len(leads) > 1 else (f"lead {lead.upper()}",)
            ):
                acc.setdefault(scope, {}).setdefault(m, []).append(c)
            if per_record and m == "bprl":
                rec_lines.append(_record_line(f"{name}/{lead}", c))
    out = []
    scopes = ["lead II", "all leads"] if len(leads) > 1 else [f"lead {leads[0].upper()}"]
    for scope in scopes:
        if scope in acc:
            n = len(acc[scope]["bprl"])
            out += table(f"LUDB {scope} ({n} record-leads), error ms, Se/PPV %:", acc[scope])
    out.append(
        _cpu_line(f"LUDB ({len(n_rec)} records, {n_beats} reference beats x leads, 10 s, 500 Hz)", cpu)
    )
    if af_p:
        cells = [f"{m} {a}/{b} beats ({100 * a / max(b, 1):.1f} %)" for m, (a, b) in af_p.items()]
        out.append(
            f"P wave reported in LUDB atrial fibrillation / flutter records ({len(atrial & n_rec)} records, "
            f"all delineated beats, {'/'.join(leads)}): " + ", ".join(cells)
        )
    return out + (["", *rec_lines] if rec_lines else [])


def _ludb_atrial_records() -> set[str]:
    """LUDB records whose rhythm (``ludb.csv``) is atrial fibrillation or flutter (no P waves)."""
    path = _rhythm() / "ludb" / "ludb.csv"
    if not path.is_file():
        return set()
    meta = pd.read_csv(path)
    rhythm = meta["Rhythms"].astype(str).str.lower()
    return set(meta.loc[rhythm.str.contains("fibrillation|flutter"), "ID"].astype(str))


def run_qtdb(use_nk: bool, per_record: bool) -> list[str]:
    acc: dict[str, dict[str, list]] = {"lead 0": {}, "lead 1": {}, "best lead": {}}
    cpu: dict[str, list[float]] = {"R peaks": [], "bprl": [], "nk": []}
    n_rec, n_beats, rec_lines = 0, 0, []
    for name, sig, fs, ref, pu in qtdb_items():
        n_rec += 1
        n_beats += len(ref)
        per_lead: dict[str, list[pd.DataFrame]] = {}
        for c in range(sig.shape[1]):
            dets, t = _method_rows(sig[:, c], fs, use_nk)
            for k, v in t.items():
                cpu[k].append(v)
            if pu:
                dets["pu"] = pu[c]
            for m, d in dets.items():
                per_lead.setdefault(m, []).append(aligned(ref, d))
        for m, leads in per_lead.items():
            for c, a in enumerate(leads):
                acc[f"lead {c}"].setdefault(m, []).append(counts(ref, [a], exhaustive=False))
            acc["best lead"].setdefault(m, []).append(counts(ref, leads, exhaustive=False))
            if per_record:
                rec_lines.append(_record_line(f"{name} {m}", acc["best lead"][m][-1]))
    out = []
    for scope, by_m in acc.items():
        if by_m:
            out += table(
                f"QTDB q1c, {scope} ({n_rec} records, {n_beats} annotated beats), error ms, Se/PPV %:", by_m
            )
    out.append(_cpu_line(f"QTDB ({n_rec} records, 15 min, 250 Hz, whole record)", cpu))
    return out + (["", *rec_lines] if rec_lines else [])


def _record_line(label: str, c: dict) -> str:
    cells = [
        f"{b} {np.mean(c[b][3]) if len(c[b][3]) else np.nan:+6.1f}/{c[b][0]}"
        for b in ("qrs_onset", "qrs_offset", "t_end", "p_onset")
    ]
    return f"{label:16s} " + "  ".join(cells)


def run_rates(rates: tuple[int, ...] = (250, 360, 1000)) -> list[str]:
    """Agreement of bprl's boundaries on LUDB lead II resampled (``resample_poly``) from 500 Hz to
    ``rates`` and inverted, against the native 500 Hz run on the same R times."""
    from scipy.signal import resample_poly

    cols = [f"{b}_s" for b in BOUNDS]
    diffs: dict[str, list[np.ndarray]] = {}
    agree: dict[str, list[np.ndarray]] = {}
    for _, _, x, fs, _ in ludb_items(("ii",)):
        r_s = ecg_peaks(x, fs)
        base = ecg_delineate(x, fs, r_times_s=r_s)[cols].to_numpy()
        runs = {f"{r} Hz": (resample_poly(x, r, round(fs)), float(r)) for r in rates}
        runs["inverted"] = (-x, fs)
        for label, (y, f) in runs.items():
            d = ecg_delineate(y, f, r_times_s=r_s)[cols].to_numpy()
            diffs.setdefault(label, []).append(1000 * (d - base))
            agree.setdefault(label, []).append(np.isfinite(d) == np.isfinite(base))
    if not diffs:
        return ["LUDB: no records found"]
    lines = [
        "Same LUDB lead II beats (bprl R times) at other rates / inverted vs 500 Hz: |difference| ms, "
        "median / 95th percentile; (%): beats where both runs found the boundary or both did not",
        f"{'run':9s} " + " ".join(f"{b:>19s}" for b in BOUNDS),
    ]
    for label, v in diffs.items():
        a = np.abs(np.concatenate(v))
        both = np.concatenate(agree[label]).mean(axis=0) * 100
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            med, p95 = np.nanmedian(a, axis=0), np.nanpercentile(a, 95, axis=0)
        cells = [f"{m:4.1f}/{p:4.1f} ({f:5.1f}%)" for m, p, f in zip(med, p95, both, strict=True)]
        lines.append(f"{label:9s} " + " ".join(f"{c:>19s}" for c in cells))
    return [*lines, ""]


def main(argv: list[str] | None = None) -> None:
    """Print the delineation error tables (bprl, NeuroKit2, ecgpuwave) of LUDB and QTDB."""
    warnings.filterwarnings("ignore")
    t_start = time.perf_counter()
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_delineation")
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated, of ludb,qtdb")
    ap.add_argument("--ludb-leads", default="ii", help="'ii' (default), 'all', or comma-separated lead names")
    ap.add_argument("--no-nk", action="store_true", help="leave NeuroKit2 out (faster)")
    ap.add_argument("--per-record", action="store_true", help="also print per-record mean errors")
    ap.add_argument("--rates", action="store_true", help="also compare LUDB at 250/360/1000 Hz and inverted")
    args = ap.parse_args(argv if argv is not None else sys.argv[1:])
    datasets = [d for d in args.datasets.split(",") if d]
    if set(datasets) - set(DATASETS):
        ap.error(f"unknown data set(s); one of {list(DATASETS)}")
    leads = LUDB_LEADS if args.ludb_leads == "all" else tuple(args.ludb_leads.split(","))
    print(f"Delineation, tolerance {TOL_MS:g} ms; goal: {GOAL}")
    print(
        "error = detected - reference (ms), pooled mean ± SD over matched marks; s_rec = mean per-record SD\n"
    )
    for ds in datasets:
        lines = (
            run_ludb(leads, not args.no_nk, args.per_record)
            if ds == "ludb"
            else run_qtdb(not args.no_nk, args.per_record)
        )
        print(*lines, sep="\n", flush=True)
        print()
    if args.rates:
        print(*run_rates(), sep="\n", flush=True)
    print(f"run time: {time.perf_counter() - t_start:.0f} s wall")


if __name__ == "__main__":
    main()
