"""The buffers of the batched vector environment and how their rows are laid out.

Private to :mod:`bprl.envs.vector_env`, whose module docstring explains the scheme. Every buffer
is "structure of arrays": one column per sub-environment, so that an operation runs on contiguous
blocks. The groups here name the rows and views a step reads and writes:

* :class:`CalibrationColumns`, the calibration state: for each of the 16 state observations it
  models (``STATE_FIELDS[3:]``), a *state row* in ``mul`` and one in ``add`` such that the
  observation is ``clip((row_factor * mul + add - centre) / scale)``;
* :class:`StepRows`, the rows of the replay rows the next step acts on (row factors, reference,
  reward divisor, whether a reading succeeds) and the block a successful reading writes;
* :class:`RowTables`, everything a step reads about a replay row, packed once at construction;
* :class:`ActionRows`, :class:`ObservationScratch`, :class:`KalmanState`, :class:`EpisodeReadings`,
  :class:`ResetWorkspace`, :class:`Constants`.

State rows, in pairs (the observations' pairs with each two neighbouring pairs swapped, so that
what a reading writes is one block); row factor, mul, add of each:

| rows | observation | row factor | mul | add |
| --- | --- | --- | --- | --- |
| 0, 1 | offset_sbp/dbp | 0 | 0 | offset |
| 2, 3 | corr_sbp/dbp (centre SBP_C/DBP_C) | raw estimate | gain | offset |
| 4, 5 | has_cuff, new_reading | -1 | 0 | 0 or 1 |
| 6, 7 | gain_sbp/dbp | 1 | gain | -1 |
| 8, 9 | dpat_ms, dhr_bpm | PAT/HR (0 if unknown) | 1 if known at the reading | -PAT/-HR then |
| 10, 11 | since_cuff_h, elapsed_h | window end | 1 | -(end at the reading / episode start) |
| 12, 13 | cuffs_used, budget_left | 0 | 0 | requests used, share of budget left |
| 14, 15 | cuff_minus_est_sbp/dbp | 1 | reading - estimate | 0 |

A successful reading overwrites the *reading block*, rows ``READING_FIRST ..`` of ``[mul; add]``
(mul rows 8..15, add rows 0..10): mul of dpat/dhr (1 where PAT/HR were known: gathered with the row
factors), 1, 1 (mul of since/elapsed), 0, 0 (mul of used/left), then what the step's look-up in the
episode's readings fills (``BLOCK_LOOKUP``: reading - estimate, the mul of cme; ``BLOCK_RECAL``: the
recalibrated offsets twice, the add of offset and of corr), then (``BLOCK_NEGATED``) minus the row
factors of has/new .. since: 1, 1, -1, -1 (the add of the gains), -PAT, -HR, -window end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bprl.envs.cuff import CuffModel
from bprl.envs.observation import DBP_C, DBP_S, N_STATE, OBS_CLIP, SBP_C, SBP_S
from bprl.envs.params import EnvParams
from bprl.envs.replay_arrays import ReplayArrays

# ---- state rows (see the table above)
N_ROWS = 16  # the state observations modelled by rows (STATE_FIELDS[3:19]: not est_sbp, est_dbp, est_valid)
#: the state observations after them, written apart: time_left_h and cuffs_available (computed per
#: step), segment and segment_start (static per replay row, in the static table)
N_TAIL = N_STATE - 3 - N_ROWS
ROW_OFFSET = 0
ROW_CORRECTED = 2
ROW_HAS_CUFF, ROW_NEW_READING = 4, 5
ROW_GAIN = 6
ROW_DPAT, ROW_DHR = 8, 9
ROW_SINCE_CUFF, ROW_ELAPSED = 10, 11
ROW_CUFFS_USED, ROW_BUDGET_LEFT = 12, 13
ROW_CUFF_MINUS_EST = 14
CORRECTED_CENTRE = np.array([SBP_C, DBP_C])  # only corr_sbp/dbp have a centre
ROW_SCALE = np.array(
    [20.0, 20.0, SBP_S, DBP_S, 1.0, 1.0, 0.25, 0.25, 20.0, 10.0, 3600.0, 3600.0, 10.0, 1.0, 20.0, 20.0]
)
# ---- the reading block: rows READING_FIRST .. + READING_ROWS of [mul; add], and its parts
READING_FIRST = ROW_DPAT
READING_ROWS = N_ROWS + ROW_SINCE_CUFF + 1 - READING_FIRST
BLOCK_LOOKUP, LOOKUP_ROWS = ROW_CUFF_MINUS_EST - READING_FIRST, 6  # filled from the episode's readings
#: columns of RowTables.cuff_ref_est: cuff reference (2), carried estimate (2), reading SD (2), failure p
REF_EST_COLS = 7
BLOCK_RECAL = BLOCK_LOOKUP + 2  # the recalibrated offsets, twice (add of offset and of corr)
BLOCK_NEGATED = N_ROWS + ROW_HAS_CUFF - READING_FIRST  # minus the row factors of has_cuff .. since
# ---- rows of the per-step buffer: the row factors (their corr rows are the raw estimate, their since
# row the window end), reference (2, NaN -> 0), reward divisor (2, inf without reference), reading
# succeeds (1/0), then the reading block; a step gathers the first GATHERED rows from the row table
# (up to the block's first two rows), the rest of the block is constant or filled by a reading
STEP_REF, STEP_DIVISOR, STEP_READING_OK, STEP_BLOCK = N_ROWS, N_ROWS + 2, N_ROWS + 4, N_ROWS + 5
GATHERED = STEP_BLOCK + 2
STEP_ROWS = STEP_BLOCK + READING_ROWS
# ---- the cursor: rows of a (3, num_envs) int64 array, replaced (not changed) by each step
CURSOR_ROW, CURSOR_READING, CURSOR_STEP = 0, 1, 2
RESET_GROUP_STEPS = 1 << 15  # resets compute the cuff readings of up to this many steps at once


@dataclass(slots=True)
class CalibrationColumns:
    """The calibration state, ``values`` (2 x 16 rows, one column per sub-environment), and views."""

    values: np.ndarray  #: rows mul (16) then add (16)
    initial: np.ndarray  #: (32, 1) the state at a reset (its since/elapsed adds set per episode)
    mul: np.ndarray
    add: np.ndarray
    gain: np.ndarray  #: (2, n) the mul of corr_sbp/dbp (the gains)
    gain_obs: np.ndarray  #: (2, n) the mul of gain_sbp/dbp (a copy of the gains)
    offsets_twice: np.ndarray  #: (4, n) the add of offset_sbp/dbp and of corr_sbp/dbp
    offsets_pairs: np.ndarray  #: (2, 2, n) the same as two pairs
    offsets: np.ndarray  #: (2, n) the add of offset_sbp/dbp
    new_reading: np.ndarray
    cuffs_used: np.ndarray
    budget_left: np.ndarray
    since_elapsed: np.ndarray  #: (2, n) minus the window end at the last reading / at the episode start
    reading_block: np.ndarray  #: (READING_ROWS, n) what a successful reading overwrites
    reading_mask: np.ndarray  #: (READING_ROWS, n) bool, where a reading is written (putmask)

    @classmethod
    def create(cls, n: int, budget: int | None) -> CalibrationColumns:
        """The state of ``n`` sub-environments at a reset (gains 1, no reading)."""
        z0 = np.zeros(2 * N_ROWS)
        z0[ROW_CORRECTED : ROW_CORRECTED + 2] = z0[ROW_GAIN : ROW_GAIN + 2] = 1.0  # gains
        z0[N_ROWS + ROW_GAIN : N_ROWS + ROW_GAIN + 2] = -1.0
        z0[ROW_SINCE_CUFF] = z0[ROW_ELAPSED] = 1.0
        z0[N_ROWS + ROW_BUDGET_LEFT] = 1.0 if budget is None or budget > 0 else 0.0
        z = np.repeat(z0[:, None], n, axis=1)
        add = z[N_ROWS:]
        offsets_twice = add[ROW_OFFSET : ROW_CORRECTED + 2]
        return cls(
            values=z,
            initial=z0[:, None],
            mul=z[:N_ROWS],
            add=add,
            gain=z[ROW_CORRECTED : ROW_CORRECTED + 2],
            gain_obs=z[ROW_GAIN : ROW_GAIN + 2],
            offsets_twice=offsets_twice,
            offsets_pairs=offsets_twice.reshape(2, 2, n),
            offsets=offsets_twice[:2],
            new_reading=add[ROW_NEW_READING],
            cuffs_used=add[ROW_CUFFS_USED],
            budget_left=add[ROW_BUDGET_LEFT],
            since_elapsed=add[ROW_SINCE_CUFF : ROW_ELAPSED + 1],
            reading_block=z[READING_FIRST : READING_FIRST + READING_ROWS],
            reading_mask=np.zeros((READING_ROWS, n), bool),
        )


@dataclass(slots=True)
class StepRows:
    """The rows of the replay rows the next step acts on (one column per sub-environment), and views."""

    values: np.ndarray  #: (STEP_ROWS, n)
    gathered: np.ndarray  #: the rows gathered from the row table (the first GATHERED)
    factors: np.ndarray  #: (16, n) the row factors of the state rows
    estimate: np.ndarray  #: (2, n) carried raw estimate SBP/DBP, mmHg (the factors of corr)
    t_end_s: np.ndarray  #: window end (the factor of since)
    reference: np.ndarray  #: (2, n) reference SBP/DBP, 0 where none
    divisor: np.ndarray  #: (2, n) reward divisor (inf without a reference; NaN-maker for custom rewards)
    reading_ok: np.ndarray  #: 1.0 where a cuff reading succeeds
    reading_block: np.ndarray  #: (READING_ROWS, n) what a successful reading writes into the state
    lookup: np.ndarray  #: (LOOKUP_ROWS, n) the part of the block filled from the episode's readings
    recal_offsets: np.ndarray  #: (4, n) the recalibrated offsets, twice
    recal_offsets_pairs: np.ndarray  #: (2, 2, n) the same as two pairs
    to_negate: np.ndarray  #: the row factors of has_cuff .. since ...
    negated: np.ndarray  #: ... and where minus them goes in the block

    @classmethod
    def create(cls, n: int) -> StepRows:
        """Zeroed rows for ``n`` sub-environments, with the block's constant rows set."""
        g = np.zeros((STEP_ROWS, n))
        block = g[STEP_BLOCK:]
        block[ROW_SINCE_CUFF - READING_FIRST : ROW_ELAPSED + 1 - READING_FIRST] = 1.0  # (of used/left: 0)
        recal = block[BLOCK_RECAL : BLOCK_RECAL + 4]
        return cls(
            values=g,
            gathered=g[:GATHERED],
            factors=g[:N_ROWS],
            estimate=g[ROW_CORRECTED : ROW_CORRECTED + 2],
            t_end_s=g[ROW_SINCE_CUFF],
            reference=g[STEP_REF : STEP_REF + 2],
            divisor=g[STEP_DIVISOR : STEP_DIVISOR + 2],
            reading_ok=g[STEP_READING_OK],
            reading_block=block,
            lookup=block[BLOCK_LOOKUP : BLOCK_LOOKUP + LOOKUP_ROWS],
            recal_offsets=recal,
            recal_offsets_pairs=recal.reshape(2, 2, n),
            to_negate=g[ROW_HAS_CUFF : ROW_SINCE_CUFF + 1],
            negated=block[BLOCK_NEGATED:],
        )


@dataclass(slots=True)
class RowTables:
    """Everything a step reads about a replay row (subject, step), one row per replay row."""

    obs_static: (
        np.ndarray
    )  #: (rows, obs size) float32: features, normalised estimate, est_valid, room, segment
    n_static: int  #: columns of obs_static before the 16 state observations
    step_rows: np.ndarray  #: (GATHERED, rows) float64: what a step gathers into StepRows
    #: (rows + tmax, REF_EST_COLS): cuff reference SBP/DBP, carried estimate SBP/DBP, reading SD
    #: SBP/DBP, reading failure probability
    cuff_ref_est: np.ndarray

    @classmethod
    def build(
        cls, d: ReplayArrays, p: EnvParams, reward_kind: int, cuff_sd: np.ndarray, fail_p: np.ndarray
    ) -> RowTables:
        """Pack the replay arrays ``d`` for the settings ``p`` (``reward_kind`` -1: custom reward),
        with the cuff's reading SD ``cuff_sd`` (S, T, 2) and failure probability ``fail_p`` (S, T)."""
        s, tmax, k = d.feat_obs.shape
        ec = d.est_carry
        st = np.zeros((s, tmax, k + 3 + N_ROWS + N_TAIL), np.float32)
        st[..., :k] = d.feat_obs
        st[..., -2] = np.clip(d.segment / 10.0, -OBS_CLIP, OBS_CLIP)
        st[..., -1] = d.segment_start
        st[..., k] = np.clip((ec[..., 0] - SBP_C) / SBP_S, -OBS_CLIP, OBS_CLIP)
        st[..., k + 1] = np.clip((ec[..., 1] - DBP_C) / DBP_S, -OBS_CLIP, OBS_CLIP)
        st[..., k + 2] = d.est_valid
        tab = np.zeros((GATHERED, s, tmax))
        x = tab[:N_ROWS]  # row factors of the state observations
        x[ROW_CORRECTED], x[ROW_CORRECTED + 1] = ec[..., 0], ec[..., 1]
        x[ROW_HAS_CUFF] = x[ROW_NEW_READING] = -1.0
        x[ROW_GAIN : ROW_GAIN + 2] = x[ROW_CUFF_MINUS_EST : ROW_CUFF_MINUS_EST + 2] = 1.0
        x[ROW_SINCE_CUFF] = x[ROW_ELAPSED] = d.t_end_s
        pat_ok, hr_ok = np.isfinite(d.pat_carry), np.isfinite(d.hr_carry)
        x[ROW_DPAT], x[ROW_DHR] = np.where(pat_ok, d.pat_carry, 0.0), np.where(hr_ok, d.hr_carry, 0.0)
        ref = np.moveaxis(d.ref, 2, 0)
        has_ref = np.isfinite(ref)
        tab[STEP_REF : STEP_REF + 2] = np.where(has_ref, ref, 0.0)
        # penalty = |err| / divisor (mae), err^2 / divisor (squared), |err| > divisor (aami_band);
        # a custom reward gets err + divisor: NaN without a reference
        if reward_kind < 0:
            tab[STEP_DIVISOR : STEP_DIVISOR + 2] = np.where(has_ref, 0.0, np.nan)
        else:
            div = (p.reward_scale_mmhg, p.reward_scale_mmhg * p.reward_scale_mmhg, p.aami_band_mmhg)
            tab[STEP_DIVISOR : STEP_DIVISOR + 2] = np.where(has_ref, div[reward_kind], np.inf)
        tab[STEP_READING_OK] = np.isfinite(d.cuff_ref).all(axis=2)
        tab[STEP_BLOCK], tab[STEP_BLOCK + 1] = pat_ok, hr_ok  # the mul of dpat/dhr after a reading here
        # cuff reference and carried estimate per replay row, padded with tmax rows so that any row
        # starts a window of up to tmax rows (the episodes' reading windows)
        rows = s * tmax
        ref_est = np.zeros((rows + tmax, REF_EST_COLS))
        ref_est[:rows, :2] = d.cuff_ref.reshape(-1, 2)
        ref_est[:rows, 2:4] = d.est_carry.reshape(-1, 2)
        ref_est[:rows, 4:6] = cuff_sd.reshape(-1, 2)
        ref_est[:rows, 6] = fail_p.reshape(-1)
        return cls(
            obs_static=st.reshape(s * tmax, -1),
            n_static=k + 3,
            step_rows=tab.reshape(GATHERED, s * tmax),
            cuff_ref_est=ref_est,
        )


@dataclass(slots=True)
class ObservationScratch:
    """Buffers in which a step computes the 16 state observations of every sub-environment."""

    state: np.ndarray  #: (16, n) float64, in state-row order
    corrected: np.ndarray  #: (2, n) its corr rows (the only ones with a centre)
    in_obs_order: np.ndarray  #: (4, 2, 2, n) view of ``state`` in observation order (pairs of pairs swapped)
    state32: np.ndarray  #: (16, n) float32 in observation order (the copy into it casts, contiguously)
    state32_pairs: np.ndarray  #: (4, 2, 2, n) view of it
    state32_t: np.ndarray  #: (n, 16) view of it
    centre: np.ndarray  #: (2, n)
    scale: np.ndarray  #: (16, n)

    @classmethod
    def create(cls, n: int) -> ObservationScratch:
        """Buffers for ``n`` sub-environments."""
        buf = np.zeros((N_ROWS, n))
        obs = np.zeros((N_ROWS, n), np.float32)
        return cls(
            state=buf,
            corrected=buf[ROW_CORRECTED : ROW_CORRECTED + 2],
            in_obs_order=buf.reshape(4, 2, 2, n)[:, ::-1],
            state32=obs,
            state32_pairs=obs.reshape(4, 2, 2, n),
            state32_t=obs.T,
            centre=np.repeat(CORRECTED_CENTRE[:, None], n, axis=1),
            scale=np.repeat(ROW_SCALE[:, None], n, axis=1),
        )


@dataclass(slots=True)
class ActionRows:
    """What the actions of a step ask for, one column per sub-environment.

    ``rows`` (8, n): the looked-up rows of a discrete action (offset deltas of the add of
    offset_sbp, offset_dbp, corr_sbp, corr_dbp; 1.0 if it asks for a reading; minus its cost), then
    the two penalties, so that the reward is one reduction, ``(minus cost - penalty SBP) - penalty DBP``.
    """

    table: np.ndarray  #: (6, 6) discrete action -> its rows
    is_cuff: np.ndarray  #: (6,) bool: the discrete action asks for a reading
    rows: np.ndarray
    looked_up: np.ndarray  #: rows[:6]
    offset_deltas: np.ndarray  #: rows[:4]
    want: np.ndarray  #: rows[4], a request as 1.0
    minus_cost: np.ndarray  #: rows[5]
    penalties: np.ndarray  #: rows[6:]
    cost_and_penalties: np.ndarray  #: rows[5:]
    components: np.ndarray  #: (5, n) continuous actions, one row per component
    step_components: np.ndarray  #: components[:4]
    cuff_component: np.ndarray  #: components[4]
    steps: np.ndarray  #: (4, n) the offset and gain steps they ask for
    offset_steps: np.ndarray  #: steps[:2], mmHg
    gain_steps: np.ndarray  #: steps[2:]
    continuous_scale: np.ndarray  #: (4, n) max_offset_step_mmhg (2 rows), max_gain_step (2 rows)

    @classmethod
    def create(cls, n: int, p: EnvParams, cost: float) -> ActionRows:
        """Buffers for ``n`` sub-environments with the settings ``p`` and the cuff ``cost``."""
        nd = p.nudge_mmhg
        table = np.array(
            [[0, 0, nd, -nd, 0, 0], [0, 0, 0, 0, nd, -nd]] * 2 + [[0, 1, 0, 0, 0, 0], [0, -cost, 0, 0, 0, 0]],
            dtype=np.float64,
        )
        rows, at, d = np.zeros((8, n)), np.zeros((5, n)), np.zeros((4, n))
        return cls(
            table=table,
            is_cuff=np.array([False, True, False, False, False, False]),
            rows=rows,
            looked_up=rows[:6],
            offset_deltas=rows[:4],
            want=rows[4],
            minus_cost=rows[5],
            penalties=rows[6:],
            cost_and_penalties=rows[5:],
            components=at,
            step_components=at[:4],
            cuff_component=at[4],
            steps=d,
            offset_steps=d[:2],
            gain_steps=d[2:],
            continuous_scale=np.repeat([[p.max_offset_step_mmhg]] * 2 + [[p.max_gain_step]] * 2, n, axis=1),
        )


@dataclass(slots=True)
class KalmanState:
    """The Kalman recalibration of every sub-environment (see BPCalibrationEnv._kalman_offsets)."""

    q: np.ndarray  #: 0-d: process noise, mmHg^2 per hour
    r: np.ndarray  #: (2, 1) cuff variance SBP, DBP, mmHg^2
    p: np.ndarray  #: (2, n) offset error variance after the last reading, mmHg^2


@dataclass(slots=True)
class EpisodeReadings:
    """The cuff readings of each sub-environment's episode, drawn at reset.

    Column ``i * tmax + k`` of ``values`` is step ``start + k`` of sub-environment i; its rows are
    what a reading writes into the block's look-up part: reading minus raw estimate (the mul of
    cme_sbp/dbp), then twice (the add of offset and of corr) the offsets of a recalibration with
    gain 1 (= reading minus estimate) or, for continuous actions, the readings themselves (NaN where
    a reading fails).
    """

    values: np.ndarray  #: (LOOKUP_ROWS, n * tmax)
    per_env: np.ndarray  #: (LOOKUP_ROWS, n, tmax) view of it
    step_index: np.ndarray  #: arange(tmax)


@dataclass(slots=True)
class ResetWorkspace:
    """Work space of resets, reused (fresh large arrays would cost page faults at every reset)."""

    noise: np.ndarray  #: (n, width, 2) the standard normal draws of every sub-environment
    fail_u: np.ndarray  #: (n, width) uniform draws deciding failed readings (AF episodes only)
    can_fail: np.ndarray  #: (n,) bool: the episode drew ``fail_u`` (a reading can fail)
    rows: np.ndarray  #: (group * width,) table rows of a group of episodes
    ref_est: np.ndarray  #: (group * width, REF_EST_COLS) their RowTables.cuff_ref_est rows
    values: np.ndarray  #: (LOOKUP_ROWS, group, width) their readings' rows

    @classmethod
    def create(cls, n: int, width: int) -> ResetWorkspace:
        """Space for ``n`` episodes of up to ``width`` steps, in groups of up to RESET_GROUP_STEPS steps."""
        g = max(1, min(n, RESET_GROUP_STEPS // width))
        return cls(
            noise=np.zeros((n, width, 2)),
            fail_u=np.ones((n, width)),
            can_fail=np.zeros(n, bool),
            rows=np.zeros(g * width, np.int64),
            ref_est=np.zeros((g * width, REF_EST_COLS)),
            values=np.zeros((LOOKUP_ROWS, g, width)),
        )


@dataclass(slots=True)
class Constants:
    """Scalars as 0-d arrays: numpy ufuncs take them much faster than Python floats."""

    minus_cost: np.ndarray
    offset_limit: np.ndarray
    minus_offset_limit: np.ndarray
    gain_min: np.ndarray
    gain_max: np.ndarray
    clip_lo: np.ndarray
    clip_hi: np.ndarray
    zero: np.ndarray
    one: np.ndarray  #: int64

    @classmethod
    def create(cls, p: EnvParams, cost: float) -> Constants:
        """The constants of the settings ``p`` and the cuff ``cost``."""
        f = np.array
        lim = float(p.offset_limit_mmhg)
        return cls(
            minus_cost=f(-cost),
            offset_limit=f(lim),
            minus_offset_limit=f(-lim),
            gain_min=f(float(p.gain_min)),
            gain_max=f(float(p.gain_max)),
            clip_lo=f(-OBS_CLIP),
            clip_hi=f(OBS_CLIP),
            zero=f(0.0),
            one=f(1),
        )


def available_readings(cuff: CuffModel, state: CalibrationColumns, t_end: np.ndarray) -> np.ndarray:
    """CuffModel.available for every sub-environment at window ends ``t_end`` (same float operations)."""
    used = state.cuffs_used
    left = np.full(used.shape, np.inf) if cuff.budget is None else np.subtract(float(cuff.budget), used)
    if cuff.budget_per_h is not None:
        # since_elapsed[1] is minus the episode's start: t_end + -start == t_end - start
        elapsed_h = np.divide(np.add(t_end, state.since_elapsed[1]), 3600.0)
        accrued = np.floor(np.add(cuff.budget_start, np.multiply(cuff.budget_per_h, elapsed_h)))
        np.minimum(left, np.subtract(accrued, used), out=left)
    return np.maximum(left, 0.0)


def store_readings(
    readings: EpisodeReadings,
    tables: RowTables,
    ws: ResetWorkspace,
    ix: np.ndarray,
    start: np.ndarray,
    lens: np.ndarray,
    draws: tuple[np.ndarray, np.ndarray | None],
    discrete: bool,
) -> None:
    """Write the cuff readings of the episodes of sub-environments ``ix`` (starting at table rows
    ``start``, ``lens`` steps; ``draws`` = their standard normal draws and failure uniforms, None
    when no episode of the group can fail) into ``readings``: reference + sd * noise (the single
    env's operations; sd per row, larger in AF), NaN where a failure uniform lies below the row's
    failure probability, and minus the raw estimate (gain-1 offsets for ``discrete`` actions). All
    episodes are computed over the longest one's length (columns past an episode's end are never
    read)."""
    noise, fail_u = draws
    m, w = len(ix), int(lens.max())
    rows = ws.rows[: m * w].reshape(m, w)
    np.add(start[:, None], readings.step_index[:w], out=rows)
    ref_est = ws.ref_est[: m * w]
    tables.cuff_ref_est.take(rows.ravel(), axis=0, out=ref_est, mode="clip")  # rows are valid
    ref_est = ref_est.reshape(m, w, REF_EST_COLS).transpose(2, 0, 1)  # (7, m, w)
    vals = ws.values[:, :m, :w]
    reading = vals[2:4]
    np.multiply(ref_est[4:6], noise[:, :w].transpose(2, 0, 1), out=reading)
    np.add(ref_est[:2], reading, out=reading)
    if fail_u is not None:  # the single env's u < p, on the episodes that drew u
        reading[:, np.less(fail_u[:, :w], ref_est[6])] = np.nan
    np.subtract(reading, ref_est[2:4], out=vals[:2])
    if discrete:  # the offsets of a recalibration with gain 1
        reading[...] = vals[:2]
    vals[4:] = reading
    readings.per_env[:, ix, :w] = vals
