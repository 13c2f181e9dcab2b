"""ECG morphology and signal-quality features of a short single-lead record, from bprl's R peaks.

Beats are cut from the 0.5-40 Hz zero-phase band-passed ECG, -300..+450 ms around each R
peak (:func:`beat_matrix`); their sample-wise median is the **median beat** (template), turned
so that the R wave is positive. :func:`morphology_features` measures on it the QRS width, the
P wave (amplitude, how consistently each beat shows it, PR interval and its variability), the
T wave, the agreement of the single beats with the template (ectopic beats and noise lower it)
and the atrial activity left after subtracting the template (QRST cancellation: AF's
fibrillatory waves put 4-9 Hz power between the beats; Stridh & Sörnmo 2001).
:func:`signal_quality_features` describes the whole record's signal quality: kurtosis, the
spectral SQIs of Li et al. (2008) and Clifford et al. (2012), spectral entropy, clipping and
the plausibility of the detected beats. Everything is vectorised over beats (numpy / scipy).

References:
    Li Q, Mark RG, Clifford GD. Robust heart rate estimation from multiple asynchronous noisy
    sources using signal quality indices and a Kalman filter. Physiol Meas 29:15-32, 2008
    (kSQI, pSQI, basSQI).
    Clifford GD, Behar J, Li Q, Rezek I. Signal quality indices and data fusion for determining
    clinical acceptability of electrocardiograms. Physiol Meas 33:1419-1433, 2012.
    Stridh M, Sörnmo L. Spatiotemporal QRST cancellation techniques for analysis of atrial
    fibrillation. IEEE Trans Biomed Eng 48:105-111, 2001.
    Datta S, Puri C, Mukherjee A, et al. Identifying normal, AF and other abnormal ECG rhythms
    using a cascaded binary classifier. CinC 44, 2017 (P-wave and template features of a
    top-scoring CinC 2017 entry).
"""

from __future__ import annotations

import numpy as np
from scipy import signal, stats

from bprl.beats.filters import signal_bandpass, signal_fill_nan

__all__ = [
    "BEAT_AFTER_S",
    "BEAT_BEFORE_S",
    "MORPHOLOGY_FEATURE_NAMES",
    "QUALITY_FEATURE_NAMES",
    "beat_matrix",
    "morphology_features",
    "signal_quality_features",
]

#: Beat segment around each R peak, in s.
BEAT_BEFORE_S = 0.30
BEAT_AFTER_S = 0.45
_P_WINDOW_S = (-0.28, -0.07)  # where the P wave lies relative to R
_QRS_WINDOW_S = (-0.08, 0.08)

MORPHOLOGY_FEATURE_NAMES: tuple[str, ...] = (
    "n_template_beats",
    "r_amp_mv",
    "r_amp_cv",
    "qrs_width_ms",
    "s_amp_ratio",
    "t_amp_ratio",
    "t_peak_ms",
    "st_level_ratio",
    "p_amp_ratio",
    "p_beat_corr",
    "p_snr",
    "pr_ms",
    "pr_iqr_ms",
    "qrs_corr_median",
    "qrs_corr_p10",
    "frac_qrs_corr_below_0_8",
    "beat_corr_median",
    "residual_ratio",
    "atrial_power_ratio",
    "atrial_peak_share",
    "frac_premature_abnormal",
    "frac_premature_normal",
)
QUALITY_FEATURE_NAMES: tuple[str, ...] = (
    "kurtosis",
    "skewness",
    "psqi",
    "bas_sqi",
    "hf_ratio",
    "spectral_entropy",
    "ecg_peak_hz",
    "clip_fraction",
    "flat_fraction",
    "zero_cross_rate_hz",
    "rr_implausible_fraction",
    "beats_per_min_energy",
)


def polarised_template(beats: np.ndarray, r0: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The median template of ``beats`` (rows, R at column ``r0``), template and beats flipped so that
    the template's R deflection is positive; returns them with the sign applied (+1 / -1) and the R
    amplitude (the flipped template at ``r0``, or its peak-to-peak range where that is not positive).

    >>> tpl, _, sign, r_amp = polarised_template(-np.array([[0.5, 1.0, 0.25], [0.5, 3.0, 0.25]]), 1)
    >>> sign, r_amp, tpl.tolist()
    (-1.0, 2.0, [0.5, 2.0, 0.25])
    """
    tpl = np.median(beats, axis=0)
    sign = 1.0 if tpl[r0] >= 0 else -1.0
    tpl, beats = tpl * sign, beats * sign
    r_amp = float(tpl[r0]) if tpl[r0] > 0 else float(np.ptp(tpl))
    return tpl, beats, sign, r_amp


def beat_matrix(
    x: np.ndarray,
    fs_hz: float,
    r_times_s: np.ndarray,
    before_s: float = BEAT_BEFORE_S,
    after_s: float = BEAT_AFTER_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Beats of ``x`` cut ``-before_s..+after_s`` around each R peak (beats leaving the signal dropped).

    Args:
        x: 1-D samples (already filtered as wanted; no NaN).
        fs_hz: sampling rate in Hz.
        r_times_s: R-peak times in s.
        before_s: segment start before R, in s.
        after_s: segment end after R, in s.

    Returns:
        ``(beats, kept)``: a (beats, samples) array with R at column ``round(before_s * fs_hz)``,
        and the indices into ``r_times_s`` of the beats kept.
    """
    nb, na = round(before_s * fs_hz), round(after_s * fs_hz)
    r_idx = np.round(np.asarray(r_times_s, dtype=np.float64) * fs_hz).astype(np.int64)
    kept = np.flatnonzero((r_idx - nb >= 0) & (r_idx + na < len(x)))
    if len(kept) == 0:
        return np.zeros((0, nb + na + 1)), kept
    view = np.lib.stride_tricks.sliding_window_view(x, nb + na + 1)
    return np.array(view[r_idx[kept] - nb]), kept


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the vector ``b`` (0 for a flat row)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean()
    den = np.sqrt((a * a).sum(axis=1) * (b @ b))
    return np.divide(a @ b, den, out=np.zeros(len(a)), where=den > 0)


def _qrs_width_ms(tpl: np.ndarray, r0: int, fs_hz: float) -> float:
    """QRS width of the template: the run around R (within +-120 ms) where the squared slope,
    smoothed over 20 ms, stays above 2 % of its maximum (the smoothing bridges the slope zeros at
    the R and S extrema)."""
    w = round(0.12 * fs_hz)
    lo = max(r0 - w, 0)
    seg = tpl[lo : r0 + w + 1]
    k = max(1, round(0.02 * fs_hz))
    env = np.convolve((np.gradient(seg) * fs_hz) ** 2, np.ones(k) / k, mode="same")
    below = env < 0.02 * env.max()
    c = r0 - lo
    left = np.flatnonzero(below[:c])
    right = np.flatnonzero(below[c:])
    on = left[-1] + 1 if len(left) else 0
    off = c + right[0] - 1 if len(right) else len(seg) - 1
    return float((off - on) / fs_hz * 1000.0)


def morphology_features(ecg: np.ndarray, fs_hz: float, r_times_s: np.ndarray) -> dict[str, float]:
    """Median-beat morphology, P-wave presence and atrial activity of one ECG lead.

    * ``n_template_beats``: whole beats in the template; ``r_amp_mv``: template R amplitude
      (mV if the ECG is in mV); ``r_amp_cv``: CV of the single beats' R amplitudes.
    * ``qrs_width_ms``: span around R where the 20-ms smoothed squared slope of the template
      exceeds 2 % of its maximum (wide QRS: bundle-branch block, ventricular beats).
    * ``s_amp_ratio``: S trough (0-100 ms) over R; ``t_amp_ratio`` / ``t_peak_ms``: largest T
      deflection (150-450 ms, signed: an inverted T is negative) over R and its time after R;
      ``st_level_ratio``: mean template 80-120 ms after R minus the PR level (-60..-30 ms), over R.
    * P wave (window -280..-70 ms): ``p_amp_ratio`` peak-to-peak template amplitude over R;
      ``p_beat_corr`` median correlation of each beat's P window with the template's (sinus P
      waves repeat beat after beat, AF's fibrillatory waves do not); ``p_snr`` template P-window
      variance over the mean variance of the beats' residual there (averaging keeps a P wave and
      cancels f-waves); ``pr_ms`` R minus the template's P-window maximum; ``pr_iqr_ms`` IQR of
      the same per beat (PR variability).
    * ``qrs_corr_median`` / ``qrs_corr_p10`` / ``frac_qrs_corr_below_0_8``: correlation of each
      QRS (-80..+80 ms) with the template (ectopy and noise lower it); ``beat_corr_median``: the
      same over the whole segment; ``residual_ratio``: RMS of beats minus template over the
      template's RMS.
    * ``atrial_power_ratio`` / ``atrial_peak_share``: 4-9 Hz share of the QRST-cancelled
      record's 1-40 Hz power and the concentration of its 3-12 Hz power around the peak
      (fibrillatory waves: 4-9 Hz).
    * ``frac_premature_abnormal`` / ``frac_premature_normal``: share of beats premature (RR
      before < 0.85 x median) with a QRS correlation below / at least 0.8 (ventricular vs
      supraventricular ectopy).

    Args:
        ecg: ECG samples (mV); NaN allowed (interpolated).
        fs_hz: sampling rate in Hz.
        r_times_s: R-peak times in s (:func:`bprl.beats.ecg_peaks`).

    Returns:
        Feature name -> value, keyed by :data:`MORPHOLOGY_FEATURE_NAMES` (NaN with fewer than 3
        whole beats).
    """
    out = dict.fromkeys(MORPHOLOGY_FEATURE_NAMES, float("nan"))
    x = signal_bandpass(np.asarray(ecg, dtype=np.float64), fs_hz, 0.5, 40.0)
    r_s = np.asarray(r_times_s, dtype=np.float64)
    beats, kept = beat_matrix(x, fs_hz, r_s)
    out["n_template_beats"] = float(len(beats))
    if len(beats) < 3:
        return out
    r0 = round(BEAT_BEFORE_S * fs_hz)
    tpl, beats, sign, r_amp = polarised_template(beats, r0)
    if r_amp <= 0:
        return out
    out["r_amp_mv"] = r_amp
    rb = beats[:, r0]
    out["r_amp_cv"] = float(np.std(rb) / max(abs(np.mean(rb)), 1e-9))
    out["qrs_width_ms"] = _qrs_width_ms(tpl, r0, fs_hz)

    def cols(a_s: float, b_s: float) -> slice:
        return slice(r0 + round(a_s * fs_hz), r0 + round(b_s * fs_hz) + 1)

    out["s_amp_ratio"] = float(tpl[cols(0.0, 0.10)].min() / r_amp)
    t_seg = tpl[cols(0.15, BEAT_AFTER_S - 1.0 / fs_hz)] - np.median(tpl[cols(*_P_WINDOW_S)])
    k_t = int(np.argmax(np.abs(t_seg)))
    out["t_amp_ratio"] = float(t_seg[k_t] / r_amp)
    out["t_peak_ms"] = 150.0 + k_t / fs_hz * 1000.0
    pr_base = float(np.median(tpl[cols(-0.06, -0.03)]))
    out["st_level_ratio"] = float((np.mean(tpl[cols(0.08, 0.12)]) - pr_base) / r_amp)
    p = cols(*_P_WINDOW_S)
    p_tpl, p_beats = tpl[p], beats[:, p]
    out["p_amp_ratio"] = float(np.ptp(p_tpl) / r_amp)
    out["p_beat_corr"] = float(np.median(_row_corr(p_beats, p_tpl)))
    resid_p = p_beats - p_tpl
    out["p_snr"] = float(np.var(p_tpl) / max(np.mean(np.var(resid_p, axis=1)), 1e-12))
    p_off = _P_WINDOW_S[0] * 1000.0
    out["pr_ms"] = float(-(p_off + np.argmax(p_tpl) / fs_hz * 1000.0))
    pr_beats = -(p_off + np.argmax(p_beats, axis=1) / fs_hz * 1000.0)
    out["pr_iqr_ms"] = float(np.subtract(*np.percentile(pr_beats, [75, 25])))
    q = cols(*_QRS_WINDOW_S)
    qc = _row_corr(beats[:, q], tpl[q])
    out["qrs_corr_median"] = float(np.median(qc))
    out["qrs_corr_p10"] = float(np.percentile(qc, 10))
    out["frac_qrs_corr_below_0_8"] = float(np.mean(qc < 0.8))
    out["beat_corr_median"] = float(np.median(_row_corr(beats, tpl)))
    resid = beats - tpl
    out["residual_ratio"] = float(np.sqrt(np.mean(resid**2)) / max(np.sqrt(np.mean(tpl**2)), 1e-12))
    r_idx = np.round(r_s[kept] * fs_hz).astype(np.int64)
    out.update(_atrial_spectrum(x, fs_hz, r_idx, tpl, r0, sign))
    rr_before = np.full(len(kept), np.nan)
    rr_before[kept > 0] = (r_s[kept[kept > 0]] - r_s[kept[kept > 0] - 1]) * 1000.0
    out.update(_ectopy(rr_before, qc))
    return out


def _atrial_spectrum(
    x: np.ndarray, fs_hz: float, r_idx: np.ndarray, tpl: np.ndarray, r0: int, sign: float
) -> dict[str, float]:
    """Atrial activity after QRST cancellation of the whole record (Stridh & Sörnmo 2001, with one
    average template): the template from 60 ms before R to 70 % of the median RR after it
    (at most 450 ms) is subtracted at every beat, and the Welch spectrum (2-s Hann segments) of
    what is left gives the 4-9 Hz share of 1-40 Hz power and the share of 3-12 Hz power within
    +-1 Hz of the largest 3-12 Hz peak (organisation of the atrial activity)."""
    med_rr = float(np.median(np.diff(r_idx))) / fs_hz if len(r_idx) > 1 else 1.0
    a = r0 - round(0.06 * fs_hz)
    b = min(r0 + round(min(0.45, 0.7 * med_rr) * fs_hz), len(tpl))
    resid = x.copy()
    idx = (r_idx - r0)[:, None] + np.arange(a, b)[None, :]
    np.subtract.at(resid, idx.ravel(), np.tile(sign * tpl[a:b], len(r_idx)))
    f, p = signal.welch(resid, fs=fs_hz, nperseg=min(len(resid), int(2 * fs_hz)))
    total = p[(f >= 1.0) & (f <= 40.0)].sum()
    peak_band = (f >= 3.0) & (f <= 12.0)
    if total <= 0 or not peak_band.any():
        return {"atrial_power_ratio": float("nan"), "atrial_peak_share": float("nan")}
    f_peak = float(f[peak_band][np.argmax(p[peak_band])])
    near = peak_band & (np.abs(f - f_peak) <= 1.0)
    return {
        "atrial_power_ratio": float(p[(f >= 4.0) & (f <= 9.0)].sum() / total),
        "atrial_peak_share": float(p[near].sum() / max(p[peak_band].sum(), 1e-30)),
    }


def _ectopy(beats_rr: np.ndarray, qrs_corr: np.ndarray) -> dict[str, float]:
    """Premature beats with an abnormal QRS (ventricular ectopy) and premature ones with a normal QRS."""
    if len(beats_rr) < 3 or not np.isfinite(beats_rr).any():
        return {"frac_premature_abnormal": float("nan"), "frac_premature_normal": float("nan")}
    premature = beats_rr < 0.85 * np.nanmedian(beats_rr)
    return {
        "frac_premature_abnormal": float(np.mean(premature & (qrs_corr < 0.8))),
        "frac_premature_normal": float(np.mean(premature & (qrs_corr >= 0.8))),
    }


def _band_power(f: np.ndarray, p: np.ndarray, lo: float, hi: float) -> float:
    return float(p[(f >= lo) & (f < hi)].sum())


def signal_quality_features(ecg: np.ndarray, fs_hz: float, r_times_s: np.ndarray) -> dict[str, float]:
    """Signal-quality measures of one ECG lead (whole record).

    ``kurtosis`` / ``skewness`` of the 0.5-40 Hz ECG (kSQI: clean ECG is peaky, kurtosis > 5);
    ``psqi`` = power 5-15 Hz / 5-40 Hz (QRS share, Li et al. 2008); ``bas_sqi`` = 1 - power
    0-1 Hz / 0-40 Hz (baseline wander); ``hf_ratio`` = power above 40 Hz / total (muscle and
    mains noise; 0 when the Nyquist rate is below 40 Hz); ``spectral_entropy`` of the 0.5-40 Hz
    Welch spectrum (0..1); ``ecg_peak_hz`` its largest peak; ``clip_fraction`` = share of
    samples at the record's minimum or maximum (saturation); ``flat_fraction`` = share of 1-s
    blocks with an SD below 10 µV (lead off); ``zero_cross_rate_hz`` of the 0.5-40 Hz ECG;
    ``rr_implausible_fraction`` = share of RR intervals outside 0.25-2.0 s;
    ``beats_per_min_energy`` = detected beats per minute (the R-peak count, not the RR mean).

    Args:
        ecg: ECG samples (mV); NaN allowed (interpolated).
        fs_hz: sampling rate in Hz.
        r_times_s: R-peak times in s.

    Returns:
        Feature name -> value, keyed by :data:`QUALITY_FEATURE_NAMES`.
    """
    raw, _ = signal_fill_nan(np.asarray(ecg, dtype=np.float64))
    x = signal_bandpass(raw, fs_hz, 0.5, 40.0)
    dur_s = len(raw) / fs_hz
    f, p = signal.welch(raw - raw.mean(), fs=fs_hz, nperseg=min(len(raw), int(4 * fs_hz)))
    total = _band_power(f, p, 0.0, np.inf)
    b40 = _band_power(f, p, 0.0, 40.0)
    band = (f >= 0.5) & (f <= 40.0)
    pb = p[band] / max(p[band].sum(), 1e-30)
    blocks = raw[: int(dur_s) * int(fs_hz)].reshape(-1, int(fs_hz)) if dur_s >= 1 else raw[None, :]
    rr = np.diff(np.asarray(r_times_s, dtype=np.float64))
    lo, hi = raw.min(), raw.max()
    return {
        "kurtosis": float(stats.kurtosis(x)) if np.std(x) > 0 else float("nan"),
        "skewness": float(stats.skew(x)) if np.std(x) > 0 else float("nan"),
        "psqi": _band_power(f, p, 5.0, 15.0) / max(_band_power(f, p, 5.0, 40.0), 1e-30),
        "bas_sqi": 1.0 - _band_power(f, p, 0.0, 1.0) / max(b40, 1e-30),
        "hf_ratio": (total - b40) / max(total, 1e-30),
        "spectral_entropy": float(-np.sum(pb[pb > 0] * np.log(pb[pb > 0])) / np.log(max(len(pb), 2))),
        "ecg_peak_hz": float(f[band][np.argmax(p[band])]) if band.any() else float("nan"),
        "clip_fraction": float(np.mean((raw <= lo) | (raw >= hi))) if hi > lo else 1.0,
        "flat_fraction": float(np.mean(np.std(blocks, axis=1) < 0.01)),
        "zero_cross_rate_hz": float(np.sum(np.diff(np.signbit(x)) != 0) / dur_s),
        "rr_implausible_fraction": float(np.mean((rr < 0.25) | (rr > 2.0))) if len(rr) else float("nan"),
        "beats_per_min_energy": float(len(r_times_s) / dur_s * 60.0),
    }
