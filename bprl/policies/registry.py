"""The calibrator registry: built-in names, ``module:Class`` specs and the ``bprl.calibrators`` plugins.

:func:`make_calibrator` turns a name from an experiment file into a policy. The name is one of

* a built-in name, a key of :data:`CALIBRATORS` (the registry as data: class, supported action
  types, one-line summary);
* a ``module:Class`` spec, ``"my_pkg.rules:MyRule"`` (an importable module) or
  ``"path/to/rules.py:MyRule"`` (a Python file, relative to the working directory);
* the name of a plugin: an installed package that declares, in its ``pyproject.toml``,

  .. code-block:: toml

      [project.entry-points."bprl.calibrators"]
      my_rule = "my_pkg.rules:MyRule"

Built-in names win over plugins of the same name (with a warning). The class must subclass
:class:`bprl.policies.base.Calibrator` or satisfy the :class:`bprl.policies.base.Policy` protocol.
:func:`known_calibrators` lists built-ins and plugins. ``docs/how-to/add-calibrator.md`` walks
through a complete example.
"""

from __future__ import annotations

import inspect
import warnings
from importlib import metadata
from typing import Any

from bprl.errors import ConfigError
from bprl.plugins import load_object
from bprl.policies.base import Calibrator, Policy
from bprl.policies.calibrators import (
    DriftCalibrator,
    KalmanCalibrator,
    NoCalibration,
    OneShotCalibrator,
    PeriodicCalibrator,
)
from bprl.policies.feature_correction import FeatureCorrectionCalibrator
from bprl.policies.filters import KalmanOUCalibrator, RLSGainCalibrator, VarianceTriggerCalibrator
from bprl.policies.oracle import OracleCalibrator

__all__ = [
    "CALIBRATORS",
    "ENTRY_POINT_GROUP",
    "known_calibrators",
    "load_class_spec",
    "make_calibrator",
    "plugin_calibrators",
    "resolve_calibrator",
]

#: entry-point group under which installed packages register calibrators (``name = "module:Class"``)
ENTRY_POINT_GROUP = "bprl.calibrators"


def _entry(cls: type[Calibrator], summary: str) -> dict[str, Any]:
    """One registry row: the class, the action types it supports, what it is."""
    return {"class": cls, "action_types": cls.action_types, "summary": summary}


#: registry as data: name -> class, supported action types, what it is
CALIBRATORS: dict[str, dict[str, Any]] = {
    "none": _entry(NoCalibration, "no calibration (raw population estimate)"),
    "one_shot": _entry(OneShotCalibrator, "one cuff reading at the start"),
    "periodic": _entry(PeriodicCalibrator, "cuff reading every period_min minutes"),
    "drift": _entry(DriftCalibrator, "cuff reading when PAT or HR moved beyond k noise SDs (fit)"),
    "kalman": _entry(
        KalmanCalibrator, "random-walk Kalman bias tracker, cuff when the bias is too uncertain"
    ),
    "kalman_ou": _entry(
        KalmanOUCalibrator, "OU Kalman offset fit to the error variogram, paced to the budget (fit)"
    ),
    "rls_gain": _entry(
        RLSGainCalibrator, "Kalman / RLS over offset and gain, reads when the gain is uncertain (fit)"
    ),
    "feature_correction": _entry(
        FeatureCorrectionCalibrator, "any rule + linear correction from PAT/HR/estimate changes (fit)"
    ),
    "variance_trigger": _entry(
        VarianceTriggerCalibrator,
        "OU Kalman, reads when variance grown by time and feature changes crosses (fit)",
    ),
    "oracle": _entry(OracleCalibrator, "UPPER BOUND: reads the reference (bind(env)); not a baseline"),
}


# ------------------------------------------------------------------------- plugins
def _entry_points(group: str) -> list[metadata.EntryPoint]:
    """The installed entry points of ``group`` (read at every call: installs take effect at once)."""
    return list(metadata.entry_points(group=group))


def _origin(ep: metadata.EntryPoint) -> str:
    """``'name = value'`` plus the distribution that declares it, for messages."""
    dist = getattr(ep, "dist", None)
    where = f" (from {dist.name})" if dist is not None else ""
    return f"{ep.name} = {ep.value!r}{where}"


def plugin_calibrators() -> dict[str, metadata.EntryPoint]:
    """Calibrators registered by installed packages under :data:`ENTRY_POINT_GROUP`, by name.

    Nothing is imported here; :func:`make_calibrator` loads a plugin when it is asked for.

    Returns:
        name -> entry point, in installation order. A plugin whose name is built in is left out
        (the built-in wins), as is a second plugin of an already seen name, or a name containing
        ``:`` (it would read as a ``module:Class`` spec); each with a ``UserWarning``.
    """
    found: dict[str, metadata.EntryPoint] = {}
    for ep in _entry_points(ENTRY_POINT_GROUP):
        if ep.name in CALIBRATORS:
            warnings.warn(
                f"calibrator plugin {_origin(ep)} is ignored: {ep.name!r} is a built-in calibrator, "
                "which takes precedence; register the plugin under another name",
                UserWarning,
                stacklevel=3,
            )
        elif ep.name in found:
            warnings.warn(
                f"calibrator plugin {_origin(ep)} is ignored: {_origin(found[ep.name])} has the same name",
                UserWarning,
                stacklevel=3,
            )
        elif ":" in ep.name:
            warnings.warn(
                f"calibrator plugin {_origin(ep)} is ignored: a name cannot contain ':'",
                UserWarning,
                stacklevel=3,
            )
        else:
            found[ep.name] = ep
    return found


def known_calibrators() -> list[str]:
    """Names :func:`make_calibrator` accepts besides ``module:Class`` specs: built-ins and plugins.

    >>> {"periodic", "kalman", "oracle"} <= set(known_calibrators())
    True
    """
    return sorted(set(CALIBRATORS) | set(plugin_calibrators()))


# ---------------------------------------------------------------- module:Class specs
def load_class_spec(spec: str, label: str | None = None) -> Any:
    """The object a ``module:attr`` or ``path/to/file.py:attr`` spec names (not yet checked).

    Args:
        spec: ``"pkg.module:Class"`` (``Class`` may be dotted, ``Outer.Inner``) or a Python file
            ``"path/to/file.py:Class"`` (relative to the working directory; imported once).
        label: how error messages name what is loaded (default: ``repr(spec)``).

    Returns:
        The attribute, usually a class.

    Raises:
        ConfigError: naming ``spec``: malformed, module or file not found, import failed, or the
            attribute missing (with the classes the module does define).
    """
    label = repr(spec) if label is None else label
    return load_object(spec, f"calibrator {label}", "Class", prefix="_bprl_calibrator")


def _check_policy_class(obj: Any, label: str) -> type:
    """``obj`` if it is a Calibrator subclass or a class with ``predict``; ConfigError otherwise."""
    if not inspect.isclass(obj):
        raise ConfigError(
            f"calibrator {label}: expected a class, got {type(obj).__name__} {obj!r}; it must subclass "
            "bprl.policies.Calibrator or satisfy the Policy protocol (predict() and a name)"
        )
    if issubclass(obj, Calibrator) or callable(getattr(obj, "predict", None)):
        return obj
    raise ConfigError(
        f"calibrator {label}: class {obj.__qualname__} neither subclasses bprl.policies.Calibrator "
        "nor has a predict() method (the Policy protocol)"
    )


# --------------------------------------------------------------------- resolution
def resolve_calibrator(name: str) -> type:
    """The policy class a calibrator name stands for, without instantiating it.

    Args:
        name: a built-in name (:data:`CALIBRATORS`), a ``module:Class`` / ``file.py:Class`` spec,
            or the name of a plugin registered under :data:`ENTRY_POINT_GROUP`.

    Returns:
        A :class:`Calibrator` subclass or a class satisfying the :class:`Policy` protocol.

    Raises:
        ConfigError: unknown name (listing the valid ones), or a spec / plugin that cannot be
            imported or does not name a policy class.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"calibrator: expected a non-empty name, got {name!r}")
    if name in CALIBRATORS:
        plugin_calibrators()  # only to warn when an installed plugin claims a built-in name
        return CALIBRATORS[name]["class"]
    if ":" in name:
        return _check_policy_class(load_class_spec(name), repr(name))
    plugins = plugin_calibrators()
    if name in plugins:
        ep = plugins[name]
        what = f"{name!r} (plugin {_origin(ep)})"
        return _check_policy_class(load_class_spec(f"{ep.module}:{ep.attr}", what), what)
    raise ConfigError(
        f"calibrator: unknown name {name!r}; valid: {sorted(CALIBRATORS) + sorted(plugins)}; "
        "or a 'module:Class' / 'path/to/file.py:Class' spec"
    )


def _accepts_action_type(cls: type) -> bool:
    """Whether a (non-Calibrator) policy class's constructor takes ``action_type``."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "action_type" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def make_calibrator(name: str, action_type: str = "discrete", **params: Any) -> Policy:
    """A calibration policy by name, ``module:Class`` spec or plugin name.

    Args:
        name: see :func:`resolve_calibrator`.
        action_type: ``"discrete"`` or ``"continuous"``, the environment's; passed to a
            :class:`Calibrator` always, to another policy class when its constructor takes it.
        **params: the class's parameters (an experiment file's ``params:``), with units in
            their names (``period_min``, ``pat_threshold_ms``).

    Returns:
        The policy (a :class:`Calibrator` for every built-in).

    Raises:
        ConfigError: unknown name, unusable spec or plugin, unknown or invalid parameter, or an
            object without a ``name`` and ``predict()``.

    >>> make_calibrator("periodic", period_min=15).period_min
    15.0
    >>> make_calibrator("bprl.policies.calibrators:DriftCalibrator", action_type="continuous").name
    'drift'
    >>> make_calibrator("pid")
    Traceback (most recent call last):
    ...
    bprl.errors.ConfigError: calibrator: unknown name 'pid'; valid: [...'kalman'...]; or a 'module:Class' ...
    """
    cls = resolve_calibrator(name)
    kwargs = dict(params)
    if issubclass(cls, Calibrator) or _accepts_action_type(cls):
        kwargs["action_type"] = action_type
    try:
        policy = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"calibrator {name!r}: bad parameters {sorted(params)}: {exc}") from None
    if not isinstance(policy, Policy):
        raise ConfigError(
            f"calibrator {name!r}: {cls.__qualname__} instances have no 'name' attribute; the Policy "
            "protocol needs one (the default policy label in episode logs)"
        )
    return policy
