"""``tfrec-llm compare`` and ``recommend --explain`` on a tiny CSV data set (one ID-only run)."""

import re
import shutil

import pandas as pd
import pytest

from tfrec_llm.cli.main import main
from tfrec_llm.errors import ConfigError


def test_compare_a_run_with_itself_and_with_mostpop_then_explain_it(tiny_csv_config, capsys):
    from tfrec_llm.experiments.compare_runs import compare_runs, run_info

    config, tmp = tiny_csv_config
    assert main(["train", "--config", config, "--variant", "id", "--quiet"]) == 0
    run = str(tmp / "runs" / "loo" / "id")
    capsys.readouterr()

    out = tmp / "ab"
    assert main(["compare", run, run, "--bootstrap", "300", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "TwoTower-ID [A] (A) vs TwoTower-ID [B] (B)" in printed
    assert "protocol loo, TEST: 40 users" in printed
    assert "B - A +0.0000 (95% CI [+0.0000, +0.0000]" in printed
    assert (out / "compare.md").read_text().startswith("# A/B comparison")
    assert (out / "differences.png").read_bytes()[:4] == b"\x89PNG"

    result, written = compare_runs("MostPop", run, metric="hr", k=5, n_bootstrap=200)
    assert written == []
    head = result.metrics[0]
    assert head.key == "hr@5" and result.a.name == "MostPop" and result.b.name == "TwoTower-ID"
    assert head.ci[0] <= head.difference <= head.ci[1]
    assert result.a.user_ids.tolist() == result.b.user_ids.tolist()

    # The Python API: the same run against itself, no training (the run is reused).
    from tfrec_llm import Experiment, load_config

    same = Experiment(load_config(config), verbose=0).compare("id", "id", n_resamples=200)
    assert [m.difference for m in same.metrics] == [0.0, 0.0, 0.0]
    assert same.a.name == "TwoTower-ID [A]" and same.a.user_ids.size == 40

    with pytest.raises(ConfigError, match="not a finished run folder"):
        compare_runs(str(tmp / "runs"), run)
    with pytest.raises(ConfigError, match="trained under protocol 'loo'"):
        compare_runs(run, "MostPop", protocol="cold-items")
    # A folder under cold-users-select/ (benchmarks/seeds.py) is scored under that split, not eval.protocol.
    select = tmp / "runs" / "cold-users-select" / "id"
    shutil.copytree(run, select)
    assert run_info(str(select))[2] == "cold-users-select"
    with pytest.raises(ConfigError, match="trained under protocol 'cold-users-select'"):
        run_info(str(select), "cold-users")
    with pytest.raises(ConfigError, match="both RUN_A and RUN_B are baselines"):
        compare_runs("MostPop", "Random")
    assert main(["compare", str(tmp), run]) == 2
    assert "not a finished run folder" in capsys.readouterr().err

    # recommend --explain: every evidence item is an item of that user's history.
    argv = ["recommend", "--config", config, "--variant", "id", "--user", "7", "--k", "3"]
    assert main([*argv, "--explain"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == "user 7:" and len(lines) == 7
    interactions = pd.read_csv(tmp / "interactions.csv", dtype=str)
    items = pd.read_csv(tmp / "items.csv", dtype=str).set_index("item_id")["title"]
    history_titles = set(items[interactions.loc[interactions.user_id == "7", "item_id"]])
    for line in lines[2::2]:
        assert line.strip().startswith("because: ") and line.endswith("[similarity]")
        named = re.findall(r"([a-z][a-z ]* story number \d+) \(-?\d\.\d\d\)", line)
        assert len(named) == 3 and set(named) <= history_titles

    # --explain-text template: one sentence per item, naming the first two evidence titles.
    assert main([*argv, "--explain-text", "template"]) == 0
    with_text = capsys.readouterr().out.splitlines()
    assert with_text[:3] == lines[:3] and len(with_text) == 10
    for because, sentence in zip(with_text[2::3], with_text[3::3]):
        first_two = re.findall(r"([a-z][a-z ]* story number \d+) \(", because)[:2]
        assert sentence.strip().startswith(f'"Because you watched {first_two[0]} and {first_two[1]}')
