"""Cohort spec: the population and simulation settings of a virtual cohort, and their loading.

:class:`CohortSpec` is a :class:`bprl.config.Spec` (frozen: a cohort's settings never change
once made); :func:`load_spec` validates a mapping, a YAML file (a spec file or a cohort's own
``cohort.yaml``) or ``None`` with the same model and raises :class:`~bprl.errors.CohortError`
naming the file and each invalid field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from bprl.config import Spec, read_yaml
from bprl.errors import CohortError, ConfigError

__all__ = ["CohortSpec", "load_spec"]


class CohortSpec(Spec):
    """Population and simulation settings of a virtual cohort (YAML keys = field names).

    Every field has a documented default resembling an adult ICU (MIMIC) population;
    unknown keys or out-of-range values raise :class:`CohortError` naming the field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- population
    age_mean_years: float = Field(64.0, ge=18, le=95, description="mean age (MIMIC-IV adult ICU ~ 64)")
    age_sd_years: float = Field(15.0, ge=0, le=40, description="SD of age, clipped to 18-95")
    female_share: float = Field(0.44, ge=0, le=1, description="share of female subjects")
    hypertensive_share: float = Field(0.35, ge=0, le=1, description="share with baseline SBP ~ N(155, sd)")
    hypotensive_share: float = Field(0.12, ge=0, le=1, description="share with baseline SBP ~ N(96, sd)")
    sbp_normal_mean_mmhg: float = Field(122.0, ge=90, le=150, description="baseline SBP mean of the others")
    sbp_sd_mmhg: float = Field(9.0, ge=0, le=30, description="SD of baseline SBP within each group")
    hr_mean_bpm: float = Field(84.0, ge=40, le=140, description="mean baseline heart rate")
    hr_sd_bpm: float = Field(12.0, ge=0, le=30, description="SD of baseline heart rate")
    gamma_min_per_mmhg: float = Field(
        0.017, ge=0.005, le=0.06, description="Hughes gamma, lower bound (uniform)"
    )
    gamma_max_per_mmhg: float = Field(0.031, ge=0.005, le=0.06, description="Hughes gamma, upper bound")
    pep_mean_ms: float = Field(95.0, ge=40, le=160, description="mean baseline pre-ejection period")
    ectopic_subject_share: float = Field(
        0.3, ge=0, le=1, description="share of subjects with frequent ectopy"
    )
    ectopic_prob_min: float = Field(
        0.005,
        ge=0,
        le=0.5,
        description="per-beat probability of a ventricular ectopic beat in a subject with frequent ectopy: "
        "U(ectopic_prob_min, ectopic_prob_max); two in a row never occur, so 0.5 approaches bigeminy",
    )
    ectopic_prob_max: float = Field(
        0.03, ge=0, le=0.5, description="upper bound of that per-beat probability (see ectopic_prob_min)"
    )
    af_subject_share: float = Field(0.1, ge=0, le=1, description="share of subjects with paroxysmal AF")
    af_rate_per_h: float = Field(
        1.0, ge=0, le=20, description="AF episodes per hour in those subjects (x U(0.5, 2))"
    )
    # --- dynamics
    ou_tau_min: float = Field(40.0, gt=0, le=600, description="time constant of the slow BP drift (OU)")
    ou_sd_mmhg: float = Field(6.0, ge=0, le=30, description="stationary SD of the slow SBP drift")
    circadian_amp_mmhg: float = Field(5.0, ge=0, le=20, description="SBP amplitude of the 24-h cycle")
    sleep_dip_share: float = Field(0.10, ge=0, le=0.3, description="nocturnal dip (share of SBP) 23:00-06:30")
    pressor_rate_per_h: float = Field(0.25, ge=0, le=10, description="vasopressor / hypertensive episodes")
    hypotension_rate_per_h: float = Field(0.25, ge=0, le=10, description="hypotensive episodes")
    stress_rate_per_h: float = Field(0.6, ge=0, le=20, description="stress surges: tone, HR and BP up")
    tone_rate_per_h: float = Field(
        1.0, ge=0, le=20, description="sympathetic-only episodes: PEP, HR move, BP does not"
    )
    stiffness_drift_sd_per_h: float = Field(
        0.04, ge=0, le=0.5, description="SD per sqrt(h) of the random walk of ln E0"
    )
    # --- signals
    artefact_scale: float = Field(1.0, ge=0, le=10, description="multiplies every artefact rate")
    fs_ecg_hz: int = Field(250, ge=50, le=2000, description="ECG sampling rate")
    fs_ppg_hz: int = Field(125, ge=50, le=2000, description="PPG sampling rate")
    fs_abp_hz: int = Field(125, ge=50, le=2000, description="ABP sampling rate")
    # --- domain randomisation per record (bprl.cohort.domain; all off by default)
    ppg_delay_sd_ms: float = Field(
        0.0, ge=0, le=200, description="SD of a per-record constant PPG delay against ECG/ABP, ms"
    )
    fs_choices_hz: tuple[Annotated[int, Field(ge=50, le=2000)], ...] = Field(
        (), description="per record, one rate for all channels drawn from these (empty: fs_*_hz)"
    )
    ecg_invert_share: float = Field(0.0, ge=0, le=1, description="share of records with inverted ECG")
    amplitude_log_sd: float = Field(
        0.0, ge=0, le=2, description="SD of the log of per-record ECG and PPG amplitude gains"
    )
    noise_scale_range: tuple[float, float] = Field(
        (1.0, 1.0),
        description="per record, a uniform multiplier in this range of noise levels and ECG/PPG artefact rates",
    )
    # --- physiological events with feature precursors (bprl.cohort.events; all off by default)
    posture_rate_per_h: float = Field(
        0.0, ge=0, le=10, description="head-up / standing events: HR, PEP, PPG amplitude move first, SBP dips"
    )
    posture_delayed_fall_share: float = Field(
        0.5, ge=0, le=1, description="share of posture events with a delayed SBP fall 3-8 min upright"
    )
    exertion_rate_per_h: float = Field(
        0.0, ge=0, le=10, description="exertion bouts (3-10 min): HR and PEP lead, SBP follows"
    )
    vasopressor_bolus_rate_per_h: float = Field(
        0.0, ge=0, le=10, description="phenylephrine-like boluses: SBP up, baroreflex HR down, PPG smaller"
    )
    vasodilator_rate_per_h: float = Field(
        0.0, ge=0, le=10, description="nitroglycerin-like infusions: PPG reflection falls before SBP"
    )
    pep_ptt_dissociation_rate_per_h: float = Field(
        0.0, ge=0, le=10, description="BP episodes whose PTT change PEP cancels 50-100 % (PAT stays flat)"
    )
    ectopy_burst_rate_per_h: float = Field(
        0.0,
        ge=0,
        le=10,
        description="runs of frequent ventricular ectopy (2-15 min, 30-50 % per beat): PAT moves, BP not",
    )
    event_bp_scale: float = Field(
        1.0, gt=0, le=3, description="multiplies the BP change of every event above"
    )
    # --- virtual camera (bprl.cohort.video_subject; written only with make_cohort(video=True) / --video)
    video_fps_hz: float = Field(30.0, ge=5, le=120, description="virtual camera frame rate, frames/s")
    video_size_px: int = Field(64, ge=16, le=512, description="width = height of each skin-region clip, px")
    video_seconds: float | None = Field(
        None, gt=5, description="video length from the record start, s (None: the whole record)"
    )
    video_skin_types: tuple[Annotated[int, Field(ge=1, le=6)], ...] = Field(
        (1, 2, 3, 4, 5, 6), min_length=1, description="Fitzpatrick types drawn (uniformly) per subject"
    )
    video_pulse_green: float = Field(
        0.006, gt=0, le=0.05, description="relative pulsatile amplitude of the diffuse green reflectance"
    )
    video_brightness: float = Field(
        0.6, gt=0, le=1, description="diffuse red reflectance of type III skin (overall exposure)"
    )
    video_noise_dn: float = Field(2.0, ge=0, le=50, description="sensor noise SD per pixel at mid grey, DN")
    video_light_sd: float = Field(0.02, ge=0, le=0.5, description="SD of the slow log-illumination drift")
    video_light_steps_per_min: float = Field(0.5, ge=0, le=60, description="illumination steps per minute")
    video_motion_px: float = Field(0.5, ge=0, le=10, description="SD of the head translation, px")
    video_codec: Literal["MJPG", "mp4v"] = Field("MJPG", description="MJPG (.avi) or mp4v (.mp4)")
    video_jpeg_quality: int = Field(90, ge=10, le=100, description="MJPG JPEG quality")
    video_auto_exposure: bool = Field(True, description="auto-exposure gain sqrt(0.45 / luma), 1-4")
    split_train: float = Field(0.6, ge=0, le=1, description="share of subjects in the train split")
    split_val: float = Field(0.2, ge=0, le=1, description="share in the val split")
    split_test: float = Field(0.2, ge=0, le=1, description="share in the test split")

    @model_validator(mode="after")
    def _check(self) -> CohortSpec:
        if self.hypertensive_share + self.hypotensive_share > 1:
            raise ValueError("hypertensive_share + hypotensive_share must be <= 1")
        if self.gamma_min_per_mmhg > self.gamma_max_per_mmhg:
            raise ValueError("gamma_min_per_mmhg must be <= gamma_max_per_mmhg")
        if self.ectopic_prob_min > self.ectopic_prob_max:
            raise ValueError("ectopic_prob_min must be <= ectopic_prob_max")
        lo, hi = self.noise_scale_range
        if not 0 <= lo <= hi <= 10:
            raise ValueError("noise_scale_range must be (lo, hi) with 0 <= lo <= hi <= 10")
        if abs(self.split_train + self.split_val + self.split_test - 1.0) > 1e-6:
            raise ValueError("split_train + split_val + split_test must be 1")
        return self


def _spec_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The field mapping of a spec YAML file, or of the ``spec`` entry of a cohort's ``cohort.yaml``."""
    try:
        data = read_yaml(path)
    except ConfigError as exc:
        raise CohortError(str(exc)) from None
    if isinstance(data.get("spec"), dict):  # a cohort.yaml
        return data["spec"]
    return data


def load_spec(spec: CohortSpec | Mapping[str, Any] | str | os.PathLike[str] | None) -> CohortSpec:
    """A :class:`CohortSpec` from a spec, a mapping, a YAML file path, or ``None`` (defaults).

    Args:
        spec: a spec (returned as is), a mapping of field: value, the path of a YAML file
            of fields (or of a cohort's ``cohort.yaml``), or ``None``.

    Returns:
        the validated spec.

    Raises:
        CohortError: unreadable file, unknown field, or out-of-range value (the message names them).
    """
    if spec is None:
        return CohortSpec()
    if isinstance(spec, CohortSpec):
        return spec
    where = "cohort spec"
    if isinstance(spec, str | os.PathLike):
        where = str(spec)
        spec = _spec_mapping(spec)
    if not isinstance(spec, Mapping):
        raise CohortError(f"{where}: expected a mapping of field: value, got {type(spec).__name__}")
    try:
        return CohortSpec.model_validate(dict(spec))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(spec)"
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"field {field!r}: {msg}")
        raise CohortError(f"{where}: " + "; ".join(problems)) from None
