"""Model registry of the local server: version polling, loading with warmup, atomic hot swap.

Mirrors TF Serving's version manager where a client can see it:

* Version policy ``latest`` (newest ``num_versions``), ``all`` or ``specific``; a poller thread
  rescans the base paths every ``poll_interval_s``.
* Hot swap: a new version is fully loaded (``tf.saved_model.load`` plus the warmup requests in
  ``assets.extra/tf_serving_warmup_requests``) before it is swapped in; the old one is unloaded
  afterwards. The servable and state maps are replaced, never mutated, so a request sees either
  the old or the new map. A version that fails to load is reported ``END`` with its error and
  the old version keeps serving.
* A failed load is retried on every poll, like TF Serving, so a version copied in place (not
  renamed) is served once its files are complete. The error is logged when it first appears or
  changes, not on every retry.
* With the ``latest`` policy, a newest version that does not load does not leave the model
  empty: the newest versions that do load are served instead (at startup too), and the log says
  which one and why.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2

from tfrec_llm.export.models_config import ModelEntry
from tfrec_llm.export.op_scan import TF_TEXT_CLASSIC_OPS, TF_TEXT_OTHER_OPS
from tfrec_llm.export.warmup import read_warmup_requests
from tfrec_llm.serving.local.predict import RequestStatusError, Servable, predict_on
from tfrec_llm.serving.local.versions import aspired_versions, version_folders

__all__ = ["ModelRegistry", "load_servable"]

_LOG = logging.getLogger(__name__)
_TF_TEXT_OPS = TF_TEXT_CLASSIC_OPS | TF_TEXT_OTHER_OPS


@dataclass
class _Model:
    entry: ModelEntry
    servables: dict[int, Servable] = field(default_factory=dict)  # replaced, never mutated
    states: dict[int, tuple[str, str]] = field(default_factory=dict)  # version -> (state, error)
    failed: dict[int, str] = field(default_factory=dict)  # version -> last load error
    poll_lock: threading.Lock = field(default_factory=threading.Lock)
    fallback: int | None = None  # the older version last served in place of a failed newest


def _uses_tf_text(meta_graph: Any) -> bool:
    nodes = list(meta_graph.graph_def.node)
    for function in meta_graph.graph_def.library.function:
        nodes.extend(function.node_def)
    return any(n.op in _TF_TEXT_OPS or n.op.startswith("TFText>") for n in nodes)


def load_servable(name: str, version: int, path: str) -> Servable:
    """Loads one version folder and runs its warmup requests.

    Raises:
        ValueError: If there is no ``serve`` meta graph or a warmup request fails.
        Exception: Whatever ``tf.saved_model.load`` raises for a broken folder.
    """
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
    servable = Servable(name, version, path, model, signature_defs, functions, 0.0)
    for i, request in enumerate(read_warmup_requests(path)):
        try:
            predict_on(servable, request, executor=None, timeout_s=None)
        except RequestStatusError as exc:
            raise ValueError(f"warmup request {i} failed: {exc.code.name}: {exc}") from exc
    return Servable(name, version, path, model, signature_defs, functions, time.monotonic() - start)


class ModelRegistry:
    """The served versions of every model, kept in step with their version folders.

    Args:
        entries: The models (from ``models.config`` or one base path).
    """

    def __init__(self, entries: Sequence[ModelEntry]) -> None:
        self._models = {e.name: _Model(e) for e in entries}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._loads = 0  # loads running now (poller or initial load)

    # --------------------------------------------------------------- polling
    def resume(self) -> None:
        """Allows loads again after :meth:`stop_polling` (a restarted server)."""
        self._stop.clear()

    def start_polling(self, interval_s: float) -> None:
        """Starts the daemon thread that calls :meth:`poll_once` every ``interval_s``."""
        self._stop.clear()
        self._poller = threading.Thread(
            target=self._poll_loop, args=(interval_s,), name="tfrec-poller", daemon=True
        )
        self._poller.start()

    def stop_polling(self, timeout_s: float | None = None) -> None:
        """Stops the poller thread, waiting up to ``timeout_s`` for a scan in progress.

        A load still running after that is abandoned: its daemon thread drops the result.
        """
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout_s)
            self._poller = None

    def _poll_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
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
        folders = version_folders(entry.local_path)
        aspired = aspired_versions(entry, sorted(folders))
        model.failed = {v: e for v, e in model.failed.items() if v in folders}  # deleted: forget
        loaded = [v for v in aspired if self._ensure_loaded(model, v, folders[v])]
        if entry.policy == "latest" and len(loaded) < len(aspired):
            loaded = self._fall_back(model, folders, aspired, loaded)
        elif loaded:
            model.fallback = None
        if not loaded:
            return  # availability preserving: keep serving what we have
        for version in [v for v in model.servables if v not in loaded]:
            self._set_state(model, version, "UNLOADING")
            with self._lock:
                model.servables = {v: s for v, s in model.servables.items() if v != version}
                model.states = {**model.states, version: ("END", "")}
            _LOG.info("unloaded %s version %s", entry.name, version)

    def _fall_back(
        self, model: _Model, folders: dict[int, str], aspired: list[int], loaded: list[int]
    ) -> list[int]:
        """``latest`` policy: older versions that load stand in for aspired ones that do not."""
        want = len(aspired)
        for version in sorted((v for v in folders if v < min(aspired)), reverse=True):
            if len(loaded) >= want or self._stop.is_set():
                break
            if self._ensure_loaded(model, version, folders[version]):
                loaded.append(version)
                if model.fallback != version:
                    _LOG.warning(
                        "model %s: serving version %s, the newest version that loads, because "
                        "version(s) %s failed to load: %s",
                        model.entry.name,
                        version,
                        ", ".join(str(v) for v in aspired if v not in loaded),
                        "; ".join(f"{v}: {model.failed[v]}" for v in aspired if v in model.failed),
                    )
                    model.fallback = version
        return sorted(loaded)

    def _ensure_loaded(self, model: _Model, version: int, path: str) -> bool:
        """Loads ``version`` unless it is served; a failure is recorded (retried next poll)."""
        if version in model.servables:
            return True
        if self._stop.is_set():
            return False
        name = model.entry.name
        if version not in model.failed:  # a retry keeps reporting END with the last error
            self._set_state(model, version, "LOADING")
        with self._lock:
            self._loads += 1
        try:
            servable = load_servable(name, version, path)
        except Exception as exc:  # any load or warmup failure keeps the old version
            error = f"{type(exc).__name__}: {exc}"
            self._set_state(model, version, "END", error)
            if model.failed.get(version) != error:  # log once per distinct error, retry quietly
                _LOG.error(
                    "failed to load %s version %s from %s (retried on every poll): %s",
                    name,
                    version,
                    path,
                    error,
                )
            model.failed[version] = error
            return False
        finally:
            with self._lock:
                self._loads -= 1
        with self._lock:
            if self._stop.is_set():  # the server stopped during the load: drop it
                return False
            model.servables = {**model.servables, version: servable}
            model.states = {**model.states, version: ("AVAILABLE", "")}
        model.failed.pop(version, None)
        _LOG.info("loaded %s version %s in %.2fs", name, version, servable.load_seconds)
        return True

    def unload_all(self) -> None:
        """Drops every loaded version (the server is stopping)."""
        with self._lock:
            for model in self._models.values():
                model.servables = {}

    # ---------------------------------------------------------------- views
    def loading(self) -> bool:
        """True while a version is being loaded."""
        with self._lock:
            return self._loads > 0

    def empty_models(self) -> dict[str, str]:
        """Model name -> why it has no served version (no version folder, or failed loads)."""
        empty = {}
        for name, model in self._models.items():
            if model.servables:
                continue
            path = model.entry.local_path
            if model.failed:
                versions = ", ".join(str(v) for v in sorted(model.failed, reverse=True))
                empty[name] = f"every version under {path} failed to load ({versions}; see the errors above)"
            else:
                empty[name] = f"no version folder (an integer folder holding saved_model.pb) under {path} yet"
        return empty

    def served_versions(self, model_name: str) -> tuple[int, ...]:
        """The versions of ``model_name`` that answer requests now, ascending."""
        model = self._models.get(model_name)
        return tuple(sorted(model.servables)) if model else ()

    def load_seconds(self, model_name: str, version: int) -> float:
        """Seconds the load (including warmup) of a served version took."""
        return self._models[model_name].servables[version].load_seconds

    def resolve(self, model_spec: Any) -> Servable:
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

    def status_response(self, request: Any) -> Any:
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
