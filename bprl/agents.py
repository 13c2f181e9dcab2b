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

from bprl._deprecation import warn_moved
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

warn_moved("bprl.agents", "bprl.policies.agents")
