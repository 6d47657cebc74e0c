"""Typed errors raised by the TF Serving clients (gRPC and REST).

Every error carries the canonical gRPC status name in ``.code`` (``"INVALID_ARGUMENT"``,
``"NOT_FOUND"``, ...), the server's own message in ``.server_message`` and, for REST, the HTTP
status in ``.http_status``. Catch :class:`tfrec_llm.errors.ServingError` to handle them all.

The HTTP <-> gRPC status table (:func:`http_status_for_code`, :func:`code_for_http_status`) is
the one both the REST client and the local server's REST API use.

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
    "code_for_http_status",
    "error_for_code",
    "error_for_http_status",
    "http_status_for_code",
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

# TF Serving's gRPC -> HTTP mapping (model_servers/http_server.cc, ToHTTPStatusCode), one row per
# gRPC code. Read backwards (HTTP -> gRPC), the FIRST row of each HTTP status wins: 400 reads as
# INVALID_ARGUMENT, 409 as ABORTED, 500 as INTERNAL.
_STATUS_TABLE: tuple[tuple[str, int], ...] = (
    ("INVALID_ARGUMENT", 400),
    ("FAILED_PRECONDITION", 400),
    ("OUT_OF_RANGE", 400),
    ("UNAUTHENTICATED", 401),
    ("PERMISSION_DENIED", 403),
    ("NOT_FOUND", 404),
    ("ABORTED", 409),
    ("ALREADY_EXISTS", 409),
    ("RESOURCE_EXHAUSTED", 429),
    ("CANCELLED", 499),
    ("INTERNAL", 500),
    ("UNKNOWN", 500),
    ("DATA_LOSS", 500),
    ("UNIMPLEMENTED", 501),
    ("UNAVAILABLE", 503),
    ("DEADLINE_EXCEEDED", 504),
)
_HTTP_BY_CODE: dict[str, int] = dict(_STATUS_TABLE)
_CODE_BY_HTTP: dict[int, str] = {http: code for code, http in reversed(_STATUS_TABLE)}


def http_status_for_code(code: str) -> int:
    """The HTTP status TF Serving's REST API answers for a canonical gRPC status name.

    Args:
        code: A gRPC status name, e.g. ``"NOT_FOUND"``.

    Returns:
        The HTTP status, e.g. 404; 500 for a name outside the table.
    """
    return _HTTP_BY_CODE.get(code, 500)


def code_for_http_status(http_status: int) -> str:
    """The most likely canonical gRPC status name behind a TF Serving HTTP status.

    Args:
        http_status: The HTTP status of a REST answer, e.g. 503.

    Returns:
        The gRPC status name, e.g. ``"UNAVAILABLE"``; ``"UNKNOWN"`` outside the table.
    """
    return _CODE_BY_HTTP.get(http_status, "UNKNOWN")


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
    code = code_for_http_status(http_status)
    return error_for_code(
        code, message, server_message=server_message, http_status=http_status, attempts=attempts
    )
