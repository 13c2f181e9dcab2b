"""Beat-level signal processing: filters, ECG R peaks, PPG fiducials, ABP beats and beat quality.

Everything here works on plain numpy arrays (samples, NaN = invalid) and a sampling rate,
so it serves WFDB records, MIMIC records and the virtual cohort alike. All filters are
zero-phase (``scipy.signal.sosfiltfilt``) so fiducial times carry no filter lag; times are
refined on the lightly filtered signal and interpolated below one sample (parabolic fit).
The code is vectorised (numpy / scipy); Python loops run over gaps or blocks, never samples.

Modules: :mod:`~bprl.beats.filters` (NaN filling, zero-phase Butterworth),
:mod:`~bprl.beats.ecg` (R peaks), :mod:`~bprl.beats.pacing` (pacemaker spikes),
:mod:`~bprl.beats.ppg` (pulse fiducials),
:mod:`~bprl.beats.abp` (SBP / DBP / MAP per beat) and :mod:`~bprl.beats.quality` (per-beat SQI).
The fiducial definitions are in each module's docstring. All times are in seconds from the
start of the signal.
"""

from __future__ import annotations

from bprl.beats.abp import ABP_REJECT_REASONS, abp_beats
from bprl.beats.af import af_windows
from bprl.beats.beat_classes import ecg_beat_classes, ectopic_mask
from bprl.beats.delineation import ecg_delineate
from bprl.beats.delineation_leads import ecg_delineate_leads
from bprl.beats.ecg import ecg_peaks
from bprl.beats.filters import signal_bandpass, signal_fill_nan
from bprl.beats.intervals import ecg_intervals, interval_features, intervals_per_window
from bprl.beats.pacing import ecg_pacing_spikes
from bprl.beats.ppg import ppg_fiducials
from bprl.beats.quality import beat_sqi
from bprl.beats.rhythm_classes import RhythmResult, classify_rhythm
from bprl.beats.rr_features import rr_irregularity_features

__all__ = [
    "ABP_REJECT_REASONS",
    "RhythmResult",
    "abp_beats",
    "af_windows",
    "beat_sqi",
    "classify_rhythm",
    "ecg_beat_classes",
    "ecg_delineate",
    "ecg_delineate_leads",
    "ecg_intervals",
    "ecg_pacing_spikes",
    "ecg_peaks",
    "ectopic_mask",
    "interval_features",
    "intervals_per_window",
    "ppg_fiducials",
    "rr_irregularity_features",
    "signal_bandpass",
    "signal_fill_nan",
]
