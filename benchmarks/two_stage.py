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
batch 1 and batch 256, k = 10; median and p90 of repeated calls after a warm-up, the two
signatures' calls interleaved in rotating order (``common.time_calls``) so that a change of the
machine's load hits both alike.

With ``--valid-lists``, a third ranking model: ``ranking.examples=valid_lists`` and
``ranking.residual=true`` (`tfrec_llm.training.serving_lists`): trained on lists that look like
serving (the retrieval model's top N for each user's TRAIN history, the VALID item as the
positive, the real retrieval scores as the feature), scoring ``retrieval / temperature + f``
with ``f`` zero at initialisation, early-stopped on the loss of a held-out fifth of the users.
With ``--item-item L2``, the same with ``ranking.item_item_l2=L2``: plus ``w * sum over the
history of B[h, c]``, B the EASE weights of TRAIN, w fitted on the fit lists
(`tfrec_llm.training.item_item_fit`); the latency is then measured with this ranker.

One run, on a machine shared with other jobs (numbers are pessimistic; load average in the report).

Usage:
    python benchmarks/two_stage.py [--epochs 8] [--hard-negatives] [--valid-lists] [--item-item 100]
        [--set ranking.list_size=20 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from common import DEFAULT_OUT, paired, setup_environment, time_calls
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


def _hard_lists(cfg: Any, prepared: Any, model: Any, frame: Any, history: Any, n: int) -> dict[str, Any]:
    """Listwise examples whose negatives are the retrieval model's top ``n`` (hard negatives).

    Per row of ``frame``: the history before it (from ``history``), the retrieval model's top
    ``n`` items for that history with the user's known items removed, ``list_size - 1`` of them
    drawn at random (seed ``train.seed``) beside the chosen item at a random slot.
    """
    import tensorflow as tf

    from tfrec_llm.data.ranking_examples import histories_before
    from tfrec_llm.data.schema import ITEM_ID, USER_ID

    catalog, size = prepared.catalog, cfg.ranking.list_size
    hist = histories_before(frame, catalog, cfg.model.history_length, history)
    users = catalog.user_index(frame[USER_ID].to_numpy()).astype(np.int32)
    items = catalog.item_index(frame[ITEM_ID].to_numpy()).astype(np.int32)
    known = prepared.split.train_valid
    seen_rows = catalog.user_index(known[USER_ID].to_numpy())
    seen_items = catalog.item_index(known[ITEM_ID].to_numpy())
    seen: dict[int, np.ndarray] = {}
    for user in np.unique(seen_rows):
        seen[int(user)] = seen_items[seen_rows == user]
    candidates = model.all_candidate_embeddings()
    rng = np.random.default_rng(cfg.train.seed)
    lists = np.zeros((len(users), size), np.int32)
    for start in range(0, len(users), 2048):
        rows = slice(start, start + 2048)
        query = model.query_embedding(tf.constant(users[rows]), tf.constant(hist[rows])).numpy()
        scores = query @ candidates.T
        for offset, user in enumerate(users[rows]):
            scores[offset, seen.get(int(user), [])] = -np.inf
        top = np.argpartition(-scores, n, axis=1)[:, :n]
        for offset in range(top.shape[0]):
            pool = top[offset][np.isfinite(scores[offset, top[offset]])]
            lists[start + offset, 1:] = rng.choice(pool, size - 1, replace=len(pool) < size - 1)
    slot = rng.integers(0, size, size=len(users))
    rows = np.arange(len(users))
    lists[:, 0] = lists[rows, slot]
    lists[rows, slot] = items
    label = np.zeros(lists.shape, np.float32)
    label[rows, slot] = 1.0
    return {"user": users, "item": lists, "history": hist, "label": label}


def _hard_ranking(cfg: Any, prepared: Any, model: Any, folder: str, n: int) -> tuple[Any, dict[str, Any]]:
    """The ranking model trained on hard-negative lists (cached in ``folder``)."""
    from tfrec_llm.atomic_io import write_json
    from tfrec_llm.experiments.ranking_run import _valid_rows
    from tfrec_llm.training.ranking_trainer import build_ranking_model, train_ranking

    def build() -> Any:
        return build_ranking_model(cfg, prepared.catalog, prepared.text_embeddings)

    weights, result = os.path.join(folder, "model.weights.h5"), os.path.join(folder, "result.json")
    if os.path.exists(result):
        ranking = build()
        ranking.load_weights(weights)
        with open(result, encoding="utf-8") as f:
            return ranking, json.load(f)
    start = time.perf_counter()
    train = prepared.split.train
    examples = _hard_lists(cfg, prepared, model, train, train, n)
    valid = _hard_lists(cfg, prepared, model, _valid_rows(prepared), train, n)
    mining = time.perf_counter() - start
    fit = train_ranking(cfg, examples, valid, build, folder, verbose=2)
    fit.model.save_weights(weights)
    info = {
        "objective": "listwise (hard negatives)",
        "best_epoch": fit.best_epoch,
        "valid_metrics": fit.valid_metrics,
        "epochs_run": fit.epochs_run,
        "train_seconds": round(fit.seconds + mining, 2),
    }
    write_json(result, info)
    return fit.model, info


def _latency(functions: dict[str, Any], kwargs: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Median and p90 ms of each signature, calls interleaved (rotating order) after a warm-up."""
    for fn in functions.values():
        for _ in range(3):
            fn(**kwargs)
    times = time_calls({name: (lambda fn=fn: fn(**kwargs)) for name, fn in functions.items()}, repeats)
    return {
        name: {
            "median_ms": float(np.median(t) * 1000.0),
            "p90_ms": float(np.percentile(t, 90) * 1000.0),
            "calls": len(t),
        }
        for name, t in times.items()
    }


def _compare(a: Any, b: Any, key: str) -> dict[str, float]:
    """`common.paired` of two per-user evaluations' ``key`` values."""
    return paired(a.values[key], b.values[key])


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
    quality: dict[str, Any] = {key: _compare(a, b, key) for key in ("ndcg@10", "hr@10")}
    report_hard = None
    if args.hard_negatives:
        hard_dir = os.path.join(args.model_dir, "loo", f"ranking-{args.objective}-hard")
        hard_cfg = dataclasses.replace(
            rank_cfg, train=dataclasses.replace(rank_cfg.train, epochs=args.hard_epochs)
        )
        hard, hard_info = _hard_ranking(hard_cfg, prepared, model, hard_dir, n)
        report_hard = {"folder": os.path.relpath(hard_dir), **hard_info}
        three = TwoStageScorer(retrieval_scorer, hard, prepared.catalog, n, name="two-stage hard")
        c = user_evaluation(three, split.test, split.item_ids, ks=(10,))
        quality["hard_negatives"] = {key: _compare(a, c, key) for key in ("ndcg@10", "hr@10")}
    list_reports: dict[str, Any] = {}
    lists_models: dict[str, Any] = {}
    for key, folder_name, extra in _list_rankers(args):
        lists_cfg = load_config(
            overrides=[
                f"train.model_dir={args.model_dir}",
                "ranking.objective=listwise",
                "ranking.examples=valid_lists",
                "ranking.residual=true",
                f"train.epochs={args.lists_epochs}",
                f"train.patience={args.lists_patience}",
                f"train.batch_size={args.lists_batch_size}",
                *args.overrides,
                *extra,
            ]
        )
        lists_dir = os.path.join(args.model_dir, "loo", folder_name)
        lists_models[key], lists_info = load_or_train_ranking(
            lists_cfg, prepared, lists_dir, verbose=2, retrieval_model=model
        )
        list_reports[key] = {
            "folder": os.path.relpath(lists_dir),
            "ranking_section": dataclasses.asdict(lists_cfg.ranking),
            "batch_size": lists_cfg.train.batch_size,
            **lists_info,
        }
        ranker = TwoStageScorer(retrieval_scorer, lists_models[key], prepared.catalog, n, name=key)
        d = user_evaluation(ranker, split.test, split.item_ids, ks=(10,))
        quality[key] = {metric: _compare(a, d, metric) for metric in ("ndcg@10", "hr@10")}
    quality["users"] = int(a.user_ids.size)
    quality["eval_seconds"] = round(time.perf_counter() - eval_start, 1)

    histories = known_histories(prepared)
    users = [str(u) for u in split.test.user_ids]
    with tempfile.TemporaryDirectory() as out:
        export_retrieval(rank_cfg, model, prepared.catalog, histories, out, 1)
        # the latency of the ranker the default config serves (the item-item one) when it was built
        served = lists_models.get("item_item", ranking)
        export_ranking(rank_cfg, model, served, prepared.catalog, histories, out, 1)
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
            functions = {"retrieval": retrieval_fn, "recommend": recommend_fn}
            latency[f"batch_{batch}"] = _latency(functions, kwargs, repeats)
        for row in latency.values():
            row["ratio"] = row["recommend"]["median_ms"] / row["retrieval"]["median_ms"]

    end = describe_machine()
    report = {
        **provenance("benchmarks/two_stage.py", argv, machine),
        "load_start": machine["load_average"],
        "retrieval_run": {"folder": os.path.relpath(folder), **info},
        "ranking_run": {"folder": os.path.relpath(ranking_dir), **rank_info},
        "ranking_section": dataclasses.asdict(rank_cfg.ranking),
        "ranking_run_hard_negatives": report_hard,
        "ranking_run_valid_lists": list_reports.get("valid_lists"),
        "ranking_run_item_item": list_reports.get("item_item"),
        "latency_ranker": "item_item" if "item_item" in lists_models else "ranking_run",
        "num_candidates": n,
        "quality": quality,
        "latency": latency,
        "seconds": round(time.perf_counter() - started, 1),
    }
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "two_stage.json"), report)
    write_text(os.path.join(args.out, "two_stage.md"), _markdown(report, machine, end))
    return 0


def _list_rankers(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """(quality key, run folder name, extra overrides) of the serving-like-list rankers asked for."""
    rankers = [("valid_lists", "ranking-valid-lists", [])] if args.valid_lists else []
    if args.item_item:
        l2 = f"{args.item_item:g}"
        rankers.append(("item_item", f"ranking-valid-lists-ii{l2}", [f"ranking.item_item_l2={l2}"]))
    return rankers


def _paired_rows(quality: dict[str, Any]) -> list[str]:
    """Table rows (NDCG@10, HR@10): retrieval, two-stage, their paired difference, beyond 1 SE."""
    rows = []
    for key in ("ndcg@10", "hr@10"):
        r = quality[key]
        beyond = "yes" if abs(r["difference"]) > r["difference_se"] else "no"
        rows.append(
            f"| {key.upper()} | {r['retrieval']:.4f} ± {r['retrieval_se']:.4f} | "
            f"{r['two_stage']:.4f} ± {r['two_stage_se']:.4f} | "
            f"{r['difference']:+.4f} ± {r['difference_se']:.4f} (paired) | {beyond} |"
        )
    return rows


def _lists_section(lists: dict[str, Any], info: dict[str, Any], what: str) -> list[str]:
    """The markdown of one residual ranker trained on serving-like lists."""
    ndcg = lists["ndcg@10"]
    beyond = ndcg["difference"] > ndcg["difference_se"]
    lines = [
        "",
        f"Serving-like lists, residual ranker{what} (`ranking.examples=valid_lists`, "
        "`ranking.residual=true`): per user, the retrieval model's top N for the TRAIN history with "
        "the VALID item as the positive (users whose VALID item is not in the top N are left out) and "
        "the real retrieval scores; score = retrieval score / model.temperature + f, f's last layer "
        f"zero at the start; a fifth of the users held out to stop on their loss (`{info['folder']}`, "
        f"batch {info['batch_size']} lists, best epoch {info['best_epoch']} of {info['epochs_run']}, "
        f"{info['train_seconds']} s with the lists):",
        "",
        "| metric | retrieval | two-stage (valid lists, residual) | difference | beyond 1 SE? |",
        "|---|---|---|---|---|",
        *_paired_rows(lists),
        "",
        "The trained residual did not lower the held-out users' loss below the retrieval order's, "
        "so the run zeroed its last layer."
        if info.get("kept_retrieval_order")
        else "The trained residual lowered the held-out users' loss and is kept as trained.",
        "",
        "Issue 11's target (two-stage better than retrieval alone by more than one standard error "
        f"of the paired NDCG@10 difference): {'met' if beyond else 'NOT met'} with this ranker "
        f"({ndcg['difference']:+.4f} ± {ndcg['difference_se']:.4f}).",
    ]
    return lines


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
    lines += _paired_rows(q)
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
    if q.get("hard_negatives"):
        hard, info = q["hard_negatives"], report["ranking_run_hard_negatives"]
        lines += [
            "",
            "With hard negatives (the same ranking model trained on lists whose negatives are drawn "
            f"from the retrieval model's top N for the row's history; `{info['folder']}`, best "
            f"epoch {info['best_epoch']} of {info['epochs_run']}, {info['train_seconds']} s with the "
            "mining):",
            "",
            "| metric | retrieval | two-stage (hard negatives) | difference | beyond 1 SE? |",
            "|---|---|---|---|---|",
        ]
        lines += _paired_rows(hard)
    if q.get("valid_lists"):
        lines += _lists_section(q["valid_lists"], report["ranking_run_valid_lists"], "")
    if q.get("item_item"):
        info = report["ranking_run_item_item"]
        held = info["item_item_held_out_loss"]
        lines += _lists_section(
            q["item_item"],
            info,
            f" + item-item (EASE on TRAIN, l2 {info['ranking_section']['item_item_l2']:g}; w = "
            f"{info['item_item_weight']:.3f} fitted on the fit lists; held-out loss {held[0]:.4f} at w = 0, "
            f"{held[1]:.4f} at w)",
        )
    target = lat["batch_1"]["ratio"] < 3.0
    lines += [
        "",
        "## Latency of the exported signatures (loaded SavedModel, in process, k = 10, calls interleaved)",
        "",
        "The exported `recommend` ranks with "
        + (
            "the item-item residual ranker (the default config's)."
            if report.get("latency_ranker") == "item_item"
            else "the ranking model of the first table."
        ),
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
    parser.add_argument(
        "--hard-negatives",
        action="store_true",
        help="also a ranking model trained on retrieval top-N negatives",
    )
    parser.add_argument("--hard-epochs", type=int, default=3, help="epoch cap of the hard-negative model")
    parser.add_argument(
        "--valid-lists",
        action="store_true",
        help="also a residual ranking model trained on serving-like lists (ranking.examples=valid_lists)",
    )
    parser.add_argument("--lists-epochs", type=int, default=30, help="epoch cap of the valid-lists model")
    parser.add_argument("--lists-patience", type=int, default=3)
    parser.add_argument("--lists-batch-size", type=int, default=32, help="lists of N per step")
    parser.add_argument(
        "--item-item",
        type=float,
        default=0.0,
        metavar="L2",
        help="also the valid-lists residual ranker with ranking.item_item_l2=L2 (its latency is measured)",
    )
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--train-only", action="store_true", help="train (or find) the models and stop")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    args = parser.parse_args(argv)
    return run(args, argv)


if __name__ == "__main__":
    sys.exit(main())
