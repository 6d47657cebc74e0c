"""The one YAML loader and dumper of experiment configs.

``load_config`` reads YAML, rejects unknown keys (listing the valid ones) and applies
``section.field=value`` overrides; ``dump_config`` writes the config back so that
``load(dump(c)) == c`` and ``dump(load(x)) == x`` for a dumped ``x``.

Example:
    >>> cfg = load_config("pipelines/movielens_100k.yaml", overrides=["train.epochs=3"])
    >>> cfg.train.epochs
    3
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from tfrec_llm.atomic_io import write_text
from tfrec_llm.config.coercion import build
from tfrec_llm.config.sections import ExperimentConfig
from tfrec_llm.errors import ConfigError


def config_from_dict(values: Mapping[str, Any]) -> ExperimentConfig:
    """Builds a validated config from a nested mapping (missing keys take defaults).

    Raises:
        ConfigError: Unknown key (listing the valid ones), wrong type or invalid value.
    """
    return build(ExperimentConfig, values or {}, "")  # type: ignore[no-any-return]


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Returns the config as nested plain dicts/lists (YAML-ready)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = config_to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = [_plain(v) for v in value]
        else:
            out[f.name] = value
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return config_to_dict(value)
    return list(value) if isinstance(value, tuple) else value


def apply_overrides(values: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Applies ``section.field=value`` overrides (value parsed as YAML) to a nested dict copy.

    Raises:
        ConfigError: An override without ``=``, or one that descends into a non-section.
    """
    result: dict[str, Any] = yaml.safe_load(yaml.safe_dump(values)) or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.field=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = result
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {key!r} is not a section")
        node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return result


def load_config(
    path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = ()
) -> ExperimentConfig:
    """Loads a YAML config file (or the defaults when ``path`` is None) plus overrides.

    Args:
        path: YAML file. None gives the built-in defaults (MovieLens-100K + MiniLM).
        overrides: ``section.field=value`` strings, applied after the file.

    Returns:
        The validated ExperimentConfig.

    Raises:
        ConfigError: Unreadable file or folder, unknown key, wrong type or invalid value.
    """
    values: dict[str, Any] = {}
    if path is not None:
        values = _read_yaml(os.fspath(path))
    values = apply_overrides(values, overrides)
    return config_from_dict(values)


def _read_yaml(path: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file."""
    if os.path.isdir(path):
        raise ConfigError(
            f"config file {path!r} is a directory; expected a YAML file, e.g. "
            "pipelines/movielens_100k.yaml. Pass the file inside it."
        )
    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} does not exist") from None
    except OSError as e:
        raise ConfigError(f"config file {path!r} cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        message = f"config file {path!r} is not UTF-8 text ({e}); save it as UTF-8"
        raise ConfigError(message) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path!r} is not valid YAML: {e}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping at the top level")
    return values


def dump_config(cfg: ExperimentConfig, path: str | os.PathLike[str] | None = None) -> str:
    """Serialises the config to YAML; writes it atomically to ``path`` when given.

    Returns:
        The YAML text.
    """
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    if path is not None:
        write_text(path, text)
    return text


def replace(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that also accepts ``section__field`` for nested fields.

    All changes are applied before the config is validated, so fields checked against each
    other (``train.monitor`` and ``eval.ks``) can change together.

    Example:
        >>> replace(ExperimentConfig(), train__epochs=3).train.epochs
        3
    """
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in changes.items():
        if "__" in key:
            section, field = key.split("__", 1)
            nested.setdefault(section, {})[field] = value
        else:
            flat[key] = value
    for section, fields in nested.items():
        flat[section] = dataclasses.replace(getattr(cfg, section), **fields)
    return dataclasses.replace(cfg, **flat)
