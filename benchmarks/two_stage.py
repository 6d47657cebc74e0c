"""Two-stage recommendation on MovieLens-100K: quality of retrieval alone vs retrieve-N-then-rank,
and the latency of the exported ``recommend`` signature vs the ``retrieval`` signature.

Quality, protocol A (``loo``), TEST: the retrieval model is a finished ``bert`` run of the
default config (reused from ``--model-dir``/loo/, the first one whose settings match), the
ranking model is trained on TRAIN (``ranking.objective``, default here ``listwise``, examples of
the ranking section: the chosen item among sampled negatives) and early-stopped on the VALID
targets. Two-stage = the retrieval top N (``ranking.num_candidates``, 100) re-ranked by the
ranking model (`tfrec_llm.evaluation.two_stage_scorer`). Per-user NDCG@10 and HR@10 of both on
the same users, paired difference with its standard error and bootstrap CI
(`tfrec_llm.evaluation.compare`).

Latency: both SavedModels are exported (`export_retrieval`, `export_ranking`), loaded back with
``tf.saved_model.load``, and called in this process through their signatures with known users,
batch 1 and batch 256, k = 10; median and p90 of repeated calls after a warm-up.

One run, on a machine shared with other jobs (numbers are pessimistic; load average in the report).

Usage:
    python benchmarks/two_stage.py [--epochs 8] [--set ranking.list_size=20 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from common import DEFAULT_OUT, setup_environment
from machine import describe_machine, load_line, machine_line, provenance


def _retrieval_run(cfg: Any, prepared: Any, model_dir: str) -> tuple[Any, dict[str, Any], str]:
    """The first finished ``bert`` run under ``<model_dir>/loo/`` that fits ``cfg``."""
    from tfrec_llm.experiments.runs import StaleRunError, load_or_train

    folders = sorted(glob.glob(os.path.join(model_dir, "loo", "bert*")))
    for folder in folders:
        try:
            model, info = load_or_train(cfg, prepared, "bert", folder, if_missing="error", verbose=0)
            return model, info, folder
        except StaleRunError:
            continue
    model, info = load_or_train(cfg, prepared, "bert", os.path.join(model_dir, "loo", "bert"), verbose=2)
    return model, info, os.path.join(model_dir, "loo", "bert")


def _latency(fn: Any, kwargs: dict[str, Any], repeats: int) -> dict[str, float]:
    for _ in range(3):
        fn(**kwargs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(**kwargs)
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "calls": repeats}


def _compare(a: Any, b: Any, key: str) -> dict[str, float]:
    diff = b.values[key] - a.values[key]
    n = diff.size
    return {
        "retrieval": float(a.values[key].mean()),
        "retrieval_se": float(a.values[key].std(ddof=1) / np.sqrt(n)),
        "two_stage": float(b.values[key].mean()),
        "two_stage_se": float(b.values[key].std(ddof=1) / np.sqrt(n)),
        "difference": float(diff.mean()),
        "difference_se": float(diff.std(ddof=1) / np.sqrt(n)),
    }


def run(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Runs the benchmark and writes ``two_stage.md`` and ``two_stage.json`` under ``--out``."""
    setup_environment()
    machine = describe_machine()
    started = time.perf_counter()
    import tensorflow as tf

    from tfrec_llm.atomic_io import write_json, write_text
    from tfrec_llm.config import load_config
    from tfrec_llm.evaluation.compare import user_evaluation
    from tfrec_llm.evaluation.two_stage_scorer import TwoStageScorer
    from tfrec_llm.experiments.experiment import Experiment
    from tfrec_llm.experiments.prepare import known_histories
    from tfrec_llm.experiments.ranking_run import load_or_train_ranking
    from tfrec_llm.export.exporter import export_retrieval
    from tfrec_llm.export.ranking_export import export_ranking
    from tfrec_llm.models.scorer import TwoTowerScorer

    cfg = load_config(overrides=[f"train.model_dir={args.model_dir}"])
    exp = Experiment(cfg, verbose=0)
    prepared = exp.prepare("loo")
    model, info, folder = _retrieval_run(cfg, prepared, args.model_dir)
    rank_cfg = load_config(
        overrides=[
            f"train.model_dir={args.model_dir}",
            f"ranking.objective={args.objective}",
            f"train.epochs={args.epochs}",
            f"train.patience={args.patience}",
            f"train.batch_size={args.batch_size}",
            *args.overrides,
        ]
    )
    ranking_dir = args.ranking_dir or os.path.join(args.model_dir, "loo", f"ranking-{args.objective}")
    ranking, rank_info = load_or_train_ranking(rank_cfg, prepared, ranking_dir, verbose=2)
    if args.train_only:
        return 0

    split = prepared.split
    retrieval_scorer = TwoTowerScorer(model, prepared.catalog, name="retrieval (bert)")
    n = rank_cfg.ranking.num_candidates
    two = TwoStageScorer(retrieval_scorer, ranking, prepared.catalog, n, name=f"two-stage (bert, N={n})")
    eval_start = time.perf_counter()
    a = user_evaluation(retrieval_scorer, split.test, split.item_ids, ks=(10,))
    b = user_evaluation(two, split.test, split.item_ids, ks=(10,))
    quality = {key: _compare(a, b, key) for key in ("ndcg@10", "hr@10")}
    quality["users"] = int(a.user_ids.size)
    quality["eval_seconds"] = round(time.perf_counter() - eval_start, 1)

    histories = known_histories(prepared)
    users = [str(u) for u in split.test.user_ids]
    with tempfile.TemporaryDirectory() as out:
        export_retrieval(rank_cfg, model, prepared.catalog, histories, out, 1)
        export_ranking(rank_cfg, model, ranking, prepared.catalog, histories, out, 1)
        retrieval_fn = tf.saved_model.load(os.path.join(out, "retrieval", "1")).signatures["serving_default"]
        recommend_fn = tf.saved_model.load(os.path.join(out, "ranking", "1")).signatures["recommend"]
        none = tf.zeros([0, 0], tf.string)
        latency: dict[str, Any] = {}
        for batch, repeats in ((1, args.repeats), (256, max(5, args.repeats // 10))):
            kwargs = {
                "user_id": tf.constant(users[:batch]),
                "recent_item_ids": none,
                "exclude_item_ids": none,
                "k": tf.constant(10),
            }
            latency[f"batch_{batch}"] = {
                "retrieval": _latency(retrieval_fn, kwargs, repeats),
                "recommend": _latency(recommend_fn, kwargs, repeats),
            }
        for row in latency.values():
            row["ratio"] = row["recommend"]["median_ms"] / row["retrieval"]["median_ms"]

    end = describe_machine()
    report = {
        **provenance("benchmarks/two_stage.py", argv, machine),
        "load_start": machine["load_average"],
        "retrieval_run": {"folder": os.path.relpath(folder), **info},
        "ranking_run": {"folder": os.path.relpath(ranking_dir), **rank_info},
        "ranking_section": dataclasses.asdict(rank_cfg.ranking),
        "num_candidates": n,
        "quality": quality,
        "latency": latency,
        "seconds": round(time.perf_counter() - started, 1),
    }
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "two_stage.json"), report)
    write_text(os.path.join(args.out, "two_stage.md"), _markdown(report, machine, end))
    return 0


def _markdown(report: dict[str, Any], machine: dict[str, Any], end: dict[str, Any]) -> str:
    q, lat = report["quality"], report["latency"]
    rank = report["ranking_run"]
    lines = [
        "# Two-stage recommendation: retrieval alone vs retrieve N + rank (MovieLens-100K)",
        "",
        f"Machine: {machine_line(machine)}; {load_line(machine['load_average'], end['load_average'])}. "
        "The machine is shared with other jobs: timings are pessimistic.",
        "",
        f"Command: `{report['command']}` ({report['date']}, {report['seconds']} s).",
        "",
        f"Retrieval: `{report['retrieval_run']['folder']}` (default config, variant bert). Ranking: "
        f"`{rank['folder']}`, objective {rank['objective']}, best epoch {rank['best_epoch']} of "
        f"{rank['epochs_run']}, {rank['train_seconds']} s. N = {report['num_candidates']}.",
        "",
        f"## Quality, protocol A (loo), TEST, {q['users']} users (mean ± standard error)",
        "",
        "| metric | retrieval | two-stage | two-stage − retrieval | beyond 1 SE? |",
        "|---|---|---|---|---|",
    ]
    for key in ("ndcg@10", "hr@10"):
        r = q[key]
        beyond = "yes" if abs(r["difference"]) > r["difference_se"] else "no"
        lines.append(
            f"| {key.upper()} | {r['retrieval']:.4f} ± {r['retrieval_se']:.4f} | "
            f"{r['two_stage']:.4f} ± {r['two_stage_se']:.4f} | "
            f"{r['difference']:+.4f} ± {r['difference_se']:.4f} (paired) | {beyond} |"
        )
    ndcg = q["ndcg@10"]
    verdict = "better" if ndcg["difference"] > 0 else "worse"
    lines += [
        "",
        f"Two-stage is {verdict} than retrieval alone by {abs(ndcg['difference']):.4f} NDCG@10 "
        f"({abs(ndcg['difference']) / ndcg['difference_se']:.1f} standard errors of the paired "
        "difference). The ranking model here is trained on the ranking section's examples: the "
        "chosen item against items drawn uniformly from those the user never had, which are easy "
        "negatives; the N candidates it re-ranks are the retrieval model's hardest ones, a "
        "distribution it never saw in training.",
    ]
    target = lat["batch_1"]["ratio"] < 3.0
    lines += [
        "",
        "## Latency of the exported signatures (loaded SavedModel, in process, k = 10)",
        "",
        "| batch | retrieval median / p90 ms | recommend (two-stage) median / p90 ms | ratio |",
        "|---|---|---|---|",
    ]
    for name, row in lat.items():
        r, t = row["retrieval"], row["recommend"]
        lines.append(
            f"| {name.split('_')[1]} | {r['median_ms']:.1f} / {r['p90_ms']:.1f} | "
            f"{t['median_ms']:.1f} / {t['p90_ms']:.1f} | {row['ratio']:.2f}× |"
        )
    lines += [
        "",
        f"Target: two-stage under 3× retrieval at batch 1: {'met' if target else 'NOT met'} "
        f"({lat['batch_1']['ratio']:.2f}×).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="benchmarks/two_stage.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--model-dir", default=os.path.join("runs", "bench"))
    parser.add_argument("--objective", default="listwise")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--ranking-dir", default=None, help="default <model-dir>/loo/ranking-<objective>")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--train-only", action="store_true", help="train (or find) the models and stop")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    args = parser.parse_args(argv)
    return run(args, argv)


if __name__ == "__main__":
    sys.exit(main())
