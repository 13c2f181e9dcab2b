"""A record's rhythm in one call: R peaks, beat classes, AF per window, intervals, and a label.

:func:`rhythm_summary` runs the rhythm pieces of :mod:`bprl.beats` on one ECG lead:

* R peaks (:func:`bprl.beats.ecg_peaks`) and beat classes N / S / V / Q
  (:func:`bprl.beats.ecg_beat_classes`);
* AF per window of ``window_s`` (:func:`bprl.beats.af_windows`, the shipped RR model), except in
  windows where more than :data:`MAX_V_SHARE_AF` of the beats are classed V
  (:func:`af_with_ectopy_guard`): frequent ventricular ectopy (bigeminy, trigeminy) makes the RR
  series irregular without AF, and the RR model, trained on AF database RR series with few
  ectopic beats, calls such windows AF (MIT-BIH 106: 6 of 61 windows before the guard, 0 after);
* delineation and intervals per beat (:func:`bprl.beats.ecg_delineate`,
  :func:`bprl.beats.ecg_intervals`), summarised as medians per window and for the record;
* for a lead of at most :data:`CLASSIFIER_MAX_S` (the 9-61 s recordings the classifier was trained
  on), the CinC 2017 class of the whole lead (:func:`bprl.beats.classify_rhythm`: normal, AF,
  other rhythm, noisy);
* a record label: for a lead of at most :data:`CLASSIFIER_MAX_S` the classifier's class when it
  has one (``AF``; ``other rhythm``; ``noisy``; normal: sinus as below), since it also reads the
  morphology (P waves) and was trained on such recordings (cross-validated AF F1 0.92 on the CinC
  dev subset, against an RR-window model trained on long AF-database records); otherwise ``AF``
  when at least half of the windows with a known rhythm are AF,
  ``paroxysmal AF`` when some are, otherwise by the median heart rate of the N beats ``sinus
  bradycardia`` (< 60 bpm), ``sinus tachycardia`` (> 100 bpm) or ``sinus rhythm``; ``unknown``
  when no window has a known rhythm (too short, flat or noisy). A record with more than 10 % of
  its beats classed V or S gets ``, frequent ectopy`` appended; one with more than half of its
  beats unclassified (Q: paced or noisy beats) ``, beats unclassified``.

The label describes rhythm, not a diagnosis: "sinus" means no AF was detected and the beats are
mostly N, not that P waves were checked beat by beat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bprl.beats.af import af_windows
from bprl.beats.beat_classes import ecg_beat_classes
from bprl.beats.delineation import QRS_ONSET_METHODS, ecg_delineate
from bprl.beats.delineation_leads import ecg_delineate_leads
from bprl.beats.ecg import ecg_peaks
from bprl.beats.intervals import ecg_intervals
from bprl.beats.rhythm_classes import classify_rhythm
from bprl.errors import FeatureError

__all__ = [
    "CINC_CLASSES",
    "CLASSIFIER_MAX_S",
    "FREQUENT_ECTOPY_SHARE",
    "MIN_FS_HZ",
    "RhythmSummary",
    "rhythm_summary",
]

#: longest lead given to the CinC 2017 classifier, s (its training records are 9-61 s)
CLASSIFIER_MAX_S = 65.0
#: the CinC 2017 classes in words
CINC_CLASSES = {"N": "normal", "A": "AF", "O": "other rhythm", "~": "noisy", "unknown": "unknown"}

#: share of beats classed S or V above which a record is labelled with frequent ectopy
FREQUENT_ECTOPY_SHARE = 0.10
#: a window with more than this share of its beats classed V is not called AF (ventricular ectopy)
MAX_V_SHARE_AF = 0.2
#: lowest sampling rate at which the rhythm pieces run (a 50 Hz ECG cannot place a QRS)
MIN_FS_HZ = 100.0
#: interval columns summarised per window and per record (medians, ms)
INTERVALS = ("pr_ms", "qrs_ms", "qt_ms", "qtc_bazett_ms", "qtc_fridericia_ms")


@dataclass
class RhythmSummary:
    """The rhythm of one ECG lead.

    Attributes:
        label: the record's rhythm label (module docstring), e.g. ``"AF"`` or ``"sinus rhythm"``.
        duration_s: length of the lead, s.
        fs_hz: its sampling rate, Hz.
        n_beats: R peaks found.
        class_counts: beats per class ``N``, ``S``, ``V``, ``Q``.
        hr_bpm: median heart rate of the N beats (NaN without any).
        intervals_ms: median PR, QRS, QT, QTc (Bazett, Fridericia) of the record, ms (NaN when no
            beat has the boundary).
        windows: one row per window: ``t_start_s``, ``t_end_s``, ``label`` (``AF``, ``non-AF``,
            ``unknown``), ``af_probability``, ``n_beats``, ``hr_bpm``, ``n_ectopic`` and the median
            intervals.
        reason: why the label is ``unknown`` (empty otherwise).
        classifier: the CinC 2017 class of a lead of at most :data:`CLASSIFIER_MAX_S` in words
            (:data:`CINC_CLASSES`), with its probability; empty for longer leads.
    """

    label: str
    duration_s: float
    fs_hz: float
    n_beats: int
    class_counts: dict[str, int]
    hr_bpm: float
    intervals_ms: dict[str, float]
    windows: pd.DataFrame = field(repr=False)
    reason: str = ""
    classifier: str = ""


def af_with_ectopy_guard(
    r_times_s: np.ndarray, classes: np.ndarray, window_s: float = 30.0, t_end_s: float | None = None
) -> pd.DataFrame:
    """:func:`bprl.beats.af_windows` with the ectopy guard: a window whose beats are more than
    :data:`MAX_V_SHARE_AF` classed V is ``non-AF`` (``af`` False), whatever the RR model says.

    Args:
        r_times_s: R times, s.
        classes: the beat class of each R time (:func:`bprl.beats.ecg_beat_classes`).
        window_s: window length, s.
        t_end_s: end of the last window, s (default: the last R peak).

    Returns:
        :func:`bprl.beats.af_windows`'s table plus ``v_share`` (share of the window's beats
        classed V).
    """
    win = af_windows(r_times_s, window_s, t_end_s=t_end_s)
    r = np.asarray(r_times_s, dtype=np.float64)
    is_v = np.asarray(classes).astype(str) == "V"
    lo = np.searchsorted(r, win["t_start_s"].to_numpy(), side="left")
    hi = np.searchsorted(r, win["t_end_s"].to_numpy(), side="left")
    cum = np.concatenate([[0], np.cumsum(is_v)])
    n = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        v_share = np.where(n > 0, (cum[hi] - cum[lo]) / np.maximum(n, 1), 0.0)
    guard = win["af"].to_numpy(bool) & (v_share > MAX_V_SHARE_AF)
    win = win.assign(v_share=v_share)
    win.loc[guard, "af"] = False
    win.loc[guard, "label"] = "non-AF"
    return win


def _record_label(windows: pd.DataFrame, classes: np.ndarray, hr_bpm: float) -> tuple[str, str]:
    """(label, reason) from the window labels, the beat classes and the median N-beat HR."""
    known = windows["label"] != "unknown"
    if not known.any():
        return "unknown", "no window with a known rhythm (too short, too few beats, flat or noisy lead)"
    af_share = float((windows.loc[known, "label"] == "AF").mean())
    if af_share >= 0.5:
        label = "AF"
    elif af_share > 0:
        label = "paroxysmal AF"
    elif np.isfinite(hr_bpm) and hr_bpm < 60:
        label = "sinus bradycardia"
    elif np.isfinite(hr_bpm) and hr_bpm > 100:
        label = "sinus tachycardia"
    else:
        label = "sinus rhythm"
    ectopic = float(np.isin(classes, ["S", "V"]).mean()) if len(classes) else 0.0
    if ectopic > FREQUENT_ECTOPY_SHARE:
        label += ", frequent ectopy"
    if len(classes) and float((classes == "Q").mean()) > 0.5:
        label += ", beats unclassified"
    return label, ""


@dataclass
class BeatRhythm:
    """The rhythm of every beat of a lead: what :func:`rhythm_summary` and the replay tables'
    rhythm columns (:func:`bprl.features.record_beats`) are both built from.

    Attributes:
        classes: N / S / V / Q per R peak (:func:`bprl.beats.ecg_beat_classes`).
        windows: AF windows with the ectopy guard (:func:`af_with_ectopy_guard`).
        delineation: :func:`bprl.beats.ecg_delineate` per R peak (empty with fewer than 2 peaks).
        intervals: :func:`bprl.beats.ecg_intervals` of the delineation.
    """

    classes: np.ndarray
    windows: pd.DataFrame
    delineation: pd.DataFrame
    intervals: pd.DataFrame

    def beat_af(self, r_times_s: np.ndarray) -> np.ndarray:
        """Whether each R peak lies in a window detected as AF."""
        starts = self.windows["t_start_s"].to_numpy()
        if not len(starts):
            return np.zeros(len(r_times_s), bool)
        k = np.clip(np.searchsorted(starts, r_times_s, side="right") - 1, 0, len(starts) - 1)
        return self.windows["af"].to_numpy(bool)[k]


def beat_rhythm(
    ecg: np.ndarray,
    fs_hz: float,
    r_times_s: np.ndarray,
    duration_s: float,
    window_s: float = 30.0,
    delineation_ecg: np.ndarray | None = None,
    qrs_onset: str = "wavelet",
) -> BeatRhythm:
    """Beat classes, guarded AF windows, delineation and intervals of the R peaks ``r_times_s``.

    Args:
        ecg: the lead (NaN marks invalid samples), for the beat classes (and the delineation
            unless ``delineation_ecg`` is given).
        fs_hz: sampling rate, Hz.
        r_times_s: R times, s.
        duration_s: length of the lead, s (end of the last AF window).
        window_s: length of the AF windows, s.
        delineation_ecg: the lead to delineate instead of ``ecg`` (e.g. NaN-filled), or samples x
            leads: the beats are then delineated on every lead and each boundary is the median over
            the leads (:func:`bprl.beats.ecg_delineate_leads`).
        qrs_onset: the delineator's QRS onset, ``"wavelet"`` or ``"model"``
            (:func:`bprl.beats.ecg_delineate`).
    """
    r = np.asarray(r_times_s, dtype=np.float64)
    if not len(r):
        classes, windows = np.empty(0, "<U1"), _empty_windows(duration_s, window_s)
    else:
        classes = ecg_beat_classes(ecg, fs_hz, r)
        windows = af_with_ectopy_guard(r, classes, window_s, t_end_s=duration_s)
    if len(r) >= 2:
        target = ecg if delineation_ecg is None else np.asarray(delineation_ecg, dtype=np.float64)
        if target.ndim == 2:
            delin = ecg_delineate_leads(target, fs_hz, r, qrs_onset=qrs_onset)
        else:
            delin = ecg_delineate(target, fs_hz, r, qrs_onset=qrs_onset)
        iv = ecg_intervals(delin)
    else:
        delin = pd.DataFrame({c: np.empty(0) for c in ("r_s", "qrs_onset_s")})
        iv = pd.DataFrame({c: np.empty(0) for c in ("r_s", "rr_ms", *INTERVALS)})
    return BeatRhythm(classes, windows, delin, iv)


def _medians(x: pd.DataFrame, cols: tuple[str, ...]) -> dict[str, float]:
    """Median of each column over its finite values (NaN without any)."""
    out = {}
    for c in cols:
        v = x[c].to_numpy(float)
        v = v[np.isfinite(v)]
        out[c] = float(np.median(v)) if v.size else float("nan")
    return out


def rhythm_summary(
    ecg: np.ndarray,
    fs_hz: float,
    window_s: float = 30.0,
    other_leads: np.ndarray | None = None,
    qrs_onset: str = "wavelet",
) -> RhythmSummary:
    """Rhythm and intervals of one ECG lead (module docstring).

    Args:
        ecg: the lead's samples (any units; NaN marks invalid samples).
        fs_hz: sampling rate, Hz (at least :data:`MIN_FS_HZ`).
        window_s: length of the AF windows, s (the AF model is validated on 30 s).
        other_leads: more leads of the same record (samples x leads, the same rate and length as
            ``ecg``): the intervals then come from the median over ``ecg`` and these of each
            boundary (:func:`bprl.beats.ecg_delineate_leads`); R peaks, beat classes, AF and the
            label still come from ``ecg``.
        qrs_onset: the delineator's QRS onset, ``"wavelet"`` (the threshold rule) or ``"model"``
            (the learned correction; :func:`bprl.beats.ecg_delineate`): it moves PR, QRS and QT.

    Returns:
        The summary; ``label`` is ``unknown`` (with ``reason``) when the lead has no usable rhythm:
        a lead too short for a window of at least 10 s with enough beats, a flat lead, no R peaks.

    Raises:
        FeatureError: ``ecg`` not 1-D, ``fs_hz`` below :data:`MIN_FS_HZ` (a 50 Hz record cannot
            place a QRS: resample or use another lead), ``window_s`` not positive, ``other_leads``
            not samples x leads of ``ecg``'s length, an unknown ``qrs_onset``.
    """
    x = np.asarray(ecg, dtype=np.float64)
    if x.ndim != 1:
        raise FeatureError(f"rhythm: the ECG must be one lead (1-D), got shape {x.shape}")
    leads = None
    if other_leads is not None:
        more = np.asarray(other_leads, dtype=np.float64)
        more = more[:, None] if more.ndim == 1 else more
        if more.ndim != 2 or more.shape[0] != len(x):
            raise FeatureError(
                f"rhythm: other_leads must be samples x leads with {len(x)} samples, got shape {more.shape}"
            )
        leads = np.column_stack([x, more])
    if not fs_hz >= MIN_FS_HZ:
        raise FeatureError(
            f"rhythm: sampling rate {fs_hz:g} Hz is below {MIN_FS_HZ:g} Hz; the QRS cannot be placed"
        )
    if not window_s > 0:
        raise FeatureError(f"rhythm: window_s must be > 0, got {window_s}")
    if qrs_onset not in QRS_ONSET_METHODS:
        raise FeatureError(f"rhythm: qrs_onset must be one of {list(QRS_ONSET_METHODS)}, got {qrs_onset!r}")
    duration_s = len(x) / fs_hz
    finite = x[np.isfinite(x)]
    flat = finite.size < 2 or float(np.ptp(finite)) == 0.0
    r = np.empty(0) if flat else ecg_peaks(x, fs_hz)
    br = beat_rhythm(x, fs_hz, r, duration_s, window_s, delineation_ecg=leads, qrs_onset=qrs_onset)
    classes, windows, iv = br.classes, br.windows, br.intervals
    n_beat = classes == "N"
    rr = np.diff(r, prepend=np.nan) * 1000.0
    hr_n = 60000.0 / rr[n_beat & np.isfinite(rr)] if len(r) else np.empty(0)
    hr_bpm = float(np.median(hr_n)) if hr_n.size else float("nan")
    rows = []
    for _, w in windows.iterrows():
        sel = (r >= w["t_start_s"]) & (r < w["t_end_s"])
        sel_n = sel & n_beat & np.isfinite(rr)
        rows.append(
            {
                "hr_bpm": float(np.median(60000.0 / rr[sel_n])) if sel_n.any() else float("nan"),
                "n_ectopic": int(np.isin(classes[sel], ["S", "V"]).sum()),
                **_medians(iv[sel] if len(iv) else iv, INTERVALS),
            }
        )
    windows = pd.concat([windows.reset_index(drop=True), pd.DataFrame(rows, index=windows.index)], axis=1)
    label, reason = _record_label(windows, classes, hr_bpm)
    if flat:
        label, reason = "unknown", "flat lead (no signal)"
    classifier = ""
    if duration_s <= CLASSIFIER_MAX_S:
        res = classify_rhythm(x, fs_hz)
        p_top = res.probabilities.get(res.label)
        classifier = CINC_CLASSES.get(res.label, res.label) + (
            f" (p = {p_top:.2f})" if p_top is not None else f" ({res.reason})"
        )
        if not flat and res.label in ("A", "O", "~"):
            label, reason = CINC_CLASSES[res.label], ""
        elif not flat and res.label == "N" and label.startswith(("AF", "paroxysmal AF")):
            label = (
                "sinus rhythm"
                if not (np.isfinite(hr_bpm) and (hr_bpm < 60 or hr_bpm > 100))
                else ("sinus bradycardia" if hr_bpm < 60 else "sinus tachycardia")
            )
    return RhythmSummary(
        label=label,
        duration_s=duration_s,
        fs_hz=float(fs_hz),
        n_beats=len(r),
        class_counts={c: int((classes == c).sum()) for c in ("N", "S", "V", "Q")},
        hr_bpm=hr_bpm,
        intervals_ms=_medians(iv, INTERVALS),
        windows=windows,
        reason=reason,
        classifier=classifier,
    )


def _empty_windows(duration_s: float, window_s: float) -> pd.DataFrame:
    """Windows of a lead without beats: every one ``unknown``."""
    starts = np.arange(0.0, max(duration_s, 0.0), window_s)
    return pd.DataFrame(
        {
            "t_start_s": starts,
            "t_end_s": np.minimum(starts + window_s, duration_s),
            "n_beats": np.zeros(len(starts), np.int64),
            "af_probability": np.full(len(starts), np.nan),
            "af": np.zeros(len(starts), bool),
            "label": np.full(len(starts), "unknown", dtype=object),
        }
    )
