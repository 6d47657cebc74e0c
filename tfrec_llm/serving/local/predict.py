"""Predict plumbing of the local server: request checks, TensorProto <-> numpy, signature calls.

Status codes and messages follow TF Serving: ``FAILED_PRECONDITION`` ``Serving signature key
"x" not found.``, ``INVALID_ARGUMENT`` for inputs (missing inputs are filled from
``SignatureDef.defaults``; dtype and rank are checked against the signature before the call).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

from tfrec_llm.serving.local.batching import BatchRefused, BatchScheduler, batch_key
from tfrec_llm.serving.tensors import to_ndarray, to_tensor_proto

__all__ = [
    "DEFAULT_SIGNATURE",
    "RequestStatusError",
    "Servable",
    "ServingBackend",
    "check_metadata_request",
    "metadata_response",
    "predict_on",
    "prepare_arrays",
    "prepare_inputs",
]

DEFAULT_SIGNATURE = "serving_default"
_CODE_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


class RequestStatusError(Exception):
    """A failed request: a gRPC status code and TF Serving-style message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Servable:
    """One loaded version of a model.

    Attributes:
        name: Model name.
        version: Version number (the folder name).
        path: The version folder.
        model: The loaded SavedModel object; keeps the functions alive.
        signature_defs: Signature name -> SignatureDef of the ``serve`` meta graph.
        functions: Signature name -> concrete function.
        load_seconds: Seconds the load, warmup included, took.
        default_tensors: (signature, alias) -> tensor of a ``SignatureDef.defaults`` value,
            converted once (filled by the first request that uses it).
    """

    name: str
    version: int
    path: str
    model: Any
    signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
    functions: Mapping[str, Callable[..., Mapping[str, tf.Tensor]]]
    load_seconds: float
    default_tensors: dict[tuple[str, str], tf.Tensor] = field(default_factory=dict, compare=False, repr=False)


class ServingBackend(Protocol):
    """What the gRPC and REST frontends call (implemented by ``LocalModelServer``)."""

    def resolve(self, model_spec: Any) -> Servable: ...

    def predict(self, request: Any, timeout_s: float | None = None) -> Any: ...

    def get_model_metadata(self, request: Any) -> Any: ...

    def get_model_status(self, request: Any) -> Any: ...


def _dtype_name(enum: int) -> str:
    return str(tf.dtypes.as_dtype(enum).name) if enum else "invalid"


def _expected_shape(info: meta_graph_pb2.TensorInfo) -> list[int] | None:
    if info.tensor_shape.unknown_rank:
        return None
    return [int(d.size) for d in info.tensor_shape.dim]


def prepare_inputs(signature: Any, request_inputs: Mapping[str, Any]) -> dict[str, tf.Tensor]:
    """Validates request inputs against a SignatureDef, fills defaults, returns tensors.

    Raises:
        RequestStatusError: ``INVALID_ARGUMENT`` on extra, missing, mistyped or misshaped inputs.
    """
    arrays, _ = prepare_arrays(signature, request_inputs)
    return {a: tf.constant(v, dtype=tf.dtypes.as_dtype(signature.inputs[a].dtype)) for a, v in arrays.items()}


def prepare_arrays(
    signature: Any, request_inputs: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, bool]]:
    """Validates request inputs against a SignatureDef and fills defaults.

    Returns:
        Input alias -> numpy array, and alias -> whether the request sent it (else a default).

    Raises:
        RequestStatusError: ``INVALID_ARGUMENT`` on extra, missing, mistyped or misshaped inputs.
    """
    sig_inputs, defaults = signature.inputs, signature.defaults
    req, expected = sorted(request_inputs), sorted(sig_inputs)
    if len(req) > len(expected) or (len(req) < len(expected) and not defaults):
        extra = sorted(set(req) - set(expected))
        missing = sorted(set(expected) - set(req))
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input size does not match signature: {len(req)}!={len(expected)} "
            f"len({{{','.join(req)}}}) != len({{{','.join(expected)}}}). Sent extra: "
            f"{{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.",
        )
    arrays, sent = {}, {}
    for index, alias in enumerate(expected):
        info = sig_inputs[alias]
        if alias in request_inputs:
            proto, from_request = request_inputs[alias], True
        elif alias in defaults:
            proto, from_request = defaults[alias], False
        else:
            raise RequestStatusError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Signature input alias: {alias}(feed name: {info.name}) not found in request "
                f"and no default value provided. Inputs expected to be in the request "
                f"{{{','.join(req)}}}, or default input alias set: {','.join(sorted(defaults))}",
            )
        if from_request and proto.dtype != info.dtype:
            raise RequestStatusError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Expects arg[{index}] to be {_dtype_name(info.dtype)} but "
                f"{_dtype_name(proto.dtype)} is provided (input alias '{alias}').",
            )
        try:
            array = to_ndarray(proto)
        except Exception:
            raise RequestStatusError(
                grpc.StatusCode.INVALID_ARGUMENT, f"tensor parsing error: {alias}"
            ) from None
        want = _expected_shape(info)
        if (
            from_request
            and want is not None
            and (
                len(want) != array.ndim
                or any(w >= 0 and w != got for w, got in zip(want, array.shape, strict=True))
            )
        ):
            raise RequestStatusError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{alias}' has shape {list(array.shape)} (rank {array.ndim}) but the "
                f"signature expects shape {want} (rank {len(want)}; -1 = any size).",
            )
        arrays[alias], sent[alias] = array, from_request
    unknown = sorted(set(req) - set(expected))
    if unknown:
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Inputs contains invalid name. Used request inputs: "
            f"{','.join(a for a in req if a in sig_inputs)}, request input: {','.join(req)}",
        )
    return arrays, sent


def _output_aliases(signature: Any, output_filter: Any) -> list[str]:
    if not output_filter:
        return sorted(signature.outputs)
    seen: list[str] = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise RequestStatusError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{','.join(sorted(signature.outputs))}}}.",
            )
        if alias in seen:
            raise RequestStatusError(
                grpc.StatusCode.INVALID_ARGUMENT, f"duplicate output tensor alias: {alias}"
            )
        seen.append(alias)
    return seen


def _tensors(
    servable: Servable,
    sig_name: str,
    signature: Any,
    arrays: Mapping[str, np.ndarray],
    defaulted: frozenset[str],
) -> dict[str, tf.Tensor]:
    tensors = {}
    for alias, array in arrays.items():
        key = (sig_name, alias)
        tensor = servable.default_tensors.get(key) if alias in defaulted else None
        if tensor is None:
            tensor = tf.constant(array, dtype=tf.dtypes.as_dtype(signature.inputs[alias].dtype))
            if alias in defaulted:
                servable.default_tensors[key] = tensor
        tensors[alias] = tensor
    return tensors


def _call(
    function: Callable[..., Mapping[str, tf.Tensor]], inputs: Callable[[], dict[str, tf.Tensor]]
) -> dict[str, np.ndarray]:
    try:
        outputs = function(**inputs())
        return {k: v.numpy() for k, v in outputs.items()}
    except tf.errors.OpError as exc:
        code = _CODE_BY_VALUE.get(exc.error_code, grpc.StatusCode.INTERNAL)
        raise RequestStatusError(code, exc.message) from None
    except (TypeError, ValueError) as exc:
        raise RequestStatusError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None


def predict_on(
    servable: Servable,
    request: Any,
    executor: futures.Executor | None,
    timeout_s: float | None,
    batcher: BatchScheduler | None = None,
) -> Any:
    """Answers a ``PredictRequest`` with one servable.

    Args:
        servable: The resolved model version.
        request: The ``PredictRequest``.
        executor: Runs the signature call (so a deadline can be kept); ``None`` runs it inline.
        timeout_s: The caller's deadline; ``None`` waits as long as the call takes.
        batcher: Merges this request with concurrent ones of the same servable and signature
            (``--enable_batching``); requests it cannot merge run as without it.

    Returns:
        The ``PredictResponse``.

    Raises:
        RequestStatusError: ``FAILED_PRECONDITION`` (unknown signature), ``INVALID_ARGUMENT``,
            ``DEADLINE_EXCEEDED``, ``UNAVAILABLE`` (shutting down) or the op's own code.
    """
    sig_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(sig_name)
    function = servable.functions.get(sig_name)
    if signature is None or function is None:
        raise RequestStatusError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f'Serving signature key "{sig_name}" not found.',
        )
    arrays, sent = prepare_arrays(signature, request.inputs)
    aliases = _output_aliases(signature, request.output_filter)
    defaulted = frozenset(a for a, s in sent.items() if not s)

    def call(merged: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _call(function, lambda: _tensors(servable, sig_name, signature, merged, defaulted))

    spec = batch_key(arrays, sent) if batcher is not None else None
    if batcher is not None and spec is not None and spec.rows <= batcher.params.max_batch_size:
        try:  # the key holds id(servable): a queued batch keeps its servable alive
            future = batcher.submit((id(servable), sig_name, spec.key), call, arrays, spec)
        except BatchRefused as exc:
            raise RequestStatusError(exc.code, exc.message) from None
        outputs = _result(future, timeout_s)
    elif executor is None:
        outputs = call(arrays)
    else:
        try:
            future = executor.submit(call, arrays)
        except RuntimeError:  # shut down between lookup and submit
            raise RequestStatusError(grpc.StatusCode.UNAVAILABLE, "The server is shutting down.") from None
        outputs = _result(future, timeout_s)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = sig_name
    for alias in aliases:
        response.outputs[alias].CopyFrom(to_tensor_proto(outputs[alias]))
    return response


def _result(future: futures.Future, timeout_s: float | None) -> dict[str, np.ndarray]:
    try:
        return future.result(timeout=timeout_s)
    except futures.TimeoutError:
        future.cancel()  # a request still queued for a batch is dropped from it
        raise RequestStatusError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
    except BatchRefused as exc:
        raise RequestStatusError(exc.code, exc.message) from None


def check_metadata_request(request: Any) -> None:
    """Raises ``INVALID_ARGUMENT`` unless the request asks for exactly ``signature_def``."""
    if not request.metadata_field:
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "GetModelMetadataRequest must specify at least one metadata_field",
        )
    for name in request.metadata_field:
        if name != "signature_def":
            raise RequestStatusError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {name} is not supported"
            )


def metadata_response(servable: Servable) -> Any:
    """The ``GetModelMetadataResponse`` of a servable (its ``SignatureDefMap``)."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata["signature_def"].Pack(signature_map)
    return response
