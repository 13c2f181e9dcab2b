"""Batched vector environment: many subjects stepped at once with numpy array operations.

:class:`BPCalibrationVectorEnv` has exactly the semantics of ``num_envs`` independent
:class:`bprl.env.BPCalibrationEnv` instances (same observations, rewards, truncations and cuff
readings for the same seeds and actions: sub-environment ``i`` is seeded with ``seed + i`` as in
Gymnasium's ``SyncVectorEnv``) and Gymnasium's default next-step autoreset: after a sub-environment
truncates, its next ``step`` ignores the action, resets it and returns the first observation of
the new episode with reward 0. All replay tables are padded into 2-D arrays once
(:class:`bprl.env.ReplayArrays`); a step is a few fancy-indexing operations over all
sub-environments, with a Python loop only over sub-environments that reset.

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


class BPCalibrationVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` calibration episodes stepped together (see :class:`bprl.env.BPCalibrationEnv`).

    Arguments are those of :class:`~bprl.env.BPCalibrationEnv` plus ``num_envs``. ``infos`` per step
    is a dict of arrays: ``subject_index``, ``step``, ``t_s``, ``corr_sbp_mmhg``, ``corr_dbp_mmhg``,
    ``cuff``, ``cuff_failed``, ``cuff_refused``.
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
        self._discrete = action_type == "discrete"
        self._reward_kind = ("mae", "squared", "aami_band").index(self.params.reward)
        n, tmax = num_envs, self.data.feat_obs.shape[1]
        d = self.data
        self._tmax = tmax
        # everything a step reads about (subject, step), packed so one gather fetches it
        self._rows = np.concatenate(
            [
                d.est_carry,  # 0, 1
                d.est_valid[..., None],  # 2
                d.cuff_ref,  # 3, 4
                d.ref,  # 5, 6
                d.pat_carry[..., None],  # 7
                d.hr_carry[..., None],  # 8
                d.t_end_s[..., None],  # 9
                d.t_start_s[..., None],  # 10
                np.ones((*d.t_end_s.shape, 2)),  # 11, 12: has_cuff, new_reading after a reading
                d.t_end_s[..., None],  # 13: time of a reading
            ],
            axis=2,
        ).reshape(-1, 14)
        self._feat = d.feat_obs.reshape(-1, d.feat_obs.shape[2])
        nd = self.params.nudge_mmhg
        self._doff_table = np.array([[0, 0], [0, 0], [nd, 0], [-nd, 0], [0, nd], [0, -nd]], dtype=np.float64)
        self._cuff_sd = np.array([self.cuff.sd_sbp_mmhg, self.cuff.sd_dbp_mmhg])
        self._rngs: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(n)]
        self._ar = np.arange(n)
        self._subj = np.zeros(n, np.int64)
        self._base = np.zeros(n, np.int64)  # subject * tmax
        self._t = np.zeros(n, np.int64)
        self._start = np.zeros(n, np.int64)
        self._end = np.ones(n, np.int64)
        # cuff readings of each sub-environment's episode (reference + seeded noise; NaN = fails),
        # drawn at reset: row i * tmax + k is step start + k of sub-environment i
        self._readings = np.zeros((n * tmax, 2))
        self._rbase = np.zeros(n, np.int64)  # i * tmax - start
        # persistent calibration state, one row per sub-environment (column order = _S_* below)
        self._state = np.zeros((n, 13))
        self._state[:, 2:4] = 1.0
        self._autoreset = np.zeros(n, bool)
        self._any_auto = False
        self._started = False
        budget = self.cuff.budget
        self._centre = np.zeros(N_STATE)
        self._scale = np.ones(N_STATE)
        self._centre[[0, 3]] = SBP_C
        self._centre[[1, 4]] = DBP_C
        self._scale[[0, 3]] = SBP_S
        self._scale[[1, 4]] = DBP_S
        self._scale[5:7] = 20.0
        self._centre[7:9] = 1.0
        self._scale[7:9] = 0.25
        self._scale[11:13] = 3600.0
        self._scale[13] = 20.0
        self._scale[14] = 10.0
        self._scale[15:17] = 20.0
        self._scale[17] = 10.0
        self._budget = budget
        self._ones = np.ones((n, 1))
        self._zeros1 = np.zeros((n, 1))
        self._false = np.zeros(n, bool)
        self._false.setflags(write=False)

    # ----------------------------------------------------------------- internals
    # persistent state columns: 0-1 offset sbp/dbp, 2-3 gain sbp/dbp, 4 has_cuff, 5 new_reading,
    # 6 t of last reading (s), 7 t of episode begin (s), 8-9 PAT/HR at last reading,
    # 10-11 last reading minus estimate, 12 cuff requests used

    def _reset_one(self, i: int, options: Mapping[str, Any]) -> None:
        """Reset sub-environment ``i``: the same random draws, in the same order, as BPCalibrationEnv.reset."""
        data, p, rng = self.data, self.params, self._rngs[i]
        sid = options.get("subject_id")
        if sid is None:
            s = int(rng.integers(data.n_subjects))
        else:
            try:
                s = data.subject_ids.index(str(sid))
            except ValueError:
                raise ConfigError(f"reset options: subject_id {sid!r} is not in this environment") from None
        n = int(data.lengths[s])
        whole = bool(options.get("whole_record", False))
        if "start_step" in options:
            t0 = int(options["start_step"])
            if not 0 <= t0 < n:
                raise ConfigError(f"reset options: start_step {t0} outside 0..{n - 1}")
        elif p.start == "random" and not whole:
            t0 = int(rng.integers(n))
        else:
            t0 = 0
        end = n if (whole or p.max_steps is None) else min(n, t0 + p.max_steps)
        noise = rng.standard_normal((end - t0, 2))
        noise *= self._cuff_sd
        self._readings[i * self._tmax : i * self._tmax + end - t0] = data.cuff_ref[s, t0:end] + noise
        self._rbase[i] = i * self._tmax - t0
        self._subj[i], self._t[i], self._start[i], self._end[i] = s, t0, t0, end
        self._base[i] = s * self._tmax
        st = self._state[i]
        st[:] = 0.0
        st[2:4] = 1.0
        st[6] = st[7] = data.t_start_s[s, t0]

    def _obs(self, clamp: bool = True) -> np.ndarray:
        # clamp=False when no sub-environment sits past its last row (nothing truncated)
        flat = self._base + (np.minimum(self._t, self._end - 1) if clamp else self._t)
        r = self._rows.take(flat, axis=0)
        st = self._state
        corr = st[:, 2:4] * r[:, 0:2]
        corr += st[:, 0:2]
        dph = r[:, 7:9] - st[:, 8:10]
        dph *= st[:, 4:5]  # 0 before the first reading (has_cuff = 0)
        dph[dph != dph] = 0.0  # no PAT/HR yet
        b = self._budget
        if b is None:
            left = self._ones
        elif b > 0:
            left = (b - st[:, 12:13]) / b
        else:
            left = self._zeros1
        raw = np.concatenate(
            (r[:, 0:3], corr, st[:, 0:6], r[:, 9:10] - st[:, 6:8], dph, st[:, 10:13], left), axis=1
        )
        raw -= self._centre
        raw /= self._scale
        np.minimum(raw, OBS_CLIP, out=raw)
        np.maximum(raw, -OBS_CLIP, out=raw)
        nf = self._feat.shape[1]
        out = np.empty((self.num_envs, nf + N_STATE), np.float32)
        out[:, :nf] = self._feat.take(flat, axis=0)
        out[:, nf:] = raw
        return out

    def _parse_actions(self, actions: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """-> (offset deltas (N,2), gain deltas (N,2) or None, cuff requests (N,)); InvalidActionError if outside."""
        p, n = self.params, self.num_envs
        if self._discrete:
            a = np.asarray(actions)
            if a.shape != (n,):
                raise InvalidActionError(f"actions: expected {n} integers in 0..5, got shape {a.shape}")
            if a.dtype.kind not in "iu":
                if a.dtype.kind not in "fb" or not (a == np.round(a)).all():
                    raise InvalidActionError(f"actions: expected integers in 0..5, got {actions!r}")
                a = a.astype(np.int64)
            if (a.astype(np.uint64) > 5).any():
                bad = a[(a < 0) | (a > 5)].tolist()
                raise InvalidActionError(f"actions: outside Discrete(6): {bad}")
            return self._doff_table[a], None, a == 1
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (n, 5) or not (np.abs(a) <= 1.0 + 1e-6).all():
            raise InvalidActionError(
                f"actions: expected shape ({n}, 5) with values in [-1, 1], got {actions!r}"
            )
        return a[:, 0:2] * p.max_offset_step_mmhg, a[:, 2:4] * p.max_gain_step, a[:, 4] > 0.0

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
        for i in np.flatnonzero(mask):
            self._reset_one(int(i), options)
        self._autoreset[mask] = False
        self._any_auto = bool(self._autoreset.any())
        self._started = True
        info = {"subject_index": self._subj.copy(), "step": self._t.copy()}
        return self._obs(), info

    def step(self, actions: Any):
        """Step every sub-environment; sub-environments that truncated last step are reset instead."""
        if not self._started:
            raise ConfigError("step() called before reset()")
        doff, dgain, want = self._parse_actions(actions)
        p, cuff, n = self.params, self.cuff, self.num_envs
        auto = self._autoreset
        any_auto = self._any_auto
        st = self._state
        # sub-environments about to autoreset sit at their end: clamp their row
        t = np.minimum(self._t, self._end - 1) if any_auto else self._t
        r = self._rows.take(self._base + t, axis=0)
        es = r[:, 0:2]
        lim = p.offset_limit_mmhg
        o = st[:, 0:2] + doff
        np.minimum(o, lim, out=o)
        np.maximum(o, -lim, out=o)
        if dgain is not None:
            g = st[:, 2:4] + dgain
            np.minimum(g, p.gain_max, out=g)
            np.maximum(g, p.gain_min, out=g)
        else:
            g = st[:, 2:4]  # discrete actions never change the gains
        if any_auto:
            want &= ~auto
        st[:, 5] = 0.0  # new_reading
        failed = refused = charged = self._false
        cost = None
        ci = np.flatnonzero(want)  # sub-environments requesting a cuff (few): integer indexing
        if ci.size:
            charged = want
            if self._budget is not None:
                over = st[ci, 12] >= self._budget
                if over.any():
                    refused = np.zeros(n, bool)
                    refused[ci[over]] = True
                    ci = ci[~over]
                    charged = want & ~refused
            st[:, 12] += charged
            cost = charged * cuff.cost
            reading = self._readings.take(self._rbase.take(ci) + t.take(ci), axis=0)
            good = reading[:, 0] == reading[:, 0]  # NaN: no reference (both columns NaN together)
            if not good.all():
                failed = np.zeros(n, bool)
                failed[ci[~good]] = True
                ci, reading = ci[good], reading[good]
            if ci.size:
                rc = r.take(ci, axis=0)
                esc = rc[:, 0:2]
                st[ci, 4:7] = rc[:, 11:14]  # has_cuff, new_reading, time of the reading
                st[ci, 8:10] = rc[:, 7:9]  # PAT, HR at the reading
                st[ci, 10:12] = reading - esc
                if p.recalibrate_on_cuff:
                    oc = reading - g.take(ci, axis=0) * esc
                    np.minimum(oc, lim, out=oc)
                    np.maximum(oc, -lim, out=oc)
                    o[ci] = oc
        corr = g * es
        corr += o
        err = corr - r[:, 5:7]
        sc = p.reward_scale_mmhg
        if self._reward_kind == 0:
            pen = np.abs(err)
            pen /= sc
        elif self._reward_kind == 1:
            pen = err * err
            pen /= sc * sc
        else:
            pen = (np.abs(err) > p.aami_band_mmhg).astype(np.float64)
        pen[err != err] = 0.0  # no reference in this window
        # same float operations as the single env: ((0 - cost) - pen_sbp) - pen_dbp
        reward = pen[:, 0] + pen[:, 1] if cost is None else (cost + pen[:, 0]) + pen[:, 1]
        np.negative(reward, out=reward)
        if any_auto:
            act = ~auto
            st[act, 0:2] = o[act]
            if dgain is not None:
                st[act, 2:4] = g[act]
            self._t = self._t + act
            reward[auto] = 0.0
        else:
            st[:, 0:2] = o
            if dgain is not None:
                st[:, 2:4] = g
            self._t = self._t + 1
        trunc = self._t >= self._end
        if any_auto:
            trunc &= ~auto
        info = {
            "subject_index": self._subj.copy(),
            "step": t,
            "t_s": r[:, 9],
            "corr_sbp_mmhg": corr[:, 0],
            "corr_dbp_mmhg": corr[:, 1],
            "cuff": charged,
            "cuff_failed": failed,
            "cuff_refused": refused,
        }
        if any_auto:
            for i in np.flatnonzero(auto):
                self._reset_one(int(i), {})
        self._autoreset = trunc
        self._any_auto = bool(trunc.any())
        return self._obs(self._any_auto), reward, np.zeros(n, bool), trunc, info
