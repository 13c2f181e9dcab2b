"""The classical calibration rules: none, one-shot, periodic, PAT/HR drift, Kalman bias tracker.

These are the baselines a learned policy must beat at the same cuff rate. Each reads only the
observation (decoded with :func:`bprl.env.decode_obs`) and implements
:meth:`bprl.policies.base.Calibrator.decide`; the base class makes the action. The oracle, an upper
bound that reads the reference, lives apart in :mod:`bprl.policies.oracle`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from bprl.errors import ConfigError
from bprl.policies.base import Calibrator

__all__ = [
    "DriftCalibrator",
    "KalmanCalibrator",
    "NoCalibration",
    "OneShotCalibrator",
    "PeriodicCalibrator",
]


class NoCalibration(Calibrator):
    """Never calibrates: the raw population estimate (offset 0, gain 1) throughout."""

    name = "none"
    needs_cuff = False

    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Never request, never move the offsets."""
        return np.zeros(s["has_cuff"].shape, bool), None


class OneShotCalibrator(Calibrator):
    """One cuff reading at the start of the episode, then hold that calibration.

    Retries on the next steps while the reading failed (no arterial reference), up to
    ``max_attempts`` requests.
    """

    name = "one_shot"

    def __init__(self, max_attempts: int = 3, **kw: Any) -> None:
        """``max_attempts``: cuff requests allowed until the first successful reading."""
        super().__init__(**kw)
        if int(max_attempts) < 1:
            raise ConfigError(f"max_attempts: must be >= 1, got {max_attempts!r}")
        self.max_attempts = int(max_attempts)

    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Request while no reading succeeded and attempts remain."""
        req = (s["has_cuff"] < 0.5) & (np.round(s["cuffs_used"]) < self.max_attempts)
        return req, None


class PeriodicCalibrator(Calibrator):
    """Cuff reading at the start and then every ``period_min`` minutes (recalibrating the offset each time).

    A failed reading (no reference) is retried at the next step, since the period counts from the
    last successful reading. Over a record of D minutes with readings succeeding it takes
    ``ceil(D_steps * step_min / period_min)`` readings.

    The rule on three environments' decoded observations (no reading yet; a reading 6 min ago;
    one 30 min ago):

    >>> import numpy as np
    >>> s = {"has_cuff": np.array([0.0, 1.0, 1.0]), "since_cuff_h": np.array([0.0, 0.1, 0.5])}
    >>> request, wanted = PeriodicCalibrator(period_min=15).decide(s, np.zeros((3, 0)))
    >>> request.tolist(), wanted
    ([True, False, True], None)
    """

    name = "periodic"

    def __init__(self, period_min: float = 30.0, **kw: Any) -> None:
        """``period_min``: minutes between readings (at most 600, the observation's clip of 10 h)."""
        super().__init__(**kw)
        if not 0 < float(period_min) <= 600:
            raise ConfigError(f"period_min: must be in (0, 600], got {period_min!r}")
        self.period_min = float(period_min)

    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Request when no reading yet or the period since the last one has elapsed."""
        # time since last reading is measured at the end of the current window; 1 s slack for float32
        due = s["since_cuff_h"] * 60.0 >= self.period_min - 1.0 / 60.0
        return (s["has_cuff"] < 0.5) | due, None


class DriftCalibrator(Calibrator):
    """Recalibrate when PAT or HR moved more than a threshold since the last reading.

    A first reading at the start; then a reading when ``|dPAT| > pat_threshold_ms`` or
    ``|dHR| > hr_threshold_bpm`` (since the last reading), but not sooner than ``min_interval_min``
    after it, and at the latest after ``max_interval_min`` (None: never forced).
    """

    name = "drift"

    def __init__(
        self,
        pat_threshold_ms: float = 8.0,
        hr_threshold_bpm: float = 10.0,
        min_interval_min: float = 5.0,
        max_interval_min: float | None = None,
        **kw: Any,
    ) -> None:
        """Thresholds on PAT (ms) and HR (bpm) change; minimum / maximum interval in minutes."""
        super().__init__(**kw)
        if pat_threshold_ms <= 0 or hr_threshold_bpm <= 0 or min_interval_min < 0:
            raise ConfigError("pat_threshold_ms and hr_threshold_bpm must be > 0, min_interval_min >= 0")
        self.pat_threshold_ms = float(pat_threshold_ms)
        self.hr_threshold_bpm = float(hr_threshold_bpm)
        self.min_interval_min = float(min_interval_min)
        self.max_interval_min = None if max_interval_min is None else float(max_interval_min)

    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Request at the start and on drift beyond the thresholds."""
        since_min = s["since_cuff_h"] * 60.0
        moved = (np.abs(s["dpat_ms"]) > self.pat_threshold_ms) | (
            np.abs(s["dhr_bpm"]) > self.hr_threshold_bpm
        )
        req = moved & (since_min >= self.min_interval_min)
        if self.max_interval_min is not None:
            req |= since_min >= self.max_interval_min - 1.0 / 60.0
        return (s["has_cuff"] < 0.5) | req, None


class KalmanCalibrator(Calibrator):
    """Kalman-filter tracker of the estimator's bias (SBP and DBP independently).

    State per BP: bias estimate ``b`` (mmHg) and variance ``P``. The bias follows a random walk whose
    variance grows by ``q_mmhg2_per_h`` per hour plus ``q_pat_mmhg2_per_ms2`` per squared ms of PAT
    change since the last reading (PAT drift signals BP changes the population model may misread).
    Each cuff reading is a measurement ``z = reading - estimate`` with noise variance
    ``cuff_sd_mmhg^2`` (default: the env's cuff model SDs, 5 / 4 mmHg, adopted by ``rollout``): ``K = P / (P + R)``,
    ``b += K (z - b)``, ``P *= 1 - K``. The offset is steered to ``b``. A reading is requested when
    the predicted SBP bias SD exceeds ``request_sd_mmhg`` (and at the start, where ``P = prior_sd^2``),
    at most every ``min_interval_min`` minutes.

    Recurrent state (per environment): ``[b_sbp, b_dbp, P_sbp, P_dbp, t_last_h, started]`` with
    ``P`` the posterior variance at the last reading, ``t_last_h`` its time (hours since start).
    """

    name = "kalman"
    state_size = 6

    def __init__(
        self,
        q_mmhg2_per_h: float = 16.0,
        q_pat_mmhg2_per_ms2: float = 0.25,
        cuff_sd_mmhg: Sequence[float] | None = None,
        prior_sd_mmhg: float = 15.0,
        request_sd_mmhg: float = 6.0,
        min_interval_min: float = 5.0,
        **kw: Any,
    ) -> None:
        """Process noise (per hour and per ms^2 of PAT change), cuff noise, prior and request threshold."""
        super().__init__(**kw)
        if q_mmhg2_per_h < 0 or q_pat_mmhg2_per_ms2 < 0 or prior_sd_mmhg <= 0 or request_sd_mmhg <= 0:
            raise ConfigError("kalman: q_* must be >= 0, prior_sd_mmhg and request_sd_mmhg > 0")
        self._cuff_sd_given = cuff_sd_mmhg is not None
        r = np.asarray((5.0, 4.0) if cuff_sd_mmhg is None else cuff_sd_mmhg, dtype=np.float64).reshape(-1)
        if r.shape != (2,) or (r <= 0).any():
            raise ConfigError(f"cuff_sd_mmhg: expected two SDs > 0 (SBP, DBP), got {cuff_sd_mmhg!r}")
        self.q_h = float(q_mmhg2_per_h)
        self.q_pat = float(q_pat_mmhg2_per_ms2)
        self.r = r * r
        self.prior_var = float(prior_sd_mmhg) ** 2
        self.request_sd = float(request_sd_mmhg)
        self.min_interval_min = float(min_interval_min)

    def configure_for(self, env: gym.Env) -> None:
        """As Calibrator.configure_for; also take the env's cuff error SDs unless given explicitly."""
        super().configure_for(env)
        if not self._cuff_sd_given:
            cuff = env.unwrapped.cuff
            self.r = np.array([max(cuff.sd_sbp_mmhg, 0.1), max(cuff.sd_dbp_mmhg, 0.1)]) ** 2

    def initial_state(self, n: int) -> np.ndarray:
        """No bias, prior variance, no reading yet."""
        st = np.zeros((n, self.state_size))
        st[:, 2:4] = self.prior_var
        return st

    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Update on a new reading, predict the variance now, request when too uncertain."""
        now = s["elapsed_h"]
        new = s["new_reading"] > 0.5
        if new.any():
            # prior at the reading: posterior of the previous reading grown by the random walk
            dt = np.where(state[:, 5] > 0, now - state[:, 4], 0.0)
            prior = state[:, 2:4] + (self.q_h * dt)[:, None]
            z = np.stack([s["cuff_minus_est_sbp"], s["cuff_minus_est_dbp"]], axis=1)
            k = prior / (prior + self.r)
            b = state[:, 0:2] + k * (z - state[:, 0:2])
            p = (1.0 - k) * prior
            state[new, 0:2] = b[new]
            state[new, 2:4] = p[new]
            state[new, 4] = now[new]
            state[new, 5] = 1.0
        dt = np.where(state[:, 5] > 0, now - state[:, 4], 0.0)
        grow = self.q_h * dt + self.q_pat * s["dpat_ms"] ** 2
        var_sbp = state[:, 2] + grow
        since_min = s["since_cuff_h"] * 60.0
        request = (s["has_cuff"] < 0.5) | (
            (np.sqrt(var_sbp) > self.request_sd) & (since_min >= self.min_interval_min)
        )
        wanted = np.where(state[:, 5:6] > 0, state[:, 0:2], np.stack([s["offset_sbp"], s["offset_dbp"]], 1))
        return request, wanted
