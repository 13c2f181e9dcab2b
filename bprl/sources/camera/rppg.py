"""rPPG algorithms: spatial-mean RGB traces -> a pulse signal, its heart rate and its quality.

Each algorithm takes an ``(N, 3)`` array of mean R, G, B per frame and the frame rate
``fs_hz`` and returns an ``(N,)`` pulse signal (band-passed 0.7-3.5 Hz, 42-210 bpm, unit
standard deviation, larger = more blood):

- :func:`rppg_green`: the green channel (Verkruysse, Svaasand & Nelson 2008, Opt. Express 16(26));
- :func:`rppg_chrom`: chrominance (de Haan & Jeanne 2013, IEEE TBME 60(10));
- :func:`rppg_pos`: plane orthogonal to skin (Wang, den Brinker, Stuijk & de Haan 2017, IEEE TBME 64(7));
- :func:`rppg_lgi`: local group invariance (Pilz, Zaunseder, Krajewski & Blazek 2018, CVPR-W);
- :func:`rppg_pbv`: blood-volume pulse signature (de Haan & van Leest 2014, Physiol. Meas. 35(9)).

CHROM, POS, LGI and PBV run on short windows (1.6 s, as in the POS paper) that are
normalised by their own mean (per-window temporal normalisation) and overlap-added with a
Hann window. Before any algorithm, :func:`suppress_steps` removes frame-to-frame brightness
jumps (a camera's exposure steps), which otherwise dominate dark clips.

Heart rate: :func:`hr_from_pulse` (harmonic-sum peak of a segment-normalised Welch spectrum), :func:`hr_over_time` (sliding windows);
quality: :func:`snr_db` (de Haan & Jeanne 2013: power around the peak and its first harmonic
against the rest of the band); fusion across regions and methods: :func:`fuse_spectra`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from scipy.signal import butter, sosfiltfilt, welch

#: pulse band in Hz (42-210 bpm)
BAND_HZ = (0.7, 3.5)
#: overlap-add window of the windowed methods, seconds (POS paper: 1.6 s at 20 fps)
WINDOW_S = 1.6
#: half-width of the peak and harmonic bins counted as signal by :func:`snr_db`, Hz
SNR_HALF_WIDTH_HZ = 0.1
#: a frame-to-frame change this many robust SDs above the median is a brightness step
STEP_K = 6.0
#: weight of the first harmonic in the harmonic-sum peak search of :func:`peak_hz`
HARMONIC_WEIGHT = 0.5


def bandpass(
    x: np.ndarray, fs_hz: float, band_hz: tuple[float, float] = BAND_HZ, order: int = 3
) -> np.ndarray:
    """Zero-phase Butterworth band-pass (``scipy.signal.sosfiltfilt``) along axis 0."""
    hi = min(band_hz[1], 0.45 * fs_hz)
    sos = butter(order, [band_hz[0], hi], btype="bandpass", fs=fs_hz, output="sos")
    x = np.asarray(x, dtype=np.float64)
    padlen = min(3 * (2 * len(sos) + 1) * 2, len(x) - 1)
    return sosfiltfilt(sos, x, axis=0, padlen=padlen)


def _unit(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation (zeros stay zeros)."""
    x = x - x.mean()
    sd = x.std()
    return x / sd if sd > 0 else x


def suppress_steps(rgb: np.ndarray, k: float = STEP_K) -> np.ndarray:
    """Remove sudden brightness steps from an RGB trace.

    Frame-to-frame differences of the log brightness (sum of channels) that exceed ``k``
    robust standard deviations (1.4826 x MAD) are steps (auto-exposure, frame drops): each
    channel's difference at those frames is replaced by zero and the trace re-integrated
    (in the log domain, so steps are removed as gain changes). A simple, general choice:
    the threshold was not tuned on ground truth.

    Args:
        rgb: (N, 3) mean R, G, B per frame (positive).
        k: threshold in robust SDs.

    Returns:
        (N, 3) trace with the steps removed, same scale as the first frame.
    """
    x = np.log(np.maximum(np.asarray(rgb, dtype=np.float64), 1e-3))
    d = np.diff(x, axis=0)
    lum = np.diff(np.log(np.maximum(np.asarray(rgb, dtype=np.float64).sum(axis=1), 1e-3)))
    med = np.median(lum)
    mad = 1.4826 * np.median(np.abs(lum - med))
    if not mad > 0:
        return np.asarray(rgb, dtype=np.float64)
    steps = np.abs(lum - med) > k * mad
    d[steps] = 0.0
    return np.exp(np.vstack([x[:1], x[:1] + np.cumsum(d, axis=0)]))


def _overlap_add(
    rgb: np.ndarray, fs_hz: float, window_s: float, project: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Run ``project`` on mean-normalised windows of ``rgb`` and overlap-add with a Hann window (half overlap)."""
    n = len(rgb)
    w = max(round(window_s * fs_hz), 4)
    out = np.zeros(n)
    if n < w:
        w = n
    hann = np.hanning(w + 2)[1:-1]
    step = max(w // 2, 1)
    starts = list(range(0, n - w + 1, step))
    if starts[-1] != n - w:
        starts.append(n - w)
    for s in starts:
        c = rgb[s : s + w]
        cn = c / np.maximum(c.mean(axis=0), 1e-9)
        h = project(cn)
        sd = h.std()
        if sd > 0:
            out[s : s + w] += hann * (h - h.mean()) / sd
    return out


def _prepare(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim != 2 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must be (N, 3), got {rgb.shape}")
    return suppress_steps(rgb)


def rppg_green(rgb: np.ndarray, fs_hz: float) -> np.ndarray:
    """GREEN (Verkruysse et al. 2008): the negated, mean-normalised green channel, band-passed.

    Blood absorbs green light, so reflected green falls as blood volume rises; the sign is
    flipped so that the pulse rises with blood volume.
    """
    g = _prepare(rgb)[:, 1]
    return _unit(bandpass(-(g / g.mean() - 1.0), fs_hz))


def _chrom_window(cn: np.ndarray) -> np.ndarray:
    x = 3.0 * cn[:, 0] - 2.0 * cn[:, 1]
    y = 1.5 * cn[:, 0] + cn[:, 1] - 1.5 * cn[:, 2]
    sy = y.std()
    return x - (x.std() / sy if sy > 0 else 0.0) * y


def rppg_chrom(rgb: np.ndarray, fs_hz: float, window_s: float = WINDOW_S) -> np.ndarray:
    """CHROM (de Haan & Jeanne 2013): ``X = 3R - 2G``, ``Y = 1.5R + G - 1.5B`` (normalised
    channels), pulse ``X - (sd X / sd Y) Y`` per window, Hann overlap-add, band-pass."""
    return _unit(bandpass(_overlap_add(_prepare(rgb), fs_hz, window_s, _chrom_window), fs_hz))


def _pos_window(cn: np.ndarray) -> np.ndarray:
    s1 = cn[:, 1] - cn[:, 2]
    s2 = -2.0 * cn[:, 0] + cn[:, 1] + cn[:, 2]
    sd2 = s2.std()
    return -(s1 + (s1.std() / sd2 if sd2 > 0 else 0.0) * s2)  # S1 = G - B falls as blood rises


def rppg_pos(rgb: np.ndarray, fs_hz: float, window_s: float = WINDOW_S) -> np.ndarray:
    """POS (Wang et al. 2017, Algorithm 1): project normalised RGB onto ``[0, 1, -1]`` and
    ``[-2, 1, 1]``, tune ``h = S1 + (sd S1 / sd S2) S2`` per window, Hann overlap-add, band-pass.
    Sign: ``-h``, so the pulse rises with blood volume (``S1 = G - B`` falls when blood absorbs green)."""
    return _unit(bandpass(_overlap_add(_prepare(rgb), fs_hz, window_s, _pos_window), fs_hz))


def _lgi_window(cn: np.ndarray) -> np.ndarray:
    c = cn.T  # 3 x w
    u, _, _ = np.linalg.svd(c, full_matrices=False)
    s = u[:, :1]
    p = np.eye(3) - s @ s.T
    return -(p @ c)[1]  # the green residual falls as blood rises


def rppg_lgi(rgb: np.ndarray, fs_hz: float, window_s: float = WINDOW_S) -> np.ndarray:
    """LGI (Pilz et al. 2018): remove the first singular direction of the RGB window (the
    common, illumination-like component) by ``P = I - s s^T``; the pulse is the second
    (green) row of ``P C``, negated so the pulse rises with blood volume. Windows are
    overlap-added, then band-passed."""
    return _unit(bandpass(_overlap_add(_prepare(rgb), fs_hz, window_s, _lgi_window), fs_hz))


def _pbv_window(cn: np.ndarray) -> np.ndarray:
    c = (cn - cn.mean(axis=0)).T  # 3 x w, zero mean
    sd = c.std(axis=1)
    norm = np.sqrt((sd**2).sum())
    if not norm > 0:
        return np.zeros(cn.shape[0])
    pbv = sd / norm
    q = c @ c.T + 1e-12 * np.eye(3)
    w = np.linalg.solve(q, pbv)
    return -(c.T @ w) / max(float(pbv @ w), 1e-12)


def rppg_pbv(rgb: np.ndarray, fs_hz: float, window_s: float = WINDOW_S) -> np.ndarray:
    """PBV (de Haan & van Leest 2014): the pulse is the projection ``C^T Q^-1 Pbv`` that best
    matches the blood-volume signature ``Pbv`` (here estimated per window from the
    normalised channel standard deviations, as in the rPPG-Toolbox/pyVHR implementations),
    ``Q = C C^T``; overlap-added, band-passed. Sign: flipped so the pulse rises with blood."""
    return _unit(bandpass(_overlap_add(_prepare(rgb), fs_hz, window_s, _pbv_window), fs_hz))


#: algorithms by name
METHODS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "green": rppg_green,
    "chrom": rppg_chrom,
    "pos": rppg_pos,
    "lgi": rppg_lgi,
    "pbv": rppg_pbv,
}


def pulse_spectrum(
    pulse: np.ndarray, fs_hz: float, segment_s: float = 12.0, normalise_segments: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Welch-type power spectrum: Hann segments of ``segment_s``, half overlap, zero-padded to ~0.01 Hz bins.

    With ``normalise_segments`` each segment's periodogram is scaled to unit power in the
    pulse band before averaging, so that a few segments with motion or brightness
    artefacts do not outweigh the rest (a robust variant of Welch's average).

    Returns:
        ``(f_hz, power)``.
    """
    x = np.asarray(pulse, dtype=np.float64)
    nper = int(min(len(x), max(round(segment_s * fs_hz), 8)))
    nfft = max(int(2 ** np.ceil(np.log2(fs_hz / 0.01))), nper)
    if not normalise_segments:
        return welch(x, fs=fs_hz, nperseg=nper, noverlap=nper // 2, nfft=nfft, detrend="constant")
    f = np.fft.rfftfreq(nfft, 1.0 / fs_hz)
    band = (f >= BAND_HZ[0]) & (f <= BAND_HZ[1])
    win = np.hanning(nper)
    step = max(nper // 2, 1)
    total = np.zeros(len(f))
    for s in range(0, len(x) - nper + 1, step):
        seg = x[s : s + nper]
        p = np.abs(np.fft.rfft((seg - seg.mean()) * win, nfft)) ** 2
        tot = p[band].sum()
        if tot > 0:
            total += p / tot
    return f, total


def snr_db(
    f_hz: np.ndarray, power: np.ndarray, f0_hz: float, band_hz: tuple[float, float] = BAND_HZ
) -> float:
    """Signal-quality index: SNR in dB of a pulse spectrum (de Haan & Jeanne 2013, eq. 12).

    Signal: power within ``SNR_HALF_WIDTH_HZ`` of ``f0_hz`` and of ``2 f0_hz``; noise: the
    rest of the band (``band_hz`` widened to include the harmonic, up to Nyquist).
    """
    hi = min(max(band_hz[1], 2 * f0_hz + 0.2), f_hz[-1])
    inband = (f_hz >= band_hz[0]) & (f_hz <= hi)
    sig = inband & (
        (np.abs(f_hz - f0_hz) <= SNR_HALF_WIDTH_HZ) | (np.abs(f_hz - 2 * f0_hz) <= SNR_HALF_WIDTH_HZ)
    )
    s, n = float(power[sig].sum()), float(power[inband & ~sig].sum())
    if s <= 0:
        return float("-inf")
    return float(10 * np.log10(s / n)) if n > 0 else float("inf")


def peak_hz(
    f_hz: np.ndarray,
    power: np.ndarray,
    band_hz: tuple[float, float] = BAND_HZ,
    harmonic_weight: float = HARMONIC_WEIGHT,
) -> float:
    """Pulse frequency: the maximum inside ``band_hz`` of the harmonic sum ``P(f) + w P(2f)``.

    A cardiac pulse has a strong first harmonic, most artefacts (compression, flicker,
    noise peaks) do not; summing the spectrum at twice the frequency (harmonic sum,
    as in pitch detection: Hermes 1988, JASA 83(1)) favours the true fundamental.
    ``harmonic_weight=0`` gives the plain spectral peak.
    """
    m = (f_hz >= band_hz[0]) & (f_hz <= band_hz[1])
    score = power + harmonic_weight * np.interp(2.0 * f_hz, f_hz, power, right=0.0)
    return float(f_hz[m][np.argmax(score[m])])


def hr_from_pulse(pulse: np.ndarray, fs_hz: float, segment_s: float = 12.0) -> tuple[float, float]:
    """Mean heart rate of a pulse signal: harmonic-sum peak (:func:`peak_hz`) of :func:`pulse_spectrum` in 0.7-3.5 Hz.

    Returns:
        ``(hr_bpm, snr_db)``.
    """
    f, p = pulse_spectrum(pulse, fs_hz, segment_s)
    f0 = peak_hz(f, p)
    return 60.0 * f0, snr_db(f, p, f0)


def hr_over_time(
    pulse: np.ndarray, fs_hz: float, window_s: float = 10.0, step_s: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heart rate in sliding windows (periodogram peak of each Hann window).

    Returns:
        ``(t_s, hr_bpm, snr_db)``: window centres in seconds, heart rate and SNR per window.
    """
    x = np.asarray(pulse, dtype=np.float64)
    w = round(window_s * fs_hz)
    step = max(round(step_s * fs_hz), 1)
    ts, hrs, snrs = [], [], []
    for s in range(0, max(len(x) - w, 0) + 1, step):
        seg = x[s : s + w]
        if len(seg) < 8:
            break
        f, p = pulse_spectrum(seg, fs_hz, segment_s=window_s)
        f0 = peak_hz(f, p)
        ts.append((s + len(seg) / 2) / fs_hz)
        hrs.append(60.0 * f0)
        snrs.append(snr_db(f, p, f0))
    return np.asarray(ts), np.asarray(hrs), np.asarray(snrs)


def fuse_spectra(
    pulses: Mapping[str, np.ndarray], fs_hz: float, segment_s: float = 12.0
) -> tuple[float, float, dict[str, float]]:
    """Quality-weighted spectral fusion of several pulse signals (regions and/or methods).

    Each Welch spectrum is normalised to unit power in the band and weighted by its linear
    SNR (:func:`snr_db` at its own peak, floored at 0); the heart rate is the peak of the
    weighted mean spectrum. A spectral rather than time-domain average, so signals of
    different sign or delay add up.

    Returns:
        ``(hr_bpm, snr_db of the fused spectrum, {name: weight})`` (weights sum to 1).
    """
    spectra, weights = [], {}
    f = np.zeros(0)
    for name, x in pulses.items():
        f, p = pulse_spectrum(x, fs_hz, segment_s)
        m = (f >= BAND_HZ[0]) & (f <= BAND_HZ[1])
        tot = p[m].sum()
        if not tot > 0:
            continue
        q = snr_db(f, p, peak_hz(f, p))
        weights[name] = max(10 ** (q / 10), 0.0) if np.isfinite(q) else 0.0
        spectra.append((name, p / tot))
    total = sum(weights.values())
    if not spectra or total <= 0:
        return float("nan"), float("-inf"), {}
    fused = sum(weights[n] * p for n, p in spectra) / total
    f0 = peak_hz(f, fused)
    return 60.0 * f0, snr_db(f, fused, f0), {n: w / total for n, w in weights.items()}


def fuse_signals(pulses: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Time-domain fusion for the PPG channel: weighted sum of unit-SD pulses, each sign-aligned
    to the highest-weight one (correlation sign), then rescaled to unit SD."""
    names = [n for n in pulses if weights.get(n, 0) > 0]
    if not names:
        names = list(pulses)
        weights = {n: 1.0 for n in names}
    ref = _unit(pulses[max(names, key=lambda n: weights[n])])
    out = np.zeros_like(ref)
    for n in names:
        x = _unit(pulses[n])
        sign = 1.0 if float(np.dot(x, ref)) >= 0 else -1.0
        out += weights[n] * sign * x
    return _unit(out)
