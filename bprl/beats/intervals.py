"""ECG intervals per beat (PR, QRS, QT, RR, QTc) and their medians per time window.

From the boundaries of :func:`bprl.beats.ecg_delineate`:

* **PR** = QRS onset − P onset (the PQ interval of the CSE convention, "PR" in clinical use);
* **QRS** = QRS offset − QRS onset;
* **QT** = T end − QRS onset;
* **RR** = this beat's R − the previous beat's R (the interval that precedes the QT, the one the
  QT corrections use; NaN for the first beat);
* **QTc Bazett** = QT / sqrt(RR / 1 s) (Bazett, Heart 7:353, 1920);
* **QTc Fridericia** = QT / (RR / 1 s)^(1/3) (Fridericia, Acta Med Scand 53:469, 1920).

All values are in ms; an interval is NaN when either boundary is. :func:`intervals_per_window`
gives the median of each over time windows (e.g. 30 s steps of a replay table), so that a
few mis-delineated beats do not move a step's value. :func:`interval_features` summarises a
whole short record (medians, spreads and wave presence over its beats) for the CinC 2017 rhythm
model of :mod:`bprl.beats.rhythm_classes`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bprl.beats.delineation import ecg_delineate
from bprl.errors import FeatureError

__all__ = [
    "INTERVAL_COLUMNS",
    "INTERVAL_FEATURE_NAMES",
    "ecg_intervals",
    "interval_features",
    "intervals_per_window",
]

#: interval columns of :func:`ecg_intervals` (ms)
INTERVAL_COLUMNS = ("pr_ms", "qrs_ms", "qt_ms", "rr_ms", "qtc_bazett_ms", "qtc_fridericia_ms")
#: record-level features of :func:`interval_features` (over the record's delineated beats)
INTERVAL_FEATURE_NAMES: tuple[str, ...] = (
    "delin_qrs_ms",
    "delin_qrs_iqr_ms",
    "delin_qt_ms",
    "delin_qtc_fridericia_ms",
    "delin_pr_ms",
    "delin_pr_iqr_ms",
    "delin_p_duration_ms",
    "delin_r_to_t_peak_ms",
    "delin_p_wave_share",
    "delin_t_wave_share",
)


def ecg_intervals(delineation: pd.DataFrame) -> pd.DataFrame:
    """PR, QRS, QT, RR and QTc (Bazett, Fridericia) of each delineated beat.

    Args:
        delineation: :func:`bprl.beats.ecg_delineate` output (columns ``r_s``, ``p_onset_s``,
            ``qrs_onset_s``, ``qrs_offset_s``, ``t_end_s``; times in s), one row per beat in
            time order.

    Returns:
        One row per beat (same index): ``r_s`` and :data:`INTERVAL_COLUMNS` in ms. ``pr_ms`` =
        QRS onset − P onset; ``qrs_ms`` = QRS offset − QRS onset; ``qt_ms`` = T end − QRS onset;
        ``rr_ms`` = R − previous R (NaN for the first beat); ``qtc_bazett_ms`` = QT / sqrt(RR in s);
        ``qtc_fridericia_ms`` = QT / cbrt(RR in s). NaN wherever a boundary or the RR is missing.

    Raises:
        FeatureError: a required column is missing.
    """
    need = ("r_s", "p_onset_s", "qrs_onset_s", "qrs_offset_s", "t_end_s")
    missing = [c for c in need if c not in delineation.columns]
    if missing:
        raise FeatureError(
            f"ecg_intervals: delineation lacks column(s) {missing}; pass ecg_delineate's output"
        )
    d = {c: delineation[c].to_numpy(dtype=np.float64) for c in need}
    qt = 1000.0 * (d["t_end_s"] - d["qrs_onset_s"])
    rr_s = np.diff(d["r_s"], prepend=np.nan)
    rr_s = np.where(rr_s > 0, rr_s, np.nan)
    out = pd.DataFrame(
        {
            "r_s": d["r_s"],
            "pr_ms": 1000.0 * (d["qrs_onset_s"] - d["p_onset_s"]),
            "qrs_ms": 1000.0 * (d["qrs_offset_s"] - d["qrs_onset_s"]),
            "qt_ms": qt,
            "rr_ms": 1000.0 * rr_s,
            "qtc_bazett_ms": qt / np.sqrt(rr_s),
            "qtc_fridericia_ms": qt / np.cbrt(rr_s),
        },
        index=delineation.index,
    )
    return out


def intervals_per_window(
    intervals: pd.DataFrame,
    window_s: float = 30.0,
    hop_s: float | None = None,
    duration_s: float | None = None,
    min_beats: int = 3,
) -> pd.DataFrame:
    """Median of each interval over time windows (for per-step columns of a replay table).

    Window ``k`` covers ``[k * hop_s, k * hop_s + window_s)`` s; a beat belongs to the windows its
    R time ``r_s`` falls in. The median ignores NaN beats; a window with fewer than
    ``min_beats`` valid values of an interval gets NaN for it.

    Args:
        intervals: :func:`ecg_intervals` output (``r_s`` and :data:`INTERVAL_COLUMNS`).
        window_s: window length in s.
        hop_s: step between window starts in s (default ``window_s``: contiguous windows).
        duration_s: record length in s (default: the last R time), which sets the number of
            windows: every window that starts before it.
        min_beats: least number of valid beats for a median.

    Returns:
        One row per window: ``t_start_s``, ``t_end_s``, ``n_beats`` (beats in the window) and the
        median of each of :data:`INTERVAL_COLUMNS` (ms).

    Raises:
        FeatureError: a non-positive ``window_s`` / ``hop_s`` or a missing column.
    """
    hop_s = window_s if hop_s is None else hop_s
    if not (window_s > 0 and hop_s > 0):
        raise FeatureError(f"intervals_per_window: window_s and hop_s must be > 0, got {window_s}, {hop_s}")
    missing = [c for c in ("r_s", *INTERVAL_COLUMNS) if c not in intervals.columns]
    if missing:
        raise FeatureError(
            f"intervals_per_window: intervals lack column(s) {missing}; pass ecg_intervals' output"
        )
    r = intervals["r_s"].to_numpy(dtype=np.float64)
    end = float(np.nanmax(r)) if duration_s is None and len(r) else float(duration_s or 0.0)
    n_win = max(int(np.ceil(end / hop_s)), 1) if end > 0 else 0
    starts = np.arange(n_win) * hop_s
    order = np.argsort(r, kind="stable")
    rs = r[order]
    lo = np.searchsorted(rs, starts, side="left")
    hi = np.searchsorted(rs, starts + window_s, side="left")
    vals = intervals[list(INTERVAL_COLUMNS)].to_numpy(dtype=np.float64)[order]
    out = {"t_start_s": starts, "t_end_s": starts + window_s, "n_beats": hi - lo}
    med = np.full((n_win, len(INTERVAL_COLUMNS)), np.nan)
    for k in range(n_win):  # one pass per window, not per beat
        seg = vals[lo[k] : hi[k]]
        ok = np.isfinite(seg).sum(axis=0) >= max(min_beats, 1)
        if ok.any():
            with np.errstate(all="ignore"):
                med[k, ok] = np.nanmedian(seg[:, ok], axis=0)
    for j, c in enumerate(INTERVAL_COLUMNS):
        out[c] = med[:, j]
    return pd.DataFrame(out)


def _median(v: np.ndarray) -> float:
    return float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")


def _iqr(v: np.ndarray) -> float:
    if np.isfinite(v).sum() < 3:
        return float("nan")
    q75, q25 = np.nanpercentile(v, [75, 25])
    return float(q75 - q25)


def interval_features(ecg: np.ndarray, fs_hz: float, r_times_s: np.ndarray) -> dict[str, float]:
    """Record-level ECG interval features: :data:`INTERVAL_FEATURE_NAMES`.

    The lead is delineated (:func:`bprl.beats.ecg_delineate` at the given R peaks) and each
    feature is taken over its beats: the median and the interquartile range of the QRS duration
    and of PR, the median QT, QTc (Fridericia), P-wave duration (P offset - P onset) and R-to-T-peak
    time (ms), and the share of beats with a P wave and with a T end. Long or variable PR
    (AV block), a wide QRS (bundle-branch block, ventricular beats), a long QTc and P waves that
    come and go are what the "other rhythm" class of CinC 2017 holds beside normal sinus rhythm;
    the median-template features of :mod:`bprl.beats.ecg_morphology` see the average beat, these
    the beats one by one.

    Args:
        ecg: one ECG lead in mV, at 100 Hz or more.
        fs_hz: sampling rate in Hz.
        r_times_s: R peak times in s (e.g. :func:`bprl.beats.ecg_peaks`).

    Returns:
        Feature name -> value, in the order of :data:`INTERVAL_FEATURE_NAMES`; all NaN with fewer
        than 3 beats. A median or IQR is NaN when no (fewer than 3) beats have the interval.

    Raises:
        FeatureError: as :func:`bprl.beats.ecg_delineate` (a rate under 100 Hz, not 1-D).
    """
    r = np.asarray(r_times_s, dtype=np.float64)
    d = ecg_delineate(ecg, fs_hz, r_times_s=r)
    if len(d) < 3:
        return {k: float("nan") for k in INTERVAL_FEATURE_NAMES}
    iv = ecg_intervals(d)
    feats = {
        "delin_qrs_ms": _median(iv["qrs_ms"].to_numpy()),
        "delin_qrs_iqr_ms": _iqr(iv["qrs_ms"].to_numpy()),
        "delin_qt_ms": _median(iv["qt_ms"].to_numpy()),
        "delin_qtc_fridericia_ms": _median(iv["qtc_fridericia_ms"].to_numpy()),
        "delin_pr_ms": _median(iv["pr_ms"].to_numpy()),
        "delin_pr_iqr_ms": _iqr(iv["pr_ms"].to_numpy()),
        "delin_p_duration_ms": _median(1000.0 * (d["p_offset_s"] - d["p_onset_s"]).to_numpy()),
        "delin_r_to_t_peak_ms": _median(1000.0 * (d["t_peak_s"] - d["r_s"]).to_numpy()),
        "delin_p_wave_share": float(np.isfinite(d["p_peak_s"].to_numpy()).mean()),
        "delin_t_wave_share": float(np.isfinite(d["t_end_s"].to_numpy()).mean()),
    }
    return {k: feats[k] for k in INTERVAL_FEATURE_NAMES}
