"""Atrial activity, RR-pattern, beat-template and noise features of a short single-lead ECG.

The second feature set of the CinC 2017 rhythm classifier (:mod:`bprl.beats.rhythm_classes`),
beside the RR-irregularity features (:mod:`bprl.beats.rr_features`) and the median-beat
morphology and quality features (:mod:`bprl.beats.ecg_morphology`):

* **TQ-interval atrial activity** (:func:`atrial_features`): between the end of one beat's T
  wave and the next P wave the sinus ECG is flat; in AF it carries the fibrillatory f-waves
  (4-9 Hz, Stridh & Sörnmo 2001; Petrutiu et al. 2007). Each beat's TQ stretch is taken from
  ``R + QT`` (Bazett QT at QTc 420 ms, plus 40 ms) to 280 ms before the next R; its 4-12 Hz RMS
  over the R amplitude and its zero-crossing rate, median over beats, are the f-wave energy
  and frequency. Short TQ stretches (< 80 ms; fast rates) are left out and their share kept.
* **P-wave absence per beat**: the P window (-280..-70 ms) of each beat, low-passed at 15 Hz,
  holds a P wave when its largest deflection above the PR baseline exceeds three times the
  robust SD of the beat's TQ stretch; ``p_present_fraction`` is the share of such beats (sinus
  rhythm near 1, AF near 0). The P template of the regular beats only (RR within 15 % of the
  median) gives ``p_amp_ratio_regular`` and ``p_beat_corr_regular``, which ectopic beats do
  not dilute.
* **RR pattern** (:func:`rr_pattern_features`): the share of RR intervals within 6 % of the RR
  histogram's mode, the number of RR clusters (sorted RR split at gaps > 8 % of the median),
  the longest run of regular beats (successive RR within 8 %) over the beats, and the share of
  Poincaré points (RR_i, RR_i+1) in the densest 60-ms cell: bigeminy and trigeminy give
  2-3 tight clusters, AF none (Esperer et al. 2008 for the Poincaré patterns of ectopy).
* **Beat templates and noise**: beats whose QRS correlates < 0.8 with the median beat form a
  second template (its share and width over the main one: ventricular ectopy, aberrancy); the agreement
  of the R peaks with the peaks of a second, template-matched detector (bSQI, Li et al. 2008)
  and the share of 1-s blocks whose peak-to-peak amplitude is more than 3 times or less than
  a third of the median block's (movement, lead off).

All inputs are the 0.5-40 Hz zero-phase band-passed lead and bprl's R peaks, as in
:mod:`bprl.beats.ecg_morphology`. Every function returns NaN where a feature is undefined.

References:
    Stridh M, Sörnmo L. Spatiotemporal QRST cancellation techniques for analysis of atrial
    fibrillation. IEEE Trans Biomed Eng 48:105-111, 2001.
    Petrutiu S, Sahakian AV, Swiryn S. Abrupt changes in fibrillatory wave characteristics at
    the termination of paroxysmal atrial fibrillation in humans. Europace 9:466-470, 2007.
    Li Q, Mark RG, Clifford GD. Robust heart rate estimation from multiple asynchronous noisy
    sources using signal quality indices and a Kalman filter. Physiol Meas 29:15-32, 2008 (bSQI).
    Esperer HD, Esperer C, Cohen RJ. Cardiac arrhythmias imprint specific signatures on Lorenz
    plots. Ann Noninvasive Electrocardiol 13:44-60, 2008.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from bprl.beats.ecg_morphology import BEAT_BEFORE_S, _qrs_width_ms, _row_corr, beat_matrix, polarised_template
from bprl.beats.filters import signal_bandpass, signal_fill_nan

__all__ = [
    "ATRIAL_FEATURE_NAMES",
    "EXTRA_RHYTHM_FEATURE_NAMES",
    "RR_PATTERN_FEATURE_NAMES",
    "TEMPLATE_FEATURE_NAMES",
    "atrial_features",
    "extra_rhythm_features",
    "rr_pattern_features",
    "template_noise_features",
]

_P_WINDOW_S = (-0.28, -0.07)
_PR_BASE_S = (-0.06, -0.03)
_MIN_TQ_S = 0.08

ATRIAL_FEATURE_NAMES: tuple[str, ...] = (
    "tq_fwave_rms_ratio",
    "tq_zero_cross_hz",
    "tq_fraction",
    "p_present_fraction",
    "p_amp_ratio_regular",
    "p_beat_corr_regular",
)
RR_PATTERN_FEATURE_NAMES: tuple[str, ...] = (
    "rr_mode_share",
    "rr_n_clusters",
    "rr_regular_run_fraction",
    "poincare_peak_share",
)
TEMPLATE_FEATURE_NAMES: tuple[str, ...] = (
    "second_template_share",
    "second_template_width_ratio",
    "bsqi",
    "amp_outlier_block_fraction",
)
#: The whole extra feature set of the rhythm classifier, in order.
EXTRA_RHYTHM_FEATURE_NAMES: tuple[str, ...] = (
    ATRIAL_FEATURE_NAMES + RR_PATTERN_FEATURE_NAMES + TEMPLATE_FEATURE_NAMES
)


def _nan(names: tuple[str, ...]) -> dict[str, float]:
    return dict.fromkeys(names, float("nan"))


def atrial_features(x: np.ndarray, fs_hz: float, r_times_s: np.ndarray) -> dict[str, float]:
    """TQ-interval f-wave energy and frequency, and P-wave presence per beat (module docstring).

    Args:
        x: the 0.5-40 Hz band-passed ECG lead (mV), no NaN.
        fs_hz: sampling rate in Hz.
        r_times_s: R-peak times in s.

    Returns:
        Feature name -> value, keyed by :data:`ATRIAL_FEATURE_NAMES`.
    """
    out = _nan(ATRIAL_FEATURE_NAMES)
    r_s = np.asarray(r_times_s, dtype=np.float64)
    beats, kept = beat_matrix(x, fs_hz, r_s)
    if len(beats) < 3 or len(r_s) < 4:
        return out
    r0 = round(BEAT_BEFORE_S * fs_hz)
    tpl = np.median(beats, axis=0)
    sign = 1.0 if tpl[r0] >= 0 else -1.0
    r_amp = float(sign * tpl[r0]) if sign * tpl[r0] > 0 else float(np.ptp(tpl))
    if r_amp <= 0:
        return out
    sos = signal.butter(3, [4.0, min(12.0, 0.45 * fs_hz)], btype="band", fs=fs_hz, output="sos")
    xf = signal.sosfiltfilt(sos, x)
    r_idx = np.round(r_s * fs_hz).astype(np.int64)
    rr_s = np.diff(r_s)
    qt_s = 0.42 * np.sqrt(rr_s) + 0.04
    a = r_idx[:-1] + np.round(qt_s * fs_hz).astype(np.int64)
    b = r_idx[1:] - round(-_P_WINDOW_S[0] * fs_hz)
    ok = (b - a) >= round(_MIN_TQ_S * fs_hz)
    out["tq_fraction"] = float(np.mean(ok))
    rms, zc, tq_sd = [], [], np.full(len(a), np.nan)
    for k in np.flatnonzero(ok):
        seg = xf[a[k] : b[k]]
        rms.append(np.sqrt(np.mean(seg**2)))
        zc.append(np.sum(np.diff(np.signbit(seg)) != 0) / (len(seg) / fs_hz))
        raw = x[a[k] : b[k]]
        tq_sd[k] = 1.4826 * np.median(np.abs(raw - np.median(raw)))
    if rms:
        out["tq_fwave_rms_ratio"] = float(np.median(rms) / r_amp)
        out["tq_zero_cross_hz"] = float(np.median(zc))
    # P wave per beat: low-passed P window above the PR baseline vs the beat's TQ noise
    lp = signal.sosfiltfilt(signal.butter(3, 15.0, fs=fs_hz, output="sos"), x) * sign
    p_lo, p_hi = r0 + round(_P_WINDOW_S[0] * fs_hz), r0 + round(_P_WINDOW_S[1] * fs_hz) + 1
    b_lo, b_hi = r0 + round(_PR_BASE_S[0] * fs_hz), r0 + round(_PR_BASE_S[1] * fs_hz) + 1
    lp_beats, _ = beat_matrix(lp, fs_hz, r_s)
    base = np.median(lp_beats[:, b_lo:b_hi], axis=1)
    p_defl = np.max(np.abs(lp_beats[:, p_lo:p_hi] - base[:, None]), axis=1)
    noise = np.full(len(kept), np.nan)
    prev = kept - 1  # the TQ stretch before beat k ends at beat k's P window
    has = prev >= 0
    noise[has] = tq_sd[prev[has]]
    judged = np.isfinite(noise) & (noise > 0)
    if judged.sum() >= 3:
        out["p_present_fraction"] = float(np.mean(p_defl[judged] > 3.0 * noise[judged]))
    # P template of the regular beats only (RR before within 15 % of the median)
    rr_before = np.full(len(kept), np.nan)
    rr_before[has] = r_s[kept[has]] - r_s[prev[has]]
    regular = np.abs(rr_before / np.nanmedian(rr_before) - 1.0) <= 0.15
    if regular.sum() >= 3:
        pb = beats[regular][:, p_lo:p_hi] * sign
        p_tpl = np.median(pb, axis=0)
        out["p_amp_ratio_regular"] = float(np.ptp(p_tpl) / r_amp)
        pc = pb - pb.mean(axis=1, keepdims=True)
        tc = p_tpl - p_tpl.mean()
        den = np.sqrt((pc * pc).sum(axis=1) * (tc @ tc))
        corr = np.divide(pc @ tc, den, out=np.zeros(len(pc)), where=den > 0)
        out["p_beat_corr_regular"] = float(np.median(corr))
    return out


def rr_pattern_features(rr_ms: np.ndarray) -> dict[str, float]:
    """RR histogram, cluster and Poincaré-cluster features (module docstring).

    >>> f = rr_pattern_features(np.tile([600.0, 1000.0], 20))
    >>> f["rr_n_clusters"], round(f["rr_mode_share"], 2)
    (2.0, 0.5)

    Args:
        rr_ms: RR intervals in ms (NaN and non-positive values dropped).

    Returns:
        Feature name -> value, keyed by :data:`RR_PATTERN_FEATURE_NAMES` (NaN with fewer than 4).
    """
    rr = np.asarray(rr_ms, dtype=np.float64).ravel()
    rr = rr[np.isfinite(rr) & (rr > 0)]
    out = _nan(RR_PATTERN_FEATURE_NAMES)
    if len(rr) < 4:
        return out
    med = float(np.median(rr))
    # share within 6 % of the mode (the RR of most neighbours within 6 %)
    near = np.abs(rr[:, None] - rr[None, :]) <= 0.06 * med
    mode = rr[int(np.argmax(near.sum(axis=1)))]
    out["rr_mode_share"] = float(np.mean(np.abs(rr - mode) <= 0.06 * med))
    s = np.sort(rr)
    out["rr_n_clusters"] = float(1 + np.sum(np.diff(s) > 0.08 * med))
    steady = np.abs(np.diff(rr)) <= 0.08 * rr[:-1]
    longest, run = 0, 0
    for v in steady:
        run = run + 1 if v else 0
        longest = max(longest, run)
    out["rr_regular_run_fraction"] = float(longest / len(steady))
    cells = np.floor(np.column_stack([rr[:-1], rr[1:]]) / 60.0).astype(np.int64)
    _, counts = np.unique(cells, axis=0, return_counts=True)
    out["poincare_peak_share"] = float(counts.max() / len(cells))
    return out


def _template_peaks(x: np.ndarray, fs_hz: float, qrs: np.ndarray) -> np.ndarray:
    """Peak times (s) of the record's correlation with its QRS template (a second detector)."""
    q = qrs - qrs.mean()
    if not np.any(q):
        return np.zeros(0)
    c = np.correlate(x, q / np.linalg.norm(q), mode="same")
    thr = 0.35 * np.percentile(c, 99.5)
    peaks, _ = signal.find_peaks(c, height=thr, distance=max(1, round(0.25 * fs_hz)))
    return peaks / fs_hz


def template_noise_features(x: np.ndarray, fs_hz: float, r_times_s: np.ndarray) -> dict[str, float]:
    """Second-template, coarse template shape and noise features (module docstring).

    Args:
        x: the 0.5-40 Hz band-passed ECG lead (mV), no NaN.
        fs_hz: sampling rate in Hz.
        r_times_s: R-peak times in s.

    Returns:
        Feature name -> value, keyed by :data:`TEMPLATE_FEATURE_NAMES`.
    """
    out = _nan(TEMPLATE_FEATURE_NAMES)
    n_s = int(len(x) / fs_hz)
    if n_s >= 3:
        ptp = np.ptp(x[: n_s * int(fs_hz)].reshape(n_s, int(fs_hz)), axis=1)
        m = np.median(ptp)
        out["amp_outlier_block_fraction"] = float(np.mean((ptp > 3 * m) | (ptp < m / 3))) if m > 0 else 1.0
    r_s = np.asarray(r_times_s, dtype=np.float64)
    beats, _ = beat_matrix(x, fs_hz, r_s)
    if len(beats) < 3:
        return out
    r0 = round(BEAT_BEFORE_S * fs_hz)
    tpl, beats, sign, r_amp = polarised_template(beats, r0)
    if r_amp <= 0:
        return out
    q = slice(r0 - round(0.08 * fs_hz), r0 + round(0.08 * fs_hz) + 1)
    qc = _row_corr(beats[:, q], tpl[q])
    other = qc < 0.8
    out["second_template_share"] = float(np.mean(other))
    if other.sum() >= 2:
        tpl2 = np.median(beats[other], axis=0)
        w1 = _qrs_width_ms(tpl, r0, fs_hz)
        out["second_template_width_ratio"] = float(_qrs_width_ms(tpl2, r0, fs_hz) / max(w1, 1e-9))
    peaks2 = _template_peaks(x * sign, fs_hz, tpl[q])
    if len(r_s) and len(peaks2):
        d = np.abs(r_s[:, None] - peaks2[None, :])
        matched = int(np.sum(d.min(axis=1) <= 0.1))
        out["bsqi"] = float(matched / (len(r_s) + len(peaks2) - matched))
    return out


def extra_rhythm_features(ecg: np.ndarray, fs_hz: float, r_times_s: np.ndarray) -> dict[str, float]:
    """All of :data:`EXTRA_RHYTHM_FEATURE_NAMES` of one ECG lead (RR > 3 s left out as gaps).

    Args:
        ecg: ECG samples (mV); NaN allowed (interpolated).
        fs_hz: sampling rate in Hz.
        r_times_s: R-peak times in s (:func:`bprl.beats.ecg_peaks`).

    Returns:
        Feature name -> value, in the order of :data:`EXTRA_RHYTHM_FEATURE_NAMES`.
    """
    raw, _ = signal_fill_nan(np.asarray(ecg, dtype=np.float64))
    x = signal_bandpass(raw, fs_hz, 0.5, 40.0)
    r_s = np.asarray(r_times_s, dtype=np.float64)
    rr_ms = np.diff(r_s) * 1000.0
    feats = {
        **atrial_features(x, fs_hz, r_s),
        **rr_pattern_features(rr_ms[rr_ms <= 3000.0]),
        **template_noise_features(x, fs_hz, r_s),
    }
    return {k: float(feats[k]) for k in EXTRA_RHYTHM_FEATURE_NAMES}
