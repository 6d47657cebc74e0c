"""TF Serving's gRPC API for the local server: PredictionService + ModelService servicers.

Every failure of a handler becomes a gRPC status (``RequestStatusError`` keeps its code,
anything else is ``INTERNAL``), so one bad request never stops the server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from tfrec_llm.errors import ConfigError
from tfrec_llm.serving.local.predict import RequestStatusError, ServingBackend
from tfrec_llm.serving.local.threads import AbandoningExecutor

__all__ = ["GrpcFrontend"]

_LOG = logging.getLogger(__name__)


def _answer(context: grpc.ServicerContext, handler: Callable[[], Any]) -> Any:
    """Runs a handler; every failure becomes a status, so the server keeps serving."""
    try:
        return handler()
    except RequestStatusError as exc:
        context.abort(exc.code, exc.message)
    except Exception as exc:
        _LOG.exception("request failed")
        context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    def __init__(self, backend: ServingBackend) -> None:
        self._backend = backend

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _answer(context, lambda: self._backend.predict(request, timeout_s=context.time_remaining()))

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _answer(context, lambda: self._backend.get_model_metadata(request))

    def _unimplemented(self, context: grpc.ServicerContext, method: str) -> None:
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{method} is not implemented by tfrec_llm's LocalModelServer; use Predict.",
        )

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._unimplemented(context, "Classify")

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._unimplemented(context, "Regress")

    def MultiInference(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._unimplemented(context, "MultiInference")


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    def __init__(self, backend: ServingBackend) -> None:
        self._backend = backend

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _answer(context, lambda: self._backend.get_model_status(request))

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "HandleReloadConfigRequest is not implemented; restart the server with the new models.config.",
        )


class GrpcFrontend:
    """A started gRPC server with both services, bound to ``host:port``.

    Args:
        backend: Answers the requests.
        host: Interface to bind.
        port: Port; 0 picks a free one (see :attr:`port`).
        max_workers: Handler threads.

    Raises:
        ConfigError: If the port cannot be bound (nothing is left running).
    """

    def __init__(self, backend: ServingBackend, host: str, port: int, max_workers: int) -> None:
        self._pool = AbandoningExecutor(max_workers, "tfrec-grpc")  # daemon: exit never waits
        self._server = grpc.server(
            self._pool,
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", -1),
                ("grpc.max_send_message_length", -1),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionServicer(backend), self._server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(backend), self._server)
        try:
            try:
                bound = self._server.add_insecure_port(f"{host}:{port}")
            except RuntimeError as exc:
                raise ConfigError(f"cannot bind gRPC to {host}:{port}: {exc}") from exc
            if not bound:
                raise ConfigError(f"cannot bind gRPC to {host}:{port} (port in use?).")
        except ConfigError:
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise
        self._server.start()
        self.port: int = bound

    def close(self, grace_s: float) -> None:
        """Stops accepting calls, waits up to ``grace_s`` for running ones, frees the port."""
        self.finish_close(self.begin_close(grace_s), grace_s + 1.0)

    def begin_close(self, grace_s: float) -> threading.Event:
        """Refuses new calls now; calls still running after ``grace_s`` are cancelled.

        Returns:
            The event set when the server has stopped (see :meth:`finish_close`).
        """
        return self._server.stop(grace_s)  # type: ignore[no-any-return]

    def finish_close(self, stopped: threading.Event, timeout_s: float) -> None:
        """Waits up to ``timeout_s`` for ``stopped``, then drops the handler threads."""
        if not stopped.wait(timeout_s):
            _LOG.warning("gRPC server did not stop within %.1fs; leaving its threads behind", timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
