"""Rebuild the shipped rhythm models: ``python -m bprl.beats.train_rhythm [--out bprl/beats/models]``.

Two models, each a LightGBM text file with a JSON card beside it (feature names, class order,
parameters, training data and the cross-validated scores printed here):

* ``af_rr.txt``: AF per 30-s window from RR intervals (:mod:`bprl.beats.af`), trained on the
  17 MIT-BIH AF Database records of the dev data; scored first with leave-one-record-out
  cross-validation (pooled Se / Sp / PPV / accuracy), then trained on all records.
* ``cinc2017.txt``: N / A / O / ~ of a single-lead ECG (:mod:`bprl.beats.rhythm_classes`),
  trained on the dev CinC 2017 training subset; scored first with stratified 5-fold
  cross-validation (records as units, F1 per class and the CinC F1), then trained on all records.

The data folder is ``$BPRL_RHYTHM_DIR`` or ``../shared/data/rhythm`` beside the repository. The
build is deterministic (fixed seeds, ``deterministic=True``, one thread): the same data give
byte-identical model files. It takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bprl.beats import af, rhythm_classes

__all__ = [
    "af_cv_summary",
    "build_af_model",
    "build_rhythm_model",
    "main",
    "rhythm_cv_summary",
    "rhythm_data_dir",
]

#: Split seeds of the repeated 5-fold CV of the rhythm model (one 5-fold split moves the CinC F1
#: by about +-0.01, so the mean over several splits is reported).
SPLIT_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)


def rhythm_data_dir() -> Path:
    """``$BPRL_RHYTHM_DIR`` or ``../shared/data/rhythm`` next to the repository."""
    env = os.environ.get("BPRL_RHYTHM_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / "rhythm"


def _versions() -> dict[str, str]:
    import lightgbm
    import sklearn

    import bprl

    return {"bprl": bprl.__version__, "lightgbm": lightgbm.__version__, "scikit-learn": sklearn.__version__}


def _write(booster: Any, card: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(path))
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")


def af_cv_summary(table: pd.DataFrame, prob: pd.Series, threshold: float = af.AF_THRESHOLD) -> dict[str, Any]:
    """Pooled scores of out-of-fold AF probabilities (flutter windows and unknown windows left out)."""
    ev = table[(table["afl_share"] <= af.AF_MAJORITY) & prob.notna()]
    pooled = af.af_scores(ev["af_ref"].to_numpy(), prob[ev.index].to_numpy() >= threshold)
    flutter = table[(table["afl_share"] > af.AF_MAJORITY) & prob.notna()]
    return {
        **pooled,
        "n_unknown": int(prob.isna().sum()),
        "n_flutter": len(flutter),
        "flutter_called_af": float(np.mean(prob[flutter.index] >= threshold))
        if len(flutter)
        else float("nan"),
    }


def build_af_model(data_dir: Path, out_dir: Path) -> dict[str, Any]:
    """AFDB windows -> leave-one-record-out CV -> model on all records -> ``af_rr.txt`` + card."""
    folder = data_dir / "afdb_rr_rhythm"
    t0 = time.time()
    table = af.afdb_window_table(folder)
    prob = af.cross_validate_af(table)
    cv = af_cv_summary(table, prob)
    print(f"AF, AFDB 30-s windows, leave-one-record-out ({len(table['record'].unique())} records):")
    print(
        f"  Se {cv['se']:.4f}  Sp {cv['sp']:.4f}  PPV {cv['ppv']:.4f}  acc {cv['acc']:.4f}  "
        f"windows {cv['n']} (AF {cv['n_af']}), unknown {cv['n_unknown']}, "
        f"flutter windows {cv['n_flutter']} called AF {cv['flutter_called_af']:.3f}  ({time.time() - t0:.0f} s)"
    )
    booster = af.train_af_model(table)
    train = af._trainable(table)
    card = {
        "model": "AF per 30-s window from RR intervals (bprl.beats.af)",
        "file": "af_rr.txt",
        "format": "LightGBM text model (lightgbm.Booster(model_file=...))",
        "feature_names": list(af.AF_FEATURE_NAMES),
        "classes": ["non-AF", "AF"],
        "output": "probability of AF",
        "threshold": af.AF_THRESHOLD,
        "window_s": 30.0,
        "params": af.AF_PARAMS,
        "num_boost_round": af.AF_ROUNDS,
        "training_data": {
            "source": "MIT-BIH Atrial Fibrillation Database (Moody & Mark 1983), dev copy afdb_rr_rhythm/",
            "records": sorted(table["record"].unique().tolist()),
            "beats": "automatic (unaudited) QRS annotations",
            "reference": "manual rhythm annotations; a window is AF when > 50 % of it is (AFIB",
            "windows": len(train),
            "af_windows": int(train["af_ref"].sum()),
            "excluded": "windows with < 12 RR intervals, < 10 s, or > 50 % atrial flutter",
        },
        "cross_validation": {"scheme": "leave-one-record-out", "pooled": cv},
        "versions": _versions(),
        "rebuild": "python -m bprl.beats.train_rhythm",
    }
    _write(booster, card, out_dir / "af_rr.txt")
    return cv


def rhythm_cv_summary(table: pd.DataFrame, split_seeds: tuple[int, ...] = SPLIT_SEEDS) -> dict[str, Any]:
    """Repeated stratified 5-fold CV of the rhythm model: scores per split seed, their mean and SD,
    and the confusion matrix of the first split."""
    per_seed = []
    for seed in split_seeds:
        oof = rhythm_classes.cross_validate_rhythm(table, split_seed=seed)
        sc = rhythm_classes.rhythm_scores(table["label"].to_numpy(), oof["predicted"].to_numpy())
        per_seed.append(
            {"split_seed": seed, **{f"f1_{c}": sc["f1"][c] for c in sc["f1"]}, "cinc_f1": sc["cinc_f1"]}
        )
        if seed == split_seeds[0]:
            confusion = sc["confusion"]
    frame = pd.DataFrame(per_seed)
    cols = [c for c in frame.columns if c != "split_seed"]
    return {
        "per_seed": frame,
        "mean": frame[cols].mean().to_dict(),
        "sd": frame[cols].std(ddof=1).to_dict() if len(frame) > 1 else dict.fromkeys(cols, float("nan")),
        "confusion": confusion,
    }


def build_rhythm_model(data_dir: Path, out_dir: Path) -> dict[str, Any]:
    """CinC 2017 features -> repeated stratified 5-fold CV -> model on all records -> ``cinc2017.txt`` + card."""
    folder = data_dir / "cinc2017" / "training_subset"
    t0 = time.time()
    table = rhythm_classes.cinc2017_feature_table(folder)
    cv = rhythm_cv_summary(table)
    print(
        f"CinC 2017 classes, stratified 5-fold CV, records as units ({len(table)} records), "
        f"split seeds {list(SPLIT_SEEDS)}:"
    )
    print("  " + cv["per_seed"].round(4).to_string(index=False).replace("\n", "\n  "))
    m, sd = cv["mean"], cv["sd"]
    print(
        "  mean: "
        + "  ".join(f"F1 {c} {m[f'f1_{c}']:.4f}" for c in rhythm_classes.RHYTHM_CLASSES)
        + f"  CinC F1 {m['cinc_f1']:.4f} (SD {sd['cinc_f1']:.4f})   ({time.time() - t0:.0f} s)"
    )
    print(f"  confusion, split seed {SPLIT_SEEDS[0]} (rows reference, columns predicted):")
    print("  " + cv["confusion"].to_string().replace("\n", "\n  "))
    booster = rhythm_classes.train_rhythm_model(table)
    card = {
        "model": "CinC 2017 rhythm class of a single-lead ECG (bprl.beats.rhythm_classes)",
        "file": "cinc2017.txt",
        "format": "LightGBM text model (lightgbm.Booster(model_file=...))",
        "feature_names": list(rhythm_classes.RHYTHM_FEATURE_NAMES),
        "classes": list(rhythm_classes.RHYTHM_CLASSES),
        "output": "probability per class; label = the most probable class",
        "sampling_rate_hz": rhythm_classes.MODEL_FS_HZ,
        "params": rhythm_classes.RHYTHM_PARAMS,
        "num_boost_round": rhythm_classes.RHYTHM_ROUNDS,
        "class_weights": "n / (4 n_class)",
        "training_data": {
            "source": "PhysioNet/CinC Challenge 2017 training set, dev subset cinc2017/training_subset/",
            "records": len(table),
            "labels": {c: int((table["label"] == c).sum()) for c in rhythm_classes.RHYTHM_CLASSES},
            "reference": "REFERENCE-v3-subset.csv",
        },
        "cross_validation": {
            "scheme": "stratified 5-fold (StratifiedKFold(shuffle=True, random_state=seed)), records as "
            f"units, repeated for split seeds {list(SPLIT_SEEDS)}",
            "per_seed": cv["per_seed"].to_dict(orient="records"),
            "mean": cv["mean"],
            "sd": cv["sd"],
            f"confusion_split_seed_{SPLIT_SEEDS[0]}": cv["confusion"].to_dict(orient="index"),
        },
        "versions": _versions(),
        "rebuild": "python -m bprl.beats.train_rhythm",
    }
    _write(booster, card, out_dir / "cinc2017.txt")
    return cv


def main(argv: list[str] | None = None) -> None:
    """Rebuild both models and print their cross-validation tables."""
    parser = argparse.ArgumentParser(
        prog="python -m bprl.beats.train_rhythm", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out", type=Path, default=af.MODELS_DIR, help="model folder (default: the shipped one)"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="rhythm data folder (default: $BPRL_RHYTHM_DIR)"
    )
    parser.add_argument("--only", choices=["af", "cinc2017"], default=None, help="rebuild one model only")
    args = parser.parse_args(argv)
    data_dir = args.data or rhythm_data_dir()
    if not data_dir.is_dir():
        sys.exit(f"rhythm data folder {data_dir} not found (set BPRL_RHYTHM_DIR)")
    if args.only in (None, "af"):
        build_af_model(data_dir, args.out)
    if args.only in (None, "cinc2017"):
        build_rhythm_model(data_dir, args.out)
    print(f"models written to {args.out}")


if __name__ == "__main__":
    main()
