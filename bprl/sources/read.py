"""Reading one record: :func:`read_record` (WFDB or MATLAB excerpt -> :class:`~bprl.sources.record.Record`).

CONTRACT (shared by every package below sources):

- ``read_record(path) -> Record`` takes a path to a record (``.hea`` file, record
  name without extension, or a ``.mat`` excerpt) and returns a :class:`Record` whose
  channels are in role/preference order, with plausibility problems attached.
- It raises :class:`bprl.errors.RecordError` naming the file and the problem; notes that
  do not make a record unusable are kept in ``Record.warnings`` / ``Record.problems`` and
  emitted as :class:`bprl.errors.RecordWarning`.

:func:`header_roles` tells which roles a record has from its header(s) alone.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from bprl.errors import RecordError, RecordWarning
from bprl.sources.checks import with_problems
from bprl.sources.header import read_header, record_start_time, record_subject_id, resolve_record
from bprl.sources.matlab_reader import read_mat
from bprl.sources.record import ROLES, Record
from bprl.sources.roles import channel_role, order_channels
from bprl.sources.wfdb_reader import check_fs, read_wfdb_multi, read_wfdb_single, segment_layout


def _read_mat_record(where: Path, channel_names: Sequence[str] | None, fs_hz: float | None) -> Record:
    """A MATLAB excerpt as a Record (identifiers from the sidecar, else the file name and folders)."""
    notes: list[str] = []
    chans, side = read_mat(where, channel_names, fs_hz, notes)
    record_id = str(side.get("record_id", where.stem))
    comments = [f"subject_id: {side['subject_id']}"] if "subject_id" in side else []
    return Record(
        subject_id=record_subject_id(where, comments, record_id),
        record_id=record_id,
        path=str(where),
        channels=order_channels(with_problems(chans, where)),
        comments=comments,
        warnings=list(dict.fromkeys(notes)),
    )


def _read_wfdb_record(where: Path, channel_names: Sequence[str] | None, fs_hz: float | None) -> Record:
    """A single- or multi-segment WFDB record as a Record."""
    notes: list[str] = []
    hdr = read_header(where, notes)
    comments = list(getattr(hdr, "comments", None) or [])
    if getattr(hdr, "seg_name", None) is not None:  # multi-segment
        chans, seg_comments = read_wfdb_multi(where, hdr, channel_names, notes)
        comments = comments or seg_comments
    else:
        chans = read_wfdb_single(where, hdr, channel_names, notes)
    if chans and all(len(c.samples) == 0 for c in chans):
        raise RecordError(f"{where}: the record has no samples")
    check_fs(where, fs_hz, [float(hdr.fs)] + [c.fs_hz for c in chans])
    record_id = str(hdr.record_name)
    return Record(
        subject_id=record_subject_id(where, comments, record_id),
        record_id=record_id,
        path=str(where),
        channels=order_channels(with_problems(chans, where)),
        start_time=record_start_time(hdr),
        comments=comments,
        warnings=list(dict.fromkeys(notes)),
    )


def read_record(
    path: str | os.PathLike[str],
    *,
    channel_names: Sequence[str] | None = None,
    fs_hz: float | None = None,
) -> Record:
    """Read a WFDB record or a MATLAB excerpt into a :class:`Record`.

    Args:
        path: a ``.hea`` header, a record path without extension, or a ``.mat`` file
            (a WFDB record when ``<name>.hea`` lies next to it, else a MATLAB excerpt).
        channel_names: for WFDB records, the channels to keep (RecordError when one is
            absent). For a MATLAB excerpt without names, the names of all columns in
            order; when the file or its sidecar names the columns, a selection.
        fs_hz: sampling rate of a MATLAB excerpt; for WFDB records it must agree
            with the header.

    Returns:
        The record, channels in role/preference order (:func:`~bprl.sources.roles.order_channels`),
        float32 physical samples with NaN for invalid samples, fill runs and gaps.
        ``record.warnings`` lists duplicate channel names (the first signal of a name
        is used, later ones are dropped) and an absent sampling frequency (250 Hz
        assumed); ``record.problems`` lists implausible channels. Each is also emitted
        as a :class:`bprl.errors.RecordWarning`.

    Raises:
        RecordError: missing path or a path that is not a regular file (FIFO, device),
            missing, truncated or oversized signal file, garbage, empty or oversized
            header, a sampling frequency that is 0, negative or not a number, no
            samples, unsupported format, absent requested channel, MATLAB excerpt
            without names or rate. The message names the file.
    """
    where, kind = resolve_record(path)
    if kind == "mat":
        rec = _read_mat_record(where, channel_names, fs_hz)
    else:
        rec = _read_wfdb_record(where, channel_names, fs_hz)
    return _warn(rec)


def _warn(rec: Record) -> Record:
    """Emit each of ``rec.warnings`` and ``rec.problems`` as a RecordWarning; return ``rec``."""
    for msg in [*rec.warnings, *rec.problems]:
        warnings.warn(msg, RecordWarning, stacklevel=3)
    return rec


def header_roles(path: str | os.PathLike[str]) -> list[str]:
    """Roles of the channels a record's header(s) name, in :data:`ROLES` order, without decoding signals.

    A cheap pre-check for batches (e.g. skip records without PPG before reading them).
    Multi-segment records: the layout header, else every segment header (fixed layout).
    A MATLAB excerpt is read in full.

    Args:
        path: as for :func:`read_record`.

    Returns:
        The roles present (subset of :data:`ROLES`, in that order).

    Raises:
        RecordError: as :func:`read_record` for a missing, non-regular or malformed header.
    """
    where, kind = resolve_record(path)
    if kind == "mat":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RecordWarning)
            return read_record(where).roles
    hdr = read_header(where)
    if getattr(hdr, "seg_name", None) is None:
        names = list(hdr.sig_name or [])
    else:
        layout, data_segs = segment_layout(where, hdr)
        names = [n for n, _, _ in layout]
        if not names:
            for s in data_segs:
                if hdr.seg_name[s] != "~" and int(hdr.seg_len[s]) > 0:
                    seg_hea = where.parent / f"{hdr.seg_name[s]}.hea"
                    names += list(read_header(seg_hea, None, "segment header").sig_name or [])
    present = {channel_role(n) for n in names}
    return [r for r in ROLES if r in present]
