"""Residual calibration: a learned correction and cuff decision on top of a classical calibrator.

A learned policy has to beat the strongest classical rules at the same cuff rate (the
calibration protocol of ``docs/guide/protocol.md``). The easiest way not to lose to a rule is to start
from it: :class:`ResidualCalibrationEnv` wraps a continuous calibration environment and a
(fitted) base :class:`~bprl.policies.base.Calibrator` such as ``kalman_ou`` or ``rls_gain``. At
each step the base rule decides as it would alone; the agent sees the environment's observation
plus the base's *belief* and answers with a bounded residual:

* action ``Box(-1, 1, (3,))``: residual SBP and DBP corrections (times ``max_residual_mmhg``,
  added to the base's correction) and a cuff component; with ``cuff="base"`` the base decides
  when to read (the cuff component is ignored), with ``"agent"`` the agent decides (a reading
  only when the component is > 0), with ``"either"`` a reading when either asks. Requests are
  always gated by the base class's pacing (:meth:`~bprl.policies.base.Calibrator.allowed`).
* observation: the environment's (``2F + 23`` values) followed by :data:`BELIEF_FIELDS`: the
  base's correction (mmHg / 20), its predicted error SD (mmHg / 10; the Kalman rules, else 0),
  whether the base wants a reading now and whether one is allowed (0/1).
* ablations (``ablation``, :data:`ABLATIONS`), controls that a learned gain does not come from a
  leak through the features: ``no_feature_changes`` zeroes the changes since the last reading
  (``dpat_ms``, ``dhr_bpm``); ``shuffled_features`` replaces the feature block (values and
  validity flags) and those changes by the ones of a step drawn at random from the steps seen so
  far (a pool of the last :data:`SHUFFLE_POOL` steps), so they keep their distribution and lose
  their timing. The ablation applies in training and evaluation alike.

A zero residual with ``cuff="base"`` reproduces the base rule exactly (tested). The same
arithmetic drives :class:`ResidualPolicy`, which runs a trained agent (anything with SB3's
``predict``) with its base on raw environment observations, so :func:`bprl.policies.rollout` and
the experiment runner treat it like any other policy.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from bprl.envs import OBS_CLIP, STATE_FIELDS, BPCalibrationEnv, decode_obs
from bprl.errors import ConfigError
from bprl.policies.base import Calibrator

__all__ = [
    "ABLATIONS",
    "BELIEF_FIELDS",
    "CUFF_MODES",
    "SHUFFLE_POOL",
    "ResidualCalibrationEnv",
    "ResidualPolicy",
    "ZeroResidual",
]

#: what the residual agent sees after the environment's observation, in this order
BELIEF_FIELDS: tuple[str, ...] = (
    "base_corr_sbp",  # the base's correction (offset at gain 1), mmHg / 20
    "base_corr_dbp",
    "base_sd_sbp",  # the base's predicted error SD, mmHg / 10 (0 for rules without a filter)
    "base_sd_dbp",
    "base_wants_cuff",  # 1 if the base asks for a reading now
    "cuff_allowed",  # 1 if a reading may be requested now (budget and pacing)
)
#: who decides when to read
CUFF_MODES: tuple[str, ...] = ("base", "agent", "either")
#: observation ablations (controls): see the module docstring
ABLATIONS: tuple[str, ...] = ("none", "no_feature_changes", "shuffled_features")
#: steps a ``shuffled_features`` ablation draws its feature inputs from (the most recent ones)
SHUFFLE_POOL = 4096
_CHANGE_FIELDS = ("dpat_ms", "dhr_bpm")


class _ResidualCore:
    """The arithmetic shared by the wrapper env and the policy: base decision, belief, env action."""

    def __init__(
        self, base: Calibrator, max_residual_mmhg: float, cuff: str, ablation: str = "none", seed: int = 0
    ) -> None:
        if not isinstance(base, Calibrator):
            raise ConfigError(f"residual: the base must be a Calibrator, got {type(base).__name__}")
        if base.action_type != "continuous":
            raise ConfigError("residual: the base calibrator must be made with action_type='continuous'")
        if cuff not in CUFF_MODES:
            raise ConfigError(f"residual: cuff must be one of {CUFF_MODES}, got {cuff!r}")
        if not max_residual_mmhg > 0:
            raise ConfigError(f"residual: max_residual_mmhg must be > 0, got {max_residual_mmhg!r}")
        if ablation not in ABLATIONS:
            raise ConfigError(f"residual: ablation must be one of {ABLATIONS}, got {ablation!r}")
        self.ablation = ablation
        self.seed(seed)
        self.base = base
        self.max_residual_mmhg = float(max_residual_mmhg)
        self.cuff = cuff
        self.state = base.initial_state(1)
        self._s: dict[str, np.ndarray] = {}
        self._request = np.zeros(1, bool)
        self._allowed = np.zeros(1, bool)
        self._wanted = np.zeros((1, 2))

    def configure_for(self, env: gym.Env) -> None:
        """Adopt the env's settings; the env must have continuous actions, the base must be fitted."""
        base_env = env.unwrapped
        if not isinstance(base_env, BPCalibrationEnv) or base_env.params.action_type != "continuous":
            raise ConfigError("residual: needs a bprl calibration env with continuous actions")
        self.base.configure_for(env)
        if self.base.fits and self.base.fitted is None:
            raise ConfigError(
                f"residual: base {self.base.name!r} is fit on training subjects; call "
                "bprl.policies.fit_calibrator(base, train_env) first"
            )

    def seed(self, seed: int) -> None:
        """Seed the ablation's random draws and empty its pool."""
        self._rng = np.random.default_rng(seed)
        self._pool: np.ndarray | None = None
        self._pool_n = 0

    def start(self) -> None:
        """A new episode: the base's initial state."""
        self.state = self.base.initial_state(1)

    def _ablate(self, o: np.ndarray) -> np.ndarray:
        """The policy's view of the env observation ``o`` (1-D) under the ablation."""
        if self.ablation == "none":
            return o
        o = o.copy()
        n_state = len(STATE_FIELDS)
        changes = [o.size - n_state + STATE_FIELDS.index(f) for f in _CHANGE_FIELDS]
        if self.ablation == "no_feature_changes":
            o[changes] = 0.0
            return o
        cols = np.r_[np.arange(o.size - n_state), changes]
        if self._pool is None:
            self._pool = np.zeros((SHUFFLE_POOL, cols.size))
        self._pool[self._pool_n % SHUFFLE_POOL] = o[cols]
        self._pool_n += 1
        o[cols] = self._pool[self._rng.integers(min(self._pool_n, SHUFFLE_POOL))]
        return o

    def observe(self, obs: np.ndarray) -> np.ndarray:
        """Run the base rule on ``obs`` (updating its state) and return ``obs`` + belief (float32)."""
        o = np.asarray(obs, np.float64).reshape(1, -1)
        s = decode_obs(o)
        request, wanted = self.base.decide(s, self.state)
        cur = np.stack([s["offset_sbp"], s["offset_dbp"]], axis=1)
        self._s, self._request, self._allowed = s, np.asarray(request, bool), self.base.allowed(s)
        self._wanted = cur if wanted is None else np.asarray(wanted, np.float64)
        var = getattr(self.base, "last_var", None)
        sd = (
            np.zeros((1, 2))
            if var is None
            else np.sqrt(np.maximum(np.asarray(var, float).reshape(1, 2), 0.0))
        )
        belief = np.concatenate(
            [self._wanted[0] / 20.0, sd[0] / 10.0, [float(self._request[0]), float(self._allowed[0])]]
        )
        out = np.concatenate([self._ablate(o[0]), np.clip(belief, -OBS_CLIP, OBS_CLIP)])
        return out.astype(np.float32)

    def env_action(self, action: np.ndarray) -> np.ndarray:
        """The environment's continuous action for the agent's ``action`` (residual, cuff)."""
        a = np.clip(np.asarray(action, np.float64).reshape(-1), -1.0, 1.0)
        if a.shape != (3,) or not np.isfinite(a).all():
            raise ConfigError(f"residual: expected an action of 3 values in [-1, 1], got {action!r}")
        wanted = self._wanted + a[None, :2] * self.max_residual_mmhg
        agent_asks = np.array([a[2] > 0.0])
        if self.cuff == "base":
            request = self._request
        elif self.cuff == "agent":
            request = agent_asks
        else:
            request = self._request | agent_asks
        request = request & self._allowed
        return self.base._to_action(self._s, request, wanted)[0]


class ResidualCalibrationEnv(gym.Wrapper):
    """A continuous calibration env in which the agent acts as a bounded residual on a base calibrator.

    See :mod:`bprl.policies.residual` for the spaces. Reward, episode end and ``info`` are the
    wrapped env's (the reward scores the corrected estimate after the residual).

    Args:
        env: a bprl calibration env with continuous actions.
        base: the base calibrator, made with ``action_type="continuous"`` and fitted on training
            subjects when it fits (:func:`bprl.policies.fit_calibrator`).
        max_residual_mmhg: the largest residual correction, mmHg (SBP and DBP).
        cuff: who decides when to read: ``base``, ``agent`` or ``either``.
        ablation: an observation ablation of :data:`ABLATIONS` (``shuffled_features`` draws from
            ``reset(seed=)``'s seed).

    Raises:
        ConfigError: a discrete env or base, an unfitted base, or a bad setting.
    """

    def __init__(
        self,
        env: gym.Env,
        base: Calibrator,
        max_residual_mmhg: float = 10.0,
        cuff: Literal["base", "agent", "either"] = "base",
        ablation: Literal["none", "no_feature_changes", "shuffled_features"] = "none",
    ) -> None:
        """Wrap ``env`` with the residual action and belief observation around ``base``."""
        super().__init__(env)
        self.core = _ResidualCore(base, max_residual_mmhg, cuff, ablation)
        self.core.configure_for(env)
        n = env.observation_space.shape[0] + len(BELIEF_FIELDS)
        self.observation_space = spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(n,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the env and the base rule; the first observation with the base's belief."""
        obs, info = self.env.reset(**kwargs)
        if kwargs.get("seed") is not None:
            self.core.seed(int(kwargs["seed"]))
        self.core.start()
        return self.core.observe(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply base + residual to the env, then let the base see the next observation."""
        obs, reward, terminated, truncated, info = self.env.step(self.core.env_action(action))
        return self.core.observe(obs), reward, terminated, truncated, info


class ResidualPolicy:
    """A trained residual agent with its base rule, acting on raw env observations (``predict`` protocol).

    Args:
        agent: anything with SB3's ``predict(obs, state, episode_start, deterministic)`` acting on
            the :class:`ResidualCalibrationEnv` observation (e.g. an SB3 model or
            :class:`~bprl.policies.agents.AgentPolicy`).
        base: the fitted base calibrator (``action_type="continuous"``).
        max_residual_mmhg: as in :class:`ResidualCalibrationEnv` (must match training).
        cuff: as in :class:`ResidualCalibrationEnv`.
        name: label in episode logs.
        ablation: as in :class:`ResidualCalibrationEnv` (must match training).
        seed: seed of the ``shuffled_features`` draws.

    ``rollout`` binds it to its env (:meth:`bind`), which configures the base rule. One environment
    at a time (the base rule's state is kept here, reset where ``episode_start`` is true).
    """

    needs_cuff = True

    def __init__(
        self,
        agent: Any,
        base: Calibrator,
        max_residual_mmhg: float = 10.0,
        cuff: str = "base",
        name: str = "residual",
        ablation: str = "none",
        seed: int = 0,
    ) -> None:
        """See the class docstring."""
        self.agent = agent
        self.core = _ResidualCore(base, max_residual_mmhg, cuff, ablation, seed)
        self.name = name
        self._started = False

    def bind(self, env: gym.Env) -> ResidualPolicy:
        """Configure the base rule for ``env`` (rollout calls this); returns self."""
        self.core.configure_for(env)
        return self

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """The env action for one raw observation, and the agent's next state."""
        obs = np.asarray(observation)
        if obs.ndim != 1:
            raise ConfigError("ResidualPolicy: predicts for one environment at a time (a 1-D observation)")
        start = episode_start is not None and bool(np.asarray(episode_start).reshape(-1)[0])
        if start or not self._started:
            self.core.start()
            self._started = True
        aug = self.core.observe(obs)
        action, agent_state = self.agent.predict(
            aug, state=state, episode_start=episode_start, deterministic=deterministic
        )
        return self.core.env_action(action), agent_state


class ZeroResidual:
    """A residual "agent" that always answers zero: with ``cuff="base"`` or ``"either"`` its
    :class:`ResidualPolicy` is the base rule itself.

    Training keeps it instead of the learned agent when no learned model beats the base rule on
    the validation subjects (``agent.json``: ``best.chosen == "base"``), so that a residual agent
    is never deployed on the strength of a validation return below its base's.
    """

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Zero residual corrections and cuff component, one row per observation (SB3's shapes)."""
        obs = np.asarray(observation)
        shape = (3,) if obs.ndim == 1 else (obs.shape[0], 3)
        return np.zeros(shape, dtype=np.float32), state
