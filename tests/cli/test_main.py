"""Smoke tests of the tfrec-llm CLI on a tiny CSV data set (ID-only variant, no BERT)."""

import json
import os
import subprocess
import sys

import pytest

from tfrec_llm.cli.main import build_parser, main


def test_every_command_has_help(capsys):
    parser = build_parser()
    commands = ["train", "evaluate", "export", "recommend", "run", "serve", "query", "check-servable", "tune"]
    for command in commands + ["benchmark"]:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: tfrec-llm " + command in capsys.readouterr().out


def test_train_evaluate_export_recommend_on_csv(tiny_csv_config, capsys, caplog):
    config, tmp = tiny_csv_config
    assert main(["train", "--config", config, "--variant", "id", "--quiet"]) == 0
    assert os.path.exists(tmp / "runs" / "loo" / "id" / "model.weights.h5")
    assert "id model in" in capsys.readouterr().out

    out_json = tmp / "out.json"
    assert main(["evaluate", "--config", config, "--variants", "id", "--json", str(out_json), "--quiet"]) == 0
    records = json.loads(out_json.read_text())
    models = {r["model"] for r in records}
    assert models == {"Random", "MostPop", "TwoTower-ID"}
    assert all(set(r) >= {"model", "protocol", "metric", "k", "value"} for r in records)
    assert "TwoTower-ID" in capsys.readouterr().out  # the table

    assert main(["export", "--config", config, "--variant", "id", "--version", "3", "--quiet"]) == 0
    assert os.path.exists(tmp / "exports" / "retrieval" / "3" / "saved_model.pb")
    assert os.path.exists(tmp / "exports" / "models.config")

    assert (
        main(
            [
                "recommend",
                "--config",
                config,
                "--variant",
                "id",
                "--user",
                "1",
                "--user",
                "stranger",
                "--k",
                "3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "user 1:" in out and "user stranger:" in out and " 3. [" in out
    assert any("unknown to the model" in r.getMessage() for r in caplog.records)


def test_bad_config_gives_a_clear_error_and_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "unknown config key(s) ['train.epoch']" in capsys.readouterr().err


def test_unknown_protocol_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--protocol", "loo,nope"])
    assert "unknown protocol(s) ['nope']" in capsys.readouterr().err


def test_a_config_typo_fails_before_any_work_with_exit_code_2(tiny_csv_config, capsys):
    config, tmp = tiny_csv_config
    assert main(["train", "--config", config, "--variant", "id", "--set", "train.monitor=foo"]) == 2
    err = capsys.readouterr().err
    assert "train.monitor='foo'" in err
    assert not os.path.exists(tmp / "runs")  # nothing was read, split or trained


def test_a_stale_run_is_kept_and_explained(tiny_csv_config, capsys):
    config, tmp = tiny_csv_config
    assert main(["train", "--config", config, "--variant", "id", "--quiet"]) == 0
    weights = tmp / "runs" / "loo" / "id" / "model.weights.h5"
    stamp = os.path.getmtime(weights)
    capsys.readouterr()
    changed = ["--set", "train.patience=2"]
    assert main(["recommend", "--config", config, "--variant", "id", "--user", "1", *changed]) == 2
    err = capsys.readouterr().err
    assert "train.patience: 10 -> 2" in err and "--retrain" in err  # 10: the default patience
    assert os.path.getmtime(weights) == stamp  # the finished model was neither deleted nor retrained
    assert main(["train", "--config", config, "--variant", "id", "--quiet", "--retrain", *changed]) == 0
    assert os.path.getmtime(weights) != stamp


def test_help_imports_neither_tensorflow_nor_the_benchmarks():
    code = (
        "import sys\n"
        "from tfrec_llm.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('tensorflow', 'tfrec_llm_benchmark')))\n"
        "print(bad[:5])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_run_with_variants_evaluates_those_and_exports_the_last(tiny_csv_config, capsys):
    config, tmp = tiny_csv_config
    out_json = tmp / "run.json"
    argv = ["run", "--config", config, "--protocol", "loo", "--variants", "id", "--users", "1"]
    assert main([*argv, "--json", str(out_json), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert {r["model"] for r in json.loads(out_json.read_text())} == {"Random", "MostPop", "TwoTower-ID"}
    assert "== 2/4 export (id)" in printed and "user 1:" in printed  # served and queried over gRPC
    assert sorted(os.listdir(tmp / "runs" / "loo")) == ["id"]  # bert (the default) was not trained
    assert os.listdir(tmp / "exports" / "retrieval")
