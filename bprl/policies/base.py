"""The policy interface: the :class:`Policy` protocol, the :class:`Calibrator` base class, action codes.

Every policy (classical calibrator, oracle, or a stable-baselines3 model) satisfies :class:`Policy`:
``predict(obs, state=None, episode_start=None, deterministic=True) -> (action, state)`` plus a
``name``. Calibrators read only the observation (decoded with :func:`bprl.env.decode_obs`), accept
one observation or a batch (first axis = environments), and keep any memory in ``state`` (one row
per environment, reset where ``episode_start`` is true), exactly like a recurrent SB3 policy.

A new calibration rule subclasses :class:`Calibrator` and implements only :meth:`Calibrator.decide`
(see ``docs/how-to/add-calibrator.md``); the base class turns its decision into the action of the
environment's action type.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from bprl.envs import CONTINUOUS_ACTIONS, decode_obs
from bprl.errors import ConfigError

__all__ = [
    "ACTION_TYPES",
    "CUFF",
    "DBP_DOWN",
    "DBP_UP",
    "HOLD",
    "SBP_DOWN",
    "SBP_UP",
    "Calibrator",
    "Policy",
]

#: discrete action codes of ``bprl/BPCalibration-v1``: hold, cuff + recalibrate, SBP / DBP offset nudges
HOLD, CUFF, SBP_UP, SBP_DOWN, DBP_UP, DBP_DOWN = range(6)

#: the environments' two action types
ACTION_TYPES: tuple[str, ...] = ("discrete", "continuous")


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

    Class attributes a subclass may set: ``name`` (the default ``policy`` label in episode logs),
    ``needs_cuff``, ``state_size`` and ``action_types`` (the action types it supports).

    Raises:
        ConfigError: (from the constructor) an unknown or unsupported ``action_type``, or a
            non-positive ``nudge_mmhg`` / ``max_offset_step_mmhg``.
    """

    name: str = "calibrator"
    #: True when the policy is useless without cuff readings (rollout refuses a cuff budget of 0)
    needs_cuff: ClassVar[bool] = True
    #: recurrent state width (0: stateless)
    state_size: ClassVar[int] = 0
    #: action types this calibrator supports (a subset of :data:`ACTION_TYPES`)
    action_types: ClassVar[tuple[str, ...]] = ACTION_TYPES
    #: True when the calibrator has parameters fit on training subjects (:meth:`fit`); rollout
    #: refuses it until it is fitted (the experiment runner fits it on the train split)
    fits: ClassVar[bool] = False
    #: True when the reading rate follows the cuff budget (a cuff-rate sweep runs it once per rate)
    paced: ClassVar[bool] = True

    def __init__(
        self,
        action_type: str = "discrete",
        nudge_mmhg: float = 2.0,
        max_offset_step_mmhg: float = 5.0,
        name: str | None = None,
    ) -> None:
        """Policy for environments of ``action_type`` with the env's nudge / offset-step sizes.

        Args:
            action_type: ``"discrete"`` or ``"continuous"``, as the environment's.
            nudge_mmhg: offset change of one discrete nudge action, mmHg (the env's; rollout adopts it).
            max_offset_step_mmhg: largest offset change of one continuous action, mmHg (idem).
            name: label in episode logs (default: the class's ``name``).
        """
        if action_type not in ACTION_TYPES:
            raise ConfigError(f"action_type: {action_type!r} is not one of {ACTION_TYPES}")
        if action_type not in type(self).action_types:
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
        #: cuff budget per hour of the env (``cuff.budget_per_h``), adopted by :meth:`configure_for`
        self.budget_per_h: float | None = None
        #: per-episode budget to spread evenly when the env does not pace it (no ``budget_per_h``)
        self.episode_budget: int | None = None
        #: what :meth:`fit` learned (None: not fitted); recorded with the episode logs
        self.fitted: dict[str, Any] | None = None

    @classmethod
    def registry_name(cls) -> str:
        """Name of this class in :data:`bprl.policies.registry.CALIBRATORS` (class name if absent)."""
        from bprl.policies.registry import CALIBRATORS  # the registry imports this module

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
        cuff = base.cuff
        self.budget_per_h = cuff.budget_per_h
        self.episode_budget = cuff.budget if cuff.budget_per_h is None else None

    def fit(self, train: Any) -> dict[str, Any]:
        """Fit the calibrator's parameters on training subjects (only when ``fits`` is True).

        Args:
            train: :class:`bprl.policies.fitting.TrainingSubjects` of the train split (never the
                subjects the calibrator is tested on).

        Returns:
            The fitted parameters (also kept in ``self.fitted``).
        """
        raise ConfigError(f"calibrator {self.name!r} has nothing to fit")

    # -- to implement -----------------------------------------------------------
    def decide(self, s: dict[str, np.ndarray], state: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The rule: whether to request a cuff reading and which offsets to steer to.

        Args:
            s: decoded observations (:func:`bprl.env.decode_obs`), each value of shape (n,) for
                n environments: BP in mmHg, times in hours, PAT in ms, HR in bpm, flags 0/1.
            state: recurrent state, shape (n, ``state_size``); update it in place.

        Returns:
            ``(request, wanted)``: request a cuff reading, (n,) bool; the offsets (SBP, DBP) to
            steer to, (n, 2) mmHg, or None to keep the offsets in force.
        """
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
        """SB3-style prediction for one observation (1-D) or a batch (2-D).

        Args:
            observation: one observation or a batch (first axis = environments).
            state: recurrent state from the previous call (None: fresh).
            episode_start: per environment, whether an episode starts here (its state is reset).
            deterministic: ignored (calibrators are deterministic); kept for SB3 compatibility.

        Returns:
            ``(action, state)``: the action(s) of this calibrator's action type, and the next
            state (None for stateless calibrators).
        """
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
        request = request & self.allowed(s)
        action = self._to_action(s, request, wanted)
        out_state = st if self.state_size else None
        if single:
            action = action[0]
            if out_state is not None:
                out_state = out_state[0]
        return action, out_state

    def allowed(self, s: dict[str, np.ndarray]) -> np.ndarray:
        """Where a request may be made now: a reading is available, and the budget is paced.

        The env refuses requests beyond its budget (``cuffs_available``); with a per-episode budget
        B and no per-hour pacing, every calibrator also spreads B evenly: at most
        ``1 + (B - 1) * elapsed / (elapsed + time left)`` requests by now (one at the start), so no
        rule spends a whole multi-hour subject's readings in its first hour.
        """
        ok = s["cuffs_available"] >= 1.0 - 1e-6
        b = self.episode_budget
        if b is not None and b > 1:
            total_h = s["elapsed_h"] + s["time_left_h"]
            share = np.divide(s["elapsed_h"], total_h, out=np.ones_like(total_h), where=total_h > 0)
            ok &= np.round(s["cuffs_used"]) < 1.0 + (b - 1) * share + 1e-9
        return ok

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
