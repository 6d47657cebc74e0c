"""Tests of the quality benchmark's encoder and hidden-user-id rows, without running it.

``quality.two_tower_rows`` (which models a protocol gets), ``--encoders`` parsing, and the
report helpers of ``quality_report.py`` on hand-made records.
"""

from __future__ import annotations

import argparse

import pytest

import tfrec_llm  # noqa: F401


def _record(model: str, protocol: str, value: float, **fields) -> dict:
    return {
        "model": model,
        "protocol": protocol,
        "split": "test",
        "metric": "ndcg",
        "k": 10,
        "value": value,
        **fields,
    }


def _args(variants: list[str], encoders: list[str]) -> argparse.Namespace:
    return argparse.Namespace(variants=variants, encoders=encoders)


def test_encoder_rows_come_only_under_a_and_c_with_their_own_config(bench) -> None:
    from tfrec_llm.config import load_config

    quality = bench("quality")
    common = bench("common")
    cfg = load_config(None, ["model.history_encoder=mean"])
    args = _args(["bert", "sasrec"], ["gru", "mean"])

    rows = quality.two_tower_rows(cfg, args, "cold-items")
    assert [(r["name"], r["variant"], r["row"], r["history_encoder"]) for r in rows] == [
        ("TwoTower-BERT", "bert", "variant", "mean"),
        ("SASRec-style (ids)", "sasrec", "variant", "attention"),  # the variant's own encoder
    ]
    rows = quality.two_tower_rows(cfg, args, "loo")
    assert [(r["name"], r["variant"], r["row"], r["history_encoder"]) for r in rows[2:]] == [
        ("TwoTower-BERT/gru", "bert", "encoder", "gru"),
        ("TwoTower-BERT/mean", "bert", "encoder", "mean"),
    ]
    assert rows[2]["cfg"].model.history_encoder == "gru" and rows[2]["cfg"].model.use_text
    hashes = [common.config_hash(r["cfg"], r["variant"], "tag") for r in rows]
    # the config's own encoder is the bert row's model (reused, not trained twice); gru is new
    assert hashes[3] == hashes[0] and len({hashes[0], hashes[1], hashes[2]}) == 3
    assert quality.two_tower_rows(cfg, _args(["id"], []), "cold-users")[0]["name"] == "TwoTower-ID"


def test_encoders_option_parses_a_list_none_and_rejects_unknown(bench) -> None:
    quality = bench("quality")
    parser = argparse.ArgumentParser()
    quality.add_arguments(parser)
    assert parser.parse_args([]).encoders == ["mean", "cnn", "gru", "lstm", "attention"]
    assert parser.parse_args(["--encoders", "gru, attention"]).encoders == ["gru", "attention"]
    assert parser.parse_args(["--encoders", "none"]).encoders == []
    with pytest.raises(SystemExit):
        parser.parse_args(["--encoders", "gru,transformer"])


def test_relative_change_is_signed_percent(bench) -> None:
    report = bench("quality_report")
    assert report.relative_change(0.2, 0.15) == "-25.0%"
    assert report.relative_change(0.08, 0.1) == "+25.0%"
    assert report.relative_change(0.3, 0.3) == "+0.0%"
    assert report.relative_change(0.0, 0.1) == "-" and report.relative_change(None, 0.1) == "-"


def test_hidden_ids_table_puts_known_and_hidden_side_by_side(bench) -> None:
    report = bench("quality_report")
    two_tower = {"family": "tfrec_llm", "variant": "bert"}
    records = [
        _record("EASE", "loo", 0.07, family="peer"),
        _record("TwoTower-BERT", "loo", 0.1, **two_tower, history_encoder="mean", user_ids="known"),
        _record("TwoTower-BERT (hidden ids)", "loo", 0.08, **two_tower, history_encoder="mean", user_ids="hidden"),
        _record("TwoTower-BERT", "cold-users", 0.4, **two_tower, history_encoder="mean", user_ids="known"),
        _record("TwoTower-BERT (hidden ids)", "cold-users", 0.5, **two_tower, history_encoder="mean", user_ids="hidden"),
        _record("TwoTower-BERT", "cold-items", 0.2, **two_tower, history_encoder="mean", user_ids="known"),
        _record("TwoTower-BERT/gru", "loo", 0.12, **two_tower, history_encoder="gru", user_ids="known"),
        _record("TwoTower-BERT/gru (hidden ids)", "loo", 0.12, **two_tower, history_encoder="gru", user_ids="hidden"),
    ]  # fmt: skip
    details = {
        "loo": {
            "models": {"TwoTower-BERT": {"fit_seconds": 12.34}, "TwoTower-BERT/gru": {"fit_seconds": 30.0}}
        },
        "cold-items": {"models": {"TwoTower-BERT": {"fit_seconds": 9.0}}},
        "cold-users": {"models": {"TwoTower-BERT": {"fit_seconds": 5.0}}},
    }
    table = report.hidden_ids_table(records, ["loo", "cold-items", "cold-users"], details)
    assert table.splitlines() == [
        "| model | encoder | A known | A hidden | A hidden vs known | C known | C hidden | C hidden vs known "
        "| fit s (A/C) |",
        "|---|---|---|---|---|---|---|---|---|",
        "| TwoTower-BERT | mean | 0.1000 | 0.0800 | -20.0% | 0.4000 | 0.5000 | +25.0% | 12.3/5.0 |",
        "| TwoTower-BERT/gru | gru | 0.1200 | 0.1200 | +0.0% | - | - | - | 30.0/- |",
    ]
    assert report.hidden_ids_table(records[:2], ["loo"], details) is None  # no hidden twin

    # the summary table and the headline leave the hidden rows out
    summary = report.summary_table(records, ["loo", "cold-items", "cold-users"], details)
    assert "hidden" not in summary and "| TwoTower-BERT/gru | **0.1200** |" in summary
    assert "| TwoTower-BERT | 0.1000 |" in summary
    assert report.best_of(records, "tfrec_llm", "cold-users", "ndcg") == ("TwoTower-BERT", 0.4)
