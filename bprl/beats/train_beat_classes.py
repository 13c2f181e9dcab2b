"""Train the V model of :mod:`bprl.beats.beat_classes` on the annotated dev records (deterministic).

Usage: ``python -m bprl.beats.train_beat_classes [--out PATH]`` rebuilds
``bprl/beats/models/beat_classes.txt`` (a LightGBM text model, no pickle) from:

* MIT-BIH Arrhythmia Database records with ``.atr`` beat labels in ``mitdb/`` of
  ``$BPRL_PHYSIONET_DIR`` (default ``../shared/data/physionet`` next to the repository), 360 Hz;
* QT Database records listed in ``qtdb/RECORDS-with-signals`` of ``$BPRL_RHYTHM_DIR`` (default
  ``../shared/data/rhythm``) that have an ``.atr`` file, 250 Hz.

The first lead of each record is used. R peaks come from :func:`bprl.beats.ecg_peaks`; each is
matched to a reference beat within 150 ms (``wfdb.processing.compare_annotations``, as in
EC57) and takes its AAMI EC57 class (:data:`AAMI_CLASS`). The model learns V against N and S
(F, Q and unmatched detections are left out), with V beats weighted by the square root of the
N+S / V ratio; LightGBM runs on one thread with ``deterministic=True`` and fixed seeds, so the
same data give the same file. Records of one patient (MIT-BIH ``100`` and its QTDB excerpt
``sel100``) share a group in :func:`patient_group`: leave-one-record-out evaluation
(``python -m benchmarks beat_classes``) holds a whole group out.

References: Moody GB, Mark RG, IEEE Eng Med Biol 20(3):45-50, 2001 (MIT-BIH); Laguna P et al.,
Computers in Cardiology 24:673-676, 1997 (QTDB); ANSI/AAMI EC57:2012 (classes, 150 ms matching).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bprl.beats.beat_classes import MODEL_FEATURES, MODEL_PATH, beat_class_features
from bprl.beats.ecg import ecg_peaks

if TYPE_CHECKING:
    import lightgbm

__all__ = [
    "AAMI_CLASS",
    "DevRecord",
    "dev_records",
    "labelled_beats",
    "patient_group",
    "physionet_dir",
    "rhythm_dir",
    "train_booster",
]

#: MIT-BIH beat symbol -> AAMI EC57 class (symbols not listed are not beats: rhythm, noise marks).
AAMI_CLASS = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}
MATCH_WINDOW_S = 0.15
PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 1,
    "deterministic": True,
    "force_col_wise": True,
    "seed": 0,
    "verbose": -1,
}
N_ROUNDS = 200


@dataclass(frozen=True)
class DevRecord:
    """One annotated record: first ECG lead, rate, reference beats and their AAMI classes."""

    name: str
    ecg: np.ndarray
    fs_hz: float
    ref_samples: np.ndarray
    ref_classes: np.ndarray


def _root(var: str, sub: str) -> Path:
    env = os.environ.get(var)
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / sub


def physionet_dir() -> Path:
    """``$BPRL_PHYSIONET_DIR`` or ``../shared/data/physionet`` next to the repository."""
    return _root("BPRL_PHYSIONET_DIR", "physionet")


def rhythm_dir() -> Path:
    """``$BPRL_RHYTHM_DIR`` or ``../shared/data/rhythm`` next to the repository."""
    return _root("BPRL_RHYTHM_DIR", "rhythm")


def patient_group(name: str) -> str:
    """Patient of a record: QTDB ``selNNN`` excerpts of MIT-BIH records share MIT-BIH's ``NNN``."""
    return name[3:] if name.startswith("sel") and name[3:].isdigit() and len(name) == 6 else name


def _read(path: Path) -> DevRecord:
    import wfdb

    rec = wfdb.rdrecord(str(path), channels=[0])
    ann = wfdb.rdann(str(path), "atr")
    keep = [i for i, s in enumerate(ann.symbol) if s in AAMI_CLASS]
    return DevRecord(
        name=path.name,
        ecg=np.asarray(rec.p_signal[:, 0], dtype=np.float64),
        fs_hz=float(rec.fs),
        ref_samples=np.asarray(ann.sample, dtype=np.int64)[keep],
        ref_classes=np.array([AAMI_CLASS[ann.symbol[i]] for i in keep], dtype="<U1"),
    )


def dev_records(physionet: Path | None = None, rhythm: Path | None = None) -> list[DevRecord]:
    """The annotated MIT-BIH and QTDB dev records found (module docstring); [] when none is there."""
    mit = (physionet or physionet_dir()) / "mitdb"
    paths = sorted(p.with_suffix("") for p in mit.glob("*.atr") if p.with_suffix(".hea").is_file())
    qt = (rhythm or rhythm_dir()) / "qtdb"
    listed = qt / "RECORDS-with-signals"
    for name in listed.read_text().split() if listed.is_file() else []:
        p = qt / "data" / name
        if p.with_suffix(".atr").is_file() and p.with_suffix(".hea").is_file():
            paths.append(p)
    return [_read(p) for p in paths]


def match_classes(rec: DevRecord, r_times_s: np.ndarray) -> np.ndarray:
    """Reference class of each detection (``"-"``: no reference beat within 150 ms)."""
    from wfdb import processing

    det = np.round(np.asarray(r_times_s) * rec.fs_hz).astype(np.int64)
    truth = np.full(len(det), "-", dtype="<U1")
    if len(det) and len(rec.ref_samples):
        m = np.asarray(
            processing.compare_annotations(
                rec.ref_samples, det, round(MATCH_WINDOW_S * rec.fs_hz)
            ).matching_sample_nums
        )
        hit = m >= 0
        truth[m[hit]] = rec.ref_classes[hit]
    return truth


def labelled_beats(rec: DevRecord) -> pd.DataFrame:
    """Features of every detected beat of ``rec`` with ``truth`` (class or ``"-"``), ``record``,
    ``group`` (:func:`patient_group`) and ``r_time_s``."""
    t = ecg_peaks(rec.ecg, rec.fs_hz)
    f = beat_class_features(rec.ecg, rec.fs_hz, t)
    return f.assign(truth=match_classes(rec, t), record=rec.name, group=patient_group(rec.name), r_time_s=t)


def train_booster(beats: pd.DataFrame) -> lightgbm.Booster:
    """LightGBM V-vs-(N, S) model on the labelled beats (rows with truth N, S or V); deterministic."""
    import lightgbm

    rows = beats[beats["truth"].isin(["N", "S", "V"])]
    y = (rows["truth"] == "V").to_numpy(np.float64)
    pos = max(float(y.sum()), 1.0)
    weight = np.where(y > 0, np.sqrt((len(y) - pos) / pos), 1.0)
    data = lightgbm.Dataset(
        rows.loc[:, list(MODEL_FEATURES)].to_numpy(np.float64),
        label=y,
        weight=weight,
        feature_name=list(MODEL_FEATURES),
        free_raw_data=True,
    )
    return lightgbm.train(PARAMS, data, num_boost_round=N_ROUNDS)


def main(argv: list[str] | None = None) -> None:
    """Rebuild the shipped model file from the dev records and print what it was trained on."""
    ap = argparse.ArgumentParser(
        prog="python -m bprl.beats.train_beat_classes", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--out", type=Path, default=MODEL_PATH, help="model file to write")
    args = ap.parse_args(argv)
    recs = dev_records()
    if not recs:
        raise SystemExit(f"no annotated records under {physionet_dir()} or {rhythm_dir()}")
    beats = pd.concat([labelled_beats(r) for r in recs], ignore_index=True)
    booster = train_booster(beats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(args.out))
    counts = beats["truth"].value_counts().to_dict()
    print(f"{len(recs)} records ({', '.join(r.name for r in recs)}); beats by reference class {counts}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
