"""The settings of the beat pipeline and the replay-table windows: :class:`FeatureConfig`.

One validated model (a :class:`bprl.config.Spec`) serves Python keyword arguments
(``FeatureConfig(window_s=60)``, ``FeatureConfig(**mapping)``), the ``features`` section of an
experiment file and YAML files (``load_spec(FeatureConfig, "features.yaml")``). Unknown keys
and bad values are errors naming the field: :class:`bprl.errors.FeatureError` when the class is
called directly, :class:`bprl.errors.ConfigError` through :func:`bprl.config.load_spec`, and
pydantic's own error (naming ``features.<field>``) when the model is nested in another spec.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from bprl.config import Spec, format_validation_error
from bprl.errors import FeatureError

__all__ = ["FeatureConfig"]


class FeatureConfig(Spec):
    """Settings of the beat pipeline and the replay-table windows (immutable, hashable).

    Raises:
        FeatureError: on construction, naming each unknown key or invalid value
            (e.g. ``window_s: Input should be greater than 0``).
    """

    model_config = ConfigDict(frozen=True)

    window_s: float = Field(30.0, gt=0, description="window length of one replay step, s")
    hop_s: float = Field(30.0, gt=0, description="step between window starts, s")
    pat_min_ms: float = Field(100.0, gt=0, description="earliest PPG upstroke after the R peak, ms")
    pat_max_ms: float = Field(
        600.0, gt=0, description="latest PPG upstroke after the R peak, ms (greater than pat_min_ms)"
    )
    sqi_ecg_min: float = Field(
        0.6, ge=0, le=1, description="minimum ECG template correlation of a valid beat, 0..1"
    )
    sqi_ppg_min: float = Field(
        0.8, ge=0, le=1, description="minimum PPG template correlation of a valid beat, 0..1"
    )
    rr_tolerance: float = Field(
        0.25,
        ge=0,
        description="a beat whose RR differs from the local (9-beat) median RR by more than this "
        "fraction of it is ectopic (not valid for features)",
    )
    ectopic_gating: Literal["classes", "rr", "none"] = Field(
        "classes",
        description="beats left out of PAT / PPG features as ectopic: 'classes' (the default) = beats "
        "classed ventricular or supraventricular ectopic (bprl.beats.ecg_beat_classes) and the beat after "
        "each, needs rhythm: true; 'rr' = the RR rule (rr_tolerance); 'none' = no gating",
    )
    rhythm: bool = Field(
        True,
        description="compute the rhythm columns (AF share, ectopic share, QTc, PAT from the QRS onset): "
        "beat classes, AF detection and delineation of every record",
    )
    min_feature_beats: int = Field(
        3, ge=1, description="fewer qualifying beats in a window -> NaN features, beats"
    )
    min_ref_beats: int = Field(
        5, ge=1, description="fewer valid ABP beats in a window -> NaN reference, beats"
    )
    min_ref_share: float = Field(
        0.5, ge=0, le=1, description="smaller share of valid ABP beats in a window -> NaN reference, 0..1"
    )
    sbp_max_mmhg: float = Field(
        250.0, gt=0, description="ABP beats with a higher SBP are flush artefacts, mmHg"
    )
    dbp_min_mmhg: float = Field(20.0, ge=0, description="ABP beats with a lower DBP are rejected, mmHg")
    pp_min_mmhg: float = Field(
        10.0, ge=0, description="ABP beats with a smaller pulse pressure are damped (rejected), mmHg"
    )

    def __init__(self, /, **data: Any) -> None:
        """Validate ``data``; FeatureError (one line per invalid field) instead of pydantic's error."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise FeatureError(format_validation_error(exc, "FeatureConfig", "feature settings")) from None

    # pydantic calls a custom __init__ also for nested and model_validate validation, where its
    # own error must come through (load_spec and enclosing specs name the field from it); marked
    # as a base init, this one is used only when the class is called directly (as pydantic-settings does)
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @field_validator("pat_max_ms")
    @classmethod
    def _pat_window_not_empty(cls, value: float, info: ValidationInfo) -> float:
        """``pat_max_ms`` must lie after ``pat_min_ms`` (a non-empty PAT search window)."""
        pat_min_ms = info.data.get("pat_min_ms")
        if pat_min_ms is not None and not value > pat_min_ms:
            raise ValueError(f"must be greater than pat_min_ms ({pat_min_ms:g} ms), got {value:g} ms")
        return value

    @field_validator("rhythm")
    @classmethod
    def _classes_need_rhythm(cls, value: bool, info: ValidationInfo) -> bool:
        """``ectopic_gating: classes`` takes the beat classes from the rhythm columns."""
        if not value and info.data.get("ectopic_gating") == "classes":
            raise ValueError(
                "rhythm: false leaves no beat classes for ectopic_gating 'classes' (the default); "
                "set ectopic_gating: rr or none with it"
            )
        return value

    def key(self) -> str:
        """Stable hash (16 hex digits) of the field values (part of the replay-table cache key)."""
        blob = json.dumps(self.model_dump(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
