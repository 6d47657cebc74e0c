"""Tests of benchmarks/cold_users_text.py: the verdict reads only the text-described users."""

from __future__ import annotations

import math


def _row(model: str, evidence: str, recall: float) -> dict[str, object]:
    return {"model": model, "evidence": evidence, "recall@10": recall, "ndcg@10": 0.0, "hr@10": 0.0}


def test_the_verdict_takes_the_best_twotower_row_with_text_evidence(bench) -> None:
    script = bench("cold_users_text")
    rows = [
        _row("MostPop", "text", 0.20),  # a peer: never the verdict
        _row("TwoTower-BERT+user text", "items", 0.0921),  # text-free: never the verdict
        _row("TwoTower-BERT+user text", "text", 0.0588),
        _row("TwoTower-BERT+user text", "items+text", 0.0883),
        _row("TwoTower-BERT+user text", "profile", 0.5),
    ]
    assert script.text_described_best(rows) == (0.0883, "items+text")
    best, kind = script.text_described_best(rows[:2])
    assert math.isnan(best) and kind == "none"


def test_the_report_says_missed_when_only_the_text_free_row_reaches_the_target(bench) -> None:
    script = bench("cold_users_text")
    meta = {
        "data": "ml-100k",
        "machine": "m",
        "load_start": "0",
        "load_end": "0",
        "command": "c",
        "wall_seconds": 1.0,
        "date": "d",
        "overrides": [],
        "train_seconds": 1.0,
        "best_epoch": 1,
        "cached": True,
    }
    rows = [
        _row(model, kind, recall)
        for kind, ours in (("items", 0.0921), ("text", 0.0588), ("items+text", 0.0883))
        for model, recall in (
            ("MostPop", 0.0695),
            ("MiniLM item-kNN", 0.0144),
            ("TwoTower-BERT+user text", ours),
        )
    ]
    examples = {"model": "_examples", "evidence": "text", "texts": {"7": "Full Monty, The (1997)"}}
    report = script.render(meta, [*rows, examples])
    assert "0.0883 (items+text): missed by 0.0037" in report
