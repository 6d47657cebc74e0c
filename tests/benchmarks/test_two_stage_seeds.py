"""Tests of benchmarks/two_stage_seeds.py and the paired statistics it shares with two_stage.py (common.paired)."""

from __future__ import annotations

import math

import numpy as np


def test_paired_difference_and_its_standard_error_by_hand(bench) -> None:
    common = bench("common")
    base = np.array([0.0, 1.0, 0.5, 0.0])
    other = np.array([1.0, 1.0, 0.0, 0.0])
    out = common.paired(base, other)
    # differences 1, 0, -0.5, 0: mean 0.125; sample SD sqrt(((0.875)^2 + 3 * ...)/3)
    diffs = [1.0, 0.0, -0.5, 0.0]
    mean = sum(diffs) / 4
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 3)
    assert out["difference"] == 0.125
    assert math.isclose(out["difference_se"], sd / 2)
    assert out["retrieval"] == 0.375 and out["two_stage"] == 0.5
    assert math.isclose(out["two_stage_se"], float(np.std(other, ddof=1)) / 2)


def test_table_says_beyond_one_se_and_averages_each_l2_over_the_seeds(bench) -> None:
    script = bench("two_stage_seeds")

    def row(seed, l2, diff, se, weight):
        stats = {"retrieval": 0.1, "two_stage": 0.1 + diff, "difference": diff, "difference_se": se}
        return {
            "seed": seed,
            "item_item_l2": l2,
            "item_item_weight": weight,
            "ndcg@10": stats,
            "hr@10": stats,
        }

    rows = [
        row(42, 0.0, -0.001, 0.002, None),
        row(42, 100.0, 0.006, 0.005, 3.0),
        row(1, 100.0, 0.010, 0.005, 2.5),
    ]
    meta = {"machine": "m", "load": "l", "command": "c", "date": "d", "seconds": 1.0, "users": 943}
    text = script.render_markdown(rows, meta)
    assert "| 42 | 100 | 3.000 | 0.1000 | 0.1060 | +0.0060 ± 0.0050 | yes |" in text
    assert "| 42 | 0 | - | 0.1000 | 0.0990 | -0.0010 ± 0.0020 | no |" in text
    assert "- item_item_l2 100: +0.0080 over 2 seed(s)" in text
    assert "- item_item_l2 0: -0.0010 over 1 seed(s)" in text
