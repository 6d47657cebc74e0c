"""gRPC client for TF Serving's PredictionService and ModelService (the real server or ours).

The client retries only ``UNAVAILABLE`` (server down or restarting), with exponential backoff
``backoff_s * 2**i`` (:mod:`tfrec_llm.serving.retry`); every other status raises at once as a
typed error from :mod:`tfrec_llm.serving.errors`.

Example:
    >>> client = GrpcClient("localhost", 8500, model_name="retrieval")  # doctest: +SKIP
    >>> client.recommend(["1", "2"], k=5)[0][:2]                         # doctest: +SKIP
    [('50', 4.1), ('181', 3.9)]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
import numpy as np

from tfrec_llm.serving.errors import InvalidRequestError, ServingStatusError, error_for_code
from tfrec_llm.serving.retry import call_with_retry

__all__ = [
    "GrpcClient",
    "Recommendations",
    "coerce_inputs",
    "describe_signatures",
    "recommend_in_batches",
]

#: Per user: (item_id, score) pairs, best first.
Recommendations = list[list[tuple[str, float]]]


def describe_signatures(model_name: str, version: int, signature_map: Any) -> dict[str, Any]:
    """Turns a ``SignatureDefMap`` into plain data.

    Returns:
        ``{"model_name", "version", "signatures": {name: {"method_name", "inputs",
        "outputs", "defaults"}}}`` where inputs/outputs map alias -> ``{"dtype": "string",
        "shape": [-1]}`` (``shape`` is ``None`` for unknown rank) and ``defaults`` lists the
        aliases that may be omitted. Internal signatures (``__saved_model_init_op``) are left out.
    """
    import tensorflow as tf

    def tensors(infos: Any) -> dict[str, Any]:
        out = {}
        for alias in sorted(infos):
            info = infos[alias]
            shape = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
            out[alias] = {"dtype": tf.dtypes.as_dtype(info.dtype).name, "shape": shape}
        return out

    signatures = {}
    for name in sorted(signature_map.signature_def):
        if name.startswith("__"):
            continue
        sig = signature_map.signature_def[name]
        signatures[name] = {
            "method_name": sig.method_name,
            "inputs": tensors(sig.inputs),
            "outputs": tensors(sig.outputs),
            "defaults": sorted(sig.defaults),
        }
    return {"model_name": model_name, "version": int(version), "signatures": signatures}


def _as_array(value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind in "UO":
        flat = [v.encode("utf-8") if isinstance(v, str) else v for v in array.ravel().tolist()]
        array = np.array(flat, dtype=object).reshape(array.shape)
    return array


def coerce_inputs(
    inputs: Mapping[str, Any], dtypes: Mapping[str, str] | None = None
) -> dict[str, np.ndarray]:
    """Converts request values to numpy arrays ready for ``tf.make_tensor_proto``.

    ``str`` becomes UTF-8 ``bytes``. When ``dtypes`` (alias -> TF dtype name, from
    :meth:`GrpcClient.metadata`) is given, numbers are cast to the signature's dtype where that
    cannot change their kind (int -> int32, int/float -> float32); anything else is sent as is,
    so the server reports the mismatch.
    """
    out = {}
    for alias, value in inputs.items():
        array = _as_array(value)
        want = (dtypes or {}).get(alias)
        if want is not None and want != "string":
            try:
                target: np.dtype[Any] | None = np.dtype(want)
            except TypeError:  # bfloat16, resource, variant: no numpy equivalent
                target = None
            if target is not None and (
                (target.kind in "iu" and array.dtype.kind in "iu")
                or (target.kind == "f" and array.dtype.kind in "iuf")
            ):
                array = array.astype(target)
        out[alias] = array
    return out


def _pad(rows: Sequence[Sequence[str]]) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    padded = [[str(x).encode("utf-8") for x in r] + [b""] * (width - len(r)) for r in rows]
    return np.array(padded, dtype=object).reshape(len(rows), width)


def recommend_in_batches(
    predict: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]],
    user_ids: Sequence[str],
    k: int,
    batch_size: int,
    exclude_item_ids: Sequence[Sequence[str]] | None,
    recent_item_ids: Sequence[Sequence[str]] | None,
    user_texts: Sequence[str] | None = None,
) -> Recommendations:
    """Calls a retrieval signature for many users, ``batch_size`` users per request.

    ``recent_item_ids``/``exclude_item_ids`` rows are right-padded with ``""`` to the longest
    row of the batch; leave them ``None`` to use the model's defaults (stored history, nothing
    excluded). ``user_texts`` (one string per user, ``""`` = none) goes to the optional
    ``user_text`` input of a model trained with ``model.user_text``; ``None`` leaves it out.
    Results keep at most ``k`` items and drop ``""`` padding ids.

    Raises:
        InvalidRequestError: On ``k < 1``, ``batch_size < 1`` or per-user lists whose length
            differs from ``user_ids``.
    """
    users = [str(u) for u in user_ids]
    if k < 1 or batch_size < 1:
        raise InvalidRequestError(
            f"k={k} and batch_size={batch_size} must both be >= 1.", code="INVALID_ARGUMENT"
        )
    for name, rows in (
        ("exclude_item_ids", exclude_item_ids),
        ("recent_item_ids", recent_item_ids),
        ("user_texts", user_texts),
    ):
        if rows is not None and len(rows) != len(users):
            raise InvalidRequestError(
                f"{name} has {len(rows)} rows but user_ids has {len(users)}; give one list "
                "per user (empty lists are fine).",
                code="INVALID_ARGUMENT",
            )
    results: Recommendations = []
    for start in range(0, len(users), batch_size):
        stop = start + batch_size
        inputs = {"user_id": _as_array(users[start:stop]), "k": np.asarray(k, np.int32)}
        if recent_item_ids is not None:
            inputs["recent_item_ids"] = _pad(recent_item_ids[start:stop])
        if exclude_item_ids is not None:
            inputs["exclude_item_ids"] = _pad(exclude_item_ids[start:stop])
        if user_texts is not None:
            inputs["user_text"] = _as_array([str(t) for t in user_texts[start:stop]])
        outputs = predict(inputs)
        ids, scores = outputs["item_ids"], outputs["scores"]
        for row in range(len(users[start:stop])):
            pairs = []
            for item, score in zip(ids[row], scores[row], strict=True):
                item = item.decode("utf-8") if isinstance(item, bytes) else str(item)
                if item:
                    pairs.append((item, float(score)))
            results.append(pairs[:k])
    return results


class GrpcClient:
    """Client of a TF Serving model over gRPC.

    Args:
        host: Server host.
        port: gRPC port (TF Serving's default is 8500).
        model_name: The model to call.
        timeout_s: Deadline of each RPC in seconds.
        max_retries: Retries after an ``UNAVAILABLE`` answer (total attempts = 1 + this).
        backoff_s: First wait before a retry; doubles each retry.
        sleep: The sleep function (injectable for tests).

    Example:
        >>> with GrpcClient(port=8500) as client:           # doctest: +SKIP
        ...     client.status()
        [(1700000000, 'AVAILABLE')]
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8500,
        model_name: str = "retrieval",
        timeout_s: float = 5.0,
        max_retries: int = 3,
        backoff_s: float = 0.1,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise InvalidRequestError(
                f"timeout_s={timeout_s} must be > 0, max_retries={max_retries} and "
                f"backoff_s={backoff_s} must be >= 0.",
                code="INVALID_ARGUMENT",
            )
        self.target = f"{host}:{port}"
        self.model_name = model_name
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self._sleep = sleep
        # The channel's own reconnect backoff (1 s initially by default) must not outlast ours:
        # a retry while the channel waits to reconnect fails at once without trying.
        reconnect_ms = max(1, int(backoff_s * 1000))
        self._channel = grpc.insecure_channel(
            self.target,
            options=[
                ("grpc.max_receive_message_length", -1),
                ("grpc.max_send_message_length", -1),
                ("grpc.initial_reconnect_backoff_ms", reconnect_ms),
                ("grpc.min_reconnect_backoff_ms", reconnect_ms),
                ("grpc.max_reconnect_backoff_ms", max(reconnect_ms, 1000 * int(timeout_s))),
            ],
        )
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._dtypes: dict[tuple[str, int | None], dict[str, str]] = {}

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., Any], request: Any, what: str) -> Any:
        def attempt(number: int) -> Any:
            try:
                return method(request, timeout=self.timeout_s)
            except grpc.RpcError as exc:
                raise self._error(exc, what, number) from None

        return call_with_retry(
            attempt, max_retries=self.max_retries, backoff_s=self.backoff_s, sleep=self._sleep
        )

    def _error(self, exc: grpc.RpcError, what: str, attempts: int) -> ServingStatusError:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = (exc.details() if hasattr(exc, "details") else "") or ""
        if code == grpc.StatusCode.UNAVAILABLE:
            message = (
                f"{what} on {self.target} failed: server unavailable after {attempts} "
                f"attempts ({details}). Is the model server running on this port?"
            )
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            message = (
                f"{what} on {self.target} took longer than timeout_s={self.timeout_s}; "
                "raise timeout_s or send smaller batches."
            )
        else:
            message = f"{what} on {self.target} failed with {code.name}: {details}"
        return error_for_code(code.name, message, server_message=details, attempts=attempts)

    def _spec(self, request: Any, signature_name: str | None, version: int | None) -> None:
        request.model_spec.name = self.model_name
        if signature_name is not None:
            request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = int(version)

    def predict(
        self,
        inputs: Mapping[str, Any],
        signature_name: str = "serving_default",
        version: int | None = None,
        *,
        output_filter: Sequence[str] = (),
        cast_to_signature: bool = True,
    ) -> dict[str, np.ndarray]:
        """Calls a signature.

        Args:
            inputs: Input alias -> array-like (``str`` is sent as UTF-8 bytes).
            signature_name: The SignatureDef to call.
            version: A specific model version; ``None`` = the server's latest.
            output_filter: Only these outputs (all when empty).
            cast_to_signature: Cast numbers to the signature's dtypes (one metadata call per
                signature and version, then cached on this client).

        Returns:
            Output alias -> numpy array (strings as ``bytes`` objects).

        Raises:
            ServingError: A subclass from :mod:`tfrec_llm.serving.errors`.
        """
        from tensorflow_serving.apis import predict_pb2

        from tfrec_llm.serving.tensors import to_ndarray, to_tensor_proto

        dtypes = self._input_dtypes(signature_name, version) if cast_to_signature else None
        request = predict_pb2.PredictRequest()
        self._spec(request, signature_name, version)
        request.output_filter.extend(output_filter)
        for alias, array in coerce_inputs(inputs, dtypes).items():
            request.inputs[alias].CopyFrom(to_tensor_proto(array))
        response = self._call(self._predictions.Predict, request, "Predict")
        return {alias: to_ndarray(t) for alias, t in response.outputs.items()}

    def _input_dtypes(self, signature_name: str, version: int | None) -> dict[str, str]:
        key = (signature_name, version)
        if key not in self._dtypes:
            signature = self.metadata(version)["signatures"].get(signature_name)
            if signature is None:
                return {}  # the Predict call reports the unknown signature
            self._dtypes[key] = {a: t["dtype"] for a, t in signature["inputs"].items()}
        return self._dtypes[key]

    def recommend(
        self,
        user_ids: Sequence[str],
        k: int = 10,
        batch_size: int = 256,
        exclude_item_ids: Sequence[Sequence[str]] | None = None,
        recent_item_ids: Sequence[Sequence[str]] | None = None,
        signature_name: str = "serving_default",
        user_texts: Sequence[str] | None = None,
    ) -> Recommendations:
        """Top-``k`` items for each user from the retrieval signature, many users per request.

        Args:
            user_ids: The users, any length.
            k: Items per user (the model caps it at its ``k_max``).
            batch_size: Users per Predict request.
            exclude_item_ids: Per user, item ids to leave out (padded with ``""``).
            recent_item_ids: Per user, recent item ids: appended to the history the model stores
                for a known user (the whole history of an unknown one), and excluded.
            signature_name: ``serving_default``, or ``recommend`` of the ``ranking`` model (the
                two-stage graph: retrieve N, rank, top K).
            user_texts: Per user, the user's own words (``""`` = none), for a model trained with
                ``model.user_text``; ``None`` (default) sends no ``user_text`` input.

        Returns:
            One list of ``(item_id, score)`` per user, best first.
        """

        def predict(inputs: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
            return self.predict(inputs, cast_to_signature=False, signature_name=signature_name)

        return recommend_in_batches(
            predict, user_ids, k, batch_size, exclude_item_ids, recent_item_ids, user_texts
        )

    def metadata(self, version: int | None = None) -> dict[str, Any]:
        """The model's signatures (see :func:`describe_signatures`)."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request, None, version)
        response = self._call(self._predictions.GetModelMetadata, request, "GetModelMetadata")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return describe_signatures(response.model_spec.name, response.model_spec.version.value, signature_map)

    def status(self, version: int | None = None) -> list[tuple[int, str]]:
        """``(version, state)`` for every version the server knows, e.g. ``[(1, "AVAILABLE")]``."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request, None, version)
        response = self._call(self._models.GetModelStatus, request, "GetModelStatus")
        names = get_model_status_pb2.ModelVersionStatus.State.Name
        return [(int(s.version), names(s.state)) for s in response.model_version_status]
