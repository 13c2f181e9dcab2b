"""Channel names -> roles: name normalisation, role of a name, preference order, channel selection.

Channel names vary between databases (``II``, ``ECG II``, ``MLII``; ``ABP``, ``ART``;
``Pleth``, ``PLETH``). :func:`channel_role` maps a name to one of
:data:`bprl.sources.record.ROLES` (or ``None``); :func:`order_channels` puts the channels
of a record in role and preference order, so that ``record.channel(role)`` is the best
channel of that role; :func:`select_channels` picks requested names out of a header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from bprl.errors import RecordError
from bprl.sources.record import ROLES, Channel

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

#: normalised names of pressures other than arterial (no role, but units of mmHg)
PRESSURE_NAME = re.compile(r"^(pap|cvp|icp|lap|rap|pawp)")


def norm_name(name: str) -> str:
    """Lower-case channel name with separators removed and ``ECG``/``lead`` prefixes dropped."""
    n = re.sub(r"[\s_\-.()]+", "", name.strip().lower())
    for prefix in ("ecglead", "ecg", "ekg", "lead"):
        if n.startswith(prefix) and len(n) > len(prefix):
            n = n[len(prefix) :]
            break
    return n


def is_pressure_name(name: str) -> bool:
    """Whether ``name`` is a non-arterial pressure (PAP, CVP, ICP, LAP, RAP, PAWP)."""
    return bool(PRESSURE_NAME.match(norm_name(name)))


def channel_role(name: str) -> str | None:
    """Role of a channel from its name: ``"ecg"``, ``"ppg"``, ``"abp"``, ``"resp"`` or ``None``.

    Case-insensitive; ``ECG II``, ``ECG_II``, ``II``, ``MLII``, ``V5``, ``aVR`` are ECG;
    ``Pleth``/``PLETH``/``PPG`` are PPG; ``ABP``/``ART``/``Art`` are ABP;
    ``Resp``/``RESP`` are respiration; ``PAP``, ``CVP`` and unknown names have no role.

    Args:
        name: channel name as written in a header.

    Returns:
        The role, or ``None`` for channels without one.
    """
    raw = re.sub(r"[\s_\-.()]+", "", name.strip().lower())
    if raw in ("ecg", "ekg") or raw.startswith(("ecg", "ekg")):
        return "ecg"
    n = norm_name(name)
    if n in NO_ROLE or PRESSURE_NAME.match(n):
        return None
    if n in ECG_LEAD_ORDER or _ECG_EXTRA.match(n):
        return "ecg"
    for role, aliases in ROLE_ALIASES.items():
        if n in aliases:
            return role
    return None


def preference_rank(name: str, role: str | None) -> int:
    """Position of ``name`` in its role's preference list (unknown names last)."""
    n = norm_name(name)
    order: Sequence[str] = ECG_LEAD_ORDER if role == "ecg" else ROLE_ALIASES.get(role or "", ())
    return order.index(n) if n in order else len(order)


def role_index(role: str | None) -> int:
    """Position of ``role`` in :data:`bprl.sources.record.ROLES` (no role: after all of them)."""
    return ROLES.index(role) if role in ROLES else len(ROLES)


def is_unusable(samples: np.ndarray) -> bool:
    """True when a signal is entirely NaN or flat (no variation between its 1st and 99th percentile)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return True
    lo, hi = np.percentile(finite, [1.0, 99.0])
    return bool(hi - lo <= 1e-9 * max(1.0, abs(float(hi))))


def order_channels(channels: Iterable[Channel]) -> list[Channel]:
    """Channels sorted by role (:data:`~bprl.sources.record.ROLES` order, then no role), usability, preference, input order.

    Within a role, a channel that is entirely NaN or flat, or has plausibility
    ``problems`` (see :func:`bprl.sources.checks.channel_problems`), comes after usable
    ones, then channels follow the preference lists (:data:`ECG_LEAD_ORDER`,
    :data:`ROLE_ALIASES`).

    Args:
        channels: the channels of one record, in header order.

    Returns:
        The same channels, sorted.
    """
    chans = list(channels)

    def key(item: tuple[int, Channel]) -> tuple[int, int, int, int]:
        i, c = item
        demoted = int(c.role is not None and (bool(c.problems) or is_unusable(c.samples)))
        return role_index(c.role), demoted, preference_rank(c.name, c.role), i

    return [c for _, c in sorted(enumerate(chans), key=key)]


def select_channels(where: Path, names: Sequence[str], wanted: Sequence[str] | None) -> list[int]:
    """Indices of the ``wanted`` channel names (all when ``None``).

    Names match exactly first, then case-insensitively. With duplicate names only the
    first signal of each name is selected (header order).

    Args:
        where: the file the names come from (for the error message).
        names: channel names, in header order.
        wanted: names to select, or ``None`` for every (first-of-its-name) channel.

    Raises:
        RecordError: a wanted name is absent, naming ``where``.
    """
    if wanted is None:
        return [i for i, n in enumerate(names) if names.index(n) == i]
    out = []
    for w in wanted:
        hits = [i for i, n in enumerate(names) if n == w] or [
            i for i, n in enumerate(names) if n.lower() == w.lower()
        ]
        if not hits:
            raise RecordError(f"{where}: requested channel {w!r} is absent (channels: {list(names)})")
        out.append(hits[0])
    return list(dict.fromkeys(out))
