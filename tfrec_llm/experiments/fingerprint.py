"""What a trained model depends on, and how to say what changed since it was trained.

A run folder records two things when its model is trained (``experiments.runs``):

``training_config.json``
    `training_fingerprint`: the data/text/model/train config sections and ``data_sha256``, a
    hash of the parsed input frames (interactions, items, users). The reuse check compares
    this: any change of the data that reaches the model (an edited, added or removed row, an
    item text, a user profile) makes the run stale, whatever the file looks like.
``data_files.json``
    `file_fingerprints`: size, modification time and SHA-256 of each input file. It is read
    only to explain a stale run ("interactions file ratings.csv changed: 1,204 -> 1,180
    bytes"); a file that was only touched (same content, new mtime) does not make a run stale.

Example:
    >>> fingerprint = training_fingerprint(cfg, prepared)
    >>> files = file_fingerprints(cfg.data)
    >>> stale_reasons(old_fingerprint, fingerprint, old_files, files)
    ['the input data changed: interactions file /data/ratings.csv (1204 -> 1180 bytes, ...)']
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import pandas as pd

from tfrec_llm.config import DataConfig, ExperimentConfig, config_to_dict
from tfrec_llm.config.choices import GENERIC_SOURCES
from tfrec_llm.experiments.prepare import Prepared

DATA_HASH = "data_sha256"
"""The key of the parsed-data hash in a training fingerprint."""

_FILE_ROLES = (("interactions", "path"), ("items", "items_path"), ("users", "users_path"))


_NOT_DECISIVE = {
    "train": ("model_dir", "strategy"),  # strategy: the same model on one device or many (tests/training)
    "text": ("cache_dir", "batch_size"),
}
"""Fields that do not change the trained model: left out of the fingerprint."""


def _decisive(section: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in _NOT_DECISIVE.get(section, ())}


def data_fingerprint(prepared: Prepared) -> str:
    """A hash of the input frames (interactions, items, users) that a model is trained on."""
    digest = hashlib.sha256()
    for frame in (prepared.dataset.interactions, prepared.dataset.items, prepared.dataset.users):
        digest.update(",".join(map(str, frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def training_fingerprint(cfg: ExperimentConfig, prepared: Prepared | None = None) -> dict[str, Any]:
    """What decides a trained model (not where files go): config sections, and the data hash."""
    values = config_to_dict(cfg)
    out: dict[str, Any] = {key: _decisive(key, values[key]) for key in ("data", "text", "model", "train")}
    if prepared is not None:
        out[DATA_HASH] = data_fingerprint(prepared)
    return out


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_fingerprints(data: DataConfig) -> dict[str, dict[str, Any]]:
    """Size, mtime and SHA-256 of each input file of a generic source (csv, parquet, ...).

    Returns:
        role (``interactions``, ``items``, ``users``) -> ``{"path", "bytes", "mtime",
        "sha256"}`` for each configured path that is a file; empty for MovieLens sources.
    """
    if data.source not in GENERIC_SOURCES:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for role, field in _FILE_ROLES:
        path = getattr(data, field)
        if path and os.path.isfile(path):
            stat = os.stat(path)
            out[role] = {
                "path": os.path.abspath(path),
                "bytes": stat.st_size,
                "mtime": stat.st_mtime,
                "sha256": _sha256(path),
            }
    return out


def _when(mtime: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mtime))


def _file_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One phrase per input file whose content differs between two `file_fingerprints`."""
    out = []
    for role, _ in _FILE_ROLES:
        a, b = old.get(role), new.get(role)
        if a is None and b is None:
            continue
        if a is None or b is None:
            out.append(f"{role} file {'added' if a is None else 'removed'}")
        elif a.get("sha256") != b.get("sha256"):
            out.append(
                f"{role} file {b['path']} ({a['bytes']} -> {b['bytes']} bytes, modified "
                f"{_when(a['mtime'])} -> {_when(b['mtime'])})"
            )
    return out


def with_new_fields(old: dict[str, Any]) -> dict[str, Any]:
    """A recorded fingerprint completed with the fields added to the config since it was recorded.

    A new config field is introduced with a default that keeps the old behaviour, so a run
    recorded before the field existed was trained as that default: the field takes it here.
    A field the run did record is never replaced; one that does not decide the model (e.g.
    ``train.strategy``, recorded by some runs) is dropped.
    """
    defaults = training_fingerprint(ExperimentConfig())
    out = dict(old)
    for section, fields in defaults.items():
        if isinstance(fields, dict) and isinstance(old.get(section), dict):
            out[section] = _decisive(section, {**fields, **old[section]})
    return out


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``section.field: old -> new`` for every leaf that differs."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{d}" for d in differences(a, b)]
        elif a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def stale_reasons(
    old: dict[str, Any],
    new: dict[str, Any],
    old_files: dict[str, Any] | None = None,
    new_files: dict[str, Any] | None = None,
) -> list[str]:
    """Why a run recorded with ``old`` does not fit ``new``: settings first, then the data.

    Args:
        old: The recorded `training_fingerprint`.
        new: The current one.
        old_files: The recorded `file_fingerprints` (None: not recorded, an older run).
        new_files: The current ones.

    Returns:
        Phrases such as ``model.embedding_dim: 8 -> 12`` and ``the input data changed:
        interactions file /d/ratings.csv (1204 -> 1180 bytes, ...)``; empty when they match.
    """
    settings = {k: v for k, v in old.items() if k != DATA_HASH}
    reasons = differences(settings, {k: v for k, v in new.items() if k != DATA_HASH})
    if old.get(DATA_HASH) != new.get(DATA_HASH):
        files = _file_changes(old_files, new_files or {}) if old_files else []
        if files:
            reasons.append("the input data changed: " + "; ".join(files))
        elif old_files:
            reasons.append("the input data changed: the files are the same, but are read differently")
        else:
            reasons.append("the input data changed since the model was trained")
    return reasons
