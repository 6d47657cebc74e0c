"""Two-stage vs retrieval alone over several retrieval seeds, with and without the item-item term.

For each seed, the default config's retrieval model (variant ``bert``, ``train.seed`` = the
seed; cached in ``<model-dir>/loo/`` like ``seeds.py``) is the first stage, and the main
command's ranker (``pipelines/movielens_100k.yaml``: listwise, ``examples: valid_lists``,
``residual: true``) is trained on its candidates once per ``ranking.item_item_l2`` value
(``--l2``, default 0 and 100). Protocol A TEST: per-user NDCG@10 and HR@10 of retrieval alone
and of each two-stage pipeline, their paired difference and its standard error
(`tfrec_llm.evaluation.compare.user_evaluation`). One seed's difference can be luck; the
seeds show whether it holds::

    python benchmarks/two_stage_seeds.py --seed 42 --seed 1

Outputs in ``--out``: ``two_stage_seeds.json`` and ``two_stage_seeds.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import common
import numpy as np
from machine import command_line, describe_machine, load_line, machine_line

CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipelines", "movielens_100k.yaml"
)
"""The main command's config (resolved from this checkout, whatever the working folder)."""
METRICS = ("ndcg@10", "hr@10")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options."""
    common.add_config_arguments(
        parser,
        out_help="folder for two_stage_seeds.json/.md",
        model_dir_help="cached retrieval and ranking runs",
        set_help="override a config field of every run (repeatable)",
    )
    parser.add_argument("--seed", dest="seeds", type=int, action="append", default=[], help="(repeatable)")
    parser.add_argument(
        "--l2", dest="l2s", type=float, action="append", default=[], help="ranking.item_item_l2 values"
    )
    parser.set_defaults(quick=False, config=CONFIG)


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Trains (or loads) every retrieval and ranking run, evaluates, writes the table."""
    common.setup_environment()
    from tfrec_llm.atomic_io import write_json, write_text
    from tfrec_llm.evaluation.compare import user_evaluation
    from tfrec_llm.evaluation.two_stage_scorer import TwoStageScorer
    from tfrec_llm.experiments import prepare
    from tfrec_llm.experiments.ranking_run import load_or_train_ranking
    from tfrec_llm.models.scorer import TwoTowerScorer

    started, start_machine = time.perf_counter(), describe_machine()
    seeds, l2s = args.seeds or [42, 1], args.l2s or [0.0, 100.0]
    base = common.build_config(args)
    dataset = common.load_data(base, False)
    tag = common.data_tag(dataset)
    prepared = prepare(base, "loo", with_text=True, dataset=dataset)
    split = prepared.split
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        more = argparse.Namespace(**{**vars(args), "overrides": [*args.overrides, f"train.seed={seed}"]})
        cfg = common.build_config(more)
        model, info = common.load_or_train_cached(cfg, prepared, "bert", tag, verbose=0)
        retrieval = TwoTowerScorer(model, prepared.catalog)
        alone = user_evaluation(retrieval, split.test, split.item_ids, ks=(10,))
        for l2 in l2s:
            rank_more = argparse.Namespace(
                **{**vars(more), "overrides": [*more.overrides, f"ranking.item_item_l2={l2}"]}
            )
            rank_cfg = common.build_config(rank_more)
            folder = os.path.join(args.model_dir, "loo", "ranking-seeds", f"s{seed}-ii{l2:g}")
            ranking, rank_info = load_or_train_ranking(
                rank_cfg, prepared, folder, verbose=0, retrieval_model=model
            )
            two = TwoStageScorer(retrieval, ranking, prepared.catalog, rank_cfg.ranking.num_candidates)
            staged = user_evaluation(two, split.test, split.item_ids, ks=(10,))
            row = {
                "seed": seed,
                "item_item_l2": l2,
                "retrieval_run": info["model_dir"],
                "ranking_run": folder,
                "item_item_weight": rank_info.get("item_item_weight"),
                "kept_retrieval_order": rank_info.get("kept_retrieval_order"),
                "ranking_seconds": rank_info.get("train_seconds"),
                **{m: common.paired(alone.values[m], staged.values[m]) for m in METRICS},
            }
            rows.append(row)
            print(
                f"[two-stage seeds] seed {seed} l2 {l2:g}: NDCG@10 {row['ndcg@10']['difference']:+.4f}",
                flush=True,
            )
    end = describe_machine()
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command_line(
            "benchmarks/two_stage_seeds.py", list(sys.argv[1:] if argv is None else argv)
        ),
        "machine": machine_line(end),
        "load": load_line(start_machine.get("load_average"), end.get("load_average")),
        "users": int(split.test.user_ids.size),
        "seconds": round(time.perf_counter() - started, 1),
    }
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "two_stage_seeds.json"), {"meta": meta, "rows": rows})
    text = render_markdown(rows, meta)
    write_text(os.path.join(args.out, "two_stage_seeds.md"), text)
    print(text)
    return 0


def render_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """One row per (seed, item_item_l2), then the mean difference per l2 over the seeds."""
    lines = [
        "# Two-stage vs retrieval alone, per retrieval seed (protocol A, MovieLens-100K)",
        "",
        f"- Machine: {meta['machine']}; {meta['load']}.",
        f"- Command: `{meta['command']}` ({meta['date']}, {meta['seconds']} s).",
        "- Config: `pipelines/movielens_100k.yaml` (the main command's), `train.seed` per row; the "
        "ranker: listwise on serving-like lists, residual, `ranking.item_item_l2` per row (0 = off).",
        f"- TEST, {meta['users']} users; ± is the standard error of the paired per-user difference.",
        "",
        "| seed | item_item_l2 | w | retrieval NDCG@10 | two-stage NDCG@10 | difference | beyond 1 SE | "
        "retrieval HR@10 | two-stage HR@10 | difference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        n, h = row["ndcg@10"], row["hr@10"]
        weight = "-" if row["item_item_weight"] is None else f"{row['item_item_weight']:.3f}"
        beyond = "yes" if n["difference"] > n["difference_se"] else "no"
        lines.append(
            f"| {row['seed']} | {row['item_item_l2']:g} | {weight} | {n['retrieval']:.4f} | "
            f"{n['two_stage']:.4f} | {n['difference']:+.4f} ± {n['difference_se']:.4f} | {beyond} | "
            f"{h['retrieval']:.4f} | {h['two_stage']:.4f} | {h['difference']:+.4f} ± {h['difference_se']:.4f} |"
        )
    lines += ["", "Mean over the seeds of the NDCG@10 difference:", ""]
    for l2 in sorted({row["item_item_l2"] for row in rows}):
        diffs = [row["ndcg@10"]["difference"] for row in rows if row["item_item_l2"] == l2]
        lines.append(f"- item_item_l2 {l2:g}: {np.mean(diffs):+.4f} over {len(diffs)} seed(s)")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    return common.script_main("benchmarks/two_stage_seeds.py", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
