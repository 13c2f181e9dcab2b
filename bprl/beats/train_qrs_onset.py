"""Train the QRS onset model of :mod:`bprl.beats.qrs_onset_model` on LUDB (deterministic).

Usage: ``python -m bprl.beats.train_qrs_onset [--out PATH]`` rebuilds
``bprl/beats/models/qrs_onset.txt`` (a LightGBM text model, no pickle) and its JSON card from the
LUDB records listed in ``ludb/RECORDS`` of ``$BPRL_RHYTHM_DIR`` (default ``../shared/data/rhythm``
next to the repository): 10 s, 500 Hz, 12 leads, each lead's waves marked by cardiologists.

Data: R peaks from lead II (:func:`bprl.beats.ecg_peaks`); each of the 12 leads delineated at them
with the wavelet rule (:func:`bprl.beats.ecg_delineate`); each delineated beat paired with the
lead's marked beat within 150 ms. Target: the marked QRS onset minus the wavelet onset (ms). Beats
whose error exceeds :data:`bprl.beats.qrs_onset_model.MAX_SHIFT_MS` (a wrong wave rather than a
threshold offset) are left out of training, not of the evaluation.

Before the final model is trained on all records, :func:`cross_validate_shift` scores the method
out of sample: 5-fold cross-validation with records as units (``GroupKFold``: no record's beats in
both the training and the test folds), each fold's model correcting the onsets of records it has
not seen. The printed table and the card hold the out-of-fold error of lead II, of every lead and
of the 12-lead median (:func:`bprl.beats.ecg_delineate_leads`) against the lead II marks, beside
the wavelet rule's. LightGBM runs on one thread with ``deterministic=True`` and fixed seeds: the
same data give the same file. About a minute on two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bprl.beats.delineation import ecg_delineate, spike_floor_s
from bprl.beats.delineation_leads import _combine_leads
from bprl.beats.ecg import ecg_peaks
from bprl.beats.qrs_onset_model import (
    MAX_SHIFT_MS,
    MODEL_PATH,
    ONSET_FEATURES,
    qrs_onset_features,
    shift_onsets,
)
from bprl.beats.rhythm_data import LUDB_LEADS, read_ludb
from bprl.beats.train_beat_classes import rhythm_dir
from bprl.beats.train_rhythm import _versions
from bprl.io import atomic_output

if TYPE_CHECKING:
    import lightgbm

__all__ = [
    "N_FOLDS",
    "PARAMS",
    "LudbOnsets",
    "cross_validate_shift",
    "ludb_onset_records",
    "onset_errors",
    "onset_table",
    "refined_delineations",
    "train_onset_booster",
    "trainable",
]

PARAMS = {
    "objective": "huber",
    "alpha": 10.0,  # ms: errors beyond it weigh linearly, not quadratically
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "num_threads": 1,
    "deterministic": True,
    "force_col_wise": True,
    "seed": 0,
    "verbose": -1,
}
N_ROUNDS = 300
N_FOLDS = 5
PAIR_S = 0.15  # a delineated beat and a marked beat within this are the same beat


@dataclass(frozen=True)
class LudbOnsets:
    """One LUDB record: each lead's wavelet delineation at lead II's R peaks, the refinement
    features and spike floors of its beats, and the lead's marks (:func:`read_ludb`, samples)."""

    name: str
    fs_hz: float
    delineations: tuple[pd.DataFrame, ...]
    features: tuple[pd.DataFrame, ...]
    floors_s: tuple[np.ndarray, ...]
    marks: dict[str, pd.DataFrame]


def ludb_onset_records(folder: Path | None = None) -> Iterator[LudbOnsets]:
    """The LUDB records of ``folder`` (default ``ludb/`` of :func:`rhythm_dir`) in ``RECORDS`` order."""
    top = folder or rhythm_dir() / "ludb"
    listed = top / "RECORDS"
    for entry in listed.read_text().split() if listed.is_file() else []:
        path = top / entry
        if not path.with_suffix(".hea").is_file():
            continue
        x, fs, marks = read_ludb(path)
        r_s = ecg_peaks(x[:, LUDB_LEADS.index("ii")], fs)
        dels = tuple(ecg_delineate(x[:, k], fs, r_times_s=r_s) for k in range(x.shape[1]))
        feats = tuple(qrs_onset_features(x[:, k], fs, d) for k, d in enumerate(dels))
        floors = tuple(spike_floor_s(x[:, k], fs, r_s) for k in range(x.shape[1]))
        yield LudbOnsets(path.name, fs, dels, feats, floors, marks)


def _paired_ref_onsets(r_s: np.ndarray, marks: pd.DataFrame, fs_hz: float) -> np.ndarray:
    """The marked QRS onset (s) of each delineated beat (NaN: no marked beat within 150 ms)."""
    ref_r = marks["r"].to_numpy() / fs_hz
    ref_on = marks["qrs_onset"].to_numpy() / fs_hz
    out = np.full(len(r_s), np.nan)
    if len(ref_r) == 0 or len(r_s) == 0:
        return out
    j = np.clip(np.searchsorted(ref_r, r_s), 1, len(ref_r)) - 1
    j = np.where(
        (j + 1 < len(ref_r))
        & (np.abs(ref_r[np.minimum(j + 1, len(ref_r) - 1)] - r_s) < np.abs(ref_r[j] - r_s)),
        j + 1,
        j,
    )
    ok = np.abs(ref_r[j] - r_s) <= PAIR_S
    out[ok] = ref_on[j[ok]]
    return out


def onset_table(records: list[LudbOnsets]) -> pd.DataFrame:
    """One row per record, lead and delineated beat: ``record``, ``lead``, ``beat``, ``r_s``,
    ``onset_s`` (wavelet), ``floor_s``, ``ref_onset_s`` (NaN: unmarked), ``target_ms``
    (marked - wavelet onset) and :data:`ONSET_FEATURES`."""
    parts = []
    for rec in records:
        for k, lead in enumerate(LUDB_LEADS):
            d = rec.delineations[k]
            r_s = d["r_s"].to_numpy()
            ref = _paired_ref_onsets(r_s, rec.marks[lead], rec.fs_hz)
            on = d["qrs_onset_s"].to_numpy()
            meta = pd.DataFrame(
                {
                    "record": rec.name,
                    "lead": lead,
                    "beat": np.arange(len(d)),
                    "r_s": r_s,
                    "onset_s": on,
                    "floor_s": rec.floors_s[k],
                    "ref_onset_s": ref,
                    "target_ms": 1000.0 * (ref - on),
                }
            )
            parts.append(pd.concat([meta, rec.features[k].reset_index(drop=True)], axis=1))
    return pd.concat(parts, ignore_index=True)


def trainable(table: pd.DataFrame) -> np.ndarray:
    """Rows the model learns from: marked beats whose wavelet error is within +-MAX_SHIFT_MS."""
    t = table["target_ms"].to_numpy()
    return np.isfinite(t) & (np.abs(t) < MAX_SHIFT_MS)


def train_onset_booster(table: pd.DataFrame) -> lightgbm.Booster:
    """LightGBM regression of ``target_ms`` on the :func:`trainable` rows (deterministic)."""
    import lightgbm

    rows = table[trainable(table)]
    data = lightgbm.Dataset(
        rows.loc[:, list(ONSET_FEATURES)].to_numpy(np.float64),
        label=rows["target_ms"].to_numpy(np.float64),
        feature_name=list(ONSET_FEATURES),
        free_raw_data=True,
    )
    return lightgbm.train(PARAMS, data, num_boost_round=N_ROUNDS)


def record_folds(table: pd.DataFrame, n_folds: int = N_FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train rows, test rows)`` of ``GroupKFold`` over the table's records (deterministic)."""
    from sklearn.model_selection import GroupKFold

    return list(GroupKFold(n_splits=n_folds).split(table, groups=table["record"]))


def cross_validate_shift(table: pd.DataFrame, n_folds: int = N_FOLDS) -> np.ndarray:
    """Out-of-fold model correction (ms) of every row: each fold's model, trained on the other
    folds' records, predicts its records' rows (NaN where a beat has no onset)."""
    shift = np.full(len(table), np.nan)
    x = table.loc[:, list(ONSET_FEATURES)].to_numpy(np.float64)
    has = np.isfinite(table["onset_s"].to_numpy())
    for train, test in record_folds(table, n_folds):
        booster = train_onset_booster(table.iloc[train])
        rows = test[has[test]]
        shift[rows] = booster.predict(x[rows])
    return shift


def refined_delineations(
    records: list[LudbOnsets], table: pd.DataFrame, shift_ms: np.ndarray
) -> list[tuple[pd.DataFrame, ...]]:
    """Each record's 12 delineations with the QRS onsets moved by ``shift_ms`` (rows of
    :func:`onset_table`, bounded as the model's correction is: :func:`shift_onsets`)."""
    on = table["onset_s"].to_numpy()  # in s: fs_hz = 1 makes shift_onsets move by shift_ms / 1000
    moved = shift_onsets(on, shift_ms, 1.0, table["r_s"].to_numpy(), table["floor_s"].to_numpy())
    key = pd.Series(np.arange(len(table)), index=pd.MultiIndex.from_frame(table[["record", "lead"]]))
    out = []
    for rec in records:
        leads = []
        for k, lead in enumerate(LUDB_LEADS):
            rows = key.loc[(rec.name, lead)].to_numpy()
            d = rec.delineations[k].copy()
            d["qrs_onset_s"] = moved[rows]
            leads.append(d)
        out.append(tuple(leads))
    return out


def onset_errors(
    records: list[LudbOnsets], delineations: list[tuple[pd.DataFrame, ...]]
) -> dict[str, np.ndarray]:
    """QRS onset errors (ms, detected - marked, within 150 ms) of ``delineations``: ``"lead II"``
    (lead II against its marks), ``"every lead"`` (each lead against its own) and ``"12-lead
    median"`` (:func:`bprl.beats.ecg_delineate_leads`' median, 6 of 12, against lead II's marks)."""
    out: dict[str, list[np.ndarray]] = {"lead II": [], "every lead": [], "12-lead median": []}

    def err(d: pd.DataFrame, marks: pd.DataFrame, fs: float) -> np.ndarray:
        ref = _paired_ref_onsets(d["r_s"].to_numpy(), marks, fs)
        e = 1000.0 * (d["qrs_onset_s"].to_numpy() - ref)
        return e[np.isfinite(e) & (np.abs(e) <= 1000 * PAIR_S)]

    for rec, dels in zip(records, delineations, strict=True):
        for k, lead in enumerate(LUDB_LEADS):
            e = err(dels[k], rec.marks[lead], rec.fs_hz)
            out["every lead"].append(e)
            if lead == "ii":
                out["lead II"].append(e)
        med = _combine_leads(list(dels), 6, "median")
        out["12-lead median"].append(err(med, rec.marks["ii"], rec.fs_hz))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def _summary(errors: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {
        k: {"n": len(e), "mean_ms": round(float(np.mean(e)), 2), "sd_ms": round(float(np.std(e)), 2)}
        for k, e in errors.items()
    }


def main(argv: list[str] | None = None) -> None:
    """Cross-validate, train on all LUDB records, write the model file and its card."""
    ap = argparse.ArgumentParser(
        prog="python -m bprl.beats.train_qrs_onset", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "--out", type=Path, default=MODEL_PATH, help="model file to write (card: same name, .json)"
    )
    args = ap.parse_args(argv)
    records = list(ludb_onset_records())
    if not records:
        raise SystemExit(f"no LUDB records under {rhythm_dir() / 'ludb'}")
    table = onset_table(records)
    oof = cross_validate_shift(table)
    wavelet = _summary(onset_errors(records, [r.delineations for r in records]))
    model = _summary(onset_errors(records, refined_delineations(records, table, oof)))
    print(
        f"QRS onset error (ms, detected - marked), LUDB {len(records)} records, {N_FOLDS}-fold CV by record:"
    )
    for scope in wavelet:
        w, m = wavelet[scope], model[scope]
        print(
            f"  {scope:15s} wavelet {w['mean_ms']:+.1f} ± {w['sd_ms']:.1f}   "
            f"model (out of fold) {m['mean_ms']:+.1f} ± {m['sd_ms']:.1f}   beats {m['n']}"
        )
    booster = train_onset_booster(table)
    trained = table[trainable(table)]
    card: dict[str, Any] = {
        "model": "QRS onset correction of the wavelet delineator (bprl.beats.qrs_onset_model)",
        "file": args.out.name,
        "format": "LightGBM text model (lightgbm.Booster(model_file=...))",
        "feature_names": list(ONSET_FEATURES),
        "output": "marked QRS onset minus wavelet QRS onset, ms",
        "max_shift_ms": MAX_SHIFT_MS,
        "params": PARAMS,
        "num_boost_round": N_ROUNDS,
        "training_data": {
            "source": "LUDB (Kalyakulina et al. 2020), dev copy ludb/, 12 leads, 500 Hz",
            "records": len(records),
            "lead_beats": len(trained),
            "excluded": f"unmarked beats and beats whose wavelet error is {MAX_SHIFT_MS:g} ms or more",
        },
        "cross_validation": {
            "scheme": f"{N_FOLDS}-fold GroupKFold by record",
            "wavelet": wavelet,
            "model": model,
        },
        "versions": _versions(),
        "rebuild": "python -m bprl.beats.train_qrs_onset",
    }
    for path, text in (
        (args.out, booster.model_to_string()),
        (args.out.with_suffix(".json"), json.dumps(card, indent=2) + "\n"),
    ):
        with atomic_output(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    print(
        f"{len(trained)} lead-beats from {len(records)} records; wrote {args.out} and its card",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()
