"""Guards used by :mod:`bprl.records`: bounded reads of regular files, and plausibility of decoded signals.

Reading a record must never hang or exhaust memory on odd input, and a record whose
header does not describe its signal files (wrong format, wrong rate) must not pass as
good data. This module holds the pieces that do not need the :class:`bprl.records.Record`
model:

- :func:`file_kind` / :func:`require_regular_file` refuse FIFOs, sockets, devices,
  folders and broken links before anything opens them (opening a FIFO blocks forever);
- :func:`read_text_bounded` reads a header of at most :data:`MAX_HEADER_BYTES`;
- :func:`check_record_line` validates the sampling frequency and sample count of a
  header's record line (wfdb silently reads garbage or a negative rate as 250 Hz);
- :func:`wfdb_record_path` lets wfdb read headers with non-ASCII names (wfdb drops
  non-ASCII characters and then looks for the wrong files);
- :func:`duplicate_name_notes` words the warning for duplicate channel names;
- :func:`channel_problems` applies the plausibility rules to one decoded channel
  (thresholds below, documented in ``docs/readme/10-records.md``).
"""

from __future__ import annotations

import math
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bprl.errors import RecordError

#: largest header accepted (bytes). MIMIC-III master headers with thousands of segments
#: are a few hundred kB; anything larger is not a WFDB header.
MAX_HEADER_BYTES: int = 8 * 2**20

#: roles whose channels are checked for plausibility (respiration is often clipped on purpose)
CHECKED_ROLES: tuple[str, ...] = ("ecg", "ppg", "abp")
#: a channel whose lag-1 autocorrelation is below this looks like white noise, not a sampled
#: waveform. Real ECG/PPG/ABP at 62-500 Hz: >= 0.52 (noisiest: Challenge 2015 v102s lead V);
#: 16-bit data decoded as format 212: <= 0.11.
NOISE_AC1_MIN: float = 0.3
#: plausible arterial pressure (mmHg); an ABP channel with more than ABP_OUTSIDE_MAX_SHARE of
#: its samples outside is implausible (real records: <= 0.24, on the bad ABP of s25047 3234460_0017)
ABP_RANGE_MMHG: tuple[float, float] = (-50.0, 350.0)
ABP_OUTSIDE_MAX_SHARE: float = 0.5
#: a channel with more than this share of its samples at its minimum or maximum value is
#: saturated / clipped (real ECG/PPG/ABP: <= 0.22)
SATURATED_MAX_SHARE: float = 0.5
#: channels with fewer finite samples are not judged
MIN_CHECK_SAMPLES: int = 50
#: longer channels are judged on CHECK_BLOCKS evenly spaced contiguous blocks of this total
#: length (the rules are shares and a correlation: a large sample estimates them well)
CHECK_SAMPLES_MAX: int = 2**20
CHECK_BLOCKS: int = 16


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


# ------------------------------------------------------------------- plausibility
def _excerpt(x: np.ndarray) -> np.ndarray:
    """``x``, or :data:`CHECK_BLOCKS` evenly spaced contiguous blocks of it when it is long."""
    if len(x) <= CHECK_SAMPLES_MAX:
        return x
    width = CHECK_SAMPLES_MAX // CHECK_BLOCKS
    starts = np.linspace(0, len(x) - width, CHECK_BLOCKS).astype(np.int64)
    return np.concatenate([x[a : a + width] for a in starts])


def _lag1_autocorrelation(x: np.ndarray) -> float:
    """Lag-1 autocorrelation over consecutive finite pairs (NaN when undefined)."""
    finite = np.isfinite(x)
    all_finite = bool(finite.all())
    n = len(x) if all_finite else int(finite.sum())
    if n < MIN_CHECK_SAMPLES:
        return float("nan")
    xc = np.array(x, dtype=np.float64)  # a copy: centred in place
    xc -= float(xc.mean() if all_finite else xc[finite].mean())
    if not all_finite:
        xc[~finite] = 0.0  # NaN samples drop out of both sums
    n_pairs = n - 1 if all_finite else int(np.count_nonzero(finite[:-1] & finite[1:]))
    var = float(np.dot(xc, xc)) / n
    if var <= 0.0 or n_pairs < MIN_CHECK_SAMPLES:
        return float("nan")
    return float(np.dot(xc[:-1], xc[1:])) / n_pairs / var


def channel_problems(name: str, role: str | None, units: str, samples: np.ndarray, where: str) -> list[str]:
    """Plausibility problems of one decoded channel (empty list: plausible, or not judged).

    Rules (ECG, PPG and ABP channels; channels that are entirely NaN or constant are
    left to the flat-lead demotion of :func:`bprl.records.order_channels`):

    - noise: lag-1 autocorrelation below :data:`NOISE_AC1_MIN` (0.3). A sampled ECG, PPG
      or ABP changes little from one sample to the next; data decoded with the wrong
      format (e.g. format-16 bytes read as format 212) is white noise.
    - saturated: more than :data:`SATURATED_MAX_SHARE` (50 %) of the samples sit at the
      channel's minimum or maximum value.
    - ABP range: more than :data:`ABP_OUTSIDE_MAX_SHARE` (50 %) of the samples outside
      :data:`ABP_RANGE_MMHG` (-50..350 mmHg).

    Channels longer than :data:`CHECK_SAMPLES_MAX` samples (about 70 min at 250 Hz) are
    judged on 16 evenly spaced contiguous blocks of that total length. Each message
    names ``where`` (the file), the channel and the numbers.
    """
    if role not in CHECKED_ROLES:
        return []
    x = _excerpt(np.asarray(samples))
    finite = x[np.isfinite(x)]
    if finite.size < MIN_CHECK_SAMPLES:
        return []
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo <= 1e-9 * max(1.0, abs(hi)):
        return []
    out: list[str] = []
    label = f"{where}: channel {name!r} ({role})"
    ac1 = _lag1_autocorrelation(x)
    if np.isfinite(ac1) and ac1 < NOISE_AC1_MIN:
        out.append(
            f"{label} looks like noise, not a sampled waveform (lag-1 autocorrelation {ac1:.2f} "
            f"< {NOISE_AC1_MIN}): wrong signal format, sample layout or file in the header?"
        )
    at_ext = float(np.mean((finite == lo) | (finite == hi)))
    if at_ext > SATURATED_MAX_SHARE:
        out.append(
            f"{label} is saturated: {100 * at_ext:.0f} % of its samples sit at its minimum "
            f"{lo:.4g} or maximum {hi:.4g} {units}"
        )
    if role == "abp":
        a, b = ABP_RANGE_MMHG
        outside = float(np.mean((finite < a) | (finite > b)))
        if outside > ABP_OUTSIDE_MAX_SHARE:
            out.append(
                f"{label}: {100 * outside:.0f} % of its samples lie outside {a:g}..{b:g} mmHg "
                f"(units {units or '-'}; p50 {float(np.median(finite)):.4g}): wrong gain, units or format?"
            )
    return out


def header_sample_count(path: Path, fmt_bits: float, n_per_frame: int, byte_offset: int) -> int:
    """Frames a signal file of a fixed-size format holds (for headers that omit the sample count)."""
    size = os.stat(path).st_size - byte_offset
    return int(max(size, 0) * 8 // (fmt_bits * max(n_per_frame, 1)))


# ------------------------------------------------------------------ header text
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


def header_lines(text: str) -> list[str]:
    """Non-empty, non-comment lines of a header text."""
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


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
