"""REST client for TF Serving's HTTP API (``/v1/models/...``), standard library only.

Same behaviour as :class:`~tfrec_llm.serving.grpc_client.GrpcClient`: retries (exponential
backoff, :mod:`tfrec_llm.serving.retry`) only on HTTP 503 and refused connections (both
``UNAVAILABLE``), typed errors otherwise (400 ->
``InvalidRequestError``, 404 -> ``ModelNotFoundError``, 504 or a client timeout ->
``DeadlineExceededError``). Proxies from the environment are ignored: the model server is
called directly.

Two request forms exist (TF Serving REST API):

* ``form="inputs"`` (columnar): ``{"inputs": {alias: nested list}}``; any shapes, scalars too.
* ``form="instances"`` (row): ``{"instances": [{alias: value}, ...]}``; every input is split
  along dimension 0, so a scalar input (the retrieval ``k``) cannot be sent this way: leave it
  out to get the model's default, or use ``form="inputs"``.

Example:
    >>> client = RestClient("http://localhost:8501", model_name="retrieval")  # doctest: +SKIP
    >>> client.predict({"user_id": ["1"]}, form="instances")["item_ids"]      # doctest: +SKIP
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfrec_llm.serving.errors import (
    DeadlineExceededError,
    InvalidRequestError,
    error_for_http_status,
)
from tfrec_llm.serving.grpc_client import (
    Recommendations,
    coerce_inputs,
    describe_signatures,
    recommend_in_batches,
)
from tfrec_llm.serving.json_codec import decode_response_value, encode_array
from tfrec_llm.serving.retry import call_with_retry

__all__ = ["RestClient"]

_FORMS = ("inputs", "instances")


class RestClient:
    """Client of a TF Serving model over its REST API.

    Args:
        base_url: Server URL, e.g. ``http://localhost:8501``.
        model_name: The model to call.
        timeout_s: Socket timeout of each HTTP request in seconds.
        max_retries: Retries after HTTP 503 or a refused connection (attempts = 1 + this).
        backoff_s: First wait before a retry; doubles each retry.
        sleep: The sleep function (injectable for tests).
    """

    def __init__(
        self,
        base_url: str = "http://localhost:8501",
        model_name: str = "retrieval",
        timeout_s: float = 5.0,
        max_retries: int = 3,
        backoff_s: float = 0.1,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidRequestError(
                f"base_url={base_url!r} must start with http:// or https://, e.g. 'http://localhost:8501'.",
                code="INVALID_ARGUMENT",
            )
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise InvalidRequestError(
                f"timeout_s={timeout_s} must be > 0, max_retries={max_retries} and "
                f"backoff_s={backoff_s} must be >= 0.",
                code="INVALID_ARGUMENT",
            )
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self._sleep = sleep
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._signatures: dict[int | None, dict[str, Any]] = {}

    def _url(self, version: int | None, suffix: str) -> str:
        path = f"{self.base_url}/v1/models/{self.model_name}"
        if version is not None:
            path += f"/versions/{int(version)}"
        return path + suffix

    def _request(self, url: str, body: Any | None, what: str) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            url,
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )

        def attempt(number: int) -> Any:
            try:
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                text = exc.read().decode("utf-8", "replace")
                try:
                    server_message = str(json.loads(text).get("error", text))
                except (ValueError, AttributeError):
                    server_message = text
                raise error_for_http_status(
                    exc.code,
                    f"{what} {url} failed with HTTP {exc.code}: {server_message}",
                    server_message=server_message,
                    attempts=number,
                ) from None
            except TimeoutError as exc:
                raise DeadlineExceededError(
                    f"{what} {url} took longer than timeout_s={self.timeout_s}; raise "
                    "timeout_s or send smaller batches.",
                    code="DEADLINE_EXCEEDED",
                    server_message=str(exc),
                    attempts=number,
                ) from None
            except (urllib.error.URLError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, (TimeoutError, socket.timeout)):
                    raise DeadlineExceededError(
                        f"{what} {url} took longer than timeout_s={self.timeout_s}.",
                        code="DEADLINE_EXCEEDED",
                        server_message=str(reason),
                        attempts=number,
                    ) from None
                raise error_for_http_status(  # a refused connection counts as 503 UNAVAILABLE
                    503,
                    f"{what} {url} failed: server unavailable after {number} attempts "
                    f"({reason}). Is the model server running on this port?",
                    server_message=str(reason),
                    attempts=number,
                ) from None

        return call_with_retry(
            attempt, max_retries=self.max_retries, backoff_s=self.backoff_s, sleep=self._sleep
        )

    def _signature(self, signature_name: str, version: int | None) -> dict[str, Any] | None:
        if version not in self._signatures:
            self._signatures[version] = self.metadata(version)["signatures"]
        return self._signatures[version].get(signature_name)

    def predict(
        self,
        inputs: Mapping[str, Any],
        form: str = "inputs",
        signature_name: str = "serving_default",
        version: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Calls a signature through ``:predict``.

        Args:
            inputs: Input alias -> array-like.
            form: ``"inputs"`` (columnar) or ``"instances"`` (row; no scalar inputs).
            signature_name: The SignatureDef to call.
            version: A specific model version; ``None`` = the server's latest.

        Returns:
            Output alias -> numpy array with the signature's dtype (strings as ``bytes``).

        Raises:
            InvalidRequestError: On an unknown ``form``, a scalar or ragged input in row form,
                or a 400 from the server.
            ServingError: Other subclasses from :mod:`tfrec_llm.serving.errors`.
        """
        if form not in _FORMS:
            raise InvalidRequestError(f"form={form!r} is not one of {_FORMS}.", code="INVALID_ARGUMENT")
        signature = self._signature(signature_name, version)
        in_dtypes = {a: t["dtype"] for a, t in signature["inputs"].items()} if signature else None
        arrays = coerce_inputs(inputs, in_dtypes)
        body: dict[str, Any] = {"signature_name": signature_name}
        if form == "inputs":
            body["inputs"] = {alias: encode_array(a) for alias, a in arrays.items()}
        else:
            sizes = {alias: (a.shape[0] if a.ndim else None) for alias, a in arrays.items()}
            if None in sizes.values() or len(set(sizes.values())) != 1:
                raise InvalidRequestError(
                    f"form='instances' splits every input along dimension 0, but the inputs have "
                    f"batch sizes {sizes} (None = scalar). Leave scalar inputs such as k out "
                    "(the model's default applies) or use form='inputs'.",
                    code="INVALID_ARGUMENT",
                )
            n = int(next(iter(sizes.values())) or 0)
            columns = {alias: encode_array(a) for alias, a in arrays.items()}
            body["instances"] = [{alias: col[i] for alias, col in columns.items()} for i in range(n)]
        answer = self._request(self._url(version, ":predict"), body, "POST")
        out_specs = signature["outputs"] if signature else {}
        if form == "inputs":
            outputs = answer["outputs"]
            if not isinstance(outputs, dict):
                outputs = {next(iter(out_specs), "outputs"): outputs}
        else:
            rows = answer["predictions"]
            if rows and isinstance(rows[0], dict):
                outputs = {alias: [row[alias] for row in rows] for alias in rows[0]}
            else:
                outputs = {next(iter(out_specs), "predictions"): rows}
        return {
            alias: decode_response_value(value, out_specs.get(alias, {}).get("dtype"))
            for alias, value in outputs.items()
        }

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
        """Top-``k`` items per user (columnar requests, ``batch_size`` users each).

        See :meth:`tfrec_llm.serving.grpc_client.GrpcClient.recommend`.
        """

        def predict(inputs: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
            return self.predict(inputs, form="inputs", signature_name=signature_name)

        return recommend_in_batches(
            predict, user_ids, k, batch_size, exclude_item_ids, recent_item_ids, user_texts
        )

    def metadata(self, version: int | None = None) -> dict[str, Any]:
        """The model's signatures, as :func:`tfrec_llm.serving.grpc_client.describe_signatures`."""
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        answer = self._request(self._url(version, "/metadata"), None, "GET")
        signature_map = json_format.ParseDict(
            answer["metadata"]["signature_def"],
            get_model_metadata_pb2.SignatureDefMap(),
            ignore_unknown_fields=True,
        )
        spec = answer.get("model_spec", {})
        return describe_signatures(
            spec.get("name", self.model_name), int(spec.get("version", 0)), signature_map
        )

    def status(self, version: int | None = None) -> list[tuple[int, str]]:
        """``(version, state)`` for every version the server knows."""
        answer = self._request(self._url(version, ""), None, "GET")
        return [(int(s["version"]), str(s["state"])) for s in answer.get("model_version_status", [])]
