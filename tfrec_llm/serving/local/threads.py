"""An executor of daemon threads whose unfinished work can be abandoned: bounded shutdown.

``concurrent.futures.ThreadPoolExecutor`` joins its worker threads when the interpreter exits,
so one large Predict still running kept ``tfrec-llm serve`` alive for its whole duration after
Ctrl-C (13 to 19 s measured). A TensorFlow op cannot be interrupted from Python, so the local
server does what a process being stopped can do: it fails every unfinished call's future with
an ``UNAVAILABLE`` status (the waiting request handler answers at once) and leaves the op to
finish, or to die with the process, on a daemon thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

__all__ = ["AbandoningExecutor"]


class AbandoningExecutor(futures.Executor):
    """Runs calls on up to ``max_workers`` daemon threads; :meth:`abandon` fails the unfinished.

    Args:
        max_workers: Most threads running calls at once.
        name: Thread name prefix.
    """

    def __init__(self, max_workers: int, name: str) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers={max_workers} must be >= 1")
        self._max_workers, self._name = max_workers, name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._unfinished: set[futures.Future[Any]] = set()
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        """Schedules ``fn(*args, **kwargs)``.

        Raises:
            RuntimeError: After :meth:`shutdown`.
        """
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            future: futures.Future[Any] = futures.Future()
            self._unfinished.add(future)
            self._queue.put((future, fn, args, kwargs))
            if self._idle == 0 and len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._idle -= 1 if self._idle else 0
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.put(None)  # wake the next worker too
                return
            future, fn, args, kwargs = item
            if self._start(future):
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001  (handed to the waiting caller)
                    self._settle(future, exc=exc)
                else:
                    self._settle(future, result=result)
            with self._lock:
                self._unfinished.discard(future)
                self._idle += 1

    @staticmethod
    def _start(future: futures.Future[Any]) -> bool:
        try:
            return future.set_running_or_notify_cancel()
        except RuntimeError:  # abandoned while queued: already failed
            return False

    @staticmethod
    def _settle(future: futures.Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
        try:
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)
        except futures.InvalidStateError:
            pass  # abandoned meanwhile: the caller already has its answer

    def unfinished(self) -> int:
        """How many submitted calls have not finished (queued or running)."""
        with self._lock:
            return len(self._unfinished)

    def wait_idle(self, timeout_s: float) -> bool:
        """Waits up to ``timeout_s`` for every submitted call to finish; True if they did."""
        with self._lock:
            pending = list(self._unfinished)
        done, not_done = futures.wait(pending, timeout=max(timeout_s, 0.0))
        return not not_done

    def abandon(self, exc: BaseException) -> int:
        """Fails every unfinished call's future with ``exc``; returns how many there were.

        A call already running keeps running on its daemon thread; its result is dropped.
        """
        with self._lock:
            pending = list(self._unfinished)
        count = 0
        for future in pending:
            try:
                future.set_exception(exc)
                count += 1
            except futures.InvalidStateError:
                pass  # finished meanwhile
        return count

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuses new calls; ``wait`` blocks until the queued and running calls finish."""
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        if cancel_futures:
            with self._lock:
                pending = list(self._unfinished)
            for future in pending:
                future.cancel()
        self._queue.put(None)
        if wait:
            for thread in threads:
                thread.join()
