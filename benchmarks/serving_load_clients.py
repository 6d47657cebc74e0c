"""The load generators of the serving load test: client threads, client processes, in process.

Every client runs `client_loop`: closed loop (the next request leaves when the last one is
answered), users drawn at random, until the round's deadline. `ClientThreads` are threads of
the benchmark process (sharing its GIL with the server); `ClientProcesses` are this file run as
a script, one ``GrpcClient`` each, driven over stdin/stdout; `InProcess` calls the SavedModel's
signature directly. Each ``round`` returns the merged result of one timed round
(``serving_load_report.one_round``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import common
from serving_load_report import one_round

MODEL_NAME = "retrieval"
HOST = "127.0.0.1"
SCRIPT = str(Path(__file__).resolve())
REPLY = "@@serving_load "  # prefix of a client process's answer lines on stdout


def client_loop(
    call: Callable[[str], Any],
    users: Sequence[str],
    seed: int,
    start_at: float,
    seconds: float,
) -> dict[str, Any]:
    """One client: waits for ``start_at`` (``time.time()``), then calls back to back until
    ``start_at + seconds``; stops by itself.

    Returns:
        ``{"latencies_ms", "errors", "first_error", "end"}`` (``end`` is ``time.time()`` when the
        last answer arrived). Only ``tfrec_llm.errors.ServingError`` counts as an error;
        anything else propagates.
    """
    import numpy as np

    from tfrec_llm.errors import ServingError

    picks = [str(u) for u in np.random.default_rng(seed).choice(np.asarray(users), size=8192)]
    latencies: list[float] = []
    errors, first_error = 0, ""
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    deadline = start_at + seconds
    i = 0
    while time.time() < deadline:
        user = picks[i % len(picks)]
        i += 1
        begin = time.perf_counter()
        try:
            call(user)
        except ServingError as exc:
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"
            continue
        latencies.append(1000.0 * (time.perf_counter() - begin))
    return {
        "latencies_ms": latencies,
        "errors": errors,
        "first_error": first_error,
        "end": time.time(),
    }


def new_client(port: int) -> Any:
    """A GrpcClient that never retries (a failed request counts as an error)."""
    from tfrec_llm.serving.grpc_client import GrpcClient

    return GrpcClient(HOST, port, model_name=MODEL_NAME, timeout_s=60.0, max_retries=0)


def warm_up(client: Any, users: Sequence[str], k: int, patience_s: float = 120.0) -> None:
    """Connects ``client`` and sends a few requests, retrying while the server is unreachable.

    A busy machine can delay a new connection past gRPC's connect timeout ("timed out before
    receiving SETTINGS frame"); that is setup, not load, so it is retried for ``patience_s``.
    """
    from tfrec_llm.serving.errors import DeadlineExceededError, ServerUnavailableError

    deadline = time.monotonic() + patience_s
    done = 0
    while done < 3:
        try:
            client.recommend([users[done % len(users)]], k=k)
            done += 1
        except (ServerUnavailableError, DeadlineExceededError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class ClientThreads:
    """N client threads in this process, each with its own GrpcClient (connected once)."""

    def __init__(self, port: int, users: Sequence[str], concurrency: int, k: int) -> None:
        self.users, self.k = users, k
        self.clients = [new_client(port) for _ in range(concurrency)]
        for client in self.clients:
            warm_up(client, users, k)

    def round(self, seconds: float, index: int) -> dict[str, Any]:
        """One timed round; CPU time is this process's: the server's and the clients'."""
        results: list[dict[str, Any]] = [{} for _ in self.clients]
        start_at = time.time() + 0.1

        def work(i: int) -> None:
            client = self.clients[i]
            results[i] = client_loop(
                lambda u: client.recommend([u], k=self.k),
                self.users,
                100 + 1000 * index + i,
                start_at,
                seconds,
            )

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(self.clients))]
        cpu = time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return one_round(results, start_at, time.process_time() - cpu)

    def close(self) -> None:
        for client in self.clients:
            client.close()


class ClientProcesses:
    """Client processes (this file run as a script), one GrpcClient each.

    Protocol, one JSON object per line: the parent sends ``{"ports", "users", "k"}`` (``ports``:
    server name -> port; connect one client per server and warm up; answer ``{"ready": true}``),
    then ``{"server", "start_at", "seconds", "seed"}`` per round (answer: `client_loop`'s result
    plus ``cpu_seconds``), then ``{"quit": true}``. A worker also exits when its stdin closes.
    """

    def __init__(self, count: int, log_dir: str) -> None:
        self.logs: list[IO[str]] = []
        self.procs: list[subprocess.Popen[str]] = []
        for i in range(count):
            path = os.path.join(log_dir, f"client{i}.log")
            log = open(path, "w", encoding="utf-8")  # noqa: SIM115  (closed in close())
            self.logs.append(log)
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, SCRIPT],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    bufsize=1,
                    env=common.child_environment(),
                )
            )

    def _send(self, proc: subprocess.Popen[str], message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()

    def _receive(self, i: int) -> dict[str, Any]:
        proc = self.procs[i]
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(REPLY):
                return dict(json.loads(line[len(REPLY) :]))
        self.logs[i].flush()
        with open(self.logs[i].name, encoding="utf-8") as handle:
            tail = handle.read()[-3000:]
        raise RuntimeError(f"client process {i} exited ({proc.poll()}) without answering:\n{tail}")

    def connect(self, ports: dict[str, int], users: Sequence[str], k: int) -> None:
        """Connects the clients (one per server each), one process at a time (16 at once can
        time out on a busy machine)."""
        for i, proc in enumerate(self.procs):
            self._send(proc, {"ports": ports, "users": list(users), "k": k})
            self._receive(i)

    def round(self, server: str, concurrency: int, seconds: float, index: int) -> dict[str, Any]:
        """One timed round of the first ``concurrency`` clients against ``server``; CPU time is
        the server process's plus the client processes'."""
        start_at = time.time() + 0.2
        cpu = time.process_time()
        for i, proc in enumerate(self.procs[:concurrency]):
            seed = 100 + 1000 * index + i
            self._send(proc, {"server": server, "start_at": start_at, "seconds": seconds, "seed": seed})
        results = [self._receive(i) for i in range(concurrency)]
        cpu = time.process_time() - cpu + sum(r["cpu_seconds"] for r in results)
        return one_round(results, start_at, cpu)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    self._send(proc, {"quit": True})
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()  # our own child, by its handle
                proc.wait()
        for log in self.logs:
            log.close()


def worker_main() -> None:
    """A client process: waits for instructions on stdin (see `ClientProcesses`); never
    returns (it ends the process when told to quit or when stdin closes)."""
    import tensorflow  # noqa: F401  (pay the import before the first request)
    from tensorflow_serving.apis import predict_pb2  # noqa: F401

    clients: dict[str, Any] = {}
    users: list[str] = []
    k = 10
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("quit"):
            break
        if "ports" in message:
            users, k = message["users"], int(message["k"])
            clients = {name: new_client(int(port)) for name, port in message["ports"].items()}
            for client in clients.values():
                warm_up(client, users, k)
            reply: dict[str, Any] = {"ready": True}
        else:
            cpu = time.process_time()
            reply = client_loop(
                lambda u, c=clients[message["server"]], top=k: c.recommend([u], k=top),
                users,
                int(message["seed"]),
                float(message["start_at"]),
                float(message["seconds"]),
            )
            reply["cpu_seconds"] = time.process_time() - cpu
        print(REPLY + json.dumps(reply), flush=True)
    for client in clients.values():
        client.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter teardown: with TensorFlow loaded it costs ~2 s of CPU per process,
    # which N client processes would spend on the cores of the benchmark.
    os._exit(0)


# ----------------------------------------------------------------------------- in process


class InProcess:
    """The retrieval signature called directly (``tf.saved_model.load``), no server."""

    def __init__(self, serve: Any, users: Sequence[str], k: int) -> None:
        import tensorflow as tf

        self.serve, self.users = serve, users
        self.none = tf.zeros([0, 0], tf.string)
        self.k = tf.constant(k, tf.int32)
        for user in users[:5]:
            self.call([user])

    def call(self, users: list[str]) -> None:
        """One signature call + ``.numpy()`` of the answers (what a Python caller needs)."""
        import tensorflow as tf

        out = self.serve(user_id=tf.constant(users), recent_item_ids=self.none,
                         exclude_item_ids=self.none, k=self.k)  # fmt: skip
        out["item_ids"].numpy(), out["scores"].numpy()

    def round(self, seconds: float, index: int) -> dict[str, Any]:
        """One user per call, back to back, for ``seconds``."""
        start_at = time.time()
        cpu = time.process_time()
        result = client_loop(lambda u: self.call([u]), self.users, 7 + 1000 * index, start_at, seconds)
        return one_round([result], start_at, time.process_time() - cpu)


def batch_round(
    call: Callable[[list[str]], Any], batches: Sequence[list[str]], seconds: float
) -> dict[str, Any]:
    """``call`` on the given batches in turn, back to back, for ``seconds``."""
    latencies: list[float] = []
    start = time.perf_counter()
    cpu = time.process_time()
    while time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        call(batches[len(latencies) % len(batches)])
        latencies.append(1000.0 * (time.perf_counter() - begin))
    return {
        "latencies_ms": latencies,
        "errors": 0,
        "first_error": "",
        "wall_s": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu,
    }


if __name__ == "__main__":
    common.setup_environment()  # before worker_main imports TensorFlow
    worker_main()
