"""``tfrec-llm distill --retrieval-weight``: it reads the trained bert two-tower and never trains
one; without it, one sentence names the missing run and nothing is created."""

from __future__ import annotations

import json
import os

from tfrec_llm.cli.main import main


def test_distill_with_a_retrieval_term_needs_the_trained_bert_model(tiny_csv_config, capsys):
    config, tmp = tiny_csv_config
    argv = ["distill", "--config", config, "--epochs", "2", "--embedding-dim", "8", "--quiet"]
    assert main([*argv, "--retrieval-weight", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (
        f"tfrec-llm distill: error: no trained model in {tmp / 'runs' / 'loo' / 'bert'}: distill does not "
        "train, so train it first with 'tfrec-llm train --variant bert --protocol loo'"
    ) in err
    assert not os.path.exists(tmp / "runs")  # no student, no text cache, no two-tower

    assert main(["train", "--config", config, "--variant", "bert", "--quiet"]) == 0
    weights = tmp / "runs" / "loo" / "bert" / "model.weights.h5"
    trained = weights.stat().st_mtime_ns
    assert main([*argv, "--retrieval-weight", "0.5", "--retrieval-pairs", "100"]) == 0
    with open(tmp / "runs" / "student" / "student_config.json", encoding="utf-8") as handle:
        recorded = json.load(handle)
    assert recorded["settings"]["retrieval_weight"] == 0.5 and recorded["retrieval_sha256"]
    with open(tmp / "runs" / "student" / "result.json", encoding="utf-8") as handle:
        assert json.load(handle)["retrieval_pairs"] == 100
    assert weights.stat().st_mtime_ns == trained  # the two-tower was read, not trained again
