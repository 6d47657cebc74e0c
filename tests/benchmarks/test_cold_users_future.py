"""Tests of benchmarks/cold_users_future.py: the rows' overrides and the paired differences."""

from __future__ import annotations

import numpy as np


def test_window_one_seed_42_rows_are_the_cached_default_configs(bench) -> None:
    script = bench("cold_users_future")
    assert script.overrides("GRU (default)", 1, 42) == ()
    assert script.overrides("GRU + user text", 10, 1) == (
        "model.user_text=true",
        "model.use_profile=true",
        "model.future_window=10",
        "train.seed=1",
    )
    # a mixed-loss setting's window-1 base is the plain next-item model (future_weight unset)
    assert script.overrides("GRU, half next-item loss", 1, 42) == ()
    assert script.overrides("GRU, half next-item loss", 10, 42) == (
        "model.future_window=10",
        "model.future_weight=0.5",
    )
    # every row has its window-1 base of the same setting and seed
    rows = set(script.ROWS)
    assert all((setting, 1, seed) in rows for setting, _, seed in rows)


def test_rows_are_paired_with_their_window_one_base(bench) -> None:
    script = bench("cold_users_future")
    base = {"recall@10": np.array([0.1, 0.0, 0.2, 0.1]), "ndcg@10": np.array([0.5, 0.4, 0.3, 0.2])}
    other = {"recall@10": np.array([0.2, 0.0, 0.2, 0.3]), "ndcg@10": np.array([0.5, 0.5, 0.3, 0.2])}
    scored = {
        ("GRU (default)", 1, 42): {"beta": 0.0, "valid_cold_like_ndcg@10": 0.04, "values": {"beta 0": base, "chosen": base}, "info": {}},
        ("GRU (default)", 10, 42): {"beta": 1.0, "valid_cold_like_ndcg@10": 0.05, "values": {"beta 0": other, "chosen": base}, "info": {}},
        ("LSTM", 10, 42): {"beta": 0.5, "valid_cold_like_ndcg@10": 0.05, "values": {"beta 0": other, "chosen": other}, "info": {}},
    }  # fmt: skip
    records = {(r["setting"], r["future_window"]): r for r in script.paired_rows(scored)}
    assert "recall@10 diff" not in records[("GRU (default)", 1)]["beta 0"]  # the base itself
    assert "recall@10 diff" not in records[("LSTM", 10)]["beta 0"]  # no base of its own: unpaired
    paired = records[("GRU (default)", 10)]
    d = other["recall@10"] - base["recall@10"]
    assert np.isclose(paired["beta 0"]["recall@10 diff"], d.mean())
    assert np.isclose(paired["beta 0"]["recall@10 diff se"], d.std(ddof=1) / 2)
    assert np.isclose(paired["beta 0"]["ndcg@10 diff"], 0.025)
    assert paired["chosen"]["recall@10 diff"] == 0.0  # the same values at the chosen beta
    assert "± " in script.fmt(paired["beta 0"], "recall@10") and "(+0.0750 ± 0.0479)" in script.fmt(
        paired["beta 0"], "recall@10"
    )
