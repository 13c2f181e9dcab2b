"""The one configuration layer: a pydantic base for every spec, YAML loading and readable errors.

Every spec in bprl (experiment, cohort, features, estimator training, environment, cuff, agent)
is a subclass of :class:`Spec`: unknown keys are errors, every field carries a description (with
its unit in the field name), and the same model validates a YAML file and Python keyword
arguments. :func:`load_spec` reads either; :func:`format_validation_error` turns pydantic's error
into one line per field, naming the file.

>>> from pydantic import Field
>>> class Demo(Spec):
...     hours: float = Field(1.0, gt=0, le=48, description="recording length per subject, h")
>>> load_spec(Demo, {"hours": 2}).hours
2.0
>>> load_spec(Demo, {"hourz": 2}, source_name="demo.yaml")
Traceback (most recent call last):
...
bprl.errors.ConfigError: demo.yaml: invalid Demo
  hourz: unknown field
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from bprl.errors import ConfigError

__all__ = ["Spec", "SpecT", "format_validation_error", "load_spec", "read_yaml", "spec_reference_table"]


class Spec(BaseModel):
    """Base of every bprl spec: unknown fields are errors; values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


SpecT = TypeVar("SpecT", bound=BaseModel)


def format_validation_error(exc: ValidationError, source: str, what: str) -> str:
    """One line per invalid field: ``source: invalid what`` then ``  field.path: problem (got value)``.

    A model validator's own message is shown as it is; a scalar input that failed a type or bound
    check is shown after the problem.
    """
    lines = [f"{source}: invalid {what}"]
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field missing"
        elif isinstance(err.get("input"), bool | int | float | str) and not err["type"].startswith(
            "value_error"
        ):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"  {loc.rstrip('.')}: {msg}")
    return "\n".join(lines)


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML mapping read with ``yaml.safe_load``; ConfigError naming the file otherwise."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level, got {type(data).__name__}")
    return dict(data)


def load_spec(
    model: type[SpecT],
    source: SpecT | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    source_name: str | None = None,
    **overrides: Any,
) -> SpecT:
    """Validate ``source`` (a model, a mapping, a YAML path or None for defaults) plus ``overrides``.

    Raises:
        ConfigError: naming ``source_name`` (or the file) and every invalid field.
    """
    name = source_name or "settings"
    if isinstance(source, model) and not overrides:
        return source
    if isinstance(source, BaseModel):
        data: dict[str, Any] = source.model_dump()
    elif isinstance(source, str | os.PathLike):
        data = read_yaml(source)
        name = source_name or str(source)
    elif source is None:
        data = {}
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        raise ConfigError(
            f"{name}: expected a mapping, a YAML path or {model.__name__}, got {type(source).__name__}"
        )
    data.update(overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, name, model.__name__)) from None


def spec_reference_table(model: type[BaseModel]) -> str:
    """A Markdown table of ``model``'s fields: name, type, default, constraints and description.

    The docs' configuration reference is generated with this, so it cannot drift from the code.
    """
    rows = ["| field | type | default | constraints | description |", "| --- | --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        ann = field.annotation
        type_name = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
        if field.is_required():
            default = "required"
        elif field.default_factory is not None:
            default = "`" + repr(field.default_factory()) + "`"
        else:
            default = "`" + repr(field.default) + "`"
        cons = []
        for meta in field.metadata:
            for attr, sym in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
                val = getattr(meta, attr, None)
                if val is not None:
                    cons.append(f"{sym} {val}")
            for attr in ("min_length", "max_length", "pattern"):
                val = getattr(meta, attr, None)
                if val is not None:
                    cons.append(f"{attr} {val}")
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        type_name = type_name.replace("|", "\\|")
        rows.append(
            f"| `{name}` | {type_name} | {default.replace('|', chr(92) + '|')} | {', '.join(cons)} | {desc} |"
        )
    return "\n".join(rows) + "\n"
