"""Physiological records: the :class:`Record` model and readers for WFDB / MIMIC / MATLAB files.

CONTRACT (shared by every package below sources):

- ``read_record(path) -> Record`` takes a path to a record (``.hea`` file, record
  name without extension, or a ``.mat`` excerpt) and returns a :class:`Record`.
  It raises :class:`bprl.errors.RecordError` naming the file and the problem.
- A :class:`Record` holds one :class:`Channel` per signal, each at its own rate
  (multi-frequency MIMIC-IV records are never averaged down to the frame rate).
  Samples are float32 in physical units; invalid samples and gaps are NaN.
- ``record.channel(role)`` returns the preferred channel of a role
  (``"ecg"``, ``"ppg"``, ``"abp"``, ``"resp"``) or raises RecordError.

Modules:

- :mod:`~bprl.sources.record`: :class:`Channel`, :class:`Record`, :data:`ROLES`;
- :mod:`~bprl.sources.roles`: channel names -> roles, preference order, selection;
- :mod:`~bprl.sources.header`: safe header reading (regular files only, bounded size,
  validated sampling frequency, non-ASCII names) and header-vs-signal-file checks;
- :mod:`~bprl.sources.checks`: plausibility of decoded signals (noise, saturation, ABP range);
- :mod:`~bprl.sources.wfdb_reader`: single- and multi-segment WFDB records, including the
  multi-frequency FLAC records of MIMIC-IV;
- :mod:`~bprl.sources.matlab_reader`: MATLAB excerpts with names and rate from the
  arguments, a sidecar YAML, or ``header``/``Fs`` variables in the file;
- :mod:`~bprl.sources.read`: :func:`read_record`, :func:`header_roles`;
- :mod:`~bprl.sources.scan`: :func:`find_record_headers`, :func:`scan_records`.
"""

from __future__ import annotations

from bprl.errors import RecordError, RecordWarning
from bprl.sources.checks import (
    ABP_OUTSIDE_MAX_SHARE,
    ABP_RANGE_MMHG,
    CHECK_BLOCKS,
    CHECK_SAMPLES_MAX,
    CHECKED_ROLES,
    MIN_CHECK_SAMPLES,
    NOISE_AC1_MIN,
    SATURATED_MAX_SHARE,
    channel_problems,
)
from bprl.sources.header import (
    MAX_HEADER_BYTES,
    SUPPORTED_FORMATS,
    WFDB_DEFAULT_FS_HZ,
    file_kind,
    read_text_bounded,
    require_regular_file,
)
from bprl.sources.matlab_reader import FILL_VALUE_MIN_RUN, nan_fill_runs
from bprl.sources.read import header_roles, read_record
from bprl.sources.record import ROLES, Channel, Record
from bprl.sources.roles import ECG_LEAD_ORDER, NO_ROLE, ROLE_ALIASES, channel_role, order_channels
from bprl.sources.scan import SCAN_COLUMNS, find_record_headers, scan_records

__all__ = [
    "ABP_OUTSIDE_MAX_SHARE",
    "ABP_RANGE_MMHG",
    "CHECKED_ROLES",
    "CHECK_BLOCKS",
    "CHECK_SAMPLES_MAX",
    "ECG_LEAD_ORDER",
    "FILL_VALUE_MIN_RUN",
    "MAX_HEADER_BYTES",
    "MIN_CHECK_SAMPLES",
    "NOISE_AC1_MIN",
    "NO_ROLE",
    "ROLES",
    "ROLE_ALIASES",
    "SATURATED_MAX_SHARE",
    "SCAN_COLUMNS",
    "SUPPORTED_FORMATS",
    "WFDB_DEFAULT_FS_HZ",
    "Channel",
    "Record",
    "RecordError",
    "RecordWarning",
    "channel_problems",
    "channel_role",
    "file_kind",
    "find_record_headers",
    "header_roles",
    "nan_fill_runs",
    "order_channels",
    "read_record",
    "read_text_bounded",
    "require_regular_file",
    "scan_records",
]
