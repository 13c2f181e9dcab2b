"""Deprecated: the record guards and plausibility checks moved to :mod:`bprl.sources`.

``bprl.record_checks`` is a thin shim kept so that old imports keep working: it warns on
import and re-exports the old names (private helpers included) from their new homes:
:mod:`bprl.sources.header` (regular-file checks, bounded header reads, record-line
validation, non-ASCII headers, segment-file checks) and :mod:`bprl.sources.checks`
(plausibility of decoded signals). Import from :mod:`bprl.sources` instead.
"""

from __future__ import annotations

from bprl._deprecation import warn_moved

# the old module's private names stay reachable as bprl.record_checks._name (hence the noqa)
from bprl.sources.checks import (  # noqa: F401
    ABP_OUTSIDE_MAX_SHARE,
    ABP_RANGE_MMHG,
    CHECK_BLOCKS,
    CHECK_SAMPLES_MAX,
    CHECKED_ROLES,
    MIN_CHECK_SAMPLES,
    NOISE_AC1_MIN,
    SATURATED_MAX_SHARE,
    _excerpt,
    _lag1_autocorrelation,
    channel_problems,
)
from bprl.sources.header import (  # noqa: F401
    _ESCAPED,
    _FS_FIELD,
    _TEXT_FIELDS,
    MAX_HEADER_BYTES,
    WFDB_DEFAULT_FS_HZ,
    _number,
    _unescape,
    check_record_line,
    check_segment_files,
    decode_text,
    duplicate_name_notes,
    escape_non_ascii,
    file_kind,
    header_lines,
    header_sample_count,
    read_text_bounded,
    require_regular_file,
    unescape_header,
    wfdb_record_path,
)

__all__ = [
    "ABP_OUTSIDE_MAX_SHARE",
    "ABP_RANGE_MMHG",
    "CHECKED_ROLES",
    "CHECK_BLOCKS",
    "CHECK_SAMPLES_MAX",
    "MAX_HEADER_BYTES",
    "MIN_CHECK_SAMPLES",
    "NOISE_AC1_MIN",
    "SATURATED_MAX_SHARE",
    "WFDB_DEFAULT_FS_HZ",
    "channel_problems",
    "check_record_line",
    "check_segment_files",
    "decode_text",
    "duplicate_name_notes",
    "escape_non_ascii",
    "file_kind",
    "header_lines",
    "header_sample_count",
    "read_text_bounded",
    "require_regular_file",
    "unescape_header",
    "wfdb_record_path",
]

warn_moved("bprl.record_checks", "bprl.sources")
