"""``tfrec-llm distill``: train the small student item encoder on the item texts.

The student (`tfrec_llm.text.student`) learns the teacher BERT's item vectors from the item
texts alone and goes to ``<train.model_dir>/student``; ``--set export.item_encoder=student``
then makes ``tfrec-llm export`` serve it as ``item_encoder``. Only this command trains it: it
reuses a finished student with the same settings, resumes a killed one, and with other
settings stops (nothing deleted) unless ``--retrain``.

``--retrieval-weight W`` adds the retrieval term: the config's trained ``bert`` two-tower
(``tfrec-llm train`` first; protocol ``eval.protocol``) stays frozen, and its TRAIN queries must
retrieve each item from the student's text vector alone, as a cold item.
"""

from __future__ import annotations

import argparse
from typing import Any

from tfrec_llm.cli import options

__all__ = ["add_subcommands"]


def add_subcommands(subparsers: Any) -> None:
    """Registers ``distill`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "distill",
        help="distill a small student item encoder from the text model (item texts only)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_common(p)
    p.add_argument("--epochs", type=int, default=40, help="distillation epochs (default 40)")
    p.add_argument("--embedding-dim", type=int, default=128, help="student token width (default 128)")
    p.add_argument(
        "--num-layers", type=int, default=0, choices=(0, 1, 2), help="Transformer blocks (0 = embedding bag)"
    )
    p.add_argument(
        "--contrastive-weight",
        type=float,
        default=0.0,
        help="weight of the in-batch contrastive term beside the cosine loss (default 0)",
    )
    p.add_argument("--token-dropout", type=float, default=0.1, help="token dropout (default 0.1)")
    p.add_argument(
        "--retrieval-weight",
        type=float,
        default=0.0,
        help="weight of the retrieval term read from the trained bert two-tower (default 0: off)",
    )
    p.add_argument(
        "--retrieval-pairs",
        type=int,
        default=50_000,
        help="TRAIN (history, next item) pairs drawn for the retrieval term (default 50000)",
    )
    p.add_argument(
        "--retrain",
        action="store_true",
        help="move an existing student aside (<dir>.bak-<time>) and train again",
    )
    p.set_defaults(handler=distill)


def distill(args: argparse.Namespace) -> int:
    """``tfrec-llm distill``."""
    from tfrec_llm.experiments.distill import StudentSettings, distill_student, student_dir
    from tfrec_llm.experiments.prepare import prepare
    from tfrec_llm.experiments.runs import load_or_train, require_trained

    cfg = options.config_from_args(args)
    if args.retrieval_weight > 0:  # the two-tower is only read: a missing one stops us before any work
        require_trained(cfg, [(cfg.eval.protocol, "bert")], reader="distill")
    prepared = prepare(cfg)
    frozen = None
    if args.retrieval_weight > 0:
        frozen, _ = load_or_train(cfg, prepared, "bert", if_missing="error", verbose=0)
    settings = StudentSettings(
        embedding_dim=args.embedding_dim,
        num_layers=args.num_layers,
        epochs=args.epochs,
        contrastive_weight=args.contrastive_weight,
        token_dropout=args.token_dropout,
        retrieval_weight=args.retrieval_weight,
        retrieval_pairs=args.retrieval_pairs,
    )
    _, metadata = distill_student(
        cfg, settings, prepared, retrain=args.retrain, verbose=options.keras_verbosity(args), frozen=frozen
    )
    result = metadata.get("result") or {}
    print(
        f"student in {student_dir(cfg)}: mean cosine to the teacher {result.get('mean_cosine', 'n/a')}"
        if result
        else f"student in {student_dir(cfg)} (already trained with these settings)"
    )
    return 0
