"""Deprecated: physiological records moved to :mod:`bprl.sources`.

``bprl.records`` is a thin shim kept so that old imports keep working: it warns on import
and re-exports the old names, the private helpers included (under their old names), from
their new homes: :mod:`bprl.sources.record` (Channel, Record, ROLES),
:mod:`bprl.sources.roles` (channel roles and preference), :mod:`bprl.sources.header`
(safe header reading and signal-file checks), :mod:`bprl.sources.checks` (plausibility),
:mod:`bprl.sources.wfdb_reader`, :mod:`bprl.sources.matlab_reader`,
:mod:`bprl.sources.read` (read_record, header_roles) and :mod:`bprl.sources.scan`
(find_record_headers, scan_records). Import from :mod:`bprl.sources` instead.
"""

from __future__ import annotations

from bprl._deprecation import warn_moved
from bprl.errors import RecordError, RecordWarning  # noqa: F401
from bprl.sources import checks as _checks
from bprl.sources import header as _header
from bprl.sources import matlab_reader as _matlab_reader
from bprl.sources import roles as _roles
from bprl.sources import wfdb_reader as _wfdb_reader
from bprl.sources.header import (  # the old module's names from bprl.record_checks
    SUPPORTED_FORMATS,
    check_record_line,  # noqa: F401
    check_segment_files,  # noqa: F401
    duplicate_name_notes,  # noqa: F401
    file_kind,  # noqa: F401
    header_lines,  # noqa: F401
    header_sample_count,  # noqa: F401
    read_text_bounded,  # noqa: F401
    require_regular_file,  # noqa: F401
    unescape_header,  # noqa: F401
    wfdb_record_path,  # noqa: F401
)
from bprl.sources.matlab_reader import FILL_VALUE_MIN_RUN, nan_fill_runs
from bprl.sources.read import _warn, header_roles, read_record  # noqa: F401
from bprl.sources.record import ROLES, Channel, Record
from bprl.sources.roles import ECG_LEAD_ORDER, NO_ROLE, ROLE_ALIASES, channel_role, order_channels
from bprl.sources.scan import (
    SCAN_COLUMNS,
    _fmt_notes,  # noqa: F401
    _scan_header,  # noqa: F401
    _scan_row,  # noqa: F401
    find_record_headers,
    scan_records,
)

# the old module's private names, under their old names (bprl.records._name)
_channel_problems = _checks.channel_problems
_with_problems = _checks.with_problems
_SUBJECT_COMMENT = _header._SUBJECT_COMMENT
_SUBJECT_DIR = _header._SUBJECT_DIR
_FLAC_FMTS = _header.FLAC_FMTS
_FMT_BITS = _header.FMT_BITS
_check_signal_files = _header.check_signal_files
_read_header = _header.read_header
_resolve = _header.resolve_record
_start_time = _header.record_start_time
_subject_id = _header.record_subject_id
_DEFAULT_UNITS = _matlab_reader.DEFAULT_UNITS
_mat_strings = _matlab_reader.mat_strings
_read_mat = _matlab_reader.read_mat
_sidecar = _matlab_reader.read_sidecar
_ECG_EXTRA = _roles._ECG_EXTRA
_PRESSURE = _roles.PRESSURE_NAME
_is_unusable = _roles.is_unusable
_norm_name = _roles.norm_name
_preference_rank = _roles.preference_rank
_select = _roles.select_channels
_check_fs = _wfdb_reader.check_fs
_read_segment = _wfdb_reader.read_segment
_read_wfdb_multi = _wfdb_reader.read_wfdb_multi
_read_wfdb_single = _wfdb_reader.read_wfdb_single
_segment_layout = _wfdb_reader.segment_layout

__all__ = [
    "ECG_LEAD_ORDER",
    "FILL_VALUE_MIN_RUN",
    "NO_ROLE",
    "ROLES",
    "ROLE_ALIASES",
    "SCAN_COLUMNS",
    "SUPPORTED_FORMATS",
    "Channel",
    "Record",
    "channel_role",
    "find_record_headers",
    "header_roles",
    "nan_fill_runs",
    "order_channels",
    "read_record",
    "scan_records",
]

warn_moved("bprl.records", "bprl.sources")
