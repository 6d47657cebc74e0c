"""Writes and reads TF Serving's ``models.config`` (a ``ModelServerConfig`` text proto).

The file written by :func:`write_models_config` is meant for the ``tensorflow/serving`` image:
every ``base_path`` is the path *inside the container*, ``/models/<name>``, where
``serving/docker-compose.yml`` mounts the export folder. For local use (our
:class:`~tfrec_llm.serving.local.LocalModelServer`, tests) :func:`resolve_base_path` maps
such a path back to ``<config folder>/<name>``; a relative ``base_path`` is read relative to the
config file's folder.

Example:
    >>> path = write_models_config("exports", ["retrieval", "item_encoder"])  # doctest: +SKIP
    >>> [m.name for m in read_models_config(path)]                            # doctest: +SKIP
    ['retrieval', 'item_encoder']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from tfrec_llm.atomic_io import write_text
from tfrec_llm.errors import ConfigError

__all__ = [
    "CONTAINER_MODEL_ROOT",
    "MODELS_CONFIG_FILENAME",
    "ModelEntry",
    "read_models_config",
    "resolve_base_path",
    "write_models_config",
]

MODELS_CONFIG_FILENAME = "models.config"
#: Where serving/docker-compose.yml mounts the export folder inside the tensorflow/serving image.
CONTAINER_MODEL_ROOT = "/models"


@dataclass(frozen=True)
class ModelEntry:
    """One model of a ``models.config``.

    Attributes:
        name: The model name clients ask for.
        base_path: ``base_path`` as written in the file.
        local_path: ``base_path`` resolved on this machine (see :func:`resolve_base_path`).
        policy: ``"latest"``, ``"all"`` or ``"specific"``.
        versions: The versions to serve when ``policy == "specific"``.
        num_versions: How many latest versions to serve when ``policy == "latest"``.
    """

    name: str
    base_path: str
    local_path: str
    policy: str = "latest"
    versions: tuple[int, ...] = ()
    num_versions: int = 1


def resolve_base_path(base_path: str, config_dir: str, container_root: str = CONTAINER_MODEL_ROOT) -> str:
    """Maps a ``base_path`` of ``models.config`` to a folder on this machine.

    Args:
        base_path: The value from the config file.
        config_dir: The folder holding the config file.
        container_root: The container mount point that stands for ``config_dir``.

    Returns:
        ``base_path`` itself when it is absolute and exists; ``<config_dir>/<rest>`` when it
        is ``<container_root>/<rest>`` and does not exist here; ``<config_dir>/<base_path>``
        when it is relative.
    """
    if not os.path.isabs(base_path):
        return os.path.normpath(os.path.join(config_dir, base_path))
    if os.path.exists(base_path):
        return base_path
    root = container_root.rstrip("/") + "/"
    if base_path.startswith(root):
        return os.path.normpath(os.path.join(config_dir, base_path[len(root) :]))
    return base_path


def _policy_text(version_policy: str | Sequence[int]) -> str:
    if isinstance(version_policy, str):
        if version_policy == "latest":
            return "latest { num_versions: 1 }"
        if version_policy == "all":
            return "all {}"
        raise ConfigError(
            f"version_policy={version_policy!r} is not supported; use 'latest', 'all' or a "
            "list of integer versions (specific)."
        )
    versions = list(version_policy)
    if not versions or not all(isinstance(v, int) and v >= 0 for v in versions):
        raise ConfigError(
            f"version_policy={versions!r}: a specific policy needs one or more non-negative "
            "integer versions, e.g. [1700000000]."
        )
    return "specific { " + " ".join(f"versions: {v}" for v in versions) + " }"


def write_models_config(
    export_dir: str | os.PathLike[str],
    model_names: Sequence[str],
    version_policy: str | Sequence[int] = "latest",
    container_root: str = CONTAINER_MODEL_ROOT,
) -> str:
    """Writes ``<export_dir>/models.config`` for the ``tensorflow/serving`` image.

    Args:
        export_dir: The export folder holding one sub-folder per model.
        model_names: The models to serve, e.g. ``["retrieval", "item_encoder"]``.
        version_policy: ``"latest"`` (newest version only, TF Serving's default), ``"all"``,
            or a list of versions to pin (``specific``).
        container_root: Where the export folder is mounted in the container.

    Returns:
        The path of the written file.

    Raises:
        ConfigError: On no or duplicate model names, a name with a slash or quote, or an
            unknown version policy.
    """
    from tensorflow_serving.config import model_server_config_pb2  # noqa: F401 (validates)

    export_dir = os.fspath(export_dir)
    names = list(model_names)
    if not names or len(set(names)) != len(names):
        raise ConfigError(
            f"model_names={names!r}: give one or more distinct model names, e.g. "
            "['retrieval', 'item_encoder']."
        )
    for name in names:
        if not name or any(c in name for c in '/\\"') or name.startswith("."):
            raise ConfigError(
                f"model name {name!r} must be a plain folder name (no slash, quote or leading dot)."
            )
    policy = _policy_text(version_policy)
    lines = [
        "# TensorFlow Serving ModelServerConfig (text proto), written by tfrec_llm.",
        "# base_path values are paths INSIDE the tensorflow/serving container: this folder is",
        f"# mounted at {container_root} (see serving/docker-compose.yml). tfrec_llm's local",
        f"# server maps {container_root}/<name> back to <this folder>/<name>.",
        "model_config_list {",
    ]
    for name in names:
        lines += [
            "  config {",
            f'    name: "{name}"',
            f'    base_path: "{container_root.rstrip("/")}/{name}"',
            '    model_platform: "tensorflow"',
            f"    model_version_policy {{ {policy} }}",
            "  }",
        ]
    lines.append("}")
    os.makedirs(export_dir, exist_ok=True)
    path = os.path.join(export_dir, MODELS_CONFIG_FILENAME)
    write_text(path, "\n".join(lines) + "\n")
    read_models_config(path)  # the file must parse back
    return path


def read_models_config(
    path: str | os.PathLike[str], container_root: str = CONTAINER_MODEL_ROOT
) -> tuple[ModelEntry, ...]:
    """Parses a ``ModelServerConfig`` text proto file.

    Args:
        path: The ``models.config`` file.
        container_root: The container mount point that stands for the config's folder.

    Returns:
        One :class:`ModelEntry` per model, in file order, with ``local_path`` resolved.

    Raises:
        ConfigError: If the file is missing, does not parse, has no ``model_config_list``,
            repeats a name, or names a platform other than ``tensorflow``.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"models config {path!r} does not exist.")
    config = model_server_config_pb2.ModelServerConfig()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ConfigError(f"{path}: not a ModelServerConfig text proto: {exc}") from exc
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError(
            f"{path}: expected a model_config_list {{ config {{ ... }} }} block; custom "
            "model configs are not supported."
        )
    config_dir = os.path.dirname(os.path.abspath(path))
    entries = []
    seen: set[str] = set()
    for model in config.model_config_list.config:
        if not model.name or model.name in seen:
            raise ConfigError(f"{path}: model name {model.name!r} is empty or repeated.")
        seen.add(model.name)
        if model.model_platform not in ("", "tensorflow"):
            raise ConfigError(
                f"{path}: model {model.name!r} has model_platform={model.model_platform!r}; "
                "only 'tensorflow' is supported."
            )
        which = model.model_version_policy.WhichOneof("policy_choice")
        policy_proto = model.model_version_policy
        entries.append(
            ModelEntry(
                name=model.name,
                base_path=model.base_path,
                local_path=resolve_base_path(model.base_path, config_dir, container_root),
                policy=which or "latest",
                versions=tuple(int(v) for v in policy_proto.specific.versions),
                num_versions=max(1, policy_proto.latest.num_versions) if which == "latest" else 1,
            )
        )
    return tuple(entries)
