"""Batched vector environment: many subjects stepped at once with numpy array operations.

:class:`BPCalibrationVectorEnv` has exactly the semantics of ``num_envs`` independent
:class:`bprl.env.BPCalibrationEnv` instances (same observations, rewards, truncations and cuff
readings for the same seeds and actions: sub-environment ``i`` is seeded with ``seed + i`` as in
Gymnasium's ``SyncVectorEnv``) and Gymnasium's default next-step autoreset: after a sub-environment
truncates, its next ``step`` ignores the action, resets it and returns the first observation of
the new episode with reward 0.

At 64 sub-environments a step costs about 30 numpy calls on tiny arrays, so their fixed cost
(about a microsecond each) is what counts, not the arithmetic. How the count stays low:

* everything a step reads about one replay row (subject, step) is packed once, at construction,
  into two tables with one row per replay row: the observation's static part (normalised features
  and estimate, float32) and a float64 table of the per-row factors of the 16 calibration-state
  observations, the reference, the reward divisor (``inf`` where there is no reference, so the
  penalty is 0), whether a cuff reading there succeeds and whether PAT / HR are known; a step takes
  its rows of both (contiguous rows: cheap) and copies the float64 ones into columns;
* all per-environment arrays are "structure of arrays" (one column per sub-environment), so every
  operation runs on contiguous blocks that numpy treats as one flat loop; views are made once;
* the calibration state is 2 x 16 numbers per sub-environment, ``mul`` and ``add``, such that the
  16 state observations are ``clip((row_factor * mul + add - centre) / scale)``: corrected SBP is
  ``estimate * gain + offset``, hours since the last reading ``(t_end * 1 + -t_reading) / 3600``,
  the offset ``(0 * 0 + offset) / 20`` -- the single environment's float operations, so every
  observation, reward and reading is bit-identical to it (tests/test_env.py checks this). The state
  rows are ordered (see ``_S_OFF``) so that all a cuff reading writes is one block, filled by one
  look-up of the episode's readings and one negation of row factors and copied in by one
  ``putmask``; one copy puts the observations back in their order;
* the readings (reference + seeded noise, minus the raw estimate) are drawn at reset in the single
  environment's order; the reward is one reduction, ``(minus cost - penalty SBP) - penalty DBP``;
  ufuncs get ``out`` as a positional argument and scalars as 0-d arrays (both are faster);
* truncations come from a countdown to the nearest episode end; only sub-environments that
  autoreset run Python code of their own (their random draws; the rest of a reset is batched, in
  reused buffers: fresh large arrays would cost page faults at every reset).

Memory: per replay row 27 float64 + (observation size) float32 values, and about 8 float64 per
sub-environment and step of the longest record (the drawn readings, 6 rows, and the draws).

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

try:  # the clip ufunc itself: np.clip and ndarray.clip add a Python layer around it
    from numpy._core.umath import clip as _clip
except ImportError:  # pragma: no cover - other numpy layouts: the public wrapper, same results
    _clip = np.clip

# ---- the 16 calibration-state observations (STATE_FIELDS[3:]) as state rows (one each in mul and
# add; see the module docstring). The rows are ordered so that what a cuff reading writes is one
# block (see _W0) and its parts are blocks too; in pairs of rows they are the observations' pairs
# with each two neighbouring pairs swapped: offset, corr | has/new, gain | dpat/dhr, since/elapsed |
# used/left, cme. Row factor, mul, add (obs = clip((factor * mul + add - centre) / scale)):
_NX = N_STATE - 3
_S_OFF = 0  # offset_sbp/dbp: 0, 0, offset
_S_CORR = 2  # corr_sbp/dbp: raw estimate, gain, offset (centre SBP_C/DBP_C)
_S_HAS, _S_NEW = 4, 5  # has_cuff, new_reading: -1, 0, 0 or 1
_S_GAIN = 6  # gain_sbp/dbp: 1, gain, -1
_S_DPAT, _S_DHR = 8, 9  # PAT, HR minus at the last reading: PAT (0 if unknown), 1 if it was known, -PAT then
_S_SINCE, _S_ELAPSED = 10, 11  # window end, 1, minus that at the last reading / the episode start
_S_USED, _S_LEFT = 12, 13  # 0, 0, requests used, share of the budget left
_S_CME = 14  # cuff minus estimate at the last reading: 1, that, 0
_S_CENTRE = np.array([SBP_C, DBP_C])  # only corr_sbp/dbp have a centre
_S_SCALE = np.array(
    [20.0, 20.0, SBP_S, DBP_S, 1.0, 1.0, 0.25, 0.25, 20.0, 10.0, 3600.0, 3600.0, 10.0, 1.0, 20.0, 20.0]
)
# a successful cuff reading overwrites state rows _W0 .. _W0 + _NW of [mul; add] (mul 8..15, add
# 0..10) with the "window" rows of _g: mul of dpat/dhr (1 if PAT/HR were known there: gathered
# with the row factors), 1, 1 (mul of since/elapsed), 0, 0 (mul of used/left), then what the
# step's look-up in _readings fills (_WR .. _WR + _NR): reading - estimate (mul of cme), the
# recalibrated offsets twice (add of offset and of corr), then minus the row factors of
# has/new .. since (one negative): 1, 1, -1, -1 (add of the gains), -PAT, -HR, -t_end
_W0, _NW = _S_DPAT, _NX + _S_SINCE + 1 - _S_DPAT
_WR, _NR = _S_CME - _W0, 6
_WOC = _WR + 2  # window rows of the recalibrated offsets (add of offset and of corr)
_WN = _NX + _S_HAS - _W0  # window rows minus the row factors of has_cuff .. since
# rows of the per-step buffer _g: the row factors (their corr rows are the raw estimate, since the
# window end), reference (2, NaN -> 0), reward divisor (2, inf without reference), reading succeeds
# (1/0), then the reading window; each step gathers the first _G_TAKE rows from the table (up to
# the window's first two rows), the rest of the window is constant or filled by a reading
_G_REF, _G_DIV, _G_OK, _G_WIN = _NX, _NX + 2, _NX + 4, _NX + 5
_G_TAKE = _G_WIN + 2
_G_ROWS = _G_WIN + _NW
_RESET_GROUP = 1 << 15  # resets compute the cuff readings of up to this many steps at once


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
        self._lengths = [int(v) for v in self.data.lengths]
        self._build_row_tables()
        self._recal = p.recalibrate_on_cuff
        self._kalman = self._recal and p.recalibration == "kalman"
        self._kq = np.array(float(p.kalman_q_mmhg2_per_h))
        self._kr = np.array([[self.cuff.sd_sbp_mmhg**2], [self.cuff.sd_dbp_mmhg**2]])
        self._kp = np.zeros((2, num_envs))  # Kalman offset error variance after the last reading
        nd, cost = p.nudge_mmhg, float(self.cuff.cost)
        # discrete action -> offset deltas (rows: add of offset_sbp, offset_dbp, corr_sbp, corr_dbp),
        # 1.0 if it asks for a cuff reading, minus its cost
        self._act_table = np.array(
            [[0, 0, nd, -nd, 0, 0], [0, 0, 0, 0, nd, -nd]] * 2 + [[0, 1, 0, 0, 0, 0], [0, -cost, 0, 0, 0, 0]],
            dtype=np.float64,
        )
        # per step: the looked-up rows of the actions (offset deltas, cuff request, minus the cost)
        # and the penalties: reward = (minus cost - penalty SBP) - penalty DBP in one reduction
        self._ab = np.zeros((8, n))
        self._ab_act, self._ab_offs = self._ab[:6], self._ab[:4]
        self._want_f, self._negcost_f = self._ab[4], self._ab[5]
        self._pen, self._cost_pen = self._ab[6:], self._ab[5:]
        self._sub_reduce = np.subtract.reduce
        self._cuff_action = np.array([False, True, False, False, False, False])
        self._cont_scale = np.repeat([[p.max_offset_step_mmhg]] * 2 + [[p.max_gain_step]] * 2, n, axis=1)
        # continuous actions, one row per component, and the offset and gain steps they ask for
        self._at, self._d = np.zeros((5, n)), np.zeros((4, n))
        self._at_steps, self._at_cuff = self._at[:4], self._at[4]
        self._d_offs, self._d_gain = self._d[:2], self._d[2:]
        self._cuff_sd = np.array([[self.cuff.sd_sbp_mmhg], [self.cuff.sd_dbp_mmhg]])
        # per replay row: cuff reference (SBP, DBP) and raw estimate (SBP, DBP), padded with tmax
        # rows so that any row starts a window of up to tmax rows (the episodes' reading windows)
        rows = self.data.cuff_ref.shape[0] * tmax
        self._ref_est = np.zeros((rows + tmax, 4))
        self._ref_est[:rows, :2] = self.data.cuff_ref.reshape(-1, 2)
        self._ref_est[:rows, 2:] = self.data.est_carry.reshape(-1, 2)
        self._cuff_sd3 = self._cuff_sd[:, :, None]
        self._budget = self.cuff.budget
        self._bitor, self._int64 = np.bitwise_or.reduce, np.dtype(np.int64)
        self._max_reduce, self._or_reduce = np.maximum.reduce, np.logical_or.reduce
        # scalars as 0-d arrays: numpy ufuncs take them much faster than Python floats
        f = np.array
        self._negcost = f(-cost)
        self._lim, self._nlim = f(float(p.offset_limit_mmhg)), f(-float(p.offset_limit_mmhg))
        self._gmin, self._gmax = f(float(p.gain_min)), f(float(p.gain_max))
        self._clip_lo, self._clip_hi = f(-OBS_CLIP), f(OBS_CLIP)
        self._zero, self._one_i = f(0.0), f(1)
        self._rngs: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(n)]
        self._subj = np.zeros(n, np.int64)  # replaced (not changed) at resets: info shares it
        self._subj.setflags(write=False)
        # per sub-environment: the table row the next step acts on (that of the last observation),
        # the column of its cuff reading in _readings, and its step in the record (info["step"]);
        # replaced, not changed, by each step: one add moves all three
        self._rc = np.zeros((3, n), np.int64)
        self._endrow = np.ones(n, np.int64)  # one past the episode's last row
        self._until = 1  # steps until the nearest truncation
        # cuff readings of each sub-environment's episode, drawn at reset: column i * tmax + k is
        # step start + k of sub-environment i; rows: what a reading writes into the window rows
        # _WR .. _WR + _NR: reading minus raw estimate (the mul of cme_sbp/dbp), then twice (the
        # add of offset and of corr) the offsets of a recalibration with gain 1 (= reading minus
        # estimate) or, for continuous actions, the readings themselves (NaN where it fails)
        self._readings = np.zeros((_NR, n * tmax))
        self._readings3 = self._readings.reshape(_NR, n, tmax)
        self._arange_t = np.arange(tmax)
        self._ws: tuple[np.ndarray, ...] = ()  # work space of resets, see _work_space
        # state: one column per sub-environment, rows mul (16) then add (16); see _S_OFF
        z0 = np.zeros(2 * _NX)
        z0[_S_CORR : _S_CORR + 2] = z0[_S_GAIN : _S_GAIN + 2] = 1.0  # gains
        z0[_NX + _S_GAIN : _NX + _S_GAIN + 2] = -1.0
        z0[_S_SINCE] = z0[_S_ELAPSED] = 1.0
        b = self._budget
        z0[_NX + _S_LEFT] = 1.0 if b is None or b > 0 else 0.0
        self._z0 = z0[:, None]
        self._z = z = np.repeat(self._z0, n, axis=1)
        self._mul, self._add = z[:_NX], z[_NX:]
        self._gain = z[_S_CORR : _S_CORR + 2]  # gains: the mul of corr_sbp/dbp and of gain_sbp/dbp
        self._gain_obs = z[_S_GAIN : _S_GAIN + 2]
        self._offs = z[_NX + _S_OFF : _NX + _S_CORR + 2]  # offsets, twice (add of offset and of corr)
        self._offs22 = self._offs.reshape(2, 2, n)
        self._offs2 = self._offs[:2]
        self._new = z[_NX + _S_NEW]
        self._used = z[_NX + _S_USED]
        self._left = z[_NX + _S_LEFT]
        self._window = z[_W0 : _W0 + _NW]
        self._window_mask = np.zeros((_NW, n), bool)  # where a reading is written (putmask)
        self._since_elapsed = z[_NX + _S_SINCE : _NX + _S_ELAPSED + 1]
        self._centre = np.repeat(_S_CENTRE[:, None], n, axis=1)
        self._scale = np.repeat(_S_SCALE[:, None], n, axis=1)
        # table columns of the last observation's rows (= the rows the next step acts on), the
        # reading window (see _W0), and views
        self._g = g = np.zeros((_G_ROWS, n))
        self._g_take = g[:_G_TAKE]
        self._x = g[:_NX]
        self._g_est, self._g_t1, self._g_ok = g[_S_CORR : _S_CORR + 2], g[_S_SINCE], g[_G_OK]
        self._g_ref, self._g_div, self._g_win = g[_G_REF : _G_REF + 2], g[_G_DIV : _G_DIV + 2], g[_G_WIN:]
        w = self._g_win
        w[_S_SINCE - _W0 : _S_ELAPSED + 1 - _W0] = 1.0  # constant: mul of since/elapsed (of used/left: 0)
        self._g_read = w[_WR : _WR + _NR]  # filled from _readings
        self._g_oc = w[_WOC : _WOC + 4]  # recalibrated offsets (offset, corr)
        self._g_oc22 = self._g_oc.reshape(2, 2, n)
        self._x_neg, self._g_neg = g[_S_HAS : _S_SINCE + 1], w[_WN:]  # minus the one is the other
        # the state observations: in state row order, then in observation order (pairs of pairs swapped)
        self._buf = np.zeros((_NX, n))
        self._buf_c = self._buf[_S_CORR : _S_CORR + 2]
        self._buf_perm = self._buf.reshape(4, 2, 2, n)[:, ::-1]
        self._obs_buf = np.zeros((_NX, n), np.float32)  # (the copy into it casts, contiguously)
        self._obs_buf4, self._obs_buf_t = self._obs_buf.reshape(4, 2, 2, n), self._obs_buf.T
        self._autoreset = np.zeros(n, bool)
        self._any_auto = False
        self._started = False
        self._false = np.zeros(n, bool)
        self._false.setflags(write=False)

    # ----------------------------------------------------------------- internals
    def _build_row_tables(self) -> None:
        """Pack everything a step reads about a replay row (see the module docstring).

        ``_obs_table`` (rows x observation size, float32): the feature block, normalised estimate
        and its validity, then room for the 16 state observations; ``_dyn_t`` (_G_TAKE x rows,
        float64, one column per row): the row factors of the state observations, reference,
        reward divisor, whether a cuff reading succeeds, and whether PAT / HR are known (the
        first two rows of what a successful reading writes into the state).
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
        tab = np.zeros((_G_TAKE, s, tmax))
        x = tab[:_NX]  # row factors of the state observations (see _S_OFF)
        x[_S_CORR], x[_S_CORR + 1] = ec[..., 0], ec[..., 1]
        x[_S_HAS] = x[_S_NEW] = -1.0
        x[_S_GAIN : _S_GAIN + 2] = x[_S_CME : _S_CME + 2] = 1.0
        x[_S_SINCE] = x[_S_ELAPSED] = d.t_end_s
        pat_ok, hr_ok = np.isfinite(d.pat_carry), np.isfinite(d.hr_carry)
        pat_z = np.where(pat_ok, d.pat_carry, 0.0)
        hr_z = np.where(hr_ok, d.hr_carry, 0.0)
        x[_S_DPAT], x[_S_DHR] = pat_z, hr_z
        ref = np.moveaxis(d.ref, 2, 0)
        has_ref = np.isfinite(ref)
        tab[_G_REF : _G_REF + 2] = np.where(has_ref, ref, 0.0)
        # penalty = |err| / divisor (mae), err^2 / divisor (squared), |err| > divisor (aami_band)
        div = (p.reward_scale_mmhg, p.reward_scale_mmhg * p.reward_scale_mmhg, p.aami_band_mmhg)
        tab[_G_DIV : _G_DIV + 2] = np.where(has_ref, div[self._reward_kind], np.inf)
        tab[_G_OK] = np.isfinite(d.cuff_ref).all(axis=2)
        tab[_G_WIN], tab[_G_WIN + 1] = pat_ok, hr_ok  # the mul of dpat/dhr after a reading here
        self._dyn_t = np.ascontiguousarray(tab.reshape(_G_TAKE, s * tmax).T)
        self._dyn_rows = np.zeros((self.num_envs, _G_TAKE))

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
        lengths, n_sub, max_steps = self._lengths, data.n_subjects, p.max_steps
        width = tmax if (whole or max_steps is None) else min(tmax, max_steps)  # longest episode
        noise = self._work_space(width)[0]
        subj, t0s, ends = [], [], []
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
            subj.append(s)
            t0s.append(t0)
            ends.append(end)
        s_arr, t0_arr, ix = np.array(subj, np.int64), np.array(t0s, np.int64), np.array(idx, np.int64)
        end_arr = np.array(ends, np.int64)
        m, g = len(idx), self._ws[3].shape[1]
        for a in range(0, m, g):
            b = min(a + g, m)
            self._store_readings(
                ix[a:b], s_arr[a:b] * tmax + t0_arr[a:b], end_arr[a:b] - t0_arr[a:b], noise[a:b]
            )
        base = s_arr * tmax
        subj_all = self._subj.copy()
        subj_all[ix] = s_arr
        subj_all.setflags(write=False)
        self._subj = subj_all
        self._rc[0, ix] = base + t0_arr
        self._rc[1, ix] = ix * tmax
        self._rc[2, ix] = t0_arr
        self._endrow[ix] = base + end_arr
        self._z[:, ix] = self._z0
        self._since_elapsed[:, ix] = -data.t_start_s[s_arr, t0_arr]

    def _work_space(self, width: int) -> tuple[np.ndarray, ...]:
        """Work space of resets with episodes of up to ``width`` steps, reused (fresh large arrays
        would cost page faults at every reset): the standard normal draws of every sub-environment,
        then for groups of up to _RESET_GROUP steps the table rows, their cuff reference and
        estimate, the rows of _readings."""
        if not self._ws or self._ws[0].shape[1] != width:
            n = self.num_envs
            g = max(1, min(n, _RESET_GROUP // width))
            self._ws = (
                np.zeros((n, width, 2)),
                np.zeros(g * width, np.int64),
                np.zeros((g * width, 4)),
                np.zeros((_NR, g, width)),
            )
        return self._ws

    def _store_readings(self, ix: np.ndarray, start: np.ndarray, lens: np.ndarray, noise: np.ndarray) -> None:
        """Write the cuff readings of the episodes of sub-environments ``ix`` (starting at table rows
        ``start``, ``lens`` steps, standard normal draws ``noise``) into _readings: reference +
        sd * noise (the single env's operations), and minus the raw estimate. All episodes are
        computed over the longest one's length (columns past an episode's end are never read)."""
        m, w = len(ix), int(lens.max())
        _, rows, ref_est, vals = self._ws
        rows = rows[: m * w].reshape(m, w)
        np.add(start[:, None], self._arange_t[:w], out=rows)
        ref_est = ref_est[: m * w]
        self._ref_est.take(rows.ravel(), axis=0, out=ref_est, mode="clip")  # rows are valid
        ref_est = ref_est.reshape(m, w, 4).transpose(2, 0, 1)  # (4, m, w): reference, estimate
        vals = vals[:, :m, :w]
        reading = vals[2:4]
        np.multiply(noise[:, :w].transpose(2, 0, 1), self._cuff_sd3, out=reading)
        np.add(ref_est[:2], reading, out=reading)
        np.subtract(reading, ref_est[2:], out=vals[:2])
        if self._discrete:  # the offsets of a recalibration with gain 1
            reading[...] = vals[:2]
        vals[4:] = reading
        self._readings3[:, ix, :w] = vals

    def _kalman_update(self, oc: np.ndarray, offs: np.ndarray, upd: np.ndarray) -> None:
        """BPCalibrationEnv._kalman_offsets for every sub-environment (same float operations):
        ``oc`` (reading-matching offsets) becomes the Kalman-updated offsets; P changes where ``upd``."""
        _clip(offs, self._nlim, self._lim, out=offs)  # the single env updates from the clipped offsets
        has = self._add[_S_HAS] > 0.0
        grow = np.multiply(self._kq, np.divide(np.add(self._g_t1, self._add[_S_SINCE]), 3600.0))
        p = np.add(self._kp, grow)
        k = np.where(has, np.divide(p, np.add(p, self._kr)), 1.0)
        post = np.where(has, np.multiply(np.subtract(1.0, k), p), self._kr)
        np.copyto(self._kp, post, where=upd)
        o22, c22 = offs.reshape(2, 2, -1), oc.reshape(2, 2, -1)
        c22[...] = o22 + k * (c22 - o22)

    def _observe(self, rows: np.ndarray) -> np.ndarray:
        """Observations at table ``rows`` (one per sub-environment) from the current state."""
        self._dyn_t.take(rows, 0, self._dyn_rows, "clip")  # rows are valid
        self._g_take[...] = self._dyn_rows.T
        buf = self._buf
        np.multiply(self._x, self._mul, buf)
        np.add(buf, self._add, buf)
        np.subtract(self._buf_c, self._centre, self._buf_c)
        np.divide(buf, self._scale, buf)
        _clip(buf, self._clip_lo, self._clip_hi, buf)
        self._obs_buf4[...] = self._buf_perm  # into observation order (a copy is cheaper than a ufunc)
        obs = self._obs_table.take(rows, axis=0)
        obs[:, self._nstatic :] = self._obs_buf_t
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
        rc = self._rc
        live = self._endrow - rc[0]
        # sub-environments left truncated stay put (at their last row; they autoreset next step)
        rc = self._rc = rc - np.maximum(1 - live, 0)
        live = live[live > 0]
        self._until = int(live.min()) if live.size else 1
        info = {"subject_index": self._subj, "step": rc[2].copy()}
        return self._observe(rc[0]), info

    def step(self, actions: Any):
        """Step every sub-environment; sub-environments that truncated last step are reset instead."""
        if not self._started:
            raise ConfigError("step() called before reset()")
        est, offs, any_auto = self._g_est, self._offs, self._any_auto  # est: of this step's rows
        # ---- actions -> offsets (clipped below), gains, cuff requests, costs
        if self._discrete:
            a = actions
            if type(a) is not np.ndarray or a.dtype is not self._int64 or a.shape != self._ashape:
                a = self._discrete_actions(actions)
            # the range check in one reduction: all actions in 0..7 <=> their bitwise OR in 0..7;
            # 6 and 7 make the look-up of want raise IndexError
            m = int(self._bitor(a))
            try:
                if m < 0 or m > 7:
                    raise IndexError
                want = self._cuff_action.take(a)
            except IndexError:
                bad = a[(a < 0) | (a > 5)].tolist()
                raise InvalidActionError(f"actions: outside Discrete(6): {bad}") from None
            self._act_table.take(a, 1, self._ab_act, "clip")  # a is valid
            np.add(offs, self._ab_offs, offs)
            want_f = self._want_f  # want as float (faster with the float rows)
            gain = None
            maybe_cuff = m & 1  # no odd action, no cuff request (cheaper than want.any())
            charge = False  # the cost row holds minus the cost of each request
        else:
            a = actions
            if type(a) is not np.ndarray or a.dtype.kind != "f" or a.shape != self._ashape:
                a = self._continuous_actions(actions)
            at = self._at
            at[...] = a.T  # one row per component (float32 -> float64 is exact)
            # the single env's test, -1.000001 <= x <= 1.000001 in float64 (NaN fails), as |x| <= 1.000001
            if not float(self._max_reduce(np.abs(at), None)) <= 1.000001:
                self._continuous_actions(actions)  # raises InvalidActionError
            d = self._d
            np.multiply(self._at_steps, self._cont_scale, d)
            np.add(self._offs22, self._d_offs, self._offs22)
            gain = self._gain
            np.add(gain, self._d_gain, gain)
            _clip(gain, self._gmin, self._gmax, gain)
            self._gain_obs[...] = gain  # the mul of gain_sbp/dbp
            want = np.greater(self._at_cuff, self._zero)
            want_f = want.astype(np.float64)
            maybe_cuff = self._or_reduce(want)
            charge = True
        if any_auto:  # (the reward of the sub-environments that reset is set to 0 below)
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
            charge = True
        if charge:
            np.multiply(want_f, self._negcost, self._negcost_f)
        self._new.fill(0.0)  # (1 where a reading succeeds: written with the window below)
        if maybe_cuff:
            ok = self._g_ok
            failed = np.greater(want_f, ok)
            mask = np.logical_and(want_f, ok)  # a reading succeeds
            oc = self._g_oc  # recalibrated offsets before the clip below
            # gain 1: the offsets (reading - 1 * est == reading - est) are in the table; else the
            # table has the readings
            self._readings.take(self._rc[1], 1, self._g_read, "clip")
            if gain is not None:
                np.subtract(self._g_oc22, np.multiply(est, gain), self._g_oc22)
            if not self._recal:
                oc[...] = offs
            elif self._kalman:
                self._kalman_update(oc, offs, mask)
            np.negative(self._x_neg, self._g_neg)
            self._window_mask[...] = mask
            np.putmask(self._window, self._window_mask, self._g_win)
            np.add(self._used, want_f, self._used)
            if budget:
                np.subtract(budget, self._used, self._left)
                np.divide(self._left, budget, self._left)
        _clip(offs, self._nlim, self._lim, offs)
        # ---- reward on this row with the new calibration: the single env's float operations,
        # ((0 - cost) - pen_sbp) - pen_dbp, with pen = 0 where there is no reference
        if gain is None:
            corr = np.add(est, self._offs2)  # gain 1: 1 * est + offset == est + offset
        else:
            corr = np.multiply(est, gain)
            np.add(corr, self._offs2, corr)
        err = np.subtract(corr, self._g_ref, self._pen)
        kind = self._reward_kind
        if kind == 0:
            np.abs(err, err)
            np.divide(err, self._g_div, err)
        elif kind == 1:
            np.multiply(err, err, err)
            np.divide(err, self._g_div, err)
        else:
            np.abs(err, err)
            np.greater(err, self._g_div, err)  # 1.0 / 0.0
        reward = self._sub_reduce(self._cost_pen, 0)
        info = {
            "subject_index": self._subj,
            "step": self._rc[2],  # replaced, not changed, below
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
            rc = self._rc = rc - trunc  # truncated: the observation of the last row
            return self._observe(rc[0]), reward, np.zeros(n, bool), trunc.copy(), info
        if any_auto:
            self._autoreset = np.zeros(n, bool)
            self._any_auto = False
        return self._observe(rows), reward, np.zeros(n, bool), np.zeros(n, bool), info
