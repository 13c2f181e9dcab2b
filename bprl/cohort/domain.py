"""Domain randomisation of a virtual record: what differs between devices and patients, not physiology.

A population estimator trained on one simulated device learns that device. With the
``CohortSpec`` fields below set (all off by default, so default cohorts are unchanged), each
record draws, from its own stream ``default_rng([seed, i, 2])``:

- ``ppg_delay_ms`` ~ N(0, ``ppg_delay_sd_ms``): a constant delay of the written PPG against ECG
  and ABP (monitor filters and buffering; two MIMIC-IV segments of one patient differ by ~80 ms
  of PAT at unchanged BP). The measured PAT includes it; the truth table keeps the physiological
  PAT, the manifest the delay.
- ``fs_hz``: one sampling rate for all channels from ``fs_choices_hz`` (e.g. 125 / 250 / 500 Hz).
- ``ecg_inverted``: the ECG written with inverted polarity (another lead), with probability
  ``ecg_invert_share``.
- ``ecg_gain`` and ``ppg_gain`` ~ log-normal(0, ``amplitude_log_sd``): amplitude scales of the
  ECG and PPG (gain, perfusion, probe).
- ``noise_scale`` ~ U(``noise_scale_range``): multiplies the subject's white-noise levels and the
  rates of ECG/PPG artefact episodes (motion, dropout, low perfusion).

>>> from bprl.cohort.spec import CohortSpec
>>> spec = CohortSpec(ppg_delay_sd_ms=25.0, fs_choices_hz=[125, 250, 500])
>>> d = draw_domain(spec, seed=1, index=0)
>>> d.fs_hz in (125, 250, 500), d == draw_domain(spec, seed=1, index=0)
(True, True)
>>> draw_domain(CohortSpec(), 1, 0).is_identity
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from bprl.cohort.spec import CohortSpec
from bprl.cohort.subjects import SubjectParams

__all__ = ["DOMAIN_FIELDS", "RecordDomain", "apply_domain", "domain_params", "domain_spec", "draw_domain"]

#: the CohortSpec fields of domain randomisation
DOMAIN_FIELDS: tuple[str, ...] = (
    "ppg_delay_sd_ms",
    "fs_choices_hz",
    "ecg_invert_share",
    "amplitude_log_sd",
    "noise_scale_range",
)

#: subject parameters that ``noise_scale`` multiplies (white noise and ECG/PPG artefact rates)
NOISE_PARAMS: tuple[str, ...] = (
    "ecg_noise_mv",
    "ppg_noise_share",
    "motion_rate_per_h",
    "dropout_rate_per_h",
    "low_perfusion_rate_per_h",
)


@dataclass(frozen=True)
class RecordDomain:
    """The device and recording conditions drawn for one record (manifest columns of the same names)."""

    ppg_delay_ms: float = 0.0
    fs_hz: float | None = None
    ecg_inverted: bool = False
    ecg_gain: float = 1.0
    ppg_gain: float = 1.0
    noise_scale: float = 1.0

    @property
    def is_identity(self) -> bool:
        """Whether nothing is changed (the default spec)."""
        return self == RecordDomain()

    def row(self) -> dict[str, Any]:
        """Manifest columns (``fs_hz`` NaN when the spec's rates are kept)."""
        d = dataclasses.asdict(self)
        d["fs_hz"] = float("nan") if self.fs_hz is None else float(self.fs_hz)
        return d


def draw_domain(spec: CohortSpec, seed: int, index: int) -> RecordDomain:
    """The domain of record ``index`` of a cohort: identity unless the spec randomises it.

    Draws always happen in the same order from ``default_rng([seed, index, 2])``, a stream the
    simulation never touches, so turning one option on does not change the others' draws.
    """
    rng = np.random.default_rng([seed, index, 2])
    delay, u_fs, u_inv, g_ecg, g_ppg, u_noise = (
        rng.normal(),
        rng.random(),
        rng.random(),
        *rng.normal(size=2),
        rng.random(),
    )
    lo, hi = spec.noise_scale_range
    choices = spec.fs_choices_hz
    return RecordDomain(
        ppg_delay_ms=float(spec.ppg_delay_sd_ms * delay),
        fs_hz=float(choices[int(u_fs * len(choices))]) if choices else None,
        ecg_inverted=bool(u_inv < spec.ecg_invert_share),
        ecg_gain=float(np.exp(spec.amplitude_log_sd * g_ecg)),
        ppg_gain=float(np.exp(spec.amplitude_log_sd * g_ppg)),
        noise_scale=float(lo + (hi - lo) * u_noise),
    )


def domain_spec(spec: CohortSpec, domain: RecordDomain) -> CohortSpec:
    """The spec a record is simulated with: every channel at the drawn rate, if one was drawn."""
    if domain.fs_hz is None:
        return spec
    fs = int(domain.fs_hz)
    return spec.model_copy(update={"fs_ecg_hz": fs, "fs_ppg_hz": fs, "fs_abp_hz": fs})


def domain_params(params: SubjectParams, domain: RecordDomain) -> SubjectParams:
    """The subject's parameters with noise levels and artefact rates scaled by ``noise_scale``."""
    if domain.noise_scale == 1.0:
        return params
    return dataclasses.replace(params, **{k: getattr(params, k) * domain.noise_scale for k in NOISE_PARAMS})


def _delayed(x: np.ndarray, fs_hz: float, delay_ms: float) -> np.ndarray:
    """``x`` delayed by ``delay_ms`` (fractional samples by linear interpolation; edges held)."""
    t = np.arange(len(x), dtype=np.float64) - delay_ms * 1e-3 * fs_hz
    finite = np.isfinite(x)
    out = np.interp(t, np.flatnonzero(finite), x[finite]) if finite.any() else x.copy()
    # NaN gaps (dropouts) move with the signal
    gaps = np.interp(t, np.arange(len(x)), (~finite).astype(np.float64)) > 0
    out[gaps] = np.nan
    return out.astype(x.dtype, copy=False)


def apply_domain(
    waves: dict[str, tuple[np.ndarray, float]], domain: RecordDomain
) -> dict[str, tuple[np.ndarray, float]]:
    """The channels as the device writes them: PPG delayed, ECG inverted, gains applied.

    Args:
        waves: channel name -> (samples, fs_hz) with ``II`` (ECG) and ``Pleth`` (PPG).
        domain: the record's draws.

    Returns:
        a new mapping (the input is not changed).
    """
    out = dict(waves)
    ecg, fs_e = out["II"]
    out["II"] = (ecg * (-domain.ecg_gain if domain.ecg_inverted else domain.ecg_gain), fs_e)
    ppg, fs_p = out["Pleth"]
    if domain.ppg_delay_ms:
        ppg = _delayed(ppg, fs_p, domain.ppg_delay_ms)
    out["Pleth"] = (ppg * domain.ppg_gain, fs_p)
    return out
