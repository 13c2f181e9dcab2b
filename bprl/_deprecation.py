"""Warnings for the module paths of bprl 0.1 that moved when the package was laid out by stage.

Each old module (``bprl.env``, ``bprl.records``, ...) is a thin shim: it re-exports the old names
from their new homes and calls :func:`warn_moved` once, when it is first imported.
"""

from __future__ import annotations

import warnings


def warn_moved(old: str, new: str) -> None:
    """Warn (DeprecationWarning, attributed to the importing code) that ``old`` moved to ``new``."""
    # stacklevel 3: 1 is this function, 2 the shim's module body, 3 the module that imports the
    # shim (the import machinery's frames in between are skipped by ``warnings``).
    warnings.warn(
        f"{old} is deprecated; import from {new}",
        DeprecationWarning,
        stacklevel=3,
    )
