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
from concurrent import futures
from typing import Any

from tfrec_llm.errors import ConfigError
from tfrec_llm.export.models_config import ModelEntry, read_models_config
from tfrec_llm.serving.local.batching import BatchingParameters, BatchScheduler
from tfrec_llm.serving.local.grpc_api import GrpcFrontend
from tfrec_llm.serving.local.predict import (
    Servable,
    check_metadata_request,
    metadata_response,
    predict_on,
)
from tfrec_llm.serving.local.registry import ModelRegistry
from tfrec_llm.serving.local.rest_api import RestFrontend

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
        self._batching = batching_parameters
        self._batcher: BatchScheduler | None = None
        self._stopped = threading.Event()
        self._executor: futures.ThreadPoolExecutor | None = None
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

        Raises:
            ConfigError: If a port cannot be bound (everything started so far is stopped).
        """
        try:
            self._start()
        except BaseException:
            self.stop(grace_s=0)
            raise
        for name, path in self._registry.empty_models().items():
            _LOG.warning(
                "model %s: no loadable version folder under %s yet; requests get NOT_FOUND until one appears",
                name,
                path,
            )
        return self

    def _start(self) -> None:
        self._stopped.clear()
        self._executor = futures.ThreadPoolExecutor(self._max_workers, "tfrec-model")
        self._batcher = BatchScheduler(self._batching) if self._batching is not None else None
        self._registry.poll_once()
        self._grpc = GrpcFrontend(self, self._host, self._port, self._max_workers)
        self.grpc_port = self._grpc.port
        if self._rest_port_req is not None:
            try:
                self._rest = RestFrontend(self, self._host, self._rest_port_req)
            except OSError as exc:
                raise ConfigError(f"cannot bind REST to {self._host}:{self._rest_port_req}: {exc}") from exc
            self.rest_port = self._rest.port
        self._registry.start_polling(self.poll_interval_s)
        _LOG.info("serving gRPC on %s:%s, REST on %s", self._host, self.grpc_port, self.rest_port)

    def stop(self, grace_s: float = 1.0) -> None:
        """Stops the poller, the REST and gRPC frontends and unloads every model."""
        self._registry.stop_polling()
        if self._rest is not None:
            self._rest.close()
            self._rest = None
            self.rest_port = None
        if self._grpc is not None:
            self._grpc.close(grace_s)
            self._grpc = None
            self.grpc_port = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None
        self._registry.unload_all()
        self._stopped.set()

    def serve_forever(self) -> None:
        """Starts (if needed) and blocks until :meth:`stop` (another thread) or Ctrl-C.

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
            self.stop()

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
