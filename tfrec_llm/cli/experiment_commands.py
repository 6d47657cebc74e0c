"""``tfrec-llm train | evaluate | export | recommend | run``: thin wrappers over ``experiments``.

Each handler reads the config, calls the experiment layer and prints; TensorFlow is imported
only when a command runs, so ``tfrec-llm --help`` stays fast. ``train`` and ``run`` train what
is missing; ``evaluate``, ``export`` and ``recommend`` only read trained models
(``train_missing=False``): a model that is not trained, or whose training was killed, stops
them before any data is read, with a message naming its run folder and the ``tfrec-llm train``
command that makes it.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tfrec_llm.cli import options
from tfrec_llm.config.choices import REPORT_VARIANTS, TWO_STAGE_VARIANT, VARIANTS, variant_uses_text

logger = logging.getLogger("tfrec_llm")

NEW_USER = "new-user"
"""The id `run` queries for a new user described only by text (unknown to every model)."""
DEMO_USER_TEXT = "I like animated films and space operas"
"""`run`'s default ``--user-text``."""

__all__ = ["add_subcommands", "print_recommendations"]

READ_ONLY = (
    "Never trains: a model not trained yet (or whose training was killed) under "
    "<model_dir>/<protocol>/<variant> is an error that names the 'tfrec-llm train' command "
    "making it ('tfrec-llm run' trains, evaluates and exports)."
)


def add_subcommands(subparsers: Any) -> None:
    """Registers train, evaluate, export, recommend and run on an argparse subparsers object."""
    p = subparsers.add_parser(
        "train",
        help="train one model variant under one protocol (early stopping on VALID NDCG@10)",
        description="Train a two-tower model with early stopping on VALID (full-ranking NDCG@10). "
        "Interrupted runs resume from <model_dir>/<protocol>/<variant>/backup. A finished run "
        "with the same config and data is reused; one made with other settings or data is an "
        "error (nothing is deleted) unless --retrain, which moves the old run aside to "
        "<run>.bak-<time> and trains again.",
    )
    options.add_common(p)
    p.add_argument(
        "--variant",
        default="bert",
        choices=sorted(VARIANTS) + ["ranking"],
        help=options.VARIANT_HELP + "; or ranking: the second-stage ranking model (ranking section), "
        "which export and recommend then use for two-stage recommendation",
    )
    options.add_protocol(p)
    options.add_strategy(p)
    p.add_argument(
        "--retrain",
        action="store_true",
        help="move the finished model, if any, aside to <run>.bak-<time> (never deleted) and train again",
    )
    p.set_defaults(handler=train)

    p = subparsers.add_parser(
        "evaluate",
        help="evaluate baselines and model variants under the protocols of docs/evaluation.md",
        description="Score Random, MostPop and the trained model variants on TEST (and VALID) with "
        "the full-ranking evaluator. Prints a table; --json writes records "
        '{"model", "protocol", "split", "metric", "k", "value", ...}. ' + READ_ONLY,
    )
    options.add_common(p)
    p.add_argument(
        "--protocol",
        type=options.protocol_list,
        default=None,
        help="comma-separated protocols (default: eval.protocol): " + options.PROTOCOL_HELP,
    )
    p.add_argument(
        "--variants",
        type=options.variant_list,
        default=list(REPORT_VARIANTS),
        help=options.VARIANT_HELP + f" (comma-separated; default {','.join(REPORT_VARIANTS)})",
    )
    p.add_argument("--json", default=None, metavar="FILE", help="write the records as JSON to FILE")
    p.add_argument("--markdown", default=None, metavar="FILE", help="write the table as Markdown to FILE")
    p.set_defaults(handler=evaluate)

    p = subparsers.add_parser(
        "export",
        help="export retrieval + item_encoder SavedModels for TF Serving",
        description="Write DIR/retrieval/<version>/, DIR/item_encoder/<version>/ and DIR/models.config "
        "(atomically: written aside, checked for TF Serving ops, then renamed) from the trained loo "
        "model of --variant. " + READ_ONLY,
    )
    options.add_common(p)
    p.add_argument("--export-dir", default=None, help="base export folder (default: export.export_dir)")
    options.add_variant(p)
    p.add_argument("--version", type=int, default=None, help="version number (default: the next free one)")
    p.set_defaults(handler=export)

    p = subparsers.add_parser(
        "recommend",
        help="print top-K recommendations for users, in process",
        description="Recommend with the trained model in process (the same graph that is exported). "
        "An unknown user id falls back to the popularity ranking, with a warning. " + READ_ONLY,
    )
    options.add_common(p)
    p.add_argument("--user", action="append", required=True, help="user id (repeatable)")
    p.add_argument(
        "--k",
        type=int,
        default=10,
        help="how many items, >= 1 (default 10; more than min(export.max_k, catalog size) is capped, with a warning)",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="under each item, the user's history items that weigh most in it (attention weights, "
        "else embedding similarity) and the categories and title terms they share",
    )
    p.add_argument(
        "--explain-text",
        default=None,
        metavar="GENERATOR",
        help="also write a one-sentence explanation (implies --explain) with GENERATOR: 'template' "
        "(no model), an http(s):// URL of a text service, or a local transformers model folder; "
        "text naming a title, genre or year absent from the evidence is replaced by the template",
    )
    p.add_argument(
        "--user-text",
        default=None,
        metavar="TEXT",
        help="the user's own words, e.g. 'animated films and space operas' (a model trained with "
        "model.user_text: true), given to every --user; a new user id plus a text is a cold user",
    )
    p.add_argument(
        "--two-stage",
        action="store_true",
        help="retrieve ranking.num_candidates items, rank them with the ranking model (tfrec-llm "
        "train --variant ranking) and print its top K; the default whenever that model is trained",
    )
    p.add_argument(
        "--scenario",
        default=None,
        metavar="NAME",
        help="recommend only items of this scenario's catalog (a value of the data's 'scenario' "
        "column, e.g. news); the other scenarios' items are excluded before both stages",
    )
    options.add_variant(p)
    p.set_defaults(handler=recommend)

    p = subparsers.add_parser(
        "run",
        help="the whole job: evaluate (train if needed), export, serve over gRPC and query",
        description="Evaluate Random, MostPop and the config's model (--variants adds others) under "
        "the given protocols, export it, start the local TF Serving-compatible server on a free "
        "loopback port, and query it over gRPC for a few users.",
    )
    options.add_common(p)
    p.add_argument(
        "--protocol",
        type=options.protocol_list,
        default=["loo", "cold-items", "cold-users"],
        help="comma-separated protocols (default loo,cold-items,cold-users)",
    )
    p.add_argument(
        "--variants",
        type=options.variant_list,
        default=list(REPORT_VARIANTS),
        help=options.VARIANT_HELP + f" (comma-separated; default {','.join(REPORT_VARIANTS)}); the last "
        "one is exported and served, e.g. --variants mean,bert compares the original mean-pooling "
        "two-tower beside the config's model",
    )
    p.add_argument("--export-dir", default=None, help="base export folder (default: export.export_dir)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the evaluation records as JSON")
    p.add_argument("--users", default="1,2,3", help="comma-separated user ids to query at the end")
    p.add_argument(
        "--user-text",
        default=DEMO_USER_TEXT,
        metavar="TEXT",
        help="with a model that reads user text (model.user_text), also query for a new user "
        f"described only by TEXT (default {DEMO_USER_TEXT!r}); '' skips it",
    )
    options.add_strategy(p)
    p.set_defaults(handler=run)


def _experiment(args: argparse.Namespace) -> Any:
    from tfrec_llm.experiments import Experiment

    return Experiment(options.config_from_args(args), verbose=options.keras_verbosity(args))


def train(args: argparse.Namespace) -> int:
    """``tfrec-llm train``."""
    from tfrec_llm.experiments import run_dir

    exp = _experiment(args)
    protocol = args.protocol or exp.config.eval.protocol
    if args.variant == "ranking":
        _, info = exp.train_ranking(protocol)
    else:
        _, info = exp.train(args.variant, protocol, retrain=args.retrain)
    directory = run_dir(exp.config, protocol, args.variant)
    print(
        f"{args.variant} model in {directory}: best epoch {info['best_epoch']}, valid {info['valid_metrics']}"
    )
    return 0


def _write_records(records: list[dict[str, Any]], path: str | None) -> None:
    if path:
        from tfrec_llm.evaluation.report import write_json

        write_json(records, path)
        print(f"wrote {path}")


def evaluate(args: argparse.Namespace) -> int:
    """``tfrec-llm evaluate``."""
    from tfrec_llm.atomic_io import write_text

    exp = _experiment(args)
    result = exp.evaluate(args.protocol, args.variants, train_missing=False)
    print(result.table)
    _write_records(result.records, args.json)
    if args.markdown:
        write_text(args.markdown, result.table + "\n")
    return 0


def _print_export(result: Any) -> None:
    print(f"exported {result.retrieval}")
    if result.item_encoder:
        print(f"exported {result.item_encoder}")
    print(f"wrote {result.models_config}")


def export(args: argparse.Namespace) -> int:
    """``tfrec-llm export``."""
    exp = _experiment(args)
    result = exp.export(args.variant, args.export_dir, args.version, train_missing=False)
    _print_export(result)
    _export_ranking_beside(exp, args.variant, result, args.export_dir)
    return 0


def _export_ranking_beside(exp: Any, variant: str, result: Any, export_dir: str | None) -> bool:
    """Exports ``ranking`` (two-stage ``recommend``) at the retrieval export's version, if trained.

    Returns:
        Whether it was exported (not when the ranking run is missing).
    """
    if not exp.ranking_trained():
        return False
    version = int(os.path.basename(result.retrieval))
    print(f"exported {exp.export_ranking(variant, export_dir, version, train_missing=False)}")
    return True


def print_recommendations(
    users: Sequence[str], answers: Sequence[Sequence[tuple[str, float]]], titles: Mapping[str, str]
) -> None:
    """Prints one block per user: rank, item id, score, item text."""
    for user, answer in zip(users, answers):
        print(f"user {user}:")
        for rank, (item, score) in enumerate(answer, start=1):
            print(f"  {rank:2d}. [{item:>5}] {score:7.4f}  {titles.get(item, '')}")


def recommend(args: argparse.Namespace) -> int:
    """``tfrec-llm recommend``: in-process top-K with the exported graph's code."""
    exp = _experiment(args)
    users = [str(u) for u in args.user]
    user_text = getattr(args, "user_text", None)
    two_stage = True if getattr(args, "two_stage", False) else None
    answers = exp.recommend(
        users,
        args.k,
        args.variant,
        train_missing=False,
        user_text=user_text,
        two_stage=two_stage,
        scenario=getattr(args, "scenario", None),
    )
    titles = exp.prepare("loo", with_text=variant_uses_text(args.variant)).titles
    text_spec = getattr(args, "explain_text", None)
    if not (getattr(args, "explain", False) or text_spec):
        print_recommendations(users, answers, titles)
        return 0
    explainer = exp.explainer(args.variant, train_missing=False)
    generator = None
    if text_spec:
        from tfrec_llm.content.faithfulness import FaithfulnessChecker
        from tfrec_llm.content.generators import make_generator

        generator = make_generator(text_spec, FaithfulnessChecker.from_facts(explainer.facts.values()))
    for user, answer in zip(users, answers):
        print(f"user {user}:")
        for rank, (item, score) in enumerate(answer, start=1):
            explanation = explainer.explain(user, item, score)
            print(f"  {rank:2d}. [{item:>5}] {score:7.4f}  {titles.get(item, '')}")
            print(f"      {explanation.summary()}")
            if generator is not None:
                text = generator.generate(explanation)
                rejected = f" (template: {'; '.join(text.rejected)})" if text.rejected else ""
                print(f'      "{text.text}"{rejected}')
    return 0


def run(args: argparse.Namespace) -> int:
    """``tfrec-llm run``: evaluate -> export -> serve -> query over gRPC."""
    from tfrec_llm.serving.grpc_client import GrpcClient
    from tfrec_llm.serving.local import LocalModelServer

    start = time.perf_counter()
    exp = _experiment(args)
    print("== 1/4 evaluate (trains the models that are not trained yet)")
    result = exp.evaluate(args.protocol, args.variants)
    print(result.table)
    _write_records(result.records, args.json)
    print(f"(evaluate: {time.perf_counter() - start:.0f} s)")

    print(f"== 2/4 export ({args.variants[-1]})")
    started = time.perf_counter()
    exported = exp.export(args.variants[-1], args.export_dir)
    _print_export(exported)
    # the ranking model re-ranks the candidates of TWO_STAGE_VARIANT (bert) only
    two_stage = (
        exp.config.eval.two_stage
        and args.variants[-1] == TWO_STAGE_VARIANT
        and _export_ranking_beside(exp, args.variants[-1], exported, args.export_dir)
    )
    print(f"(export: {time.perf_counter() - started:.0f} s)")

    print(
        "== 3/4 serve: local TF Serving-compatible PredictionService on 127.0.0.1 (production: tensorflow/serving)"
    )
    server = LocalModelServer.from_config_file(exported.models_config, grpc_port=0, rest_port=0)
    server.start()
    try:
        print(f"gRPC on 127.0.0.1:{server.grpc_port}, REST on 127.0.0.1:{server.rest_port}")
        print("== 4/4 query over gRPC")
        client = GrpcClient("127.0.0.1", server.grpc_port, model_name="retrieval")
        users = [u.strip() for u in args.users.split(",") if u.strip()]
        titles = exp.prepare("loo").titles
        print_recommendations(users, client.recommend(users, k=5), titles)
        described = exp.config.model.user_text and args.user_text.strip()
        if described:
            print(f"a new user described only by text, user_text={args.user_text!r}:")
            answer = client.recommend([NEW_USER], k=5, user_texts=[args.user_text])
            print_recommendations([NEW_USER], answer, titles)
        if two_stage:
            print("two-stage (model 'ranking', signature 'recommend'):")
            ranking = GrpcClient("127.0.0.1", server.grpc_port, model_name="ranking")
            print_recommendations(users, ranking.recommend(users, k=5, signature_name="recommend"), titles)
            if described:
                answer = ranking.recommend(
                    [NEW_USER], k=5, signature_name="recommend", user_texts=[args.user_text]
                )
                print_recommendations([NEW_USER], answer, titles)
    finally:
        server.stop()
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0
