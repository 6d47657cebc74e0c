"""Tests of tfrec_llm.serving.errors: the HTTP <-> gRPC status table and the typed errors."""

from __future__ import annotations

import pytest

from tfrec_llm.errors import ServingError
from tfrec_llm.serving.errors import (
    DeadlineExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    ServerUnavailableError,
    ServingStatusError,
    code_for_http_status,
    error_for_http_status,
    http_status_for_code,
)

# TF Serving's ToHTTPStatusCode (model_servers/http_server.cc), copied by hand.
TF_SERVING_HTTP = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


def test_grpc_to_http_matches_tf_serving():
    assert {code: http_status_for_code(code) for code in TF_SERVING_HTTP} == TF_SERVING_HTTP
    assert http_status_for_code("NO_SUCH_CODE") == 500


def test_http_to_grpc_reads_the_table_backwards():
    for code, http in TF_SERVING_HTTP.items():
        assert http_status_for_code(code_for_http_status(http)) == http
    # ambiguous statuses read as the most likely code
    assert [code_for_http_status(s) for s in (400, 409, 500)] == ["INVALID_ARGUMENT", "ABORTED", "INTERNAL"]
    assert code_for_http_status(418) == "UNKNOWN"


@pytest.mark.parametrize(
    ("http", "cls"),
    [
        (400, InvalidRequestError),
        (404, ModelNotFoundError),
        (503, ServerUnavailableError),
        (504, DeadlineExceededError),
        (500, ServingStatusError),
    ],
)
def test_http_statuses_become_typed_errors(http, cls):
    error = error_for_http_status(http, "msg", server_message="server said", attempts=2)
    assert type(error) is cls and isinstance(error, ServingError)
    assert (error.http_status, error.server_message, error.attempts) == (http, "server said", 2)
