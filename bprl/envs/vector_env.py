"""Batched vector environment: many subjects stepped at once with numpy array operations.

:class:`BPCalibrationVectorEnv` has exactly the semantics of ``num_envs`` independent
:class:`bprl.envs.calibration_env.BPCalibrationEnv` instances (same observations, rewards,
truncations and cuff readings for the same seeds and actions: sub-environment ``i`` is seeded with
``seed + i`` as in Gymnasium's ``SyncVectorEnv``) and Gymnasium's default next-step autoreset: after
a sub-environment truncates, its next ``step`` ignores the action, resets it and returns the first
observation of the new episode with reward 0.

At 64 sub-environments a step costs about 30 numpy calls on tiny arrays, so their fixed cost
(about a microsecond each) is what counts, not the arithmetic. How the count stays low (the
buffers and their row layout: :mod:`bprl.envs._vector_state`):

* everything a step reads about one replay row (subject, step) is packed once, at construction,
  into two tables (``RowTables``): the observation's static part (normalised features and
  estimate, float32, one row per replay row: a step takes its rows, contiguous and cheap) and a
  float64 table with one column per replay row of the per-row factors of the 16 calibration-state
  observations, the reference, the reward divisor (``inf`` where there is no reference, so the
  penalty is 0), whether a cuff reading there succeeds and whether PAT / HR are known; a step takes
  its columns straight into the per-step rows (``StepRows``: one ``take`` along axis 1, faster
  than taking rows and transposing them with numpy 2);
* all per-environment arrays are "structure of arrays" (one column per sub-environment), so every
  operation runs on contiguous blocks that numpy treats as one flat loop; views are made once;
* the calibration state (``CalibrationColumns``) is 2 x 16 numbers per sub-environment, ``mul``
  and ``add``, such that the 16 state observations are ``clip((row_factor * mul + add - centre) /
  scale)``: corrected SBP is ``estimate * gain + offset``, hours since the last reading ``(t_end * 1
  + -t_reading) / 3600``, the offset ``(0 * 0 + offset) / 20`` -- the single environment's float
  operations, so every observation, reward and reading is bit-identical to it (tests/test_env.py
  checks this). The state rows are ordered so that all a cuff reading writes is one block, filled
  by one look-up of the episode's readings and one negation of row factors and copied in by one
  ``putmask``; one copy puts the observations back in their order;
* the readings (reference + seeded noise, minus the raw estimate) are drawn at reset in the single
  environment's order; the reward is one reduction, ``(minus cost - penalty SBP) - penalty DBP``;
  ufuncs get ``out`` as a positional argument and scalars as 0-d arrays (both are faster);
* truncations come from a countdown to the nearest episode end; only sub-environments that
  autoreset run Python code of their own (their random draws; the rest of a reset is batched, in
  reused buffers: fresh large arrays would cost page faults at every reset).

Memory: per replay row 27 float64 + (observation size) float32 values, and about 8 float64 per
sub-environment and step of the longest record (the drawn readings, 6 rows, and the draws).

Made by ``gymnasium.make_vec("bprl/BPCalibration-v1", num_envs=64, tables=...)`` (the ids'
``vector_entry_point``) or directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from bprl.envs import _vector_state as vs
from bprl.envs.calibration_env import BPCalibrationEnv
from bprl.envs.cuff import CuffModel
from bprl.envs.observation import DEFAULT_FEATURES
from bprl.envs.replay_arrays import ReplayArrays
from bprl.errors import BprlError, ConfigError, InvalidActionError

if TYPE_CHECKING:  # (bprl.features is imported only when a replay-set folder is read)
    from bprl.features.replay_set import ReplaySet

__all__ = ["BPCalibrationVectorEnv"]

try:  # the clip ufunc itself: np.clip and ndarray.clip add a Python layer around it
    from numpy._core.umath import clip as _clip
except ImportError:  # pragma: no cover - other numpy layouts: the public wrapper, same results
    _clip = np.clip

# bound reductions (module globals: the cheapest look-up in a step)
_bitwise_or_reduce = np.bitwise_or.reduce
_maximum_reduce = np.maximum.reduce
_logical_or_reduce = np.logical_or.reduce
_subtract_reduce = np.subtract.reduce
_INT64 = np.dtype(np.int64)
_ROW, _READING, _STEP = vs.CURSOR_ROW, vs.CURSOR_READING, vs.CURSOR_STEP


class BPCalibrationVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` calibration episodes stepped together (see :class:`~bprl.envs.calibration_env.BPCalibrationEnv`).

    Arguments are those of :class:`~bprl.envs.calibration_env.BPCalibrationEnv` plus ``num_envs``.
    ``infos`` per step is a dict of arrays: ``subject_index`` (read-only), ``step``, ``t_s``,
    ``corr_sbp_mmhg``, ``corr_dbp_mmhg``, ``cuff``, ``cuff_failed``, ``cuff_refused`` (``reset``
    gives ``subject_index`` and ``step``). ``cuff_failed`` / ``cuff_refused`` may be one shared
    read-only all-False array when no sub-environment can have such an event.

    Custom rewards (``reward="my_pkg.rewards:my_reward"`` or a ``bprl.rewards`` plugin, see
    :mod:`bprl.envs.rewards`) are supported through the vectorised signature: the function is
    called once per step with float64 arrays of shape ``(num_envs,)`` (NaN where a window has no
    reference) and must return an array of that shape (or a scalar), computed element-wise, so that
    it gives what the single environment gets from it on floats.
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        replay_set: str | os.PathLike[str] | ReplaySet | None = None,
        tables: Mapping[str, pd.DataFrame] | None = None,
        split: str | None = "train",
        subject_ids: Sequence[str] | None = None,
        features: Sequence[str] = DEFAULT_FEATURES,
        action_type: str = "discrete",
        cuff: CuffModel | Mapping[str, Any] | None = None,
        max_episode_steps: int | None = None,
        data: ReplayArrays | None = None,
        **kwargs: Any,
    ) -> None:
        """Create ``num_envs`` sub-environments over the same subjects (arguments as BPCalibrationEnv).

        Raises:
            ConfigError: ``num_envs`` not a positive integer, or an invalid setting (naming it).
        """
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ConfigError(f"num_envs: must be a positive integer, got {num_envs!r}")
        if max_episode_steps is not None and kwargs.get("max_steps") is None:
            kwargs["max_steps"] = max_episode_steps
        kwargs.pop("render_mode", None)
        # a template single env validates every setting and loads the shared arrays
        tmpl = BPCalibrationEnv(
            replay_set=replay_set,
            tables=tables,
            split=split,
            subject_ids=subject_ids,
            features=features,
            action_type=action_type,
            cuff=cuff,
            data=data,
            **kwargs,
        )
        self.template = tmpl
        self.params, self.cuff, self.data = tmpl.params, tmpl.cuff, tmpl.data
        self.num_envs = num_envs
        self.single_observation_space = tmpl.observation_space
        self.single_action_space = tmpl.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = None
        self._discrete = action_type == "discrete"
        self._action_shape = (num_envs,) if self._discrete else (num_envs, 5)
        self._reward_kind = tmpl._reward_kind  # built-in fast path index, -1: custom function
        self._reward_function = tmpl._reward_entry.function
        self._tmax = self.data.feat_obs.shape[1]
        self._lengths = [int(v) for v in self.data.lengths]
        # the cuff's reading SD and failure probability of every replay row (worse in AF)
        self._fail_p = self.cuff.failure_prob(self.data.af_share)
        self._tables = vs.RowTables.build(
            self.data, self.params, self._reward_kind, self.cuff.reading_sd(self.data.af_share), self._fail_p
        )
        self._init_buffers(num_envs)

    def _init_buffers(self, n: int) -> None:
        """The per-step buffers, the episodes' cursor and readings, and the autoreset flags."""
        p, cuff = self.params, self.cuff
        cost = float(cuff.cost)
        self._budget = cuff.budget
        self._paced = cuff.budget_per_h is not None
        self._limited = cuff.budget is not None or self._paced
        self._avail = np.full(n, np.inf)  # readings available at the rows of the last observation
        self._t_last = np.zeros(n)  # end of each episode's last window, s
        self._recalibrate = p.recalibrate_on_cuff
        self._kalman = None
        if self._recalibrate and p.recalibration == "kalman":
            self._kalman = vs.KalmanState(
                q=np.array(float(p.kalman_q_mmhg2_per_h)),
                r=np.array([[cuff.sd_sbp_mmhg**2], [cuff.sd_dbp_mmhg**2]]),
                p=np.zeros((2, n)),
            )
        self._const = vs.Constants.create(p, cost)
        self._act = vs.ActionRows.create(n, p, cost)
        self._state = vs.CalibrationColumns.create(n, self._budget)
        self._rows = vs.StepRows.create(n)
        self._scratch = vs.ObservationScratch.create(n)
        readings = np.zeros((vs.LOOKUP_ROWS, n * self._tmax))
        self._readings = vs.EpisodeReadings(
            values=readings,
            per_env=readings.reshape(vs.LOOKUP_ROWS, n, self._tmax),
            step_index=np.arange(self._tmax),
        )
        self._workspace: vs.ResetWorkspace | None = None
        self._rngs: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(n)]
        self._subject_index = np.zeros(n, np.int64)  # replaced (not changed) at resets: info shares it
        self._subject_index.setflags(write=False)
        # per sub-environment: the table row the next step acts on (that of the last observation),
        # the column of its cuff reading in the episode readings, and its step in the record
        # (info["step"]); replaced, not changed, by each step: one add moves all three
        self._cursor = np.zeros((3, n), np.int64)
        self._end_row = np.ones(n, np.int64)  # one past the episode's last row
        self._steps_to_truncation = 1  # steps until the nearest truncation
        self._autoreset = np.zeros(n, bool)
        self._any_autoreset = False
        self._started = False
        self._all_false = np.zeros(n, bool)
        self._all_false.setflags(write=False)

    # ------------------------------------------------------------------ resets
    def _draw_episodes(
        self, idx: Sequence[int], options: Mapping[str, Any], ws: vs.ResetWorkspace
    ) -> tuple[list[int], list[int], list[int]]:
        """Per sub-environment in ``idx``, BPCalibrationEnv.reset's random draws in its order:
        subject, first step, cuff noise (into ``ws.noise``), and in an episode where a reading can
        fail (AF) the failure uniforms (into ``ws.fail_u``, flagged in ``ws.can_fail``).
        Returns (subjects, first steps, ends).

        Raises:
            ConfigError: an unknown ``subject_id`` or a ``start_step`` outside a record.
        """
        data, p = self.data, self.params
        sid = options.get("subject_id")
        fixed = None
        if sid is not None:
            try:
                fixed = data.subject_ids.index(str(sid))
            except ValueError:
                raise ConfigError(f"reset options: subject_id {sid!r} is not in this environment") from None
        whole = bool(options.get("whole_record", False))
        start_opt = options.get("start_step")
        random_start = p.start == "random" and not whole and start_opt is None
        lengths, n_sub, max_steps = self._lengths, data.n_subjects, p.max_steps
        noise, fail_u, can_fail, fail_p = ws.noise, ws.fail_u, ws.can_fail, self._fail_p
        subjects, starts, ends = [], [], []
        for j, i in enumerate(idx):
            rng = self._rngs[i]
            s = int(rng.integers(n_sub)) if fixed is None else fixed
            n = lengths[s]
            if start_opt is not None:
                t0 = int(start_opt)
                if not 0 <= t0 < n:
                    raise ConfigError(f"reset options: start_step {t0} outside 0..{n - 1}")
            elif random_start:
                t0 = int(rng.integers(n))
            else:
                t0 = 0
            end = n if (whole or max_steps is None) else min(n, t0 + max_steps)
            rng.standard_normal(out=noise[j, : end - t0])  # = standard_normal((end - t0, 2))
            can_fail[j] = fail_p[s, t0:end].any()
            if can_fail[j]:
                rng.random(out=fail_u[j, : end - t0])  # = random(end - t0)
            subjects.append(s)
            starts.append(t0)
            ends.append(end)
        return subjects, starts, ends

    def _reset_envs(self, idx: Sequence[int], options: Mapping[str, Any]) -> None:
        """Reset the sub-environments ``idx``: per sub-environment, the same random draws in the same
        order as BPCalibrationEnv.reset; then the state columns of all of them at once."""
        if not len(idx):
            return
        p, tmax = self.params, self._tmax
        whole = bool(options.get("whole_record", False))
        width = tmax if (whole or p.max_steps is None) else min(tmax, p.max_steps)  # longest episode
        ws = self._reset_workspace(width)
        subjects, starts, ends = self._draw_episodes(idx, options, ws)
        s_arr, t0_arr, ix = np.array(subjects, np.int64), np.array(starts, np.int64), np.array(idx, np.int64)
        end_arr = np.array(ends, np.int64)
        m, g = len(idx), ws.values.shape[1]
        for a in range(0, m, g):
            b = min(a + g, m)
            vs.store_readings(
                self._readings,
                self._tables,
                ws,
                ix[a:b],
                s_arr[a:b] * tmax + t0_arr[a:b],
                end_arr[a:b] - t0_arr[a:b],
                (ws.noise[a:b], ws.fail_u[a:b] if ws.can_fail[a:b].any() else None),
                self._discrete,
            )
        base = s_arr * tmax
        subj_all = self._subject_index.copy()
        subj_all[ix] = s_arr
        subj_all.setflags(write=False)
        self._subject_index = subj_all
        self._cursor[_ROW, ix] = base + t0_arr
        self._cursor[_READING, ix] = ix * tmax
        self._cursor[_STEP, ix] = t0_arr
        self._end_row[ix] = base + end_arr
        state = self._state
        state.values[:, ix] = state.initial
        state.since_elapsed[:, ix] = -self.data.t_start_s[s_arr, t0_arr]
        self._t_last[ix] = self.data.t_end_s[s_arr, end_arr - 1]

    def _reset_workspace(self, width: int) -> vs.ResetWorkspace:
        """The reset work space for episodes of up to ``width`` steps (made again when that changes)."""
        ws = self._workspace
        if ws is None or ws.noise.shape[1] != width:
            ws = self._workspace = vs.ResetWorkspace.create(self.num_envs, width)
        return ws

    # ------------------------------------------------------------------ a step's parts
    def _kalman_update(self, recal: np.ndarray, offsets: np.ndarray, updated: np.ndarray) -> None:
        """BPCalibrationEnv._kalman_offsets for every sub-environment (same float operations):
        ``recal`` (reading-matching offsets, twice) becomes the Kalman-updated offsets; the variance
        changes where ``updated``."""
        kf, c = self._kalman, self._const
        # the single env updates from the clipped offsets
        _clip(offsets, c.minus_offset_limit, c.offset_limit, out=offsets)
        add = self._state.add
        has = add[vs.ROW_HAS_CUFF] > 0.0
        grow = np.multiply(kf.q, np.divide(np.add(self._rows.t_end_s, add[vs.ROW_SINCE_CUFF]), 3600.0))
        p = np.add(kf.p, grow)
        k = np.where(has, np.divide(p, np.add(p, kf.r)), 1.0)
        post = np.where(has, np.multiply(np.subtract(1.0, k), p), kf.r)
        np.copyto(kf.p, post, where=updated)
        o22, c22 = offsets.reshape(2, 2, -1), recal.reshape(2, 2, -1)
        c22[...] = o22 + k * (c22 - o22)

    def _observe(self, rows: np.ndarray) -> np.ndarray:
        """Observations at table ``rows`` (one per sub-environment) from the current state."""
        r, sc, st, c, tables = self._rows, self._scratch, self._state, self._const, self._tables
        tables.step_rows.take(rows, 1, r.gathered, "clip")  # rows are valid
        buf = sc.state
        np.multiply(r.factors, st.mul, buf)
        np.add(buf, st.add, buf)
        np.subtract(sc.corrected, sc.centre, sc.corrected)
        np.divide(buf, sc.scale, buf)
        _clip(buf, c.clip_lo, c.clip_hi, buf)
        sc.state32_pairs[...] = sc.in_obs_order  # into observation order (a copy is cheaper than a ufunc)
        obs = tables.obs_static.take(rows, 0)
        k = tables.n_static
        obs[:, k : k + vs.N_ROWS] = sc.state32_t
        t_end = r.t_end_s
        time_left = np.divide(np.subtract(self._t_last, t_end), 3600.0)
        obs[:, k + vs.N_ROWS] = _clip(time_left, c.clip_lo, c.clip_hi)
        if self._limited:
            self._avail = vs.available_readings(self.cuff, self._state, t_end)
        obs[:, k + vs.N_ROWS + 1] = _clip(np.divide(self._avail, 10.0), c.clip_lo, c.clip_hi)
        return obs

    def _discrete_actions(self, actions: Any) -> np.ndarray:
        """Discrete actions as a new int64 array (n,) (InvalidActionError for a wrong shape/type)."""
        n = self.num_envs
        a = np.asarray(actions)
        if a.shape != (n,):
            raise InvalidActionError(f"actions: expected {n} integers in 0..5, got shape {a.shape}")
        if a.dtype.kind not in "iub" and (a.dtype.kind != "f" or not (a == np.round(a)).all()):
            raise InvalidActionError(f"actions: expected integers in 0..5, got {actions!r}")
        if a.dtype.kind == "u" and a.max() > 5:
            raise InvalidActionError(f"actions: outside Discrete(6): {a[a > 5].tolist()}")
        return a.astype(np.int64)

    def _continuous_actions(self, actions: Any) -> np.ndarray:
        """Continuous actions (n, 5) as float32/float64; InvalidActionError if outside [-1, 1]."""
        n = self.num_envs
        a = np.asarray(actions)
        if a.dtype.kind != "f":
            try:
                a = a.astype(np.float64)
            except (TypeError, ValueError):
                raise InvalidActionError(f"actions: expected numbers in [-1, 1], got {actions!r}") from None
        # the single env's test, -1.000001 <= x <= 1.000001 in float64 (NaN fails)
        if a.shape != (n, 5) or not (-1.000001 <= float(a.min()) and float(a.max()) <= 1.000001):
            raise InvalidActionError(
                f"actions: expected shape ({n}, 5) with values in [-1, 1], got {actions!r}"
            )
        return a

    def _apply_discrete(self, actions: Any) -> tuple[np.ndarray, np.ndarray, int]:
        """Nudge the offsets by the discrete ``actions``; (cuff wanted, as float, odd action seen).

        The action rows (offset deltas, request, minus the cost) are looked up in one ``take``.
        """
        a, act = actions, self._act
        if type(a) is not np.ndarray or a.dtype is not _INT64 or a.shape != self._action_shape:
            a = self._discrete_actions(actions)
        # the range check in one reduction: all actions in 0..7 <=> their bitwise OR in 0..7;
        # 6 and 7 make the look-up of want raise IndexError
        m = int(_bitwise_or_reduce(a))
        try:
            if m < 0 or m > 7:
                raise IndexError
            want = act.is_cuff.take(a)
        except IndexError:
            bad = a[(a < 0) | (a > 5)].tolist()
            raise InvalidActionError(f"actions: outside Discrete(6): {bad}") from None
        act.table.take(a, 1, act.looked_up, "clip")  # a is valid
        offsets = self._state.offsets_twice
        np.add(offsets, act.offset_deltas, offsets)
        return want, act.want, m & 1  # no odd action, no cuff request (cheaper than want.any())

    def _apply_continuous(self, actions: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        """Change offsets and gains by the continuous ``actions``; (cuff wanted, as float, any)."""
        a, act, st, c = actions, self._act, self._state, self._const
        if type(a) is not np.ndarray or a.dtype.kind != "f" or a.shape != self._action_shape:
            a = self._continuous_actions(actions)
        at = act.components
        at[...] = a.T  # one row per component (float32 -> float64 is exact)
        # the single env's test, -1.000001 <= x <= 1.000001 in float64 (NaN fails), as |x| <= 1.000001
        if not float(_maximum_reduce(np.abs(at), None)) <= 1.000001:
            self._continuous_actions(actions)  # raises InvalidActionError
        np.multiply(act.step_components, act.continuous_scale, act.steps)
        np.add(st.offsets_pairs, act.offset_steps, st.offsets_pairs)
        gain = st.gain
        np.add(gain, act.gain_steps, gain)
        _clip(gain, c.gain_min, c.gain_max, gain)
        st.gain_obs[...] = gain  # the mul of gain_sbp/dbp
        want = np.greater(act.cuff_component, c.zero)
        return want, want.astype(np.float64), bool(_logical_or_reduce(want))

    def _take_readings(self, want_f: np.ndarray, gain: np.ndarray | None) -> np.ndarray:
        """Readings where ``want_f``: masked (every sub-environment computes, those with a successful
        reading copy the reading block into their state). Returns where a reading failed."""
        r, st = self._rows, self._state
        # gain 1: the offsets (reading - 1 * est == reading - est) are in the readings; else the
        # readings themselves; NaN where the reading fails (no reference, or a failure in AF)
        self._readings.values.take(self._cursor[_READING], 1, r.lookup, "clip")
        ok = np.isfinite(r.lookup[0])
        failed = np.greater(want_f, ok)
        mask = np.logical_and(want_f, ok)  # a reading succeeds
        recal = r.recal_offsets  # recalibrated offsets before the clip in step
        if gain is not None:
            np.subtract(r.recal_offsets_pairs, np.multiply(r.estimate, gain), r.recal_offsets_pairs)
        if not self._recalibrate:
            recal[...] = st.offsets_twice
        elif self._kalman is not None:
            self._kalman_update(recal, st.offsets_twice, mask)
        np.negative(r.to_negate, r.negated)
        st.reading_mask[...] = mask
        np.putmask(st.reading_block, st.reading_mask, r.reading_block)
        np.add(st.cuffs_used, want_f, st.cuffs_used)
        budget = self._budget
        if budget:
            np.subtract(budget, st.cuffs_used, st.budget_left)
            np.divide(st.budget_left, budget, st.budget_left)
        return failed

    def _rewards(self, corr: np.ndarray) -> np.ndarray:
        """Rewards of the corrected estimates ``corr`` (2, n): the single env's float operations,
        ``((0 - cost) - pen_sbp) - pen_dbp`` with pen = 0 where there is no reference, or
        ``(0 - cost) + reward_function(err_sbp, err_dbp, params)`` for a custom reward."""
        r, act = self._rows, self._act
        err = np.subtract(corr, r.reference, act.penalties)
        kind = self._reward_kind
        if kind == 0:
            np.abs(err, err)
            np.divide(err, r.divisor, err)
        elif kind == 1:
            np.multiply(err, err, err)
            np.divide(err, r.divisor, err)
        elif kind == 2:
            np.abs(err, err)
            np.greater(err, r.divisor, err)  # 1.0 / 0.0
        else:
            return self._custom_rewards(err)
        return _subtract_reduce(act.cost_and_penalties, 0)

    def _custom_rewards(self, err: np.ndarray) -> np.ndarray:
        """``(0 - cost) + reward_function(err_sbp, err_dbp, params)``, NaN errors without a reference.

        Raises:
            BprlError: the function's result is not finite or not of shape ``(num_envs,)``.
        """
        np.add(err, self._rows.divisor, err)  # divisor: 0 with a reference, NaN without
        got = np.asarray(self._reward_function(err[0].copy(), err[1].copy(), self.params), np.float64)
        if got.shape not in ((), (self.num_envs,)) or not np.isfinite(got).all():
            raise BprlError(
                f"reward {self.params.reward!r}: expected finite values of shape ({self.num_envs},), got "
                f"{got!r}; the vector env calls the reward function with arrays (see bprl.envs.rewards)"
            )
        return np.add(self._act.minus_cost, got)

    # ----------------------------------------------------------------------- API
    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-environment (or those in ``options["reset_mask"]``).

        ``seed``: an int seeds sub-environment i with ``seed + i``; a list gives one seed each.
        Other options (``subject_id``, ``start_step``, ``whole_record``) apply to every reset
        sub-environment, as in BPCalibrationEnv.reset.

        Raises:
            ConfigError: a seed list of the wrong length, an unknown subject or a bad start step.
        """
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        mask = np.ones(self.num_envs, bool) if mask is None else np.asarray(mask, bool)
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            if len(seeds) != self.num_envs:
                raise ConfigError(f"seed: expected {self.num_envs} seeds, got {len(seeds)}")
            for i, sd in enumerate(seeds):
                if mask[i]:
                    self._rngs[i] = seeding.np_random(sd)[0]
        if not self._started:
            mask = np.ones(self.num_envs, bool)  # a first reset starts every sub-environment
        self._reset_envs(np.flatnonzero(mask).tolist(), options)
        self._autoreset[mask] = False
        self._any_autoreset = bool(self._autoreset.any())
        self._started = True
        cur = self._cursor
        live = self._end_row - cur[_ROW]
        # sub-environments left truncated stay put (at their last row; they autoreset next step)
        cur = self._cursor = cur - np.maximum(1 - live, 0)
        live = live[live > 0]
        self._steps_to_truncation = int(live.min()) if live.size else 1
        info = {"subject_index": self._subject_index, "step": cur[_STEP].copy()}
        return self._observe(cur[_ROW]), info

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment; sub-environments that truncated last step are reset instead.

        Raises:
            InvalidActionError: an action outside the action space.
            ConfigError: called before ``reset``.
            BprlError: a custom reward function returned non-finite values or a wrong shape.
        """
        if not self._started:
            raise ConfigError("step() called before reset()")
        st, c, any_auto = self._state, self._const, self._any_autoreset
        # ---- actions -> offsets (clipped below), gains, cuff requests, costs
        if self._discrete:
            want, want_f, maybe_cuff = self._apply_discrete(actions)
            gain, charge = None, False  # the cost row holds minus the cost of each request
        else:
            want, want_f, maybe_cuff = self._apply_continuous(actions)
            gain, charge = st.gain, True
        if any_auto:  # (the reward of the sub-environments that reset is set to 0 below)
            want &= ~self._autoreset
            want_f = want.astype(np.float64)
        # ---- budget and cuff readings
        refused = failed = self._all_false
        if self._limited:
            charged = np.logical_and(want, np.greater_equal(self._avail, 1.0))
            refused = want ^ charged
            want = charged
            want_f = charged.astype(np.float64)
            charge = True
        if charge:
            np.multiply(want_f, c.minus_cost, self._act.minus_cost)
        st.new_reading.fill(0.0)  # (1 where a reading succeeds: written with the reading block)
        if maybe_cuff:
            failed = self._take_readings(want_f, gain)
        offsets = st.offsets_twice
        _clip(offsets, c.minus_offset_limit, c.offset_limit, offsets)
        # ---- reward on this row with the new calibration
        est = self._rows.estimate
        if gain is None:
            corr = np.add(est, st.offsets)  # gain 1: 1 * est + offset == est + offset
        else:
            corr = np.multiply(est, gain)
            np.add(corr, st.offsets, corr)
        reward = self._rewards(corr)
        info = {
            "subject_index": self._subject_index,
            "step": self._cursor[_STEP],  # replaced, not changed, below
            "t_s": self._rows.t_end_s.copy(),
            "corr_sbp_mmhg": corr[0],
            "corr_dbp_mmhg": corr[1],
            "cuff": want,
            "cuff_failed": failed,
            "cuff_refused": refused,
        }
        return self._advance(reward, info, any_auto)

    def _advance(
        self, reward: np.ndarray, info: dict[str, Any], any_auto: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Move every sub-environment to its next row, autoreset those that truncated last step,
        flag the truncations, and observe."""
        cur = self._cursor = np.add(self._cursor, self._const.one)  # new: the last observation keeps its rows
        rows = cur[_ROW]
        n = self.num_envs
        if any_auto:
            auto = self._autoreset
            reward[auto] = 0.0
            self._reset_envs(np.flatnonzero(auto).tolist(), {})
            self._steps_to_truncation = int((self._end_row - rows).min())
        else:
            self._steps_to_truncation -= 1
        if self._steps_to_truncation <= 0:
            trunc = rows >= self._end_row
            self._autoreset = trunc
            self._any_autoreset = True
            cur = self._cursor = cur - trunc  # truncated: the observation of the last row
            return self._observe(cur[_ROW]), reward, np.zeros(n, bool), trunc.copy(), info
        if any_auto:
            self._autoreset = np.zeros(n, bool)
            self._any_autoreset = False
        return self._observe(rows), reward, np.zeros(n, bool), np.zeros(n, bool), info
