"""Flutter and the P-wave term: what the RR series and the P wave can and cannot add to AF detection.

Flutter (``afdb_rr_rhythm/`` of ``$BPRL_RHYTHM_DIR``): every 30-s window from 0 s of each of the
17 AFDB records with at least 12 RR intervals, classed by its manual rhythm annotation (``AFL``
or ``AF`` when more than half of the window is ``(AFL`` / ``(AFIB``, else ``non-AF``): windows,
median heart rate and median CV of RR per class, and how many windows of each class a
regular-tachycardia rule (CV of RR < 0.03 at 120-160 bpm: flutter with 2:1 conduction) flags,
with the records the flagged flutter windows come from.

P-wave veto (``cinc2017/training_subset/``, records of classes N, A and O): the shipped RR AF
model (:func:`bprl.beats.af_windows`) on each record's 30-s windows, AF when their mean
probability is >= 0.5 (records without a scored window are left out), alone and with a veto
where the ECG shows P waves (:mod:`bprl.beats.ecg_atrial`: the regular-beat P template's median
correlation with each beat's P window, or the share of beats with a P wave): Se / Sp / PPV of
AF against the reference.

Usage: ``python -m benchmarks flutter`` (about a minute on two cores).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bprl.beats import rhythm_classes
from bprl.beats.af import af_windows
from bprl.beats.ecg import ecg_peaks
from bprl.beats.ecg_atrial import atrial_features
from bprl.beats.filters import signal_bandpass, signal_fill_nan
from bprl.beats.rhythm_data import (
    afdb_record_names,
    cinc2017_reference,
    read_afdb_rr,
    read_cinc2017_ecg,
    rhythm_fraction,
)

WINDOW_S = 30.0


def _rhythm() -> Path:
    """``$BPRL_RHYTHM_DIR`` or ``../shared/data/rhythm`` next to the repository."""
    env = os.environ.get("BPRL_RHYTHM_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "rhythm"


def flutter_windows(folder: Path) -> pd.DataFrame:
    """One row per AFDB 30-s window: record, class (AFL / AF / non-AF), HR (bpm), CV of RR."""
    rows = []
    for name in afdb_record_names(folder):
        rec = read_afdb_rr(folder, name)
        r = rec.r_times_s
        for lo in np.arange(0.0, r[-1] - WINDOW_S, WINDOW_S):
            rr = np.diff(r[(r >= lo) & (r < lo + WINDOW_S)]) * 1000.0
            if len(rr) < 12:
                continue
            a, b = np.array([lo]), np.array([lo + WINDOW_S])
            afl, afib = rhythm_fraction(rec, a, b, "AFL")[0], rhythm_fraction(rec, a, b, "AFIB")[0]
            cls = "AFL" if afl > 0.5 else "AF" if afib > 0.5 else "non-AF"
            rows.append(
                {
                    "record": name,
                    "class": cls,
                    "hr_bpm": 60000.0 / np.median(rr),
                    "cv_rr": rr.std() / rr.mean(),
                }
            )
    return pd.DataFrame(rows)


def flutter_section(folder: Path) -> None:
    """Print the flutter table."""
    d = flutter_windows(folder)
    rule = (d["cv_rr"] < 0.03) & d["hr_bpm"].between(120.0, 160.0)
    print("Flutter, AFDB 30-s windows (RR only): regular tachycardia rule = CV of RR < 0.03 at 120-160 bpm")
    print("| class | windows | records | median HR (bpm) | median CV of RR | flagged by the rule |")
    print("| --- | --- | --- | --- | --- | --- |")
    for cls in ("AFL", "AF", "non-AF"):
        s = d["class"] == cls
        print(
            f"| {cls} | {int(s.sum())} | {d.loc[s, 'record'].nunique()} | {d.loc[s, 'hr_bpm'].median():.0f} | "
            f"{d.loc[s, 'cv_rr'].median():.3f} | {int(rule[s].sum())} ({100 * rule[s].mean():.1f} %) |"
        )
    afl = d[d["class"] == "AFL"]
    print("flutter windows per record:", afl.groupby("record").size().to_dict())
    print("flagged flutter windows per record:", afl[rule[afl.index]].groupby("record").size().to_dict())


def pwave_section(folder: Path) -> None:
    """Print the P-wave veto table."""
    ref = cinc2017_reference(folder)
    ref = ref[ref["label"].isin(["N", "A", "O"])]
    rows = []
    for rec, label in zip(ref["record"], ref["label"], strict=True):
        x, fs = read_cinc2017_ecg(folder, rec)
        x = rhythm_classes._to_model_rate(x, fs)
        r = ecg_peaks(x, rhythm_classes.MODEL_FS_HZ)
        p = af_windows(r)["af_probability"].to_numpy(float)
        xb = signal_bandpass(signal_fill_nan(x)[0], rhythm_classes.MODEL_FS_HZ, 0.5, 40.0)
        feats = atrial_features(xb, rhythm_classes.MODEL_FS_HZ, r)
        rows.append({"af": label == "A", "p_rr": np.nanmean(p) if np.isfinite(p).any() else np.nan, **feats})
    d = pd.DataFrame(rows)
    n_left = int(d["p_rr"].isna().sum())
    d = d[d["p_rr"].notna()]
    y, rr_call = d["af"].to_numpy(bool), d["p_rr"].to_numpy() >= 0.5
    print(
        f"\nP-wave veto on the RR AF model, CinC 2017 N/A/O records ({len(d)} scored, {n_left} without a window)"
    )
    print("| AF call | Se (%) | Sp (%) | PPV (%) |")
    print("| --- | --- | --- | --- |")
    corr = d["p_beat_corr_regular"].to_numpy(float)
    present = d["p_present_fraction"].to_numpy(float)
    variants = [("RR model alone", rr_call)]
    variants += [
        (f"RR model, not where P-template correlation >= {t}", rr_call & ~(corr >= t)) for t in (0.6, 0.8)
    ]
    variants += [("RR model, not where >= 80 % of beats show a P wave", rr_call & ~(present >= 0.8))]
    for name, call in variants:
        print(
            f"| {name} | {100 * np.mean(call[y]):.1f} | {100 * np.mean(~call[~y]):.1f} | "
            f"{100 * np.mean(y[call]):.1f} |"
        )


def main(argv: list[str] | None = None) -> None:
    """Print both tables."""
    warnings.filterwarnings("ignore")
    del argv
    root = _rhythm()
    if not root.is_dir():
        sys.exit(f"rhythm data folder {root} not found (set BPRL_RHYTHM_DIR)")
    flutter_section(root / "afdb_rr_rhythm")
    pwave_section(root / "cinc2017" / "training_subset")


if __name__ == "__main__":
    main()
