"""Deprecated: beat-level signal processing moved to :mod:`bprl.beats`.

``bprl.signals`` is a thin shim kept so that old imports keep working: it warns on import
and re-exports the old names, the private cores that record-level code used included, from
their new homes (:mod:`bprl.beats.filters`, :mod:`bprl.beats.ecg`, :mod:`bprl.beats.ppg`,
:mod:`bprl.beats.abp`, :mod:`bprl.beats.quality` and the private :mod:`bprl.beats._arrays`).
Import from :mod:`bprl.beats` instead.
"""

from __future__ import annotations

import sys
import warnings

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

#: bprl modules that still import this shim and switch to bprl.beats in their own step of
#: issue 12; they import it silently (pytest turns bprl's DeprecationWarnings into errors).
#: Empty this tuple once they have switched.
_NOT_YET_MIGRATED: tuple[str, ...] = ("bprl.features",)


def _is_import_machinery(filename: str) -> bool:
    """Whether a frame's file is importlib's bootstrap (the frames ``warnings`` also skips)."""
    return "importlib" in filename and "_bootstrap" in filename


def _importer() -> str:
    """Name of the module whose code imports this one (import-machinery frames skipped)."""
    frame = sys._getframe(2)  # 0: here, 1: this module's body
    while frame is not None and _is_import_machinery(frame.f_code.co_filename):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "") if frame is not None else ""


_by = _importer()
if not any(_by == m or _by.startswith(m + ".") for m in _NOT_YET_MIGRATED):
    warnings.warn("bprl.signals is deprecated; import from bprl.beats", DeprecationWarning, stacklevel=2)
del _by
