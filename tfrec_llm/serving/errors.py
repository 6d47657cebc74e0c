"""Typed errors raised by the TF Serving clients (gRPC and REST).

Every error carries the canonical gRPC status name in ``.code`` (``"INVALID_ARGUMENT"``,
``"NOT_FOUND"``, ...), the server's own message in ``.server_message`` and, for REST, the HTTP
status in ``.http_status``. Catch :class:`tfrec_llm.errors.ServingError` to handle them all.

Mapping (gRPC code / HTTP status -> class):
    INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE / 400 -> InvalidRequestError
    NOT_FOUND / 404                                          -> ModelNotFoundError
    UNAVAILABLE / 503, connection refused (after retries)   -> ServerUnavailableError
    DEADLINE_EXCEEDED / 504, client timeout                  -> DeadlineExceededError
    anything else                                            -> ServingStatusError
"""

from __future__ import annotations

from tfrec_llm.errors import ServingError

__all__ = [
    "DeadlineExceededError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "ServerUnavailableError",
    "ServingStatusError",
    "error_for_code",
    "error_for_http_status",
]


class ServingStatusError(ServingError):
    """A request failed with a status from the model server.

    Args:
        message: What went wrong and what to do about it.
        code: Canonical gRPC status name, e.g. ``"INTERNAL"``.
        server_message: The server's own error text (empty when there was no answer).
        http_status: The HTTP status for REST calls, else ``None``.
        attempts: How many times the request was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        server_message: str = "",
        http_status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.server_message = server_message
        self.http_status = http_status
        self.attempts = attempts


class InvalidRequestError(ServingStatusError):
    """The server rejected the request: bad input alias, dtype, shape, value or signature."""


class ModelNotFoundError(ServingStatusError):
    """The model name or version is not loaded on the server."""


class ServerUnavailableError(ServingStatusError):
    """The server could not be reached, even after retrying with backoff."""


class DeadlineExceededError(ServingStatusError):
    """The request did not finish within the client's timeout."""


_CLASS_BY_CODE: dict[str, type[ServingStatusError]] = {
    "INVALID_ARGUMENT": InvalidRequestError,
    "FAILED_PRECONDITION": InvalidRequestError,
    "OUT_OF_RANGE": InvalidRequestError,
    "NOT_FOUND": ModelNotFoundError,
    "UNAVAILABLE": ServerUnavailableError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
}

# TF Serving's HTTP mapping (model_servers/http_server.cc ToHTTPStatusCode), inverted to the
# most likely gRPC code.
_CODE_BY_HTTP: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_for_code(
    code: str,
    message: str,
    *,
    server_message: str = "",
    http_status: int | None = None,
    attempts: int = 1,
) -> ServingStatusError:
    """Builds the typed error for a canonical gRPC status name."""
    cls = _CLASS_BY_CODE.get(code, ServingStatusError)
    return cls(
        message,
        code=code,
        server_message=server_message,
        http_status=http_status,
        attempts=attempts,
    )


def error_for_http_status(
    http_status: int, message: str, *, server_message: str = "", attempts: int = 1
) -> ServingStatusError:
    """Builds the typed error for an HTTP status answered by a TF Serving REST endpoint."""
    code = _CODE_BY_HTTP.get(http_status, "UNKNOWN")
    return error_for_code(
        code, message, server_message=server_message, http_status=http_status, attempts=attempts
    )
