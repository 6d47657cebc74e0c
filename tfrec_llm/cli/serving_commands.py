"""``tfrec-llm serve | query | check-servable``: the TF Serving side of the command line.

``tfrec_llm.cli.main.build_parser`` calls :func:`add_subcommands`; each command stores its
implementation in ``args.handler``, which returns the process exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from tfrec_llm.cli import options

__all__ = ["add_subcommands", "check_servable_command", "query_command", "serve_command"]

_STOP_GRACE_S = 0.5  # seconds in-flight requests get after Ctrl-C / SIGTERM before abandoning

_SERVE_EPILOG = """\
examples:
  tfrec-llm serve --model-config exports/models.config
  tfrec-llm serve --model-base-path exports/retrieval --model-name retrieval --port 8500

Ctrl-C or SIGTERM stops the server within about a second, even during a model load or a long
request: requests still running after 0.5 s get UNAVAILABLE and their work is abandoned. A
second Ctrl-C exits at once.

This is tfrec_llm's local TF Serving-compatible server (tests, laptops). Production runs the
same export folder in the official tensorflow/serving image: see serving/README.md.
"""

_QUERY_EPILOG = """\
examples:
  tfrec-llm query --user 1 --user 2 --k 5
  tfrec-llm query --rest --port 8501 --user 1 --titles-from-dataset movielens_100k
"""

_CHECK_EPILOG = """\
examples:
  tfrec-llm check-servable exports/retrieval/1700000000 exports/item_encoder/1700000000

Exit code 0 when every op is registered by the stock tensorflow_model_server (core TensorFlow +
classic TF Text kernels), 1 otherwise (PyFunc, FastBert*/FastWordpiece*, Scann*, custom ops).
"""


def add_subcommands(subparsers: Any) -> None:
    """Registers ``serve``, ``query`` and ``check-servable`` on an argparse subparsers object.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers()``.
    """
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "serve",
        help="serve exported models over TF Serving's gRPC and REST APIs (local server)",
        description="Serve SavedModel version folders with tfrec_llm's LocalModelServer: TF "
        "Serving's PredictionService/ModelService over gRPC and its REST API, latest-version "
        "policy, hot swap of new versions (loaded and warmed up before the switch).",
        epilog=_SERVE_EPILOG,
        formatter_class=fmt,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-config", metavar="FILE", help="ModelServerConfig text proto (models.config)")
    source.add_argument(
        "--model-base-path",
        metavar="DIR",
        help="folder holding integer version folders of one model",
    )
    p.add_argument(
        "--model-name",
        default="retrieval",
        help="model name with --model-base-path (default retrieval)",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500; 0 = any free port)")
    p.add_argument("--rest-port", type=int, default=8501, help="REST port (default 8501; 0 = no REST API)")
    p.add_argument(
        "--enable_batching",
        "--enable-batching",
        action="store_true",
        help="merge concurrent Predict requests of one model and signature into one call (as TF Serving)",
    )
    p.add_argument(
        "--batching_parameters_file",
        "--batching-parameters-file",
        metavar="FILE",
        help="BatchingParameters text proto, e.g. serving/batching.config (needs --enable_batching)",
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between scans for new versions (default 1)",
    )
    options.add_verbosity(p)
    p.set_defaults(handler=serve_command)

    p = subparsers.add_parser(
        "query",
        help="ask a running model server for top-K recommendations",
        description="Call the retrieval model of a running TF Serving (or tfrec-llm serve) over "
        "gRPC (default) or REST and print the top-K items per user.",
        epilog=_QUERY_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("--host", default="localhost", help="server host (default localhost)")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="server port (default 8500 for gRPC, 8501 with --rest)",
    )
    p.add_argument("--model-name", default="retrieval", help="model name (default retrieval)")
    p.add_argument("--user", action="append", required=True, help="user id (repeatable)")
    p.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    p.add_argument(
        "--recent-items",
        type=options.comma_list,
        default=None,
        metavar="ID,ID,...",
        help="item ids the user(s) just interacted with, oldest first: appended to the stored "
        "history of a known user, the whole history of an unknown one (a logged-out session); "
        "the sequence encoder reads them and they are not recommended again",
    )
    p.add_argument(
        "--user-text",
        default=None,
        metavar="TEXT",
        help="the user's own words, e.g. 'animated films and space operas', sent as the optional "
        "user_text input of a model trained with model.user_text (to every --user); an unknown "
        "--user with a text is a new user described by it",
    )
    p.add_argument(
        "--signature",
        default="serving_default",
        help="signature to call (default serving_default; 'recommend' with --model-name ranking: "
        "the two-stage graph that retrieves ranking.num_candidates items and ranks them)",
    )
    p.add_argument("--rest", action="store_true", help="use the REST API instead of gRPC")
    p.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="per-request timeout (default 5)",
    )
    p.add_argument(
        "--titles-from-dataset",
        choices=["movielens_100k"],
        default=None,
        help="print item titles read from this data set",
    )
    options.add_verbosity(p)
    p.set_defaults(handler=query_command)

    p = subparsers.add_parser(
        "check-servable",
        help="list the ops of SavedModels and check them against stock TF Serving",
        description="Print every op of each SavedModel (graph and function library) with its "
        "category, and fail when an op is not registered by the stock tensorflow_model_server.",
        epilog=_CHECK_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("version_dirs", nargs="+", metavar="VERSION_DIR", help="SavedModel version folder(s)")
    p.add_argument(
        "--tf-serving-version",
        default=None,
        metavar="X.Y.Z",
        help="tensorflow/serving release whose op list to check against (default: export.tf_serving_version's "
        "default, 2.20.0); 'installed' = the TensorFlow of this process",
    )
    options.add_verbosity(p)
    p.set_defaults(handler=check_servable_command)


def _batching(args: argparse.Namespace) -> Any:
    """The ``BatchingParameters`` of ``--enable_batching [--batching_parameters_file]``, or ``None``."""
    from tfrec_llm.errors import ConfigError
    from tfrec_llm.serving.local.batching import read_batching_parameters

    if args.batching_parameters_file and not args.enable_batching:
        raise ConfigError(
            "--batching_parameters_file needs --enable_batching (as in tensorflow_model_server)."
        )
    return read_batching_parameters(args.batching_parameters_file) if args.enable_batching else None


def serve_command(args: argparse.Namespace) -> int:
    """``tfrec-llm serve``: blocks until Ctrl-C or SIGTERM, then exits within about a second.

    Does not return: once the server has stopped (ports freed, in-flight requests answered
    or abandoned), the process ends with ``os._exit(0)``. A model call, a merged batch or a
    load still running cannot be interrupted from Python, and interpreter shutdown would wait
    for it (13 to 19 s for a large Predict before this) or tear TensorFlow down under it.
    """
    from tfrec_llm.serving.local import LocalModelServer

    rest_port = None if args.rest_port == 0 else args.rest_port
    common = {
        "grpc_port": args.port,
        "rest_port": rest_port,
        "host": args.host,
        "poll_interval_s": args.poll_interval,
        "batching_parameters": _batching(args),
    }
    if args.model_config:
        server = LocalModelServer.from_config_file(args.model_config, **common)
    else:
        server = LocalModelServer.from_base_path(args.model_name, args.model_base_path, **common)
    # SIGINT must raise KeyboardInterrupt whatever disposition this process inherited: a
    # background job of a non-interactive shell (CI, `cmd &` in a script, a test runner started
    # that way) starts with SIGINT *ignored*, Python then installs no handler, and Ctrl-C /
    # `kill -INT` would never stop the server.
    restore = _interrupt_on_signals()
    try:
        server.start()
        rest = f"REST on {args.host}:{server.rest_port}" if server.rest_port else "REST off"
        print(
            f"tfrec-llm serve: gRPC on {args.host}:{server.grpc_port}, {rest} (Ctrl-C stops)",
            flush=True,
        )
        server.serve_forever(grace_s=_STOP_GRACE_S)
    except KeyboardInterrupt:  # during start(), which has stopped the server already
        pass
    finally:
        restore()
    abandoned = server.abandoned
    left = f"; abandoned {abandoned} model call(s) or load(s) still running" if abandoned else ""
    print(f"tfrec-llm serve: stopped{left}", file=sys.stderr, flush=True)
    _exit_now(0)
    return 0  # not reached


def _exit_now(code: int) -> None:
    """Flushes output and ends the process without waiting for threads still in TensorFlow."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _interrupt_on_signals() -> Callable[[], None]:
    """Makes SIGINT and SIGTERM raise KeyboardInterrupt (main thread only); returns the undo.

    Only the first signal raises; the stop that follows is bounded, and a second signal
    during it exits at once. SIGINT may have been inherited *ignored* (a background job of a
    non-interactive shell): installing the handler takes it back.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signal handlers can only be set from the main thread
    signals = (signal.SIGINT, signal.SIGTERM)

    def second(signum: int, frame: Any) -> None:
        print(f"tfrec-llm serve: signal {signum} again, exiting now", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    def first(signum: int, frame: Any) -> None:
        for sig in signals:
            signal.signal(sig, second)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, first) for sig in signals}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    return restore


def _titles(dataset_name: str) -> dict[str, str]:
    from tfrec_llm.data.readers import read_movielens_100k

    if dataset_name != "movielens_100k":  # argparse choices make this unreachable
        raise ValueError(dataset_name)
    items = read_movielens_100k().items
    return dict(zip(items["item_id"].astype(str), items["title"].astype(str), strict=True))


def query_command(args: argparse.Namespace) -> int:
    """``tfrec-llm query``: prints a ranked table per user."""
    if args.rest:
        from tfrec_llm.serving.rest_client import RestClient

        port = args.port or 8501
        client: Any = RestClient(f"http://{args.host}:{port}", args.model_name, timeout_s=args.timeout)
    else:
        from tfrec_llm.serving.grpc_client import GrpcClient

        client = GrpcClient(args.host, args.port or 8500, args.model_name, timeout_s=args.timeout)
    recent = None if args.recent_items is None else [args.recent_items] * len(args.user)
    texts = None if args.user_text is None else [args.user_text] * len(args.user)
    answers = client.recommend(
        args.user, k=args.k, recent_item_ids=recent, signature_name=args.signature, user_texts=texts
    )
    titles = _titles(args.titles_from_dataset) if args.titles_from_dataset else {}
    for user, answer in zip(args.user, answers, strict=True):
        print(f"user {user}:")
        for rank, (item, score) in enumerate(answer, start=1):
            title = f"  {titles.get(item, '?')}" if titles else ""
            print(f"  {rank:>3}. {item:>8}  {score:9.4f}{title}")
    most = max((len(answer) for answer in answers), default=0)
    if most < args.k:
        print(
            f"tfrec-llm query: note: the server returned at most {most} items per user for "
            f"--k {args.k}: the export caps k at export.max_k and at the catalog size.",
            file=sys.stderr,
        )
    return 0


def check_servable_command(args: argparse.Namespace) -> int:
    """``tfrec-llm check-servable``: exit code 1 when any folder has an unservable op."""
    from tfrec_llm.config import ExportConfig
    from tfrec_llm.errors import ExportError
    from tfrec_llm.export.op_scan import check_servable, scan_saved_model

    version = args.tf_serving_version or ExportConfig().tf_serving_version
    target = None if version == "installed" else version
    failed = False
    for path in args.version_dirs:
        print(f"== {path}")
        try:
            result = scan_saved_model(path, tf_serving_version=target)
        except ExportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
            continue
        print(result.table())
        if result.ok:
            server = f"tensorflow/serving:{target}" if target else "the TensorFlow installed here"
            print(f"OK: all {len(result.all_ops)} op types are servable by stock TF Serving ({server})")
            continue
        failed = True
        try:
            check_servable(path, tf_serving_version=target)
        except ExportError as exc:
            print(f"NOT SERVABLE: {exc}", file=sys.stderr)
    return 1 if failed else 0
