"""TF Serving's REST API (``/v1/models/...``) for the local server, on a ThreadingHTTPServer.

Routes: ``GET /v1/models/<name>[/versions/<v>]`` (status), ``.../metadata`` (signatures) and
``POST .../<name>[/versions/<v>]:predict`` with the row (``instances``) or columnar
(``inputs``) body. JSON values are read and written by :mod:`tfrec_llm.serving.json_codec`;
status codes come from the one HTTP <-> gRPC table in :mod:`tfrec_llm.serving.errors`.

Bad bodies get a 4xx, never a 500 or a hung thread: a ``Content-Length`` that is not a
non-negative integer is 400, one above ``max_body_bytes`` is 413 (nothing is read), a body
that stops short of its ``Content-Length`` is 400 after ``read_timeout_s`` without a byte,
JSON that does not parse or nests deeper than :data:`MAX_JSON_DEPTH` is 400.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from tfrec_llm.serving.errors import http_status_for_code
from tfrec_llm.serving.json_codec import STRING, decode_request_value, encode_array
from tfrec_llm.serving.local.predict import DEFAULT_SIGNATURE, RequestStatusError, ServingBackend

__all__ = ["MAX_JSON_DEPTH", "RestFrontend"]

MAX_JSON_DEPTH = 64  # a tensor has at most 64 dimensions in TF Serving's JSON (plus the body)

_LOG = logging.getLogger(__name__)
_PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?:(classify|regress|predict)", re.I)
_STATUS_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata)?", re.I)
_JSON_OPTS = {"always_print_fields_with_no_presence": True, "preserving_proto_field_name": True}


class _HttpError(Exception):
    """A request refused before it reached the model: an HTTP status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RestFrontend:
    """A started REST server bound to ``host:port`` (0 = a free port, see :attr:`port`).

    Args:
        backend: Answers the requests.
        host: Interface to bind.
        port: Port; 0 picks a free one.
        read_timeout_s: Seconds a handler waits for more request bytes (then 400).
        max_body_bytes: Largest accepted ``Content-Length`` (above: 413).

    Raises:
        OSError: If the port cannot be bound.
    """

    def __init__(
        self,
        backend: ServingBackend,
        host: str,
        port: int,
        read_timeout_s: float = 30.0,
        max_body_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        attrs = {"backend": backend, "timeout": read_timeout_s, "max_body_bytes": max_body_bytes}
        handler = type("_BoundRestHandler", (_RestHandler,), attrs)
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="tfrec-rest",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stops serving and frees the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class _RestHandler(BaseHTTPRequestHandler):
    backend: ServingBackend
    max_body_bytes: int

    def log_message(self, format: str, *args: Any) -> None:
        _LOG.debug("REST %s", format % args)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            status, body = 200, self._handle(method)
        except _HttpError as exc:
            status, body = exc.status, {"error": exc.message}
            self.close_connection = True  # the rest of the body was not read
        except RequestStatusError as exc:
            status, body = http_status_for_code(exc.code.name), {"error": exc.message}
        except Exception as exc:  # the server keeps serving whatever a request does
            _LOG.exception("REST request failed")
            status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> Any:
        path = self.path.split("?", 1)[0]
        backend = self.backend
        match = _PREDICT_PATH.fullmatch(path)
        if method == "POST" and match:
            raw = self._read_body()
            if match.group(3).lower() != "predict":
                raise RequestStatusError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{match.group(3)} is not implemented by this server; use :predict.",
                )
            return _rest_predict(backend, _model_spec(match.group(1), match.group(2)), raw)
        match = _STATUS_PATH.fullmatch(path)
        if method == "GET" and match:
            spec = _model_spec(match.group(1), match.group(2))
            if match.group(3):
                request = get_model_metadata_pb2.GetModelMetadataRequest(
                    model_spec=spec, metadata_field=["signature_def"]
                )
                response = backend.get_model_metadata(request)
                signature_map = get_model_metadata_pb2.SignatureDefMap()
                response.metadata["signature_def"].Unpack(signature_map)
                return {
                    "model_spec": json_format.MessageToDict(response.model_spec, **_JSON_OPTS),
                    "metadata": {"signature_def": json_format.MessageToDict(signature_map, **_JSON_OPTS)},
                }
            status = backend.get_model_status(get_model_status_pb2.GetModelStatusRequest(model_spec=spec))
            return json_format.MessageToDict(status, **_JSON_OPTS)
        raise RequestStatusError(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: {method} {path}")

    def _read_body(self) -> bytes:
        """The request body, as long as its ``Content-Length`` says (which is checked)."""
        header = self.headers.get("Content-Length")
        if header is None:
            return b""
        text = header.strip()
        if not (text.isascii() and text.isdigit()):
            raise _HttpError(400, f"Content-Length must be a non-negative integer; got {header!r}.")
        length = int(text)
        if length > self.max_body_bytes:
            raise _HttpError(
                413,
                f"Request body of {length} bytes is larger than the limit of {self.max_body_bytes} "
                "bytes; send fewer instances per request.",
            )
        chunks, left = [], length
        try:
            while left:
                chunk = self.rfile.read1(min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
        except TimeoutError:
            pass
        if left:
            raise _HttpError(
                400,
                f"Request body ended after {length - left} of its Content-Length {length} bytes "
                f"(no more bytes within {self.timeout:g}s).",
            )
        return b"".join(chunks)


def _json_depth_ok(value: Any, limit: int) -> bool:
    """True when ``value`` nests at most ``limit`` lists/objects deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def _model_spec(name: str, version: str | None) -> Any:
    from tensorflow_serving.apis import model_pb2

    spec = model_pb2.ModelSpec(name=name)
    if version:
        spec.version.value = int(version)
    return spec


def _rest_predict(backend: ServingBackend, spec: Any, raw: bytes) -> Any:
    try:
        body = json.loads(raw.decode("utf-8") or "null")
        too_deep = not _json_depth_ok(body, MAX_JSON_DEPTH)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestStatusError(grpc.StatusCode.INVALID_ARGUMENT, f"JSON Parse error: {exc}") from None
    except RecursionError:  # deeper than the parser's own stack allows
        too_deep = True
    if too_deep:
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"JSON Parse error: the body nests deeper than {MAX_JSON_DEPTH} levels.",
        )
    if not isinstance(body, dict):
        raise RequestStatusError(grpc.StatusCode.INVALID_ARGUMENT, "Request body must be a JSON object.")
    servable = backend.resolve(spec)
    sig_name = body.get("signature_name") or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(sig_name)
    if signature is None:
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f'Serving signature name: "{sig_name}" not found in signature def',
        )
    if ("instances" in body) == ("inputs" in body):
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Request JSON must have exactly one of 'instances' (row format) or 'inputs' (columnar format).",
        )
    row = "instances" in body
    columns = _rows_to_columns(body["instances"], signature) if row else body["inputs"]
    if not isinstance(columns, dict):
        columns = {_single_input(signature): columns}
    request = predict_pb2.PredictRequest(model_spec=spec)
    request.model_spec.signature_name = sig_name
    for alias, value in columns.items():
        info = signature.inputs.get(alias)
        array = _json_to_array(alias, value, info.dtype if info is not None else None)
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(array))
    response = backend.predict(request)
    outputs = {alias: tf.make_ndarray(t) for alias, t in response.outputs.items()}
    return _outputs_to_json(outputs, row)


def _single_input(signature: Any) -> str:
    required = [a for a in signature.inputs if a not in signature.defaults]
    if len(required) != 1:
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Values must be JSON objects keyed by input name when the signature has "
            f"{len(required)} required inputs: {sorted(signature.inputs)}.",
        )
    return str(required[0])


def _rows_to_columns(instances: Any, signature: Any) -> Any:
    if not isinstance(instances, list) or not instances:
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT, "'instances' must be a non-empty JSON list."
        )
    if not isinstance(instances[0], dict):
        return {_single_input(signature): instances}
    keys = sorted(instances[0])
    for i, row in enumerate(instances):
        if not isinstance(row, dict) or sorted(row) != keys:
            raise RequestStatusError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Failed to process element: {i} of 'instances' list. Every instance must be "
                f"a JSON object with the same keys {keys}.",
            )
    return {key: [row[key] for row in instances] for key in keys}


def _json_to_array(alias: str, value: Any, dtype_enum: int | None) -> np.ndarray:
    dtype = tf.dtypes.as_dtype(dtype_enum) if dtype_enum else None
    numpy_dtype: Any = None
    if dtype is not None:
        numpy_dtype = STRING if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)
    try:
        return decode_request_value(value, numpy_dtype)
    except (TypeError, ValueError) as exc:
        want = dtype.name if dtype is not None else "a tensor"
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Failed to convert JSON value of input '{alias}' to {want}: {exc}",
        ) from None


def _outputs_to_json(outputs: Mapping[str, np.ndarray], row: bool) -> Any:
    values = {alias: encode_array(arr) for alias, arr in outputs.items()}
    if not row:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    sizes = {arr.shape[0] if arr.ndim else -1 for arr in outputs.values()}
    if len(sizes) != 1 or -1 in sizes:
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Outputs have inconsistent batch sizes "
            f"{ {a: list(v.shape) for a, v in outputs.items()} }; use the columnar 'inputs' "
            "request format.",
        )
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    n = sizes.pop()
    return {"predictions": [{a: values[a][i] for a in sorted(values)} for i in range(n)]}
