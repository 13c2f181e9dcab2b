"""Physiological records: the :class:`Record` model and readers for WFDB / MIMIC files.

CONTRACT (shared by every room below records):

- ``read_record(path) -> Record`` takes a path to a record (``.hea`` file, record
  name without extension, or a ``.mat`` excerpt) and returns a :class:`Record`.
  It raises :class:`bprl.errors.RecordError` naming the file and the problem.
- A :class:`Record` holds one :class:`Channel` per signal, each at its own rate
  (multi-frequency MIMIC-IV records are never averaged down to the frame rate).
  Samples are float32 in physical units; invalid samples and gaps are NaN.
- ``record.channel(role)`` returns the preferred channel of a role
  (``"ecg"``, ``"ppg"``, ``"abp"``, ``"resp"``) or raises RecordError.

Readers:

- single-segment WFDB records of any format wfdb supports (8, 16, 24, 32, 61, 80,
  160, 212, 310, 311 and the FLAC formats 508/516/524), including signal files
  named ``.mat`` (PhysioNet Challenge 2015);
- multi-segment WFDB records (fixed and variable layout): segments are placed
  at their frame offsets, channels are mapped by name, gaps (``~`` segments,
  segments lacking a channel) are NaN;
- MATLAB excerpts (``signal`` matrix, e.g. the MIMIC DB ``TestICUdata.mat``) with
  names and rate from the arguments, a sidecar YAML, or ``header``/``Fs``
  variables in the file.

:func:`scan_records` summarises a tree of records from their headers.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bprl.errors import RecordError, RecordWarning
from bprl.record_checks import channel_problems as _channel_problems
from bprl.record_checks import (
    check_record_line,
    check_segment_files,
    duplicate_name_notes,
    file_kind,
    header_lines,
    header_sample_count,
    read_text_bounded,
    require_regular_file,
    unescape_header,
    wfdb_record_path,
)

ROLES: tuple[str, ...] = ("ecg", "ppg", "abp", "resp")

# ------------------------------------------------------------------ channel names -> roles
#: ECG lead preference: the first lead of this list present in a record (and not
#: entirely NaN or flat) is ``record.channel("ecg")``. Names not listed come last.
ECG_LEAD_ORDER: tuple[str, ...] = (
    "ii",
    "mlii",
    "i",
    "iii",
    "avf",
    "v",
    "v1",
    "v2",
    "v3",
    "v4",
    "v5",
    "v6",
    "avl",
    "avr",
    "mli",
    "mliii",
    "mcl1",
    "mcl2",
    "mcl3",
    "mcl4",
    "mcl5",
    "mcl6",
    "mcl",
    "ecg",
    "ekg",
)
_ECG_EXTRA = re.compile(r"^(ml|mcl|v|ecg|ekg|lead)\d*$")
#: normalised names (see :func:`channel_role`) of each non-ECG role, in preference order
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "ppg": ("pleth", "ppg", "plet", "pleth1", "ppg1", "plethysmogram", "photopleth", "spo2wave"),
    "abp": ("abp", "art", "art1", "art2", "arterial", "artbp", "ibp", "ibp1", "fap", "uap", "bp"),
    "resp": ("resp", "respiration", "rsp", "respimp", "impresp", "imp", "breath", "thorax"),
}
#: known channels without a role (pulmonary / venous / intracranial pressure, ...)
NO_ROLE: tuple[str, ...] = ("pap", "cvp", "icp", "lap", "rap", "pawp", "co2", "spo2", "hr", "pulse")

#: default physical units of MATLAB excerpt channels, by role (``None``: no role)
_DEFAULT_UNITS: dict[str | None, str] = {"ecg": "mV", "ppg": "NU", "abp": "mmHg", "resp": "NU", None: "NU"}
_PRESSURE = re.compile(r"^(pap|cvp|icp|lap|rap|pawp)")


def _norm_name(name: str) -> str:
    """Lower-case channel name with separators removed and ``ECG``/``lead`` prefixes dropped."""
    n = re.sub(r"[\s_\-.()]+", "", name.strip().lower())
    for prefix in ("ecglead", "ecg", "ekg", "lead"):
        if n.startswith(prefix) and len(n) > len(prefix):
            n = n[len(prefix) :]
            break
    return n


def channel_role(name: str) -> str | None:
    """Role of a channel from its name: ``"ecg"``, ``"ppg"``, ``"abp"``, ``"resp"`` or ``None``.

    Case-insensitive; ``ECG II``, ``ECG_II``, ``II``, ``MLII``, ``V5``, ``aVR`` are ECG;
    ``Pleth``/``PLETH``/``PPG`` are PPG; ``ABP``/``ART``/``Art`` are ABP;
    ``Resp``/``RESP`` are respiration; ``PAP``, ``CVP`` and unknown names have no role.
    """
    raw = re.sub(r"[\s_\-.()]+", "", name.strip().lower())
    if raw in ("ecg", "ekg") or raw.startswith(("ecg", "ekg")):
        return "ecg"
    n = _norm_name(name)
    if n in NO_ROLE or _PRESSURE.match(n):
        return None
    if n in ECG_LEAD_ORDER or _ECG_EXTRA.match(n):
        return "ecg"
    for role, aliases in ROLE_ALIASES.items():
        if n in aliases:
            return role
    return None


def _preference_rank(name: str, role: str | None) -> int:
    """Position of ``name`` in its role's preference list (unknown names last)."""
    n = _norm_name(name)
    order: Sequence[str] = ECG_LEAD_ORDER if role == "ecg" else ROLE_ALIASES.get(role or "", ())
    return order.index(n) if n in order else len(order)


def _is_unusable(samples: np.ndarray) -> bool:
    """True when a signal is entirely NaN or flat (no variation between its 1st and 99th percentile)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return True
    lo, hi = np.percentile(finite, [1.0, 99.0])
    return bool(hi - lo <= 1e-9 * max(1.0, abs(float(hi))))


def order_channels(channels: Iterable[Channel]) -> list[Channel]:
    """Channels sorted by role (:data:`ROLES` order, then no role), usability, preference, input order.

    Within a role, a channel that is entirely NaN or flat, or has plausibility
    ``problems`` (see :func:`bprl.record_checks.channel_problems`), comes after usable
    ones, then channels follow the preference lists (:data:`ECG_LEAD_ORDER`,
    :data:`ROLE_ALIASES`).
    """
    chans = list(channels)

    def key(item: tuple[int, Channel]) -> tuple[int, int, int, int]:
        i, c = item
        role_i = ROLES.index(c.role) if c.role in ROLES else len(ROLES)
        demoted = int(c.role is not None and (bool(c.problems) or _is_unusable(c.samples)))
        return role_i, demoted, _preference_rank(c.name, c.role), i

    return [c for _, c in sorted(enumerate(chans), key=key)]


# ------------------------------------------------------------------------- model
@dataclass(frozen=True)
class Channel:
    """One signal of a record at its own sampling rate.

    Attributes:
        name: channel name as written in the header (``"II"``, ``"Pleth"``, ``"ABP"``).
        role: ``"ecg"``, ``"ppg"``, ``"abp"``, ``"resp"`` or ``None`` when unknown.
        fs_hz: sampling rate of this channel in Hz.
        units: physical units (``"mV"``, ``"mmHg"``, ``"NU"``).
        samples: float32 array of physical values; NaN marks invalid samples and gaps.
        problems: plausibility problems found when the record was read (empty: none);
            each message names the file and the channel.
    """

    name: str
    role: str | None
    fs_hz: float
    units: str
    samples: np.ndarray
    problems: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        """Length of the channel in seconds."""
        return float(len(self.samples) / self.fs_hz)

    @property
    def nan_share(self) -> float:
        """Share of samples that are NaN (0 to 1)."""
        n = len(self.samples)
        return float(np.isnan(self.samples).sum() / n) if n else 1.0

    def times_s(self) -> np.ndarray:
        """Sample times in seconds from the record start."""
        return np.arange(len(self.samples), dtype=np.float64) / self.fs_hz


@dataclass
class Record:
    """A physiological record: channels of one subject from one recording.

    Attributes:
        subject_id: subject identifier (MIMIC ``p10020306``, virtual ``v0001``).
        record_id: record identifier (``83404654_0006``).
        path: where it was read from.
        start_time: wall-clock start when the header gives a base date and time, else ``None``.
        channels: the signals, each at its own rate, ordered by role and preference
            (see :func:`order_channels`).
        comments: header comment lines (without ``#``).
        warnings: things that deserve attention but do not make the record unusable
            (duplicate channel names, sampling frequency absent from the header); each
            message names the file. Plausibility problems are in :attr:`problems`.
    """

    subject_id: str
    record_id: str
    path: str
    channels: list[Channel] = field(default_factory=list)
    start_time: datetime | None = None
    comments: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Plausibility problems of all channels (see :func:`bprl.record_checks.channel_problems`)."""
        return [p for c in self.channels for p in c.problems]

    @property
    def roles(self) -> list[str]:
        """Roles present in the record, in :data:`ROLES` order."""
        present = {c.role for c in self.channels}
        return [r for r in ROLES if r in present]

    @property
    def duration_s(self) -> float:
        """Longest channel duration in seconds (0 for a record with no channels)."""
        return max((c.duration_s for c in self.channels), default=0.0)

    @property
    def channel_names(self) -> list[str]:
        """Names of the channels, in stored (preference) order."""
        return [c.name for c in self.channels]

    def has(self, role: str) -> bool:
        """Whether the record has a channel of ``role``."""
        return any(c.role == role for c in self.channels)

    def channel(self, role: str) -> Channel:
        """The preferred channel of ``role`` (channels are stored in preference order)."""
        for c in self.channels:
            if c.role == role:
                return c
        raise RecordError(f"{self.path}: no {role!r} channel (has {[c.name for c in self.channels]})")

    def channel_by_name(self, name: str) -> Channel:
        """The channel called ``name`` (exact match first, then case-insensitive); RecordError if absent."""
        for c in self.channels:
            if c.name == name:
                return c
        for c in self.channels:
            if c.name.lower() == name.lower():
                return c
        raise RecordError(f"{self.path}: no channel named {name!r} (has {self.channel_names})")


# ------------------------------------------------------------------- identifiers
_SUBJECT_COMMENT = re.compile(r"^\s*subject[_ ]id\s*[:=]\s*(\S+)", re.IGNORECASE)
_SUBJECT_DIR = re.compile(r"^[psv]\d+$")


def _subject_id(path: Path, comments: Sequence[str], record_id: str) -> str:
    """``subject_id: X`` header comment, else nearest ``p123``/``s123``/``v123`` folder, else the record id."""
    for line in comments:
        m = _SUBJECT_COMMENT.match(line)
        if m:
            return m.group(1)
    for parent in Path(os.path.abspath(path)).parents:
        if _SUBJECT_DIR.match(parent.name):
            return parent.name
    return record_id


def _start_time(hdr: Any) -> datetime | None:
    """Header base date + time as a datetime (``None`` unless both are given)."""
    date = getattr(hdr, "base_date", None)
    time = getattr(hdr, "base_time", None)
    if date is None or time is None:
        return None
    return datetime.combine(date, time)


# ------------------------------------------------------------------ WFDB reading
# bits per sample of formats with a fixed size on disk (FLAC formats are checked after decoding)
_FMT_BITS: dict[str, float] = {
    "8": 8,
    "16": 16,
    "24": 24,
    "32": 32,
    "61": 16,
    "80": 8,
    "160": 16,
    "212": 12,
    "310": 32 / 3,
    "311": 32 / 3,
}
_FLAC_FMTS = ("508", "516", "524")
SUPPORTED_FORMATS: tuple[str, ...] = (*_FMT_BITS, *_FLAC_FMTS)


def _resolve(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """Split ``path`` into (header path or .mat path, kind) where kind is ``"wfdb"`` or ``"mat"``.

    Only regular files are accepted: a FIFO, device or folder named like a record is
    refused without being opened (opening a FIFO would block forever).
    """
    p = Path(path)
    if p.suffix.lower() == ".hea":
        require_regular_file(p, "record header")
        return p, "wfdb"
    if p.suffix.lower() == ".mat":
        hea = p.with_suffix(".hea")
        if file_kind(hea) != "missing":  # a WFDB record whose signal file is .mat (Challenge 2015)
            require_regular_file(hea, "record header")
            return hea, "wfdb"
        if file_kind(p) == "missing":
            raise RecordError(f"{p}: file does not exist")
        require_regular_file(p, "MATLAB file")
        return p, "mat"
    hea = Path(str(p) + ".hea")
    if file_kind(hea) != "missing":
        require_regular_file(hea, "record header")
        return hea, "wfdb"
    if p.suffix.lower() in (".dat", ".flac") and file_kind(p) is None and p.with_suffix(".hea").is_file():
        return p.with_suffix(".hea"), "wfdb"
    raise RecordError(f"{p}: record does not exist (no {hea.name} and no such file)")


def _read_header(hea: Path, notes: list[str] | None = None, what: str = "record header") -> Any:
    """Parse a WFDB header with wfdb, turning every failure into RecordError naming the file.

    The header must be a regular file of at most
    :data:`bprl.record_checks.MAX_HEADER_BYTES`; its record line is validated by
    :func:`bprl.record_checks.check_record_line` (notes such as "250 Hz assumed" are
    appended to ``notes``). Non-ASCII names, units and comments are kept (wfdb alone
    would drop those characters).
    """
    import wfdb

    text = read_text_bounded(hea, what)
    lines = header_lines(text)
    if not lines:
        raise RecordError(f"{hea}: empty header (no record line)")
    first = lines[0].split()
    if len(first) < 2 or not re.match(r"^[^/\s]+(/\d+)?$", first[0]) or not first[1].isdigit():
        raise RecordError(
            f"{hea}: not a WFDB header (record line {lines[0][:60]!r} lacks 'name n_signals ...')"
        )
    check_record_line(hea, lines[0], notes)
    try:
        with wfdb_record_path(hea, text) as (rec_path, _tmp):
            hdr = wfdb.rdheader(rec_path)
    except RecordError:
        raise
    except Exception as exc:  # wfdb raises ValueError/IndexError/... on malformed headers
        raise RecordError(f"{hea}: cannot parse header: {type(exc).__name__}: {exc}") from exc
    return hdr if text.isascii() else unescape_header(hdr)


def _check_signal_files(hea: Path, hdr: Any) -> None:
    """RecordError when the signal files named in the header do not fit it.

    Checked without decoding: a format is supported; each file exists and is a regular
    file; the record has samples (a header saying 0 samples, or an empty file when the
    header omits the count); for fixed-size formats the file size matches the header
    (offset + frames x samples per frame x bits / 8): shorter is "truncated", longer by
    more than one frame (or 4 bytes) means the header's format, samples per frame or
    sample count are wrong (e.g. a format-212 header over format-16 data).
    """
    fmts = list(getattr(hdr, "fmt", None) or [])
    files = list(getattr(hdr, "file_name", None) or [])
    spf = list(getattr(hdr, "samps_per_frame", None) or [1] * len(files))
    offsets = list(getattr(hdr, "byte_offset", None) or [None] * len(files))
    sig_len = getattr(hdr, "sig_len", None)
    per_file: dict[str, list[int]] = {}
    for i, (fname, fmt) in enumerate(zip(files, fmts, strict=False)):
        if fmt not in SUPPORTED_FORMATS:
            raise RecordError(
                f"{hea}: signal {i} ({hdr.sig_name[i]}) has unsupported WFDB format {fmt!r} "
                f"(supported: {', '.join(SUPPORTED_FORMATS)})"
            )
        per_file.setdefault(fname, []).append(i)
    if per_file and sig_len == 0:
        raise RecordError(f"{hea}: the header gives 0 samples per signal: the record has no samples")
    for fname, idx in per_file.items():
        f = hea.parent / fname
        kind = file_kind(f)
        if kind in ("missing", "broken link"):
            raise RecordError(f"{hea}: signal file {fname} named in the header is missing")
        if kind is not None:
            raise RecordError(f"{f}: signal file named in {hea.name} is a {kind}, not a regular file")
        fmt = fmts[idx[0]]
        if fmt not in _FMT_BITS:
            continue
        n_per_frame = sum(int(spf[i] or 1) for i in idx)
        offset = int(offsets[idx[0]] or 0)
        have = f.stat().st_size
        if sig_len is None:
            if header_sample_count(f, _FMT_BITS[fmt], n_per_frame, offset) == 0:
                raise RecordError(
                    f"{f}: signal file holds no samples ({have} bytes) and the header gives no count"
                )
            continue
        need = offset + math.ceil(sig_len * n_per_frame * _FMT_BITS[fmt] / 8)
        if have < need:
            raise RecordError(
                f"{f}: signal file truncated ({have} bytes; the header needs {need} for "
                f"{sig_len} frames of {len(idx)} signal(s) in format {fmt})"
            )
        slack = max(4, math.ceil(n_per_frame * _FMT_BITS[fmt] / 8))
        if have > need + slack:
            raise RecordError(
                f"{f}: signal file is {have} bytes but the header describes {need} ({sig_len} frames of "
                f"{len(idx)} signal(s), {n_per_frame} samples per frame, format {fmt}): the format, "
                "samples per frame or sample count in the header do not match the file "
                "(e.g. a format-212 header over format-16 data)"
            )


def _select(hea: Path, names: Sequence[str], wanted: Sequence[str] | None) -> list[int]:
    """Indices of the ``wanted`` channel names (all when ``None``); RecordError naming absent ones.

    With duplicate names only the first signal of each name is selected (header order).
    """
    if wanted is None:
        return [i for i, n in enumerate(names) if names.index(n) == i]
    out = []
    for w in wanted:
        hits = [i for i, n in enumerate(names) if n == w] or [
            i for i, n in enumerate(names) if n.lower() == w.lower()
        ]
        if not hits:
            raise RecordError(f"{hea}: requested channel {w!r} is absent (channels: {list(names)})")
        out.append(hits[0])
    return list(dict.fromkeys(out))


def _read_segment(hea: Path, hdr: Any, channels: list[int] | None = None) -> list[np.ndarray]:
    """Physical samples (float32, NaN for invalid values) of one single-segment record, per channel."""
    import wfdb

    _check_signal_files(hea, hdr)
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


def _check_fs(where: Path, fs_hz: float | None, rates: Sequence[float]) -> None:
    """RecordError when ``fs_hz`` was given for a WFDB record and matches none of its rates."""
    if fs_hz is None or not rates:
        return
    if not any(abs(fs_hz - r) <= 1e-6 * max(1.0, r) for r in rates):
        raise RecordError(
            f"{where}: fs_hz={fs_hz} disagrees with the header (rates {sorted(set(rates))} Hz); "
            "fs_hz is only needed for .mat excerpts"
        )


def _read_wfdb_single(
    hea: Path, hdr: Any, channel_names: Sequence[str] | None, notes: list[str]
) -> list[Channel]:
    """Channels of a single-segment WFDB record at their own rates (first of duplicate names)."""
    names = list(hdr.sig_name or [])
    notes += duplicate_name_notes(hea, names)
    idx = _select(hea, names, channel_names)
    data = _read_segment(hea, hdr, idx)
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


def _segment_layout(
    hea: Path, hdr: Any, notes: list[str] | None = None
) -> tuple[list[tuple[str, int, str]], list[int]]:
    """(name, samples per frame, units) of each channel of a multi-segment record, and segment indices.

    Variable layout: from the layout segment (length 0, first). Fixed layout: from
    the first real segment; further segments add channels they alone have. A name the
    layout lists twice is used once (the first), with a note.
    """
    seg_names = list(hdr.seg_name)
    seg_lens = [int(n) for n in hdr.seg_len]
    chans: list[tuple[str, int, str]] = []
    data_segs = list(range(len(seg_names)))
    if seg_names and seg_lens[0] == 0 and seg_names[0] != "~":
        layout_hea = hea.parent / f"{seg_names[0]}.hea"
        if file_kind(layout_hea) in ("missing", "broken link"):
            raise RecordError(f"{hea}: layout header {layout_hea.name} named in the master header is missing")
        layout = _read_header(layout_hea, notes, "layout header")
        names = list(layout.sig_name or [])
        if notes is not None:
            notes += duplicate_name_notes(layout_hea, names)
        for i, n in enumerate(names):
            if names.index(n) == i:
                chans.append((n, int(layout.samps_per_frame[i] or 1), str(layout.units[i] or "")))
        data_segs = data_segs[1:]
    return chans, data_segs


def _read_wfdb_multi(
    hea: Path, hdr: Any, channel_names: Sequence[str] | None, notes: list[str]
) -> tuple[list[Channel], list[str]]:
    """Channels of a multi-segment record: segments at their frame offsets, gaps NaN, mapped by name."""
    fs = float(hdr.fs)
    seg_names = list(hdr.seg_name)
    seg_lens = [int(n) for n in hdr.seg_len]
    chans, data_segs = _segment_layout(hea, hdr, notes)
    total = sum(seg_lens)
    if total == 0:
        raise RecordError(f"{hea}: every segment has length 0: the record has no samples")
    # read the segment headers first (names, rates) so that missing files fail early
    seg_hdrs: dict[int, Any] = {}
    comments: list[str] = []
    for s in data_segs:
        if seg_names[s] == "~" or seg_lens[s] == 0:
            continue
        seg_hea = hea.parent / f"{seg_names[s]}.hea"
        if file_kind(seg_hea) in ("missing", "broken link"):
            raise RecordError(f"{hea}: segment header {seg_hea.name} named in the master header is missing")
        sh = _read_header(seg_hea, notes, "segment header")
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
    names = [c[0] for c in chans]
    keep = _select(hea, names, channel_names)
    chans = [chans[i] for i in keep]
    out = {n: np.full(total * spf, np.nan, dtype=np.float32) for n, spf, _ in chans}
    starts = np.concatenate([[0], np.cumsum(seg_lens)]).astype(int)
    for s, sh in seg_hdrs.items():
        seg_sig = list(sh.sig_name or [])
        wanted = [(n, spf) for n, spf, _ in chans if n in seg_sig]
        if not wanted:
            continue
        idx = [seg_sig.index(n) for n, _ in wanted]  # the first signal of a duplicated name
        seg_hea = hea.parent / f"{seg_names[s]}.hea"
        data = _read_segment(seg_hea, sh, idx)
        for (n, spf), i, x in zip(wanted, idx, data, strict=True):
            seg_spf = int(sh.samps_per_frame[i] or 1)
            n_out = seg_lens[s] * spf
            x = x[: seg_lens[s] * seg_spf]
            if seg_spf != spf:  # channel at another rate in this segment: interpolate onto the record grid
                t_in = np.arange(len(x)) / seg_spf
                t_out = np.arange(n_out) / spf
                x = np.interp(t_out, t_in, x, left=np.nan, right=np.nan).astype(np.float32)
            a = starts[s] * spf
            out[n][a : a + min(n_out, len(x))] = x[:n_out]
    channels = [
        Channel(name=n, role=channel_role(n), fs_hz=fs * spf, units=u, samples=out[n]) for n, spf, u in chans
    ]
    return channels, comments


# ------------------------------------------------------------------- MAT excerpts
def _mat_strings(value: object) -> list[str]:
    """Strings of a MATLAB cell array / char matrix as loaded by scipy.io.loadmat."""
    arr = np.asarray(value)
    if arr.dtype.kind in ("U", "S"):
        return [str(s).strip() for s in arr.ravel()]
    out = []
    for item in arr.ravel():
        out.extend(_mat_strings(item))
    return out


def _sidecar(mat: Path) -> dict:
    """Contents of ``<file>.mat.yaml`` or ``<file>.yaml`` next to a .mat excerpt (empty dict if none)."""
    import yaml

    for cand in (Path(str(mat) + ".yaml"), mat.with_suffix(".yaml")):
        if cand.is_file():
            try:
                data = yaml.safe_load(read_text_bounded(cand, "sidecar YAML")) or {}
            except yaml.YAMLError as exc:
                raise RecordError(f"{cand}: invalid YAML: {exc}") from exc
            if not isinstance(data, dict):
                raise RecordError(f"{cand}: expected a mapping with channel_names / fs_hz")
            return data
    return {}


#: MIMIC DB .mat fill value: the WFDB invalid sample -32768 divided by the channel gain
#: (-16.384 for gain 2000, -17.43 for gain 1880); detected as explained in :func:`nan_fill_runs`.
FILL_VALUE_MIN_RUN = 2


def nan_fill_runs(x: np.ndarray, min_run: int = FILL_VALUE_MIN_RUN) -> np.ndarray:
    """Copy of ``x`` with flat fill runs (e.g. MIMIC's ``-16.38``) set to NaN.

    A fill value is the signal's minimum when it lies far below the signal (more
    than 3 × the 1st-99th percentile range under the 1st percentile, or exactly
    -16.38/-16.384) and forms a flat run of ``min_run`` or more samples somewhere;
    every sample holding it becomes NaN. This is how the MIMIC DB excerpts store
    WFDB's invalid value -32768 after division by the gain (-16.384 at gain 2000).
    Genuine flat stretches inside the signal range (e.g. ABP zeroing at 0 mmHg)
    are kept.
    """
    y = np.array(x, dtype=np.float32, copy=True)
    finite = y[np.isfinite(y)]
    if finite.size < min_run:
        return y
    vmin = float(finite.min())
    p1, p99 = np.percentile(finite, [1.0, 99.0])
    if not (vmin < p1 - 3.0 * max(p99 - p1, 1e-6)):
        # the minimum may itself be a large share of samples (p1 == vmin): accept exact -16.38x too
        if not math.isclose(vmin, -16.384, abs_tol=1e-3) and not math.isclose(vmin, -16.38, abs_tol=1e-6):
            return y
    eq = y == np.float32(vmin)
    # the value is a fill value when it forms a flat run of >= min_run samples somewhere;
    # then every sample holding it is invalid (isolated ones included)
    d = np.diff(np.concatenate([[0], eq.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    if len(starts) and int((ends - starts).max()) >= min_run:
        y[eq] = np.nan
    return y


def _read_mat(
    mat: Path, channel_names: Sequence[str] | None, fs_hz: float | None, notes: list[str]
) -> tuple[list[Channel], dict]:
    """Channels of a MATLAB excerpt with a ``signal`` matrix (samples x channels); first of duplicate names."""
    import scipy.io

    try:
        m = scipy.io.loadmat(str(mat))
    except Exception as exc:
        raise RecordError(f"{mat}: cannot read MATLAB file: {type(exc).__name__}: {exc}") from exc
    sig = m.get("signal", m.get("val"))
    if sig is None:
        arrays = [k for k, v in m.items() if not k.startswith("__") and getattr(v, "ndim", 0) == 2]
        raise RecordError(f"{mat}: no 'signal' matrix (variables: {arrays})")
    sig = np.asarray(sig, dtype=np.float64)
    if sig.ndim != 2 or sig.size == 0:
        raise RecordError(f"{mat}: 'signal' must be a non-empty 2-D matrix, got shape {sig.shape}")
    if sig.shape[0] < sig.shape[1]:  # channels x samples (PhysioNet 'val' layout)
        sig = sig.T
    n_ch = sig.shape[1]
    side = _sidecar(mat)
    file_names = _mat_strings(m["header"]) if "header" in m else None
    file_fs = np.asarray(m["Fs"], dtype=np.float64).ravel() if "Fs" in m else None

    known = list(side["channel_names"]) if "channel_names" in side else file_names
    select: Sequence[str] | None = None
    if channel_names is not None and (
        known is None or (len(channel_names) == n_ch and not set(channel_names) <= set(known))
    ):
        names: list[str] | None = list(channel_names)  # names of all columns, in order
    else:
        names, select = known, channel_names  # the file names its columns: a selection
    if names is None:
        raise RecordError(
            f"{mat}: {n_ch} channels without names: pass channel_names (e.g. --names II,V,ABP,PAP,PLETH,RESP) "
            f"and fs_hz (--fs 125), or write {mat.name}.yaml with channel_names and fs_hz"
        )
    if len(names) != n_ch:
        raise RecordError(f"{mat}: {len(names)} channel names given for {n_ch} columns of 'signal'")
    if fs_hz is not None:
        rates = [float(fs_hz)] * n_ch
    elif "fs_hz" in side:
        rates = [float(side["fs_hz"])] * n_ch
    elif file_fs is not None and file_fs.size in (1, n_ch):
        rates = [float(v) for v in np.broadcast_to(file_fs, (n_ch,))]
    else:
        raise RecordError(
            f"{mat}: no sampling rate: pass fs_hz (--fs 125) or write {mat.name}.yaml with fs_hz"
        )
    if any(not (r > 0 and math.isfinite(r)) for r in rates):
        raise RecordError(f"{mat}: invalid sampling rate {rates}")
    units = list(side.get("units") or [])
    notes += duplicate_name_notes(mat, names)
    idx = _select(mat, names, select)
    chans = []
    for i in idx:
        role = channel_role(names[i])
        unit = units[i] if i < len(units) else _DEFAULT_UNITS[role]
        if role is None and _PRESSURE.match(_norm_name(names[i])):
            unit = "mmHg"
        chans.append(Channel(names[i], role, rates[i], str(unit), nan_fill_runs(sig[:, i])))
    return chans, side


# --------------------------------------------------------------------- reading
def _with_problems(chans: list[Channel], where: Path) -> list[Channel]:
    """Channels with their plausibility problems filled in (:func:`bprl.record_checks.channel_problems`)."""
    out = []
    for c in chans:
        found = _channel_problems(c.name, c.role, c.units, c.samples, str(where))
        out.append(replace(c, problems=tuple(found)) if found else c)
    return out


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
        The record, channels in role/preference order (:func:`order_channels`),
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
    where, kind = _resolve(path)
    notes: list[str] = []
    if kind == "mat":
        chans, side = _read_mat(where, channel_names, fs_hz, notes)
        record_id = str(side.get("record_id", where.stem))
        comments = [f"subject_id: {side['subject_id']}"] if "subject_id" in side else []
        rec = Record(
            subject_id=_subject_id(where, comments, record_id),
            record_id=record_id,
            path=str(where),
            channels=order_channels(_with_problems(chans, where)),
            comments=comments,
            warnings=list(dict.fromkeys(notes)),
        )
        return _warn(rec)
    hdr = _read_header(where, notes)
    comments = list(getattr(hdr, "comments", None) or [])
    if getattr(hdr, "seg_name", None) is not None:  # multi-segment
        chans, seg_comments = _read_wfdb_multi(where, hdr, channel_names, notes)
        comments = comments or seg_comments
    else:
        chans = _read_wfdb_single(where, hdr, channel_names, notes)
    if chans and all(len(c.samples) == 0 for c in chans):
        raise RecordError(f"{where}: the record has no samples")
    _check_fs(where, fs_hz, [float(hdr.fs)] + [c.fs_hz for c in chans])
    record_id = str(hdr.record_name)
    rec = Record(
        subject_id=_subject_id(where, comments, record_id),
        record_id=record_id,
        path=str(where),
        channels=order_channels(_with_problems(chans, where)),
        start_time=_start_time(hdr),
        comments=comments,
        warnings=list(dict.fromkeys(notes)),
    )
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

    Raises:
        RecordError: as :func:`read_record` for a missing, non-regular or malformed header.
    """
    where, kind = _resolve(path)
    if kind == "mat":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RecordWarning)
            return read_record(where).roles
    hdr = _read_header(where)
    if getattr(hdr, "seg_name", None) is None:
        names = list(hdr.sig_name or [])
    else:
        layout, data_segs = _segment_layout(where, hdr)
        names = [n for n, _, _ in layout]
        if not names:
            for s in data_segs:
                if hdr.seg_name[s] != "~" and int(hdr.seg_len[s]) > 0:
                    seg_hea = where.parent / f"{hdr.seg_name[s]}.hea"
                    names += list(_read_header(seg_hea, None, "segment header").sig_name or [])
    present = {channel_role(n) for n in names}
    return [r for r in ROLES if r in present]


# ----------------------------------------------------------------------- scanning
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


def find_record_headers(root: str | os.PathLike[str]) -> list[Path]:
    """Record headers under ``root``: every ``.hea`` except segment and layout headers of a master record.

    A header is a segment of a master when another header in the same folder is a
    multi-segment header listing it; ``*_layout.hea`` and ``*_0000.hea`` next to
    a master are layout headers. Entries named ``*.hea`` that are not regular files
    (FIFOs, devices, broken links) or are larger than
    :data:`bprl.record_checks.MAX_HEADER_BYTES` are never opened, but they are listed,
    so that :func:`scan_records` and the feature batch report them. Sorted by path.
    """
    root = Path(root)
    out: list[Path] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        heas = sorted(f for f in filenames if f.endswith(".hea"))
        if not heas:
            continue
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


def _scan_header(hea: Path, row: dict, notes: list[str]) -> tuple[Any, list[tuple[str, str | None, float]]]:
    """Header-only part of a scan row: fills ``row`` and returns (header, channels as (name, role, fs_hz)).

    Checks the header (:func:`_read_header`), formats and signal files
    (:func:`_check_signal_files`), that the record has samples, and for a multi-segment
    record that every segment header and its signal files exist
    (:func:`bprl.record_checks.check_segment_files`). Duplicate names and an absent
    sampling frequency go to ``notes``.
    """
    hdr = _read_header(hea, notes)
    comments = list(getattr(hdr, "comments", None) or [])
    fs = float(hdr.fs)
    sig_len = getattr(hdr, "sig_len", None)
    if getattr(hdr, "seg_name", None) is not None:
        seg_lens = [int(n) for n in hdr.seg_len]
        if sum(seg_lens) == 0:
            raise RecordError(f"{hea}: every segment has length 0: the record has no samples")
        check_segment_files(hea, list(hdr.seg_name), seg_lens)
        layout, data_segs = _segment_layout(hea, hdr, notes)
        if not layout:
            for s in data_segs:
                name = hdr.seg_name[s]
                if name == "~" or int(hdr.seg_len[s]) == 0:
                    continue
                seg_hea = hea.parent / f"{name}.hea"
                sh = _read_header(seg_hea, notes, "segment header")
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
        sig_len = sum(seg_lens)
    else:
        names = list(hdr.sig_name or [])
        notes += duplicate_name_notes(hea, names)
        chans = [
            (n, channel_role(n), fs * int(hdr.samps_per_frame[i] or 1))
            for i, n in enumerate(names)
            if names.index(n) == i
        ]
        if names:  # formats, missing files, file sizes, no samples: cheap checks without decoding
            _check_signal_files(hea, hdr)
            if sig_len is None and hdr.fmt[0] in _FMT_BITS:  # count omitted: from the file size
                idx = [i for i, f in enumerate(hdr.file_name) if f == hdr.file_name[0]]
                sig_len = header_sample_count(
                    hea.parent / hdr.file_name[0],
                    _FMT_BITS[hdr.fmt[0]],
                    sum(int(hdr.samps_per_frame[i] or 1) for i in idx),
                    int((hdr.byte_offset or [0])[0] or 0),
                )
    row["duration_s"] = float(sig_len) / fs if sig_len else float("nan")
    row["subject_id"] = _subject_id(hea, comments, str(hdr.record_name))
    row["record_id"] = str(hdr.record_name)
    st = _start_time(hdr)
    row["start_time"] = st.isoformat() if st else None
    # same order as read_record (by role, then preference), without flat-lead demotion
    chans = sorted(
        chans,
        key=lambda c: (ROLES.index(c[1]) if c[1] in ROLES else len(ROLES), _preference_rank(c[0], c[1])),
    )
    return hdr, chans


def _scan_row(args: tuple[str, bool]) -> dict:
    """One row of the scan table for a header path (never raises on a bad record)."""
    path_s, check_signals = args
    hea = Path(path_s)
    row: dict = {c: None for c in SCAN_COLUMNS}
    row.update(path=str(hea), record_id=hea.stem, subject_id=_subject_id(hea, [], hea.stem), error="")
    row.update(warnings="", problems="")
    for r in ROLES:
        row[f"has_{r}"] = False
        row[f"fs_{r}_hz"] = float("nan")
    row["duration_s"] = float("nan")
    row["n_segments"] = 1
    try:
        notes: list[str] = []
        if check_signals:
            with warnings.catch_warnings():  # kept in the row's columns instead
                warnings.simplefilter("ignore", RecordWarning)
                rec = read_record(hea)
            chans = [(c.name, c.role, c.fs_hz) for c in rec.channels]
            row.update(subject_id=rec.subject_id, record_id=rec.record_id, duration_s=rec.duration_s)
            row["start_time"] = rec.start_time.isoformat() if rec.start_time else None
            row["warnings"] = _fmt_notes(rec.warnings)
            row["problems"] = _fmt_notes(rec.problems)
            hdr = _read_header(hea)
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
