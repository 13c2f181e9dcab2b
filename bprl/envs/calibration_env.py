"""The single calibration environment: one subject's record replayed while a policy calibrates.

:class:`BPCalibrationEnv` is the reference implementation of the environment's semantics (the
batched :class:`bprl.envs.vector_env.BPCalibrationVectorEnv` reproduces it bit for bit). It is
registered as ``bprl/BPCalibration-v1`` (discrete actions) and ``bprl/BPCalibrationContinuous-v1``
(continuous actions); see :mod:`bprl.envs.registration`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym
import numpy as np
import pandas as pd

from bprl.envs.actions import CONTINUOUS_ACTIONS, DISCRETE_ACTIONS
from bprl.envs.cuff import CuffModel
from bprl.envs.observation import (
    DBP_C,
    DBP_S,
    DEFAULT_FEATURES,
    N_STATE,
    SBP_C,
    SBP_S,
    make_spaces,
)
from bprl.envs.observation import clip_obs as _clip
from bprl.envs.params import EnvParams
from bprl.envs.replay_arrays import ReplayArrays, SubjectSeries, load_replay_arrays
from bprl.envs.rewards import BUILTIN_REWARDS, resolve_reward
from bprl.errors import BprlError, ConfigError, InvalidActionError

if TYPE_CHECKING:  # (bprl.features is imported only when a replay-set folder is read)
    from bprl.features.replay_set import ReplaySet

__all__ = ["BPCalibrationEnv"]


@dataclass(slots=True)
class _Calibration:
    """The calibration state of an episode (what the observation's state block shows)."""

    offset_sbp: float = 0.0  #: offsets in force, mmHg
    offset_dbp: float = 0.0
    gain_sbp: float = 1.0  #: gains in force
    gain_dbp: float = 1.0
    cuffs_used: int = 0  #: charged cuff requests
    has_cuff: bool = False  #: a reading succeeded in this episode
    new_reading: bool = False  #: the last step took a successful reading
    t_begin_s: float = 0.0  #: start of the episode's first window
    t_cuff_s: float = 0.0  #: end of the window of the last reading (episode start when none)
    pat_at_cuff_ms: float = 0.0  #: PAT and HR at the last reading
    hr_at_cuff_bpm: float = 0.0
    cuff_minus_est_sbp: float = 0.0  #: last reading minus the raw estimate then, mmHg
    cuff_minus_est_dbp: float = 0.0
    kalman_p_sbp: float = 0.0  #: Kalman offset error variance after the last reading, mmHg^2
    kalman_p_dbp: float = 0.0


class BPCalibrationEnv(gym.Env):
    """Per-subject calibration of a cuffless blood-pressure estimator.

    ## Description

    A population-trained estimator (e.g. the CNN-GRU of :mod:`bprl.estimator`) turns ECG/PPG
    features into SBP/DBP, but every subject has their own bias, which drifts over hours. An episode
    replays one subject's record window by window (one step = one replay-table row, typically a
    30-s window). At each step the policy sees the features, the raw estimate and its calibration
    state, and may adjust the correction ``corrected = gain * estimate + offset`` (separately for
    SBP and DBP) or ask for a cuff reading. The goal: stay close to the arterial reference while
    asking for few cuff readings. The reference BP is never observed, except through the readings
    the policy asked for.

    ## Action Space

    ``bprl/BPCalibration-v1`` (``action_type="discrete"``, for DQN): ``Discrete(6)``

    | action | meaning |
    |---|---|
    | 0 hold | keep the correction |
    | 1 cuff | request a cuff reading; on success set ``offset = reading - gain * estimate`` (SBP and DBP) |
    | 2 / 3 | SBP offset +/- ``nudge_mmhg`` (default 2 mmHg) |
    | 4 / 5 | DBP offset +/- ``nudge_mmhg`` |

    ``bprl/BPCalibrationContinuous-v1`` (``action_type="continuous"``, for PPO): ``Box(-1, 1, (5,))``:
    ``[d_offset_sbp, d_offset_dbp, d_gain_sbp, d_gain_dbp, cuff]``. Offsets change by
    ``a * max_offset_step_mmhg`` (5 mmHg), gains by ``a * max_gain_step`` (0.02); offsets are kept in
    ``+-offset_limit_mmhg`` (80) and gains in ``[gain_min, gain_max]`` (0.5, 1.5). ``cuff > 0``
    requests a reading; on success the offsets are reset to it as in the discrete variant (after the
    gain change; the offset deltas of that step are ignored). With ``recalibrate_on_cuff=False`` a
    reading only updates the observation. An action outside the space raises
    :class:`~bprl.errors.InvalidActionError`.

    ## Observation Space

    ``Box(-10, 10, (2F + 23,), float32)``, F = number of ``features`` (10 by default). Elements
    ``0 .. F-1``: each feature's last valid value normalised as ``(x - centre) / scale``
    (:data:`~bprl.envs.observation.FEATURE_NORMALIZATION`; 0 before the first valid value). Elements
    ``F .. 2F-1``: 1 if the feature was valid in this window, else 0. The last 23 elements
    (:data:`~bprl.envs.observation.STATE_FIELDS`, decoded by :func:`~bprl.envs.observation.decode_obs`)
    are: estimator SBP, DBP (last valid value, prior 120/70 mmHg before the first), estimator-valid
    flag, corrected SBP, DBP, offsets, gains, has-cuff flag, new-reading flag, hours since the last
    successful reading, hours since episode start, PAT and HR change since the last reading, last
    reading minus the raw estimate at that time (SBP, DBP), cuff requests used, share of the
    per-episode budget left, hours left in the episode, readings a request could use now (the
    budget and its per-hour pacing, :meth:`~bprl.envs.cuff.CuffModel.available`; 100 when
    unlimited), the record segment index and a boundary flag (1 on the first window of each
    segment after the first, and on the first window after a detected PPG timing offset,
    ``pat_offset_ms``: PAT jumps there at unchanged BP). Everything is clipped to +-10.

    ## Rewards

    Per step, on steps whose window has a reference: ``reward`` selects ``"mae"`` (default,
    ``-(|e_sbp| + |e_dbp|) / reward_scale_mmhg``, scale 10 mmHg), ``"squared"``
    (``-(e_sbp^2 + e_dbp^2) / reward_scale_mmhg^2``) or ``"aami_band"`` (``-1`` for each of SBP and
    DBP outside ``+-aami_band_mmhg``, 5 mmHg), with ``e`` = corrected estimate minus reference after
    the step's action. Steps without a reference contribute 0. Each charged cuff request subtracts
    ``cuff.cost`` (0.5). ``reward`` may also name your own function, ``"my_pkg.rewards:my_reward"``
    or a plugin of the ``bprl.rewards`` entry-point group (:mod:`bprl.envs.rewards` documents its
    signature): the step reward is then ``(0 - cost) + my_reward(e_sbp, e_dbp, params)``, with NaN
    errors where there is no reference.

    ## Starting State

    Offsets 0, gains 1, no reading. The subject is drawn uniformly from the split with
    ``self.np_random`` (or ``reset(options={"subject_id": ...})``); the first step is 0
    (``start="zero"``) or uniform in the record (``start="random"``; ``options={"start_step": k}``).
    The cuff noise of the episode is drawn at reset (one pair of standard normals per step; then,
    only in an episode with atrial fibrillation and a cuff with ``af_failure_prob > 0``, one uniform
    per step deciding which readings fail). The reading SD grows with the step's AF share
    (:class:`~bprl.envs.cuff.CuffModel`).

    ## Episode End

    Never terminated; truncated at the end of the record or after ``max_steps`` steps
    (``options={"whole_record": True}`` ignores ``max_steps`` and ``start``).

    ## Arguments

    ``replay_set`` (folder or ReplaySet) or ``tables`` (subject id -> DataFrame), ``split``,
    ``subject_ids``, ``features``, ``action_type``, ``cuff`` (:class:`~bprl.envs.cuff.CuffModel` or
    mapping), ``reward``, ``reward_scale_mmhg``, ``aami_band_mmhg``, ``max_steps``, ``start``,
    ``nudge_mmhg``, ``max_offset_step_mmhg``, ``max_gain_step``, ``offset_limit_mmhg``, ``gain_min``,
    ``gain_max``, ``recalibrate_on_cuff``, ``recalibration`` (``"reset"``: a reading sets the offset
    to match it; ``"kalman"``: scalar Kalman update of the offset towards it, process noise
    ``kalman_q_mmhg2_per_h`` (16) per hour, measurement noise the cuff variance; see
    ``_kalman_offsets``), all validated by :class:`~bprl.envs.params.EnvParams`
    (:class:`~bprl.errors.ConfigError` naming the field). ``data``: prebuilt
    :class:`~bprl.envs.replay_arrays.ReplayArrays` (shared by many environments). Without data, the
    built-in default replay set is used.

    ``info`` per step: ``subject_id, step, t_s, est_sbp_mmhg, est_dbp_mmhg, corr_sbp_mmhg,
    corr_dbp_mmhg, ref_sbp_mmhg, ref_dbp_mmhg, cuff, cuff_failed, cuff_refused, segment, af_share, cuff_sbp_mmhg,
    cuff_dbp_mmhg, cuffs_used, offset_sbp_mmhg, offset_dbp_mmhg, gain_sbp, gain_dbp`` (mmHg as
    floats; ``None`` where a value is absent: no estimate, no reference, no reading, so that
    ``info`` compares equal across identical runs; the episode log turns ``None`` into NaN).

    ## Example

    >>> from bprl.envs import BPCalibrationEnv, decode_obs, synthetic_replay_tables
    >>> env = BPCalibrationEnv(tables=synthetic_replay_tables(n_subjects=2, n_steps=20), max_steps=5)
    >>> obs, info = env.reset(seed=0, options={"subject_id": "s001"})
    >>> env.observation_space.shape, info["subject_id"]
    ((43,), 's001')
    >>> obs, reward, terminated, truncated, info = env.step(1)  # ask for a cuff reading
    >>> info["cuff"], info["cuffs_used"], bool(decode_obs(obs)["has_cuff"])
    (True, 1, True)
    >>> round(info["corr_sbp_mmhg"] - info["cuff_sbp_mmhg"], 6)  # recalibrated to the reading
    0.0

    ## Version History

    * v1: the observation gains four state fields (hours left, readings available now, segment
      index, segment-boundary flag: ``2F + 23`` values instead of ``2F + 19``); the cuff can be
      paced (``cuff.budget_per_h``: readings accrue per hour; requests beyond are refused and
      counted in ``info["cuff_refused"]``). Agents trained on v0 must be retrained.
    * v0: initial version; ``recalibration: kalman`` added as an option (default ``reset`` keeps
      the original behaviour, so the id stayed v0); custom reward functions (a new option; the
      built-in rewards are unchanged).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        replay_set: str | os.PathLike[str] | ReplaySet | None = None,
        tables: Mapping[str, pd.DataFrame] | None = None,
        split: str | None = "train",
        subject_ids: Sequence[str] | None = None,
        features: Sequence[str] = DEFAULT_FEATURES,
        action_type: str = "discrete",
        cuff: CuffModel | Mapping[str, Any] | None = None,
        reward: str = "mae",
        reward_scale_mmhg: float = 10.0,
        aami_band_mmhg: float = 5.0,
        max_steps: int | None = None,
        start: str = "zero",
        nudge_mmhg: float = 2.0,
        max_offset_step_mmhg: float = 5.0,
        max_gain_step: float = 0.02,
        offset_limit_mmhg: float = 80.0,
        gain_min: float = 0.5,
        gain_max: float = 1.5,
        recalibrate_on_cuff: bool = True,
        recalibration: str = "reset",
        kalman_q_mmhg2_per_h: float = 16.0,
        render_mode: str | None = None,
        data: ReplayArrays | None = None,
    ) -> None:
        """Create the environment; see the class docstring for the arguments.

        Raises:
            ConfigError: an invalid setting (naming it), an empty or unknown subject selection.
            BprlError: a malformed replay table (naming the subject).
        """
        super().__init__()
        self.params = EnvParams.checked(
            action_type=action_type,
            reward=reward,
            reward_scale_mmhg=reward_scale_mmhg,
            aami_band_mmhg=aami_band_mmhg,
            max_steps=max_steps,
            start=start,
            nudge_mmhg=nudge_mmhg,
            max_offset_step_mmhg=max_offset_step_mmhg,
            max_gain_step=max_gain_step,
            offset_limit_mmhg=offset_limit_mmhg,
            gain_min=gain_min,
            gain_max=gain_max,
            recalibrate_on_cuff=recalibrate_on_cuff,
            recalibration=recalibration,
            kalman_q_mmhg2_per_h=kalman_q_mmhg2_per_h,
        )
        self.cuff = CuffModel.from_any(cuff)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode: {render_mode!r} not in {self.metadata['render_modes']}")
        self.render_mode = render_mode
        if data is None:
            data = load_replay_arrays(replay_set, tables, split, subject_ids, features, self.cuff.duration_s)
        self.data = data
        self.observation_space, self.action_space = make_spaces(len(data.features), action_type)
        self._discrete = action_type == "discrete"
        self._n_feature_obs = 2 * len(data.features)
        self._reward_entry = resolve_reward(self.params.reward)
        #: index of a built-in reward's inline fast path, -1 for a custom reward function
        self._reward_kind = BUILTIN_REWARDS.index(reward) if self._reward_entry.builtin else -1
        self._series: SubjectSeries | None = None
        self._cal = _Calibration()
        self._subj = -1
        self._t = 0
        self._start = 0
        self._end = 0
        self._noise_sbp: list[float] = []
        self._noise_dbp: list[float] = []
        # the cuff's reading SD and failure probability of every replay row (worse in AF)
        self._cuff_sd = self.cuff.reading_sd(data.af_share)
        self._cuff_fail_p = self.cuff.failure_prob(data.af_share)
        self._sd_sbp: list[float] = []
        self._sd_dbp: list[float] = []
        self._fail: list[bool] | None = None  # steps whose reading fails (AF), None: none can
        self._rhythm_known = False  # the episode's subject has rhythm columns
        self._t_last_s = 0.0  # end of the episode's last window, s
        self._last_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    @property
    def subject_ids(self) -> list[str]:
        """Subjects this environment draws episodes from."""
        return self.data.subject_ids

    @property
    def subject_id(self) -> str:
        """Subject of the current episode."""
        return self.data.subject_ids[self._subj]

    @property
    def current_step(self) -> int:
        """Replay-table row the next ``step`` acts on."""
        return self._t

    def _obs(self) -> np.ndarray:
        """The observation at the current row (the last row once the episode has ended)."""
        s, c = self._series, self._cal
        t = min(self._t, self._end - 1)
        es, ed = s.est_carry_sbp[t], s.est_carry_dbp[t]
        gs, gd, os_, od = c.gain_sbp, c.gain_dbp, c.offset_sbp, c.offset_dbp
        cs, cd = gs * es + os_, gd * ed + od
        t1 = s.t_end_s[t]
        if c.has_cuff:
            dp = s.pat_ms[t] - c.pat_at_cuff_ms
            dh = s.hr_bpm[t] - c.hr_at_cuff_bpm
            if dp != dp:
                dp = 0.0
            if dh != dh:
                dh = 0.0
        else:
            dp = dh = 0.0
        budget, used = self.cuff.budget, c.cuffs_used
        left = 1.0 if budget is None else ((budget - used) / budget if budget > 0 else 0.0)
        avail = self.cuff.available(used, (t1 - c.t_begin_s) / 3600.0)
        nf2 = self._n_feature_obs
        obs = np.empty(nf2 + N_STATE, np.float32)
        obs[:nf2] = self.data.feat_obs[self._subj, t]
        obs[nf2:] = (
            _clip((es - SBP_C) / SBP_S),
            _clip((ed - DBP_C) / DBP_S),
            s.est_valid[t],
            _clip((cs - SBP_C) / SBP_S),
            _clip((cd - DBP_C) / DBP_S),
            _clip(os_ / 20.0),
            _clip(od / 20.0),
            _clip((gs - 1.0) / 0.25),
            _clip((gd - 1.0) / 0.25),
            float(c.has_cuff),
            float(c.new_reading),
            _clip((t1 - c.t_cuff_s) / 3600.0),
            _clip((t1 - c.t_begin_s) / 3600.0),
            _clip(dp / 20.0),
            _clip(dh / 10.0),
            _clip(c.cuff_minus_est_sbp / 20.0),
            _clip(c.cuff_minus_est_dbp / 20.0),
            _clip(used / 10.0),
            left,
            _clip((self._t_last_s - t1) / 3600.0),
            _clip(avail / 10.0),
            _clip(s.segment[t] / 10.0),
            s.segment_start[t],
        )
        return obs

    # --------------------------------------------------------------------- API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: pick the subject and first step, draw the episode's cuff noise.

        Options: ``subject_id`` (str), ``start_step`` (int), ``whole_record`` (bool: from step 0 to
        the end, ignoring ``max_steps`` and ``start``).

        Raises:
            ConfigError: an unknown ``subject_id`` or a ``start_step`` outside the record.
        """
        super().reset(seed=seed)
        options = options or {}
        data, p = self.data, self.params
        sid = options.get("subject_id")
        if sid is None:
            i = int(self.np_random.integers(data.n_subjects))
        else:
            try:
                i = data.subject_ids.index(str(sid))
            except ValueError:
                raise ConfigError(f"reset options: subject_id {sid!r} is not in this environment") from None
        n = int(data.lengths[i])
        whole = bool(options.get("whole_record", False))
        if "start_step" in options:
            t0 = int(options["start_step"])
            if not 0 <= t0 < n:
                raise ConfigError(f"reset options: start_step {t0} outside 0..{n - 1} for subject {sid!r}")
        elif p.start == "random" and not whole:
            t0 = int(self.np_random.integers(n))
        else:
            t0 = 0
        end = n if (whole or p.max_steps is None) else min(n, t0 + p.max_steps)
        self._subj, self._t, self._start, self._end = i, t0, t0, end
        self._rhythm_known = bool(data.rhythm_known[i])
        self._series = series = data.subject_series(i)
        noise = self.np_random.standard_normal((end - t0, 2))
        self._noise_sbp = noise[:, 0].tolist()
        self._noise_dbp = noise[:, 1].tolist()
        self._sd_sbp = self._cuff_sd[i, t0:end, 0].tolist()
        self._sd_dbp = self._cuff_sd[i, t0:end, 1].tolist()
        fail_p = self._cuff_fail_p[i, t0:end]
        # drawn only for episodes where a reading can fail: other episodes' draws stay as they were
        self._fail = (self.np_random.random(end - t0) < fail_p).tolist() if fail_p.any() else None
        t_begin = series.t_start_s[t0]
        self._t_last_s = series.t_end_s[end - 1]
        self._cal = _Calibration(t_begin_s=t_begin, t_cuff_s=t_begin)
        info = {"subject_id": data.subject_ids[i], "step": t0, "t_s": series.t_end_s[t0]}
        return self._obs(), info

    def _parse_action(self, action: Any) -> tuple[float, float, float, float, bool]:
        """(offset change SBP, DBP in mmHg, gain change SBP, DBP, cuff requested) of ``action``.

        Raises:
            InvalidActionError: ``action`` is outside the action space.
        """
        p = self.params
        if self._discrete:
            try:
                a = int(action)
            except (TypeError, ValueError):
                raise InvalidActionError(f"action {action!r}: expected an integer in 0..5") from None
            if a != action or not 0 <= a < 6:
                raise InvalidActionError(f"action {action!r}: outside Discrete(6) {DISCRETE_ACTIONS}")
            nd = p.nudge_mmhg
            return (
                nd if a == 2 else (-nd if a == 3 else 0.0),
                nd if a == 4 else (-nd if a == 5 else 0.0),
                0.0,
                0.0,
                a == 1,
            )
        try:
            v = action.tolist() if isinstance(action, np.ndarray) else [float(x) for x in action]
            ok = len(v) == 5 and all(-1.000001 <= x <= 1.000001 for x in v)  # NaN fails too
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidActionError(
                f"action {action!r}: expected shape (5,) with values in [-1, 1] {CONTINUOUS_ACTIONS}"
            )
        return (
            v[0] * p.max_offset_step_mmhg,
            v[1] * p.max_offset_step_mmhg,
            v[2] * p.max_gain_step,
            v[3] * p.max_gain_step,
            v[4] > 0.0,
        )

    def _kalman_offsets(self, ns: float, nd: float, os_: float, od: float, t1: float) -> tuple[float, float]:
        """Kalman update of the offsets towards the reading-matching offsets ``ns``, ``nd``.

        The offset error variance P (SBP, DBP) grows by ``kalman_q_mmhg2_per_h`` per hour since the
        last reading; gain K = P / (P + R) with R the cuff variance; offset += K (match - offset),
        P = (1 - K) P. The first reading of an episode has K = 1 and leaves P = R.
        """
        c = self._cal
        rs2, rd2 = self.cuff.sd_sbp_mmhg**2, self.cuff.sd_dbp_mmhg**2
        if not c.has_cuff:
            ks = kd = 1.0
            c.kalman_p_sbp, c.kalman_p_dbp = rs2, rd2
        else:
            grow = self.params.kalman_q_mmhg2_per_h * ((t1 - c.t_cuff_s) / 3600.0)
            ps, pd = c.kalman_p_sbp + grow, c.kalman_p_dbp + grow
            ks, kd = ps / (ps + rs2), pd / (pd + rd2)
            c.kalman_p_sbp, c.kalman_p_dbp = (1.0 - ks) * ps, (1.0 - kd) * pd
        return os_ + ks * (ns - os_), od + kd * (nd - od)

    def _request_cuff(self, t: int) -> tuple[float, bool, bool, bool, float, float]:
        """A cuff request at row ``t``, after the step's gain and offset changes (in ``self._cal``).

        Refused beyond the budget; otherwise charged (cost, count) and read: the cuff reference plus
        the episode's noise, NaN (failed) where the cuff reference is; a successful reading
        recalibrates the offsets (``reset`` or ``kalman``) and updates the reading state.

        Returns:
            (reward so far, i.e. minus the cost, charged, failed, refused, reading SBP, DBP).
        """
        c, cuff, s = self._cal, self.cuff, self._series
        if (cuff.budget is not None or cuff.budget_per_h is not None) and cuff.available(
            c.cuffs_used, (s.t_end_s[t] - c.t_begin_s) / 3600.0
        ) < 1.0:
            return 0.0, False, False, True, math.nan, math.nan
        p = self.params
        c.cuffs_used += 1
        reward = 0.0 - cuff.cost
        k = t - self._start
        rs = s.cuff_ref_sbp[t] + self._sd_sbp[k] * self._noise_sbp[k]
        rd = s.cuff_ref_dbp[t] + self._sd_dbp[k] * self._noise_dbp[k]
        if rs != rs or rd != rd or (self._fail is not None and self._fail[k]):
            return reward, True, True, False, math.nan, math.nan
        es, ed = s.est_carry_sbp[t], s.est_carry_dbp[t]
        if p.recalibrate_on_cuff:
            lim = p.offset_limit_mmhg
            ns, nd = rs - c.gain_sbp * es, rd - c.gain_dbp * ed  # offsets that match the reading
            if p.recalibration == "kalman":
                ns, nd = self._kalman_offsets(ns, nd, c.offset_sbp, c.offset_dbp, s.t_end_s[t])
            c.offset_sbp = min(max(ns, -lim), lim)
            c.offset_dbp = min(max(nd, -lim), lim)
        c.has_cuff = True
        c.new_reading = True
        c.t_cuff_s = s.t_end_s[t]
        c.pat_at_cuff_ms, c.hr_at_cuff_bpm = s.pat_ms[t], s.hr_bpm[t]
        c.cuff_minus_est_sbp, c.cuff_minus_est_dbp = rs - es, rd - ed
        return reward, True, False, False, rs, rd

    def _custom_reward(self, reward: float, err_sbp: float, err_dbp: float) -> float:
        """``reward`` (minus the cost) plus a custom reward function's value for the errors.

        Raises:
            BprlError: the function returned a non-finite value (naming the reward).
        """
        p = self.params
        got = float(self._reward_entry.function(err_sbp, err_dbp, p))
        if not math.isfinite(got):
            raise BprlError(f"reward {p.reward!r}: returned {got!r}; a reward must be a finite number")
        return reward + got

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` to the current window, score it, and move to the next window.

        Raises:
            InvalidActionError: ``action`` is outside the action space.
            ConfigError: called before ``reset`` or after the episode ended.
        """
        if self._series is None:
            raise ConfigError("step() called before reset()")
        if self._t >= self._end:
            raise ConfigError("step() called after the episode ended; call reset()")
        dos, dod, dgs, dgd, want = self._parse_action(action)
        p, c, s, t = self.params, self._cal, self._series, self._t
        lim = p.offset_limit_mmhg
        c.gain_sbp = gs = min(max(c.gain_sbp + dgs, p.gain_min), p.gain_max)
        c.gain_dbp = gd = min(max(c.gain_dbp + dgd, p.gain_min), p.gain_max)
        c.offset_sbp = min(max(c.offset_sbp + dos, -lim), lim)
        c.offset_dbp = min(max(c.offset_dbp + dod, -lim), lim)
        c.new_reading = False
        if want:
            reward, want, failed, refused, rs, rd = self._request_cuff(t)
        else:
            reward, failed, refused, rs, rd = 0.0, False, False, math.nan, math.nan
        os_, od = c.offset_sbp, c.offset_dbp
        cs, cd = gs * s.est_carry_sbp[t] + os_, gd * s.est_carry_dbp[t] + od
        refs, refd = s.ref_sbp[t], s.ref_dbp[t]
        # the accuracy term: a built-in inline (minus each penalty in turn, components without a
        # reference left out) or a custom reward function
        kind = self._reward_kind
        if kind < 0:
            reward = self._custom_reward(reward, cs - refs, cd - refd)
        else:
            for corr, ref in ((cs, refs), (cd, refd)):
                if ref == ref:
                    e = corr - ref
                    if kind == 0:
                        reward -= abs(e) / p.reward_scale_mmhg
                    elif kind == 1:
                        reward -= (e * e) / (p.reward_scale_mmhg * p.reward_scale_mmhg)
                    elif abs(e) > p.aami_band_mmhg:
                        reward -= 1.0
        es_raw, ed_raw = s.est_sbp[t], s.est_dbp[t]
        info = {
            "subject_id": self.data.subject_ids[self._subj],
            "step": t,
            "t_s": s.t_end_s[t],
            "est_sbp_mmhg": es_raw if es_raw == es_raw else None,
            "est_dbp_mmhg": ed_raw if ed_raw == ed_raw else None,
            "corr_sbp_mmhg": cs,
            "corr_dbp_mmhg": cd,
            "ref_sbp_mmhg": refs if refs == refs else None,
            "ref_dbp_mmhg": refd if refd == refd else None,
            "cuff": want,
            "cuff_failed": failed,
            "cuff_refused": refused,
            "segment": s.segment[t],
            # share of the step in detected AF; None when the replay table has no rhythm columns
            "af_share": float(self.data.af_share[self._subj, t]) if self._rhythm_known else None,
            "cuff_sbp_mmhg": rs if rs == rs else None,
            "cuff_dbp_mmhg": rd if rd == rd else None,
            "cuffs_used": c.cuffs_used,
            "offset_sbp_mmhg": os_,
            "offset_dbp_mmhg": od,
            "gain_sbp": gs,
            "gain_dbp": gd,
        }
        self._last_info = info
        self._t = t + 1
        truncated = self._t >= self._end
        return self._obs(), reward, False, truncated, info

    def render(self) -> str | None:
        """``render_mode="ansi"``: one text line with the last step's estimate, reference and cuff."""
        if self.render_mode != "ansi":
            return None
        i = self._last_info
        if not i:
            return f"{self.subject_id} step {self._t}: no step yet"

        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.1f}"

        return (
            f"{i['subject_id']} step {i['step']} t={i['t_s']:.0f}s corr {f(i['corr_sbp_mmhg'])}/"
            f"{f(i['corr_dbp_mmhg'])} ref {f(i['ref_sbp_mmhg'])}/{f(i['ref_dbp_mmhg'])} mmHg"
            + (f" cuff {f(i['cuff_sbp_mmhg'])}/{f(i['cuff_dbp_mmhg'])}" if i["cuff"] else "")
        )

    def reference_now(self) -> tuple[float, float, float, float]:
        """PRIVILEGED: (ref SBP, ref DBP, carried estimator SBP, DBP) of the current window.

        Only :class:`bprl.policies.OracleCalibrator` (an upper bound, bound explicitly with
        ``bind(env)``) may call this; no observation contains it.

        Raises:
            ConfigError: called before ``reset``.
        """
        s, t = self._series, min(self._t, self._end - 1)
        if s is None:
            raise ConfigError("reference_now() called before reset()")
        return s.ref_sbp[t], s.ref_dbp[t], s.est_carry_sbp[t], s.est_carry_dbp[t]
