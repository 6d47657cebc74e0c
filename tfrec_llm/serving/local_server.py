"""LocalModelServer: TF Serving's gRPC and REST APIs in Python, over TF Serving version folders.

Production serving is the real ``tensorflow/serving`` image (``serving/``). This server exists
for tests, CI and laptops, where no ``tensorflow_model_server`` binary is available: it speaks
the same protos (``PredictionService.Predict/GetModelMetadata``, ``ModelService.GetModelStatus``)
and the same REST routes, so the real clients run over a real socket. It mirrors TF Serving's
behaviour where it matters to a client:

* Version folders: ``<base_path>/<int>/saved_model.pb``. Folders whose name is not an integer
  (``tmp...``, ``.partial``) or that lack ``saved_model.pb`` are never loaded.
* Version policy: ``latest`` (default, newest version), ``all`` or ``specific`` from
  ``models.config``. A poller thread rescans every ``poll_interval_s``.
* Hot swap: a new version is fully loaded (``tf.saved_model.load`` plus the warmup requests in
  ``assets.extra/tf_serving_warmup_requests``) before it is swapped in; the old version is
  unloaded afterwards. A version that fails to load is reported ``END`` with its error and the
  old version keeps serving.
* Predict: missing inputs are filled from ``SignatureDef.defaults``; status codes and messages
  follow TF Serving (``NOT_FOUND`` ``Servable not found for request: Latest(name)``,
  ``FAILED_PRECONDITION`` ``Serving signature key "x" not found.``, ``INVALID_ARGUMENT`` for
  inputs). Dtype and rank are checked against the signature before the call.

Example:
    >>> with LocalModelServer(model_name="retrieval", model_base_path="exports/retrieval",
    ...                       port=0, rest_port=0) as server:            # doctest: +SKIP
    ...     print(server.grpc_port, server.rest_port)
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format, text_format
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfrec_llm.errors import ConfigError
from tfrec_llm.export.op_scan import TF_TEXT_CLASSIC_OPS, TF_TEXT_OTHER_OPS
from tfrec_llm.export.warmup import read_warmup_requests
from tfrec_llm.export.models_config import ModelEntry, read_models_config

__all__ = ["LocalModelServer", "RequestStatusError", "list_version_folders"]

_LOG = logging.getLogger(__name__)
DEFAULT_SIGNATURE = "serving_default"
_CODE_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}
_TF_TEXT_OPS = TF_TEXT_CLASSIC_OPS | TF_TEXT_OTHER_OPS


class RequestStatusError(Exception):
    """A failed request: a gRPC status code and TF Serving-style message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class _Servable:
    name: str
    version: int
    path: str
    model: Any  # the loaded SavedModel object; keeps the functions alive
    signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
    functions: Mapping[str, Callable[..., Mapping[str, tf.Tensor]]]
    load_seconds: float


@dataclass
class _Model:
    entry: ModelEntry
    servables: dict[int, _Servable] = field(default_factory=dict)  # replaced, never mutated
    states: dict[int, tuple[str, str]] = field(default_factory=dict)  # version -> (state, error)
    failed: set[int] = field(default_factory=set)
    poll_lock: threading.Lock = field(default_factory=threading.Lock)


def list_version_folders(base_path: str) -> list[int]:
    """Returns the versions of the complete version folders under ``base_path``, ascending.

    A folder counts when its name is a non-negative integer (so never ``tmp...`` or ``.x``) and
    it holds ``saved_model.pb`` (or ``saved_model.pbtxt``).
    """
    return sorted(_version_folders(base_path))


def _version_folders(base_path: str) -> dict[int, str]:
    if not os.path.isdir(base_path):
        return {}
    versions = {}
    for entry in os.scandir(base_path):
        name = entry.name
        if name.startswith(".") or name.lower().startswith("tmp"):
            continue
        if not (name.isascii() and name.isdigit()):
            continue
        if not entry.is_dir():
            continue
        if any(
            os.path.isfile(os.path.join(entry.path, f))
            for f in ("saved_model.pb", "saved_model.pbtxt")
        ):
            versions[int(name)] = entry.path
    return versions


def _aspired(entry: ModelEntry, available: list[int]) -> list[int]:
    if entry.policy == "all":
        return list(available)
    if entry.policy == "specific":
        return [v for v in available if v in set(entry.versions)]
    return sorted(available)[-entry.num_versions :] if available else []


def _uses_tf_text(meta_graph: Any) -> bool:
    nodes = list(meta_graph.graph_def.node)
    for function in meta_graph.graph_def.library.function:
        nodes.extend(function.node_def)
    return any(n.op in _TF_TEXT_OPS or n.op.startswith("TFText>") for n in nodes)


def _dtype_name(enum: int) -> str:
    return str(tf.dtypes.as_dtype(enum).name) if enum else "invalid"


def _expected_shape(info: meta_graph_pb2.TensorInfo) -> list[int] | None:
    if info.tensor_shape.unknown_rank:
        return None
    return [int(d.size) for d in info.tensor_shape.dim]


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
        self._models = {e.name: _Model(e) for e in entries}
        self._host, self._port, self._rest_port_req = host, port, rest_port
        self.poll_interval_s = poll_interval_s
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._executor: futures.ThreadPoolExecutor | None = None
        self._handler_pool: futures.ThreadPoolExecutor | None = None
        self._grpc_server: grpc.Server | None = None
        self._rest: _RestFrontend | None = None
        self._poller: threading.Thread | None = None
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
        for name, model in self._models.items():
            if not model.servables:
                _LOG.warning(
                    "model %s: no loadable version folder under %s yet; requests get NOT_FOUND "
                    "until one appears",
                    name,
                    model.entry.local_path,
                )
        return self

    def _start(self) -> None:
        self._executor = futures.ThreadPoolExecutor(self._max_workers, "tfrec-model")
        self._handler_pool = futures.ThreadPoolExecutor(self._max_workers, "tfrec-grpc")
        self.poll_once()
        server = grpc.server(
            self._handler_pool,
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", -1),
                ("grpc.max_send_message_length", -1),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionServicer(self), server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(self), server)
        try:
            bound = server.add_insecure_port(f"{self._host}:{self._port}")
        except RuntimeError as exc:
            raise ConfigError(f"cannot bind gRPC to {self._host}:{self._port}: {exc}") from exc
        if not bound:
            raise ConfigError(f"cannot bind gRPC to {self._host}:{self._port} (port in use?).")
        server.start()
        self._grpc_server, self.grpc_port = server, bound
        if self._rest_port_req is not None:
            try:
                self._rest = _RestFrontend(self, self._host, self._rest_port_req)
            except OSError as exc:
                raise ConfigError(
                    f"cannot bind REST to {self._host}:{self._rest_port_req}: {exc}"
                ) from exc
            self.rest_port = self._rest.port
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_loop, name="tfrec-poller", daemon=True)
        self._poller.start()
        _LOG.info("serving gRPC on %s:%s, REST on %s", self._host, self.grpc_port, self.rest_port)

    def stop(self, grace_s: float = 1.0) -> None:
        """Stops the poller, the REST and gRPC frontends and unloads every model."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        if self._rest is not None:
            self._rest.close()
            self._rest = None
            self.rest_port = None
        if self._grpc_server is not None:
            self._grpc_server.stop(grace_s).wait()
            self._grpc_server = None
            self.grpc_port = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._handler_pool is not None:
            self._handler_pool.shutdown(wait=False, cancel_futures=True)
            self._handler_pool = None
        with self._lock:
            for model in self._models.values():
                model.servables = {}

    def serve_forever(self) -> None:
        """Starts (if needed) and blocks until :meth:`stop` or Ctrl-C."""
        if self._grpc_server is None:
            self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ version manager
    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.poll_once()
            except Exception:  # keep polling whatever happens to one scan
                _LOG.exception("version poll failed")

    def poll_once(self) -> None:
        """Scans every base path once: loads aspired versions, then unloads the others."""
        for model in self._models.values():
            with model.poll_lock:
                self._sync_model(model)

    def _set_state(self, model: _Model, version: int, state: str, error: str = "") -> None:
        with self._lock:
            model.states = {**model.states, version: (state, error)}

    def _sync_model(self, model: _Model) -> None:
        entry = model.entry
        folders = _version_folders(entry.local_path)
        aspired = _aspired(entry, sorted(folders))
        for version in aspired:
            if version in model.servables or version in model.failed:
                continue
            path = folders[version]
            self._set_state(model, version, "LOADING")
            try:
                servable = self._load(entry.name, version, path)
            except Exception as exc:  # any load or warmup failure keeps the old version
                model.failed.add(version)
                self._set_state(model, version, "END", f"{type(exc).__name__}: {exc}")
                _LOG.error(
                    "failed to load %s version %s from %s: %s", entry.name, version, path, exc
                )
                continue
            with self._lock:
                model.servables = {**model.servables, version: servable}
                model.states = {**model.states, version: ("AVAILABLE", "")}
            _LOG.info("loaded %s version %s in %.2fs", entry.name, version, servable.load_seconds)
        if not any(v in model.servables for v in aspired):
            return  # availability preserving: keep serving what we have
        for version in [v for v in model.servables if v not in aspired]:
            self._set_state(model, version, "UNLOADING")
            with self._lock:
                model.servables = {v: s for v, s in model.servables.items() if v != version}
                model.states = {**model.states, version: ("END", "")}
            _LOG.info("unloaded %s version %s", entry.name, version)

    def _load(self, name: str, version: int, path: str) -> _Servable:
        start = time.monotonic()
        proto = saved_model_pb2.SavedModel()
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            with open(os.path.join(path, "saved_model.pb"), "rb") as f:
                proto.ParseFromString(f.read())
        else:
            with open(os.path.join(path, "saved_model.pbtxt"), encoding="utf-8") as f:
                text_format.Parse(f.read(), proto)
        graphs = [g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags]
        if not graphs:
            raise ValueError(f"{path} has no meta graph tagged 'serve'")
        if _uses_tf_text(graphs[0]):
            # tensorflow_model_server links the TF Text kernels; in Python they register on import
            import tensorflow_text  # noqa: F401
        model = tf.saved_model.load(path, tags=["serve"])
        signature_defs = dict(graphs[0].signature_def)
        functions = {k: model.signatures[k] for k in signature_defs if k in model.signatures}
        servable = _Servable(name, version, path, model, signature_defs, functions, 0.0)
        for i, request in enumerate(read_warmup_requests(path)):
            try:
                self._predict_on(servable, request, timeout_s=None)
            except RequestStatusError as exc:
                raise ValueError(f"warmup request {i} failed: {exc.code.name}: {exc}") from exc
        return _Servable(
            name, version, path, model, signature_defs, functions, time.monotonic() - start
        )

    # --------------------------------------------------------------- public view
    def served_versions(self, model_name: str) -> tuple[int, ...]:
        """The versions of ``model_name`` that answer requests now, ascending."""
        model = self._models.get(model_name)
        return tuple(sorted(model.servables)) if model else ()

    def load_seconds(self, model_name: str, version: int) -> float:
        """Seconds the load (including warmup) of a served version took."""
        return self._models[model_name].servables[version].load_seconds

    def resolve(self, model_spec: Any) -> _Servable:
        """Finds the servable for a ``ModelSpec``, like TF Serving's GetServableHandle."""
        model = self._models.get(model_spec.name)
        servables = model.servables if model else {}
        if model_spec.HasField("version"):
            version = model_spec.version.value
            if version in servables:
                return servables[version]
            raise RequestStatusError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Specific({model_spec.name}, {version})",
            )
        if model_spec.version_label:
            raise RequestStatusError(
                grpc.StatusCode.UNIMPLEMENTED, "version_label is not supported by this server."
            )
        if not servables:
            raise RequestStatusError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Latest({model_spec.name})",
            )
        return servables[max(servables)]

    # ------------------------------------------------------------------ predict
    def predict(self, request: Any, timeout_s: float | None = None) -> Any:
        """Answers a ``PredictRequest``; raises :class:`RequestStatusError` on failure."""
        return self._predict_on(self.resolve(request.model_spec), request, timeout_s)

    def _predict_on(self, servable: _Servable, request: Any, timeout_s: float | None) -> Any:
        sig_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(sig_name)
        function = servable.functions.get(sig_name)
        if signature is None or function is None:
            raise RequestStatusError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{sig_name}" not found.',
            )
        inputs = _prepare_inputs(signature, request.inputs)
        aliases = _output_aliases(signature, request.output_filter)
        executor = self._executor
        if executor is None:  # not started: run inline
            outputs = _call(function, inputs)
        else:
            try:
                future = executor.submit(_call, function, inputs)
            except RuntimeError:  # shut down between lookup and submit
                raise RequestStatusError(
                    grpc.StatusCode.UNAVAILABLE, "The server is shutting down."
                ) from None
            try:
                outputs = future.result(timeout=timeout_s)
            except futures.TimeoutError:
                raise RequestStatusError(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"
                ) from None
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = sig_name
        for alias in aliases:
            response.outputs[alias].CopyFrom(tf.make_tensor_proto(outputs[alias]))
        return response

    # ----------------------------------------------------------- metadata/status
    def get_model_metadata(self, request: Any) -> Any:
        """Answers a ``GetModelMetadataRequest`` (only the ``signature_def`` field exists)."""
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
        servable = self.resolve(request.model_spec)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def get_model_status(self, request: Any) -> Any:
        """Answers a ``GetModelStatusRequest`` with every known version and its state."""
        name = request.model_spec.name
        model = self._models.get(name)
        states = dict(model.states) if model else {}
        if request.model_spec.HasField("version"):
            version = request.model_spec.version.value
            if version not in states:
                raise RequestStatusError(
                    grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}"
                )
            states = {version: states[version]}
        if not states:
            raise RequestStatusError(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}"
            )
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in sorted(states):
            state, error = states[version]
            status = response.model_version_status.add(version=version)
            status.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
            status.status.SetInParent()  # TF Serving always reports a status (OK = 0)
            if error:
                status.status.error_code = grpc.StatusCode.UNKNOWN.value[0]
                status.status.error_message = error
        return response


def _prepare_inputs(signature: Any, request_inputs: Mapping[str, Any]) -> dict[str, tf.Tensor]:
    """Validates request inputs against a SignatureDef, fills defaults, returns tensors."""
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
    tensors = {}
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
            array = tf.make_ndarray(proto)
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
        tensors[alias] = tf.convert_to_tensor(array, dtype=tf.dtypes.as_dtype(info.dtype))
    unknown = sorted(set(req) - set(expected))
    if unknown:
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Inputs contains invalid name. Used request inputs: "
            f"{','.join(a for a in req if a in sig_inputs)}, request input: {','.join(req)}",
        )
    return tensors


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


def _call(
    function: Callable[..., Mapping[str, tf.Tensor]], inputs: dict[str, tf.Tensor]
) -> dict[str, np.ndarray]:
    try:
        outputs = function(**inputs)
        return {k: v.numpy() for k, v in outputs.items()}
    except tf.errors.OpError as exc:
        code = _CODE_BY_VALUE.get(exc.error_code, grpc.StatusCode.INTERNAL)
        raise RequestStatusError(code, exc.message) from None
    except (TypeError, ValueError) as exc:
        raise RequestStatusError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None


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
    def __init__(self, server: LocalModelServer) -> None:
        self._server = server

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _answer(
            context, lambda: self._server.predict(request, timeout_s=context.time_remaining())
        )

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _answer(context, lambda: self._server.get_model_metadata(request))

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
    def __init__(self, server: LocalModelServer) -> None:
        self._server = server

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _answer(context, lambda: self._server.get_model_status(request))

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "HandleReloadConfigRequest is not implemented; restart the server with the new "
            "models.config.",
        )


# --------------------------------------------------------------------------- REST API
_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+))?:(classify|regress|predict)", re.I
)
_STATUS_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata)?", re.I)
# TF Serving's mapping (model_servers/http_server.cc, ToHTTPStatusCode).
_HTTP_BY_CODE = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_JSON_OPTS = {"always_print_fields_with_no_presence": True, "preserving_proto_field_name": True}


class _RestFrontend:
    """TF Serving's REST API (``/v1/models/...``) on a ThreadingHTTPServer."""

    def __init__(self, server: LocalModelServer, host: str, port: int) -> None:
        handler = type("_BoundRestHandler", (_RestHandler,), {"model_server": server})
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
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class _RestHandler(BaseHTTPRequestHandler):
    model_server: LocalModelServer

    def log_message(self, format: str, *args: Any) -> None:
        _LOG.debug("REST %s", format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            status, body = 200, self._handle(method)
        except RequestStatusError as exc:
            status, body = _HTTP_BY_CODE.get(exc.code, 500), {"error": exc.message}
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
        server = self.model_server
        match = _PREDICT_PATH.fullmatch(path)
        if method == "POST" and match:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if match.group(3).lower() != "predict":
                raise RequestStatusError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{match.group(3)} is not implemented by this server; use :predict.",
                )
            return _rest_predict(server, _model_spec(match.group(1), match.group(2)), raw)
        match = _STATUS_PATH.fullmatch(path)
        if method == "GET" and match:
            spec = _model_spec(match.group(1), match.group(2))
            if match.group(3):
                request = get_model_metadata_pb2.GetModelMetadataRequest(
                    model_spec=spec, metadata_field=["signature_def"]
                )
                response = server.get_model_metadata(request)
                signature_map = get_model_metadata_pb2.SignatureDefMap()
                response.metadata["signature_def"].Unpack(signature_map)
                return {
                    "model_spec": json_format.MessageToDict(response.model_spec, **_JSON_OPTS),
                    "metadata": {
                        "signature_def": json_format.MessageToDict(signature_map, **_JSON_OPTS)
                    },
                }
            status = server.get_model_status(
                get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
            )
            return json_format.MessageToDict(status, **_JSON_OPTS)
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: {method} {path}"
        )


def _model_spec(name: str, version: str | None) -> Any:
    from tensorflow_serving.apis import model_pb2

    spec = model_pb2.ModelSpec(name=name)
    if version:
        spec.version.value = int(version)
    return spec


def _rest_predict(server: LocalModelServer, spec: Any, raw: bytes) -> Any:
    try:
        body = json.loads(raw.decode("utf-8") or "null")
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT, f"JSON Parse error: {exc}"
        ) from None
    if not isinstance(body, dict):
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT, "Request body must be a JSON object."
        )
    servable = server.resolve(spec)
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
            "Request JSON must have exactly one of 'instances' (row format) or 'inputs' "
            "(columnar format).",
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
    response = server.predict(request)
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
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat: list[Any] = []

    def walk(node: Any, depth: int) -> None:
        if depth == len(shape):
            if isinstance(node, list):
                raise ValueError("nested lists of different depths")
            flat.append(node)
            return
        if not isinstance(node, list) or len(node) != shape[depth]:
            raise ValueError(f"ragged list: every row must have {shape[depth]} values")
        for child in node:
            walk(child, depth + 1)

    dtype = tf.dtypes.as_dtype(dtype_enum) if dtype_enum else None
    try:
        walk(value, 0)
        converted = [_json_leaf(v, dtype) for v in flat]
        if dtype is None or dtype == tf.string:
            array = np.array(converted, dtype=object)
        else:
            array = np.array(converted, dtype=dtype.as_numpy_dtype)
        return array.reshape(shape)
    except (TypeError, ValueError) as exc:
        want = dtype.name if dtype is not None else "a tensor"
        raise RequestStatusError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Failed to convert JSON value of input '{alias}' to {want}: {exc}",
        ) from None


def _json_leaf(value: Any, dtype: tf.DType | None) -> Any:
    if dtype is None:
        return value.encode("utf-8") if isinstance(value, str) else value
    if dtype == tf.string:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, dict) and set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        raise TypeError(f"expected a string, got {value!r}")
    if dtype == tf.bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected true/false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    if dtype.is_integer and not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _to_json_value(array: np.ndarray) -> Any:
    if array.dtype == np.float32:  # shortest repr that round-trips (10.9, not 10.899999618...)
        flat = [float(str(v)) for v in array.ravel()]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    if array.dtype.kind not in ("O", "S"):
        return array.tolist()

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(x) for x in node]
        if isinstance(node, bytes):
            try:
                return node.decode("utf-8")
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(node).decode("ascii")}
        return node

    return convert(array.tolist())


def _outputs_to_json(outputs: Mapping[str, np.ndarray], row: bool) -> Any:
    values = {alias: _to_json_value(arr) for alias, arr in outputs.items()}
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
