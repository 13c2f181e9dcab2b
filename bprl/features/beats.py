"""The per-beat table of a record: one row per ECG R peak with PAT, HR, PPG morphology, quality and ABP.

:func:`record_beats` runs the beat detectors of :mod:`bprl.beats` on a record's preferred ECG,
PPG and ABP channels and lines their results up on the R peaks, with the columns
:data:`BEAT_COLUMNS`. Each channel is NaN-filled once and shared by detection and quality
(the private ``*_filled`` cores of :mod:`bprl.beats`). :mod:`bprl.features.replay_table`
aggregates this table into windows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from bprl.beats.abp import abp_beats
from bprl.beats.beat_classes import ectopic_mask
from bprl.beats.ecg import _ecg_peaks_filled
from bprl.beats.filters import signal_fill_nan
from bprl.beats.ppg import _ppg_fiducials_filled
from bprl.beats.quality import _beat_sqi_filled
from bprl.beats.rhythm_summary import beat_rhythm
from bprl.errors import FeatureError
from bprl.features.config import FeatureConfig
from bprl.sources import Record

__all__ = ["BEAT_COLUMNS", "record_beats"]

#: columns of :func:`record_beats` (ABP columns are NaN / False without an ABP channel)
BEAT_COLUMNS: tuple[str, ...] = (
    "r_time_s",
    "rr_ms",
    "hr_bpm",
    "pat_foot_ms",
    "pat_maxslope_ms",
    "pat_peak_ms",
    "ppg_amp",
    "ppg_rise_time_ms",
    "ppg_width_ms",
    "ppg_stiffness_index",
    "sqi_ecg",
    "sqi_ppg",
    "ectopic",
    "beat_class",
    "af",
    "qtc_ms",
    "pat_qrs_onset_ms",
    "valid",
    "sbp_mmhg",
    "dbp_mmhg",
    "map_mmhg",
    "abp_valid",
    "abp_reject_reason",
    "r_abp_delay_ms",
)

#: per-beat PAT and PPG pulse-morphology columns (the replay table takes their window medians)
PPG_MORPHOLOGY_COLUMNS: tuple[str, ...] = (
    "pat_foot_ms",
    "pat_maxslope_ms",
    "pat_peak_ms",
    "ppg_amp",
    "ppg_rise_time_ms",
    "ppg_width_ms",
    "ppg_stiffness_index",
)

#: PPG columns of the beat table (all NaN without a PPG channel)
_PPG_BEAT_COLUMNS: tuple[str, ...] = (*PPG_MORPHOLOGY_COLUMNS, "sqi_ppg")

BeatColumns = dict[str, np.ndarray | str]


def record_beats(record: Record, config: FeatureConfig | None = None) -> pd.DataFrame:
    """One row per ECG R peak with the columns :data:`BEAT_COLUMNS`.

    Definitions: ``rr_ms`` = time from the previous R peak; ``hr_bpm`` = 60000 / ``rr_ms``;
    ``pat_*_ms`` = PPG foot (intersecting tangents) / max slope / systolic peak minus R time;
    ``ppg_amp`` = systolic peak minus foot level (record units); ``ppg_rise_time_ms`` = foot ->
    systolic peak; ``ppg_width_ms`` = width at half amplitude; ``ppg_stiffness_index`` =
    1 / (t_diastolic_peak - t_systolic_peak) in 1/s, i.e. the stiffness index SI = height / dT
    for a height of 1 m (multiply by the subject's height in m), NaN without a diastolic peak;
    ``ectopic`` = left out of the features as ectopic, by ``ectopic_gating``: ``"classes"``: classed
    S or V (:func:`bprl.beats.ecg_beat_classes`) or the beat after one; ``"rr"``: RR differs from the
    local median (9 beats) by more than ``rr_tolerance``; ``"none"``: never;
    ``beat_class`` = N / S / V / Q (AAMI EC57; ``""`` without rhythm); ``af`` = inside a 30-s window
    detected as atrial fibrillation (:func:`bprl.beats.rhythm_summary.beat_rhythm`); ``qtc_ms`` = QTc (Fridericia)
    of the delineated beat (:func:`bprl.beats.ecg_delineate`); ``pat_qrs_onset_ms`` = PPG foot minus
    QRS onset (NaN where either is missing); the rhythm columns are empty / False / NaN with
    ``rhythm: false``;
    ``r_abp_delay_ms`` = ABP upstroke (max dP/dt) minus R time;
    ``valid`` = PPG upstroke found in the PAT window with a foot at 0 < ``pat_foot_ms`` <=
    ``pat_max_ms``, both SQIs above threshold, not ectopic.

    Args:
        record: the record (its preferred ``ecg`` channel is required; ``ppg`` and ``abp`` optional).
        config: feature settings (default :class:`FeatureConfig`).

    Returns:
        The beat table, one row per R peak in time order.

    Raises:
        FeatureError: the record has no ECG channel or no R peak could be found.
    """
    cfg = config or FeatureConfig()
    df = _ecg_columns(record, cfg)
    r = np.asarray(df["r_time_s"])
    df.update(_ppg_columns(record, r, cfg) if record.has("ppg") else _no_ppg_columns(len(r)))
    df["pat_qrs_onset_ms"] = df["pat_foot_ms"] + df.pop("r_minus_qrs_onset_ms")
    df["valid"] = _valid_beats(df, cfg)
    df.update(_abp_columns(record, r, cfg) if record.has("abp") else _no_abp_columns(len(r)))
    return pd.DataFrame({c: df[c] for c in BEAT_COLUMNS})


def _ecg_columns(record: Record, cfg: FeatureConfig) -> BeatColumns:
    """R peaks of the preferred ECG and the columns derived from them: RR, HR, ECG quality, ectopy.

    Raises:
        FeatureError: no ECG channel, not 1-D / no sampling rate, or fewer than 3 R peaks.
    """
    if not record.has("ecg"):
        raise FeatureError(f"{record.path}: no ECG channel (has {[c.name for c in record.channels]})")
    ecg = record.channel("ecg")
    ecg_x, ecg_nan = signal_fill_nan(ecg.samples)
    if ecg_x.ndim != 1 or not ecg.fs_hz > 0:
        raise FeatureError(
            f"{record.path}: ECG must be 1-D with fs_hz > 0, got {ecg_x.shape} at {ecg.fs_hz} Hz"
        )
    r = _ecg_peaks_filled(ecg_x, ecg_nan, ecg.fs_hz, True)
    if len(r) < 3:
        raise FeatureError(f"{record.path}: fewer than 3 R peaks in {ecg.duration_s:.1f} s of ECG")
    df: BeatColumns = {"r_time_s": r}
    rr = np.concatenate([[np.nan], np.diff(r) * 1000.0])
    df["rr_ms"] = rr
    df["hr_bpm"] = 60000.0 / rr
    df["sqi_ecg"] = _beat_sqi_filled(ecg_x, ecg_nan, ecg.fs_hz, r, 0.2, 0.4)
    rr_fill = np.where(np.isfinite(rr), rr, np.nanmedian(rr))
    med = ndimage.median_filter(rr_fill, size=9, mode="nearest")
    rr_rule = np.abs(rr_fill - med) > cfg.rr_tolerance * med
    rhythm = _rhythm_columns(ecg.samples, ecg_x, ecg.fs_hz, r, ecg.duration_s) if cfg.rhythm else None
    df.update(rhythm or _no_rhythm_columns(len(r)))
    if cfg.ectopic_gating == "rr":
        df["ectopic"] = rr_rule
    elif cfg.ectopic_gating == "classes":
        if not cfg.rhythm:
            raise FeatureError("ectopic_gating: 'classes' needs rhythm: true (the beat classes)")
        df["ectopic"] = ectopic_mask(np.asarray(df["beat_class"]), post=1)
    else:
        df["ectopic"] = np.zeros(len(r), bool)
    return df


def _rhythm_columns(
    ecg: np.ndarray, ecg_x: np.ndarray, fs_hz: float, r: np.ndarray, duration_s: float
) -> BeatColumns:
    """Beat classes (from ``ecg`` with its NaN gaps), AF (30-s windows), QTc and R minus QRS onset
    (ms, from the NaN-filled ``ecg_x``) of each R peak ``r`` (s)."""
    br = beat_rhythm(ecg, fs_hz, r, duration_s, 30.0, delineation_ecg=ecg_x)
    return {
        "beat_class": br.classes,
        "af": br.beat_af(r),
        "qtc_ms": br.intervals["qtc_fridericia_ms"].to_numpy(np.float64),
        "r_minus_qrs_onset_ms": (r - br.delineation["qrs_onset_s"].to_numpy(np.float64)) * 1000.0,
    }


def _no_rhythm_columns(n_beats: int) -> BeatColumns:
    """The rhythm columns without rhythm analysis: no class, no AF, NaN intervals."""
    nan = np.full(n_beats, np.nan)
    return {
        "beat_class": np.full(n_beats, ""),
        "af": np.zeros(n_beats, bool),
        "qtc_ms": nan,
        "r_minus_qrs_onset_ms": nan,
    }


def _ppg_columns(record: Record, r: np.ndarray, cfg: FeatureConfig) -> BeatColumns:
    """PAT, PPG morphology and PPG quality of each R peak ``r`` (s) from the preferred PPG channel."""
    ppg = record.channel("ppg")
    ppg_x, ppg_nan = signal_fill_nan(ppg.samples)
    f = _ppg_fiducials_filled(ppg_x, ppg_nan, ppg.fs_hz, r, cfg.pat_min_ms, cfg.pat_max_ms)
    df: BeatColumns = {}
    df["pat_foot_ms"] = (f["t_foot_s"] - r) * 1000.0
    df["pat_maxslope_ms"] = (f["t_maxslope_s"] - r) * 1000.0
    df["pat_peak_ms"] = (f["t_peak_s"] - r) * 1000.0
    df["ppg_amp"] = f["y_peak"] - f["y_foot"]
    df["ppg_rise_time_ms"] = (f["t_peak_s"] - f["t_foot_s"]) * 1000.0
    df["ppg_width_ms"] = f["width_ms"]
    with np.errstate(divide="ignore", invalid="ignore"):
        dt = f["t_dia_s"] - f["t_peak_s"]
        df["ppg_stiffness_index"] = np.where(dt > 0, 1.0 / dt, np.nan)
    df["sqi_ppg"] = _beat_sqi_filled(ppg_x, ppg_nan, ppg.fs_hz, f["t_maxslope_s"], 0.15, 0.45)
    return df


def _no_ppg_columns(n_beats: int) -> BeatColumns:
    """The PPG columns of a record without PPG: NaN for every beat."""
    nan = np.full(n_beats, np.nan)
    return {c: nan for c in _PPG_BEAT_COLUMNS}


def _valid_beats(df: BeatColumns, cfg: FeatureConfig) -> np.ndarray:
    """Beats valid for features: foot PAT in ``0 < pat <= pat_max_ms``, both SQIs above threshold, not ectopic."""
    pat = df["pat_foot_ms"]
    return (
        np.isfinite(pat)
        & (pat > 0.0)
        & (pat <= cfg.pat_max_ms)
        & (df["sqi_ecg"] >= cfg.sqi_ecg_min)
        & (df["sqi_ppg"] >= cfg.sqi_ppg_min)
        & ~df["ectopic"]
    )


def _abp_columns(record: Record, r: np.ndarray, cfg: FeatureConfig) -> BeatColumns:
    """SBP / DBP / MAP, validity and reject reason of each R peak ``r`` (s) from the preferred ABP channel."""
    abp = record.channel("abp")
    b = abp_beats(
        abp.samples,
        abp.fs_hz,
        r,
        sbp_max_mmhg=cfg.sbp_max_mmhg,
        dbp_min_mmhg=cfg.dbp_min_mmhg,
        pp_min_mmhg=cfg.pp_min_mmhg,
    )
    return {
        "sbp_mmhg": b["sbp_mmhg"].to_numpy(),
        "dbp_mmhg": b["dbp_mmhg"].to_numpy(),
        "map_mmhg": b["map_mmhg"].to_numpy(),
        "abp_valid": b["valid"].to_numpy(),
        "abp_reject_reason": b["reject_reason"].to_numpy(),
        "r_abp_delay_ms": (b["t_upstroke_s"].to_numpy(np.float64) - r) * 1000.0,
    }


def _no_abp_columns(n_beats: int) -> BeatColumns:
    """The ABP columns of a record without ABP: NaN pressures, never valid, reason ``no_abp``."""
    nan = np.full(n_beats, np.nan)
    return {
        "sbp_mmhg": nan,
        "dbp_mmhg": nan,
        "map_mmhg": nan,
        "abp_valid": np.zeros(n_beats, dtype=bool),
        "abp_reject_reason": "no_abp",
        "r_abp_delay_ms": nan,
    }
