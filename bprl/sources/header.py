"""Safe reading of WFDB headers, and checks of a header against its signal files.

Reading a record must never hang or exhaust memory on odd input, and a header that does
not describe its signal files must not pass as good data. This module holds:

- :func:`file_kind` / :func:`require_regular_file`: refuse FIFOs, sockets, devices,
  folders and broken links before anything opens them (opening a FIFO blocks forever);
  :func:`read_text_bounded` reads a header of at most :data:`MAX_HEADER_BYTES`;
- :func:`resolve_record`: which file a record path means (WFDB header or MATLAB excerpt);
- :func:`check_record_line`: the sampling frequency and sample count of a header's record
  line (wfdb silently reads garbage or a negative rate as 250 Hz);
- :func:`wfdb_record_path` / :func:`unescape_header`: let wfdb read headers with
  non-ASCII names (wfdb drops non-ASCII characters and then looks for the wrong files);
- :func:`read_header`: all of the above, then wfdb's parser, every failure a RecordError;
- :func:`check_signal_files` / :func:`check_segment_files`: formats, existence and sizes
  of the signal files a header names, without decoding them;
- :func:`duplicate_name_notes`, :func:`record_subject_id`, :func:`record_start_time`:
  warnings and identifiers taken from a header.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from bprl.errors import RecordError

#: largest header accepted (bytes). MIMIC-III master headers with thousands of segments
#: are a few hundred kB; anything larger is not a WFDB header.
MAX_HEADER_BYTES: int = 8 * 2**20


def file_kind(path: str | os.PathLike[str]) -> str | None:
    """``None`` for a regular file (following links), else what it is: ``"FIFO"``, ``"folder"``, ...

    Never opens the file, so it cannot block on a FIFO.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "broken link" if os.path.islink(path) else "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def require_regular_file(path: str | os.PathLike[str], what: str) -> None:
    """RecordError naming ``path`` unless it is a regular file (``what``: e.g. ``"record header"``)."""
    kind = file_kind(path)
    if kind is None:
        return
    if kind == "missing":
        raise RecordError(f"{path}: {what} does not exist")
    raise RecordError(f"{path}: {what} is a {kind}, not a regular file: skipped (never opened)")


def decode_text(raw: bytes) -> str:
    """Header bytes as text: UTF-8 when valid, else Latin-1 (never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_text_bounded(
    path: str | os.PathLike[str], what: str = "header", limit: int = MAX_HEADER_BYTES
) -> str:
    """Text of a regular file of at most ``limit`` bytes; RecordError naming the file otherwise."""
    require_regular_file(path, what)
    try:
        size = os.stat(path).st_size
        if size > limit:
            raise RecordError(
                f"{path}: {what} is {size} bytes, more than the {limit} accepted: not a WFDB header"
            )
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise RecordError(f"{path}: cannot read {what}: {exc}") from exc
    if len(raw) > limit:  # grew while being read
        raise RecordError(f"{path}: {what} is larger than the {limit} bytes accepted")
    return decode_text(raw)


def header_lines(text: str) -> list[str]:
    """Non-empty, non-comment lines of a header text."""
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


# ------------------------------------------------------------------------- record line
#: ``fs[/counterfreq[(base)]]`` field of a WFDB record line
_FS_FIELD = re.compile(r"^(?P<fs>[^/()]+)(?:/(?P<counter>[^()]*)(?:\((?P<base>[^)]*)\))?)?$")
#: sampling frequency the WFDB specification assumes when the record line has none
WFDB_DEFAULT_FS_HZ: float = 250.0


def _number(text: str | None) -> float | None:
    """``float(text)`` or ``None`` when it is not a number."""
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def check_record_line(hea: Path, line: str, notes: list[str] | None = None) -> None:
    """Validate the record line ``name[/nseg] nsig [fs[/counterfreq[(base)]] [nsamp [time [date]]]]``.

    A sampling frequency that is present must be a finite number > 0 (wfdb reads ``0``
    as 0 Hz and a negative or non-numeric one as 250 Hz without a word); an absent one
    means 250 Hz by the WFDB specification: accepted, with a note appended to ``notes``.
    A sample count that is present must be a non-negative integer.

    Raises:
        RecordError: naming the header and the bad field.
    """
    parts = line.split()
    if len(parts) < 3:
        if notes is not None:
            notes.append(
                f"{hea}: the record line gives no sampling frequency: {WFDB_DEFAULT_FS_HZ:g} Hz assumed "
                "(the WFDB default)"
            )
        return
    token = parts[2]
    m = _FS_FIELD.match(token)
    fs = _number(m.group("fs")) if m else None
    if fs is None or not math.isfinite(fs):
        raise RecordError(f"{hea}: sampling frequency {token!r} in the record line is not a number")
    if fs <= 0:
        raise RecordError(f"{hea}: sampling frequency {fs:g} Hz in the record line must be > 0")
    if m and m.group("counter") is not None:
        counter = _number(m.group("counter"))
        if counter is None or not (math.isfinite(counter) and counter > 0):
            raise RecordError(f"{hea}: counter frequency in {token!r} must be a number > 0")
    if len(parts) >= 4 and not parts[3].isdigit():
        raise RecordError(
            f"{hea}: number of samples {parts[3]!r} in the record line is not a non-negative integer"
        )


# ------------------------------------------------------------------- non-ASCII headers
_ESCAPED = re.compile(r"_U([0-9a-f]{6})_")
#: string fields of a wfdb header object that may carry escaped non-ASCII characters
_TEXT_FIELDS = ("record_name", "file_name", "sig_name", "units", "comments", "seg_name")


def escape_non_ascii(text: str) -> str:
    """Non-ASCII characters as ``_UXXXXXX_`` (word characters, which wfdb's header parser keeps)."""
    return "".join(c if ord(c) < 128 else f"_U{ord(c):06x}_" for c in text)


def _unescape(value: Any) -> Any:
    """Inverse of :func:`escape_non_ascii` on a string or a list of strings."""
    if isinstance(value, str):
        return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), value)
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


def unescape_header(hdr: Any) -> Any:
    """Restore the non-ASCII names, units and comments of a header parsed from escaped text."""
    for name in _TEXT_FIELDS:
        value = getattr(hdr, name, None)
        if value is not None:
            setattr(hdr, name, _unescape(value))
    return hdr


@contextmanager
def wfdb_record_path(
    hea: Path, text: str, signal_files: Sequence[str] = ()
) -> Iterator[tuple[str, str | None]]:
    """``(record path for wfdb, temporary folder or None)`` for reading ``hea`` with wfdb.

    wfdb reads headers as ASCII and drops other characters, so a record named ``récord``
    would look for ``rcord.dat``. For a header with non-ASCII text this yields a
    temporary folder holding the header with those characters escaped
    (:func:`escape_non_ascii`) and symbolic links, under the escaped names, to the real
    signal files (nothing is copied); for an ASCII header, the real record path.
    """
    if text.isascii():
        yield str(hea.with_suffix("")), None
        return
    with tempfile.TemporaryDirectory(prefix="bprl-hea-") as tmp:
        folder = Path(tmp)
        try:
            (folder / "record.hea").write_text(escape_non_ascii(text), encoding="ascii")
            for name in dict.fromkeys(signal_files):
                src = hea.parent / name
                dst = folder / escape_non_ascii(name)
                if os.path.lexists(src) and not os.path.lexists(dst):
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(os.path.abspath(src), dst)
        except OSError as exc:
            raise RecordError(f"{hea}: cannot prepare the non-ASCII header for reading: {exc}") from exc
        yield str(folder / "record"), tmp


def duplicate_name_notes(where: Path | str, names: Sequence[str]) -> list[str]:
    """One warning per channel name that occurs more than once (the first one is used)."""
    seen: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        seen.setdefault(n, []).append(i)
    return [
        f"{where}: duplicate channel name {n!r} (signals {', '.join(map(str, idx))}): "
        f"the first, signal {idx[0]}, is used; the others are dropped"
        for n, idx in seen.items()
        if len(idx) > 1
    ]


# ------------------------------------------------------------ record paths and headers
def resolve_record(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """Split ``path`` into (header path or .mat path, kind) where kind is ``"wfdb"`` or ``"mat"``.

    Only regular files are accepted: a FIFO, device or folder named like a record is
    refused without being opened (opening a FIFO would block forever).

    Args:
        path: a ``.hea`` header, a record path without extension, a ``.mat`` file (a WFDB
            record when ``<name>.hea`` lies next to it, else a MATLAB excerpt), or a
            ``.dat``/``.flac`` signal file next to its header.

    Raises:
        RecordError: nothing of that name exists, or it is not a regular file.
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


def read_header(hea: Path, notes: list[str] | None = None, what: str = "record header") -> Any:
    """Parse a WFDB header with wfdb, turning every failure into RecordError naming the file.

    The header must be a regular file of at most :data:`MAX_HEADER_BYTES`; its record
    line is validated by :func:`check_record_line` (notes such as "250 Hz assumed" are
    appended to ``notes``). Non-ASCII names, units and comments are kept (wfdb alone
    would drop those characters).

    Args:
        hea: the header file.
        notes: list the notes are appended to (``None``: dropped).
        what: what the file is, for messages (``"record header"``, ``"segment header"``).

    Returns:
        wfdb's header object (``wfdb.Record`` or ``wfdb.MultiRecord`` without signals).

    Raises:
        RecordError: naming the file and the problem.
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


# ------------------------------------------------------------------------ signal files
# bits per sample of formats with a fixed size on disk (FLAC formats are checked after decoding)
FMT_BITS: dict[str, float] = {
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
FLAC_FMTS = ("508", "516", "524")
SUPPORTED_FORMATS: tuple[str, ...] = (*FMT_BITS, *FLAC_FMTS)


def header_sample_count(path: Path, fmt_bits: float, n_per_frame: int, byte_offset: int) -> int:
    """Frames a signal file of a fixed-size format holds (for headers that omit the sample count)."""
    size = os.stat(path).st_size - byte_offset
    return int(max(size, 0) * 8 // (fmt_bits * max(n_per_frame, 1)))


def _signals_per_file(hea: Path, hdr: Any) -> dict[str, list[int]]:
    """Signal indices by signal file name; RecordError for a signal in an unsupported format."""
    fmts = list(getattr(hdr, "fmt", None) or [])
    files = list(getattr(hdr, "file_name", None) or [])
    per_file: dict[str, list[int]] = {}
    for i, (fname, fmt) in enumerate(zip(files, fmts, strict=False)):
        if fmt not in SUPPORTED_FORMATS:
            raise RecordError(
                f"{hea}: signal {i} ({hdr.sig_name[i]}) has unsupported WFDB format {fmt!r} "
                f"(supported: {', '.join(SUPPORTED_FORMATS)})"
            )
        per_file.setdefault(fname, []).append(i)
    return per_file


def _check_file_size(
    f: Path, fmt: str, n_signals: int, n_per_frame: int, offset: int, sig_len: int | None
) -> None:
    """RecordError when the size of signal file ``f`` (fixed-size ``fmt``) does not fit the header.

    Args:
        f: the signal file.
        fmt: its WFDB format (one of :data:`FMT_BITS`).
        n_signals: signals stored in the file.
        n_per_frame: samples per frame of all those signals together.
        offset: byte offset of the first sample.
        sig_len: frames the header gives (``None``: omitted; then the file must not be empty).
    """
    have = f.stat().st_size
    if sig_len is None:
        if header_sample_count(f, FMT_BITS[fmt], n_per_frame, offset) == 0:
            raise RecordError(
                f"{f}: signal file holds no samples ({have} bytes) and the header gives no count"
            )
        return
    need = offset + math.ceil(sig_len * n_per_frame * FMT_BITS[fmt] / 8)
    if have < need:
        raise RecordError(
            f"{f}: signal file truncated ({have} bytes; the header needs {need} for "
            f"{sig_len} frames of {n_signals} signal(s) in format {fmt})"
        )
    slack = max(4, math.ceil(n_per_frame * FMT_BITS[fmt] / 8))
    if have > need + slack:
        raise RecordError(
            f"{f}: signal file is {have} bytes but the header describes {need} ({sig_len} frames of "
            f"{n_signals} signal(s), {n_per_frame} samples per frame, format {fmt}): the format, "
            "samples per frame or sample count in the header do not match the file "
            "(e.g. a format-212 header over format-16 data)"
        )


def check_signal_files(hea: Path, hdr: Any) -> None:
    """RecordError when the signal files named in the header do not fit it.

    Checked without decoding: a format is supported; each file exists and is a regular
    file; the record has samples (a header saying 0 samples, or an empty file when the
    header omits the count); for fixed-size formats the file size matches the header
    (offset + frames x samples per frame x bits / 8): shorter is "truncated", longer by
    more than one frame (or 4 bytes) means the header's format, samples per frame or
    sample count are wrong (e.g. a format-212 header over format-16 data).

    Args:
        hea: the header file.
        hdr: the header as parsed by :func:`read_header` (single-segment).

    Raises:
        RecordError: naming the header or signal file and the problem.
    """
    fmts = list(getattr(hdr, "fmt", None) or [])
    files = list(getattr(hdr, "file_name", None) or [])
    spf = list(getattr(hdr, "samps_per_frame", None) or [1] * len(files))
    offsets = list(getattr(hdr, "byte_offset", None) or [None] * len(files))
    sig_len = getattr(hdr, "sig_len", None)
    per_file = _signals_per_file(hea, hdr)
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
        if fmt in FMT_BITS:
            n_per_frame = sum(int(spf[i] or 1) for i in idx)
            _check_file_size(f, fmt, len(idx), n_per_frame, int(offsets[idx[0]] or 0), sig_len)


def check_segment_files(master: Path, segment_names: Sequence[str], segment_lengths: Sequence[int]) -> None:
    """Header-only check of a multi-segment record: every segment header and its signal files exist.

    Gap segments (``~``) and segments of length 0 (the layout segment) are not checked
    for signal files; a missing layout header is an error too. Reads only the small
    segment headers (bounded), never the signals.

    Raises:
        RecordError: naming the master header and the missing segment or file.
    """
    for name, length in zip(segment_names, segment_lengths, strict=True):
        if name == "~":
            continue
        seg = master.parent / f"{name}.hea"
        kind = file_kind(seg)
        if kind in ("missing", "broken link"):
            raise RecordError(f"{master}: segment header {seg.name} named in the master header is missing")
        text = read_text_bounded(seg, "segment header")
        lines = header_lines(text)
        first = lines[0].split() if lines else []
        if len(first) < 2 or not first[1].isdigit():
            raise RecordError(f"{seg}: segment header of {master.name} has no valid record line")
        if int(length) == 0:
            continue
        for ln in lines[1 : 1 + int(first[1])]:
            fname = ln.split()[0]
            if fname == "~":
                continue
            kind = file_kind(seg.parent / fname)
            if kind in ("missing", "broken link"):
                raise RecordError(
                    f"{master}: signal file {fname} of segment {name} is missing ({seg.name} names it)"
                )
            if kind is not None:
                raise RecordError(
                    f"{seg.parent / fname}: signal file of segment {name} is a {kind}, not a regular file"
                )


# ------------------------------------------------------------------------- identifiers
_SUBJECT_COMMENT = re.compile(r"^\s*subject[_ ]id\s*[:=]\s*(\S+)", re.IGNORECASE)
_SUBJECT_DIR = re.compile(r"^[psv]\d+$")


def record_subject_id(path: Path, comments: Sequence[str], record_id: str) -> str:
    """``subject_id: X`` header comment, else nearest ``p123``/``s123``/``v123`` folder, else the record id."""
    for line in comments:
        m = _SUBJECT_COMMENT.match(line)
        if m:
            return m.group(1)
    for parent in Path(os.path.abspath(path)).parents:
        if _SUBJECT_DIR.match(parent.name):
            return parent.name
    return record_id


def record_start_time(hdr: Any) -> datetime | None:
    """Header base date + time as a datetime (``None`` unless both are given)."""
    date = getattr(hdr, "base_date", None)
    time = getattr(hdr, "base_time", None)
    if date is None or time is None:
        return None
    return datetime.combine(date, time)
