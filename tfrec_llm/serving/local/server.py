"""LocalModelServer: wires the model registry to TF Serving's gRPC and REST APIs.

Production serving is the real ``tensorflow/serving`` image (``serving/``). This server exists
for tests, CI and laptops, where no ``tensorflow_model_server`` binary is available: it speaks
the same protos (``PredictionService.Predict/GetModelMetadata``, ``ModelService.GetModelStatus``)
and the same REST routes, so the real clients run over a real socket. The parts:
:mod:`~tfrec_llm.serving.local.versions` (version folders),
:mod:`~tfrec_llm.serving.local.registry` (polling, loading, hot swap),
:mod:`~tfrec_llm.serving.local.predict` (request checks, signature calls),
:mod:`~tfrec_llm.serving.local.grpc_api` and :mod:`~tfrec_llm.serving.local.rest_api`.

Example:
    >>> with LocalModelServer(model_name="retrieval", model_base_path="exports/retrieval",
    ...                       port=0, rest_port=0) as server:            # doctest: +SKIP
    ...     print(server.grpc_port, server.rest_port)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import grpc

from tfrec_llm.errors import ConfigError
from tfrec_llm.export.models_config import ModelEntry, read_models_config
from tfrec_llm.serving.local.batching import BatchingParameters, BatchScheduler
from tfrec_llm.serving.local.grpc_api import GrpcFrontend
from tfrec_llm.serving.local.predict import (
    RequestStatusError,
    Servable,
    check_metadata_request,
    metadata_response,
    predict_on,
)
from tfrec_llm.serving.local.registry import ModelRegistry
from tfrec_llm.serving.local.rest_api import RestFrontend
from tfrec_llm.serving.local.threads import AbandoningExecutor

__all__ = ["LocalModelServer"]

_LOG = logging.getLogger(__name__)


class LocalModelServer:
    """A PredictionService + ModelService (gRPC) and REST server over TF Serving model folders.

    Args:
        model_config_file: A ``models.config`` (ModelServerConfig text proto). Relative
            ``base_path`` values are read relative to the file's folder; ``/models/<name>``
            maps to ``<folder>/<name>`` when it does not exist here.
        model_name: Model name when serving a single ``model_base_path`` (no config file).
        model_base_path: The folder holding the integer version folders of ``model_name``.
        port: gRPC port; 0 picks a free port (see :attr:`grpc_port`).
        rest_port: REST port; 0 picks a free port, ``None`` turns REST off.
        host: Interface to bind; loopback by default.
        poll_interval_s: Seconds between scans of the base paths for new versions.
        max_workers: Threads for gRPC handlers and for model calls.
        batching_parameters: Turns request batching on (``--enable_batching``); see
            :mod:`~tfrec_llm.serving.local.batching`. ``None``: every request runs alone.
        rest_read_timeout_s: Seconds a REST handler waits for more request bytes before it
            answers 400 (a client that sends less than its ``Content-Length`` frees the thread).
        rest_max_body_bytes: Largest REST request body; a bigger ``Content-Length`` gets 413.

    Raises:
        ConfigError: If neither or both of ``model_config_file`` and ``model_base_path`` are
            given, or ``poll_interval_s`` is not positive.
    """

    def __init__(
        self,
        model_config_file: str | os.PathLike[str] | None = None,
        *,
        model_name: str = "retrieval",
        model_base_path: str | os.PathLike[str] | None = None,
        port: int = 8500,
        rest_port: int | None = 8501,
        host: str = "127.0.0.1",
        poll_interval_s: float = 1.0,
        max_workers: int = 8,
        rest_read_timeout_s: float = 30.0,
        rest_max_body_bytes: int = 256 * 1024 * 1024,
        batching_parameters: BatchingParameters | None = None,
    ) -> None:
        if (model_config_file is None) == (model_base_path is None):
            raise ConfigError(
                "Give exactly one of model_config_file (a models.config) or model_base_path "
                f"(with model_name); got model_config_file={model_config_file!r}, "
                f"model_base_path={model_base_path!r}."
            )
        if poll_interval_s <= 0:
            raise ConfigError(f"poll_interval_s={poll_interval_s!r} must be > 0 seconds.")
        if model_config_file is not None:
            entries = read_models_config(model_config_file)
        else:
            path = os.path.abspath(os.fspath(model_base_path))  # type: ignore[arg-type]
            entries = (ModelEntry(name=model_name, base_path=path, local_path=path),)
        self._registry = ModelRegistry(entries)
        self._host, self._port, self._rest_port_req = host, port, rest_port
        self.poll_interval_s = poll_interval_s
        self._max_workers = max_workers
        self._rest_limits = (rest_read_timeout_s, rest_max_body_bytes)
        self._batching = batching_parameters
        self._batcher: BatchScheduler | None = None
        self._stopped = threading.Event()
        self._executor: AbandoningExecutor | None = None
        self._loader: threading.Thread | None = None
        self._abandoned = 0
        self._grpc: GrpcFrontend | None = None
        self._rest: RestFrontend | None = None
        self.grpc_port: int | None = None
        self.rest_port: int | None = None

    @classmethod
    def from_config_file(
        cls,
        path: str | os.PathLike[str],
        *,
        grpc_port: int = 8500,
        rest_port: int | None = 8501,
        **kwargs: Any,
    ) -> LocalModelServer:
        """A server for every model of a ``models.config`` (not started yet)."""
        return cls(path, port=grpc_port, rest_port=rest_port, **kwargs)

    @classmethod
    def from_base_path(
        cls,
        model_name: str,
        base_path: str | os.PathLike[str],
        *,
        grpc_port: int = 8500,
        rest_port: int | None = 8501,
        **kwargs: Any,
    ) -> LocalModelServer:
        """A server for one model folder holding integer version folders (not started yet)."""
        return cls(
            model_name=model_name,
            model_base_path=base_path,
            port=grpc_port,
            rest_port=rest_port,
            **kwargs,
        )

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> LocalModelServer:
        """Loads the initial versions, then starts gRPC, REST and the poller. Returns self.

        The initial load runs on a daemon thread that the calling thread waits for, so Ctrl-C
        (``KeyboardInterrupt``) stops a long load at once: the server is stopped, the load is
        abandoned and the interrupt propagates.

        Raises:
            ConfigError: If a port cannot be bound (everything started so far is stopped).
        """
        try:
            self._start()
        except BaseException:
            self.stop(grace_s=0)
            raise
        for name, why in self._registry.empty_models().items():
            _LOG.warning("model %s: %s; requests get NOT_FOUND until a version loads", name, why)
        return self

    def _start(self) -> None:
        self._stopped.clear()
        self._abandoned = 0
        self._executor = AbandoningExecutor(self._max_workers, "tfrec-model")
        self._batcher = BatchScheduler(self._batching) if self._batching is not None else None
        self._registry.resume()
        self._initial_load()
        self._grpc = GrpcFrontend(self, self._host, self._port, self._max_workers)
        self.grpc_port = self._grpc.port
        if self._rest_port_req is not None:
            timeout_s, max_bytes = self._rest_limits
            try:
                self._rest = RestFrontend(self, self._host, self._rest_port_req, timeout_s, max_bytes)
            except OSError as exc:
                raise ConfigError(f"cannot bind REST to {self._host}:{self._rest_port_req}: {exc}") from exc
            self.rest_port = self._rest.port
        self._registry.start_polling(self.poll_interval_s)
        _LOG.info("serving gRPC on %s:%s, REST on %s", self._host, self.grpc_port, self.rest_port)

    def _initial_load(self) -> None:
        failure: list[BaseException] = []

        def load() -> None:
            try:
                self._registry.poll_once()
            except BaseException as exc:  # noqa: BLE001  (re-raised in the caller's thread)
                failure.append(exc)

        self._loader = threading.Thread(target=load, name="tfrec-initial-load", daemon=True)
        self._loader.start()
        while self._loader.is_alive():
            self._loader.join(0.1)  # short waits: a signal handler runs between them
        if failure:
            raise failure[0]

    def stop(self, grace_s: float = 1.0) -> None:
        """Stops the server within about ``grace_s`` seconds, whatever is in flight.

        New calls are refused at once; calls in flight get up to ``grace_s`` to finish, then
        they are abandoned (their clients get ``UNAVAILABLE``) and their model calls are left
        to end on daemon threads, as is a load in progress. Ports are freed and every model
        is unloaded. :attr:`abandoned` says how much work was left running.
        """
        deadline = time.monotonic() + max(grace_s, 0.0)
        self._registry.stop_polling(timeout_s=0)
        # gRPC cancels what still runs a little after the grace, so that the abandoned calls
        # below answer first with UNAVAILABLE (a status a client retries elsewhere)
        grpc_grace = max(grace_s, 0.0) + 0.5
        grpc_stopped = self._grpc.begin_close(grpc_grace) if self._grpc is not None else None
        if self._rest is not None:
            self._rest.close()
            self._rest = None
            self.rest_port = None
        if self._executor is not None:
            if not self._executor.wait_idle(deadline - time.monotonic()):
                self._abandoned += self._executor.abandon(
                    RequestStatusError(
                        grpc.StatusCode.UNAVAILABLE,
                        "The server is shutting down; the request was abandoned.",
                    )
                )
            self._executor.shutdown(wait=False)
            self._executor = None
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None
        if self._grpc is not None:
            self._grpc.finish_close(grpc_stopped, max(deadline - time.monotonic(), 0.0) + 1.0)  # type: ignore[arg-type]
            self._grpc = None
            self.grpc_port = None
        self._registry.unload_all()
        self._stopped.set()

    @property
    def abandoned(self) -> int:
        """Model calls and loads left running on daemon threads by the last :meth:`stop`.

        A process that wants to exit at once (``tfrec-llm serve``) should ``os._exit`` when
        this is non-zero rather than wait for interpreter shutdown to tear TensorFlow down
        under a running op.
        """
        loading = self._loader is not None and self._loader.is_alive()
        return self._abandoned + (1 if loading or self._registry.loading() else 0)

    def serve_forever(self, grace_s: float = 1.0) -> None:
        """Starts (if needed) and blocks until :meth:`stop` (another thread) or Ctrl-C.

        Ctrl-C stops the server with :meth:`stop` (``grace_s``), so this returns within about
        ``grace_s`` seconds even while a long request runs.

        Ctrl-C arrives as ``KeyboardInterrupt``, which Python raises only while SIGINT has its
        default Python handler: a process started with SIGINT ignored (a background job of a
        non-interactive shell) must install it first, as ``tfrec-llm serve`` does.
        """
        if self._grpc is None:
            self.start()
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop(grace_s)

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------- the backend
    def poll_once(self) -> None:
        """Scans every base path once: loads aspired versions, then unloads the others."""
        self._registry.poll_once()

    def served_versions(self, model_name: str) -> tuple[int, ...]:
        """The versions of ``model_name`` that answer requests now, ascending."""
        return self._registry.served_versions(model_name)

    def load_seconds(self, model_name: str, version: int) -> float:
        """Seconds the load (including warmup) of a served version took."""
        return self._registry.load_seconds(model_name, version)

    def resolve(self, model_spec: Any) -> Servable:
        """Finds the servable for a ``ModelSpec``, like TF Serving's GetServableHandle."""
        return self._registry.resolve(model_spec)

    def predict(self, request: Any, timeout_s: float | None = None) -> Any:
        """Answers a ``PredictRequest``; raises ``RequestStatusError`` on failure."""
        servable = self._registry.resolve(request.model_spec)
        return predict_on(servable, request, self._executor, timeout_s, self._batcher)

    def get_model_metadata(self, request: Any) -> Any:
        """Answers a ``GetModelMetadataRequest`` (only the ``signature_def`` field exists)."""
        check_metadata_request(request)
        return metadata_response(self._registry.resolve(request.model_spec))

    def get_model_status(self, request: Any) -> Any:
        """Answers a ``GetModelStatusRequest`` with every known version and its state."""
        return self._registry.status_response(request)
