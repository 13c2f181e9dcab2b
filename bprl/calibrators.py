"""Calibration policies behind one SB3-like interface, and ``rollout`` to an episode log.

Every policy (classical calibrator, oracle, or a stable-baselines3 model) satisfies :class:`Policy`:
``predict(obs, state=None, episode_start=None, deterministic=True) -> (action, state)`` plus a
``name``. Calibrators read only the observation (decoded with :func:`bprl.env.decode_obs`), accept
one observation or a batch (first axis = environments), and keep any memory in ``state`` (one row
per environment, reset where ``episode_start`` is true), exactly like a recurrent SB3 policy.

The one exception is :class:`OracleCalibrator`: an UPPER BOUND, never a baseline. It reads the
reference BP of the current window from the environment it is explicitly bound to with
``bind(env)``; no other policy sees privileged data.

Public API: :class:`Policy`, the calibrator classes, :data:`CALIBRATORS` (registry as data),
:func:`make_calibrator`, :func:`rollout`.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import pandas as pd

from bprl.env import (
    CONTINUOUS_ACTIONS,
    BPCalibrationEnv,
    decode_obs,
    make_env_from_spec,
)
from bprl.errors import ConfigError
from bprl.tables import EPISODE_LOG_COLUMNS

HOLD, CUFF, SBP_UP, SBP_DOWN, DBP_UP, DBP_DOWN = range(6)


@runtime_checkable
class Policy(Protocol):
    """What rollout and the experiment runner need from a policy (an SB3 model satisfies it)."""

    name: str

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Action(s) for observation(s), and the next recurrent state."""
        ...


class Calibrator:
    """Base class of the classical calibrators.

    Subclasses implement :meth:`decide` on a batch of decoded observations and return, per
    environment, whether to request a cuff and the offsets (mmHg) they want in force; the base
    class turns that into the action of the configured ``action_type``:

    * discrete: request -> action 1 (cuff + recalibrate); else a nudge toward the wanted offset
      (the SBP or DBP offset with the larger gap, when it exceeds half a nudge step); else hold.
      ``nudge_mmhg`` (default 2) must match the env's; ``rollout`` sets it via :meth:`configure_for`.
    * continuous: offset deltas that reach the wanted offsets (within ``max_offset_step_mmhg``,
      default 5, per step), gain unchanged, cuff component +1 when requesting, else -1.
    """

    name: str = "calibrator"
    #: True when the policy is useless without cuff readings (rollout refuses a cuff budget of 0)
    needs_cuff: ClassVar[bool] = True
    #: recurrent state width (0: stateless)
    state_size: ClassVar[int] = 0

    def __init__(
        self,
        action_type: str = "discrete",
        nudge_mmhg: float = 2.0,
        max_offset_step_mmhg: float = 5.0,
        name: str | None = None,
    ) -> None:
        """Policy for environments of ``action_type`` with the env's nudge / offset-step sizes."""
        if action_type not in ("discrete", "continuous"):
            raise ConfigError(f"action_type: {action_type!r} is not one of ('discrete', 'continuous')")
        supported = CALIBRATORS.get(self.registry_name(), {}).get("action_types", ("discrete", "continuous"))
        if action_type not in supported:
            raise ConfigError(
                f"calibrator {self.registry_name()!r}: action_type {action_type!r} not supported"
            )
        if nudge_mmhg <= 0 or max_offset_step_mmhg <= 0:
            raise ConfigError("nudge_mmhg and max_offset_step_mmhg must be > 0")
        self.action_type = action_type
        self.nudge_mmhg = float(nudge_mmhg)
        self.max_offset_step_mmhg = float(max_offset_step_mmhg)
        if name is not None:
            self.name = name

    @classmethod
    def registry_name(cls) -> str:
        """Name of this class in :data:`CALIBRATORS`."""
        for k, v in CALIBRATORS.items():
            if v["class"] is cls:
                return k
        return cls.__name__

    def configure_for(self, env: gym.Env) -> None:
        """Adopt the env's action step sizes; ConfigError if the env has the other action type."""
        base = env.unwrapped
        p = base.params
        if p.action_type != self.action_type:
            raise ConfigError(
                f"calibrator {self.name!r} was made for {self.action_type!r} actions but the env has "
                f"{p.action_type!r} actions; pass action_type={p.action_type!r} to make_calibrator"
            )
        self.nudge_mmhg = float(p.nudge_mmhg)
        self.max_offset_step_mmhg = float(p.max_offset_step_mmhg)

    # -- to implement -----------------------------------------------------------
    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """-> (request (n,) bool, wanted offsets (n, 2) mmHg or None for 'keep'); may update ``state``."""
        raise NotImplementedError

    # -- Policy interface ------------------------------------------------------------
    def initial_state(self, n: int) -> np.ndarray:
        """Fresh recurrent state for ``n`` environments."""
        return np.zeros((n, self.state_size))

    def predict(
        self,
        observation: np.ndarray,
        state: np.ndarray | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """SB3-style prediction for one observation (1-D) or a batch (2-D)."""
        obs = np.asarray(observation, dtype=np.float64)
        single = obs.ndim == 1
        if single:
            obs = obs[None, :]
        n = obs.shape[0]
        st = self.initial_state(n) if state is None else np.array(state, dtype=np.float64).reshape(n, -1)
        if self.state_size and episode_start is not None:
            reset = np.asarray(episode_start, bool).reshape(-1)
            if reset.any():
                st[reset] = self.initial_state(int(reset.sum()))
        s = decode_obs(obs)
        request, wanted = self.decide(s, st)
        request = request & (s["budget_left"] > 0)
        action = self._to_action(s, request, wanted)
        out_state = st if self.state_size else None
        if single:
            action = action[0]
            if out_state is not None:
                out_state = out_state[0]
        return action, out_state

    def _to_action(
        self, s: dict[str, np.ndarray], request: np.ndarray, wanted: np.ndarray | None
    ) -> np.ndarray:
        n = request.shape[0]
        cur = np.stack([s["offset_sbp"], s["offset_dbp"]], axis=1)
        gap = np.zeros((n, 2)) if wanted is None else wanted - cur
        if self.action_type == "discrete":
            act = np.full(n, HOLD, np.int64)
            k = np.argmax(np.abs(gap), axis=1)
            g = gap[np.arange(n), k]
            move = np.abs(g) > self.nudge_mmhg / 2
            act[move & (k == 0) & (g > 0)] = SBP_UP
            act[move & (k == 0) & (g < 0)] = SBP_DOWN
            act[move & (k == 1) & (g > 0)] = DBP_UP
            act[move & (k == 1) & (g < 0)] = DBP_DOWN
            act[request] = CUFF
            return act
        act = np.zeros((n, len(CONTINUOUS_ACTIONS)), np.float32)
        act[:, 0:2] = np.clip(gap / self.max_offset_step_mmhg, -1.0, 1.0)
        act[:, 4] = np.where(request, 1.0, -1.0)
        return act


class NoCalibration(Calibrator):
    """Never calibrates: the raw population estimate (offset 0, gain 1) throughout."""

    name = "none"
    needs_cuff = False

    def decide(self, s, state):
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

    def decide(self, s, state):
        """Request while no reading succeeded and attempts remain."""
        req = (s["has_cuff"] < 0.5) & (np.round(s["cuffs_used"]) < self.max_attempts)
        return req, None


class PeriodicCalibrator(Calibrator):
    """Cuff reading at the start and then every ``period_min`` minutes (recalibrating the offset each time).

    A failed reading (no reference) is retried at the next step, since the period counts from the
    last successful reading. Over a record of D minutes with readings succeeding it takes
    ``ceil(D_steps * step_min / period_min)`` readings.
    """

    name = "periodic"

    def __init__(self, period_min: float = 30.0, **kw: Any) -> None:
        """``period_min``: minutes between readings (at most 600, the observation's clip of 10 h)."""
        super().__init__(**kw)
        if not 0 < float(period_min) <= 600:
            raise ConfigError(f"period_min: must be in (0, 600], got {period_min!r}")
        self.period_min = float(period_min)

    def decide(self, s, state):
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

    def decide(self, s, state):
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

    def decide(self, s, state):
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


class OracleCalibrator(Calibrator):
    """UPPER BOUND, not a baseline: steers the offset to the true reference of the current window.

    The only policy that reads privileged data: it must be bound to the (single) environment it
    acts in with ``bind(env)`` (``rollout`` does this), and reads the current window's reference
    through :meth:`bprl.env.BPCalibrationEnv.reference_now`. It never requests a cuff. With the
    continuous action it reaches the exact offset when the bias jumps by at most
    ``max_offset_step_mmhg`` per step; with the discrete action it can only nudge (coarse).
    """

    name = "oracle"
    needs_cuff = False

    def __init__(self, **kw: Any) -> None:
        """See class docstring; call :meth:`bind` before predicting."""
        super().__init__(**kw)
        self._env: BPCalibrationEnv | None = None

    def bind(self, env: gym.Env) -> OracleCalibrator:
        """Attach to the environment whose reference the oracle may read (returns self)."""
        base = env.unwrapped
        if not isinstance(base, BPCalibrationEnv):
            raise ConfigError(f"oracle: can only bind a BPCalibrationEnv, got {type(base).__name__}")
        self._env = base
        return self

    def decide(self, s, state):
        """Wanted offset = reference - gain * estimate (keep the offset where there is no reference)."""
        if self._env is None:
            raise ConfigError("oracle: call bind(env) before predict (it reads the env's reference)")
        n = s["has_cuff"].shape[0]
        if n != 1:
            raise ConfigError("oracle: predicts for one bound environment at a time")
        ref_s, ref_d, est_s, est_d = self._env.reference_now()
        cur = np.array([[s["offset_sbp"][0], s["offset_dbp"][0]]])
        want = cur.copy()
        if not math.isnan(ref_s):
            want[0, 0] = ref_s - s["gain_sbp"][0] * est_s
        if not math.isnan(ref_d):
            want[0, 1] = ref_d - s["gain_dbp"][0] * est_d
        return np.zeros(1, bool), want


#: registry as data: name -> class, supported action types, what it is
CALIBRATORS: dict[str, dict[str, Any]] = {
    "none": {
        "class": NoCalibration,
        "action_types": ("discrete", "continuous"),
        "summary": "no calibration (raw population estimate)",
    },
    "one_shot": {
        "class": OneShotCalibrator,
        "action_types": ("discrete", "continuous"),
        "summary": "one cuff reading at the start",
    },
    "periodic": {
        "class": PeriodicCalibrator,
        "action_types": ("discrete", "continuous"),
        "summary": "cuff reading every period_min minutes",
    },
    "drift": {
        "class": DriftCalibrator,
        "action_types": ("discrete", "continuous"),
        "summary": "cuff reading when PAT or HR moved beyond a threshold",
    },
    "kalman": {
        "class": KalmanCalibrator,
        "action_types": ("discrete", "continuous"),
        "summary": "Kalman bias tracker, cuff when the bias is too uncertain",
    },
    "oracle": {
        "class": OracleCalibrator,
        "action_types": ("discrete", "continuous"),
        "summary": "UPPER BOUND: reads the reference (bind(env)); not a baseline",
    },
}


def make_calibrator(name: str, action_type: str = "discrete", **params: Any) -> Calibrator:
    """A calibrator from :data:`CALIBRATORS` by name; unknown name or parameter -> ConfigError."""
    entry = CALIBRATORS.get(name)
    if entry is None:
        raise ConfigError(f"calibrator: unknown name {name!r}; valid: {sorted(CALIBRATORS)}")
    try:
        return entry["class"](action_type=action_type, **params)
    except TypeError as exc:
        raise ConfigError(f"calibrator {name!r}: bad parameters {sorted(params)}: {exc}") from None


# ------------------------------------------------------------------------- rollout
def _episode_seed(seed: int, subject_id: str) -> int:
    """Seed of one subject's episode: depends on (seed, subject) only, not on the subject order."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(subject_id.encode())]).generate_state(1)[0])


def rollout(
    policy: Policy,
    env_or_spec: gym.Env | str | os.PathLike[str] | Mapping[str, Any],
    subject_ids: Sequence[str] | None = None,
    seed: int = 0,
    policy_name: str | None = None,
) -> pd.DataFrame:
    """Run ``policy`` for one whole-record episode per subject and return the episode log.

    Args:
        policy: anything with ``predict(obs, state, episode_start, deterministic)`` (calibrators,
            SB3 models). A calibrator adopts the env's action step sizes (``configure_for``); a
            policy with ``bind`` (the oracle) is bound to the environment first.
        env_or_spec: a BPCalibrationEnv (possibly wrapped) or an env spec (path / dict; then all its
            subjects are available, whatever the split).
        subject_ids: subjects to run (default: all of the environment's subjects).
        seed: episode ``k`` of subject ``sid`` is reset with a seed derived from ``(seed, sid)``, so
            the log is identical for the same seed whatever the order or number of subjects.
        policy_name: the ``policy`` column (default ``policy.name``).

    Returns:
        DataFrame with exactly :data:`bprl.tables.EPISODE_LOG_COLUMNS` (dtypes as declared).
    """
    if isinstance(env_or_spec, gym.Env):
        env = env_or_spec
    else:
        env = make_env_from_spec(
            env_or_spec, split=None, subject_ids=list(subject_ids) if subject_ids else None
        )
    base = env.unwrapped
    if not isinstance(base, BPCalibrationEnv):
        raise ConfigError(f"rollout: expected a BPCalibrationEnv, got {type(base).__name__}")
    sids = list(base.subject_ids) if subject_ids is None else [str(s) for s in subject_ids]
    unknown = [s for s in sids if s not in base.subject_ids]
    if unknown:
        raise ConfigError(f"rollout: subjects not in the environment: {unknown}")
    if getattr(policy, "needs_cuff", False) and base.cuff.budget == 0:
        raise ConfigError(
            f"rollout: policy {getattr(policy, 'name', policy)!r} calibrates with cuff readings but the "
            "environment's cuff budget is 0; set cuff.budget > 0 or use the 'none' policy"
        )
    if isinstance(policy, Calibrator):
        policy.configure_for(base)
    if hasattr(policy, "bind"):
        policy.bind(base)
    name = policy_name or str(getattr(policy, "name", type(policy).__name__))
    cols: dict[str, list] = {c: [] for c in EPISODE_LOG_COLUMNS}
    for episode, sid in enumerate(sids):
        obs, _ = env.reset(seed=_episode_seed(seed, sid), options={"subject_id": sid, "whole_record": True})
        state = None
        start = True
        done = False
        while not done:
            action, state = policy.predict(
                obs, state=state, episode_start=np.array([start]), deterministic=True
            )
            start = False
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            cols["policy"].append(name)
            cols["seed"].append(int(seed))
            cols["subject_id"].append(sid)
            cols["episode"].append(episode)
            cols["step"].append(info["step"])
            cols["t_s"].append(info["t_s"])
            for c in (
                "est_sbp_mmhg",
                "est_dbp_mmhg",
                "corr_sbp_mmhg",
                "corr_dbp_mmhg",
                "ref_sbp_mmhg",
                "ref_dbp_mmhg",
                "cuff_sbp_mmhg",
                "cuff_dbp_mmhg",
            ):
                v = info[c]
                cols[c].append(math.nan if v is None else v)
            cols["cuff"].append(bool(info["cuff"]))
            cols["reward"].append(float(reward))
    df = pd.DataFrame(cols)
    return df.astype(EPISODE_LOG_COLUMNS)
