"""Deprecated: the waveform synthesis moved to :mod:`bprl.cohort` (ecg_model, pulse_model, artefacts, wfdb_writer).

``import bprl.synth`` warns once and re-exports the old names; import them from ``bprl.cohort``.
"""

from __future__ import annotations

from bprl._deprecation import warn_moved
from bprl.cohort.artefacts import (
    artefact_segments,
    interval_touched,
    noise_band,
    segments_envelope,
    segments_mask,
)
from bprl.cohort.ecg_model import EcgMorphology, ecg_synthesize
from bprl.cohort.pulse_model import pulse_decay, pulse_synthesize, pulse_tangent_offset_s, tangent_foot_s
from bprl.cohort.wfdb_writer import CHANNELS, WFDB_INVALID, to_digital, wfdb_write

warn_moved("bprl.synth", "bprl.cohort")

__all__ = [
    "CHANNELS",
    "WFDB_INVALID",
    "EcgMorphology",
    "artefact_segments",
    "ecg_synthesize",
    "interval_touched",
    "noise_band",
    "pulse_decay",
    "pulse_synthesize",
    "pulse_tangent_offset_s",
    "segments_envelope",
    "segments_mask",
    "tangent_foot_s",
    "to_digital",
    "wfdb_write",
]
