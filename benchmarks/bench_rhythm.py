"""Rhythm: AF per 30-s window on the MIT-BIH AF Database and CinC 2017 rhythm classes.

AF (``afdb_rr_rhythm/`` of ``$BPRL_RHYTHM_DIR``, 17 records, automatic beat annotations, manual
rhythm reference; a window is AF when more than half of it is ``(AFIB``): bprl's RR model
(:mod:`bprl.beats.af`) with **leave-one-record-out** cross-validation (each record scored by a
model trained on the other 16), pooled Se / Sp / PPV / accuracy, beside
published-style baselines scored on the same windows: the coefficient of sample entropy rule of
Lake & Moorman (2011) at their threshold (AF when COSEn > -1.4, no training), the same rule
with its threshold chosen on the other records (leave-one-record-out), and NeuroKit2's sample
entropy (``nk.entropy_sample``, m = 2, r = 0.2 SD; NeuroKit2 has no AF detector) with a
leave-one-record-out threshold. Windows mostly annotated as atrial flutter are left out of
Se / Sp and reported apart (share called AF); windows with < 12 RR intervals are ``unknown``.
A per-record table follows.

CinC 2017 (``cinc2017/training_subset/``, 1731 records): bprl's classifier
(:mod:`bprl.beats.rhythm_classes`) with stratified 5-fold cross-validation, records as units,
repeated over split seeds (one split moves the CinC F1 by about +-0.01), beside the same model
without the delineated-interval features (:data:`bprl.beats.intervals.INTERVAL_FEATURE_NAMES`;
their gain paired by split seed), without those and the atrial, RR-pattern, second-template and
noise features (:data:`bprl.beats.ecg_atrial.EXTRA_RHYTHM_FEATURE_NAMES`; their gain paired too),
an RR-only model (the RR features alone, same training) and the
trivial majority-class baseline: F1 of N, A, O, ~, the CinC F1 (mean of N, A, O) and the
confusion matrix of the first split.

LUDB (``ludb/``, lead II of its 10-s 500 Hz records, a database the classifier was not trained on):
the records' rhythm from ``ludb.csv`` against the class the shipped model gives.

Usage: ``python -m benchmarks rhythm``, or
``python -m benchmarks.bench_rhythm [--sections af,cinc,ludb] [--split-seeds 0,1,2,3,4] [--no-per-record]``.
A few minutes on two cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bprl.beats import af, rhythm_classes
from bprl.beats.ecg_atrial import EXTRA_RHYTHM_FEATURE_NAMES
from bprl.beats.intervals import INTERVAL_FEATURE_NAMES
from bprl.beats.rr_features import RR_FEATURE_NAMES

SECTIONS = ("af", "cinc", "ludb")
COSEN_THRESHOLD = -1.4  # Lake & Moorman 2011


def _rhythm() -> Path:
    """``$BPRL_RHYTHM_DIR`` or ``../shared/data/rhythm`` next to the repository."""
    env = os.environ.get("BPRL_RHYTHM_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "rhythm"


def _loro_threshold_calls(values: np.ndarray, y: np.ndarray, records: np.ndarray) -> np.ndarray:
    """AF calls ``values > t`` with ``t`` chosen per held-out record on the other records
    (maximum Se + Sp over 199 quantiles of their values)."""
    calls = np.zeros(len(values), dtype=bool)
    for rec in np.unique(records):
        tr = records != rec
        cand = np.quantile(values[tr], np.linspace(0.005, 0.995, 199))
        pos, neg = values[tr & y], values[tr & ~y]
        youden = [np.mean(pos > t) + np.mean(neg <= t) for t in cand]
        calls[~tr] = values[~tr] > cand[int(np.argmax(youden))]
    return calls


def _nk_sampen(table: pd.DataFrame, folder: Path) -> np.ndarray:
    """NeuroKit2 sample entropy (m = 2, r = 0.2 SD) of each window's RR (inf -> 10)."""
    import neurokit2 as nk

    from bprl.beats.rhythm_data import read_afdb_rr

    out = np.full(len(table), np.nan)
    pos = pd.Series(np.arange(len(table)), index=table.index)
    for rec, rows in table.groupby("record", sort=False):
        r = read_afdb_rr(folder, rec).r_times_s
        rr = np.diff(r) * 1000.0
        tb = r[1:]
        for i, lo, hi in zip(rows.index, rows["t_start_s"], rows["t_end_s"], strict=True):
            seg = rr[(tb >= lo) & (tb < hi)]
            seg = seg[seg <= 3000.0]
            if len(seg) >= 12 and np.std(seg) > 0:
                v, _ = nk.entropy_sample(seg, dimension=2, tolerance=0.2 * np.std(seg))
                out[pos[i]] = min(float(v), 10.0)
    return out


def _fmt_scores(name: str, s: dict) -> str:
    return (
        f"{name:58s} {100 * s['se']:7.2f} {100 * s['sp']:7.2f} {100 * s['ppv']:7.2f} "
        f"{100 * s['acc']:7.2f} {s['n']:7d} {s['n_af']:6d}"
    )


def af_section(folder: Path, per_record: bool) -> None:
    """Print the AFDB window table (leave-one-record-out) and the per-record table."""
    t0 = time.perf_counter()
    table = af.afdb_window_table(folder)
    prob = af.cross_validate_af(table)
    prob_single = af.cross_validate_af(table, context=False)
    usable = prob.notna()
    ev = table[usable & (table["afl_share"] <= af.AF_MAJORITY)]
    y = ev["af_ref"].to_numpy()
    recs = ev["record"].to_numpy()
    cosen = ev["cosen"].fillna(-np.inf).to_numpy()
    nk_se = _nk_sampen(ev, folder)
    nk_ok = np.isfinite(nk_se)
    pure = ((ev["af_share"] == 0) | (ev["af_share"] == 1)).to_numpy()
    model_calls = prob[ev.index].to_numpy() >= af.AF_THRESHOLD
    rows = [
        ("bprl RR model (LightGBM, with neighbour context)", af.af_scores(y, model_calls)),
        ("bprl RR model, each window alone (no context)", af.af_scores(y, prob_single[ev.index] >= 0.5)),
        ("bprl RR model, windows of one rhythm only", af.af_scores(y[pure], model_calls[pure])),
        (
            f"COSEn > {COSEN_THRESHOLD} (Lake & Moorman 2011, no training)",
            af.af_scores(y, cosen > COSEN_THRESHOLD),
        ),
        (
            "COSEn, threshold chosen leave-one-record-out",
            af.af_scores(y, _loro_threshold_calls(cosen, y, recs)),
        ),
        (
            "NeuroKit2 entropy_sample, threshold leave-one-record-out",
            af.af_scores(y[nk_ok], _loro_threshold_calls(nk_se[nk_ok], y[nk_ok], recs[nk_ok])),
        ),
    ]
    n_rec = table["record"].nunique()
    print(f"AF per 30-s window, MIT-BIH AF Database ({n_rec} records), leave-one-record-out, pooled (%):")
    print(f"{'method':58s} {'Se':>7s} {'Sp':>7s} {'PPV':>7s} {'acc':>7s} {'windows':>7s} {'AF':>6s}")
    for name, s in rows:
        print(_fmt_scores(name, s))
    flutter = table[usable & (table["afl_share"] > af.AF_MAJORITY)]
    print(
        f"windows: {len(table)}; unknown (< 12 RR intervals or < 10 s): {int((~usable).sum())}; "
        f"mostly flutter (left out above): {len(flutter)}, called AF by the model: "
        f"{np.mean(prob[flutter.index] >= 0.5):.1%}; mixed AF / non-AF windows "
        f"(reference by majority): {int((~pure).sum())}; NeuroKit2 rows: {int(nk_ok.sum())} windows "
        f"with a finite SampEn. ({time.perf_counter() - t0:.0f} s)"
    )
    if per_record:
        print()
        print("Per record (leave-one-record-out model; COSEn > -1.4 beside it), %:")
        print(
            f"{'record':8s} {'windows':>7s} {'AF':>5s} {'Se':>7s} {'Sp':>7s} {'PPV':>7s} {'acc':>7s} {'COSEn Se':>9s} {'COSEn Sp':>9s}"
        )
        for rec in sorted(np.unique(recs)):
            m = recs == rec
            s = af.af_scores(y[m], model_calls[m])
            c = af.af_scores(y[m], cosen[m] > COSEN_THRESHOLD)
            print(
                f"{rec:8s} {s['n']:7d} {s['n_af']:5d} {100 * s['se']:7.2f} {100 * s['sp']:7.2f} "
                f"{100 * s['ppv']:7.2f} {100 * s['acc']:7.2f} {100 * c['se']:9.2f} {100 * c['sp']:9.2f}"
            )
        print("(nan: the record has no window of that class)")


def _majority_scores(table: pd.DataFrame) -> dict:
    majority = table["label"].value_counts().idxmax()
    return rhythm_classes.rhythm_scores(table["label"].to_numpy(), np.full(len(table), majority))


def cinc_section(folder: Path, split_seeds: list[int]) -> None:
    """Print the CinC 2017 repeated 5-fold CV table and the confusion matrix of the first split."""
    t0 = time.perf_counter()
    table = rhythm_classes.cinc2017_feature_table(folder)
    t_feat = time.perf_counter() - t0
    all_feats = rhythm_classes.RHYTHM_FEATURE_NAMES
    models = {
        f"bprl classifier ({len(all_feats)} features)": all_feats,
        "without the delineated intervals (same training)": tuple(
            f for f in all_feats if f not in INTERVAL_FEATURE_NAMES
        ),
        "without the intervals and atrial features (same)": tuple(
            f for f in all_feats if f not in INTERVAL_FEATURE_NAMES + EXTRA_RHYTHM_FEATURE_NAMES
        ),
        "RR-only model (RR features, same training)": RR_FEATURE_NAMES,
    }
    classes = rhythm_classes.RHYTHM_CLASSES
    print(
        f"CinC 2017 training subset ({len(table)} records: "
        + ", ".join(f"{c} {int((table['label'] == c).sum())}" for c in classes)
        + f"), stratified 5-fold CV, records as units, split seeds {split_seeds}:"
    )
    print(
        f"{'model':48s} {'F1 N':>7s} {'F1 A':>7s} {'F1 O':>7s} {'F1 ~':>7s} {'CinC F1':>8s} {'SD':>6s} {'min':>6s} {'max':>6s}"
    )
    first_conf = None
    cinc_by_model = {}
    for name, feats in models.items():
        per = []
        for seed in split_seeds:
            oof = rhythm_classes.cross_validate_rhythm(table, feats, split_seed=seed)
            sc = rhythm_classes.rhythm_scores(table["label"].to_numpy(), oof["predicted"].to_numpy())
            per.append([sc["f1"][c] for c in classes] + [sc["cinc_f1"]])
            if first_conf is None:
                first_conf = sc["confusion"]
        a = np.array(per)
        cinc_by_model[name] = a[:, -1]
        m = a.mean(axis=0)
        sd = a[:, -1].std(ddof=1) if len(a) > 1 else float("nan")
        print(
            f"{name:48s} "
            + " ".join(f"{v:7.4f}" for v in m[:4])
            + f" {m[4]:8.4f} {sd:6.4f} {a[:, -1].min():6.4f} {a[:, -1].max():6.4f}"
        )
        if name.startswith("bprl"):
            print(
                "  per split seed, CinC F1: "
                + ", ".join(f"{s}: {v:.4f}" for s, v in zip(split_seeds, a[:, -1], strict=True))
            )
    full, no_intervals, no_atrial = (cinc_by_model[k] for k in list(models)[:3])
    for what, gain in (
        ("delineated intervals add", full - no_intervals),
        ("atrial features add (without the intervals)", no_intervals - no_atrial),
    ):
        print(
            f"{what}, paired by split seed: CinC F1 {gain.mean():+.4f}"
            + (f" ± {gain.std(ddof=1):.4f} (SD)" if len(gain) > 1 else "")
            + f", higher on {int((gain > 0).sum())} of {len(gain)} split seeds"
        )
    maj = _majority_scores(table)
    print(
        f"{'majority class (always ' + table['label'].value_counts().idxmax() + ')':48s} "
        + " ".join(f"{maj['f1'][c]:7.4f}" for c in classes)
        + f" {maj['cinc_f1']:8.4f}"
    )
    print(
        f"confusion of the bprl classifier, split seed {split_seeds[0]} (rows reference, columns predicted):"
    )
    print(first_conf.to_string())
    print(f"features: {t_feat:.0f} s for {len(table)} records; total {time.perf_counter() - t0:.0f} s")


def ludb_section(folder: Path) -> None:
    """The shipped CinC 2017 classifier on LUDB lead II (a database it was not trained on): the
    records' rhythm (``ludb.csv``, first line of ``Rhythms``) against the predicted class."""
    import wfdb

    ref = pd.read_csv(folder / "ludb.csv").set_index("ID")
    names = sorted((p.stem for p in (folder / "data").glob("*.hea")), key=lambda n: (len(n), n))
    rows = []
    for name in names:
        rec = wfdb.rdrecord(str(folder / "data" / name), channel_names=["ii"])
        res = rhythm_classes.classify_rhythm(rec.p_signal[:, 0], float(rec.fs))
        rows.append((str(ref.loc[int(name), "Rhythms"]).strip().splitlines()[0], res.label))
    tab = pd.DataFrame(rows, columns=["LUDB rhythm", "predicted"])
    print(
        f"CinC 2017 classifier on LUDB lead II ({len(tab)} records, 10 s, 500 Hz resampled to 300 Hz; "
        "not used in training), records per LUDB rhythm and predicted class:"
    )
    print(pd.crosstab(tab["LUDB rhythm"], tab["predicted"]).to_string())


def main(argv: list[str] | None = None) -> None:
    """Print the AF window table, the CinC 2017 table and the LUDB check."""
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_rhythm")
    ap.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated, of {','.join(SECTIONS)}"
    )
    ap.add_argument("--split-seeds", default="0,1,2,3,4", help="CinC CV split seeds, comma-separated")
    ap.add_argument("--no-per-record", action="store_true", help="leave out the AFDB per-record table")
    args = ap.parse_args(argv if argv is not None else sys.argv[1:])
    sections = [s for s in args.sections.split(",") if s]
    bad = sorted(set(sections) - set(SECTIONS))
    if bad:
        ap.error(f"unknown section(s) {bad}; of {list(SECTIONS)}")
    root = _rhythm()
    t0 = time.perf_counter()
    if "af" in sections:
        folder = root / "afdb_rr_rhythm"
        if folder.is_dir():
            af_section(folder, per_record=not args.no_per_record)
        else:
            print(f"AF section skipped: {folder} not found (set BPRL_RHYTHM_DIR)")
    if "cinc" in sections:
        folder = root / "cinc2017" / "training_subset"
        print()
        if folder.is_dir():
            cinc_section(folder, [int(s) for s in args.split_seeds.split(",") if s])
        else:
            print(f"CinC section skipped: {folder} not found (set BPRL_RHYTHM_DIR)")
    if "ludb" in sections:
        folder = root / "ludb"
        print()
        if (folder / "ludb.csv").is_file():
            ludb_section(folder)
        else:
            print(f"LUDB section skipped: {folder} not found (set BPRL_RHYTHM_DIR)")
    print(f"run time: {time.perf_counter() - t0:.0f} s wall")


if __name__ == "__main__":
    main()
