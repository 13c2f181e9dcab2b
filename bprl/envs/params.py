"""The numeric settings of a calibration environment: rewards, actions, episodes, recalibration.

:class:`EnvParams` is shared by :class:`~bprl.envs.calibration_env.BPCalibrationEnv` and
:class:`~bprl.envs.vector_env.BPCalibrationVectorEnv` (which validates through a template single
environment), so both accept exactly the same settings; :func:`params_dict` records an
environment's settings for provenance.

>>> EnvParams(recalibration="kalman").kalman_q_mmhg2_per_h
16.0
>>> EnvParams.checked(max_steps=0)
Traceback (most recent call last):
...
bprl.errors.ConfigError: max_steps: must be an integer >= 1 or null, got 0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from bprl.envs._validation import SettingsSpec
from bprl.envs.actions import ACTION_TYPES
from bprl.envs.rewards import check_reward
from bprl.errors import ConfigError

if TYPE_CHECKING:
    from bprl.envs.calibration_env import BPCalibrationEnv

__all__ = ["ACTION_TYPES", "RECALIBRATION_MODES", "START_MODES", "EnvParams", "params_dict"]

#: first step of an episode: ``zero`` (the record's start) or ``random`` (uniform in the record)
START_MODES: tuple[str, ...] = ("zero", "random")
#: how a successful cuff reading updates the offsets: "reset" sets them to the reading,
#: "kalman" moves them towards it by a scalar Kalman gain (see BPCalibrationEnv)
RECALIBRATION_MODES: tuple[str, ...] = ("reset", "kalman")


def _positive(default: float, description: str) -> Any:
    """A finite float field > 0."""
    return Field(default, gt=0, allow_inf_nan=False, strict=True, description=description)


class EnvParams(SettingsSpec):
    """Numeric settings shared by the single and the vector environment (see BPCalibrationEnv).

    ``EnvParams.checked(**kwargs)`` (what the environments use) raises
    :class:`~bprl.errors.ConfigError` naming the field for invalid values.
    """

    action_type: Literal["discrete", "continuous"] = Field(
        "discrete", description="discrete (Discrete(6), DQN) or continuous (Box(-1, 1, (5,)), PPO)"
    )
    reward: str = Field(
        "mae",
        description="reward: a built-in name (mae, squared, aami_band), 'module:function', or a "
        "name registered under the bprl.rewards entry-point group (see bprl.envs.rewards)",
    )
    reward_scale_mmhg: float = _positive(10.0, "error scale of the mae and squared rewards, mmHg")
    aami_band_mmhg: float = _positive(5.0, "half-width of the aami_band reward's band, mmHg")
    max_steps: int | None = Field(
        None, ge=1, strict=True, description="steps per episode; null: to the end of the record"
    )
    start: Literal["zero", "random"] = Field(
        "zero", description="first step: zero (start of the record) or random (uniform in the record)"
    )
    nudge_mmhg: float = _positive(2.0, "offset change of the discrete nudge actions, mmHg")
    max_offset_step_mmhg: float = _positive(5.0, "largest offset change of a continuous action, mmHg")
    max_gain_step: float = _positive(0.02, "largest gain change of a continuous action, factor")
    offset_limit_mmhg: float = _positive(80.0, "offsets are kept within +-this, mmHg")
    gain_min: float = _positive(0.5, "smallest gain, factor (<= 1)")
    gain_max: float = _positive(1.5, "largest gain, factor (>= 1)")
    recalibrate_on_cuff: bool = Field(
        True, description="a successful reading recalibrates the offsets (else it is only observed)"
    )
    recalibration: Literal["reset", "kalman"] = Field(
        "reset",
        description="reset: a reading sets the offsets to match it; kalman: a scalar Kalman update "
        "towards it (process noise kalman_q_mmhg2_per_h, measurement noise the cuff variance)",
    )
    kalman_q_mmhg2_per_h: float = Field(
        16.0,
        ge=0,
        allow_inf_nan=False,
        strict=True,
        description="process noise of the Kalman recalibration, mmHg^2 per hour",
    )

    @field_validator("reward")
    @classmethod
    def _known_reward(cls, value: str) -> str:
        """A built-in name, a ``module:function`` spec or a plugin name (the reason otherwise)."""
        try:
            return check_reward(value)
        except ConfigError as exc:  # pydantic reports ValueErrors with the field's location
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _gains_bracket_one(self) -> EnvParams:
        """``gain_min <= 1 <= gain_max`` (the initial gain is 1)."""
        if self.gain_min > 1.0 or self.gain_max < 1.0:
            raise ValueError(f"gain_min/gain_max: must bracket 1.0, got {self.gain_min}/{self.gain_max}")
        return self


def params_dict(env: BPCalibrationEnv) -> dict[str, Any]:
    """Settings of an environment as a plain dict (for provenance): EnvParams, cuff, features."""
    return {**env.params.model_dump(), "cuff": env.cuff.model_dump(), "features": list(env.data.features)}
