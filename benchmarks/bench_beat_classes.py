"""Beat classes N / S / V / Q (AAMI EC57) on the annotated dev records: bprl against baselines.

Records: the annotated MIT-BIH records of ``mitdb/`` (``$BPRL_PHYSIONET_DIR``, 360 Hz) and the
QTDB records of ``qtdb/RECORDS-with-signals`` with an ``.atr`` file (``$BPRL_RHYTHM_DIR``,
250 Hz); first lead; R peaks from :func:`bprl.beats.ecg_peaks`, matched to the reference beats
within 150 ms (EC57). Methods:

* ``bprl LORO``: :func:`bprl.beats.ecg_beat_classes` with a V model trained on every *other*
  patient (leave-one-record-out; QTDB ``sel100`` / ``sel102`` / ``sel103`` are excerpts of MIT-BIH
  100 / 102 / 103 and are held out together with them): the honest figure;
* ``bprl shipped``: the shipped model, trained on all of these records (in-sample, for reference);
* ``bprl rules``: ``method="rules"``, no model (its thresholds were set by looking at these records);
* ``RR rule``: premature (pre-RR < 0.85 x the mean of the 10 surrounding RR) and followed by a
  compensatory pause (post-RR / pre-RR >= 1.6) -> V, premature otherwise -> S;
* ``all N``: every beat N (the trivial baseline);
* ``NeuroKit2``: NeuroKit2 has no N / S / V beat classifier; its ``signal_fixpeaks`` (Kubios
  method, Lipponen & Tarvainen 2019) flags "ectopic" beats from the RR series alone for HRV
  artefact correction: scored here as ectopic (S or V) only.

Scoring (EC57 gross statistics, as in de Chazal et al. 2004): for V, Se = TP / all reference V
beats (undetected ones count as misses), +P = TP / beats called V, FPR = FP / reference non-V
beats; reference Q beats are not scored and a reference F beat called V is not a false positive.
S likewise (F called S is a false positive). Detections without a reference beat called V or S
are false positives. ``ectopic`` = S or V against S or V. PAT gating: share of beats that
:func:`bprl.beats.ectopic_mask` (``post=1``) drops, against the share the reference classes
would drop, and the share of the reference-dropped beats a method lets through.

Published reference (not rerun): de Chazal P, O'Dwyer M, Reilly RB, IEEE TBME 51:1196-1206,
2004, linear discriminants on RR and morphology features, trained on MIT-BIH DS1 and tested on
the 22 records of DS2 (~50,000 beats): V Se 77.7 % / +P 81.9 %, S Se 75.9 % / +P 38.5 %. Ours are
on the few dev records here, not on DS2.

Usage: ``python -m benchmarks beat_classes`` or ``python -m benchmarks.bench_beat_classes``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pandas as pd
from scipy.signal import resample_poly

from bprl.beats import ecg_beat_classes, ecg_peaks, ectopic_mask
from bprl.beats.train_beat_classes import (
    DevRecord,
    dev_records,
    labelled_beats,
    match_classes,
    physionet_dir,
    rhythm_dir,
    train_booster,
)

PACED = {"102", "sel102"}  # EC57 leaves paced records out of the pooled figures
DE_CHAZAL = {"V_se": 77.7, "V_pp": 81.9, "S_se": 75.9, "S_pp": 38.5}
RATE_RECORDS = ("106", "sel223")
RATES = (250, 500, 1000)
METHODS = ("bprl LORO", "bprl shipped", "bprl rules", "RR rule", "all N", "NeuroKit2")


def rr_rule(beats: pd.DataFrame) -> np.ndarray:
    """The RR-only rule (module docstring) on the RR columns of ``labelled_beats``."""
    prem = (beats["prematurity"] < 0.85).to_numpy()
    v = prem & (beats["pause_ratio"] >= 1.6).to_numpy()
    return np.where(v, "V", np.where(prem, "S", "N")).astype("<U1")


def nk_ectopic(rec: DevRecord, r_times_s: np.ndarray) -> np.ndarray | None:
    """``"E"`` where NeuroKit2's ``signal_fixpeaks`` (Kubios) flags a beat ectopic, else ``"N"``;
    None when NeuroKit2 is not installed."""
    try:
        import neurokit2 as nk
    except ImportError:
        return None
    peaks = np.round(r_times_s * rec.fs_hz).astype(np.int64)
    info, _ = nk.signal_fixpeaks(peaks, sampling_rate=rec.fs_hz, iterative=False, method="Kubios")
    out = np.full(len(peaks), "N", dtype="<U1")
    idx = np.asarray(info["ectopic"], dtype=np.int64)
    out[idx[(idx >= 0) & (idx < len(out))]] = "E"
    return out


def counts(truth: np.ndarray, pred: np.ndarray, undetected: dict[str, int]) -> dict[str, int]:
    """EC57 TP / FN / FP / negatives for V, S and ectopic (E = S or V), as in the module docstring."""
    out = {}
    for c, pos in (("V", {"V"}), ("S", {"S"}), ("E", {"S", "V"})):
        t_pos = np.isin(truth, list(pos))
        p_pos = np.isin(pred, list(pos | {"E"})) if c == "E" else pred == c
        scored = truth != "Q"
        if c in ("V", "E"):
            scored &= truth != "F"
        out[f"{c}_tp"] = int(np.sum(t_pos & p_pos))
        out[f"{c}_fn"] = int(np.sum(t_pos & ~p_pos)) + sum(undetected.get(k, 0) for k in pos)
        out[f"{c}_fp"] = int(np.sum(~t_pos & p_pos & scored))
        out[f"{c}_neg"] = int(np.sum(~t_pos & scored))
    return out


def stats(cnt: dict[str, int], c: str) -> tuple[float, float, float]:
    """(Se, +P, FPR) in % of class ``c`` from summed :func:`counts` (NaN where undefined)."""
    tp, fn, fp, neg = (cnt[f"{c}_{k}"] for k in ("tp", "fn", "fp", "neg"))
    se = 100 * tp / (tp + fn) if tp + fn else np.nan
    pp = 100 * tp / (tp + fp) if tp + fp else np.nan
    return se, pp, (100 * fp / neg if neg else np.nan)


def gating(truth: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """Beats dropped by ``ectopic_mask(post=1)`` of the prediction and of the reference, and the
    reference-dropped beats the prediction keeps."""
    ref = ectopic_mask(np.where(np.isin(truth, ["S", "V"]), truth, "N"), post=1)
    got = ectopic_mask(np.where(pred == "E", "V", pred), post=1)
    return {
        "n": len(truth),
        "drop": int(got.sum()),
        "ref_drop": int(ref.sum()),
        "kept_bad": int((ref & ~got).sum()),
    }


def _undetected(rec: DevRecord, truth: np.ndarray) -> dict[str, int]:
    found = pd.Series(truth).value_counts()
    ref = pd.Series(rec.ref_classes).value_counts()
    return {k: int(ref.get(k, 0) - found.get(k, 0)) for k in ("S", "V")}


def classify_all(recs: list[DevRecord]) -> tuple[dict, dict]:
    """Per record: labelled beats, and each method's classes; plus the LORO booster of each group."""
    beats = {r.name: labelled_beats(r) for r in recs}
    allb = pd.concat(beats.values(), ignore_index=True)
    boosters = {g: train_booster(allb[allb["group"] != g]) for g in sorted(allb["group"].unique())}
    out = {}
    for r in recs:
        b = beats[r.name]
        t = b["r_time_s"].to_numpy()
        preds = {
            "bprl LORO": ecg_beat_classes(r.ecg, r.fs_hz, t, booster=boosters[b["group"].iloc[0]]),
            "bprl shipped": ecg_beat_classes(r.ecg, r.fs_hz, t),
            "bprl rules": ecg_beat_classes(r.ecg, r.fs_hz, t, method="rules"),
            "RR rule": rr_rule(b),
            "all N": np.full(len(b), "N", dtype="<U1"),
        }
        nk = nk_ectopic(r, t)
        if nk is not None:
            preds["NeuroKit2"] = nk
        out[r.name] = (b, preds)
    return out, boosters


def _fmt(x: float) -> str:
    return "    -" if not np.isfinite(x) else f"{x:5.1f}"


def per_record_table(res: dict, recs: list[DevRecord]) -> list[str]:
    """bprl LORO per record: reference counts, V and S Se / +P / FPR, PAT drops."""
    head = (
        f"{'record':9s} {'fs':>4s} {'beats':>5s} {'V':>4s} {'S':>4s} | {'V Se':>5s} {'V +P':>5s} {'V FPR':>5s} | "
        f"{'S Se':>5s} {'S +P':>5s} {'S FPR':>5s} | {'drop%':>5s} {'ref%':>5s} {'kept':>4s}"
    )
    lines = [
        "bprl LORO per record (V / S: reference beat counts; drop% / ref%: beats ectopic_mask(post=1)",
        "drops from bprl's / the reference classes; kept: reference-dropped beats bprl keeps)",
        head,
    ]
    for r in recs:
        b, preds = res[r.name]
        truth = b["truth"].to_numpy()
        c = counts(truth, preds["bprl LORO"], _undetected(r, truth))
        g = gating(truth, preds["bprl LORO"])
        v, s = stats(c, "V"), stats(c, "S")
        nv, ns = int(np.sum(r.ref_classes == "V")), int(np.sum(r.ref_classes == "S"))
        lines.append(
            f"{r.name:9s} {r.fs_hz:4.0f} {len(b):5d} {nv:4d} {ns:4d} | {_fmt(v[0])} {_fmt(v[1])} {_fmt(v[2])} | "
            f"{_fmt(s[0])} {_fmt(s[1])} {_fmt(s[2])} | {100 * g['drop'] / g['n']:5.1f} "
            f"{100 * g['ref_drop'] / g['n']:5.1f} {g['kept_bad']:4d}"
        )
    return lines


def pooled_table(res: dict, recs: list[DevRecord], label: str, names: set[str]) -> list[str]:
    """Every method pooled over the records in ``names`` (paced ones left out)."""
    head = (
        f"{'method':13s} | {'V Se':>5s} {'V +P':>5s} {'V FPR':>5s} | {'S Se':>5s} {'S +P':>5s} {'S FPR':>5s} | "
        f"{'ect Se':>6s} {'ect +P':>6s} | {'drop%':>5s} {'kept%':>5s}"
    )
    nv = sum(int(np.sum(r.ref_classes == "V")) for r in recs if r.name in names)
    ns = sum(int(np.sum(r.ref_classes == "S")) for r in recs if r.name in names)
    lines = [f"{label}: {len(names)} records, {nv} V and {ns} S reference beats", head]
    for m in METHODS:
        tot: dict[str, int] = {}
        for r in recs:
            b, preds = res[r.name]
            if r.name not in names or m not in preds:
                continue
            truth = b["truth"].to_numpy()
            for k, v in {**counts(truth, preds[m], _undetected(r, truth)), **gating(truth, preds[m])}.items():
                tot[k] = tot.get(k, 0) + v
        if not tot:
            lines.append(f"{m:13s} | not installed")
            continue
        v, s, e = stats(tot, "V"), stats(tot, "S"), stats(tot, "E")
        if m == "NeuroKit2":  # ectopic flags only
            v = s = (np.nan, np.nan, np.nan)
        lines.append(
            f"{m:13s} | {_fmt(v[0])} {_fmt(v[1])} {_fmt(v[2])} | {_fmt(s[0])} {_fmt(s[1])} {_fmt(s[2])} | "
            f"{_fmt(e[0]):>6s} {_fmt(e[1]):>6s} | {100 * tot['drop'] / tot['n']:5.1f} "
            f"{100 * tot['kept_bad'] / max(tot['ref_drop'], 1):5.1f}"
        )
    lines.append(
        f"{'de Chazal*':13s} | {DE_CHAZAL['V_se']:5.1f} {DE_CHAZAL['V_pp']:5.1f} {'':5s} | "
        f"{DE_CHAZAL['S_se']:5.1f} {DE_CHAZAL['S_pp']:5.1f}"
    )
    return lines


def confusion_table(res: dict, recs: list[DevRecord], method: str = "bprl LORO") -> list[str]:
    """Reference class (rows; ``-`` = detection without a reference beat) against ``method``'s class."""
    rows = ["N", "S", "V", "F", "Q", "-"]
    cols = ["N", "S", "V", "Q"]
    m = pd.DataFrame(0, index=rows, columns=[*cols, "undetected"])
    for r in recs:
        b, preds = res[r.name]
        ct = pd.crosstab(pd.Series(b["truth"].to_numpy(), name="ref"), pd.Series(preds[method], name="got"))
        m = m.add(ct.reindex(index=rows, columns=m.columns, fill_value=0), fill_value=0)
        found = pd.Series(b["truth"].to_numpy()).value_counts()
        for k, n in pd.Series(r.ref_classes).value_counts().items():
            m.loc[k, "undetected"] += int(n - found.get(k, 0))
    m = m.astype(int)
    lines = [
        f"confusion, {method}, all records (rows: reference, columns: bprl)",
        f"{'ref':>4s} " + " ".join(f"{c:>10s}" for c in m.columns),
    ]
    lines += [f"{k:>4s} " + " ".join(f"{v:10d}" for v in m.loc[k]) for k in rows]
    return lines


def rate_table(recs: list[DevRecord], boosters: dict) -> list[str]:
    """bprl LORO V / S Se and +P of a few records resampled to other rates (``resample_poly``)."""
    lines = [
        "sampling rate (bprl LORO; * native, others resampled with resample_poly, R peaks re-detected)",
        f"{'record':9s} {'fs':>5s} | {'V Se':>5s} {'V +P':>5s} | {'S Se':>5s} {'S +P':>5s}",
    ]
    for r in recs:
        if r.name not in RATE_RECORDS:
            continue
        grp = labelled_beats(r)["group"].iloc[0]
        for fs in sorted({round(r.fs_hz), *RATES}):
            native = fs == round(r.fs_hz)
            x = r.ecg if native else resample_poly(r.ecg, fs, round(r.fs_hz))
            rr = DevRecord(
                r.name, x, float(fs), np.round(r.ref_samples * fs / r.fs_hz).astype(np.int64), r.ref_classes
            )
            t = ecg_peaks(x, float(fs))
            truth = match_classes(rr, t)
            c = counts(
                truth, ecg_beat_classes(x, float(fs), t, booster=boosters[grp]), _undetected(rr, truth)
            )
            v, s = stats(c, "V"), stats(c, "S")
            lines.append(
                f"{r.name:9s} {fs:5d}{'*' if native else ' '}| {_fmt(v[0])} {_fmt(v[1])} | {_fmt(s[0])} {_fmt(s[1])}"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    """Print the per-record, pooled, confusion and sampling-rate tables."""
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_beat_classes")
    ap.add_argument("--no-rates", action="store_true", help="leave the sampling-rate table out")
    args = ap.parse_args(argv if argv is not None else sys.argv[1:])
    t0 = time.perf_counter()
    recs = dev_records()
    if not recs:
        print(f"no annotated records under {physionet_dir()} or {rhythm_dir()}: nothing to benchmark")
        return
    res, boosters = classify_all(recs)
    names = {r.name for r in recs}
    mit = {r.name for r in recs if not r.name.startswith("sel")}
    print("\n".join(per_record_table(res, recs)), end="\n\n")
    for label, sel in (
        ("MIT-BIH dev records, paced 102 left out", mit - PACED),
        ("QTDB records with .atr, paced sel102 left out", names - mit - PACED),
        ("all dev records, paced left out", names - PACED),
    ):
        print("\n".join(pooled_table(res, recs, label, sel)), end="\n\n")
    print("* de Chazal et al. 2004 (IEEE TBME 51:1196), their published DS2 figures (22 MIT-BIH records,")
    print("  ~50,000 beats), quoted, not rerun; ours are on the few dev records above.", end="\n\n")
    print("\n".join(confusion_table(res, recs)), end="\n\n")
    if not args.no_rates:
        print("\n".join(rate_table(recs, boosters)), end="\n\n")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
