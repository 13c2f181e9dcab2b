"""Deprecated: beat-level signal processing moved to :mod:`bprl.beats`.

``bprl.signals`` is a thin shim kept so that old imports keep working: it warns on import
and re-exports the old names, the private cores that record-level code used included, from
their new homes (:mod:`bprl.beats.filters`, :mod:`bprl.beats.ecg`, :mod:`bprl.beats.ppg`,
:mod:`bprl.beats.abp`, :mod:`bprl.beats.quality` and the private :mod:`bprl.beats._arrays`).
Import from :mod:`bprl.beats` instead.
"""

from __future__ import annotations

from bprl._deprecation import warn_moved

# the old module's private names stay reachable as bprl.signals._name (hence the noqa)
from bprl.beats._arrays import (  # noqa: F401
    _nan_runs,
    _near,
    _parabolic,
    _ranges,
    _rolling_quantile_of_points,
    _segment_count,
    _segment_reduce,
    _window_index,
    _Windows,
)
from bprl.beats.abp import ABP_REJECT_REASONS, abp_beats
from bprl.beats.ecg import _ecg_energy, _ecg_peaks_filled, _ecg_refine, _light_at, ecg_peaks  # noqa: F401
from bprl.beats.filters import _deriv, _filtfilt_ba, signal_bandpass, signal_fill_nan  # noqa: F401
from bprl.beats.ppg import _PPG_COLUMNS, _crossing_time, _ppg_fiducials_filled, ppg_fiducials  # noqa: F401
from bprl.beats.quality import _beat_sqi_filled, _block_median, beat_sqi  # noqa: F401
from bprl.errors import FeatureError  # noqa: F401

__all__ = [
    "ABP_REJECT_REASONS",
    "abp_beats",
    "beat_sqi",
    "ecg_peaks",
    "ppg_fiducials",
    "signal_bandpass",
    "signal_fill_nan",
]

warn_moved("bprl.signals", "bprl.beats")
