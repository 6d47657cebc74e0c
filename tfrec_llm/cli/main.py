"""``tfrec-llm``: train, evaluate, export and query text-aware recommenders.

Every command reads one YAML config (``--config``, default: the built-in MovieLens-100K +
MiniLM settings, the same as ``pipelines/movielens_100k.yaml``) and accepts ``--set
section.field=value`` overrides. Models are kept under ``<train.model_dir>/<protocol>/<variant>``;
train, run and tune train a model that is not there yet (and resume an interrupted run), while
evaluate, export and recommend only read trained models and never train or delete one.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# Quiet TensorFlow's C++ start-up logging unless the user asked for it (before TF loads).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfrec_llm  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)
from tfrec_llm.cli import (  # noqa: E402
    benchmark_commands,
    compare_commands,
    data_commands,
    distill_commands,
    experiment_commands,
    options,
    serving_commands,
    tune_commands,
)
from tfrec_llm.errors import ConfigError, DataError, ExportError, ServingError  # noqa: E402

COMMAND_GROUPS = (
    experiment_commands,
    data_commands,
    serving_commands,
    tune_commands,
    benchmark_commands,
    compare_commands,
    distill_commands,
)
"""Modules that each register their subcommands with ``add_subcommands(subparsers)``."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tfrec-llm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tfrec-llm`` console script."""
    args = build_parser().parse_args(argv)
    options.setup_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except (ConfigError, DataError, ExportError, ServingError) as e:
        print(f"tfrec-llm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tfrec-llm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
