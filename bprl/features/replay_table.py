"""Replay tables: a record's beats aggregated into fixed windows, one row per environment step.

:func:`replay_table_from_beats` turns a beat table (:func:`bprl.features.beats.record_beats`)
into windows with exactly the columns and dtypes of :data:`bprl.schemas.REPLAY_COLUMNS`;
:func:`build_replay_table` does a whole record, refusing records whose signals are implausible
(channel problems, heart rate outside :data:`HR_PLAUSIBLE_BPM`). The window aggregation is
vectorised: the beats of every window form one padded index matrix, so each column is one
row-wise median or mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bprl.errors import FeatureError
from bprl.features.beats import PPG_MORPHOLOGY_COLUMNS, record_beats
from bprl.features.config import FeatureConfig
from bprl.features.pat_offsets import pat_offset_steps
from bprl.schemas import REPLAY_COLUMNS, REPLAY_RHYTHM
from bprl.sources import Record

__all__ = ["HR_PLAUSIBLE_BPM", "build_replay_table", "replay_table_from_beats"]

#: plausible median heart rate of a whole record (bpm); outside, the ECG is not an ECG or the
#: header's sampling frequency is wrong (e.g. 500-Hz data labelled 125 Hz reads 4x too fast)
HR_PLAUSIBLE_BPM: tuple[float, float] = (20.0, 250.0)

#: beat columns aggregated as the median over the beats valid for features
_MEDIAN_COLS = PPG_MORPHOLOGY_COLUMNS

#: replay-table reference column -> beat column it is the median of
_REFERENCE_COLS = (("ref_sbp_mmhg", "sbp_mmhg"), ("ref_dbp_mmhg", "dbp_mmhg"), ("ref_map_mmhg", "map_mmhg"))

Columns = dict[str, np.ndarray | list]


def replay_table_from_beats(
    beats: pd.DataFrame,
    duration_s: float,
    subject_id: str,
    record_id: str,
    config: FeatureConfig | None = None,
) -> pd.DataFrame:
    """Aggregate a beat table (:func:`record_beats`) into windows with :data:`REPLAY_COLUMNS`.

    Window ``k`` covers ``[k*hop_s, k*hop_s + window_s)``; only full windows are made.
    PPG/PAT features = median over valid beats; ``rr_ms``/``hr_bpm`` = median over beats with
    good ECG quality that are not ectopic; SQIs = mean over all beats; features are NaN when
    fewer than ``min_feature_beats`` beats qualify. Reference = median of valid ABP beats, NaN
    when fewer than ``min_ref_beats`` or a share below ``min_ref_share`` (never imputed); the
    R->ABP delay likewise. ``pat_offset_ms`` = PPG timing offsets inside the record
    (:func:`bprl.features.pat_offsets.pat_offset_steps`).

    Args:
        beats: the beat table of the record (:data:`bprl.features.beats.BEAT_COLUMNS`), in time order.
        duration_s: length of the record, s.
        subject_id: value of the ``subject_id`` column.
        record_id: value of the ``record_id`` column.
        config: feature settings (default :class:`FeatureConfig`).

    Returns:
        One row per window, columns and dtypes exactly :data:`REPLAY_COLUMNS`.

    Raises:
        FeatureError: the record is shorter than one window.
    """
    cfg = config or FeatureConfig()
    if duration_s < cfg.window_s:
        raise FeatureError(
            f"record {record_id}: {duration_s:.1f} s is shorter than one window ({cfg.window_s} s)"
        )
    n_win = int(np.floor((duration_s - cfg.window_s) / cfg.hop_s + 1e-9)) + 1
    starts = np.arange(n_win) * cfg.hop_s
    ends = starts + cfg.window_s
    win = _BeatWindows.of(beats["r_time_s"].to_numpy(), starts, ends)
    out: Columns = {
        "subject_id": [subject_id] * n_win,
        "record_id": [record_id] * n_win,
        "step": np.arange(n_win),
        "t_start_s": starts.astype(np.float64),
        "t_end_s": ends.astype(np.float64),
    }
    out.update(_feature_columns(beats, win, cfg))
    out.update(_reference_columns(beats, win, cfg))
    out["pat_offset_ms"] = pat_offset_steps(
        pd.DataFrame({c: out[c] for c in ("pat_foot_ms", "pat_peak_ms", "hr_bpm", "r_abp_delay_ms")})
    )
    return _schema_frame(out)


@dataclass(frozen=True)
class _BeatWindows:
    """The beats of every window as a padded index matrix (one row per window).

    Attributes:
        n_beats: number of beats of the record.
        counts: beats per window.
        idx: ``(n_windows, width)`` beat indices, padded (clipped into the beat range).
        inwin: ``(n_windows, width)`` True where ``idx`` is a beat of the window, not padding.
    """

    n_beats: int
    counts: np.ndarray
    idx: np.ndarray
    inwin: np.ndarray

    @classmethod
    def of(cls, t: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> _BeatWindows:
        """Windows ``[starts, ends)`` (s) over beats at times ``t`` (s, sorted)."""
        lo = np.searchsorted(t, starts, side="left")
        hi = np.searchsorted(t, ends, side="left")
        counts = hi - lo
        width = max(1, int(counts.max()) if len(starts) else 1)
        idx = lo[:, None] + np.arange(width)[None, :]
        inwin = np.arange(width)[None, :] < counts[:, None]
        idx = np.clip(idx, 0, max(len(t) - 1, 0))
        return cls(len(t), counts, idx, inwin)

    @property
    def n_windows(self) -> int:
        """Number of windows."""
        return len(self.counts)

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Number of beats with ``mask`` (one bool per beat) in each window."""
        if not self.n_beats:
            return np.zeros(self.n_windows, dtype=int)
        return (mask[self.idx] & self.inwin).sum(axis=1)

    def aggregate(self, values: pd.Series, mask: np.ndarray, min_n: int, how: str = "median") -> np.ndarray:
        """Row-wise median (or mean) of the finite ``values`` of beats with ``mask`` in each window.

        NaN where no such beat has a finite value or fewer than ``min_n`` beats have ``mask``.
        """
        if not self.n_beats:
            return np.full(self.n_windows, np.nan)
        m = np.where(mask[self.idx] & self.inwin, values.to_numpy(np.float64)[self.idx], np.nan)
        n_ok = np.isfinite(m).sum(axis=1)
        res = _row_nanmedian(m) if how == "median" else _row_nanmean(m)
        return np.where((n_ok >= 1) & ((mask[self.idx] & self.inwin).sum(axis=1) >= min_n), res, np.nan)


def _feature_columns(beats: pd.DataFrame, win: _BeatWindows, cfg: FeatureConfig) -> Columns:
    """PAT / PPG medians over valid beats, RR / HR medians over clean ECG beats, mean SQIs, beat counts."""
    valid = beats["valid"].to_numpy(bool)
    ecg_ok = (beats["sqi_ecg"].to_numpy() >= cfg.sqi_ecg_min) & ~beats["ectopic"].to_numpy(bool)
    out: Columns = {}
    for c in _MEDIAN_COLS:
        out[c] = win.aggregate(beats[c], valid, cfg.min_feature_beats)
    for c in ("rr_ms", "hr_bpm"):
        out[c] = win.aggregate(beats[c], ecg_ok, cfg.min_feature_beats)
    everything = np.ones(win.n_beats, dtype=bool)
    for c in ("sqi_ecg", "sqi_ppg"):
        out[c] = win.aggregate(beats[c], everything, 1, how="mean")
    if "af" in beats:  # rhythm columns (REPLAY_RHYTHM)
        classed = beats["beat_class"].astype(str).to_numpy() != ""
        with np.errstate(divide="ignore", invalid="ignore"):
            n_classed = win.count(classed)
            out["af_share"] = np.where(
                n_classed > 0,
                win.count(beats["af"].to_numpy(bool) & classed) / np.maximum(n_classed, 1),
                np.nan,
            )
            ect = np.isin(beats["beat_class"].astype(str).to_numpy(), ["S", "V"])
            out["ectopic_share"] = np.where(n_classed > 0, win.count(ect) / np.maximum(n_classed, 1), np.nan)
        out["qtc_ms"] = win.aggregate(beats["qtc_ms"], ecg_ok, cfg.min_feature_beats)
        out["pat_qrs_onset_ms"] = win.aggregate(beats["pat_qrs_onset_ms"], valid, cfg.min_feature_beats)
    n_valid = win.count(valid)
    counts = win.counts
    with np.errstate(divide="ignore", invalid="ignore"):
        out["n_beats"] = counts.astype(np.int64)
        out["valid_beat_share"] = np.where(counts > 0, n_valid / np.maximum(counts, 1), 0.0)
    return out


def _reference_columns(beats: pd.DataFrame, win: _BeatWindows, cfg: FeatureConfig) -> Columns:
    """Reference SBP / DBP / MAP and R->ABP delay (medians of valid ABP beats, NaN when too few), valid ABP share."""
    abp_ok = beats["abp_valid"].to_numpy(bool)
    n_abp = win.count(abp_ok)
    counts = win.counts
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(counts > 0, n_abp / np.maximum(counts, 1), 0.0)
    out: Columns = {"ref_valid_share": share}
    has_ref = (n_abp >= cfg.min_ref_beats) & (share >= cfg.min_ref_share)
    for c, src in _REFERENCE_COLS:
        out[c] = np.where(has_ref, win.aggregate(beats[src], abp_ok, 1), np.nan)
    delay = beats["r_abp_delay_ms"] if "r_abp_delay_ms" in beats else pd.Series(np.full(len(beats), np.nan))
    out["r_abp_delay_ms"] = np.where(has_ref, win.aggregate(delay, abp_ok, 1), np.nan)
    return out


def _schema_frame(out: Columns) -> pd.DataFrame:
    """The columns of :data:`REPLAY_COLUMNS` from ``out``, built directly in their schema dtype.

    One DataFrame construction, no ``astype`` pass. The rhythm columns (:data:`REPLAY_RHYTHM`) are
    NaN when the beat table has none (``rhythm: false``).
    """
    n = len(out["step"])
    for c in REPLAY_RHYTHM:
        if c not in out:
            out[c] = np.full(n, np.nan)
    cols = {
        c: pd.array(out[c], dtype=dtype) if dtype == "string" else np.asarray(out[c], dtype=dtype)
        for c, dtype in REPLAY_COLUMNS.items()
    }
    return pd.DataFrame(cols)


def _row_nanmedian(m: np.ndarray) -> np.ndarray:
    """Median of the finite values of each row (NaN for rows without any), fully vectorised."""
    srt = np.sort(m, axis=1)  # NaN sort last
    n = np.isfinite(m).sum(axis=1)
    rows = np.arange(len(m))
    lo = srt[rows, np.maximum((n - 1) // 2, 0)]
    hi = srt[rows, np.maximum(n // 2, 0) if m.shape[1] else 0]
    hi = np.where(n % 2 == 1, lo, srt[rows, np.minimum(n // 2, m.shape[1] - 1)])
    return np.where(n > 0, 0.5 * (lo + hi), np.nan)


def _row_nanmean(m: np.ndarray) -> np.ndarray:
    """Mean of the finite values of each row (NaN for rows without any)."""
    n = np.isfinite(m).sum(axis=1)
    s = np.where(np.isfinite(m), m, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


# ------------------------------------------------------------------------ one record
def build_replay_table(record: Record, config: FeatureConfig | None = None) -> pd.DataFrame:
    """Replay table of one record: :func:`record_beats` aggregated into windows.

    A record without PPG gives NaN PAT/PPG features; without ABP, NaN reference
    (:func:`bprl.features.build.build_replay_tables` skips records without PPG).

    Args:
        record: the record.
        config: feature settings (default :class:`FeatureConfig`).

    Returns:
        The replay table (:data:`REPLAY_COLUMNS`), one row per window.

    Raises:
        FeatureError: no ECG, no beats, shorter than one window, the preferred ECG, PPG or
            ABP channel has plausibility problems (``Channel.problems``, see
            :func:`bprl.sources.checks.channel_problems`), or the median heart rate is
            outside :data:`HR_PLAUSIBLE_BPM`.
    """
    cfg = config or FeatureConfig()
    if record.duration_s < cfg.window_s:
        raise FeatureError(
            f"{record.path}: {record.duration_s:.1f} s is shorter than one window ({cfg.window_s} s)"
        )
    _require_plausible_signals(record)
    beats = record_beats(record, cfg)
    _require_plausible_heart_rate(record, beats)
    return replay_table_from_beats(beats, record.duration_s, record.subject_id, record.record_id, cfg)


def _require_plausible_signals(record: Record) -> None:
    """FeatureError listing the plausibility problems of the preferred ECG, PPG and ABP channels, if any."""
    used = [record.channel(r) for r in ("ecg", "ppg", "abp") if record.has(r)]
    problems = [p.removeprefix(f"{record.path}: ") for c in used for p in c.problems]
    if problems:
        raise FeatureError(f"{record.path}: implausible signals, no features built: " + "; ".join(problems))


def _require_plausible_heart_rate(record: Record, beats: pd.DataFrame) -> None:
    """FeatureError when the median heart rate of ``beats`` lies outside :data:`HR_PLAUSIBLE_BPM`."""
    hr = beats["hr_bpm"].to_numpy(np.float64)
    hr_median = float(np.median(hr[np.isfinite(hr)])) if np.isfinite(hr).any() else float("nan")
    lo, hi = HR_PLAUSIBLE_BPM
    if not lo <= hr_median <= hi:
        ecg = record.channel("ecg")
        raise FeatureError(
            f"{record.path}: implausible heart rate: median {hr_median:.0f} bpm from ECG {ecg.name!r} at "
            f"{ecg.fs_hz:g} Hz (plausible {lo:g}-{hi:g} bpm): wrong sampling frequency or format in the "
            "header, or not an ECG"
        )
