"""Replay tables from camera video: PPG-only features (no ECG, so no PAT) and a camera replay set.

A camera gives a pulse without an ECG, so the replay table of a camera record has no PAT
(``pat_*`` columns NaN, ``sqi_ecg`` NaN) and its features are the heart rate, the pulse
morphology and the signal quality:

- beats: the intersecting-tangents feet of the wide-band POS pulse of the region clips
  (:func:`bprl.sources.camera.pulse_feet.wideband_pulse`, regions averaged, then
  :func:`~bprl.sources.camera.pulse_feet.pulse_feet`);
- per window (``FeatureConfig.window_s`` / ``hop_s``): ``hr_bpm`` and ``rr_ms`` from the window's
  spectral peak (:func:`bprl.sources.camera.hr_over_time` of the 0.7-3.5 Hz pulse: counting feet
  is less robust, noise adds false upstrokes); ``ppg_amp`` (median foot-to-peak amplitude of the
  unit-SD pulse), ``ppg_rise_time_ms`` (foot to peak), ``ppg_width_ms`` (width at half
  amplitude) over the *valid* beats: every morphology value finite and a foot-to-foot interval
  within 30 % of the spectral period; ``sqi_ppg`` (the window's spectral SNR mapped linearly from
  -10..+10 dB to 0..1), ``n_beats``, ``valid_beat_share``;
- reference: on a virtual cohort, the median SBP/DBP/MAP of the truth table's beats in the
  window (``ref_valid_share`` = 1 where there are beats).

:func:`bprl.estimator.camera_replay.build_camera_replay_set` makes a replay set of these tables
with the estimates of a PPG-only estimator.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bprl.errors import FeatureError
from bprl.features.config import FeatureConfig
from bprl.schemas import REPLAY_COLUMNS
from bprl.sources.camera import bandpass, hr_over_time, read_regions
from bprl.sources.camera.pulse_feet import pulse_feet, wideband_pulse

__all__ = ["CAMERA_FEATURE_COLUMNS", "camera_beats", "camera_replay_table"]

#: replay-table columns a camera provides (the features of the camera estimator and env)
CAMERA_FEATURE_COLUMNS: tuple[str, ...] = ("hr_bpm", "ppg_amp", "ppg_rise_time_ms", "ppg_width_ms")
_SNR_RANGE_DB = (-10.0, 10.0)


def _half_width_s(y: np.ndarray, fs_hz: float, i_foot: int, i_peak: int, i_next: int) -> float:
    """Width of the pulse at half its foot-to-peak amplitude, s (NaN when it does not fall back)."""
    half = y[i_foot] + 0.5 * (y[i_peak] - y[i_foot])
    up = np.flatnonzero(y[i_foot : i_peak + 1] >= half)
    down = np.flatnonzero(y[i_peak:i_next] < half)
    if not len(up) or not len(down):
        return float("nan")
    return (i_peak + down[0] - (i_foot + up[0])) / fs_hz


def camera_beats(clips: list[str | os.PathLike[str]]) -> tuple[pd.DataFrame, float, np.ndarray]:
    """Beats of simultaneous region clips: feet, peaks and morphology of the wide-band pulse.

    Returns:
        ``(beats, fs_hz, pulse)``: one row per beat (``t_foot_s``, ``t_peak_s``, ``rr_ms`` to the
        next foot, ``amplitude``, ``rise_ms``, ``width_ms``), the frame rate and the pulse.

    Raises:
        RecordError: unreadable or too short clips.
    """
    regions, fs_hz = read_regions([Path(c) for c in clips])
    pulse = np.mean([wideband_pulse(v, fs_hz) for v in regions.values()], axis=0)
    feet = pulse_feet(pulse, fs_hz)
    t_foot = feet["t_foot_s"].to_numpy()
    i_foot = np.clip(np.rint(t_foot * fs_hz).astype(int), 0, len(pulse) - 1)
    i_peak = np.clip(np.rint(feet["t_peak_s"].to_numpy() * fs_hz).astype(int), 0, len(pulse) - 1)
    i_next = np.append(i_foot[1:], len(pulse))
    width = [
        _half_width_s(pulse, fs_hz, a, b, c) * 1e3 for a, b, c in zip(i_foot, i_peak, i_next, strict=True)
    ]
    beats = pd.DataFrame(
        {
            "t_foot_s": t_foot,
            "t_peak_s": feet["t_peak_s"].to_numpy(),
            "rr_ms": np.append(np.diff(t_foot), np.nan) * 1e3,
            "amplitude": feet["amplitude"].to_numpy(),
            "rise_ms": (feet["t_peak_s"].to_numpy() - t_foot) * 1e3,
            "width_ms": np.asarray(width, dtype=np.float64),
        }
    )
    plausible = (beats["rr_ms"] > 270) & (beats["rr_ms"] < 2000)  # 30-220 bpm
    beats.loc[~plausible, "rr_ms"] = np.nan
    return beats, fs_hz, pulse


def _median(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    return float(np.median(v)) if len(v) else float("nan")


def camera_replay_table(
    clips: list[str | os.PathLike[str]],
    subject_id: str,
    record_id: str,
    truth: pd.DataFrame | None = None,
    config: FeatureConfig | None = None,
) -> pd.DataFrame:
    """Replay table (exactly :data:`bprl.schemas.REPLAY_COLUMNS`) of one recording's region clips.

    Args:
        clips: the region clips of the recording.
        subject_id: the ``subject_id`` column.
        record_id: the ``record_id`` column.
        truth: a virtual cohort's truth table (``r_time_s``, ``sbp_mmhg``, ``dbp_mmhg``,
            ``map_mmhg``) for the reference columns; ``None``: references NaN.
        config: windows and minimum beats (``window_s``, ``hop_s``, ``min_feature_beats``).

    Raises:
        FeatureError: the video is shorter than one window.
    """
    cfg = config or FeatureConfig()
    beats, fs_hz, pulse = camera_beats(clips)
    duration_s = len(pulse) / fs_hz
    if duration_s < cfg.window_s:
        raise FeatureError(
            f"{clips[0]}: {duration_s:.1f} s of video is shorter than one window ({cfg.window_s} s)"
        )
    n_win = int(np.floor((duration_s - cfg.window_s) / cfg.hop_s + 1e-9)) + 1
    starts = np.arange(n_win) * cfg.hop_s
    out: dict[str, object] = {c: np.full(n_win, np.nan) for c in REPLAY_COLUMNS}
    out.update(
        subject_id=[subject_id] * n_win,
        record_id=[record_id] * n_win,
        step=np.arange(n_win),
        t_start_s=starts.astype(float),
        t_end_s=starts + cfg.window_s,
    )
    n_beats = np.zeros(n_win, dtype=np.int64)
    t_foot = beats["t_foot_s"].to_numpy()
    _, hr_t, snr_t = hr_over_time(bandpass(pulse, fs_hz), fs_hz, window_s=cfg.window_s, step_s=cfg.hop_s)
    lo, hi = _SNR_RANGE_DB
    for k, s in enumerate(starts[: len(hr_t)]):
        rr_spec = 60000.0 / hr_t[k]
        out["hr_bpm"][k], out["rr_ms"][k] = hr_t[k], rr_spec
        out["sqi_ppg"][k] = float(np.clip((snr_t[k] - lo) / (hi - lo), 0.0, 1.0))
        b = beats[(t_foot >= s) & (t_foot < s + cfg.window_s)]
        n_beats[k] = len(b)
        morph = b[["amplitude", "rise_ms", "width_ms"]].to_numpy()
        valid = np.isfinite(morph).all(axis=1) & (np.abs(b["rr_ms"].to_numpy() / rr_spec - 1.0) <= 0.3)
        out["valid_beat_share"][k] = valid.mean() if len(b) else 0.0
        if valid.sum() >= cfg.min_feature_beats:
            out["ppg_amp"][k] = _median(morph[valid, 0])
            out["ppg_rise_time_ms"][k] = _median(morph[valid, 1])
            out["ppg_width_ms"][k] = _median(morph[valid, 2])
        if truth is not None:
            tb = truth[(truth["r_time_s"] >= s) & (truth["r_time_s"] < s + cfg.window_s)]
            if len(tb):
                out["ref_sbp_mmhg"][k] = float(tb["sbp_mmhg"].median())
                out["ref_dbp_mmhg"][k] = float(tb["dbp_mmhg"].median())
                out["ref_map_mmhg"][k] = float(tb["map_mmhg"].median())
                out["ref_valid_share"][k] = 1.0
    out["n_beats"] = n_beats
    cols = {
        c: pd.array(out[c], dtype=dt) if dt == "string" else np.asarray(out[c], dtype=dt)
        for c, dt in REPLAY_COLUMNS.items()
    }
    return pd.DataFrame(cols)
