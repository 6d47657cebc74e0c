"""``tfrec-llm``: train, evaluate, export and query text-aware recommenders.

Every command reads one YAML config (``--config``, default: the built-in MovieLens-100K +
MiniLM settings, the same as ``pipelines/movielens_100k.yaml``) and accepts ``--set
section.field=value`` overrides. Models are kept under ``<train.model_dir>/<protocol>/<variant>``;
a command that needs a model trains it if it is not there yet, and resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

# Quiet TensorFlow's C++ start-up logging unless the user asked for it (before TF loads).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfrec_llm  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)

logger = logging.getLogger("tfrec_llm")

_VARIANT_HELP = "model variants: id (ids only), text (text + categories, no ids), bert (ids + text + categories)"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=None,
        help="YAML experiment config (see pipelines/movielens_100k.yaml); default: built-in MovieLens-100K + MiniLM",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one config field, e.g. --set train.epochs=5 (repeatable)",
    )
    p.add_argument("--model-dir", default=None, help="where models, checkpoints and logs go (default: train.model_dir)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    p.add_argument("--quiet", action="store_true", help="no Keras progress bars")


def _protocols(value: str) -> list[str]:
    from tfrec_llm.data.splits import PROTOCOLS

    out = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in out if v not in PROTOCOLS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown protocol(s) {bad}; expected {list(PROTOCOLS)}")
    return out


def _variants(value: str) -> list[str]:
    from tfrec_llm.training.experiment import VARIANTS

    out = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in out if v not in VARIANTS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {bad}; expected {sorted(VARIANTS)}")
    return out


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tfrec-llm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train one model variant under one protocol (early stopping on VALID NDCG@10)",
        description="Train a two-tower model with early stopping on VALID (full-ranking NDCG@10). "
        "Interrupted runs resume from <model_dir>/<protocol>/<variant>/backup.",
    )
    _add_common(p)
    p.add_argument("--variant", default="bert", choices=["id", "text", "bert"], help=_VARIANT_HELP)
    p.add_argument("--protocol", default=None, help="loo | cold-items | cold-users (default: eval.protocol)")
    p.add_argument("--retrain", action="store_true", help="train again even if a finished model exists")

    p = sub.add_parser(
        "evaluate",
        help="evaluate baselines and model variants under the EVALUATION.md protocols",
        description="Score Random, MostPop and the model variants on TEST (and VALID) with the "
        "full-ranking evaluator; trains missing models first. Prints a table; --json writes "
        'records {"model", "protocol", "split", "metric", "k", "value"}.',
    )
    _add_common(p)
    p.add_argument("--protocol", type=_protocols, default=None, help="comma-separated protocols (default: eval.protocol)")
    p.add_argument("--variants", type=_variants, default=["id", "bert"], help=_VARIANT_HELP + " (comma-separated)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the records as JSON to FILE")
    p.add_argument("--markdown", default=None, metavar="FILE", help="write the table as Markdown to FILE")

    p = sub.add_parser(
        "export",
        help="export retrieval + item_encoder SavedModels for TF Serving",
        description="Write DIR/retrieval/<version>/, DIR/item_encoder/<version>/ and DIR/models.config "
        "(atomically: written aside, checked for TF Serving ops, then renamed).",
    )
    _add_common(p)
    p.add_argument("--export-dir", default=None, help="base export folder (default: export.export_dir)")
    p.add_argument("--variant", default="bert", choices=["id", "text", "bert"], help=_VARIANT_HELP)
    p.add_argument("--version", type=int, default=None, help="version number (default: unix time)")

    p = sub.add_parser(
        "recommend",
        help="print top-K recommendations for users, in process",
        description="Recommend with the trained model in process (the same graph that is exported). "
        "An unknown user id falls back to the popularity ranking, with a warning.",
    )
    _add_common(p)
    p.add_argument("--user", action="append", required=True, help="user id (repeatable)")
    p.add_argument("--k", type=int, default=10, help="how many items (default 10)")
    p.add_argument("--variant", default="bert", choices=["id", "text", "bert"], help=_VARIANT_HELP)

    p = sub.add_parser(
        "run",
        help="the whole job: evaluate (train if needed), export, serve over gRPC and query",
        description="Evaluate Random, MostPop, the ID-only and the BERT two-tower under the given "
        "protocols, export the BERT model, start the local TF Serving-compatible server on a free "
        "loopback port, and query it over gRPC for a few users.",
    )
    _add_common(p)
    p.add_argument("--protocol", type=_protocols, default=["loo", "cold-items"], help="comma-separated protocols")
    p.add_argument("--export-dir", default=None, help="base export folder (default: export.export_dir)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the evaluation records as JSON")
    p.add_argument("--users", default="1,2,3", help="comma-separated user ids to query at the end")

    # Subcommands that live with their own code: serve / query / check-servable, tune, benchmark.
    from tfrec_llm.cli import benchmark_commands, serving_commands, tune_commands

    serving_commands.add_subcommands(sub)
    tune_commands.add_subcommands(sub)
    benchmark_commands.add_subcommands(sub)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tfrec_llm").setLevel(logging.INFO if verbosity == 0 else level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tfrec-llm`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    from tfrec_llm.errors import ConfigError, DataError, ExportError, ServingError

    try:
        if hasattr(args, "handler"):
            return int(args.handler(args) or 0)
        from tfrec_llm.cli import commands

        return int(getattr(commands, args.command)(args) or 0)
    except (ConfigError, DataError, ExportError, ServingError) as e:
        print(f"tfrec-llm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
