"""Batched vector environment: many subjects stepped at once with numpy array operations.

:class:`BPCalibrationVectorEnv` has exactly the semantics of ``num_envs`` independent
:class:`bprl.env.BPCalibrationEnv` instances (same observations, rewards, truncations and cuff
readings for the same seeds and actions: sub-environment ``i`` is seeded with ``seed + i`` as in
Gymnasium's ``SyncVectorEnv``) and Gymnasium's default next-step autoreset: after a sub-environment
truncates, its next ``step`` ignores the action, resets it and returns the first observation of
the new episode with reward 0.

At 64 sub-environments a step costs about 35 numpy calls on tiny arrays, so their fixed cost
(about a microsecond each) is what counts, not the arithmetic. How the count stays low:

* everything a step reads about one replay row (subject, step) is packed once, at construction,
  into two tables: the observation's static part (normalised features and estimate, float32, one
  ``take``) and a float64 table with one *column* per row (one ``take`` along axis 1): the per-row
  factors of the 16 calibration-state observations, the raw estimate, the reference, the reward
  divisor (``inf`` where there is no reference, so the penalty is 0) and what a cuff reading at
  that row writes into the state;
* all per-environment arrays are "structure of arrays" (one column per sub-environment), so every
  operation runs on contiguous blocks that numpy treats as one flat loop;
* the calibration state is 2 x 16 numbers per sub-environment, ``mul`` and ``add``, such that the
  16 state observations are ``clip((row_factor * mul + add - centre) / scale)``: corrected SBP is
  ``estimate * gain + offset``, hours since the last reading ``(t_end * 1 + -t_reading) / 3600``,
  the offset ``(0 * 0 + offset) / 20`` -- the single environment's float operations, so every
  observation, reward and reading is bit-identical to it (tests/test_env.py checks this);
* a cuff reading is one masked copy of the row's precomputed reading values into the state; the
  readings (reference + seeded noise, minus the raw estimate) are drawn at reset in the single
  environment's order; scalars are 0-d arrays (numpy takes Python floats much more slowly);
* truncations come from a countdown to the nearest episode end; only sub-environments that
  autoreset run Python code of their own (their random draws; the rest of a reset is batched).

Memory: per replay row 44 float64 + (observation size) float32 values, and 4 float64 per
sub-environment and step of the longest record (the drawn readings).

Made by ``gymnasium.make_vec("bprl/BPCalibration-v0", num_envs=64, tables=...)`` (the ids'
``vector_entry_point``) or directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from bprl.env import (
    DBP_C,
    DBP_S,
    DEFAULT_FEATURES,
    N_STATE,
    OBS_CLIP,
    SBP_C,
    SBP_S,
    BPCalibrationEnv,
    CuffModel,
    InvalidActionError,
    ReplayArrays,
)
from bprl.errors import ConfigError
from bprl.tables import ReplaySet

# ---- the 16 calibration-state observations (STATE_FIELDS[3:]), one state row each in mul and add
_NX = N_STATE - 3
_X_CORR, _X_OFF, _X_GAIN = 0, 2, 4  # corr_sbp/dbp, offset_sbp/dbp, gain_sbp/dbp
_X_HAS, _X_NEW, _X_SINCE, _X_ELAPSED = 6, 7, 8, 9
_X_DPAT, _X_DHR, _X_CME, _X_USED, _X_LEFT = 10, 11, 12, 14, 15
_X_CENTRE = np.array([SBP_C, DBP_C])  # only corr_sbp/dbp have a centre
_X_SCALE = np.array(
    [SBP_S, DBP_S, 20.0, 20.0, 0.25, 0.25, 1.0, 1.0, 3600.0, 3600.0, 20.0, 10.0, 20.0, 20.0, 10.0, 1.0]
)
# a successful cuff reading overwrites state rows _W0 .. _W0 + _NW (mul 10..15, add 0..13) with the
# "window" rows of the gathered table: mul of dpat/dhr (1 if PAT/HR were known), zeros, the
# recalibrated offsets, -1 (the add of the gains: gain observation = 1 * gain + -1), has_cuff = 1,
# new_reading = 1, -t_end, the current add of elapsed (copied in), -PAT, -HR, reading - estimate
_W0, _NW = 10, 20
_WA = _NX - _W0  # window row of add row 0
_WOC = _WA + _X_CORR  # window rows of the recalibrated offsets (add of corr and of offset: 4)
# rows of the gathered per-row table: state row factors, raw estimate (2), window end, reference
# (2, NaN -> 0), reward divisor (2, inf without reference), reading succeeds (1/0), reading window
_G_EST, _G_T1, _G_REF, _G_DIV, _G_OK = _NX, _NX + 2, _NX + 3, _NX + 5, _NX + 7
_G_WIN = _G_OK + 1
_G_ROWS = _G_WIN + _NW


class BPCalibrationVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` calibration episodes stepped together (see :class:`bprl.env.BPCalibrationEnv`).

    Arguments are those of :class:`~bprl.env.BPCalibrationEnv` plus ``num_envs``. ``infos`` per step
    is a dict of arrays: ``subject_index`` (read-only), ``step``, ``t_s``, ``corr_sbp_mmhg``,
    ``corr_dbp_mmhg``, ``cuff``, ``cuff_failed``, ``cuff_refused`` (``reset`` gives
    ``subject_index`` and ``step``). ``cuff_failed`` / ``cuff_refused`` may be one shared
    read-only all-False array when no sub-environment can have such an event.
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
        """Create ``num_envs`` sub-environments over the same subjects (arguments as BPCalibrationEnv)."""
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
        p, n = self.params, num_envs
        self._discrete = action_type == "discrete"
        self._ashape = (n,) if self._discrete else (n, 5)
        self._reward_kind = ("mae", "squared", "aami_band").index(p.reward)
        self._tmax = tmax = self.data.feat_obs.shape[1]
        self._build_row_tables()
        self._recal = p.recalibrate_on_cuff
        self._kalman = self._recal and p.recalibration == "kalman"
        self._kq = np.array(float(p.kalman_q_mmhg2_per_h))
        self._kr = np.array([[self.cuff.sd_sbp_mmhg**2], [self.cuff.sd_dbp_mmhg**2]])
        self._kp = np.zeros((2, num_envs))  # Kalman offset error variance after the last reading
        nd, cost = p.nudge_mmhg, float(self.cuff.cost)
        # discrete action -> offset deltas (rows: add of corr_sbp, corr_dbp, offset_sbp, offset_dbp),
        # minus its cost, 1.0 if it asks for a cuff reading
        self._act_table = np.array(
            [[0, 0, nd, -nd, 0, 0], [0, 0, 0, 0, nd, -nd]] * 2 + [[0, -cost, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]],
            dtype=np.float64,
        )
        self._cuff_action = np.array([False, True, False, False, False, False])
        self._cont_scale = np.repeat([[p.max_offset_step_mmhg]] * 2 + [[p.max_gain_step]] * 2, n, axis=1)
        self._cuff_sd = np.array([[self.cuff.sd_sbp_mmhg], [self.cuff.sd_dbp_mmhg]])
        self._cuff_ref_t = np.ascontiguousarray(self.data.cuff_ref.reshape(-1, 2).T)
        self._est_t = np.ascontiguousarray(self.data.est_carry.reshape(-1, 2).T)
        self._budget = self.cuff.budget
        self._bitor = np.bitwise_or.reduce
        # scalars as 0-d arrays: numpy ufuncs take them much faster than Python floats
        f = np.array
        self._negcost = f(-cost)
        self._lim, self._nlim = f(float(p.offset_limit_mmhg)), f(-float(p.offset_limit_mmhg))
        self._gmin, self._gmax = f(float(p.gain_min)), f(float(p.gain_max))
        self._clip_lo, self._clip_hi = f(-OBS_CLIP), f(OBS_CLIP)
        self._zero, self._one, self._one_i = f(0.0), f(1.0), f(1)
        self._rngs: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(n)]
        self._subj = np.zeros(n, np.int64)  # replaced (not changed) at resets: info shares it
        self._subj.setflags(write=False)
        self._base = np.zeros(n, np.int64)  # subject * tmax
        # per sub-environment: the table row the next step acts on, and the column of its cuff
        # reading in _readings (replaced, not changed, by each step: one add moves both)
        self._rc = np.zeros((2, n), np.int64)
        self._rows_obs = self._rc[0]  # rows of the last observation (clamped at episode ends)
        self._endrow = np.ones(n, np.int64)  # one past the episode's last row
        self._until = 1  # steps until the nearest truncation
        # cuff readings of each sub-environment's episode, drawn at reset: column i * tmax + k is
        # step start + k of sub-environment i; rows: reading minus raw estimate (twice: the offsets
        # of a recalibration with gain 1), and for continuous actions the readings themselves
        # (NaN where the reading fails)
        self._readings = np.zeros((4, n * tmax))
        # state: one column per sub-environment, rows mul (16) then add (16); see the module docstring
        z0 = np.zeros(2 * _NX)
        z0[_X_CORR : _X_CORR + 2] = z0[_X_GAIN : _X_GAIN + 2] = 1.0  # gains
        z0[_NX + _X_GAIN : _NX + _X_GAIN + 2] = -1.0
        z0[_X_SINCE] = z0[_X_ELAPSED] = 1.0
        b = self._budget
        z0[_NX + _X_LEFT] = 1.0 if b is None or b > 0 else 0.0
        self._z0 = z0[:, None]
        self._z = z = np.repeat(self._z0, n, axis=1)
        self._mul, self._add = z[:_NX], z[_NX:]
        self._gain = z[_X_CORR : _X_CORR + 2]  # gains: the mul of corr_sbp/dbp and of gain_sbp/dbp
        self._gain_obs = z[_X_GAIN : _X_GAIN + 2]
        self._offs = z[_NX + _X_CORR : _NX + _X_GAIN]  # offsets, twice (add of corr and of offset)
        self._offs22 = self._offs.reshape(2, 2, n)
        self._new = z[_NX + _X_NEW]
        self._used = z[_NX + _X_USED]
        self._left = z[_NX + _X_LEFT]
        self._window = z[_W0 : _W0 + _NW]
        self._since_elapsed = z[_NX + _X_SINCE : _NX + _X_ELAPSED + 1]
        self._elapsed = z[_NX + _X_ELAPSED]
        self._centre = np.repeat(_X_CENTRE[:, None], n, axis=1)
        self._scale = np.repeat(_X_SCALE[:, None], n, axis=1)
        # table columns of the last observation's rows (= the rows the next step acts on), and views
        self._g = g = np.zeros((_G_ROWS, n))
        self._x, self._xc, self._xt = g[:_NX], g[_X_CORR : _X_CORR + 2], g[:_NX].T
        self._g_est, self._g_t1, self._g_ok = g[_G_EST : _G_EST + 2], g[_G_T1], g[_G_OK]
        self._g_ref, self._g_div, self._g_win = g[_G_REF : _G_REF + 2], g[_G_DIV : _G_DIV + 2], g[_G_WIN:]
        self._g_oc = g[_G_WIN + _WOC : _G_WIN + _WOC + 4]  # recalibrated offsets (corr, offset)
        self._g_oc22 = self._g_oc.reshape(2, 2, n)
        self._g_cme = g[_G_ROWS - 2 :]  # reading minus estimate
        self._g_elapsed = g[_G_WIN + _WA + _X_ELAPSED]
        self._offs2 = self._offs[:2]
        self._autoreset = np.zeros(n, bool)
        self._any_auto = False
        self._started = False
        self._false = np.zeros(n, bool)
        self._false.setflags(write=False)

    # ----------------------------------------------------------------- internals
    def _build_row_tables(self) -> None:
        """Pack everything a step reads about a replay row (see the module docstring).

        ``_obs_table`` (rows x observation size, float32): the feature block, normalised estimate
        and its validity, then room for the 16 state observations; ``_dyn_t`` (_G_ROWS x rows,
        float64, one column per row): the row factors of the state observations, raw estimate,
        window end, reference, reward divisor, whether a cuff reading succeeds, and what a
        successful reading writes into the state.
        """
        d, p = self.data, self.params
        s, tmax, k = d.feat_obs.shape
        self._nstatic = k + 3
        ec = d.est_carry
        st = np.zeros((s, tmax, k + 3 + _NX), np.float32)
        st[..., :k] = d.feat_obs
        st[..., k] = np.clip((ec[..., 0] - SBP_C) / SBP_S, -OBS_CLIP, OBS_CLIP)
        st[..., k + 1] = np.clip((ec[..., 1] - DBP_C) / DBP_S, -OBS_CLIP, OBS_CLIP)
        st[..., k + 2] = d.est_valid
        self._obs_table = st.reshape(s * tmax, -1)
        tab = np.zeros((_G_ROWS, s, tmax))
        x = tab[:_NX]  # row factors of the state observations
        x[_X_CORR], x[_X_CORR + 1] = ec[..., 0], ec[..., 1]
        x[_X_GAIN : _X_GAIN + 2] = 1.0
        x[_X_SINCE] = x[_X_ELAPSED] = d.t_end_s
        pat_ok, hr_ok = np.isfinite(d.pat_carry), np.isfinite(d.hr_carry)
        pat_z = np.where(pat_ok, d.pat_carry, 0.0)
        hr_z = np.where(hr_ok, d.hr_carry, 0.0)
        x[_X_DPAT], x[_X_DHR] = pat_z, hr_z
        tab[_G_EST], tab[_G_EST + 1] = ec[..., 0], ec[..., 1]
        tab[_G_T1] = d.t_end_s
        ref = np.moveaxis(d.ref, 2, 0)
        has_ref = np.isfinite(ref)
        tab[_G_REF : _G_REF + 2] = np.where(has_ref, ref, 0.0)
        # penalty = |err| / divisor (mae), err^2 / divisor (squared), |err| > divisor (aami_band)
        div = (p.reward_scale_mmhg, p.reward_scale_mmhg * p.reward_scale_mmhg, p.aami_band_mmhg)
        tab[_G_DIV : _G_DIV + 2] = np.where(has_ref, div[self._reward_kind], np.inf)
        tab[_G_OK] = np.isfinite(d.cuff_ref).all(axis=2)
        w = tab[_G_WIN:]  # what a successful reading at this row writes (see _W0)
        w[0], w[1] = pat_ok, hr_ok
        w[_WA + _X_GAIN : _WA + _X_GAIN + 2] = -1.0
        w[_WA + _X_HAS] = w[_WA + _X_NEW] = 1.0
        w[_WA + _X_SINCE] = -d.t_end_s
        w[_WA + _X_DPAT], w[_WA + _X_DHR] = -pat_z, -hr_z
        self._dyn_t = tab.reshape(_G_ROWS, s * tmax)

    def _reset_envs(self, idx: Sequence[int], options: Mapping[str, Any]) -> None:
        """Reset the sub-environments ``idx``: per sub-environment, the same random draws in the same
        order as BPCalibrationEnv.reset; then the state columns of all of them at once."""
        if not len(idx):
            return
        data, p, tmax = self.data, self.params, self._tmax
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
        lengths, n_sub, max_steps = data.lengths, data.n_subjects, p.max_steps
        subj, t0s, ends, noises = [], [], [], []
        for i in idx:
            rng = self._rngs[i]
            s = int(rng.integers(n_sub)) if fixed is None else fixed
            n = int(lengths[s])
            if start_opt is not None:
                t0 = int(start_opt)
                if not 0 <= t0 < n:
                    raise ConfigError(f"reset options: start_step {t0} outside 0..{n - 1}")
            elif random_start:
                t0 = int(rng.integers(n))
            else:
                t0 = 0
            end = n if (whole or max_steps is None) else min(n, t0 + max_steps)
            noises.append(rng.standard_normal((end - t0, 2)))
            subj.append(s)
            t0s.append(t0)
            ends.append(end)
        # the episodes' cuff readings, all at once: reference + sd * noise (the single env's
        # operations), minus the raw estimate
        lens = np.asarray(ends) - np.asarray(t0s)
        first = np.cumsum(lens) - lens  # where each episode starts in the concatenation
        k = np.arange(int(lens.sum())) - np.repeat(first, lens)  # step within the episode
        src = np.repeat(np.asarray(subj) * tmax + np.asarray(t0s), lens) + k
        dst = np.repeat(np.asarray(idx) * tmax, lens) + k
        noise = np.concatenate(noises) if len(noises) > 1 else noises[0]
        reading = np.multiply(noise.T, self._cuff_sd, out=np.empty((2, len(k))))
        np.add(self._cuff_ref_t.take(src, axis=1), reading, out=reading)
        cme = np.subtract(reading, self._est_t.take(src, axis=1))
        for r, values in enumerate((cme, cme if self._discrete else reading)):
            self._readings[2 * r][dst] = values[0]  # 1-D fancy assignments are the fast ones
            self._readings[2 * r + 1][dst] = values[1]
        ix = np.asarray(idx, np.int64)
        s_arr, t0_arr = np.asarray(subj, np.int64), np.asarray(t0s, np.int64)
        base = s_arr * tmax
        subj_all = self._subj.copy()
        subj_all[ix] = s_arr
        subj_all.setflags(write=False)
        self._subj = subj_all
        self._base[ix] = base
        self._rc[0, ix] = base + t0_arr
        self._rc[1, ix] = ix * tmax
        self._endrow[ix] = base + np.asarray(ends, np.int64)
        self._z[:, ix] = self._z0
        self._since_elapsed[:, ix] = -data.t_start_s[s_arr, t0_arr]

    def _kalman_update(self, oc: np.ndarray, offs: np.ndarray, upd: np.ndarray) -> None:
        """BPCalibrationEnv._kalman_offsets for every sub-environment (same float operations):
        ``oc`` (reading-matching offsets) becomes the Kalman-updated offsets; P changes where ``upd``."""
        np.minimum(offs, self._lim, out=offs)  # the single env updates from the clipped offsets
        np.maximum(offs, self._nlim, out=offs)
        has = self._add[_X_HAS] > 0.0
        grow = np.multiply(self._kq, np.divide(np.add(self._g_t1, self._add[_X_SINCE]), 3600.0))
        p = np.add(self._kp, grow)
        k = np.where(has, np.divide(p, np.add(p, self._kr)), 1.0)
        post = np.where(has, np.multiply(np.subtract(1.0, k), p), self._kr)
        np.copyto(self._kp, post, where=upd)
        o22, c22 = offs.reshape(2, 2, -1), oc.reshape(2, 2, -1)
        c22[...] = o22 + k * (c22 - o22)

    def _observe(self, rows: np.ndarray) -> np.ndarray:
        """Observations at table ``rows`` (one per sub-environment) from the current state."""
        x = self._x
        np.take(self._dyn_t, rows, axis=1, out=self._g, mode="clip")  # rows are valid
        self._rows_obs = rows
        np.multiply(x, self._mul, out=x)
        np.add(x, self._add, out=x)
        np.subtract(self._xc, self._centre, out=self._xc)
        np.divide(x, self._scale, out=x)
        np.minimum(x, self._clip_hi, out=x)
        np.maximum(x, self._clip_lo, out=x)
        obs = self._obs_table.take(rows, axis=0)
        obs[:, self._nstatic :] = self._xt
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

    # ----------------------------------------------------------------------- API
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every sub-environment (or those in ``options["reset_mask"]``).

        ``seed``: an int seeds sub-environment i with ``seed + i``; a list gives one seed each.
        Other options (``subject_id``, ``start_step``, ``whole_record``) apply to every reset
        sub-environment, as in BPCalibrationEnv.reset.
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
        self._any_auto = bool(self._autoreset.any())
        self._started = True
        rows = np.minimum(self._rc[0], self._endrow - 1)  # sub-environments left truncated stay put
        live = self._endrow - self._rc[0]
        live = live[live > 0]
        self._until = int(live.min()) if live.size else 1
        info = {"subject_index": self._subj, "step": rows - self._base}
        return self._observe(rows), info

    def step(self, actions: Any):
        """Step every sub-environment; sub-environments that truncated last step are reset instead."""
        if not self._started:
            raise ConfigError("step() called before reset()")
        est, offs, any_auto = self._g_est, self._offs, self._any_auto  # est: of this step's rows
        # ---- actions -> offsets (clipped below), gains, cuff requests, costs
        if self._discrete:
            a = actions
            if type(a) is not np.ndarray or a.dtype != np.int64 or a.shape != self._ashape:
                a = self._discrete_actions(actions)
            # the range check in one reduction: all actions in 0..7 <=> their bitwise OR in 0..7;
            # 6 and 7 make the table look-up raise IndexError
            m = self._bitor(a)
            try:
                if m < 0 or m > 7:
                    raise IndexError
                tab = self._act_table.take(a, axis=1)
            except IndexError:
                bad = a[(a < 0) | (a > 5)].tolist()
                raise InvalidActionError(f"actions: outside Discrete(6): {bad}") from None
            np.add(offs, tab[:4], out=offs)
            want = self._cuff_action.take(a)
            negcost, want_f = tab[4], tab[5]  # want_f: want as float (faster with the float rows)
            gain = None
            maybe_cuff = m & 1  # no odd action, no cuff request (cheaper than want.any())
        else:
            a = actions
            if type(a) is not np.ndarray or a.dtype.kind != "f" or a.shape != self._ashape:
                a = self._continuous_actions(actions)
            at = a.T.astype(np.float64)  # one row per component (float32 -> float64 is exact)
            # the single env's test, -1.000001 <= x <= 1.000001 in float64 (NaN fails)
            if not (-1.000001 <= float(at.min()) and float(at.max()) <= 1.000001):
                self._continuous_actions(actions)  # raises InvalidActionError
            d = np.multiply(at[:4], self._cont_scale)
            np.add(self._offs22, d[:2], out=self._offs22)
            gain = self._gain
            np.add(gain, d[2:4], out=gain)
            np.minimum(gain, self._gmax, out=gain)
            np.maximum(gain, self._gmin, out=gain)
            self._gain_obs[...] = gain  # the mul of gain_sbp/dbp
            want = np.greater(at[4], self._zero)
            want_f = want.astype(np.float64)
            negcost = None
            maybe_cuff = want.any()
        if any_auto:
            want &= ~self._autoreset
            want_f = want.astype(np.float64)
        # ---- cuff readings (masked: every sub-environment computes, those with a reading copy)
        refused = failed = self._false
        budget = self._budget
        if budget is not None:
            charged = np.logical_and(want, np.less(self._used, budget))
            refused = want ^ charged
            want = charged
            want_f = charged.astype(np.float64)
            negcost = None
        if negcost is None:
            negcost = np.multiply(want_f, self._negcost)
        self._new[:] = 0.0
        if maybe_cuff:
            ok = self._g_ok
            failed = np.greater(want_f, ok)
            oc = self._g_oc  # recalibrated offsets before the clip below
            if gain is None:  # gain 1: reading - 1 * est == reading - est
                self._readings.take(self._rc[1], axis=1, out=oc, mode="clip")
                np.copyto(self._g_cme, oc[:2])
            else:
                r = self._readings.take(self._rc[1], axis=1, mode="clip")
                np.copyto(self._g_cme, r[:2])
                np.subtract(r[2:4], np.multiply(est, gain), out=self._g_oc22)
            if not self._recal:
                oc[...] = offs
            elif self._kalman:
                self._kalman_update(oc, offs, np.logical_and(want_f, ok))
            self._g_elapsed[...] = self._elapsed  # unchanged by a reading
            np.copyto(self._window, self._g_win, where=np.logical_and(want_f, ok))
            np.add(self._used, want_f, out=self._used)
            if budget:
                np.subtract(budget, self._used, out=self._left)
                np.divide(self._left, budget, out=self._left)
        np.minimum(offs, self._lim, out=offs)
        np.maximum(offs, self._nlim, out=offs)
        # ---- reward on this row with the new calibration: the single env's float operations,
        # ((0 - cost) - pen_sbp) - pen_dbp, with pen = 0 where there is no reference
        if gain is None:
            corr = np.add(est, self._offs2)  # gain 1: 1 * est + offset == est + offset
        else:
            corr = np.multiply(est, gain)
            np.add(corr, self._offs2, out=corr)
        err = np.subtract(corr, self._g_ref)
        kind = self._reward_kind
        if kind == 0:
            np.abs(err, out=err)
            np.divide(err, self._g_div, out=err)
        elif kind == 1:
            np.multiply(err, err, out=err)
            np.divide(err, self._g_div, out=err)
        else:
            np.abs(err, out=err)
            err = np.greater(err, self._g_div)
        reward = np.subtract(negcost, err[0])
        np.subtract(reward, err[1], out=reward)
        info = {
            "subject_index": self._subj,
            "step": np.subtract(self._rows_obs, self._base),
            "t_s": self._g_t1.copy(),
            "corr_sbp_mmhg": corr[0],
            "corr_dbp_mmhg": corr[1],
            "cuff": want,
            "cuff_failed": failed,
            "cuff_refused": refused,
        }
        # ---- advance, autoreset, truncation
        rc = self._rc = np.add(self._rc, self._one_i)  # new: the last observation keeps its rows
        rows = rc[0]
        n = self.num_envs
        if any_auto:
            auto = self._autoreset
            reward[auto] = 0.0
            self._reset_envs(np.flatnonzero(auto).tolist(), {})
            self._until = int((self._endrow - rows).min())
        else:
            self._until -= 1
        if self._until <= 0:
            trunc = rows >= self._endrow
            self._autoreset = trunc
            self._any_auto = True
            return self._observe(rows - trunc), reward, np.zeros(n, bool), trunc.copy(), info
        if any_auto:
            self._autoreset = np.zeros(n, bool)
            self._any_auto = False
        return self._observe(rows), reward, np.zeros(n, bool), np.zeros(n, bool), info
