"""``tfrec-llm prepare | synthesize``: training examples as shards, and synthetic logs.

``prepare`` writes the split's training examples as sharded TFRecords (docs/streaming.md), where
``train.streaming: true`` makes training stream them; ``synthesize`` writes a synthetic Zipf log
of any size in constant memory. TensorFlow is imported only when a command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from tfrec_llm.cli import options

__all__ = ["add_subcommands"]


def add_subcommands(subparsers: Any) -> None:
    """Registers prepare and synthesize on an argparse subparsers object."""
    p = subparsers.add_parser(
        "prepare",
        help="write the split's training examples as sharded TFRecords (for train.streaming)",
        description="Read the data, split it under --protocol and write the training examples of "
        "--variant (model.objective, model.history_length) as TFRecord shards under "
        "<model_dir>/examples/<protocol>/, a chunk of users at a time; also TRAIN+VALID with "
        "train.refit_on_train_valid. Shards already written for the same data and settings are "
        "kept. Training streams them with --set train.streaming=true (docs/streaming.md).",
    )
    options.add_common(p)
    options.add_variant(p)
    options.add_protocol(p)
    p.set_defaults(handler=prepare_shards)

    p = subparsers.add_parser(
        "synthesize",
        help="write a synthetic interaction log (users x items x Zipf popularity x item text)",
        description="Write a synthetic log, deterministic for --seed, as Parquet shards "
        "(user_id, item_id, timestamp) plus items.csv (item_id, title), one chunk of users at a "
        "time (never the whole log in memory).",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--interactions", type=int, required=True, help="about how many interactions")
    p.add_argument("--items", type=int, default=100_000, help="catalog size (default 100000)")
    p.add_argument("--mean-length", type=float, default=20.0, help="mean interactions per user (default 20)")
    p.add_argument("--zipf", type=float, default=1.0, help="popularity exponent (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    options.add_verbosity(p)
    p.set_defaults(handler=synthesize)


def prepare_shards(args: argparse.Namespace) -> int:
    """``tfrec-llm prepare``."""
    from tfrec_llm.experiments.prepare import prepare, write_training_shards
    from tfrec_llm.experiments.runs import variant_config

    cfg = variant_config(options.config_from_args(args), args.variant)
    protocol = args.protocol or cfg.eval.protocol
    prepared = prepare(cfg, protocol, with_text=False)
    fits = ["train", "train_valid"] if cfg.train.refit_on_train_valid else ["train"]
    for fit_on in fits:
        print(f"{fit_on}: {write_training_shards(cfg, prepared, fit_on)}")
    return 0


def synthesize(args: argparse.Namespace) -> int:
    """``tfrec-llm synthesize``."""
    from tfrec_llm.data.synthetic import write_synthetic_log

    info = write_synthetic_log(
        args.out, args.interactions, args.items, args.seed, args.mean_length, args.zipf
    )
    print(
        f"wrote {info['interactions']:,} interactions of {info['users']:,} users over "
        f"{info['items']:,} items to {args.out} ({info['bytes'] / 1e6:.1f} MB)"
    )
    return 0
