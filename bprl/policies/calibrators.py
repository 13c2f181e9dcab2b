"""The classical calibration rules: none, one-shot, periodic, PAT/HR drift, random-walk Kalman bias tracker.

The rules fit on training subjects (OU Kalman, offset-and-gain RLS, variance trigger) live in
:mod:`bprl.policies.filters`; the feature correction that wraps any rule in
:mod:`bprl.policies.feature_correction`.

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
    paced = False

    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Never request, never move the offsets."""
        return np.zeros(s["has_cuff"].shape, bool), None


class OneShotCalibrator(Calibrator):
    """One cuff reading at the start of the episode, then hold that calibration.

    Retries on the next steps while the reading failed (no arterial reference), up to
    ``max_attempts`` requests.
    """

    name = "one_shot"
    paced = False

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

    def __init__(self, period_min: float | None = None, **kw: Any) -> None:
        """``period_min``: minutes between readings (at most 600, the observation's clip of 10 h);
        None: ``60 / cuff.budget_per_h`` of the env when it paces its budget, else 30."""
        super().__init__(**kw)
        if period_min is not None and not 0 < float(period_min) <= 600:
            raise ConfigError(f"period_min: must be in (0, 600], got {period_min!r}")
        self._period_given = period_min is not None
        self.period_min = 30.0 if period_min is None else float(period_min)

    def configure_for(self, env: gym.Env) -> None:
        """As Calibrator.configure_for; without ``period_min``, read at the env's per-hour budget."""
        super().configure_for(env)
        if not self._period_given and self.budget_per_h is not None:
            self.period_min = min(60.0 / self.budget_per_h, 600.0)

    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Request when no reading yet or the period since the last one has elapsed."""
        # time since last reading is measured at the end of the current window; 1 s slack for float32
        due = s["since_cuff_h"] * 60.0 >= self.period_min - 1.0 / 60.0
        return (s["has_cuff"] < 0.5) | due, None


class DriftCalibrator(Calibrator):
    """Recalibrate when PAT or HR moved beyond a threshold in units of their own step-to-step noise.

    A first reading at the start; then a reading when ``|dPAT| > pat_threshold_sd * sd_pat`` or
    ``|dHR| > hr_threshold_sd * sd_hr`` (changes since the last reading), but not sooner than
    ``min_interval_min`` after it, and at the latest after ``max_interval_min`` (None: never
    forced). ``sd_pat`` / ``sd_hr`` are the subject's own step-to-step noise SDs, tracked during the
    episode: an exponentially weighted mean (``noise_halflife_steps``) of the absolute step
    differences (steps where the value was carried forward, or a reading intervened, are skipped),
    times sqrt(pi) / 2 (for Gaussian noise, ``E|x_t - x_(t-1)| = 2 sd / sqrt(pi)``); no drift
    reading until ``min_noise_steps`` differences were seen. A real record's PAT is noisy (SD
    14-17 ms step to step on MIMIC-IV), so a fixed 8 ms threshold would fire every few minutes;
    fixed thresholds in ms / bpm (``pat_threshold_ms``, ``hr_threshold_bpm``) are still accepted.
    Requests are paced to the budget like every calibrator's.

    Recurrent state: ``[prev dPAT, prev dHR, prev since_cuff_h, mean |step dPAT|, mean |step dHR|,
    n PAT steps, n HR steps]``.
    """

    name = "drift"
    state_size = 7

    def __init__(
        self,
        pat_threshold_sd: float = 3.0,
        hr_threshold_sd: float = 3.0,
        pat_threshold_ms: float | None = None,
        hr_threshold_bpm: float | None = None,
        min_interval_min: float = 5.0,
        max_interval_min: float | None = None,
        noise_halflife_steps: float = 60.0,
        min_noise_steps: int = 10,
        **kw: Any,
    ) -> None:
        """Thresholds in noise SDs (or fixed in ms / bpm); minimum / maximum interval in minutes."""
        super().__init__(**kw)
        for key, v in (("pat_threshold_sd", pat_threshold_sd), ("hr_threshold_sd", hr_threshold_sd)):
            if v <= 0:
                raise ConfigError(f"{key}: must be > 0, got {v!r}")
        for key, v in (("pat_threshold_ms", pat_threshold_ms), ("hr_threshold_bpm", hr_threshold_bpm)):
            if v is not None and v <= 0:
                raise ConfigError(f"{key}: must be > 0, got {v!r}")
        if min_interval_min < 0 or noise_halflife_steps <= 0 or min_noise_steps < 1:
            raise ConfigError(
                "min_interval_min >= 0, noise_halflife_steps > 0 and min_noise_steps >= 1 required"
            )
        self.pat_threshold_sd = float(pat_threshold_sd)
        self.hr_threshold_sd = float(hr_threshold_sd)
        self.pat_threshold_ms = None if pat_threshold_ms is None else float(pat_threshold_ms)
        self.hr_threshold_bpm = None if hr_threshold_bpm is None else float(hr_threshold_bpm)
        self.min_interval_min = float(min_interval_min)
        self.max_interval_min = None if max_interval_min is None else float(max_interval_min)
        self.alpha = 1.0 - 0.5 ** (1.0 / float(noise_halflife_steps))
        self.min_noise_steps = int(min_noise_steps)

    def _thresholds(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Update the noise estimates from this step's differences; the PAT and HR thresholds now."""
        same = (s["new_reading"] < 0.5) & (s["has_cuff"] > 0.5) & (s["since_cuff_h"] > state[:, 2])
        out = []
        for k, key, fixed, k_sd in (
            (0, "dpat_ms", self.pat_threshold_ms, self.pat_threshold_sd),
            (1, "dhr_bpm", self.hr_threshold_bpm, self.hr_threshold_sd),
        ):
            d = np.abs(s[key] - state[:, k])
            use = same & (d > 1e-6)
            first = use & (state[:, 5 + k] == 0)
            state[:, 3 + k] = np.where(
                first, d, np.where(use, state[:, 3 + k] + self.alpha * (d - state[:, 3 + k]), state[:, 3 + k])
            )
            state[:, 5 + k] += use
            sd = state[:, 3 + k] * np.sqrt(np.pi) / 2.0
            if fixed is not None:
                out.append(np.full(sd.shape, fixed))
            else:
                out.append(np.where(state[:, 5 + k] >= self.min_noise_steps, k_sd * sd, np.inf))
        state[:, 0], state[:, 1], state[:, 2] = s["dpat_ms"], s["dhr_bpm"], s["since_cuff_h"]
        return out[0], out[1]

    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Request at the start and on drift beyond the thresholds."""
        thr_pat, thr_hr = self._thresholds(s, state)
        since_min = s["since_cuff_h"] * 60.0
        moved = (np.abs(s["dpat_ms"]) > thr_pat) | (np.abs(s["dhr_bpm"]) > thr_hr)
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
