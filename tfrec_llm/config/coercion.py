"""Turning parsed YAML into typed config dataclasses: type coercion and unknown-key errors.

Pure functions over dataclass type hints; they know nothing of the experiment sections, so both
the checks (which coerce ``tune.space`` choice values) and the YAML loader use them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from tfrec_llm.errors import ConfigError


def field_types(cls: type) -> dict[str, Any]:
    """The resolved type hints of a dataclass's fields."""
    return typing.get_type_hints(cls)


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Converts a YAML value to the annotated field type.

    Args:
        value: The parsed YAML value.
        annotation: The field's type (``int``, ``tuple[str, ...]``, a dataclass, ...).
        where: Dotted field name for messages, e.g. ``train.epochs``.

    Returns:
        The value as the field's type.

    Raises:
        ConfigError: When the value does not fit the type, naming the field.
    """
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return build(annotation, value, where)
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return _coerce_tuple(value, typing.get_args(annotation), where)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(annotation):
            return None
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if annotation is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            converted = annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}") from None
        if annotation is int and isinstance(value, float) and value != converted:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return converted
    if annotation is str:
        if value is None:
            return ""
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _coerce_tuple(value: Any, args: tuple[Any, ...], where: str) -> tuple[Any, ...]:
    """A list (or a mapping, as its items) as a tuple of the annotated element types."""
    if isinstance(value, Mapping):
        value = list(value.items())
    elif isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    value = list(value)
    if len(value) != len(args):
        raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
    return tuple(coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))


def build(cls: Any, values: Mapping[str, Any], where: str) -> Any:
    """Builds dataclass ``cls`` from a mapping; missing keys take defaults.

    Raises:
        ConfigError: On a key that is not a field (listing the valid ones) or a value of the
            wrong type.
    """
    hints = field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(key) for key in set(values) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key(s) {[prefix + u for u in unknown]}; valid keys in "
            f"{where or 'the top level'}: {names}"
        )
    kwargs = {
        name: coerce(values[name], hints[name], f"{where}.{name}" if where else name)
        for name in names
        if name in values
    }
    return cls(**kwargs)
