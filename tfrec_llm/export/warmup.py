"""Writes and reads TF Serving warmup requests (``assets.extra/tf_serving_warmup_requests``).

TF Serving replays the requests of this file against a new model version before it marks the
version AVAILABLE, so the first real request does not pay for graph optimisation and lazy
initialisation. The file is a TFRecord of ``tensorflow.serving.PredictionLog`` protos, each
holding a ``predict_log.request``; the server reads at most 1000 records.

Example:
    >>> write_warmup_requests(  # doctest: +SKIP
    ...     "exports/retrieval/1700000000", "retrieval",
    ...     [{"user_id": np.array(["1", "2"])}])
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfrec_llm.errors import ExportError

__all__ = [
    "MAX_WARMUP_RECORDS",
    "WARMUP_DIR",
    "WARMUP_FILENAME",
    "read_warmup_requests",
    "to_tensor_proto",
    "warmup_path",
    "write_warmup_requests",
]

WARMUP_DIR = "assets.extra"
WARMUP_FILENAME = "tf_serving_warmup_requests"
#: TF Serving reads at most this many warmup records (saved_model_warmup_util.cc).
MAX_WARMUP_RECORDS = 1000


def warmup_path(version_dir: str | os.PathLike[str]) -> str:
    """Returns ``<version_dir>/assets.extra/tf_serving_warmup_requests``."""
    return os.path.join(os.fspath(version_dir), WARMUP_DIR, WARMUP_FILENAME)


def to_tensor_proto(value: Any) -> Any:
    """Converts an array-like to a ``TensorProto``; ``str`` values become UTF-8 bytes.

    Args:
        value: A numpy array, list or scalar. Unicode strings are encoded as UTF-8.

    Returns:
        ``tensorflow.TensorProto`` built by ``tf.make_tensor_proto``.
    """
    import tensorflow as tf

    array = np.asarray(value)
    if array.dtype.kind in "UO":
        flat = [v.encode("utf-8") if isinstance(v, str) else v for v in array.ravel().tolist()]
        array = np.array(flat, dtype=object).reshape(array.shape)
    return tf.make_tensor_proto(array)


def write_warmup_requests(
    version_dir: str | os.PathLike[str],
    model_name: str,
    requests: Sequence[Mapping[str, Any]],
    signature_name: str = "serving_default",
) -> str:
    """Writes Predict warmup requests into a SavedModel version folder.

    Args:
        version_dir: The SavedModel version folder (``<base>/<version>/``).
        model_name: The model name written into each request's ``model_spec``.
        requests: One mapping per request: input alias -> array ``[batch, ...]``.
        signature_name: The signature the requests call.

    Returns:
        The path of the written ``tf_serving_warmup_requests`` file.

    Raises:
        ExportError: If the folder is missing, ``requests`` is empty or longer than 1000, or a
            request has no inputs.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    version_dir = os.fspath(version_dir)
    if not os.path.isdir(version_dir):
        raise ExportError(f"version_dir={version_dir!r} does not exist; export the SavedModel first.")
    if not requests or len(requests) > MAX_WARMUP_RECORDS:
        raise ExportError(
            f"requests has {len(requests)} entries; TF Serving replays 1 to "
            f"{MAX_WARMUP_RECORDS} warmup requests. Pass a few representative batches."
        )
    path = warmup_path(version_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for i, inputs in enumerate(requests):
            if not inputs:
                raise ExportError(
                    f"requests[{i}] has no inputs; give at least the required inputs (e.g. user_id)."
                )
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature_name
            for alias, value in inputs.items():
                request.inputs[alias].CopyFrom(to_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir: str | os.PathLike[str]) -> list[Any]:
    """Reads the Predict warmup requests of a SavedModel version folder.

    Args:
        version_dir: The SavedModel version folder.

    Returns:
        The ``PredictRequest`` protos in file order; empty when the folder has no warmup file.

    Raises:
        ExportError: If a record is not a ``PredictionLog`` with a ``predict_log``.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = warmup_path(version_dir)
    if not os.path.isfile(path):
        return []
    requests = []
    for i, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        if not log.HasField("predict_log"):
            raise ExportError(
                f"{path}: record {i} holds a {log.WhichOneof('log_type')!r} log; only "
                "predict_log warmup records are supported."
            )
        requests.append(log.predict_log.request)
    return requests
