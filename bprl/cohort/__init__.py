"""Virtual cohort: simulated ICU subjects with known physiology, written as MIMIC-style WFDB records.

Each subject gets parameters drawn from a MIMIC-like population (:class:`CohortSpec`
-> :class:`SubjectParams`), hours of BP / sympathetic-tone / stiffness dynamics,
beat-level physiology (Moens-Korteweg with Hughes' elasticity, PAT = PEP + PTT,
HRV, ectopy, AF), and three waveforms with noise and artefacts.

Modules, in the order of the simulation:

* :mod:`~bprl.cohort.spec` — :class:`CohortSpec` and :func:`load_spec`;
* :mod:`~bprl.cohort.subjects` — :class:`SubjectParams`, sampling, manifest splits;
* :mod:`~bprl.cohort.dynamics` — slow BP, tone, HR, respiration and stiffness;
* :mod:`~bprl.cohort.events` — posture, exertion, drug and PEP/PTT events with feature precursors;
* :mod:`~bprl.cohort.beats` — the beat-level truth (:func:`simulate_beats`);
* :mod:`~bprl.cohort.ecg_model`, :mod:`~bprl.cohort.pulse_model`, :mod:`~bprl.cohort.artefacts`
  and :mod:`~bprl.cohort.waveforms` — ECG, PPG and ABP with noise and artefacts;
* :mod:`~bprl.cohort.wfdb_writer` — WFDB records;
* :mod:`~bprl.cohort.layout` — the folder layout: manifest, record paths, truth, summary;
* :mod:`~bprl.cohort.make` — :func:`simulate_subject` and :func:`make_cohort`.

Every public name of these modules is importable from ``bprl.cohort``.
"""

from __future__ import annotations

from bprl.cohort.artefacts import (
    artefact_segments,
    interval_touched,
    noise_band,
    segments_envelope,
    segments_mask,
)
from bprl.cohort.beats import simulate_beats
from bprl.cohort.dynamics import DYN_FS_HZ, Dynamics, simulate_dynamics
from bprl.cohort.ecg_model import EcgMorphology, ecg_synthesize
from bprl.cohort.events import (
    EVENT_KINDS,
    EVENT_RATE_FIELDS,
    CohortEvent,
    EventEffects,
    draw_event,
    draw_events,
    event_effects,
    event_rng,
    events_enabled,
)
from bprl.cohort.layout import (
    COHORT_FILE,
    COHORT_FORMAT,
    MANIFEST_CSV,
    MANIFEST_PARQUET,
    TRUTH_COLUMNS,
    describe_cohort,
    find_manifest,
    load_manifest,
    read_cohort_meta,
    read_manifest,
    read_truth,
    record_folder,
    record_id_for,
    record_path,
    subject_folder,
    subject_id_for,
    truth_path,
    write_cohort_meta,
    write_manifest,
)
from bprl.cohort.make import make_cohort, simulate_subject
from bprl.cohort.pulse_model import pulse_decay, pulse_synthesize, pulse_tangent_offset_s, tangent_foot_s
from bprl.cohort.spec import CohortSpec, load_spec
from bprl.cohort.subjects import (
    BLOOD_DENSITY_KG_M3,
    PWV_REF_PRESSURE_MMHG,
    SubjectParams,
    assign_splits,
    params_row,
    sample_subject,
    sample_subjects,
    subject_params,
)
from bprl.cohort.waveforms import Waveforms, synthesize_waveforms
from bprl.cohort.wfdb_writer import CHANNELS, WFDB_INVALID, to_digital, wfdb_write
from bprl.errors import CohortError

__all__ = [
    "BLOOD_DENSITY_KG_M3",
    "CHANNELS",
    "COHORT_FILE",
    "COHORT_FORMAT",
    "DYN_FS_HZ",
    "EVENT_KINDS",
    "EVENT_RATE_FIELDS",
    "MANIFEST_CSV",
    "MANIFEST_PARQUET",
    "PWV_REF_PRESSURE_MMHG",
    "TRUTH_COLUMNS",
    "WFDB_INVALID",
    "CohortError",
    "CohortEvent",
    "CohortSpec",
    "Dynamics",
    "EcgMorphology",
    "EventEffects",
    "SubjectParams",
    "Waveforms",
    "artefact_segments",
    "assign_splits",
    "describe_cohort",
    "draw_event",
    "draw_events",
    "ecg_synthesize",
    "event_effects",
    "event_rng",
    "events_enabled",
    "find_manifest",
    "interval_touched",
    "load_manifest",
    "load_spec",
    "make_cohort",
    "noise_band",
    "params_row",
    "pulse_decay",
    "pulse_synthesize",
    "pulse_tangent_offset_s",
    "read_cohort_meta",
    "read_manifest",
    "read_truth",
    "record_folder",
    "record_id_for",
    "record_path",
    "sample_subject",
    "sample_subjects",
    "segments_envelope",
    "segments_mask",
    "simulate_beats",
    "simulate_dynamics",
    "simulate_subject",
    "subject_folder",
    "subject_id_for",
    "subject_params",
    "synthesize_waveforms",
    "tangent_foot_s",
    "to_digital",
    "truth_path",
    "wfdb_write",
    "write_cohort_meta",
    "write_manifest",
]
