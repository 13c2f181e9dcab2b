"""Noise stress test (MIT-BIH NST style): R-peak Se / PPV against SNR, bprl vs NeuroKit2.

Clean records: MIT-BIH 100, 103, 105, 106, first lead, 360 Hz, whole records (30 min). The NSTDB
noise records (em, ma, bw) are not available here, so the noise is synthesised with the virtual
cohort's artefact model (:mod:`bprl.cohort.artefacts`), seeded per record and noise kind:

* ``em`` (electrode-motion-like): Poisson bursts (:func:`~bprl.cohort.artefacts.artefact_segments`,
  120 / h, 0.5-8 s, 0.2 s ramps via :func:`~bprl.cohort.artefacts.segments_envelope`) of
  :func:`~bprl.cohort.artefacts.noise_band` noise in 1-15 Hz (the QRS band) plus a 0-1 Hz step-like part;
* ``ma`` (muscle-like): continuous band-limited noise, 5-50 Hz;
* ``bw`` (baseline wander): continuous low-pass noise, 0-0.5 Hz.

The noise is added the NSTDB way (``nst``'s standard protocol): none during a 5-min learning
period, then switched on and off in alternating 2-min blocks (on at 5-7, 9-11, ... min), scaled
per record so that SNR = 10 log10(S / N) during the noisy blocks, where S = mean over annotated
beats of the squared peak-to-peak QRS amplitude (clean signal, +-50 ms around the annotation)
divided by 8 (the power of a sinusoid of that peak-to-peak amplitude, nst's convention) and N =
mean power of the noise in the noisy blocks with its mean removed in 1-s windows. The same noise
realisation is scaled for every SNR. Scoring as EC57: beats after the learning period (t >= 5 min,
noisy and clean blocks), 150 ms matching window (``wfdb.processing.compare_annotations``), pooled
over the records.

Usage: ``python -m benchmarks noise`` (options: ``--minutes M`` to cut the records,
``--records 100 103``, ``--snr 24 6``, ``--kinds em bw``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import wfdb
from wfdb import processing

from bprl.beats import ecg_peaks
from bprl.cohort.artefacts import artefact_segments, noise_band, segments_envelope

BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
MITDB = ("100", "103", "105", "106")
SNRS = (24.0, 18.0, 12.0, 6.0, 0.0, -6.0)
KINDS = ("em", "ma", "bw")
LEARN_S, BLOCK_S = 300.0, 120.0
SEED = 16


def _physionet() -> Path:
    """Folder of the real records (same rule as tests/conftest.py)."""
    import os

    env = os.environ.get("BPRL_PHYSIONET_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "physionet"


def load(root: Path, name: str, minutes: float | None = None) -> tuple[np.ndarray, float, np.ndarray]:
    """First lead (mV), sampling rate and annotated beat samples of MIT-BIH record ``name``."""
    path = str(root / "mitdb" / name)
    rec = wfdb.rdrecord(path, channels=[0])
    ann = wfdb.rdann(path, "atr")
    fs, x = float(rec.fs), rec.p_signal[:, 0].astype(np.float64)
    if minutes is not None:
        x = x[: int(minutes * 60 * fs)]
    ref = np.array([s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in BEAT_SYMBOLS])
    return x, fs, ref[ref < len(x)]


def noisy_mask(n: int, fs: float) -> np.ndarray:
    """NSTDB standard protocol: False for the first 5 min, then 2-min blocks on / off alternately."""
    t = np.arange(n) / fs
    return (t >= LEARN_S) & (((t - LEARN_S) // BLOCK_S) % 2 == 0)


def make_noise(kind: str, n: int, fs: float, seed: int) -> np.ndarray:
    """Unscaled noise of ``kind`` (``em``, ``ma`` or ``bw``) from the cohort artefact model."""
    rng = np.random.default_rng(seed)
    if kind == "em":
        seg = artefact_segments(rng, 120.0, n / fs, 0.5, 8.0)
        env = segments_envelope(seg, n, fs, 0.2)
        return env * (noise_band(rng, n, fs, 1.0, 15.0, 1.0) + noise_band(rng, n, fs, None, 1.0, 0.7))
    if kind == "ma":
        return noise_band(rng, n, fs, 5.0, 50.0, 1.0)
    if kind == "bw":
        return noise_band(rng, n, fs, None, 0.5, 1.0)
    raise ValueError(f"unknown noise kind {kind!r}")


def signal_power(x: np.ndarray, fs: float, ref: np.ndarray) -> float:
    """S: mean squared peak-to-peak QRS amplitude (+-50 ms of each annotated beat) / 8."""
    h = int(0.05 * fs)
    ref = ref[(ref >= h) & (ref < len(x) - h)]
    w = np.lib.stride_tricks.sliding_window_view(x, 2 * h + 1)[ref - h]
    return float(np.mean((w.max(axis=1) - w.min(axis=1)) ** 2) / 8.0)


def noise_power(noise: np.ndarray, mask: np.ndarray, fs: float) -> float:
    """N: mean power of ``noise`` over the ``mask`` samples, mean removed in 1-s windows."""
    w = int(fs)
    m = len(noise) // w * w
    blocks = noise[:m].reshape(-1, w)
    keep = mask[:m].reshape(-1, w).all(axis=1)
    b = blocks[keep]
    return float(np.mean((b - b.mean(axis=1, keepdims=True)) ** 2))


def add_noise(x: np.ndarray, fs: float, ref: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x`` plus ``noise`` switched on in the NSTDB blocks and scaled to ``snr_db``."""
    mask = noisy_mask(len(x), fs)
    gain = np.sqrt(signal_power(x, fs, ref) / (noise_power(noise, mask, fs) * 10 ** (snr_db / 10)))
    return x + gain * noise * mask


def _bprl(x: np.ndarray, fs: float) -> np.ndarray:
    return np.asarray(ecg_peaks(x, fs, return_times=False), dtype=np.int64)


def _nk(x: np.ndarray, fs: float) -> np.ndarray:
    import neurokit2 as nk

    _, info = nk.ecg_peaks(x, sampling_rate=round(fs))
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


DETECTORS = {"bprl": _bprl, "nk": _nk}


def score(ref: np.ndarray, det: np.ndarray, fs: float) -> np.ndarray:
    """(tp, fn, fp) after the learning period, 150 ms window."""
    start = int(LEARN_S * fs)
    ref, det = ref[ref >= start], np.sort(det[det >= start])
    if len(det) == 0:
        return np.array([0, len(ref), 0])
    c = processing.compare_annotations(ref, det, int(0.15 * fs))
    return np.array([c.tp, c.fn, c.fp])


def run(
    root: Path,
    records=MITDB,
    snrs=SNRS,
    kinds=KINDS,
    minutes: float | None = None,
) -> dict[tuple[str, float], dict[str, np.ndarray]]:
    """Pooled (tp, fn, fp) per (noise kind, SNR) and detector; ``("clean", inf)`` for no noise."""
    out: dict[tuple[str, float], dict[str, np.ndarray]] = {}
    for i, name in enumerate(records):
        x, fs, ref = load(root, name, minutes)
        cases = [("clean", np.inf, x)]
        for k, kind in enumerate(kinds):
            noise = make_noise(kind, len(x), fs, SEED * 1000 + 10 * i + k)
            cases += [(kind, float(s), add_noise(x, fs, ref, noise, s)) for s in snrs]
        for kind, snr, y in cases:
            acc = out.setdefault((kind, snr), {d: np.zeros(3, np.int64) for d in DETECTORS})
            for d, fn in DETECTORS.items():
                acc[d] += score(ref, fn(y, fs), fs)
    return out


def se_ppv(c: np.ndarray) -> tuple[float, float]:
    tp, fn, fp = (int(v) for v in c)
    return tp / max(tp + fn, 1), tp / max(tp + fp, 1)


def main(argv: list[str] | None = None) -> None:
    """Print the Se / PPV table per noise kind and SNR."""
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(prog="python -m benchmarks noise")
    ap.add_argument("--minutes", type=float, default=None, help="cut each record to its first M minutes")
    ap.add_argument("--records", nargs="+", default=list(MITDB))
    ap.add_argument("--snr", nargs="+", type=float, default=list(SNRS))
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    args = ap.parse_args(argv or [])
    root = _physionet()
    if not (root / "mitdb").is_dir():
        print(f"skipped: no MIT-BIH records under {root}")
        return
    t0 = time.perf_counter()
    res = run(root, args.records, args.snr, args.kinds, args.minutes)
    length = "whole records (30 min)" if args.minutes is None else f"first {args.minutes:g} min of each"
    print(
        f"MIT-BIH {', '.join(args.records)} lead 0, {length}; NSTDB protocol (noise in alternating 2-min "
        f"blocks after 5 min), synthetic noise (cohort artefact model); Se/PPV pooled over beats at "
        f"t >= 5 min, 150 ms window; seed {SEED}"
    )
    hdr = f"{'noise':<6}{'SNR dB':>7}{'bprl Se':>9}{'bprl PPV':>9}{'nk Se':>9}{'nk PPV':>9}{'dSe':>8}{'dPPV':>8}"
    print(hdr)
    for (kind, snr), acc in res.items():
        bs, bp = se_ppv(acc["bprl"])
        ns, npv = se_ppv(acc["nk"])
        s = "-" if np.isinf(snr) else f"{snr:g}"
        print(f"{kind:<6}{s:>7}{bs:9.4f}{bp:9.4f}{ns:9.4f}{npv:9.4f}{bs - ns:+8.4f}{bp - npv:+8.4f}")
    print(f"(dSe, dPPV = bprl - NeuroKit2; {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
