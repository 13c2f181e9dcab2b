"""Column schemas of the tables that pass between bprl's stages, and the split names.

Declared as data so that producers and consumers agree, and so tests can check a table
against its schema (:func:`check_columns`). Each schema maps a column name to its pandas
dtype; units are in the names.

Replay table (one Parquet file per record, built by :mod:`bprl.features`, with estimator
columns filled by :mod:`bprl.estimator`): one row per environment step, with
:data:`REPLAY_COLUMNS` (:data:`REPLAY_INDEX` + :data:`REPLAY_FEATURES` + :data:`REPLAY_REFERENCE`
+ :data:`REPLAY_TIMING`)
and, once estimated, :data:`REPLAY_ESTIMATE`. The folder of replay tables the environments
read is a replay set (:mod:`bprl.features.replay_set`).

Episode log (written by the rollout from environment ``info``; read by :mod:`bprl.evaluation`):
one row per step of one policy on one subject and seed, with :data:`EPISODE_LOG_COLUMNS`.

:data:`SPLITS` (the split names, in order) is defined by :mod:`bprl.splits` and re-exported here.
"""

from __future__ import annotations

import pandas as pd

from bprl.splits import SPLITS

__all__ = [
    "EPISODE_LOG_COLUMNS",
    "EPISODE_LOG_OPTIONAL",
    "OBSERVABLE_FEATURES",
    "REPLAY_COLUMNS",
    "REPLAY_ESTIMATE",
    "REPLAY_FEATURES",
    "REPLAY_INDEX",
    "REPLAY_REFERENCE",
    "REPLAY_REQUIRED",
    "REPLAY_RHYTHM",
    "REPLAY_SEGMENT",
    "REPLAY_TIMING",
    "SPLITS",
    "check_columns",
]

# ---------------------------------------------------------------- replay table
#: identity and timing columns of a replay table
REPLAY_INDEX: dict[str, str] = {
    "subject_id": "string",
    "record_id": "string",
    "step": "int64",  # 0, 1, 2, ... in time order
    "t_start_s": "float64",  # window start, seconds from record start
    "t_end_s": "float64",  # window end
}

#: observation features: robust aggregates (median) of valid beats in the window; NaN if none
REPLAY_FEATURES: dict[str, str] = {
    "pat_foot_ms": "float64",  # R peak -> PPG foot (intersecting tangents)
    "pat_maxslope_ms": "float64",  # R peak -> max upstroke slope
    "pat_peak_ms": "float64",  # R peak -> PPG systolic peak
    "rr_ms": "float64",
    "hr_bpm": "float64",
    "ppg_amp": "float64",  # PPG pulse amplitude, record units
    "ppg_rise_time_ms": "float64",  # foot -> systolic peak
    "ppg_width_ms": "float64",  # pulse width at half amplitude
    "ppg_stiffness_index": "float64",  # reflection / stiffness index of the pulse (documented in features)
    "sqi_ecg": "float64",  # 0..1 mean beat template correlation
    "sqi_ppg": "float64",  # 0..1
    "n_beats": "int64",  # beats detected in window
    "valid_beat_share": "float64",  # share of beats with valid PAT features, 0..1
}

#: reference blood pressure from the arterial line: median of valid ABP beats; NaN when too few
REPLAY_REFERENCE: dict[str, str] = {
    "ref_sbp_mmhg": "float64",
    "ref_dbp_mmhg": "float64",
    "ref_map_mmhg": "float64",
    "ref_valid_share": "float64",  # share of ABP beats in the window accepted as arterial, 0..1
}

#: timing diagnostics (issue 16), not observation features; optional: tables written before them
#: lack both (replay sets require only :data:`REPLAY_REQUIRED`; ``concat_records`` adds them)
REPLAY_TIMING: dict[str, str] = {
    "r_abp_delay_ms": "float64",  # R peak -> ABP upstroke (max dP/dt), median of valid ABP beats; NaN without ABP
    # PPG timing offset (ms) estimated on the first step after a PAT step that neither HR nor the
    # R->ABP delay explains (bprl.features.pat_offsets); NaN on every other step
    "pat_offset_ms": "float64",
}

#: rhythm of each window (issue 17: bprl.beats rhythm detection), optional: tables written before
#: them lack them; observable features like :data:`REPLAY_FEATURES` (``features: [..., af_share]``)
REPLAY_RHYTHM: dict[str, str] = {
    "af_share": "float64",  # share of the window inside 30-s windows detected as AF, 0..1
    "ectopic_share": "float64",  # share of the window's beats classed ventricular / supraventricular ectopic
    "qtc_ms": "float64",  # median QTc (Fridericia) of the window's delineated beats
    "pat_qrs_onset_ms": "float64",  # QRS onset -> PPG foot, median of the PAT-valid beats
}

#: record segment of each step of a subject joined from several records (0, 1, ...), written by
#: ``bprl.features.replay_set.concat_records``; optional (environments fall back to ``record_id``)
REPLAY_SEGMENT: dict[str, str] = {"segment": "int64"}

#: calibration-free estimator output, filled by bprl.estimator (NaN when the window has no usable signal)
REPLAY_ESTIMATE: dict[str, str] = {
    "est_sbp_mmhg": "float64",
    "est_dbp_mmhg": "float64",
}

#: columns every replay table must have (replay sets check these; :data:`REPLAY_TIMING` is optional)
REPLAY_REQUIRED: dict[str, str] = {**REPLAY_INDEX, **REPLAY_FEATURES, **REPLAY_REFERENCE}

#: every column :mod:`bprl.features` writes, in order
REPLAY_COLUMNS: dict[str, str] = {**REPLAY_REQUIRED, **REPLAY_TIMING, **REPLAY_RHYTHM}

#: columns an environment may observe (``features:`` of an env spec)
OBSERVABLE_FEATURES: dict[str, str] = {**REPLAY_FEATURES, **REPLAY_RHYTHM}

# ----------------------------------------------------------------- episode log
#: one row per environment step
EPISODE_LOG_COLUMNS: dict[str, str] = {
    "policy": "string",  # policy name as in the experiment file
    "seed": "int64",
    "subject_id": "string",
    "episode": "int64",  # episode index for this (policy, seed)
    "step": "int64",  # step within the episode
    "t_s": "float64",  # window end time in seconds from record start
    "est_sbp_mmhg": "float64",  # raw estimator output
    "est_dbp_mmhg": "float64",
    "corr_sbp_mmhg": "float64",  # corrected (calibrated) estimate the policy reports
    "corr_dbp_mmhg": "float64",
    "ref_sbp_mmhg": "float64",  # reference; NaN where none (never shown to the policy)
    "ref_dbp_mmhg": "float64",
    "cuff": "bool",  # a cuff reading was taken at this step
    "cuff_sbp_mmhg": "float64",  # the reading (NaN when no cuff)
    "cuff_dbp_mmhg": "float64",
    "reward": "float64",
}

#: episode-log columns written by the rollout but optional when reading (older logs lack them):
#: column -> (dtype, value when absent)
EPISODE_LOG_OPTIONAL: dict[str, tuple[str, object]] = {
    "cuff_refused": ("bool", False),  # a request refused by the budget (no reading, no cost)
    "segment": ("int64", 0),  # record segment of the step (subjects joined from several records)
    "family": ("string", None),  # policy family of a cuff-rate sweep (None: the policy name)
    "target_cuffs_per_h": ("float64", float("nan")),  # the sweep's budget per hour (NaN: no sweep)
    "base_policy": ("string", None),  # a residual agent's base rule (a policy of the same run), else None
    "af_share": ("float64", float("nan")),  # share of the step in detected AF (NaN: rhythm not known)
}


# ---------------------------------------------------------------------- checks
def check_columns(df: pd.DataFrame, schema: dict[str, str], what: str) -> None:
    """Check that ``df`` has every column of ``schema`` (dtypes are not checked).

    Args:
        df: the table.
        schema: column name -> dtype, e.g. :data:`REPLAY_COLUMNS`.
        what: what the table is, for the message (e.g. a file name).

    Raises:
        ValueError: naming ``what`` and the missing columns.
    """
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}")
