"""WFDB readers: single-segment and multi-segment records -> :class:`~bprl.sources.record.Channel` lists.

- Single-segment records of any format wfdb supports (8, 16, 24, 32, 61, 80, 160, 212,
  310, 311 and the FLAC formats 508/516/524), including signal files named ``.mat``
  (PhysioNet Challenge 2015). Signals are read with ``smooth_frames=False``, so the
  multi-frequency, FLAC-compressed MIMIC-IV records keep every channel at its own rate
  (ECG 250 Hz, ABP and Pleth 125 Hz) instead of being averaged down to the frame rate.
- Multi-segment records (fixed and variable layout): segments are placed at their frame
  offsets, channels are mapped by name, gaps (``~`` segments, segments lacking a
  channel) are NaN.

Headers and signal files are checked first (:mod:`bprl.sources.header`); every failure
is a :class:`bprl.errors.RecordError` naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bprl.errors import RecordError
from bprl.sources.header import (
    check_signal_files,
    duplicate_name_notes,
    file_kind,
    read_header,
    read_text_bounded,
    wfdb_record_path,
)
from bprl.sources.record import Channel
from bprl.sources.roles import channel_role, select_channels

#: a channel of a multi-segment record: (name, samples per frame, units)
LayoutChannel = tuple[str, int, str]


def read_segment(hea: Path, hdr: Any, channels: list[int] | None = None) -> list[np.ndarray]:
    """Physical samples (float32, NaN for invalid values) of one single-segment record, per channel.

    Args:
        hea: the header file.
        hdr: its parsed header (:func:`bprl.sources.header.read_header`).
        channels: signal indices to read (``None``: all).

    Returns:
        One array per requested channel, at that channel's own rate.

    Raises:
        RecordError: signal files that do not fit the header, wfdb failures, truncated signals.
    """
    import wfdb

    check_signal_files(hea, hdr)
    sig_len = int(getattr(hdr, "sig_len", 0) or 0)
    chans = list(range(int(hdr.n_sig))) if channels is None else channels
    if not chans:
        return []
    text = read_text_bounded(hea)
    try:
        with wfdb_record_path(hea, text, list(hdr.file_name or [])) as (rec_path, tmp):
            try:
                rec = wfdb.rdrecord(rec_path, channels=chans, smooth_frames=False)
            except Exception as exc:
                msg = str(exc) if tmp is None else str(exc).replace(tmp, str(hea.parent))
                raise RecordError(f"{hea}: cannot read signals: {type(exc).__name__}: {msg}") from exc
    except RecordError:
        raise
    except OSError as exc:  # the temporary folder of a non-ASCII header
        raise RecordError(f"{hea}: cannot read signals: {exc}") from exc
    out = []
    for j, i in enumerate(chans):
        x = np.asarray(rec.e_p_signal[j], dtype=np.float32)
        spf = int(hdr.samps_per_frame[i] or 1)
        if sig_len and len(x) < sig_len * spf:
            raise RecordError(
                f"{hea}: signal {hdr.sig_name[i]} truncated: {len(x)} samples decoded, "
                f"header says {sig_len * spf}"
            )
        out.append(x)
    return out


def check_fs(where: Path, fs_hz: float | None, rates: Sequence[float]) -> None:
    """RecordError when ``fs_hz`` (Hz) was given for a WFDB record and matches none of its ``rates`` (Hz)."""
    if fs_hz is None or not rates:
        return
    if not any(abs(fs_hz - r) <= 1e-6 * max(1.0, r) for r in rates):
        raise RecordError(
            f"{where}: fs_hz={fs_hz} disagrees with the header (rates {sorted(set(rates))} Hz); "
            "fs_hz is only needed for .mat excerpts"
        )


def read_wfdb_single(
    hea: Path, hdr: Any, channel_names: Sequence[str] | None, notes: list[str]
) -> list[Channel]:
    """Channels of a single-segment WFDB record at their own rates (first of duplicate names).

    Args:
        hea: the header file.
        hdr: its parsed header.
        channel_names: channels to keep (``None``: all).
        notes: duplicate channel names are noted here.

    Raises:
        RecordError: an absent requested channel, or as :func:`read_segment`.
    """
    names = list(hdr.sig_name or [])
    notes += duplicate_name_notes(hea, names)
    idx = select_channels(hea, names, channel_names)
    data = read_segment(hea, hdr, idx)
    fs = float(hdr.fs)
    return [
        Channel(
            name=names[i],
            role=channel_role(names[i]),
            fs_hz=fs * int(hdr.samps_per_frame[i] or 1),
            units=str(hdr.units[i] or ""),
            samples=x,
        )
        for i, x in zip(idx, data, strict=True)
    ]


def segment_layout(
    hea: Path, hdr: Any, notes: list[str] | None = None
) -> tuple[list[LayoutChannel], list[int]]:
    """(name, samples per frame, units) of each channel of a multi-segment record, and segment indices.

    Variable layout: from the layout segment (length 0, first). Fixed layout: from
    the first real segment; further segments add channels they alone have. A name the
    layout lists twice is used once (the first), with a note.

    Args:
        hea: the master header.
        hdr: its parsed header.
        notes: duplicate names and absent sampling frequencies are noted here (``None``: dropped).

    Returns:
        The layout's channels (empty for a fixed layout) and the indices of the data segments.

    Raises:
        RecordError: a missing or malformed layout header.
    """
    seg_names = list(hdr.seg_name)
    seg_lens = [int(n) for n in hdr.seg_len]
    chans: list[LayoutChannel] = []
    data_segs = list(range(len(seg_names)))
    if seg_names and seg_lens[0] == 0 and seg_names[0] != "~":
        layout_hea = hea.parent / f"{seg_names[0]}.hea"
        if file_kind(layout_hea) in ("missing", "broken link"):
            raise RecordError(f"{hea}: layout header {layout_hea.name} named in the master header is missing")
        layout = read_header(layout_hea, notes, "layout header")
        names = list(layout.sig_name or [])
        if notes is not None:
            notes += duplicate_name_notes(layout_hea, names)
        for i, n in enumerate(names):
            if names.index(n) == i:
                chans.append((n, int(layout.samps_per_frame[i] or 1), str(layout.units[i] or "")))
        data_segs = data_segs[1:]
    return chans, data_segs


def _segment_headers(
    hea: Path, hdr: Any, data_segs: list[int], chans: list[LayoutChannel], notes: list[str]
) -> tuple[dict[int, Any], list[str]]:
    """Parsed headers of the non-empty data segments, by segment index, and their comments.

    Read before any signal so that missing files fail early. Each segment's frame rate
    must equal the master's; channels a segment alone has are appended to ``chans``.
    """
    fs = float(hdr.fs)
    seg_names = list(hdr.seg_name)
    seg_lens = [int(n) for n in hdr.seg_len]
    seg_hdrs: dict[int, Any] = {}
    comments: list[str] = []
    for s in data_segs:
        if seg_names[s] == "~" or seg_lens[s] == 0:
            continue
        seg_hea = hea.parent / f"{seg_names[s]}.hea"
        if file_kind(seg_hea) in ("missing", "broken link"):
            raise RecordError(f"{hea}: segment header {seg_hea.name} named in the master header is missing")
        sh = read_header(seg_hea, notes, "segment header")
        if abs(float(sh.fs) - fs) > 1e-6 * fs:
            raise RecordError(f"{seg_hea}: frame rate {sh.fs} Hz differs from the master header's {fs} Hz")
        seg_hdrs[s] = sh
        seg_sig = list(sh.sig_name or [])
        notes += duplicate_name_notes(seg_hea, seg_sig)
        known = {c[0] for c in chans}
        for i, n in enumerate(seg_sig):
            if n not in known:
                chans.append((n, int(sh.samps_per_frame[i] or 1), str(sh.units[i] or "")))
                known.add(n)
        comments += list(getattr(sh, "comments", None) or [])
    return seg_hdrs, comments


def _place_segment(
    out: dict[str, np.ndarray], seg_hea: Path, sh: Any, chans: list[LayoutChannel], start: int, length: int
) -> None:
    """Decode one segment and write its channels into ``out`` from frame ``start`` on.

    A channel stored at another rate in this segment than in the record is interpolated
    onto the record's grid; channels the segment lacks stay NaN.
    """
    seg_sig = list(sh.sig_name or [])
    wanted = [(n, spf) for n, spf, _ in chans if n in seg_sig]
    if not wanted:
        return
    idx = [seg_sig.index(n) for n, _ in wanted]  # the first signal of a duplicated name
    data = read_segment(seg_hea, sh, idx)
    for (n, spf), i, x in zip(wanted, idx, data, strict=True):
        seg_spf = int(sh.samps_per_frame[i] or 1)
        n_out = length * spf
        x = x[: length * seg_spf]
        if seg_spf != spf:  # channel at another rate in this segment: interpolate onto the record grid
            t_in = np.arange(len(x)) / seg_spf
            t_out = np.arange(n_out) / spf
            x = np.interp(t_out, t_in, x, left=np.nan, right=np.nan).astype(np.float32)
        a = start * spf
        out[n][a : a + min(n_out, len(x))] = x[:n_out]


def read_wfdb_multi(
    hea: Path, hdr: Any, channel_names: Sequence[str] | None, notes: list[str]
) -> tuple[list[Channel], list[str]]:
    """Channels of a multi-segment record: segments at their frame offsets, gaps NaN, mapped by name.

    Args:
        hea: the master header.
        hdr: its parsed header.
        channel_names: channels to keep (``None``: all).
        notes: duplicate channel names are noted here.

    Returns:
        The channels (each over the whole record) and the segment headers' comments.

    Raises:
        RecordError: no samples, missing segment headers or files, a segment frame rate
            different from the master's, an absent requested channel, unreadable signals.
    """
    fs = float(hdr.fs)
    seg_names = list(hdr.seg_name)
    seg_lens = [int(n) for n in hdr.seg_len]
    chans, data_segs = segment_layout(hea, hdr, notes)
    total = sum(seg_lens)
    if total == 0:
        raise RecordError(f"{hea}: every segment has length 0: the record has no samples")
    seg_hdrs, comments = _segment_headers(hea, hdr, data_segs, chans, notes)
    keep = select_channels(hea, [c[0] for c in chans], channel_names)
    chans = [chans[i] for i in keep]
    out = {n: np.full(total * spf, np.nan, dtype=np.float32) for n, spf, _ in chans}
    starts = np.concatenate([[0], np.cumsum(seg_lens)]).astype(int)
    for s, sh in seg_hdrs.items():
        seg_hea = hea.parent / f"{seg_names[s]}.hea"
        _place_segment(out, seg_hea, sh, chans, int(starts[s]), seg_lens[s])
    channels = [
        Channel(name=n, role=channel_role(n), fs_hz=fs * spf, units=u, samples=out[n]) for n, spf, u in chans
    ]
    return channels, comments
