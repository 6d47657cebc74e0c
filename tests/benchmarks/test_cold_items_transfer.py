"""Tests of benchmarks/cold_items_transfer.py: the item-item scorer and the report's verdict."""

from __future__ import annotations

import numpy as np

from tests.conftest import make_clustered_dataset
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split


def test_item_item_scores_are_the_history_sums_of_the_table(bench) -> None:
    script = bench("cold_items_transfer")
    dataset = make_clustered_dataset()
    catalog = build_catalog(dataset, make_split(dataset, "cold-items"))
    table = np.random.default_rng(0).normal(size=(catalog.num_items, catalog.num_items))
    ids = catalog.item_ids
    histories = [np.asarray([ids[2], ids[5], ids[2]], dtype=object), np.asarray([], dtype=object)]
    got = script.ItemItemScorer(catalog, table, "x").score(np.asarray(["1", "2"], dtype=object), histories)
    np.testing.assert_allclose(got[0], table[2] + table[5])  # a repeated item counts once
    np.testing.assert_array_equal(got[1], np.zeros(catalog.num_items))


def _rows(two_stage: float, transfer: float) -> list[dict[str, object]]:
    metrics = {"ndcg@10": 0.3, "recall@50": 0.5, "eval_seconds": 1.0}
    return [
        {"model": "MostPop", "recall@10": 0.02, **metrics},
        {"model": "EASE (no transfer)", "recall@10": 0.02, **metrics},
        {"model": "EASE + text-neighbour transfer (k=100, power=8)", "recall@10": transfer, **metrics},
        {"model": "TwoTower-BERT two-stage", "recall@10": two_stage, **metrics},
        {
            "model": "_info",
            "retrieval_train_seconds": 1.0,
            "retrieval_cached": True,
            "ranking": {
                "item_item_weight": 4.5,
                "cold_items_transferred": 338,
                "kept_retrieval_order": True,
                "train_seconds": 1.0,
            },
        },
    ]


def test_the_verdict_reads_the_two_stage_row_and_says_by_how_much_it_misses(bench) -> None:
    script = bench("cold_items_transfer")
    meta = {
        "data": "ml-100k",
        "machine": "m",
        "load_start": "0",
        "load_end": "0",
        "command": "c",
        "wall_seconds": 1.0,
        "date": "d",
        "k": 100,
        "power": 8.0,
        "users": 940,
        "candidates": 336,
        "select_users": 941,
        "select_candidates": 269,
    }
    grid = [{"k": 100, "power": 8.0, "recall@10": 0.22, "ndcg@10": 0.38, "recall@50": 0.5}]
    terms = [{"model": "+ f", "recall@10": 0.1652, "ndcg@10": 0.2894, "recall@50": 0.5}]
    missed = script.render(meta, grid, _rows(two_stage=0.1854, transfer=0.21), terms)
    assert "The two-stage pipeline reads 0.1854: missed by 0.0146" in missed
    assert "The item-item scores with transfer alone read 0.2100" in missed
    assert "| 100 | 8 | 0.2200 |" in missed
    assert "| + f | 0.1652 | 0.2894 | 0.5000 |" in missed
    reached = script.render(meta, grid, _rows(two_stage=0.2010, transfer=0.19), terms)
    assert "The two-stage pipeline reads 0.2010: reached" in reached
