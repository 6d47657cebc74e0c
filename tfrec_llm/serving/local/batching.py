"""Request batching of the local server, like TF Serving's ``--enable_batching``.

Concurrent ``Predict`` requests for the same servable (model, version, loaded object) and
signature are merged into one signature call: their batched inputs are concatenated along
dimension 0, the call runs once, and every output is split back by row offsets. Parameters
come from the same ``batching.config`` (a ``BatchingParameters`` text proto) the compose file
passes to ``tensorflow_model_server --batching_parameters_file``:

* ``max_batch_size``: rows per merged call; a request with more rows runs alone.
* ``batch_timeout_micros``: how long an open batch waits for more requests after its first
  one; 0 closes it as soon as a batch thread is free (requests still merge while all threads
  are busy).
* ``num_batch_threads``: threads running merged calls.
* ``max_enqueued_batches``: batches (open or waiting) per queue; beyond it a request gets
  ``UNAVAILABLE``, as in TF Serving.
* Other TF Serving fields (``allowed_batch_sizes``, ``pad_variable_length_inputs``...) are
  accepted and ignored: requests whose non-batch dimensions differ are never merged or padded.

Two requests share a queue only when every input has the same role, dtype and non-batch shape:
an input sent with rank >= 1 is *batched* (all batched inputs of a request must have the same
row count, or the request runs alone); a scalar input, or one filled from the signature's
defaults, is *shared* and must be equal (same bytes) in every merged request. So the retrieval
signature merges requests with the same ``k`` and no ``recent_item_ids``/``exclude_item_ids``.
A merged call's error reaches every request of the batch; when an output has no batch
dimension of the merged size, the requests are answered one by one instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import NamedTuple

import grpc
import numpy as np

from tfrec_llm.errors import ConfigError

__all__ = [
    "BatchRefused",
    "BatchScheduler",
    "BatchingParameters",
    "MergeSpec",
    "batch_key",
    "read_batching_parameters",
]

_LOG = logging.getLogger(__name__)
_IGNORED_FIELDS = frozenset(
    {
        "allowed_batch_sizes",
        "pad_variable_length_inputs",
        "thread_pool_name",
        "enable_large_batch_splitting",
        "max_execution_batch_size",
        "mixed_priority_batching_policy",
        "batch_padding_policy",
        "low_priority_max_batch_size",
        "low_priority_batch_timeout_micros",
        "low_priority_max_enqueued_batches",
        "low_priority_allowed_batch_sizes",
    }
)
_FIELD = re.compile(r"(\w+)\s*(?:\{\s*value\s*:\s*([^\s}]+)\s*\}|:\s*(\S+))")

Arrays = dict[str, np.ndarray]
CallFn = Callable[[Arrays], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class BatchingParameters:
    """The ``BatchingParameters`` fields the local server implements (TF Serving's defaults).

    Attributes:
        max_batch_size: Most rows in one merged call.
        batch_timeout_micros: Microseconds an open batch waits for more requests.
        num_batch_threads: Threads running merged calls.
        max_enqueued_batches: Batches a queue may hold before requests are refused.
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    num_batch_threads: int = max(os.cpu_count() or 1, 1)
    max_enqueued_batches: int = 10

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"batching parameter {name}={getattr(self, name)} must be >= 1.")
        if self.batch_timeout_micros < 0:
            raise ConfigError(
                f"batching parameter batch_timeout_micros={self.batch_timeout_micros} must be >= 0."
            )


def read_batching_parameters(path: str | os.PathLike[str] | None) -> BatchingParameters:
    """Reads a ``BatchingParameters`` text proto (``serving/batching.config``).

    Args:
        path: The file; ``None`` gives TF Serving's defaults.

    Raises:
        ConfigError: If the file cannot be read, a value is not an integer, or a field is not a
            ``BatchingParameters`` field.
    """
    if path is None:
        return BatchingParameters()
    try:
        with open(path, encoding="utf-8") as f:
            text = "\n".join(line.split("#", 1)[0] for line in f)
    except OSError as exc:
        raise ConfigError(f"cannot read --batching_parameters_file {os.fspath(path)!r}: {exc}") from exc
    values: dict[str, int] = {}
    rest = _FIELD.sub(" ", text)
    if rest.strip():
        raise ConfigError(f"{os.fspath(path)}: cannot parse {rest.strip()[:60]!r} as a text-proto field.")
    for name, wrapped, plain in _FIELD.findall(text):
        if name in _IGNORED_FIELDS:
            _LOG.info("%s: %s is not used by the local server", os.fspath(path), name)
            continue
        if name not in BatchingParameters.__dataclass_fields__:
            raise ConfigError(f"{os.fspath(path)}: {name!r} is not a BatchingParameters field.")
        try:
            values[name] = int(wrapped or plain)
        except ValueError:
            raise ConfigError(
                f"{os.fspath(path)}: {name} must be an integer, got {wrapped or plain!r}."
            ) from None
    return BatchingParameters(**values)


class MergeSpec(NamedTuple):
    """How one request can merge: its key part, row count and batched input aliases."""

    key: Hashable
    rows: int
    batched: frozenset[str]


def batch_key(arrays: Mapping[str, np.ndarray], from_request: Mapping[str, bool]) -> MergeSpec | None:
    """The merge key of one request's inputs; ``None`` when it cannot merge with others.

    Args:
        arrays: Input alias -> array (defaults filled in).
        from_request: Input alias -> whether the request sent it (else it is a default).
    """
    parts: list[Hashable] = []
    rows: int | None = None
    for alias in sorted(arrays):
        array = arrays[alias]
        if from_request[alias] and array.ndim >= 1:
            if rows is None:
                rows = array.shape[0]
            elif array.shape[0] != rows:
                return None
            parts.append((alias, "batched", array.dtype.str, array.shape[1:]))
        else:
            digest = hashlib.blake2b(
                array.tobytes() if array.dtype != object else repr(array.tolist()).encode(), digest_size=16
            ).digest()
            parts.append((alias, "shared", array.dtype.str, array.shape, digest))
    if rows is None or rows == 0:
        return None
    return MergeSpec(tuple(parts), rows, frozenset(p[0] for p in parts if p[1] == "batched"))


@dataclass(eq=False)
class _Task:
    arrays: Arrays
    rows: int
    future: futures.Future = field(default_factory=futures.Future)


def _settle(
    task: _Task, result: Mapping[str, np.ndarray] | None = None, exc: BaseException | None = None
) -> None:
    """Sets a task's outcome unless it already has one (abandoned at close)."""
    try:
        if exc is not None:
            task.future.set_exception(exc)
        else:
            task.future.set_result(result)
    except futures.InvalidStateError:
        pass


@dataclass
class _Batch:
    key: Hashable
    call: CallFn
    batched: frozenset[str]
    opened: float
    tasks: list[_Task] = field(default_factory=list)
    rows: int = 0
    closed: bool = False


class BatchScheduler:
    """Merges concurrent calls with the same key into one call, run by a few threads.

    Args:
        params: Batch size, timeout, threads and queue bound.
        clock: Seconds, monotonic (tests pass a fake one and call :meth:`wake`).
    """

    def __init__(self, params: BatchingParameters, clock: Callable[[], float] = time.monotonic) -> None:
        self.params = params
        self._clock = clock
        self._timeout_s = params.batch_timeout_micros / 1e6
        self._cond = threading.Condition()
        self._queues: dict[Hashable, deque[_Batch]] = {}
        self._stopping = False
        self._running: set[_Task] = set()
        self._threads = [
            threading.Thread(target=self._work, name=f"tfrec-batch-{i}", daemon=True)
            for i in range(params.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, key: Hashable, call: CallFn, arrays: Arrays, spec: MergeSpec) -> futures.Future:
        """Queues one request; returns a future of its own outputs (alias -> array).

        Args:
            key: Requests with equal keys are merged: the servable and signature, plus
                ``spec.key``.
            call: Runs a (merged) input dict; the same for every request of the key.
            arrays: This request's inputs.
            spec: Its ``batch_key``: row count and batched inputs.

        Raises:
            BatchRefused: ``UNAVAILABLE`` when the queue is full or the scheduler is stopping.
        """
        rows = spec.rows
        task = _Task(arrays, rows)
        with self._cond:
            if self._stopping:
                raise BatchRefused("The server is shutting down.")
            queue = self._queues.setdefault(key, deque())
            batch = queue[-1] if queue else None
            if batch is None or batch.closed or batch.rows + rows > self.params.max_batch_size:
                if len(queue) >= self.params.max_enqueued_batches:
                    raise BatchRefused("The batch scheduling queue to which this task was submitted is full")
                batch = _Batch(key, call, spec.batched, self._clock())
                queue.append(batch)
            batch.tasks.append(task)
            batch.rows += rows
            if batch.rows >= self.params.max_batch_size:
                batch.closed = True
            self._cond.notify()
        return task.future

    def queued_requests(self) -> int:
        """Requests waiting in a batch that has not started yet."""
        with self._cond:
            return sum(len(b.tasks) for q in self._queues.values() for b in q)

    def wake(self) -> None:
        """Makes the batch threads re-check the timeouts now (after a fake clock moved)."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Refuses new requests and fails queued and running ones with ``UNAVAILABLE`` at once.

        A merged call in progress is abandoned: it ends on its daemon thread, its answer is
        dropped.
        """
        with self._cond:
            self._stopping = True
            pending = [t for q in self._queues.values() for b in q for t in b.tasks]
            running = list(self._running)
            self._queues.clear()
            self._cond.notify_all()
        for task in pending:
            task.future.set_running_or_notify_cancel()
        for task in pending + running:
            _settle(task, exc=BatchRefused("The server is shutting down."))

    # ------------------------------------------------------------- batch threads
    def _next_batch(self) -> _Batch | None:
        """The oldest ready batch (closed or timed out), waiting for one; ``None`` when stopping."""
        with self._cond:
            while not self._stopping:
                now, wait, ready = self._clock(), None, None
                for queue in self._queues.values():
                    head = queue[0]
                    due = head.opened + self._timeout_s
                    if head.closed or now >= due:
                        if ready is None or head.opened < ready.opened:
                            ready = head
                    else:
                        wait = due - now if wait is None else min(wait, due - now)
                if ready is not None:
                    queue = self._queues[ready.key]
                    queue.popleft()
                    if not queue:
                        del self._queues[ready.key]
                    return ready
                self._cond.wait(wait)
            return None

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            with self._cond:
                tasks = [t for t in batch.tasks if t.future.set_running_or_notify_cancel()]
                self._running.update(tasks)
            if tasks:
                self._run(batch.call, batch.batched, tasks)
            with self._cond:
                self._running.difference_update(tasks)

    @staticmethod
    def _run(call: CallFn, batched: frozenset[str], tasks: list[_Task]) -> None:
        try:
            if len(tasks) == 1:
                _settle(tasks[0], call(tasks[0].arrays))
                return
            merged = {}
            for alias, first in tasks[0].arrays.items():
                merged[alias] = (
                    np.concatenate([t.arrays[alias] for t in tasks]) if alias in batched else first
                )
            outputs = call(merged)
        except BaseException as exc:  # every caller of the merged call gets its error
            for task in tasks:
                _settle(task, exc=exc)
            return
        total = sum(t.rows for t in tasks)
        if any(np.ndim(v) < 1 or np.shape(v)[0] != total for v in outputs.values()):
            _LOG.info(
                "outputs %s have no batch dimension of %d rows: answering one by one", sorted(outputs), total
            )
            for task in tasks:
                BatchScheduler._run(call, batched, [task])
            return
        start = 0
        for task in tasks:
            stop = start + task.rows
            _settle(task, {k: v[start:stop] for k, v in outputs.items()})
            start = stop


class BatchRefused(Exception):
    """A request the scheduler did not take (queue full, shutting down): ``UNAVAILABLE``."""

    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
