"""RR-irregularity features of a stretch of RR intervals (a 30-s window, a short ECG record).

Every feature is a documented function of one 1-D array of RR intervals in ms (NaN and
non-positive values are dropped first) that returns a float (NaN when the stretch is too short
to define it); :func:`rr_irregularity_features` computes all of them, in the order of :data:`RR_FEATURE_NAMES`,
and is what the AF detector (:mod:`bprl.beats.af`) and the rhythm classifier
(:mod:`bprl.beats.rhythm_classes`) use. The code is vectorised numpy (sample entropy builds its
template distances in one broadcast: a few hundred beats at most).

Atrial fibrillation makes the ventricular rhythm *irregularly irregular*: successive RR
intervals become nearly independent draws from a wide distribution. The classical detectors
measure this with the normalised root mean square of successive differences, the turning-point
ratio and the Shannon entropy of the RR histogram (Dash et al. 2009), with sample entropy and its
AF-specific normalisation, the coefficient of sample entropy (Lake & Moorman 2011), or with the
share of large successive differences (pNNx, Mietus et al. 2002; ΔRR statistics, Tateno & Glass
2001). Isolated ectopic beats make sinus rhythm look irregular too: the median-based
("ectopic-robust") features below change little with a few premature beats, whereas AF moves
all of them.

References:
    Dash S, Chon KH, Lu S, Raeder EA. Automatic real time detection of atrial fibrillation.
    Ann Biomed Eng 37:1701-1709, 2009.
    Lake DE, Moorman JR. Accurate estimation of entropy in very short physiological time series:
    the problem of atrial fibrillation detection in implanted ventricular devices. Am J Physiol
    Heart Circ Physiol 300:H319-H325, 2011.
    Richman JS, Moorman JR. Physiological time-series analysis using approximate entropy and
    sample entropy. Am J Physiol Heart Circ Physiol 278:H2039-H2049, 2000.
    Mietus JE, Peng CK, Henry I, Goldsmith RL, Goldberger AL. The pNNx files: re-examining a
    widely used heart rate variability measure. Heart 88:378-380, 2002.
    Tateno K, Glass L. Automatic detection of atrial fibrillation using the coefficient of
    variation and density histograms of RR and ΔRR intervals. Med Biol Eng Comput 39:664-671, 2001.
    Brennan M, Palaniswami M, Kamen P. Do existing measures of Poincaré plot geometry reflect
    nonlinear features of heart rate variability? IEEE Trans Biomed Eng 48:1342-1347, 2001.
    Sarkar S, Ritscher D, Mehra R. A detector for a chronic implantable atrial tachyarrhythmia
    monitor. IEEE Trans Biomed Eng 55:1219-1224, 2008.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "RR_FEATURE_NAMES",
    "coefficient_of_sample_entropy",
    "ectopic_fraction",
    "fraction_drr_above",
    "lorenz_occupancy",
    "median_abs_drr_ratio",
    "nrmssd",
    "pnnx",
    "rmssd_ms",
    "rr_autocorrelation",
    "rr_irregularity_features",
    "rr_spread",
    "sample_entropy",
    "shannon_entropy_rr",
    "turning_point_ratio",
]


def _clean(rr_ms: np.ndarray) -> np.ndarray:
    """RR intervals as float64 with NaN and non-positive values dropped."""
    rr = np.asarray(rr_ms, dtype=np.float64).ravel()
    return rr[np.isfinite(rr) & (rr > 0)]


def rmssd_ms(rr_ms: np.ndarray) -> float:
    """Root mean square of successive RR differences, in ms (Task Force of the ESC/NASPE 1996).

    >>> rmssd_ms([800, 800, 800, 800])
    0.0
    >>> rmssd_ms([800, 900, 800, 900])
    100.0

    Args:
        rr_ms: RR intervals in ms.

    Returns:
        RMSSD in ms; NaN with fewer than 2 intervals.
    """
    rr = _clean(rr_ms)
    if len(rr) < 2:
        return float("nan")
    return float(np.sqrt(np.mean(np.diff(rr) ** 2)))


def nrmssd(rr_ms: np.ndarray) -> float:
    """RMSSD divided by the mean RR (dimensionless; Dash et al. 2009, their threshold 0.1).

    Normalising by the mean RR removes the dependence of RMSSD on heart rate.

    >>> round(nrmssd([800, 900, 800, 900]), 4)
    0.1176

    Args:
        rr_ms: RR intervals in ms.

    Returns:
        RMSSD / mean RR; NaN with fewer than 2 intervals.
    """
    rr = _clean(rr_ms)
    if len(rr) < 2:
        return float("nan")
    return rmssd_ms(rr) / float(np.mean(rr))


def turning_point_ratio(rr_ms: np.ndarray) -> float:
    """Share of interior RR intervals that are a local maximum or minimum (Dash et al. 2009).

    A turning point is an RR interval larger or smaller than both neighbours. For an i.i.d.
    series the expected ratio is 2/3 (SD sqrt((16 n - 29) / 90) / (n - 2)); a regular rhythm
    has few turning points, an alternating (bigeminal) one has ratio 1.

    >>> turning_point_ratio([800, 800, 800, 800])
    0.0
    >>> turning_point_ratio([800, 900, 800, 900, 800])
    1.0

    Args:
        rr_ms: RR intervals in ms.

    Returns:
        Turning points / (n - 2); NaN with fewer than 3 intervals.
    """
    rr = _clean(rr_ms)
    if len(rr) < 3:
        return float("nan")
    d = np.diff(rr)
    return float(np.mean(d[:-1] * d[1:] < 0))


def shannon_entropy_rr(rr_ms: np.ndarray, n_bins: int = 16, trim: float = 0.0625) -> float:
    """Shannon entropy of the RR histogram, normalised to 0..1 (Dash et al. 2009).

    Dash et al. drop the 8 shortest and 8 longest of 128 intervals (``trim`` = 8/128 at each
    end), histogram the rest into 16 equal bins between their minimum and maximum, and compute
    ``-sum(p log p) / log(16)``. A perfectly regular stretch (all in one bin) gives 0.

    >>> shannon_entropy_rr([800.0] * 20)
    0.0

    Args:
        rr_ms: RR intervals in ms.
        n_bins: number of histogram bins.
        trim: share of intervals dropped at each end (the shortest and the longest).

    Returns:
        Normalised entropy in 0..1; NaN with fewer than 4 intervals.
    """
    rr = np.sort(_clean(rr_ms))
    if len(rr) < 4:
        return float("nan")
    k = int(np.floor(trim * len(rr)))
    rr = rr[k : len(rr) - k]
    span = rr[-1] - rr[0]
    if span <= 0:
        return 0.0
    counts = np.bincount(np.minimum(((rr - rr[0]) / span * n_bins).astype(int), n_bins - 1), minlength=n_bins)
    p = counts[counts > 0] / len(rr)
    return float(-np.sum(p * np.log(p)) / np.log(n_bins))


def _match_counts(x: np.ndarray, m: int, r: float) -> tuple[int, int]:
    """Richman-Moorman pair counts ``(B, A)``: pairs of templates of length ``m`` and ``m + 1``
    (the first ``n - m`` templates in both cases, self-matches excluded) within Chebyshev
    distance ``r``."""
    n = len(x)
    emb = np.lib.stride_tricks.sliding_window_view(x, m + 1)  # (n - m, m + 1)
    dist = np.zeros((n - m, n - m))
    for j in range(m):
        np.maximum(dist, np.abs(emb[:, None, j] - emb[None, :, j]), out=dist)
    iu = _triu(n - m)
    close_m = dist[iu] <= r
    last = np.abs(emb[:, None, m] - emb[None, :, m])[iu]
    return int(close_m.sum()), int((close_m & (last <= r)).sum())


@lru_cache(maxsize=64)
def _triu(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(n, k=1)``, built once per size (read-only)."""
    iu = np.triu_indices(n, k=1)
    for a in iu:
        a.setflags(write=False)
    return iu


def sample_entropy(rr_ms: np.ndarray, m: int = 2, r: float = 0.2) -> float:
    """Sample entropy SampEn(m, r) = -ln(A / B) (Richman & Moorman 2000).

    ``B`` counts pairs of length-``m`` templates within Chebyshev distance ``r x SD(RR)``, ``A``
    the pairs that still match at length ``m + 1``. Low for a regular or periodic rhythm, high
    for AF.

    >>> sample_entropy([800, 900] * 10)
    0.0

    Args:
        rr_ms: RR intervals in ms.
        m: template length.
        r: tolerance as a fraction of the SD of the intervals.

    Returns:
        SampEn (dimensionless); NaN with fewer than ``m + 3`` intervals or when no pair matches
        at length ``m + 1`` (SampEn undefined); 0 for a constant series.
    """
    rr = _clean(rr_ms)
    if len(rr) < m + 3:
        return float("nan")
    sd = float(np.std(rr))
    if sd == 0:
        return 0.0
    b, a = _match_counts(rr, m, r * sd)
    return float(np.log(b / a)) if a > 0 else float("nan")


def coefficient_of_sample_entropy(
    rr_ms: np.ndarray,
    r_ms: float = 30.0,
    min_matches: int = 5,
    r_step_ms: float = 10.0,
    r_max_ms: float = 500.0,
) -> float:
    """Coefficient of sample entropy, COSEn (Lake & Moorman 2011).

    ``COSEn = SampEn(m = 1, r) + ln(2 r) - ln(mean RR)`` with ``r`` and the mean RR in the same
    unit: the quadratic sample entropy ``SampEn + ln(2 r)`` makes the value independent of the
    tolerance, and subtracting ``ln(mean RR)`` removes the effect of heart rate. ``r`` starts at
    30 ms and grows in 10-ms steps until at least ``min_matches`` (5, the paper's minimum
    numerator count) template pairs match at length 2. Lake & Moorman detect AF above -1.4 in
    12-beat segments; here it is computed over the whole stretch given.

    Args:
        rr_ms: RR intervals in ms.
        r_ms: initial tolerance in ms.
        min_matches: minimum number of length-2 matches (numerator count).
        r_step_ms: tolerance step in ms.
        r_max_ms: largest tolerance tried.

    Returns:
        COSEn (dimensionless); NaN with fewer than 4 intervals or when even ``r_max_ms`` gives
        fewer than ``min_matches`` matches.
    """
    rr = _clean(rr_ms)
    if len(rr) < 4:
        return float("nan")
    r = r_ms
    while r <= r_max_ms:
        b, a = _match_counts(rr, 1, r)
        if a >= min_matches:
            return float(-np.log(a / b) + np.log(2.0 * r) - np.log(np.mean(rr)))
        r += r_step_ms
    return float("nan")


def pnnx(rr_ms: np.ndarray, x_ms: float = 50.0) -> float:
    """Share of successive RR differences larger than ``x_ms`` (pNN50 for 50 ms; Mietus et al. 2002).

    >>> round(pnnx([800, 900, 800, 810]), 4)
    0.6667

    Args:
        rr_ms: RR intervals in ms.
        x_ms: threshold in ms.

    Returns:
        Share in 0..1; NaN with fewer than 2 intervals.
    """
    rr = _clean(rr_ms)
    if len(rr) < 2:
        return float("nan")
    return float(np.mean(np.abs(np.diff(rr)) > x_ms))


def fraction_drr_above(rr_ms: np.ndarray, threshold: float = 0.1) -> float:
    """Share of successive RR differences larger than ``threshold`` x the preceding RR.

    The relative version of pNNx (heart-rate independent), in the spirit of the ΔRR statistics of
    Tateno & Glass (2001).

    >>> round(fraction_drr_above([800, 900, 800, 810]), 4)
    0.6667

    Args:
        rr_ms: RR intervals in ms.
        threshold: relative threshold (0.1 = 10 % of the preceding interval).

    Returns:
        Share in 0..1; NaN with fewer than 2 intervals.
    """
    rr = _clean(rr_ms)
    if len(rr) < 2:
        return float("nan")
    return float(np.mean(np.abs(np.diff(rr)) > threshold * rr[:-1]))


def median_abs_drr_ratio(rr_ms: np.ndarray) -> float:
    """Median absolute successive RR difference divided by the median RR (ectopic-robust).

    One premature beat makes two large successive differences; the median of ``|ΔRR|`` ignores a
    few of them, whereas AF raises all of them (typically > 0.1 in AF, < 0.03 in sinus rhythm).

    >>> median_abs_drr_ratio([800] * 5 + [500, 1100] + [800] * 5)
    0.0

    Args:
        rr_ms: RR intervals in ms.

    Returns:
        median(|ΔRR|) / median(RR); NaN with fewer than 2 intervals.
    """
    rr = _clean(rr_ms)
    if len(rr) < 2:
        return float("nan")
    return float(np.median(np.abs(np.diff(rr))) / np.median(rr))


def rr_spread(rr_ms: np.ndarray, lo: float = 10.0, hi: float = 90.0) -> float:
    """Median-normalised spread of RR: (P``hi`` - P``lo``) / median RR.

    >>> rr_spread([800.0] * 10)
    0.0

    Args:
        rr_ms: RR intervals in ms.
        lo: lower percentile.
        hi: upper percentile.

    Returns:
        Spread / median (dimensionless); NaN with fewer than 3 intervals.
    """
    rr = _clean(rr_ms)
    if len(rr) < 3:
        return float("nan")
    p_lo, p_med, p_hi = np.percentile(rr, [lo, 50.0, hi])
    return float((p_hi - p_lo) / p_med)


def rr_autocorrelation(rr_ms: np.ndarray, lag: int = 1) -> float:
    """Autocorrelation of the RR series at ``lag`` beats.

    Near 0 in AF (successive intervals nearly independent), positive in sinus rhythm (slow
    modulation), strongly negative in bigeminy (short-long alternation).

    >>> round(rr_autocorrelation([800, 900] * 5), 4)
    -0.9

    Args:
        rr_ms: RR intervals in ms.
        lag: lag in beats.

    Returns:
        Autocorrelation in -1..1 (biased estimator: sum of lagged products / sum of squares);
        NaN with fewer than ``lag + 3`` intervals or a constant series.
    """
    rr = _clean(rr_ms)
    if len(rr) < lag + 3:
        return float("nan")
    x = rr - rr.mean()
    ss = float(np.dot(x, x))
    if ss == 0:
        return float("nan")
    return float(np.dot(x[:-lag], x[lag:]) / ss)


def lorenz_occupancy(rr_ms: np.ndarray, cell_ms: float = 40.0) -> float:
    """Share of distinct occupied cells in the ΔRR Lorenz plot (after Sarkar et al. 2008).

    Points ``(ΔRR_i, ΔRR_{i+1})`` are binned into square cells of ``cell_ms``; the number of
    distinct occupied cells outside the central cell, divided by the number of points. AF scatters
    the points over many cells (ratio near 1), sinus rhythm keeps them in the centre (near 0),
    and repeated ectopy revisits the same few cells. A simplification of Sarkar's AF evidence
    (which weighs 13 plot segments), not a re-implementation of it.

    >>> lorenz_occupancy([800.0] * 10)
    0.0

    Args:
        rr_ms: RR intervals in ms.
        cell_ms: cell size in ms.

    Returns:
        Occupied non-central cells / points in 0..1; NaN with fewer than 3 intervals.
    """
    rr = _clean(rr_ms)
    if len(rr) < 3:
        return float("nan")
    d = np.diff(rr)
    cells = np.round(np.stack([d[:-1], d[1:]], axis=1) / cell_ms).astype(np.int64)
    cells = cells[np.any(cells != 0, axis=1)]
    if len(cells) == 0:
        return 0.0
    n_cells = len(set(zip(cells[:, 0].tolist(), cells[:, 1].tolist(), strict=True)))  # distinct cells
    return float(n_cells / (len(d) - 1))


def ectopic_fraction(rr_ms: np.ndarray, premature: float = 0.85, pause: float = 1.1) -> float:
    """Share of beats that look premature: an RR below ``premature`` x the median followed by one
    above ``pause`` x the median (the short-long pattern of an ectopic beat with a compensatory
    pause).

    >>> round(ectopic_fraction([800, 800, 500, 1100, 800, 800, 800]), 4)
    0.1667

    Args:
        rr_ms: RR intervals in ms.
        premature: an interval below this share of the median RR is short.
        pause: an interval above this share of the median RR is long.

    Returns:
        Short-long pairs / (n - 1); NaN with fewer than 3 intervals.
    """
    rr = _clean(rr_ms)
    if len(rr) < 3:
        return float("nan")
    med = np.median(rr)
    pairs = (rr[:-1] < premature * med) & (rr[1:] > pause * med)
    return float(np.mean(pairs))


def _robust_nrmssd(rr: np.ndarray, med: np.floating | None = None) -> float:
    """nRMSSD after dropping successive differences that touch a short-long (ectopic) pair
    (``med``: ``np.median(rr)`` when the caller has it)."""
    if len(rr) < 4:
        return float("nan")
    med = np.median(rr) if med is None else med
    ect = np.zeros(len(rr), dtype=bool)
    pairs = np.flatnonzero((rr[:-1] < 0.85 * med) & (rr[1:] > 1.1 * med))
    ect[pairs] = True
    ect[pairs + 1] = True
    keep = ~(ect[:-1] | ect[1:])
    d = np.diff(rr)[keep]
    if len(d) < 2:
        return float("nan")
    return float(np.sqrt(np.mean(d**2)) / np.mean(rr))


def _sd1_sd2(rr: np.ndarray) -> float:
    """Poincaré SD1 / SD2 (Brennan et al. 2001): short- over long-term variability."""
    if len(rr) < 3:
        return float("nan")
    x, y = rr[:-1], rr[1:]
    sd1 = np.std((y - x) / np.sqrt(2.0))
    sd2 = np.std((y + x) / np.sqrt(2.0))
    return float(sd1 / sd2) if sd2 > 0 else float("nan")


def _hr_range_bpm(rr: np.ndarray, n_beats: int = 5) -> float:
    """Range of the heart rate averaged over ``n_beats`` consecutive beats (bpm): a tachycardia or a
    slowing inside the stretch."""
    if len(rr) < n_beats:
        return float("nan")
    hr = 60000.0 / np.convolve(rr, np.ones(n_beats) / n_beats, mode="valid")
    return float(hr.max() - hr.min())


#: Names of :func:`rr_irregularity_features`, in order.
RR_FEATURE_NAMES: tuple[str, ...] = (
    "hr_bpm",
    "cv_rr",
    "nrmssd",
    "nrmssd_robust",
    "tpr",
    "shannon_entropy",
    "sample_entropy",
    "cosen",
    "pnn50",
    "frac_drr_10pct",
    "frac_drr_20pct",
    "mad_drr_ratio",
    "rr_spread",
    "ac1",
    "ac2",
    "lorenz_occupancy",
    "sd1_sd2",
    "ectopic_fraction",
    "min_rr_ratio",
    "max_rr_ratio",
    "max_rr_ms",
    "hr_range_bpm",
)


def rr_irregularity_features(rr_ms: np.ndarray) -> dict[str, float]:
    """All RR-irregularity features of one stretch of RR intervals, keyed by :data:`RR_FEATURE_NAMES`.

    ``hr_bpm`` = 60000 / mean RR; ``cv_rr`` = SD / mean RR; ``nrmssd_robust`` = nRMSSD without the
    successive differences that touch a short-long (ectopic) pair; ``ac1``/``ac2`` the
    autocorrelation at lags 1 and 2; ``sd1_sd2`` the Poincaré ratio (Brennan et al. 2001);
    ``min_rr_ratio`` / ``max_rr_ratio`` the shortest / longest RR over the median;
    ``max_rr_ms`` the longest RR (a pause); ``hr_range_bpm`` the range of the 5-beat mean heart rate. The others
    are the functions of this module with their defaults (``sample_entropy`` with m = 2,
    r = 0.2 SD; ``frac_drr_*`` with thresholds of 10 and 20 %).

    Args:
        rr_ms: RR intervals in ms (NaN and non-positive values are dropped).

    Returns:
        Feature name -> value (NaN where undefined for this stretch).
    """
    rr = _clean(rr_ms)
    if len(rr) == 0:
        return dict.fromkeys(RR_FEATURE_NAMES, float("nan"))
    # the module's functions on the cleaned stretch, with their shared pieces (differences,
    # median, centred series) computed once: the same operations, so the same values
    n, nan = len(rr), float("nan")
    med_np = np.median(rr)
    mean, med = float(rr.mean()), float(med_np)
    d = np.diff(rr)
    ad = np.abs(d)
    x = rr - rr.mean()
    ss = float(np.dot(x, x))

    def ac(lag: int) -> float:
        return nan if n < lag + 3 or ss == 0 else float(np.dot(x[:-lag], x[lag:]) / ss)

    return {
        "hr_bpm": 60000.0 / mean,
        "cv_rr": float(rr.std() / mean),
        "nrmssd": float(np.sqrt(np.mean(d**2))) / mean if n >= 2 else nan,
        "nrmssd_robust": _robust_nrmssd(rr, med_np),
        "tpr": float(np.mean(d[:-1] * d[1:] < 0)) if n >= 3 else nan,
        "shannon_entropy": shannon_entropy_rr(rr),
        "sample_entropy": sample_entropy(rr),
        "cosen": coefficient_of_sample_entropy(rr),
        "pnn50": float(np.mean(ad > 50.0)) if n >= 2 else nan,
        "frac_drr_10pct": float(np.mean(ad > 0.1 * rr[:-1])) if n >= 2 else nan,
        "frac_drr_20pct": float(np.mean(ad > 0.2 * rr[:-1])) if n >= 2 else nan,
        "mad_drr_ratio": float(np.median(ad) / med_np) if n >= 2 else nan,
        "rr_spread": rr_spread(rr),
        "ac1": ac(1),
        "ac2": ac(2),
        "lorenz_occupancy": lorenz_occupancy(rr),
        "sd1_sd2": _sd1_sd2(rr),
        "ectopic_fraction": float(np.mean((rr[:-1] < 0.85 * med_np) & (rr[1:] > 1.1 * med_np)))
        if n >= 3
        else nan,
        "min_rr_ratio": float(rr.min() / med),
        "max_rr_ratio": float(rr.max() / med),
        "max_rr_ms": float(rr.max()),
        "hr_range_bpm": _hr_range_bpm(rr),
    }
