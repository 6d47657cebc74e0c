"""Serving load test: QPS and latency of the exported retrieval model over gRPC, vs in process.

One run, one machine (named in the output):

1. The model. By default this script trains nothing: it builds the MovieLens-100K BERT
   two-tower (``tfrec_llm.experiments.prepare``, text embeddings from the cache in
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
2. The server: ``tfrec_llm.serving.local.LocalModelServer`` (TF Serving's PredictionService
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
   Each level runs against the server without batching (``gRPC``) and with request batching
   (``gRPC+batching``: ``--enable_batching`` with ``serving/batching.config``, its
   ``batch_timeout_micros`` replaced by ``--batch-timeout-micros``, default 0: a batch closes as
   soon as a batch thread is free, so requests merge only while the threads are busy and a lone
   request waits for nothing) (``--batching off|on|both``).
4. Beside it: the in-process signature call (``tf.saved_model.load(...).signatures
   ["serving_default"]``, batch 1, same users) p50/p95/p99, the overhead ratio gRPC p50 /
   in-process p50 at concurrency 1, and the throughput of batches of 256 users (users/s) over
   gRPC (``GrpcClient.recommend(..., batch_size=256)``) and in process.
5. The targets (issue 13): gRPC batch-1 p50 <= 1.5x the in-process p50, and QPS at the highest
   concurrency >= 4x QPS at concurrency 1 with batching on; met or missed, and by how much.

Every contender's seconds are split into ``--rounds`` (default 5) interleaved rounds: round r
runs every contender once, in turn, the starting one rotating, so a busy neighbour on a shared
machine slows all of them alike; each figure pools the answers of all its rounds. The machine and
its load average at start and end are recorded.

Modules: this script (options, the run), ``serving_load_model.py`` (the model and its export),
``serving_load_clients.py`` (the load generators; also the client processes' script),
``serving_load_report.py`` (statistics, serving_load.md), ``common.py`` and ``machine.py``.

Usage:
    python benchmarks/serving_load.py --out benchmarks/results          # ~4 min on 2 cores
    python benchmarks/serving_load.py --export-dir exports --out /tmp/load
    python benchmarks/serving_load.py --quick --out /tmp/load   # ~30 s: tiny synthetic model
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import common

common.setup_environment()  # before anything imports TensorFlow

from machine import describe_machine, provenance  # noqa: E402
from serving_load_clients import (  # noqa: E402
    HOST,
    MODEL_NAME,
    ClientProcesses,
    ClientThreads,
    InProcess,
    batch_round,
    new_client,
    warm_up,
)
from serving_load_model import catalog_size, export_model, find_version_dir, known_users  # noqa: E402
from serving_load_report import (  # noqa: E402
    batch_row,
    gil_verdict,
    level_row,
    milliseconds,
    render_markdown,
)

from tfrec_llm.atomic_io import write_json, write_text  # noqa: E402

SCRIPT = "benchmarks/serving_load.py"
BATCHING_FILE = Path(__file__).resolve().parents[1] / "serving" / "batching.config"
TARGET_OVERHEAD = 1.5
"""gRPC batch-1 p50 / in-process p50 must be at most this."""
TARGET_SCALING = 4.0
"""QPS at the highest concurrency / QPS at concurrency 1 (batching on) must be at least this."""
QUICK_OVERRIDES = ("model.history_length=10", "model.embedding_dim=16")
"""Config overrides of ``--quick`` (applied before the user's ``--set``)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of this benchmark (shared by the script and ``tfrec-llm benchmark``)."""
    common.add_config_arguments(
        parser,
        out_help="folder for serving_load.json/.md",
        model_dir_help="train.model_dir: cached models and text embeddings",
        set_help="override one config field (repeatable); picks the cached model as quality.py does",
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
        help="interleaved rounds the seconds of each contender are split into (default 5, --quick 1)",
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
        default=32,
        help="LocalModelServer max_workers: gRPC handler and model threads (default 32, so that "
        "all 16 clients' requests reach the server at once and can be batched; with 8, half of them "
        "wait in gRPC's queue and merged calls hold at most 8 users)",
    )
    parser.add_argument(
        "--batching",
        choices=("off", "on", "both"),
        default="both",
        help="serve without request batching, with it, or both side by side (default)",
    )
    parser.add_argument(
        "--batching-parameters-file",
        default=str(BATCHING_FILE),
        help="BatchingParameters text proto of the batching server (default serving/batching.config)",
    )
    parser.add_argument(
        "--batch-timeout-micros",
        type=int,
        default=0,
        help="replaces the file's batch_timeout_micros (default 0; -1 keeps the file's value)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: untrained tiny model on a synthetic data set, 1 s per level, "
        "concurrency 1 and 4 (CI)",
    )


def interleave(
    contenders: dict[str, Callable[[float, int], dict[str, Any]]],
    rounds: int,
    seconds: float,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Runs every contender for ``seconds / rounds`` once per round, in turn, the starting one
    rotating (``common.interleave``); returns each one's rounds.

    Args:
        contenders: name -> ``round(seconds, round_index)``.
    """
    return common.interleave(
        {name: (lambda r, f=f: f(seconds / rounds, r)) for name, f in contenders.items()},
        rounds,
        log,
    )


def _levels(text: str) -> list[int]:
    from tfrec_llm.errors import ConfigError

    try:
        levels = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise ConfigError(f"--concurrency {text!r}: give comma-separated counts >= 1, e.g. 1,4,16")
    return levels


def _server_kinds(args: argparse.Namespace) -> dict[str, Any]:
    """Server name -> its ``BatchingParameters`` (``None``: no batching), per ``--batching``."""
    from tfrec_llm.serving.local.batching import read_batching_parameters

    kinds: dict[str, Any] = {}
    if args.batching in ("off", "both"):
        kinds["gRPC"] = None
    if args.batching in ("on", "both"):
        params = read_batching_parameters(args.batching_parameters_file)
        if args.batch_timeout_micros >= 0:
            params = dataclasses.replace(params, batch_timeout_micros=args.batch_timeout_micros)
        kinds["gRPC+batching"] = params
    return kinds


def targets(
    rows: Sequence[dict[str, Any]], in_process: dict[str, Any], levels: Sequence[int]
) -> list[dict[str, Any]]:
    """The two serving targets of issue 13, per server and client kind: value, target, met.

    ``overhead``: gRPC p50 at the lowest concurrency / in-process p50 (target <= 1.5).
    ``scaling``: QPS at the highest / the lowest concurrency (target >= 4, batching servers).
    """
    out: list[dict[str, Any]] = []
    by = {(r["path"], r["clients"], r["concurrency"]): r for r in rows}
    low, high = min(levels), max(levels)
    for path, kind in dict.fromkeys((r["path"], r["clients"]) for r in rows):
        first = by[(path, kind, low)]
        if first["p50_ms"] is not None and in_process["p50_ms"]:
            value = first["p50_ms"] / in_process["p50_ms"]
            out.append({"target": "overhead", "path": path, "clients": kind, "value": value,
                        "limit": TARGET_OVERHEAD, "met": value <= TARGET_OVERHEAD})  # fmt: skip
        if high > low and first["qps"] > 0:
            value = by[(path, kind, high)]["qps"] / first["qps"]
            out.append({"target": "scaling", "path": path, "clients": kind, "value": value,
                        "limit": TARGET_SCALING, "met": value >= TARGET_SCALING,
                        "p99_ms": by[(path, kind, high)]["p99_ms"]})  # fmt: skip
    return out


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Runs the load test; prints the table, writes serving_load.json and serving_load.md."""
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
    cfg = common.build_config(args, QUICK_OVERRIDES)
    log = common.elapsed_logger(started)

    kinds = ["threads", "processes"] if args.clients == "both" else [args.clients]
    with tempfile.TemporaryDirectory(prefix="tfrec_load_") as scratch:
        # Client processes first: their TensorFlow import overlaps the export, not a level.
        workers = ClientProcesses(max(levels), scratch) if "processes" in kinds else None
        servers: dict[str, Any] = {}
        try:
            import tensorflow as tf

            log(f"TensorFlow {tf.__version__} imported")

            from tfrec_llm.serving.local import LocalModelServer

            if args.export_dir:
                from tfrec_llm.data.schema import USER_ID

                version_dir = find_version_dir(args.export_dir)
                dataset = common.load_data(cfg, quick=False)
                model = {
                    "source": f"existing export {version_dir}",
                    "dataset": dataset.name,
                    "version_dir": version_dir,
                    "export_seconds": None,
                    "catalog_items": catalog_size(version_dir),
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
            for name, params in _server_kinds(args).items():
                servers[name] = LocalModelServer.from_base_path(
                    MODEL_NAME,
                    os.path.dirname(version_dir),
                    grpc_port=0,
                    rest_port=None,
                    host=HOST,
                    max_workers=args.server_workers,
                    batching_parameters=params,
                ).start()
            ports = {name: int(srv.grpc_port) for name, srv in servers.items()}  # type: ignore[arg-type]
            port = next(iter(ports.values()))
            if workers is not None:
                workers.connect(ports, users, args.k)
            log(f"gRPC on {HOST}:{ports}; {len(users)} known users; {seconds:g} s per level")

            import numpy as np

            direct = InProcess(serve, users, args.k)
            grpc_client = new_client(port)  # the batch client
            warm_up(grpc_client, users, args.k)
            threads = {
                (name, c): ClientThreads(p, users, c, args.k) for name, p in ports.items() for c in levels
            } if "threads" in kinds else {}  # fmt: skip
            rng = np.random.default_rng(11)
            batches = [
                [str(u) for u in rng.choice(np.asarray(users), size=args.batch_size)] for _ in range(16)
            ]

            def grpc_batch(batch: list[str]) -> None:
                grpc_client.recommend(batch, k=args.k, batch_size=args.batch_size)

            contenders: dict[str, Callable[[float, int], dict[str, Any]]] = {"in-process 1": direct.round}
            for name in ports:
                for c in levels:
                    if "threads" in kinds:
                        contenders[f"{name} threads {c}"] = threads[(name, c)].round
                    if workers is not None:
                        contenders[f"{name} processes {c}"] = (
                            lambda t, r, c=c, n=name: workers.round(n, c, t, r)  # type: ignore[union-attr]
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
            for srv in servers.values():
                srv.stop(grace_s=0)

    rows = [
        level_row(name, kind, c, measured[f"{name} {kind} {c}"])
        for name in ports
        for kind in kinds
        for c in levels
    ]
    in_process = level_row("in-process signature", "-", 1, measured["in-process 1"])
    batch = [
        batch_row("gRPC", args.batch_size, measured["gRPC batch"]),
        batch_row("in-process signature", args.batch_size, measured["in-process batch"]),
    ]
    for row in [*rows, in_process]:
        log(
            f"{row['path']} {row['clients']} x{row['concurrency']}: {row['qps']:.0f} QPS, p50 "
            f"{milliseconds(row['p50_ms'])} ms, p99 {milliseconds(row['p99_ms'])} ms, {row['errors']} errors"
        )
    overhead = {
        f"{r['path']}, {r['clients']}": r["p50_ms"] / in_process["p50_ms"]
        for r in rows
        if r["concurrency"] == min(levels) and r["p50_ms"] is not None and in_process["p50_ms"]
    }
    report: dict[str, Any] = {
        **provenance(SCRIPT, argv, machine),
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
            "batching": {n: (dataclasses.asdict(p) if p else None) for n, p in _server_kinds(args).items()},
        },
        "grpc": rows,
        "in_process": in_process,
        "overhead": overhead,
        "batch": batch,
        "gil": gil_verdict([r for r in rows if r["path"] == rows[0]["path"]]),
        "targets": targets(rows, in_process, levels),
    }
    report["seconds"] = time.perf_counter() - started
    markdown = render_markdown(report)
    out = Path(args.out)
    write_json(out / "serving_load.json", report, indent=1, allow_nan=False)
    write_text(out / "serving_load.md", markdown)
    print(markdown)
    log(f"wrote {out / 'serving_load.json'} and {out / 'serving_load.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python benchmarks/serving_load.py [options]``."""
    return common.script_main(SCRIPT, __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
