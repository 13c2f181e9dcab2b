"""Loading user code named in a spec: ``module:attr`` and ``path/to/file.py:attr`` (extension points).

Calibration policies (:mod:`bprl.policies.registry`) and reward functions
(:mod:`bprl.envs.rewards`) can be named in experiment and env files by a ``module:attr`` spec,
by a Python file ``path/to/file.py:attr``, or by a plugin's entry point. This module is the one
loader behind both; each error is a :class:`~bprl.errors.ConfigError` that starts with ``what``
(e.g. ``calibrator 'my_pkg.rules:MyRule'``) and says which step failed.

>>> load_object("math:pi", "constant 'math:pi'", "Name") > 3.14
True
>>> load_object("math", "constant 'math'", "Name")
Traceback (most recent call last):
...
bprl.errors.ConfigError: constant 'math': expected 'module:Name' or 'path/to/file.py:Name'
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

from bprl.errors import ConfigError

__all__ = ["import_file", "import_module", "load_object"]


def import_file(path_text: str, what: str, prefix: str = "_bprl_plugin") -> ModuleType:
    """Import a Python file as a module once (later calls return the same module object)."""
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"{what}: file {path} not found")
    name = f"{prefix}_{path.stem}_{zlib.crc32(str(path).encode()):08x}"
    if name in sys.modules:
        return sys.modules[name]
    file_spec = importlib.util.spec_from_file_location(name, path)
    if file_spec is None or file_spec.loader is None:
        raise ConfigError(f"{what}: {path} is not an importable Python file")
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[name] = module  # before running it, as the import system does (dataclasses need it)
    try:
        file_spec.loader.exec_module(module)
    except (ImportError, SyntaxError) as exc:
        del sys.modules[name]
        raise ConfigError(f"{what}: importing {path} failed: {exc}") from exc
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_module(module: str, what: str, attr_kind: str = "Class") -> ModuleType:
    """Import a dotted module; ConfigError saying whether it or one of its imports is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            raise ConfigError(
                f"{what}: module {module!r} not found (is its package installed, or its folder on "
                f"PYTHONPATH? a file can be given as 'path/to/file.py:{attr_kind}')"
            ) from exc
        raise ConfigError(f"{what}: importing module {module!r} failed: {exc}") from exc
    except (ImportError, SyntaxError) as exc:
        raise ConfigError(f"{what}: importing module {module!r} failed: {exc}") from exc


def load_object(spec: str, what: str, attr_kind: str = "Class", prefix: str = "_bprl_plugin") -> Any:
    """The object a ``module:attr`` or ``path/to/file.py:attr`` spec names (not yet type-checked).

    Args:
        spec: ``"pkg.module:Attr"`` (``Attr`` may be dotted, ``Outer.Inner``) or a Python file
            ``"path/to/file.py:Attr"`` (relative to the working directory; imported once).
        what: how error messages name what is loaded, e.g. ``"calibrator 'x:Y'"``.
        attr_kind: the word for the attribute in messages (``Class``, ``function``).
        prefix: prefix of the module name under which a file is imported.

    Raises:
        ConfigError: starting with ``what``: malformed spec, module or file not found, import
            failed, or attribute missing (with the classes the module does define).
    """
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr:
        raise ConfigError(f"{what}: expected 'module:{attr_kind}' or 'path/to/file.py:{attr_kind}'")
    is_path = module_part.endswith(".py") or "/" in module_part or "\\" in module_part
    module = (
        import_file(module_part, what, prefix) if is_path else import_module(module_part, what, attr_kind)
    )
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            defined = sorted(
                k for k, v in vars(module).items() if inspect.isclass(v) and v.__module__ == module.__name__
            )
            hint = f" (classes defined there: {', '.join(defined) or 'none'})" if attr_kind == "Class" else ""
            raise ConfigError(f"{what}: {module_part!r} has no attribute {attr!r}{hint}")
        obj = getattr(obj, part)
    return obj
