"""Rating RMSE and CTR AUC of the ranking model on MovieLens-100K, beside the TFRS tutorials.

Protocol (the TFRS ranking tutorial's): the 100,000 ratings are shuffled with a fixed seed
(``numpy.random.default_rng(SPLIT_SEED).permutation``) and cut 80/20 into TRAIN and TEST. The
tutorial trains a fixed number of epochs on all of TRAIN; we hold out a random 10% of TRAIN
(``VALID_SEED``) to choose the epoch (early stopping on VALID RMSE), fit on the other 90% and
report TEST once. Histories are a user's TRAIN ratings at an earlier timestamp (never a TEST
row). Rows:

- the tutorials' published figures (basic ranking: user id + movie id embeddings and an MLP,
  RMSE about 1.11; DCN-v2 with user and movie features: 0.933 +- 0.002);
- ``basic``: the tutorial's features (user id + movie id, 32-d, MLP 256-64) in our
  ``RankingModel`` (no cross layers), Adam, early stopping;
- ``dcn``: our DCN-v2 ranking model (ids with OOV, profile, MiniLM text embedding, genres, mean-
  pooled history; 2 stacked cross layers + MLP), from the ``ranking`` config section;
- ``ctr``: clicks = the TEST ratings, 4 sampled negatives each (items the user never rated), AUC
  and log loss of the same model trained with the ``ctr`` objective on TRAIN's clicks.

One run of each, on a machine shared with other jobs (numbers are pessimistic; the load average
is in the report).

Usage:
    python benchmarks/ranking.py [--epochs 30] [--set ranking.cross_layers=3 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from common import DEFAULT_OUT, setup_environment
from machine import describe_machine, load_line, machine_line, provenance

SPLIT_SEED = 42
VALID_SEED = 43
NEGATIVE_SEED = 44
TEST_FRACTION = 0.2
VALID_FRACTION = 0.1
PUBLISHED = {
    "basic": ("TFRS basic ranking tutorial (published)", 1.11),
    "dcn": ("TFRS DCN-v2 tutorial (published)", "0.933 +- 0.002"),
}
BASE_MODEL = {
    "embedding_dim": 32,
    "history_length": 20,
    "history_encoder": "mean",
    "objective": "interaction",
    "loss": "in_batch",
    "use_profile": True,
    "text_projection_dim": 64,
}


def _config(args: argparse.Namespace, model: dict[str, Any], ranking: dict[str, Any]) -> Any:
    from tfrec_llm.config import apply_overrides, config_from_dict

    values = {
        "model": {**BASE_MODEL, **model},
        "ranking": ranking,
        "train": {
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "epochs": args.epochs,
            "patience": args.patience,
            "seed": args.seed,
        },
    }
    return config_from_dict(apply_overrides(values, args.overrides))


def _fit(cfg: Any, name: str, data: dict[str, Any], args: argparse.Namespace, bias: float) -> dict[str, Any]:
    """Trains one model (fresh folder), returns its TEST metrics and timings."""
    import shutil

    import tensorflow as tf

    from tfrec_llm.training.ranking_trainer import build_ranking_model, evaluate_ranking, train_ranking

    folder = os.path.join(args.model_dir, name)
    shutil.rmtree(folder, ignore_errors=True)
    tf.keras.utils.set_random_seed(args.seed)
    result = train_ranking(
        cfg,
        data["fit"],
        data["valid"],
        lambda: build_ranking_model(cfg, data["catalog"], data["text"], output_bias=bias),
        folder,
        verbose=0,
    )
    test = evaluate_ranking(result.model, data["test"])
    rows = len(next(iter(data["fit"].values())))
    print(f"{name}: test {test} best epoch {result.best_epoch} in {result.seconds:.0f} s", flush=True)
    return {
        "test": test,
        "valid": result.valid_metrics,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "fit_seconds": round(result.seconds, 1),
        "fit_rows": rows,
        "seconds_per_row_epoch": result.seconds / max(result.epochs_run, 1) / rows,
    }


def _data(args: argparse.Namespace, objective_cfg: Any, frames: dict[str, Any], base: dict[str, Any]) -> dict:
    from tfrec_llm.training.ranking_trainer import ranking_examples

    fit, known = frames["fit"], frames["all"]
    return {
        **base,
        "fit": ranking_examples(objective_cfg, fit, base["catalog"], history=fit, known=known),
        "valid": ranking_examples(
            objective_cfg, frames["valid"], base["catalog"], history=fit, seed=NEGATIVE_SEED, known=known
        ),
        "test": ranking_examples(
            objective_cfg,
            frames["test"],
            base["catalog"],
            history=frames["train"],
            seed=NEGATIVE_SEED + 1,
            known=known,
        ),
    }


def run(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Runs the benchmark and writes ``ranking.md`` and ``ranking.json`` under ``--out``."""
    setup_environment()
    machine = describe_machine()
    started = time.perf_counter()
    from tfrec_llm.atomic_io import write_json, write_text
    from tfrec_llm.config import ExperimentConfig
    from tfrec_llm.data.catalog import build_catalog
    from tfrec_llm.data.ranking_examples import random_split
    from tfrec_llm.data.splits import make_split
    from tfrec_llm.experiments.prepare import encode_item_texts, item_texts, load_dataset

    defaults = ExperimentConfig()
    dataset = load_dataset(defaults.data)
    ratings = dataset.interactions
    train, test = random_split(ratings, TEST_FRACTION, seed=SPLIT_SEED)
    fit, valid = random_split(train, VALID_FRACTION, seed=VALID_SEED)
    split = dataclasses.replace(make_split(dataset, "loo"), train=fit)
    catalog = build_catalog(dataset, split)
    texts = item_texts(dataset, catalog.item_ids, defaults.text.template)
    text = encode_item_texts(defaults.text, texts, args.text_cache, show_progress=False)
    frames = {"fit": fit, "valid": valid, "test": test, "train": train, "all": ratings}
    base = {"catalog": catalog, "text": text}
    bias = float(fit["rating"].mean())
    results: dict[str, Any] = {}

    basic = _config(
        args,
        {"use_text": False, "use_categories": False, "use_history": False, "use_profile": False},
        {"cross_layers": 0, "deep_layers": [256, 64]},
    )
    rating_data = _data(args, basic, frames, base)
    constant = float(((test["rating"] - bias) ** 2).mean() ** 0.5)
    results["constant"] = {"test": {"rmse": constant}}
    results["basic"] = _fit(basic, "basic", rating_data, args, bias)
    dcn = _config(args, {}, {"objective": "rating"})
    results["dcn"] = _fit(dcn, "dcn", rating_data, args, bias)
    ctr = _config(args, {}, {"objective": "ctr", "negatives": 4})
    ctr = dataclasses.replace(ctr, train=dataclasses.replace(ctr.train, epochs=args.ctr_epochs))
    results["ctr"] = _fit(ctr, "ctr", _data(args, ctr, frames, base), args, 0.0)

    end = describe_machine()
    report = {
        **provenance("benchmarks/ranking.py", argv, machine),
        "load_start": machine["load_average"],
        "split": {
            "seed": SPLIT_SEED,
            "test_fraction": TEST_FRACTION,
            "valid_seed": VALID_SEED,
            "valid_fraction_of_train": VALID_FRACTION,
            "rows": {name: len(frame) for name, frame in frames.items() if name != "all"},
        },
        "configs": {"basic": _sections(basic), "dcn": _sections(dcn), "ctr": _sections(ctr)},
        "published": {key: value[1] for key, value in PUBLISHED.items()},
        "results": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "ranking.json"), report)
    write_text(os.path.join(args.out, "ranking.md"), _markdown(report, machine, end))
    return 0


def _sections(cfg: Any) -> dict[str, Any]:
    from tfrec_llm.config import config_to_dict

    values = config_to_dict(cfg)
    return {key: values[key] for key in ("model", "ranking", "train")}


def _markdown(report: dict[str, Any], machine: dict[str, Any], end: dict[str, Any]) -> str:
    results = report["results"]
    rows = report["split"]["rows"]

    def timing(name: str) -> str:
        r = results[name]
        return (
            f"{r['fit_seconds']:.0f} s, {r['epochs_run']} epochs (best {r['best_epoch'] + 1}), "
            f"{1e6 * r['seconds_per_row_epoch']:.1f} us per row-epoch"
        )

    lines = [
        "# Ranking on MovieLens-100K: rating RMSE and CTR AUC",
        "",
        f"Command: `{report['command']}` ({report['date']}).",
        f"Machine: {machine_line(machine)}; {load_line(report['load_start'], end['load_average'])}. "
        "The machine is shared with other jobs, so the times are pessimistic; one run of each model.",
        "",
        f"Split: the {sum(rows[k] for k in ('train', 'test'))} ratings shuffled with "
        f"`numpy.random.default_rng({report['split']['seed']})`, 80% TRAIN / 20% TEST as in the TFRS "
        f"ranking tutorial; a random 10% of TRAIN (seed {report['split']['valid_seed']}) is VALID for "
        f"early stopping, the model fits on the other {rows['fit']} rows and TEST ({rows['test']}) is "
        "scored once.",
        "",
        "## Rating RMSE (TEST)",
        "",
        "| model | RMSE | fit |",
        "|---|---|---|",
        f"| {PUBLISHED['basic'][0]} | {PUBLISHED['basic'][1]} | |",
        f"| {PUBLISHED['dcn'][0]} | {PUBLISHED['dcn'][1]} | |",
        f"| constant (mean TRAIN rating) | {results['constant']['test']['rmse']:.4f} | |",
        f"| basic: user id + movie id, MLP 256-64 (ours) | {results['basic']['test']['rmse']:.4f} | "
        f"{timing('basic')} |",
        f"| DCN-v2: ids, profile, MiniLM text, genres, history (ours) | {results['dcn']['test']['rmse']:.4f} | "
        f"{timing('dcn')} |",
        "",
        f"Target: below 0.933. {'Reached' if results['dcn']['test']['rmse'] < 0.933 else 'Missed'}: "
        f"{results['dcn']['test']['rmse']:.4f}.",
        "",
        "## CTR with sampled negatives (TEST)",
        "",
        "Each TEST rating is a click, with 4 negatives drawn uniformly among the items the user "
        "never rated; the model trains the same way on TRAIN (its clicks and their negatives, "
        f"5x the rows, so at most {report['configs']['ctr']['train']['epochs']} epochs).",
        "",
        "| model | AUC | log loss | fit |",
        "|---|---|---|---|",
        f"| DCN-v2, ctr objective (ours) | {results['ctr']['test']['auc']:.4f} | "
        f"{results['ctr']['test']['log_loss']:.4f} | {timing('ctr')} |",
        "",
        f"Total {report['seconds']:.0f} s. Configs in ranking.json.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parses the options and runs the benchmark."""
    parser = argparse.ArgumentParser(prog="benchmarks/ranking.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--model-dir", default=os.path.join("runs", "bench", "ranking"))
    parser.add_argument("--text-cache", default=os.path.join("runs", "bench", "text_cache"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--ctr-epochs", type=int, default=8, help="epoch cap of the ctr model (5x the rows)")
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=SPLIT_SEED)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    return run(parser.parse_args(argv), argv)


if __name__ == "__main__":
    sys.exit(main())
