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


# ------------------------------------------------ which differences are real (quality_compare.py)


class _RankScorer:
    """Scores each user's items by a fixed best-first list (unlisted items score 0)."""

    def __init__(self, name: str, item_ids: list[str], ranking: dict[str, list[str]]) -> None:
        self.name, self.item_ids, self.ranking = name, item_ids, ranking

    def score(self, user_ids, histories):
        import numpy as np

        out = np.zeros((len(user_ids), len(self.item_ids)))
        for row, user in enumerate(user_ids):
            for position, item in enumerate(self.ranking[str(user)]):
                out[row, self.item_ids.index(item)] = 10.0 - position
        return out


class _Unused:
    name = "ItemKNN"

    def score(self, user_ids, histories):
        raise AssertionError("only the compared rows may be scored")


def _task():
    import numpy as np

    from tfrec_llm.data.split_types import EvalTask

    users = np.array(["u0", "u1", "u2", "u3"], dtype=object)
    histories = tuple(np.array(["f"], dtype=object) for _ in users)
    targets = tuple(np.array([t], dtype=object) for t in "abcd")
    return EvalTask("test", users, histories, histories, targets, None)


ITEMS = list("abcdef")
# best tfrec_llm: every target first (NDCG 1); EASE: the target second for u0 and u1; the
# mean-pooling model: the target third for everyone (NDCG 1/log2(4) = 0.5)
OURS = {"u0": ["a", "b"], "u1": ["b", "c"], "u2": ["c", "d"], "u3": ["d", "e"]}
PEER = {"u0": ["e", "a"], "u1": ["e", "b"], "u2": ["c", "d"], "u3": ["d", "e"]}
MEAN = {u: [x for x in ("e", "c" if t != "c" else "b") if x != t] + [t] for u, t in zip(OURS, "abcd")}


def _compare_records(protocol: str, metric: str) -> list[dict]:
    def rec(model, value, **fields):
        return {**_record(model, protocol, value, **fields), "metric": metric}

    ours = {"family": "tfrec_llm", "user_ids": "known"}
    return [
        rec("MostPop", 0.95, family="baseline"),  # a baseline is not a peer
        rec("EASE", 0.8, family="peer"),
        rec("ItemKNN", 0.3, family="peer"),
        rec("TwoTower-BERT-MeanPool", 0.5, **ours),
        rec("TwoTower-BERT/gru", 0.9, **ours),
        rec("TwoTower-BERT/gru (hidden ids)", 0.99, family="tfrec_llm", user_ids="hidden"),
    ]


def test_comparison_pairs_take_the_best_known_row_against_best_peer_and_mean_pooling(bench) -> None:
    compare = bench("quality_compare")
    records = _compare_records("loo", "ndcg")
    assert compare.comparison_pairs(records, "loo") == [
        ("best peer", "EASE", "TwoTower-BERT/gru"),
        ("mean pooling", "TwoTower-BERT-MeanPool", "TwoTower-BERT/gru"),
    ]
    # B is judged by Recall@10: only recall records count; the mean-pooling row best -> no self pair
    recall = _compare_records("cold-items", "recall")
    recall[3]["value"] = 0.97
    assert compare.comparison_pairs(recall, "cold-items") == [("best peer", "EASE", "TwoTower-BERT-MeanPool")]
    assert compare.comparison_pairs(_compare_records("cold-items", "ndcg"), "cold-items") == []
    assert compare.comparison_pairs([r for r in records if r["family"] != "peer"], "loo") == [
        ("mean pooling", "TwoTower-BERT-MeanPool", "TwoTower-BERT/gru")
    ]


def test_compare_protocol_gives_hand_computed_differences_and_scipy_p_values(bench) -> None:
    import numpy as np
    from scipy import stats

    compare = bench("quality_compare")
    scorers = {
        "TwoTower-BERT/gru": _RankScorer("TwoTower-BERT/gru", ITEMS, OURS),
        "EASE": _RankScorer("EASE", ITEMS, PEER),
        # a reused row's scorer carries the first row's name: the report uses the row's
        "TwoTower-BERT-MeanPool": _RankScorer("first row", ITEMS, MEAN),
        "ItemKNN": _Unused(),
    }
    out = compare.compare_protocol(
        _compare_records("loo", "ndcg"), scorers, _task(), np.array(ITEMS), "loo", 2000
    )
    assert [(c["versus"], c["a"], c["b"], c["metric"], c["users"]) for c in out] == [
        ("best peer", "EASE", "TwoTower-BERT/gru", "ndcg@10", 4),
        ("mean pooling", "TwoTower-BERT-MeanPool", "TwoTower-BERT/gru", "ndcg@10", 4),
    ]
    peer, mean = out
    second = 1 / np.log2(3)
    assert peer["mean_a"] == pytest.approx((2 * second + 2) / 4) and peer["mean_b"] == pytest.approx(1.0)
    assert peer["difference"] == pytest.approx((1 - second) / 2) and peer["n_nonzero"] == 2
    diff = np.array([1 - second, 1 - second])
    assert peer["test"] == "wilcoxon" and peer["p_value"] == pytest.approx(stats.wilcoxon(diff).pvalue)
    assert 0.0 <= peer["ci"][0] <= peer["difference"] <= peer["ci"][1] <= 1 - second + 1e-12
    assert mean["mean_a"] == pytest.approx(0.5) and mean["ci"] == [pytest.approx(0.5), pytest.approx(0.5)]
    assert mean["significant"] and mean["p_value"] == pytest.approx(stats.wilcoxon(np.full(4, 0.5)).pvalue)
    # ours holds each target first, the mean model third: whoever picks first, B gets the click
    inter = mean["interleaving"]
    assert (inter["wins_b"], inter["wins_a"], inter["ties"]) == (4, 0, 0)


def test_comparison_section_lists_every_protocol_with_its_verdict(bench) -> None:
    compare = bench("quality_compare")
    row = {
        "protocol": "loo", "versus": "best peer", "metric": "ndcg@10", "a": "EASE",
        "b": "TwoTower-BERT/gru", "users": 4, "mean_a": 0.8, "mean_b": 0.9, "difference": 0.1,
        "ci": [0.02, 0.18], "confidence": 0.95, "test": "wilcoxon", "p_value": 0.0123,
        "n_nonzero": 3, "significant": True,
        "interleaving": {"wins_a": 1, "wins_b": 3, "ties": 0, "p_value": 0.625},
    }  # fmt: skip
    other = {**row, "protocol": "cold-items", "metric": "recall@10", "difference": -0.01,
             "ci": [-0.05, 0.03], "significant": False}  # fmt: skip
    details = {"loo": {"comparisons": [row]}, "cold-items": {"comparisons": [other]}, "cold-users": {}}
    section = compare.comparison_section(details, ["loo", "cold-items", "cold-users"])
    lines = section.splitlines()
    assert lines[0] == "## Which differences are real (paired, per user, TEST)"
    assert lines[-2] == (
        "| A | ndcg@10 | TwoTower-BERT/gru | EASE (best peer) | 0.9000 | 0.8000 | +0.1000 | "
        "[+0.0200, +0.1800] | wilcoxon 0.0123 | yes, B better | 3/1 (0.625) |"
    )
    assert lines[-1].startswith("| B | recall@10 |") and "| -0.0100 | [-0.0500, +0.0300] |" in lines[-1]
    assert "| no |" in lines[-1]
    assert compare.comparison_section({"loo": {"models": {}}}, ["loo"]) is None


def test_quality_md_shows_the_comparisons_after_the_headline(bench) -> None:
    report = bench("quality_report")
    records = [
        {**r, "eval_seconds": 0.1, "split": s}
        for s in ("test", "valid")
        for r in _compare_records("loo", "ndcg")
    ]
    comparison = {
        "protocol": "loo", "versus": "best peer", "metric": "ndcg@10", "a": "EASE",
        "b": "TwoTower-BERT/gru", "users": 4, "mean_a": 0.8, "mean_b": 0.9, "difference": 0.1,
        "ci": [0.02, 0.18], "confidence": 0.95, "test": "sign", "p_value": 0.5, "n_nonzero": 3,
        "significant": True, "interleaving": {"wins_a": 1, "wins_b": 3, "ties": 0, "p_value": 0.625},
    }  # fmt: skip
    details = {
        "loo": {"train_interactions": 10, "valid_users": 4, "test_users": 4, "models": {},
                "comparisons": [comparison]}
    }  # fmt: skip
    machine = {
        "cpu": "cpu",
        "usable_cores": 2,
        "logical_cores": 2,
        "os": "os",
        "python": "3",
        "load_average": None,
    }
    meta = {"dataset": "d", "protocols": ["loo"], "machine": machine, "load_end": None, "command": "c",
            "seconds": 1.0, "date": "today", "refit": False}  # fmt: skip
    text = report.render_markdown(records, details, meta)
    assert text.index("Best tfrec_llm model vs best peer") < text.index("## Which differences are real")
    assert text.index("## Which differences are real") < text.index("## All TEST metrics")
    assert "| A | ndcg@10 | TwoTower-BERT/gru | EASE (best peer) |" in text
    del details["loo"]["comparisons"]
    assert "Which differences are real" not in report.render_markdown(records, details, meta)
