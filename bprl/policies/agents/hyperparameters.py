"""Agent hyperparameters: the algorithms, their accepted arguments, schedules and safe literal parsing.

rl-baselines3-zoo writes some hyperparameters as Python source strings (``policy_kwargs:
"dict(net_arch=[64, 64], activation_fn=nn.Tanh)"``) and learning rates as schedule strings
(``lin_3e-4``). This module turns them into Python objects **without** ``eval``: only literals,
``dict(...)``/``{...}``, lists, tuples, negation and a fixed set of torch activation and optimizer
names are accepted. It also names the SB3 class of each algorithm and the constructor arguments
an agent file may set.

>>> parse_kwargs_string("dict(net_arch=[64, 64], log_std_init=-1.0)", "policy_kwargs")
{'net_arch': [64, 64], 'log_std_init': -1.0}
>>> parse_kwargs_string("__import__('os')", "policy_kwargs")
Traceback (most recent call last):
...
bprl.errors.ConfigError: policy_kwargs: unsupported expression "__import__('os')" (only literals, dict(...) and torch activations)
"""

from __future__ import annotations

import ast
import importlib
import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np

from bprl.errors import ConfigError

#: algorithm name (as in the agent file name ``agents/<algo>.yaml``) -> "module:Class"
ALGORITHMS: dict[str, str] = {
    "ppo": "stable_baselines3:PPO",
    "dqn": "stable_baselines3:DQN",
    "recurrent_ppo": "sb3_contrib:RecurrentPPO",
}

#: keys of an agent entry handled by bprl/rl_zoo3 rather than passed to the algorithm
WRAPPER_KEYS: tuple[str, ...] = (
    "n_timesteps",
    "policy",
    "n_envs",
    "normalize",
    "frame_stack",
    "policy_kwargs",
    "env_kwargs",
    "vec_env",
    "residual",
    "cuff_price",
    "domain_randomization",
    "validation",
)

#: constructor arguments never taken from a file (set by train_agent)
_RESERVED = {
    "self",
    "policy",
    "env",
    "seed",
    "device",
    "verbose",
    "tensorboard_log",
    "_init_setup_model",
    "policy_kwargs",
}

#: hyperparameters that may be given as a zoo schedule string ``lin_<start>``
SCHEDULE_KEYS: tuple[str, ...] = ("learning_rate", "clip_range", "clip_range_vf")

#: keyword arguments of ``VecNormalize`` accepted in an entry's ``normalize``
NORMALIZE_KEYS: frozenset[str] = frozenset(
    {"norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon"}
)

_ACTIVATIONS = ("Tanh", "ReLU", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid")
_OPTIMIZERS = ("Adam", "AdamW", "RMSprop", "SGD")

#: names allowed inside a ``policy_kwargs`` string (activation functions and optimizers)
SAFE_NAMES: dict[str, str] = {
    **{f"{p}{a}": f"torch.nn:{a}" for p in ("nn.", "th.nn.", "torch.nn.") for a in _ACTIVATIONS},
    **{f"{p}{o}": f"torch.optim:{o}" for p in ("optim.", "th.optim.", "torch.optim.") for o in _OPTIMIZERS},
}


class UnsafeExpression(ValueError):
    """A kwargs string holds something other than literals and allowed names (message without a location)."""


def import_target(target: str) -> Any:
    """The object named by ``"module:name"`` (only called with bprl's own fixed tables)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def algorithm_class(algo: str, where: str = "agent spec") -> type:
    """The SB3 class of ``algo``.

    Args:
        algo: ``ppo``, ``dqn`` or ``recurrent_ppo``.
        where: what the error message names (a file, an entry).

    Returns:
        The class (``stable_baselines3.PPO``, ``stable_baselines3.DQN``, ``sb3_contrib.RecurrentPPO``).

    Raises:
        ConfigError: unknown algorithm name.
    """
    if algo not in ALGORITHMS:
        raise ConfigError(f"{where}: unknown algorithm {algo!r}; known: {sorted(ALGORITHMS)}")
    return import_target(ALGORITHMS[algo])


def algorithm_arguments(algo: str) -> list[str]:
    """Constructor arguments of ``algo``'s class that an agent file may set (sorted)."""
    cls = algorithm_class(algo)
    return sorted(p for p in inspect.signature(cls.__init__).parameters if p not in _RESERVED)


def valid_hyperparameters(algo: str) -> list[str]:
    """Names accepted in an agent entry for ``algo``: the zoo wrapper keys plus the algorithm's constructor arguments."""
    return sorted({*WRAPPER_KEYS, *algorithm_arguments(algo)})


# --------------------------------------------------------------------------- safe literal parsing
def _eval_node(node: ast.AST) -> Any:
    """The value of one literal node; UnsafeExpression for anything else."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        items = [_eval_node(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {_eval_node(k): _eval_node(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval_node(node.operand)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
    ):
        return {kw.arg: _eval_node(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Attribute | ast.Name):
        name = ast.unparse(node)
        if name in SAFE_NAMES:
            return import_target(SAFE_NAMES[name])
        raise UnsafeExpression(f"name {name!r} is not allowed; allowed names: {sorted(SAFE_NAMES)}")
    raise UnsafeExpression(
        f"unsupported expression {ast.unparse(node)!r} (only literals, dict(...) and torch activations)"
    )


def parse_kwargs_dict(text: str) -> dict[str, Any]:
    """A zoo kwargs string as a dict; UnsafeExpression (a ValueError, no location) when it is not one."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise UnsafeExpression(f"cannot parse {text!r}: {exc.msg}") from None
    value = _eval_node(tree.body)
    if not isinstance(value, dict):
        raise UnsafeExpression(f"expected a dict, got {text!r}")
    return value


def parse_kwargs_string(text: str, where: str) -> dict[str, Any]:
    """Parse a zoo-style kwargs string such as ``"dict(net_arch=[64, 64], activation_fn=nn.Tanh)"`` without ``eval``.

    Only literals, ``dict(...)``/``{...}``, lists and a fixed set of torch activation/optimizer
    names are accepted.

    Args:
        text: the string as written in the agent file.
        where: what the error message names (file, entry and key).

    Returns:
        The dict, with allowed names replaced by the torch classes.

    Raises:
        ConfigError: naming ``where``, for anything else.
    """
    try:
        return parse_kwargs_dict(text)
    except UnsafeExpression as exc:
        raise ConfigError(f"{where}: {exc}") from None


def policy_kwargs_objects(value: Any) -> dict[str, Any]:
    """policy_kwargs from a zoo string or a dict (string values naming torch activations are resolved).

    Raises:
        UnsafeExpression: not a dict or ``'dict(...)'`` string, or a string with disallowed content.
    """
    if isinstance(value, str):
        return parse_kwargs_dict(value)
    if not isinstance(value, dict):
        raise UnsafeExpression(f"policy_kwargs must be a dict or a 'dict(...)' string, got {value!r}")
    return {
        k: import_target(SAFE_NAMES[v]) if isinstance(v, str) and v in SAFE_NAMES else v
        for k, v in value.items()
    }


def parse_policy_kwargs(value: Any, where: str) -> dict[str, Any]:
    """:func:`policy_kwargs_objects` with a ConfigError naming ``where`` on bad input."""
    try:
        return policy_kwargs_objects(value)
    except UnsafeExpression as exc:
        raise ConfigError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------- schedules
def schedule_start(value: str) -> float:
    """The start value of a zoo schedule string ``lin_<start>``.

    Raises:
        ValueError: not of the form ``lin_<finite number>``.
    """
    kind, _, start = value.partition("_")
    try:
        start_f = float(start)
    except ValueError:
        start_f = float("nan")
    if kind != "lin" or not math.isfinite(start_f):
        raise ValueError(f"schedule {value!r} must look like 'lin_0.0003'")
    return start_f


def build_schedules(hyperparams: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``hyperparams`` with ``lin_<start>`` strings as SB3 linear schedules (start -> 0).

    ``train_freq`` given as a list (YAML has no tuples) becomes a tuple, as SB3 expects.
    """
    from stable_baselines3.common.utils import LinearSchedule

    kwargs = dict(hyperparams)
    for key in SCHEDULE_KEYS:
        value = kwargs.get(key)
        if isinstance(value, str):
            kwargs[key] = LinearSchedule(schedule_start(value), 0.0, 1.0)
    if "train_freq" in kwargs and isinstance(kwargs["train_freq"], list):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    return kwargs


# --------------------------------------------------------------------------- JSON records
def _safe_name_of(cls: type) -> str | None:
    """The short allowed name (``nn.Tanh``, ``optim.Adam``) of a torch class from :data:`SAFE_NAMES`."""
    module = cls.__module__
    if module.startswith("torch.nn") and cls.__qualname__ in _ACTIVATIONS:
        return f"nn.{cls.__qualname__}"
    if module.startswith("torch.optim") and cls.__qualname__ in _OPTIMIZERS:
        return f"optim.{cls.__qualname__}"
    return None


def jsonable(value: Any) -> Any:
    """``value`` with dict keys as strings, tuples as lists, numpy scalars and paths as plain values.

    Classes become their name: the allowed torch activations/optimizers their short zoo name
    (``nn.Tanh``, so that the record parses back), anything else ``module.QualName``.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, type):
        return _safe_name_of(value) or f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
