"""``tfrec-llm compare RUN_A RUN_B``: offline A/B comparison of two trained runs.

Both runs are scored on the same users of the same protocol split; the report gives the paired
per-user difference with a bootstrap confidence interval, a paired test and a team-draft
interleaving simulation (``tfrec_llm.evaluation.compare``).
"""

from __future__ import annotations

import argparse
from typing import Any

from tfrec_llm.cli import options
from tfrec_llm.config.choices import SPLIT_NAMES

__all__ = ["add_subcommands"]


def add_subcommands(subparsers: Any) -> None:
    """Registers ``compare`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "compare",
        help="offline A/B comparison of two trained runs (paired CI, test, interleaving)",
        description="Score two run folders (each with config.yaml and model.weights.h5, e.g. "
        "<model_dir>/loo/id and <model_dir>/loo/bert) on the same users of the same protocol, "
        "and report the per-user paired difference of a metric with a seeded bootstrap 95% "
        "confidence interval, a paired test (Wilcoxon signed-rank, or an exact sign test), and a "
        "team-draft interleaving simulation in which the held-out item is the click. Writes "
        "compare.md and differences.png to --out. A run may also be a baseline name: MostPop "
        "or Random (fitted on the other run's split).",
    )
    p.add_argument("run_a", metavar="RUN_A", help="run folder of model A (or MostPop / Random)")
    p.add_argument("run_b", metavar="RUN_B", help="run folder of model B (or MostPop / Random)")
    p.add_argument(
        "--protocol",
        default=None,
        choices=SPLIT_NAMES,
        help="protocol to evaluate under (default: the run folder's parent name, else eval.protocol); "
        "cold-users-select / cold-items-select: protocol C / B rebuilt inside its warm users / items "
        "(benchmarks/seeds.py)",
    )
    p.add_argument("--split", default="test", choices=("valid", "test"), help="task (default test)")
    p.add_argument("--metric", default="ndcg", choices=("ndcg", "recall", "hr"), help="default ndcg")
    p.add_argument("--k", type=int, default=10, help="cut-off (default 10)")
    p.add_argument("--bootstrap", type=int, default=10000, help="bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the interleaving")
    p.add_argument("--out", default=None, metavar="DIR", help="write compare.md and differences.png to DIR")
    options.add_verbosity(p)
    p.set_defaults(handler=compare)


def compare(args: argparse.Namespace) -> int:
    """``tfrec-llm compare``."""
    from tfrec_llm.experiments.compare_runs import compare_runs

    result, written = compare_runs(
        args.run_a,
        args.run_b,
        protocol=args.protocol,
        split=args.split,
        metric=args.metric,
        k=args.k,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        out_dir=args.out,
    )
    print(result.to_markdown())
    for path in written:
        print(f"wrote {path}")
    return 0
