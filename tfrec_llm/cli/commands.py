"""Implementations of the ``tfrec-llm`` subcommands (argument parsing is in ``main.py``)."""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any

import numpy as np

from tfrec_llm.config import ExperimentConfig, dump_config, load_config, replace

logger = logging.getLogger("tfrec_llm")


def _config(args: argparse.Namespace) -> ExperimentConfig:
    cfg = load_config(args.config, args.overrides)
    if getattr(args, "model_dir", None):
        cfg = replace(cfg, train__model_dir=args.model_dir)
    return cfg


def _model(cfg: ExperimentConfig, prepared: Any, variant: str, protocol: str, verbose: int, retrain: bool = False) -> tuple[Any, dict[str, Any]]:
    """The finished model of a variant (trained first if needed), seeded the same way every time.

    Seeding right before each model makes its weights independent of what the process did
    before: `tfrec-llm train --variant bert` and `tfrec-llm run` train the very same model.
    """
    import tf_keras as keras

    from tfrec_llm.training.experiment import load_or_train

    keras.utils.set_random_seed(cfg.train.seed)
    return load_or_train(cfg, prepared, variant, _model_dir(cfg, protocol, variant), retrain=retrain, verbose=verbose)


def _verbose(args: argparse.Namespace) -> int:
    return 0 if args.quiet else 1


def _model_dir(cfg: ExperimentConfig, protocol: str, variant: str) -> str:
    return os.path.join(cfg.train.model_dir, protocol, variant)


def _histories(prepared: Any) -> dict[str, list[str]]:
    """Every interaction we know per user, chronological: TRAIN+VALID then the TEST targets."""
    from tfrec_llm.training.experiment import user_histories

    histories = user_histories(prepared.split.train_valid)
    test = prepared.split.test
    for user, targets in zip(test.user_ids, test.targets):
        histories.setdefault(str(user), []).extend(str(t) for t in targets)
    return histories


def train(args: argparse.Namespace) -> int:
    """``tfrec-llm train``."""
    from tfrec_llm.training.experiment import prepare

    cfg = _config(args)
    protocol = args.protocol or cfg.eval.protocol
    prepared = prepare(cfg, protocol, with_text=args.variant != "id")
    directory = _model_dir(cfg, protocol, args.variant)
    _, info = _model(cfg, prepared, args.variant, protocol, _verbose(args), retrain=args.retrain)
    dump_config(cfg, os.path.join(directory, "config.yaml"))
    print(f"{args.variant} model in {directory}: best epoch {info['best_epoch']}, valid {info['valid_metrics']}")
    return 0


def evaluate_protocols(
    cfg: ExperimentConfig, protocols: list[str], variants: list[str], verbose: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Evaluates baselines and model variants; returns (records, prepared per protocol)."""
    from tfrec_llm.evaluation.baselines import MostPopScorer, RandomScorer
    from tfrec_llm.evaluation.protocols import evaluate
    from tfrec_llm.models.scorer import TwoTowerScorer
    from tfrec_llm.training.experiment import VARIANT_NAMES, load_dataset, prepare

    dataset = load_dataset(cfg.data)
    records: list[dict[str, Any]] = []
    prepared_by_protocol: dict[str, Any] = {}
    for protocol in protocols:
        prepared = prepare(cfg, protocol, with_text=any(v != "id" for v in variants), dataset=dataset)
        prepared_by_protocol[protocol] = prepared
        split = prepared.split
        scorers: list[Any] = []
        if "Random" in cfg.eval.baselines:
            scorers.append(RandomScorer(split, seed=cfg.train.seed))
        if "MostPop" in cfg.eval.baselines:
            scorers.append(MostPopScorer(split))
        fit_seconds: dict[str, float] = {}
        for variant in variants:
            model, info = _model(cfg, prepared, variant, protocol, verbose)
            scorers.append(TwoTowerScorer(model, prepared.catalog, name=VARIANT_NAMES[variant]))
            fit_seconds[VARIANT_NAMES[variant]] = float(info["train_seconds"])  # type: ignore[arg-type]
        for scorer in scorers:
            for task in (split.valid, split.test):
                start = time.perf_counter()
                metrics = evaluate(scorer, task, split.item_ids, ks=cfg.eval.ks)
                seconds = time.perf_counter() - start
                for key, value in metrics.items():
                    if key == "users" or "@" not in key:
                        continue
                    metric, k = key.split("@")
                    record = {
                        "model": scorer.name,
                        "protocol": protocol,
                        "split": task.name,
                        "metric": metric,
                        "k": int(k),
                        "value": float(value),
                        "users": int(metrics["users"]),
                        "eval_seconds": round(seconds, 3),
                    }
                    if scorer.name in fit_seconds:
                        record["fit_seconds"] = fit_seconds[scorer.name]
                    records.append(record)
    return records, prepared_by_protocol


def evaluate(args: argparse.Namespace) -> int:
    """``tfrec-llm evaluate``."""
    from tfrec_llm.evaluation.report import records_to_table, write_json

    cfg = _config(args)
    protocols = args.protocol or [cfg.eval.protocol]
    records, _ = evaluate_protocols(cfg, protocols, args.variants, _verbose(args))
    table = records_to_table([r for r in records if r["split"] == "test"])
    print(table)
    if args.json:
        write_json(records, args.json)
        print(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(table + "\n")
    return 0


def _export(cfg: ExperimentConfig, prepared: Any, variant: str, export_dir: str, version: int | None, verbose: int) -> Any:
    from tfrec_llm.export.exporter import export_all
    from tfrec_llm.training.experiment import text_model_path

    model, _ = _model(cfg, prepared, variant, prepared.split.protocol, verbose)
    text_path = text_model_path(cfg.text) if variant != "id" else None
    # The fine-tuned TextEncoder (None when BERT is frozen) is what item_encoder must serve.
    fine_tuned = model.item_tower.text_encoder if variant != "id" else None
    return export_all(
        cfg,
        model,
        prepared.catalog,
        _histories(prepared),
        export_dir,
        text_path,
        prepared.item_texts,
        version,
        text_encoder=fine_tuned,
    )


def export(args: argparse.Namespace) -> int:
    """``tfrec-llm export``."""
    from tfrec_llm.training.experiment import prepare

    cfg = _config(args)
    prepared = prepare(cfg, "loo", with_text=args.variant != "id")
    result = _export(cfg, prepared, args.variant, args.export_dir or cfg.export.export_dir, args.version, _verbose(args))
    print(f"exported {result.retrieval}")
    if result.item_encoder:
        print(f"exported {result.item_encoder}")
    print(f"wrote {result.models_config}")
    return 0


def _titles(prepared: Any) -> dict[str, str]:
    from tfrec_llm.data.schema import ITEM_ID

    return dict(zip(prepared.split.item_ids, prepared.item_texts)) if len(prepared.dataset.items) else {}


def recommend(args: argparse.Namespace) -> int:
    """``tfrec-llm recommend``: in-process top-K with the exported graph's code."""
    import tensorflow as tf

    from tfrec_llm.export.serving_module import RetrievalModule
    from tfrec_llm.training.experiment import prepare

    cfg = _config(args)
    prepared = prepare(cfg, "loo", with_text=args.variant != "id")
    model, _ = _model(cfg, prepared, args.variant, "loo", _verbose(args))
    histories = _histories(prepared)
    module = RetrievalModule(model, prepared.catalog, histories, cfg.export.default_k, cfg.export.max_k)
    users = [str(u) for u in args.user]
    for user in users:
        if user not in histories:
            logger.warning("user %r is unknown to the model: recommending the most popular unseen items", user)
    out = module.serve(
        tf.constant(users), tf.zeros([0, 0], tf.string), tf.zeros([0, 0], tf.string), tf.constant(args.k, tf.int32)
    )
    titles = _titles(prepared)
    print_recommendations(users, out["item_ids"].numpy(), out["scores"].numpy(), titles)
    return 0


def print_recommendations(users: list[str], item_ids: np.ndarray, scores: np.ndarray, titles: dict[str, str]) -> None:
    """Prints one block per user: rank, item id, score, item text."""
    for user, ids, row_scores in zip(users, item_ids, scores):
        print(f"user {user}:")
        for rank, (item, score) in enumerate(zip(ids, row_scores), start=1):
            item = item.decode() if isinstance(item, bytes) else str(item)
            print(f"  {rank:2d}. [{item:>5}] {score:7.4f}  {titles.get(item, '')}")


def run(args: argparse.Namespace) -> int:
    """``tfrec-llm run``: evaluate -> export -> serve -> query over gRPC."""
    from tfrec_llm.evaluation.report import records_to_table, write_json
    from tfrec_llm.serving.grpc_client import GrpcClient
    from tfrec_llm.serving.local_server import LocalModelServer

    start = time.perf_counter()
    cfg = _config(args)
    print("== 1/4 evaluate (trains the models that are not trained yet)")
    records, prepared = evaluate_protocols(cfg, args.protocol, ["id", "bert"], _verbose(args))
    print(records_to_table([r for r in records if r["split"] == "test"]))
    if args.json:
        write_json(records, args.json)
        print(f"wrote {args.json}")

    print("== 2/4 export")
    from tfrec_llm.training.experiment import prepare

    loo = prepared.get("loo") or prepare(cfg, "loo")
    export_dir = args.export_dir or cfg.export.export_dir
    result = _export(cfg, loo, "bert", export_dir, None, _verbose(args))
    print(f"exported {result.retrieval}\nexported {result.item_encoder}\nwrote {result.models_config}")

    print("== 3/4 serve: local TF Serving-compatible PredictionService on 127.0.0.1 (production: tensorflow/serving)")
    server = LocalModelServer.from_config_file(result.models_config, grpc_port=0, rest_port=0)
    server.start()
    try:
        print(f"gRPC on 127.0.0.1:{server.grpc_port}, REST on 127.0.0.1:{server.rest_port}")
        print("== 4/4 query over gRPC")
        client = GrpcClient("127.0.0.1", server.grpc_port, model_name="retrieval")
        users = [u.strip() for u in args.users.split(",") if u.strip()]
        answers = client.recommend(users, k=5)
        titles = _titles(loo)
        for user, answer in zip(users, answers):
            print(f"user {user}:")
            for rank, (item, score) in enumerate(answer, start=1):
                print(f"  {rank}. [{item:>5}] {score:7.4f}  {titles.get(item, '')}")
    finally:
        server.stop()
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0
