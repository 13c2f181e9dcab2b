"""Validation of the environment's settings models with the messages bprl has always given.

:class:`bprl.envs.cuff.CuffModel` and :class:`bprl.envs.params.EnvParams` are pydantic
:class:`bprl.config.Spec` models; their base :class:`SettingsSpec` turns pydantic's errors into one
:class:`~bprl.errors.ConfigError` whose lines name the field and say what it must be
(``cuff.sd_sbp_mmhg: must be a finite number >= 0, got -1``), as the hand-written checks these
models replaced did (:meth:`SettingsSpec.checked`).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from bprl.config import Spec
from bprl.errors import ConfigError


def _requirement(model: type[BaseModel], name: str) -> str:
    """What a field's value must be, in words, from its annotation and bounds."""
    field = model.model_fields[name]
    args = typing.get_args(field.annotation)
    nullable = type(None) in args
    base = next((a for a in args if a is not type(None)), field.annotation) if args else field.annotation
    what = {float: "a finite number", int: "an integer", bool: "true or false", str: "a string"}.get(
        base, getattr(base, "__name__", str(base))
    )
    for meta in field.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">=")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                what += f" {sym} {bound:g}"
    return f"must be {what}" + (" or null" if nullable else "")


def _message(model: type[BaseModel], err: Mapping[str, Any], prefix: str) -> str:
    """One pydantic error as ``prefix + field: what it must be, got value``."""
    loc = ".".join(str(x) for x in err["loc"])
    value = err.get("input")
    if err["type"] == "literal_error":
        choices = typing.get_args(model.model_fields[str(err["loc"][0])].annotation)
        return f"{prefix}{loc}: {value!r} is not one of {choices}"
    if err["type"] == "value_error" or not loc:  # a model validator's own message
        return str(err.get("ctx", {}).get("error", err["msg"]))
    if err["loc"][0] in model.model_fields:
        return f"{prefix}{loc}: {_requirement(model, str(err['loc'][0]))}, got {value!r}"
    return f"{prefix}{loc}: {err['msg']}, got {value!r}"


def settings_error(model: type[BaseModel], exc: ValidationError, prefix: str = "") -> ConfigError:
    """A ConfigError with one line per invalid field of ``exc`` (``prefix`` before the field names)."""
    lines = [_message(model, err, prefix) for err in exc.errors()]
    return ConfigError("; ".join(dict.fromkeys(lines)))


def check_known_fields(model: type[BaseModel], data: Mapping[str, Any], prefix: str = "") -> None:
    """ConfigError ``<prefix without its dot>: unknown field(s) [...]; valid: [...]`` for unknown keys."""
    unknown = sorted(str(k) for k in data if k not in model.model_fields)
    if unknown:
        where = prefix.rstrip(".") or "settings"
        raise ConfigError(f"{where}: unknown field(s) {unknown}; valid: {sorted(model.model_fields)}")


class SettingsSpec(Spec):
    """A frozen :class:`~bprl.config.Spec` with :meth:`checked`, which raises ConfigError naming the field.

    The environments build their settings with ``Model.checked(**kwargs)``:
    :class:`~bprl.errors.ConfigError` with one line per invalid field, each prefixed with
    :attr:`error_prefix`, in the words of the hand-written checks these models replaced. Plain
    ``Model(**kwargs)`` and :func:`bprl.config.load_spec` validate the same way but report as
    pydantic does (so that a spec nesting these models names the file and the full field path).
    """

    model_config = ConfigDict(frozen=True)

    #: put before field names in error messages (``"cuff."``)
    error_prefix: ClassVar[str] = ""

    @classmethod
    def checked(cls, **data: Any) -> Self:
        """The model validated from ``data``.

        Raises:
            ConfigError: naming every unknown or invalid field.
        """
        check_known_fields(cls, data, cls.error_prefix)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise settings_error(cls, exc, cls.error_prefix) from None
