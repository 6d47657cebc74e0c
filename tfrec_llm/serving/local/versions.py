"""TF Serving version folders: which ``<base_path>/<int>/`` folders count, and which to serve.

A folder counts when its name is a non-negative integer (so never ``tmp...`` or ``.x``) and it
holds ``saved_model.pb`` (or ``saved_model.pbtxt``): the exporter writes a version aside and
renames it into place, so a half-written folder is never picked up.
"""

from __future__ import annotations

import os

from tfrec_llm.export.models_config import ModelEntry

__all__ = ["aspired_versions", "list_version_folders", "version_folders"]

_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def version_folders(base_path: str) -> dict[int, str]:
    """Version -> folder path of the complete version folders under ``base_path``.

    Args:
        base_path: A model's folder; missing is fine (no versions yet).

    Returns:
        ``{version: path}``, empty when ``base_path`` does not exist.
    """
    if not os.path.isdir(base_path):
        return {}
    versions = {}
    for entry in os.scandir(base_path):
        name = entry.name
        if name.startswith(".") or name.lower().startswith("tmp"):
            continue
        if not (name.isascii() and name.isdigit()):
            continue
        if not entry.is_dir():
            continue
        if any(os.path.isfile(os.path.join(entry.path, f)) for f in _SAVED_MODEL_FILES):
            versions[int(name)] = entry.path
    return versions


def list_version_folders(base_path: str) -> list[int]:
    """Returns the versions of the complete version folders under ``base_path``, ascending.

    A folder counts when its name is a non-negative integer (so never ``tmp...`` or ``.x``) and
    it holds ``saved_model.pb`` (or ``saved_model.pbtxt``).
    """
    return sorted(version_folders(base_path))


def aspired_versions(entry: ModelEntry, available: list[int]) -> list[int]:
    """The versions a model's version policy wants served, out of the ``available`` ones.

    Args:
        entry: The model, with its policy: ``latest`` (newest ``num_versions``), ``all`` or
            ``specific`` (``entry.versions``).
        available: The complete version folders.

    Returns:
        The versions to load, ascending.
    """
    if entry.policy == "all":
        return sorted(available)
    if entry.policy == "specific":
        return [v for v in sorted(available) if v in set(entry.versions)]
    return sorted(available)[-entry.num_versions :] if available else []
