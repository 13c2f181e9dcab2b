"""Reinforcement-learning agents: agent YAML specs, SB3 training, saving and loading.

Agents are PPO and DQN from stable-baselines3 and RecurrentPPO from sb3-contrib, optionally
with observation normalisation (``VecNormalize``) and frame stacking (``VecFrameStack``).
Their settings live in YAML files in ``agents/`` laid out like rl-baselines3-zoo's
``hyperparams/<algo>.yml``, so the same files work unchanged with
``python -m rl_zoo3.train -conf agents/ppo.yaml``. The package is organised as:

* :mod:`bprl.policies.agents.spec` -- :class:`AgentSpec` (a :class:`bprl.config.Spec`),
  :func:`load_agent_spec`, the seed and budget limits;
* :mod:`bprl.policies.agents.hyperparameters` -- the algorithms, their accepted arguments,
  ``lin_<start>`` schedules and safe literal parsing of zoo strings (no ``eval``);
* :mod:`bprl.policies.agents.envs` -- env builders, SB3 vector envs, :class:`CycleSubjects`,
  JSON records of spaces and ``VecNormalize`` statistics;
* :mod:`bprl.policies.agents.batched_vec_env` -- :class:`~bprl.policies.agents.batched_vec_env.BatchedVecEnv`,
  an SB3 ``VecEnv`` over the batched calibration env (``vec_env: batched``; imports SB3);
* :mod:`bprl.policies.agents.folder` -- the files of an agent folder;
* :mod:`bprl.policies.agents.train` -- :func:`train_agent`;
* :mod:`bprl.policies.agents.policy` -- :class:`AgentPolicy` and :func:`load_agent` (nothing unpickled),
  :func:`residual_policy` (a residual agent with its refitted base rule).

stable-baselines3 and torch are imported only when an agent is validated, trained or loaded.
"""

from __future__ import annotations

from bprl.policies.agents.envs import (
    BPRL_ENV_IDS,
    CycleSubjects,
    env_builder,
    env_id_of,
    env_spec_record,
    make_vec_env,
    normalize_to_json,
    space_from_json,
    space_to_json,
)
from bprl.policies.agents.folder import (
    AGENT_FORMAT,
    AGENT_JSON,
    BEST_MODEL,
    FINAL_MODEL,
    VECNORM_BEST,
    VECNORM_FINAL,
)
from bprl.policies.agents.hyperparameters import (
    ALGORITHMS,
    WRAPPER_KEYS,
    algorithm_class,
    parse_kwargs_string,
    valid_hyperparameters,
)
from bprl.policies.agents.policy import AgentPolicy, load_agent, residual_policy
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

__all__ = [
    "AGENT_FORMAT",
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
    "env_spec_record",
    "load_agent",
    "load_agent_spec",
    "make_vec_env",
    "normalize_to_json",
    "parse_kwargs_string",
    "residual_policy",
    "space_from_json",
    "space_to_json",
    "train_agent",
    "valid_hyperparameters",
]
