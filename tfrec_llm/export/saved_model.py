"""Atomic, versioned SavedModel writing in TF Serving's layout ``<base>/<model_name>/<version>/``.

A model server polls ``<base>/<model_name>`` and loads the highest integer folder. We write
the new version into a hidden temporary folder beside it (same file system), run the checks
there, and only then ``os.rename`` it to its integer name, so a server never sees a
half-written version and a failed export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping

import tensorflow as tf

from tfrec_llm.errors import ExportError

logger = logging.getLogger(__name__)


def _without_keras_traces() -> contextlib.AbstractContextManager[None]:
    """Saves without tf-keras's own traces of every layer's ``call`` (``save_traces=False``).

    A serving module holds Keras layers (the query tower, BERT), and tf-keras traces each of
    them into the SavedModel for Keras's own reloading, which nothing here uses: the served
    graph is the module's signatures, and weights reload through ``load_weights``. Those traces
    were about half of every export's time (BERT has ~100 layers). tf-keras exposes the switch
    only as ``keras.saving.save_model(..., save_traces=False)`` for Keras models; for a
    ``tf.Module`` its option scope is the way, and without it (another tf-keras) saving simply
    keeps the traces.
    """
    try:
        from tf_keras.src.saving.legacy.saved_model import utils as keras_saved_model_utils
    except ImportError:  # pragma: no cover - another tf-keras layout: save as before
        return contextlib.nullcontext()
    return keras_saved_model_utils.keras_option_scope(save_traces=False, in_tf_saved_model_scope=True)


def next_version(model_base: str) -> int:
    """A new version number: unix seconds, or one past the highest existing version if larger."""
    existing = [int(n) for n in os.listdir(model_base) if n.isdigit()] if os.path.isdir(model_base) else []
    return max([int(time.time()), *(v + 1 for v in existing)])


def write_saved_model(
    module: tf.Module,
    signatures: Mapping[str, Callable],
    export_dir: str,
    model_name: str,
    version: int | None = None,
    before_publish: Callable[[str], None] | None = None,
) -> str:
    """Saves ``module`` to ``<export_dir>/<model_name>/<version>/`` atomically.

    Args:
        module: The serving module.
        signatures: Signature name -> tf.function (with an input signature).
        export_dir: Base folder holding one folder per model.
        model_name: Model folder name (the name clients ask for).
        version: Version number; default ``next_version``.
        before_publish: Called with the temporary folder after saving and before the rename
            (write warmup requests, run the op scan); raising aborts the export.

    Returns:
        The published version folder.

    Raises:
        ExportError: the version exists already, or saving or a check failed (nothing is
            left behind).
    """
    model_base = os.path.join(export_dir, model_name)
    os.makedirs(model_base, exist_ok=True)
    version = next_version(model_base) if version is None else int(version)
    final = os.path.join(model_base, str(version))
    if os.path.exists(final):
        raise ExportError(f"{final} exists already; versions are immutable, pass another version")
    tmp = os.path.join(model_base, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with _without_keras_traces():
            tf.saved_model.save(module, tmp, signatures=dict(signatures))
        if before_publish is not None:
            before_publish(tmp)
        os.rename(tmp, final)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, ExportError):
            raise
        raise ExportError(f"exporting {model_name!r} version {version} failed: {e}") from e
    logger.info("exported %s", final)
    return final
