"""The record model: :class:`Record` (one subject, one recording) holding :class:`Channel` signals.

CONTRACT (shared by every package below sources):

- A :class:`Record` holds one :class:`Channel` per signal, each at its own rate
  (multi-frequency MIMIC-IV records are never averaged down to the frame rate).
  Samples are float32 in physical units; invalid samples and gaps are NaN.
- ``record.channel(role)`` returns the preferred channel of a role (one of
  :data:`ROLES`) or raises :class:`bprl.errors.RecordError`.

Roles come from channel names (:mod:`bprl.sources.roles`); records are read by
:func:`bprl.sources.read.read_record`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from bprl.errors import RecordError

#: channel roles, in the order channels are stored and reported
ROLES: tuple[str, ...] = ("ecg", "ppg", "abp", "resp")


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
            (see :func:`bprl.sources.roles.order_channels`).
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
        """Plausibility problems of all channels (see :func:`bprl.sources.checks.channel_problems`)."""
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
        """The preferred channel of ``role`` (channels are stored in preference order).

        Raises:
            RecordError: the record has no channel of ``role``.
        """
        for c in self.channels:
            if c.role == role:
                return c
        raise RecordError(f"{self.path}: no {role!r} channel (has {[c.name for c in self.channels]})")

    def channel_by_name(self, name: str) -> Channel:
        """The channel called ``name`` (exact match first, then case-insensitive).

        Raises:
            RecordError: no channel of that name.
        """
        for c in self.channels:
            if c.name == name:
                return c
        for c in self.channels:
            if c.name.lower() == name.lower():
                return c
        raise RecordError(f"{self.path}: no channel named {name!r} (has {self.channel_names})")
