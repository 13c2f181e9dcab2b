"""Deprecated: the RL agents moved to :mod:`bprl.policies.agents`.

``bprl.agents`` is a thin shim kept so that old imports keep working: it warns on import and
re-exports the old names from their new homes (:mod:`bprl.policies.agents.spec`,
:mod:`bprl.policies.agents.hyperparameters`, :mod:`bprl.policies.agents.envs`,
:mod:`bprl.policies.agents.folder`, :mod:`bprl.policies.agents.train`,
:mod:`bprl.policies.agents.policy`; ``package_versions`` and ``git_commit`` from
:mod:`bprl.provenance`, which records more packages than the old copy did). Private helpers
are not re-exported. Import from :mod:`bprl.policies.agents` instead.
"""

from __future__ import annotations

import sys
import types
import warnings

from bprl.policies.agents.envs import BPRL_ENV_IDS, CycleSubjects, env_builder, env_id_of
from bprl.policies.agents.folder import AGENT_JSON, BEST_MODEL, FINAL_MODEL, VECNORM_BEST, VECNORM_FINAL
from bprl.policies.agents.hyperparameters import (
    ALGORITHMS,
    WRAPPER_KEYS,
    algorithm_class,
    parse_kwargs_string,
    valid_hyperparameters,
)
from bprl.policies.agents.policy import AgentPolicy, load_agent
from bprl.policies.agents.spec import (
    EVAL_SEED_OFFSET,
    MAX_SEED,
    MAX_TIMESTEPS,
    AgentSpec,
    check_seed,
    check_timesteps,
    load_agent_spec,
)
from bprl.policies.agents.train import train_agent
from bprl.provenance import git_commit, package_versions

__all__ = [
    "AGENT_JSON",
    "ALGORITHMS",
    "BEST_MODEL",
    "BPRL_ENV_IDS",
    "EVAL_SEED_OFFSET",
    "FINAL_MODEL",
    "MAX_SEED",
    "MAX_TIMESTEPS",
    "VECNORM_BEST",
    "VECNORM_FINAL",
    "WRAPPER_KEYS",
    "AgentPolicy",
    "AgentSpec",
    "CycleSubjects",
    "algorithm_class",
    "check_seed",
    "check_timesteps",
    "env_builder",
    "env_id_of",
    "git_commit",
    "load_agent",
    "load_agent_spec",
    "package_versions",
    "parse_kwargs_string",
    "train_agent",
    "valid_hyperparameters",
]

#: bprl modules that still import this shim and switch to bprl.policies.agents in their own step of
#: issue 12; they import it silently (pytest turns bprl's DeprecationWarnings into errors).
#: Empty this tuple once they have switched.
_NOT_YET_MIGRATED: tuple[str, ...] = ("bprl.experiments", "bprl.cli")


def _is_import_machinery(frame: types.FrameType) -> bool:
    """Whether a frame is importlib's (its bootstrap, which ``warnings`` also skips, or import_module)."""
    filename = frame.f_code.co_filename
    return ("importlib" in filename and "_bootstrap" in filename) or frame.f_globals.get(
        "__name__"
    ) == "importlib"


def _importer() -> str:
    """Name of the module whose code imports this one (import-machinery frames skipped)."""
    frame = sys._getframe(2)  # 0: here, 1: this module's body
    while frame is not None and _is_import_machinery(frame):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "") if frame is not None else ""


_by = _importer()
if not any(_by == m or _by.startswith(m + ".") for m in _NOT_YET_MIGRATED):
    warnings.warn(
        "bprl.agents is deprecated; import from bprl.policies.agents", DeprecationWarning, stacklevel=2
    )
del _by
