"""Step rewards of the calibration environments: the built-ins and the extension point for your own.

The ``reward`` of an env spec (or the ``reward=`` argument of the environments) is one of

* a built-in name, a key of :data:`REWARDS` (the registry as data: summary and function):
  ``mae`` (default), ``squared``, ``aami_band``;
* a ``module:function`` spec, ``"my_pkg.rewards:my_reward"`` (an importable module) or
  ``"path/to/rewards.py:my_reward"`` (a Python file, relative to the working directory);
* the name of a plugin: an installed package that declares, in its ``pyproject.toml``,

  .. code-block:: toml

      [project.entry-points."bprl.rewards"]
      my_reward = "my_pkg.rewards:my_reward"

Built-in names win over plugins of the same name (with a warning).

**The reward function signature** (:data:`RewardFunction`)::

    def my_reward(err_sbp_mmhg, err_dbp_mmhg, params) -> float: ...

* ``err_sbp_mmhg``, ``err_dbp_mmhg``: corrected estimate minus reference after the step's action,
  mmHg; NaN for a component whose window has no reference. Python floats in
  :class:`~bprl.envs.calibration_env.BPCalibrationEnv`; float64 arrays of shape ``(num_envs,)`` in
  :class:`~bprl.envs.vector_env.BPCalibrationVectorEnv`, which calls the function once per step for
  every sub-environment: write it with numpy operations (``np.abs``, ``np.where``, ``np.isnan``)
  so that it works element-wise on both.
* ``params``: the environment's :class:`~bprl.envs.params.EnvParams` (``reward_scale_mmhg``,
  ``aami_band_mmhg``, ...).
* returns the accuracy part of the step reward, higher is better, finite (a float, or an array of
  shape ``(num_envs,)``); the environment subtracts the cost of a charged cuff request itself:
  ``reward = (0 - cost) + my_reward(...)``.

The built-in functions below follow this signature; the environments compute the built-ins with an
inline fast path that gives the same values.

>>> sorted(REWARDS)
['aami_band', 'mae', 'squared']
>>> from bprl.envs.params import EnvParams
>>> float(mae_reward(4.0, float("nan"), EnvParams(reward_scale_mmhg=10.0)))
-0.4
>>> resolve_reward("bprl.envs.rewards:squared_reward").builtin
False
>>> check_reward("l1")
Traceback (most recent call last):
...
bprl.errors.ConfigError: reward: unknown reward 'l1'; valid names: ['aami_band', 'mae', 'squared']; or a 'module:function' spec
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from bprl.errors import ConfigError
from bprl.plugins import load_object

if TYPE_CHECKING:
    from bprl.envs.params import EnvParams

__all__ = [
    "BUILTIN_REWARDS",
    "ENTRY_POINT_GROUP",
    "REWARDS",
    "RewardEntry",
    "RewardFunction",
    "aami_band_reward",
    "check_reward",
    "known_rewards",
    "mae_reward",
    "plugin_rewards",
    "resolve_reward",
    "squared_reward",
]

#: entry-point group under which installed packages register rewards (``name = "module:function"``)
ENTRY_POINT_GROUP = "bprl.rewards"

#: ``(err_sbp_mmhg, err_dbp_mmhg, params) -> accuracy reward`` (see the module docstring)
RewardFunction = Callable[[Any, Any, "EnvParams"], Any]


def _abs_or_zero(err: Any) -> Any:
    """|err|, 0 where err is NaN (no reference: no penalty)."""
    return np.where(np.isnan(err), 0.0, np.abs(err))


def mae_reward(err_sbp_mmhg: Any, err_dbp_mmhg: Any, params: EnvParams) -> Any:
    """``-(|SBP err| + |DBP err|) / reward_scale_mmhg``, components without a reference left out."""
    return -(_abs_or_zero(err_sbp_mmhg) + _abs_or_zero(err_dbp_mmhg)) / params.reward_scale_mmhg


def squared_reward(err_sbp_mmhg: Any, err_dbp_mmhg: Any, params: EnvParams) -> Any:
    """``-(SBP err^2 + DBP err^2) / reward_scale_mmhg^2``, components without a reference left out."""
    sq = _abs_or_zero(err_sbp_mmhg) ** 2 + _abs_or_zero(err_dbp_mmhg) ** 2
    return -sq / (params.reward_scale_mmhg * params.reward_scale_mmhg)


def aami_band_reward(err_sbp_mmhg: Any, err_dbp_mmhg: Any, params: EnvParams) -> Any:
    """``-(number of SBP/DBP errors outside +-aami_band_mmhg)``, components without a reference left out."""
    band = params.aami_band_mmhg
    return -((_abs_or_zero(err_sbp_mmhg) > band).astype(np.float64) + (_abs_or_zero(err_dbp_mmhg) > band))


@dataclass(frozen=True)
class RewardEntry:
    """One reward of the registry.

    Attributes:
        name: what specs call it (a built-in name, a ``module:function`` spec or a plugin name).
        summary: one line, what it rewards.
        function: the :data:`RewardFunction`.
        builtin: True for the built-ins, which the environments compute with an inline fast path.
    """

    name: str
    summary: str
    function: RewardFunction
    builtin: bool = False


#: the built-ins in the order of the environments' fast path (index = reward kind)
BUILTIN_REWARDS: tuple[str, ...] = ("mae", "squared", "aami_band")

#: registry as data: built-in reward name -> entry (summary, function)
REWARDS: dict[str, RewardEntry] = {
    "mae": RewardEntry(
        "mae", "-(|SBP err| + |DBP err|) / scale_mmhg on steps with a reference", mae_reward, True
    ),
    "squared": RewardEntry(
        "squared", "-(SBP err^2 + DBP err^2) / scale_mmhg^2 on steps with a reference", squared_reward, True
    ),
    "aami_band": RewardEntry(
        "aami_band",
        "-(number of SBP/DBP errors outside +-band_mmhg) on steps with a reference",
        aami_band_reward,
        True,
    ),
}


# ------------------------------------------------------------------------- plugins
def _origin(ep: metadata.EntryPoint) -> str:
    """``'name = value'`` plus the distribution that declares it, for messages."""
    dist = getattr(ep, "dist", None)
    return f"{ep.name} = {ep.value!r}" + (f" (from {dist.name})" if dist is not None else "")


def plugin_rewards() -> dict[str, metadata.EntryPoint]:
    """Rewards registered by installed packages under :data:`ENTRY_POINT_GROUP`, by name.

    Read at every call (installs take effect at once); nothing is imported here.

    Returns:
        name -> entry point. A plugin whose name is built in (the built-in wins), a second plugin of
        a seen name, or a name containing ``:`` is left out, each with a ``UserWarning``.
    """
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in REWARDS:
            why = f"{ep.name!r} is a built-in reward, which takes precedence"
        elif ep.name in found:
            why = f"{_origin(found[ep.name])} has the same name"
        elif ":" in ep.name:
            why = "a name cannot contain ':'"
        else:
            found[ep.name] = ep
            continue
        warnings.warn(f"reward plugin {_origin(ep)} is ignored: {why}", UserWarning, stacklevel=3)
    return found


def known_rewards() -> list[str]:
    """Names a spec's ``reward`` accepts besides ``module:function`` specs: built-ins and plugins."""
    return sorted(REWARDS) + sorted(set(plugin_rewards()) - set(REWARDS))


# ------------------------------------------------------------- module:function specs
def _load_function(spec: str, label: str) -> RewardFunction:
    """The callable a ``module:function`` or ``path/to/file.py:function`` spec names."""
    obj: Any = load_object(spec, f"reward {label}", "function", prefix="_bprl_reward")
    if not callable(obj):
        raise ConfigError(
            f"reward {label}: {spec.rpartition(':')[2]!r} is a {type(obj).__name__}, not a function "
            "(err_sbp_mmhg, err_dbp_mmhg, params) -> float"
        )
    return obj


# --------------------------------------------------------------------- resolution
def resolve_reward(name: str) -> RewardEntry:
    """The registry entry a reward name stands for.

    Args:
        name: a built-in name (:data:`REWARDS`), a ``module:function`` / ``file.py:function`` spec,
            or the name of a plugin registered under :data:`ENTRY_POINT_GROUP`.

    Returns:
        The :class:`RewardEntry` (custom rewards have ``builtin=False``).

    Raises:
        ConfigError: naming the spec: unknown name (listing the valid ones), or a spec or plugin
            that cannot be imported or does not name a function.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"reward: expected a reward name, got {name!r}")
    if name in REWARDS:
        return REWARDS[name]
    if ":" in name:
        fn = _load_function(name, repr(name))
        return RewardEntry(name, f"custom reward {name}", fn)
    plugins = plugin_rewards()
    if name in plugins:
        ep = plugins[name]
        what = f"{name!r} (plugin {_origin(ep)})"
        return RewardEntry(
            name, f"plugin reward {_origin(ep)}", _load_function(f"{ep.module}:{ep.attr}", what)
        )
    raise ConfigError(
        f"reward: unknown reward {name!r}; valid names: {sorted(REWARDS) + sorted(plugins)}; "
        "or a 'module:function' spec"
    )


def check_reward(name: str) -> str:
    """``name`` if it names a usable reward (see :func:`resolve_reward`), else ConfigError."""
    resolve_reward(name)
    return name
