"""Scanning a tree of records: :func:`find_record_headers` and the :func:`scan_records` table.

A scan lists every record under a folder (segment and layout headers of multi-segment
records are not listed on their own) with its identifiers, channels, roles, rates and
duration, from the headers alone (cheap) or by reading the signals too. A bad record
never stops a scan: its row carries the :class:`bprl.errors.RecordError` message.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from bprl.errors import RecordError, RecordWarning
from bprl.sources.header import (
    FMT_BITS,
    check_segment_files,
    check_signal_files,
    duplicate_name_notes,
    header_lines,
    header_sample_count,
    read_header,
    read_text_bounded,
    record_start_time,
    record_subject_id,
)
from bprl.sources.read import read_record
from bprl.sources.record import ROLES
from bprl.sources.roles import channel_role, preference_rank, role_index
from bprl.sources.wfdb_reader import segment_layout

#: a channel as a scan sees it: (name, role, fs_hz)
ScanChannel = tuple[str, str | None, float]

#: columns of the :func:`scan_records` table
SCAN_COLUMNS: tuple[str, ...] = (
    "path",
    "subject_id",
    "record_id",
    "n_segments",
    "channels",
    "has_ecg",
    "has_ppg",
    "has_abp",
    "has_resp",
    "fs_ecg_hz",
    "fs_ppg_hz",
    "fs_abp_hz",
    "fs_resp_hz",
    "duration_s",
    "start_time",
    "error",
    "warnings",
    "problems",
)


def _masters_and_segments(dirpath: str, heas: Sequence[str]) -> tuple[set[str], set[str]]:
    """(multi-segment master record names, segment names they list) among the headers of one folder.

    Headers that are not regular files or are oversized are skipped without being opened.
    """
    segs: set[str] = set()
    masters: set[str] = set()
    for f in heas:
        try:  # refuses FIFOs and oversized files without blocking or reading them
            lines = header_lines(read_text_bounded(os.path.join(dirpath, f)))
        except RecordError:
            continue
        parts = lines[0].split() if lines else []
        if parts and "/" in parts[0]:  # 'name/n_seg ...': multi-segment master
            masters.add(f[:-4])
            # segment lines follow the record line
            segs.update(ln.split()[0] for ln in lines[1:])
    return masters, segs


def find_record_headers(root: str | os.PathLike[str]) -> list[Path]:
    """Record headers under ``root``: every ``.hea`` except segment and layout headers of a master record.

    A header is a segment of a master when another header in the same folder is a
    multi-segment header listing it; ``*_layout.hea`` and ``*_0000.hea`` next to
    a master are layout headers. Entries named ``*.hea`` that are not regular files
    (FIFOs, devices, broken links) or are larger than
    :data:`bprl.sources.header.MAX_HEADER_BYTES` are never opened, but they are listed,
    so that :func:`scan_records` and the feature batch report them. Sorted by path.

    Args:
        root: folder searched recursively.

    Returns:
        The header paths, sorted.
    """
    root = Path(root)
    out: list[Path] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        heas = sorted(f for f in filenames if f.endswith(".hea"))
        if not heas:
            continue
        masters, segs = _masters_and_segments(dirpath, heas)
        for f in heas:
            name = f[:-4]
            if name in segs and name not in masters:
                continue
            if masters and (name.endswith("_layout") or name.endswith("_0000")) and name not in masters:
                continue
            out.append(Path(dirpath) / f)
    return sorted(out)


def _fmt_notes(notes: Sequence[str]) -> str:
    """Notes of a scan row as one string (``"; "``-separated, duplicates dropped)."""
    return "; ".join(dict.fromkeys(notes))


def _multi_segment_channels(
    hea: Path, hdr: Any, notes: list[str], comments: list[str]
) -> tuple[list[ScanChannel], list[str], int]:
    """Channels, comments and total frames of a multi-segment record from its headers.

    Checks that the record has samples and that every segment header and its signal files
    exist (:func:`bprl.sources.header.check_segment_files`). Channels come from the layout
    header, else (fixed layout) from the first non-empty segment's header.
    """
    fs = float(hdr.fs)
    seg_lens = [int(n) for n in hdr.seg_len]
    if sum(seg_lens) == 0:
        raise RecordError(f"{hea}: every segment has length 0: the record has no samples")
    check_segment_files(hea, list(hdr.seg_name), seg_lens)
    layout, data_segs = segment_layout(hea, hdr, notes)
    if not layout:
        for s in data_segs:
            name = hdr.seg_name[s]
            if name == "~" or int(hdr.seg_len[s]) == 0:
                continue
            seg_hea = hea.parent / f"{name}.hea"
            sh = read_header(seg_hea, notes, "segment header")
            seg_names = list(sh.sig_name or [])
            notes += duplicate_name_notes(seg_hea, seg_names)
            layout = [
                (n, int(sh.samps_per_frame[i] or 1), "")
                for i, n in enumerate(seg_names)
                if seg_names.index(n) == i
            ]
            comments = comments or list(getattr(sh, "comments", None) or [])
            break
    chans = [(n, channel_role(n), fs * spf) for n, spf, _ in layout]
    return chans, comments, sum(seg_lens)


def _single_segment_channels(hea: Path, hdr: Any, notes: list[str]) -> tuple[list[ScanChannel], int | None]:
    """Channels and frame count of a single-segment record from its header.

    Checks formats, missing files, file sizes and that the record has samples
    (:func:`bprl.sources.header.check_signal_files`) without decoding; a frame count the
    header omits is taken from the size of the first signal file (fixed-size formats).
    """
    fs = float(hdr.fs)
    sig_len = getattr(hdr, "sig_len", None)
    names = list(hdr.sig_name or [])
    notes += duplicate_name_notes(hea, names)
    chans = [
        (n, channel_role(n), fs * int(hdr.samps_per_frame[i] or 1))
        for i, n in enumerate(names)
        if names.index(n) == i
    ]
    if names:  # formats, missing files, file sizes, no samples: cheap checks without decoding
        check_signal_files(hea, hdr)
        if sig_len is None and hdr.fmt[0] in FMT_BITS:  # count omitted: from the file size
            idx = [i for i, f in enumerate(hdr.file_name) if f == hdr.file_name[0]]
            sig_len = header_sample_count(
                hea.parent / hdr.file_name[0],
                FMT_BITS[hdr.fmt[0]],
                sum(int(hdr.samps_per_frame[i] or 1) for i in idx),
                int((hdr.byte_offset or [0])[0] or 0),
            )
    return chans, sig_len


def _scan_header(hea: Path, row: dict, notes: list[str]) -> tuple[Any, list[ScanChannel]]:
    """Header-only part of a scan row: fills ``row`` and returns (header, channels as (name, role, fs_hz)).

    Checks the header (:func:`bprl.sources.header.read_header`), formats and signal files
    (:func:`bprl.sources.header.check_signal_files`), that the record has samples, and for a
    multi-segment record that every segment header and its signal files exist
    (:func:`bprl.sources.header.check_segment_files`). Duplicate names and an absent
    sampling frequency go to ``notes``.
    """
    hdr = read_header(hea, notes)
    comments = list(getattr(hdr, "comments", None) or [])
    fs = float(hdr.fs)
    if getattr(hdr, "seg_name", None) is not None:
        chans, comments, sig_len = _multi_segment_channels(hea, hdr, notes, comments)
    else:
        chans, sig_len = _single_segment_channels(hea, hdr, notes)
    row["duration_s"] = float(sig_len) / fs if sig_len else float("nan")
    row["subject_id"] = record_subject_id(hea, comments, str(hdr.record_name))
    row["record_id"] = str(hdr.record_name)
    st = record_start_time(hdr)
    row["start_time"] = st.isoformat() if st else None
    # same order as read_record (by role, then preference), without flat-lead demotion
    chans = sorted(chans, key=lambda c: (role_index(c[1]), preference_rank(c[0], c[1])))
    return hdr, chans


def _empty_row(hea: Path) -> dict:
    """A scan row for ``hea`` before anything is read (no roles, NaN rates and duration)."""
    row: dict = {c: None for c in SCAN_COLUMNS}
    row.update(path=str(hea), record_id=hea.stem, subject_id=record_subject_id(hea, [], hea.stem), error="")
    row.update(warnings="", problems="")
    for r in ROLES:
        row[f"has_{r}"] = False
        row[f"fs_{r}_hz"] = float("nan")
    row["duration_s"] = float("nan")
    row["n_segments"] = 1
    return row


def _read_row(hea: Path, row: dict) -> tuple[Any, list[ScanChannel]]:
    """Signal-reading part of a scan row: reads the record, fills ``row``, returns (header, channels)."""
    with warnings.catch_warnings():  # kept in the row's columns instead
        warnings.simplefilter("ignore", RecordWarning)
        rec = read_record(hea)
    chans = [(c.name, c.role, c.fs_hz) for c in rec.channels]
    row.update(subject_id=rec.subject_id, record_id=rec.record_id, duration_s=rec.duration_s)
    row["start_time"] = rec.start_time.isoformat() if rec.start_time else None
    row["warnings"] = _fmt_notes(rec.warnings)
    row["problems"] = _fmt_notes(rec.problems)
    return read_header(hea), chans


def _scan_row(args: tuple[str, bool]) -> dict:
    """One row of the scan table for a header path (never raises on a bad record)."""
    path_s, check_signals = args
    hea = Path(path_s)
    row = _empty_row(hea)
    try:
        notes: list[str] = []
        if check_signals:
            hdr, chans = _read_row(hea, row)
        else:
            hdr, chans = _scan_header(hea, row, notes)
            row["warnings"] = _fmt_notes(notes)
        if getattr(hdr, "seg_name", None) is not None:
            row["n_segments"] = sum(
                1 for n, ln in zip(hdr.seg_name, hdr.seg_len, strict=True) if n != "~" and int(ln) > 0
            )
        row["channels"] = ",".join(n for n, _, _ in chans)
        for r in ROLES:
            fs_r = [f for _n, role, f in chans if role == r]
            row[f"has_{r}"] = bool(fs_r)
            if fs_r:
                row[f"fs_{r}_hz"] = float(fs_r[0])
    except RecordError as exc:
        row["error"] = str(exc)
    except Exception as exc:  # a batch never crashes on one odd file
        row["error"] = f"{hea}: {type(exc).__name__}: {exc}"
    return row


def scan_records(
    root: str | os.PathLike[str],
    *,
    check_signals: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> pd.DataFrame:
    """Summarise every record under ``root`` from its header (one row per record).

    Args:
        root: folder of a MIMIC-style tree (searched recursively for ``.hea`` files;
            segment and layout headers of a master record are not listed separately).
        check_signals: also read the signals (catches truncated or corrupt signal files;
            the ECG rate then follows the lead preference including flat-lead demotion).
        workers: processes to use (1: in this process).
        progress: show a tqdm progress bar.

    Returns:
        DataFrame with :data:`SCAN_COLUMNS`; ``error`` is empty for readable records
        and holds the RecordError message otherwise (non-regular files named ``*.hea``
        are listed with an error, never opened). ``warnings`` holds notes that do not
        make a record unusable (duplicate channel names, 250 Hz assumed) and
        ``problems`` the implausible channels found by decoding (``check_signals``
        only); both ``"; "``-separated, empty when none.

    Raises:
        RecordError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise RecordError(f"{root}: folder does not exist")
    heads = find_record_headers(root)
    jobs = [(str(h), check_signals) for h in heads]
    if progress:
        from tqdm import tqdm
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            it = ex.map(_scan_row, jobs, chunksize=max(1, len(jobs) // (workers * 8)))
            rows = list(tqdm(it, total=len(jobs), desc="scan", unit="rec") if progress else it)
    else:
        it2 = (_scan_row(j) for j in jobs)
        rows = list(tqdm(it2, total=len(jobs), desc="scan", unit="rec") if progress else it2)
    df = pd.DataFrame(rows, columns=list(SCAN_COLUMNS))
    for r in ROLES:
        df[f"has_{r}"] = df[f"has_{r}"].astype(bool)
    df["n_segments"] = df["n_segments"].astype("int64")
    for c in ("error", "warnings", "problems"):
        df[c] = df[c].fillna("").astype(str)
    return df
