"""Smoke tests of the tfrec-llm CLI on a tiny CSV data set (ID-only variant, no BERT)."""

import json
import os

import pytest
import yaml

from tfrec_llm.cli.main import build_parser, main


@pytest.fixture()
def tiny_config(tiny_dataset, tmp_path):
    """Writes the tiny data set as CSV files and a config that reads them."""
    tiny_dataset.interactions.to_csv(tmp_path / "interactions.csv", index=False)
    tiny_dataset.items.to_csv(tmp_path / "items.csv", index=False)
    tiny_dataset.users.to_csv(tmp_path / "users.csv", index=False)
    cfg = {
        "data": {
            "source": "csv",
            "path": str(tmp_path / "interactions.csv"),
            "items_path": str(tmp_path / "items.csv"),
            "users_path": str(tmp_path / "users.csv"),
            "item_text_fields": ["title", "year", "genres"],
            "item_categorical_fields": ["genres"],
            "user_profile_fields": ["age", "gender", "occupation"],
        },
        "model": {"embedding_dim": 16, "history_length": 5},
        "train": {"model_dir": str(tmp_path / "runs"), "epochs": 2, "batch_size": 32},
        "export": {"export_dir": str(tmp_path / "exports")},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path), tmp_path


def test_every_command_has_help(capsys):
    parser = build_parser()
    for command in ["train", "evaluate", "export", "recommend", "run", "serve", "query", "check-servable"]:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: tfrec-llm " + command in capsys.readouterr().out


def test_train_evaluate_export_recommend_on_csv(tiny_config, capsys, caplog):
    config, tmp = tiny_config
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

    assert main(["recommend", "--config", config, "--variant", "id", "--user", "1", "--user", "stranger", "--k", "3"]) == 0
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
