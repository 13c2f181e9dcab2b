"""Deprecated: the batched vector environment moved to :mod:`bprl.envs.vector_env`.

``bprl.vector_env`` is a thin shim kept so that old imports keep working: it warns on import and
re-exports :class:`~bprl.envs.vector_env.BPCalibrationVectorEnv`. Import from :mod:`bprl.envs`
instead.
"""

from __future__ import annotations

from bprl._deprecation import warn_moved
from bprl.envs.vector_env import BPCalibrationVectorEnv

__all__ = ["BPCalibrationVectorEnv"]

warn_moved("bprl.vector_env", "bprl.envs")
