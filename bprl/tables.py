"""Old home of the table schemas, atomic writes and the replay set; re-exports them from their new modules.

- column schemas and split names: :mod:`bprl.schemas`;
- atomic writes and file modes: :mod:`bprl.io`;
- the replay set (:class:`ReplaySet`, :func:`write_replay_set`, :func:`read_replay_set`,
  :func:`concat_records`, ``REPLAY_SET_INDEX``, ``REPLAY_SET_INFO``):
  :mod:`bprl.features.replay_set`, imported on first use so that importing this module stays
  light (stages above the features stage still import it).

Import from the new modules instead.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bprl._deprecation import warn_moved
from bprl.io import (
    atomic_output,
    current_umask,
    default_dir_mode,
    default_file_mode,
    make_temp_dir,
    write_parquet_atomic,
    write_text_atomic,
)
from bprl.schemas import (
    EPISODE_LOG_COLUMNS,
    REPLAY_COLUMNS,
    REPLAY_ESTIMATE,
    REPLAY_FEATURES,
    REPLAY_INDEX,
    REPLAY_REFERENCE,
    SPLITS,
    check_columns,
)

if TYPE_CHECKING:  # imported on first access at run time (module __getattr__ below)
    from bprl.features.replay_set import (
        REPLAY_SET_INDEX,
        REPLAY_SET_INFO,
        ReplaySet,
        concat_records,
        read_replay_set,
        write_replay_set,
    )

#: names that live in bprl.features.replay_set, imported on first access
_REPLAY_SET_NAMES: tuple[str, ...] = (
    "REPLAY_SET_INDEX",
    "REPLAY_SET_INFO",
    "ReplaySet",
    "concat_records",
    "read_replay_set",
    "write_replay_set",
)

__all__ = [
    "EPISODE_LOG_COLUMNS",
    "REPLAY_COLUMNS",
    "REPLAY_ESTIMATE",
    "REPLAY_FEATURES",
    "REPLAY_INDEX",
    "REPLAY_REFERENCE",
    "REPLAY_SET_INDEX",
    "REPLAY_SET_INFO",
    "SPLITS",
    "ReplaySet",
    "atomic_output",
    "check_columns",
    "concat_records",
    "current_umask",
    "default_dir_mode",
    "default_file_mode",
    "make_temp_dir",
    "read_replay_set",
    "write_parquet_atomic",
    "write_replay_set",
    "write_text_atomic",
]


def __getattr__(name: str) -> Any:
    """The replay-set names, from :mod:`bprl.features.replay_set` (imported on first access)."""
    if name in _REPLAY_SET_NAMES:
        value = getattr(importlib.import_module("bprl.features.replay_set"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


warn_moved("bprl.tables", "bprl.schemas, bprl.io and bprl.features.replay_set")
