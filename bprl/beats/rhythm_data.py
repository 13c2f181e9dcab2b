"""Readers of the rhythm-reference data sets that train and test the rhythm models.

Two PhysioNet rhythm data sets and the delineation references, in the layout of
``$BPRL_RHYTHM_DIR`` (see ``../shared/data/rhythm``):

* ``afdb_rr_rhythm/``: the MIT-BIH Atrial Fibrillation Database (Moody & Mark 1983) as text,
  no signals: ``atrNNNNN.txt`` holds the manual rhythm changes (``(N``, ``(AFIB``, ``(AFL``,
  ``(J``; sample numbers at 250 Hz, each the start of that rhythm) and ``qrsNNNNN.txt.gz`` the
  database's automatic (unaudited) beat annotations as ``previous-beat sample, RR in s,
  this-beat sample``. :func:`read_afdb_rr` returns the beat times and the rhythm episodes.
* ``cinc2017/training_subset/``: PhysioNet/CinC Challenge 2017 single-lead AliveCor ECGs
  (300 Hz, 9-61 s, WFDB) with ``REFERENCE-v3-subset.csv`` (N normal, A AF, O other, ~ noisy;
  Clifford et al. 2017). :func:`cinc2017_reference` and :func:`read_cinc2017_ecg` read them.
* ``ludb/`` and ``qtdb/``: wave-boundary annotations. :func:`parse_wave_marks` turns one (LUDB's
  per-lead marks, QTDB's ``q1c`` and ``pu``) into one row per beat; :func:`read_ludb` reads a
  LUDB record (``ludb/data/``: 10 s, 500 Hz, 12 leads, each lead marked on its own;
  Kalyakulina et al. 2020).

References:
    Moody GB, Mark RG. A new method for detecting atrial fibrillation using R-R intervals.
    Computers in Cardiology 10:227-230, 1983.
    Clifford GD, Liu C, Moody B, et al. AF classification from a short single lead ECG
    recording: the PhysioNet/Computing in Cardiology Challenge 2017. CinC 44, 2017.
    Kalyakulina AI, Yusipov II, Moskalenko VA, et al. LUDB: a new open-access validation tool
    for electrocardiogram delineation algorithms. IEEE Access 8:186181-186190, 2020.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bprl.errors import RecordError

__all__ = [
    "AFDB_FS_HZ",
    "LUDB_LEADS",
    "WAVE_BOUNDS",
    "AfdbRecord",
    "afdb_record_names",
    "cinc2017_reference",
    "parse_wave_marks",
    "read_afdb_rr",
    "read_cinc2017_ecg",
    "read_ludb",
    "rhythm_fraction",
]

#: the boundaries of :func:`parse_wave_marks`, in column order after ``r``
WAVE_BOUNDS = ("p_onset", "p_peak", "p_offset", "qrs_onset", "qrs_offset", "t_peak", "t_end")
#: Sampling rate of the AFDB annotation sample numbers.
AFDB_FS_HZ = 250.0


@dataclass(frozen=True)
class AfdbRecord:
    """One AFDB record: beat times and manual rhythm episodes.

    Attributes:
        name: record name (e.g. ``"04043"``).
        r_times_s: beat times in s from the start of the record (the database's automatic QRS
            annotations, unaudited).
        episode_start_s: start of each rhythm episode in s (sorted).
        episode_rhythm: rhythm of each episode without the ``(``: ``N``, ``AFIB``, ``AFL``, ``J``.
        end_s: end of the annotated span in s (the last beat).
    """

    name: str
    r_times_s: np.ndarray
    episode_start_s: np.ndarray
    episode_rhythm: np.ndarray
    end_s: float


def afdb_record_names(folder: str | Path) -> list[str]:
    """Names of the AFDB records in ``folder`` that have both a rhythm and a QRS file, sorted."""
    folder = Path(folder)
    return sorted(
        p.name[3:-4] for p in folder.glob("atr*.txt") if (folder / f"qrs{p.name[3:-4]}.txt.gz").is_file()
    )


def read_afdb_rr(folder: str | Path, name: str) -> AfdbRecord:
    """Read one AFDB record of the text layout (``atrNAME.txt`` + ``qrsNAME.txt.gz``).

    Args:
        folder: the ``afdb_rr_rhythm`` folder.
        name: record name, e.g. ``"04043"``.

    Returns:
        The record's beat times and rhythm episodes.

    Raises:
        RecordError: a file is missing or malformed.
    """
    folder = Path(folder)
    atr, qrs = folder / f"atr{name}.txt", folder / f"qrs{name}.txt.gz"
    if not atr.is_file() or not qrs.is_file():
        raise RecordError(f"AFDB record {name}: {atr.name} or {qrs.name} missing in {folder}")
    starts, rhythms = [], []
    for line in atr.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 7 and parts[-1].startswith("("):
            starts.append(int(parts[1]) / AFDB_FS_HZ)
            rhythms.append(parts[-1][1:])
    with gzip.open(qrs, "rt", encoding="utf-8") as fh:
        try:
            beats = np.loadtxt(fh, ndmin=2)
        except ValueError as exc:
            raise RecordError(f"AFDB record {name}: {qrs.name} is not 3 numeric columns ({exc})") from exc
    if beats.shape[1] != 3 or not starts:
        raise RecordError(f"AFDB record {name}: no beats or no rhythm annotations")
    r = np.unique(np.concatenate([beats[:1, 0], beats[:, 2]])) / AFDB_FS_HZ
    order = np.argsort(starts, kind="stable")
    return AfdbRecord(
        name=name,
        r_times_s=r,
        episode_start_s=np.asarray(starts)[order],
        episode_rhythm=np.asarray(rhythms)[order],
        end_s=float(r[-1]),
    )


def rhythm_fraction(rec: AfdbRecord, t_start_s: np.ndarray, t_end_s: np.ndarray, rhythm: str) -> np.ndarray:
    """Share of each window ``[t_start_s, t_end_s)`` that the reference annotates as ``rhythm``.

    Time before the first rhythm annotation counts as no rhythm.

    Args:
        rec: the AFDB record.
        t_start_s: window starts in s.
        t_end_s: window ends in s.
        rhythm: rhythm name without ``(``, e.g. ``"AFIB"``.

    Returns:
        Share in 0..1 per window (0 for an empty window).
    """
    edges = np.append(rec.episode_start_s, np.inf)
    is_r = rec.episode_rhythm == rhythm
    lo = np.asarray(t_start_s, dtype=np.float64)
    hi = np.asarray(t_end_s, dtype=np.float64)
    covered = np.zeros(len(lo))
    for k in np.flatnonzero(is_r):  # one pass per episode of that rhythm (a few hundred at most)
        covered += np.clip(np.minimum(hi, edges[k + 1]) - np.maximum(lo, edges[k]), 0.0, None)
    dur = hi - lo
    return np.divide(covered, dur, out=np.zeros(len(lo)), where=dur > 0)


def cinc2017_reference(folder: str | Path) -> pd.DataFrame:
    """The CinC 2017 reference labels of the records present in ``folder``.

    Args:
        folder: the ``cinc2017/training_subset`` folder (``REFERENCE*.csv`` plus ``.hea``/``.mat``).

    Returns:
        Columns ``record`` and ``label`` (``N``, ``A``, ``O``, ``~``), sorted by record; only
        records whose header exists.

    Raises:
        RecordError: no reference file in ``folder``.
    """
    folder = Path(folder)
    refs = sorted(folder.glob("REFERENCE*.csv"))
    if not refs:
        raise RecordError(f"no REFERENCE*.csv in {folder}")
    ref = pd.read_csv(refs[0], header=None, names=["record", "label"], dtype=str)
    ref = ref[[(folder / f"{r}.hea").is_file() for r in ref["record"]]]
    return ref.sort_values("record").reset_index(drop=True)


def read_cinc2017_ecg(folder: str | Path, record: str) -> tuple[np.ndarray, float]:
    """Read one CinC 2017 ECG.

    Args:
        folder: the ``cinc2017/training_subset`` folder.
        record: record name, e.g. ``"A00243"``.

    Returns:
        ``(ecg_mv, fs_hz)``: the single lead in mV and its sampling rate.

    Raises:
        RecordError: the record cannot be read.
    """
    import wfdb

    try:
        rec = wfdb.rdrecord(str(Path(folder) / record))
    except (OSError, ValueError) as exc:
        raise RecordError(f"CinC 2017 record {record}: {exc}") from exc
    return np.asarray(rec.p_signal[:, 0], dtype=np.float64), float(rec.fs)


def parse_wave_marks(sample: np.ndarray, symbol: list[str], x: np.ndarray | None = None) -> pd.DataFrame:
    """Beats (one row per QRS peak) of a WFDB wave-boundary annotation (LUDB, QTDB ``q1c``, ``pu``).

    A wave is a run of peak marks (``p``, ``t``, ``u`` or a beat label) with the ``(`` just before
    it as onset and the ``)`` just after it as offset. A beat's P wave is the last one between the
    previous QRS and its own, its T wave the first one after it and before the next QRS. A T wave
    with two peaks (ecgpuwave, biphasic) keeps the one farther from the level at its end in ``x``.

    Args:
        sample: the annotation's sample numbers (``wfdb.rdann(...).sample``).
        symbol: its symbols, one per sample.
        x: the annotated lead, used only to pick one of two T peaks.

    Returns:
        Columns ``r`` (the QRS peak mark) and :data:`WAVE_BOUNDS`, in samples (NaN: not marked);
        ``attrs["span"]`` holds the first and last annotated sample.
    """
    waves: list[list] = []  # [kind, onset, peaks, offset]
    pend_on = np.nan
    for s, sym in zip(np.asarray(sample), symbol, strict=True):
        if sym == "(":
            pend_on = float(s)
        elif sym == ")":
            if waves and np.isnan(waves[-1][3]):
                waves[-1][3] = float(s)
            pend_on = np.nan
        else:
            kind = {"p": "p", "t": "t", "u": "u"}.get(sym, "qrs")
            if waves and waves[-1][0] == kind and np.isnan(waves[-1][3]) and np.isnan(pend_on):
                waves[-1][2].append(float(s))  # a second peak of the same wave
            else:
                waves.append([kind, pend_on, [float(s)], np.nan])
            pend_on = np.nan
    qrs = [w for w in waves if w[0] == "qrs"]
    rows = []
    for i, q in enumerate(qrs):
        lo = qrs[i - 1][2][0] if i else -np.inf
        hi = qrs[i + 1][2][0] if i + 1 < len(qrs) else np.inf
        ps = [w for w in waves if w[0] == "p" and lo < w[2][0] < q[2][0]]
        ts = [w for w in waves if w[0] == "t" and q[2][0] < w[2][0] < hi]
        p = ps[-1] if ps else ["p", np.nan, [np.nan], np.nan]
        t = ts[0] if ts else ["t", np.nan, [np.nan], np.nan]
        tp = t[2][0]
        if len(t[2]) > 1 and x is not None and np.isfinite(t[3]):
            lvl = x[min(int(t[3]), len(x) - 1)]
            tp = max(t[2], key=lambda v: abs(x[int(v)] - lvl))
        rows.append([q[2][0], p[1], p[2][0], p[3], q[1], q[3], tp, t[3]])
    out = pd.DataFrame(rows, columns=["r", *WAVE_BOUNDS], dtype=float)
    s = np.asarray(sample, dtype=float)
    out.attrs["span"] = (float(s.min()), float(s.max())) if len(s) else (np.nan, np.nan)
    return out


#: LUDB's 12 leads, in the order of its headers and as its annotation suffixes
LUDB_LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")


def read_ludb(path: str | Path) -> tuple[np.ndarray, float, dict[str, pd.DataFrame]]:
    """A LUDB record's 12 leads and the cardiologists' marks of each lead's waves.

    Args:
        path: the record without suffix, e.g. ``ludb/data/1`` (``1.hea``, ``1.dat``, ``1.ii``, ...).

    Returns:
        ``(ecg_mv, fs_hz, marks)``: samples x 12 leads in mV in :data:`LUDB_LEADS` order, the
        sampling rate, and per lead name :func:`parse_wave_marks` of its annotation (samples).

    Raises:
        RecordError: the record, a lead or a lead's annotation cannot be read.
    """
    import wfdb

    try:
        rec = wfdb.rdrecord(str(path))
        x = np.asarray(rec.p_signal[:, [rec.sig_name.index(lead) for lead in LUDB_LEADS]], dtype=np.float64)
        marks = {}
        for lead in LUDB_LEADS:
            ann = wfdb.rdann(str(path), lead)
            marks[lead] = parse_wave_marks(ann.sample, ann.symbol)
    except (OSError, ValueError) as exc:
        raise RecordError(f"LUDB record {path}: {exc}") from exc
    return x, float(rec.fs), marks
