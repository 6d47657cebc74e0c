"""Serving load test: QPS and latency of the exported retrieval model over gRPC, vs in process.

One run, one machine (named in the output):

1. The model. By default this script trains nothing: it builds the MovieLens-100K BERT
   two-tower (``training.experiment.prepare``, text embeddings from the cache in
   ``<--model-dir>/text_cache``) and loads the finished model that ``benchmarks/quality.py``
   left in ``<--model-dir>/loo/bert-<config hash>`` (same ``--set``/``--config`` = same hash,
   through ``load_or_train``), or the one in ``--trained-dir``. Without one it serves the
   untrained model (top-K latency does not depend on the weight values) and says so;
   ``--train`` trains it there instead. The model is exported with
   ``export.exporter.export_retrieval`` (histories: TRAIN+VALID+TEST, as ``tfrec-llm export``)
   into a temporary folder. ``--export-dir`` serves an existing export
   instead (``exports/`` of ``tfrec-llm run``, its ``retrieval/`` folder, or a version folder;
   the server serves the newest version of that folder); the known users are then the users
   of the config's data set that the model does not answer with the popularity fallback.
2. The server: ``serving.local_server.LocalModelServer`` (TF Serving's PredictionService
   protos, Python gRPC server) on ``127.0.0.1``, free port, in this process. Production serves
   the same SavedModel with the C++ ``tensorflow/serving`` binary, which is not on this machine:
   these gRPC figures are for our Python server, not for TF Serving.
3. Load: for each concurrency N (default 1, 4, 16), N clients, each with its own
   ``GrpcClient`` (own channel object), send ``recommend([user], k=10)`` back to back (closed
   loop) with users drawn uniformly at random from the known users, for ``--seconds`` (default
   10), then stop by themselves. Clients are threads of this process (sharing the GIL with the
   server; gRPC Python also multiplexes all channels of one process with the same target and
   options over one TCP connection) and, as separate contenders, client processes (one client
   each, own connection) (``--clients threads|processes|both``), so the table shows whether
   the threads were GIL-bound. Per level: QPS (answers / wall time), p50/p95/p99 latency,
   errors, and the CPU cores the server and clients used (process CPU time / wall time).
4. Beside it: the in-process signature call (``tf.saved_model.load(...).signatures
   ["serving_default"]``, batch 1, same users) p50/p95/p99, the overhead ratio gRPC p50 /
   in-process p50 at concurrency 1, and the throughput of batches of 256 users (users/s) over
   gRPC (``GrpcClient.recommend(..., batch_size=256)``) and in process.

Every contender's seconds are split into ``--rounds`` (default 5) interleaved rounds: round r
runs every contender once, in turn, the starting one rotating, so a busy neighbour on a shared
machine slows all of them alike; each figure pools the answers of all its rounds. The machine and
its load average at start and end are recorded.

Usage:
    python benchmarks/serving_load.py --out benchmarks/results          # ~4 min on 2 cores
    python benchmarks/serving_load.py --export-dir exports --out /tmp/load
    python benchmarks/serving_load.py --quick --out /tmp/load   # ~30 s: tiny synthetic model
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tfrec_llm  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import (  # noqa: E402
    command_line,
    describe_machine,
    load_line,
    machine_line,
    write_text_atomic,
)

DEFAULT_MODEL_DIR = os.path.join("runs", "bench")
DEFAULT_OUT = os.path.join("benchmarks", "results")
MODEL_NAME = "retrieval"
HOST = "127.0.0.1"
SCRIPT = str(Path(__file__).resolve())
REPLY = "@@serving_load "  # prefix of a client process's answer lines on stdout
QUICK_OVERRIDES = ("model.history_length=10", "model.embedding_dim=16")
GIL_MARGIN = 1.15
"""Processes beating threads by more than this factor in QPS = the threads were GIL-bound."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of this benchmark (script and a future ``tfrec-llm benchmark``)."""
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"folder for serving_load.json/.md ({DEFAULT_OUT})"
    )
    parser.add_argument("--config", default=None, help="YAML experiment config (default: built-in)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one config field (repeatable); picks the cached model as quality.py does",
    )
    parser.add_argument(
        "--model-dir",
        default=DEFAULT_MODEL_DIR,
        help=f"train.model_dir: cached models and text embeddings (default {DEFAULT_MODEL_DIR})",
    )
    parser.add_argument(
        "--export-dir",
        default=None,
        help="serve this existing export (folder with retrieval/<version>/, the retrieval/ "
        "folder, or a version folder) instead of exporting the model",
    )
    parser.add_argument(
        "--trained-dir",
        default=None,
        help="load the finished model of this load_or_train folder (e.g. "
        "runs/bench/loo/bert-<hash>) instead of quality.py's cache folder for this config",
    )
    parser.add_argument(
        "--train",
        action="store_true",
        help="train the model when --model-dir has no finished one (default: serve it untrained)",
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="seconds per level (default 10, --quick 1)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds the seconds of each contender are split into (default 5, "
        "--quick 1)",
    )
    parser.add_argument(
        "--concurrency",
        default=None,
        help="comma-separated client counts (default 1,4,16; --quick 1,4)",
    )
    parser.add_argument(
        "--clients",
        choices=("threads", "processes", "both"),
        default="both",
        help="clients as threads of this process, as separate processes, or both (default)",
    )
    parser.add_argument("--k", type=int, default=10, help="items per answer (default 10)")
    parser.add_argument(
        "--batch-size", type=int, default=256, help="users per request of the batch test (256)"
    )
    parser.add_argument(
        "--server-workers",
        type=int,
        default=8,
        help="LocalModelServer max_workers: gRPC handler and model threads (default 8)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: untrained tiny model on a synthetic data set, 1 s per level, "
        "concurrency 1 and 4 (CI)",
    )
    # A client process (started by this script, never by hand).
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


# ----------------------------------------------------------------------------- statistics


def summarize(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/mean of latencies (numpy's linear percentiles); None when there are none."""
    import numpy as np

    if not latencies_ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}
    values = np.asarray(latencies_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "mean_ms": float(values.mean()),
    }


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
        last answer arrived). Only :class:`tfrec_llm.errors.ServingError` counts as an error;
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


def one_round(results: Sequence[dict[str, Any]], start_at: float, cpu_s: float) -> dict[str, Any]:
    """Merges the :func:`client_loop` results of the clients of one timed round.

    Returns:
        ``{"latencies_ms", "errors", "first_error", "wall_s", "cpu_s"}``; ``wall_s`` runs from
        ``start_at`` to the last answer of any client.
    """
    errors = [r["first_error"] for r in results if r["first_error"]]
    return {
        "latencies_ms": [v for r in results for v in r["latencies_ms"]],
        "errors": sum(r["errors"] for r in results),
        "first_error": errors[0] if errors else "",
        "wall_s": max(r["end"] for r in results) - start_at,
        "cpu_s": cpu_s,
    }


def merge_rounds(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pools the rounds of one contender: all latencies, summed errors, wall and CPU time."""
    errors = [r["first_error"] for r in rounds if r["first_error"]]
    return {
        "latencies_ms": [v for r in rounds for v in r["latencies_ms"]],
        "errors": sum(r["errors"] for r in rounds),
        "first_error": errors[0] if errors else "",
        "wall_s": sum(r["wall_s"] for r in rounds),
        "cpu_s": sum(r["cpu_s"] for r in rounds),
    }


def level_row(
    path: str, clients: str, concurrency: int, rounds: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """A table row of one-user requests: QPS = answers / wall time, latency percentiles."""
    merged = merge_rounds(rounds)
    latencies, wall = merged["latencies_ms"], merged["wall_s"]
    return {
        "path": path,
        "clients": clients,
        "concurrency": concurrency,
        "rounds": len(rounds),
        "requests": len(latencies),
        "errors": merged["errors"],
        "first_error": merged["first_error"],
        "seconds": wall,
        "qps": len(latencies) / wall if wall > 0 else 0.0,
        **summarize(latencies),
        "cpu_cores": merged["cpu_s"] / wall if wall > 0 else 0.0,
    }


def batch_row(path: str, batch: int, rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A table row of batch requests: users/s = batch x calls / wall time."""
    merged = merge_rounds(rounds)
    calls, wall = len(merged["latencies_ms"]), merged["wall_s"]
    return {
        "path": path,
        "batch": batch,
        "rounds": len(rounds),
        "calls": calls,
        "errors": merged["errors"],
        "users_per_second": batch * calls / wall if wall > 0 else 0.0,
        **summarize(merged["latencies_ms"]),
    }


def interleave(
    contenders: dict[str, Callable[[float, int], dict[str, Any]]],
    rounds: int,
    seconds: float,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Runs every contender for ``seconds / rounds`` once per round, in turn, the starting one
    rotating, so a busy neighbour slows every contender alike; returns each one's rounds."""
    names = list(contenders)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            out[name].append(contenders[name](seconds / rounds, r))
        if log is not None:
            log(f"round {r + 1}/{rounds} done")
    return out


# ----------------------------------------------------------------------------- the model


def synthetic_dataset(num_users: int = 60, num_items: int = 80, per_user: int = 10) -> Any:
    """A small random data set (fixed seed) for ``--quick``: ids "1".., ML-100K-like columns."""
    import numpy as np
    import pandas as pd

    from tfrec_llm.data.schema import ITEM_ID, TIMESTAMP, USER_ID, RecDataset

    rng = np.random.default_rng(0)
    rows = [
        (str(u), str(int(item) + 1), 1_000_000 + 100 * u + t)
        for u in range(1, num_users + 1)
        for t, item in enumerate(rng.choice(num_items, size=per_user, replace=False))
    ]
    interactions = pd.DataFrame(rows, columns=[USER_ID, ITEM_ID, TIMESTAMP])
    interactions[TIMESTAMP] = interactions[TIMESTAMP].astype(np.int64)
    genres = ["Drama", "Comedy|Drama", "Action|Sci-Fi"]
    items = pd.DataFrame(
        {
            ITEM_ID: [str(i) for i in range(1, num_items + 1)],
            "title": [f"Movie {i}" for i in range(1, num_items + 1)],
            "year": ["1995"] * num_items,
            "genres": [genres[i % 3] for i in range(num_items)],
        }
    )
    users = pd.DataFrame(
        {
            USER_ID: [str(u) for u in range(1, num_users + 1)],
            "age": [str(20 + u % 5) for u in range(1, num_users + 1)],
            "gender": ["M" if u % 2 else "F" for u in range(1, num_users + 1)],
            "occupation": ["engineer" if u % 3 else "artist" for u in range(1, num_users + 1)],
        }
    )
    return RecDataset(
        name="synthetic-load",
        interactions=interactions,
        items=items,
        users=users,
        item_text_fields=("title", "year", "genres"),
        item_categorical_fields=("genres",),
        user_profile_fields=("age", "gender", "occupation"),
    )


def serving_histories(prepared: Any) -> dict[str, list[str]]:
    """Every interaction per user, chronological: TRAIN+VALID, then the TEST targets.

    The histories ``tfrec-llm export`` gives the retrieval model (``cli/commands.py``).
    """
    from tfrec_llm.training.experiment import user_histories

    histories = user_histories(prepared.split.train_valid)
    test = prepared.split.test
    for user, targets in zip(test.user_ids, test.targets, strict=True):
        histories.setdefault(str(user), []).extend(str(t) for t in targets)
    return histories


def model_state(directory: str, fingerprint: dict[str, Any]) -> str:
    """What ``load_or_train`` would do with ``directory``, without doing it.

    Returns:
        ``"finished"`` (weights and result.json, trained with these settings or before the
        settings were recorded: it loads), ``"other-settings"`` (it would clear the folder and
        train again) or ``"missing"`` (it would train).
    """
    if not all(
        os.path.exists(os.path.join(directory, f)) for f in ("model.weights.h5", "result.json")
    ):
        return "missing"
    marker = os.path.join(directory, "training_config.json")
    if not os.path.exists(marker):
        return "finished"
    with open(marker, encoding="utf-8") as handle:
        return "finished" if json.load(handle) == fingerprint else "other-settings"


def export_model(
    cfg: Any, args: argparse.Namespace, folder: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """Builds (or loads/trains) the model and exports its retrieval SavedModel into ``folder``."""
    import numpy as np
    import tf_keras as keras

    from tfrec_llm.errors import ConfigError
    from tfrec_llm.export.exporter import export_retrieval
    from tfrec_llm.experiments.builders import build_two_tower
    from tfrec_llm.training.experiment import (
        load_dataset,
        load_or_train,
        prepare,
        training_fingerprint,
        variant_config,
    )

    vcfg = variant_config(cfg, "bert")
    keras.utils.set_random_seed(cfg.train.seed)
    if args.quick:
        dataset = synthetic_dataset()
        prepared = prepare(cfg, "loo", with_text=False, dataset=dataset)
        text = np.random.default_rng(1).normal(size=(prepared.catalog.num_items, 8))
        model = build_two_tower(vcfg.model, prepared.catalog, text.astype(np.float32))
        source = "untrained two-tower (ids + synthetic 8-d text vectors) on a synthetic data set"
    else:
        dataset = load_dataset(cfg.data)
        prepared = prepare(cfg, "loo", dataset=dataset)
        if args.trained_dir:
            directory = args.trained_dir
        else:
            from quality import config_hash  # the cache folder naming of benchmarks/quality.py

            sizes = (len(dataset.interactions), len(dataset.items), len(dataset.users))
            tag = ":".join(map(str, (dataset.name, *sizes)))  # quality.py's data_tag
            directory = os.path.join(
                cfg.train.model_dir, "loo", f"bert-{config_hash(cfg, 'bert', tag)}"
            )
        state = model_state(directory, training_fingerprint(vcfg))
        if args.trained_dir and state != "finished":
            raise ConfigError(
                f"--trained-dir {directory!r} holds no model finished with these settings "
                f"({state}); pass the --config/--set it was trained with, or leave "
                "--trained-dir out."
            )
        if state == "finished" or args.train:
            log(f"load_or_train {directory} ({state})")
            model, info = load_or_train(cfg, prepared, "bert", directory, verbose=0)
            valid: dict[str, float] = info["valid_metrics"]  # type: ignore[assignment]
            source = (
                f"TwoTower-BERT trained on TRAIN (protocol loo), best epoch "
                f"{info['best_epoch']}, valid ndcg@10 {valid['ndcg@10']:.4f}, from {directory}"
            )
        else:
            model = build_two_tower(
                vcfg.model, prepared.catalog, prepared.text_embeddings, vcfg.text,
                prepared.text_tokens,
            )  # fmt: skip
            source = (
                f"TwoTower-BERT with untrained weights ({directory}: {state}; --train trains "
                "it); top-K latency does not depend on the weight values"
            )
    histories = serving_histories(prepared)
    start = time.perf_counter()
    version_dir = export_retrieval(vcfg, model, prepared.catalog, histories, folder, version=1)
    known = [str(u) for u in prepared.catalog.user_ids if str(u) in histories]
    return {
        "source": source,
        "dataset": dataset.name,
        "version_dir": version_dir,
        "export_seconds": time.perf_counter() - start,
        "catalog_items": int(prepared.catalog.num_items),
        "candidates": known,
    }


def find_version_dir(export_dir: str) -> str:
    """The newest retrieval version folder of an export, ``retrieval/`` folder or version folder.

    Raises:
        ConfigError: If there is no loadable version folder.
    """
    from tfrec_llm.errors import ConfigError
    from tfrec_llm.serving.local_server import list_version_folders

    if os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
        return os.path.abspath(export_dir)
    for base in (os.path.join(export_dir, MODEL_NAME), export_dir):
        versions = list_version_folders(base)
        if versions:
            return os.path.abspath(os.path.join(base, str(versions[-1])))
    raise ConfigError(
        f"--export-dir {export_dir!r} holds no retrieval SavedModel: expected "
        f"{export_dir}/{MODEL_NAME}/<version>/saved_model.pb (tfrec-llm export writes it), "
        "<dir>/<version>/saved_model.pb or <dir>/saved_model.pb."
    )


def known_users(serve: Any, candidates: Sequence[str], k: int) -> list[str]:
    """The candidates the model knows: answered without the popularity fallback."""
    import numpy as np
    import tensorflow as tf

    none = tf.zeros([0, 0], tf.string)
    known: list[str] = []
    for start in range(0, len(candidates), 1024):
        batch = list(candidates[start : start + 1024])
        out = serve(
            user_id=tf.constant(batch), recent_item_ids=none, exclude_item_ids=none,
            k=tf.constant(k, tf.int32),
        )  # fmt: skip
        if "used_fallback" not in out:
            return list(candidates)
        known += [u for u, f in zip(batch, np.asarray(out["used_fallback"]), strict=True) if not f]
    return known


# ----------------------------------------------------------------------------- clients


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
    """Client processes (this script with ``--worker``), one GrpcClient each.

    Protocol, one JSON object per line: the parent sends ``{"port", "users", "k"}`` (connect
    and warm up; answer ``{"ready": true}``), then ``{"start_at", "seconds", "seed"}`` per round
    (answer: :func:`client_loop`'s result plus ``cpu_seconds``), then ``{"quit": true}``. A
    worker also exits when its stdin closes.
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
                    [sys.executable, SCRIPT, "--worker"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    bufsize=1,
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

    def connect(self, port: int, users: Sequence[str], k: int) -> None:
        """Connects the clients one at a time (16 at once can time out on a busy machine)."""
        for i, proc in enumerate(self.procs):
            self._send(proc, {"port": port, "users": list(users), "k": k})
            self._receive(i)

    def round(self, concurrency: int, seconds: float, index: int) -> dict[str, Any]:
        """One timed round of the first ``concurrency`` clients; CPU time is the server
        process's plus the client processes'."""
        start_at = time.time() + 0.2
        cpu = time.process_time()
        for i, proc in enumerate(self.procs[:concurrency]):
            seed = 100 + 1000 * index + i
            self._send(proc, {"start_at": start_at, "seconds": seconds, "seed": seed})
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
    """A client process: waits for instructions on stdin (see :class:`ClientProcesses`); never
    returns (it ends the process when told to quit or when stdin closes)."""
    import tensorflow  # noqa: F401  (pay the import before the first request)
    from tensorflow_serving.apis import predict_pb2  # noqa: F401

    client: Any = None
    users: list[str] = []
    k = 10
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("quit"):
            break
        if "port" in message:
            users, k = message["users"], int(message["k"])
            client = new_client(int(message["port"]))
            warm_up(client, users, k)
            reply: dict[str, Any] = {"ready": True}
        else:
            cpu = time.process_time()
            reply = client_loop(
                lambda u, c=client, top=k: c.recommend([u], k=top),
                users,
                int(message["seed"]),
                float(message["start_at"]),
                float(message["seconds"]),
            )
            reply["cpu_seconds"] = time.process_time() - cpu
        print(REPLY + json.dumps(reply), flush=True)
    if client is not None:
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
        result = client_loop(
            lambda u: self.call([u]), self.users, 7 + 1000 * index, start_at, seconds
        )
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


# ----------------------------------------------------------------------------- report


def gil_verdict(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Compares threads and processes at the highest concurrency measured with both."""
    by = {(r["clients"], r["concurrency"]): r for r in rows}
    both = sorted(c for (kind, c) in by if kind == "threads" and ("processes", c) in by)
    if not both:
        return {"concurrency": None, "ratio": None, "text": "only one kind of client was run"}
    c = both[-1]
    threads, processes = by[("threads", c)], by[("processes", c)]
    ratio = processes["qps"] / threads["qps"] if threads["qps"] > 0 else float("inf")
    if ratio > GIL_MARGIN:
        text = (
            f"client threads are GIL-bound: at concurrency {c} client processes answer "
            f"{ratio:.2f}x the QPS of client threads"
        )
    elif ratio < 1 / GIL_MARGIN:
        text = (
            f"client threads are not the limit: at concurrency {c} client processes reach only "
            f"{ratio:.2f}x the QPS of threads (they compete with the server for the cores)"
        )
    else:
        text = (
            f"client threads are not the limit: at concurrency {c} processes and threads "
            f"reach the same QPS within {100 * (GIL_MARGIN - 1):.0f}% ({ratio:.2f}x); the "
            "server process is"
        )
    return {"concurrency": c, "ratio": ratio, "text": text}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_markdown(report: dict[str, Any]) -> str:
    """serving_load.md: the load table, the overhead ratio and the batch-256 throughput."""
    model, server = report["model"], report["server"]
    lines = [
        "# Serving load test",
        "",
        f"- Machine: {machine_line(report['machine'])}; "
        f"{load_line(report['machine']['load_average'], report['load_end'])}",
        f"- Command: `{report['command']}` ({report['seconds']:.0f} s wall, {report['date']}).",
        f"- Model: {model['source']}; data {model['dataset']}, "
        f"{model['catalog_items'] or '?'} items, top-{report['k']}; {model['known_users']} known "
        "users, drawn uniformly at random.",
        f"- Server: {server['kind']} on {server['host']} ({server['max_workers']} worker "
        "threads), in the benchmark process. Not the C++ tensorflow/serving binary.",
        f"- {report['seconds_per_level']:g} s per contender in {report['rounds']} interleaved "
        "round(s) (every contender once per round, the first one rotating); a client sends its "
        "next request when the last one is answered (closed loop); latency = "
        "`GrpcClient.recommend([user], k)` round trip, in process = signature call + "
        "`.numpy()`. CPU cores = process CPU time of server and clients / wall time.",
        "",
        "| path | clients | concurrency | requests | errors | QPS | p50 ms | p95 ms | p99 ms "
        "| CPU cores |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in [*report["grpc"], report["in_process"]]:
        lines.append(
            f"| {r['path']} | {r['clients']} | {r['concurrency']} | {r['requests']} | "
            f"{r['errors']} | {r['qps']:.0f} | {_ms(r['p50_ms'])} | {_ms(r['p95_ms'])} | "
            f"{_ms(r['p99_ms'])} | {r['cpu_cores']:.2f} |"
        )
    lines += ["", "Overhead at concurrency 1, gRPC p50 / in-process p50: " + ", ".join(
        f"**{v:.1f}x** ({kind})" for kind, v in report["overhead"].items()
    ) + "."]  # fmt: skip
    lines += [
        "",
        f"| batch of {report['batch_size']} | calls | users/s | p50 ms per call |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['path']} | {r['calls']} | {r['users_per_second']:.0f} | {_ms(r['p50_ms'])} |"
        for r in report["batch"]
    ]
    lines += ["", f"Clients: {report['gil']['text']}."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def _levels(text: str) -> list[int]:
    from tfrec_llm.errors import ConfigError

    try:
        levels = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise ConfigError(f"--concurrency {text!r}: give comma-separated counts >= 1, e.g. 1,4,16")
    return levels


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Runs the load test; prints the table, writes serving_load.json and serving_load.md."""
    from datetime import UTC, datetime

    from tfrec_llm.config import load_config, replace
    from tfrec_llm.errors import ConfigError

    started = time.perf_counter()
    machine = describe_machine()
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 10.0)
    levels = _levels(args.concurrency or ("1,4" if args.quick else "1,4,16"))
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    if seconds <= 0 or rounds < 1 or args.k < 1 or args.batch_size < 1:
        raise ConfigError(
            f"--seconds={seconds}, --rounds={rounds}, --k={args.k} and "
            f"--batch-size={args.batch_size} must be > 0."
        )
    overrides = (list(QUICK_OVERRIDES) if args.quick else []) + list(args.overrides)
    cfg = replace(load_config(args.config, overrides), train__model_dir=args.model_dir)

    def log(message: str) -> None:
        print(f"{time.perf_counter() - started:7.1f}s {message}", flush=True)

    kinds = ["threads", "processes"] if args.clients == "both" else [args.clients]
    with tempfile.TemporaryDirectory(prefix="tfrec_load_") as scratch:
        # Client processes first: their TensorFlow import overlaps the export, not a level.
        workers = ClientProcesses(max(levels), scratch) if "processes" in kinds else None
        server = None
        try:
            import tensorflow as tf

            log(f"TensorFlow {tf.__version__} imported")

            from tfrec_llm.serving.local_server import LocalModelServer

            if args.export_dir:
                from tfrec_llm.data.schema import USER_ID
                from tfrec_llm.training.experiment import load_dataset

                version_dir = find_version_dir(args.export_dir)
                dataset = load_dataset(cfg.data)
                model = {
                    "source": f"existing export {version_dir}",
                    "dataset": dataset.name,
                    "version_dir": version_dir,
                    "export_seconds": None,
                    "catalog_items": _catalog_size(version_dir),
                    "candidates": sorted(map(str, dataset.users[USER_ID])),
                }
            else:
                model = export_model(cfg, args, os.path.join(scratch, "export"), log)
                version_dir = model["version_dir"]
                log(f"exported in {model['export_seconds']:.1f} s")
            log(f"serving {version_dir}")
            loaded = tf.saved_model.load(version_dir)  # keep: it owns the signature's resources
            serve = loaded.signatures["serving_default"]
            users = known_users(serve, model.pop("candidates"), args.k)
            if not users:
                raise ConfigError(
                    f"the model at {version_dir} knows none of the users of data set "
                    f"{model['dataset']!r}; pass the --config/--set of the data it was trained on."
                )
            model["known_users"] = len(users)
            server = LocalModelServer.from_base_path(
                MODEL_NAME,
                os.path.dirname(version_dir),
                grpc_port=0,
                rest_port=None,
                host=HOST,
                max_workers=args.server_workers,
            ).start()
            port = server.grpc_port
            assert port is not None
            if workers is not None:
                workers.connect(port, users, args.k)
            log(f"gRPC on {HOST}:{port}; {len(users)} known users; {seconds:g} s per level")

            import numpy as np

            direct = InProcess(serve, users, args.k)
            grpc_client = new_client(port)  # the batch client
            warm_up(grpc_client, users, args.k)
            threads = {c: ClientThreads(port, users, c, args.k) for c in levels} if (
                "threads" in kinds
            ) else {}  # fmt: skip
            rng = np.random.default_rng(11)
            batches = [
                [str(u) for u in rng.choice(np.asarray(users), size=args.batch_size)]
                for _ in range(16)
            ]

            def grpc_batch(batch: list[str]) -> None:
                grpc_client.recommend(batch, k=args.k, batch_size=args.batch_size)

            contenders: dict[str, Callable[[float, int], dict[str, Any]]] = {
                "in-process 1": direct.round
            }
            for c in levels:
                if "threads" in kinds:
                    contenders[f"threads {c}"] = threads[c].round
                if workers is not None:
                    contenders[f"processes {c}"] = (
                        lambda t, r, c=c: workers.round(c, t, r)  # type: ignore[union-attr]
                    )
            contenders["gRPC batch"] = lambda t, r: batch_round(grpc_batch, batches, t)
            contenders["in-process batch"] = lambda t, r: batch_round(direct.call, batches, t)
            log(
                f"{len(contenders)} contenders x {seconds:g} s, in {rounds} interleaved "
                f"round(s) of {seconds / rounds:g} s"
            )
            measured = interleave(contenders, rounds, seconds, log)
            for client_threads in threads.values():
                client_threads.close()
            grpc_client.close()
        finally:
            if workers is not None:
                workers.close()
            if server is not None:
                server.stop(grace_s=0)

    rows = [level_row("gRPC", kind, c, measured[f"{kind} {c}"]) for kind in kinds for c in levels]
    in_process = level_row("in-process signature", "-", 1, measured["in-process 1"])
    batch = [
        batch_row("gRPC", args.batch_size, measured["gRPC batch"]),
        batch_row("in-process signature", args.batch_size, measured["in-process batch"]),
    ]
    for row in [*rows, in_process]:
        log(
            f"{row['path']} {row['clients']} x{row['concurrency']}: {row['qps']:.0f} QPS, p50 "
            f"{_ms(row['p50_ms'])} ms, p99 {_ms(row['p99_ms'])} ms, {row['errors']} errors"
        )
    first = {r["clients"]: r for r in rows if r["concurrency"] == min(levels)}
    overhead = {
        kind: r["p50_ms"] / in_process["p50_ms"]
        for kind, r in first.items()
        if r["p50_ms"] is not None and in_process["p50_ms"]
    }
    report: dict[str, Any] = {
        "machine": {**machine, "tensorflow": describe_machine()["tensorflow"]},
        "load_end": describe_machine()["load_average"],
        "command": command_line(
            "benchmarks/serving_load.py", list(argv if argv is not None else sys.argv[1:])
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": bool(args.quick),
        "k": args.k,
        "batch_size": args.batch_size,
        "seconds_per_level": seconds,
        "rounds": rounds,
        "concurrency": levels,
        "model": model,
        "server": {
            "kind": "tfrec_llm LocalModelServer (Python gRPC, TF Serving PredictionService protos)",
            "host": HOST,
            "max_workers": args.server_workers,
        },
        "grpc": rows,
        "in_process": in_process,
        "overhead": overhead,
        "batch": batch,
        "gil": gil_verdict(rows),
    }
    report["seconds"] = time.perf_counter() - started
    markdown = render_markdown(report)
    out = Path(args.out)
    write_text_atomic(
        out / "serving_load.json", json.dumps(report, indent=1, allow_nan=False) + "\n"
    )
    write_text_atomic(out / "serving_load.md", markdown)
    print(markdown)
    log(f"wrote {out / 'serving_load.json'} and {out / 'serving_load.md'}")
    return 0


def _catalog_size(version_dir: str) -> int | None:
    """Items in an export's catalog: rows of its ``candidates`` variable (a tfrec_llm export).

    None when the SavedModel has no such variable (then the report says "?" items).
    """
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError):
        return None
    for name, shape in shapes.items():
        if name.startswith("candidates/") and len(shape) == 2:
            return int(shape[0])
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python benchmarks/serving_load.py [options]``."""
    parser = argparse.ArgumentParser(
        prog="benchmarks/serving_load.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main()
    return run(args, argv)


if __name__ == "__main__":
    sys.exit(main())
