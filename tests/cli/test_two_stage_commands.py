"""The two-stage commands: train --variant ranking parses; read-only commands never train it."""

import json
import os

import pytest

from tfrec_llm.cli.main import build_parser
from tfrec_llm.config import load_config
from tfrec_llm.experiments import Experiment
from tfrec_llm.experiments.runs import MissingRunError


def test_train_accepts_the_ranking_variant_and_recommend_the_two_stage_flag():
    parser = build_parser()
    train = parser.parse_args(["train", "--variant", "ranking"])
    assert train.variant == "ranking"
    recommend = parser.parse_args(["recommend", "--user", "1", "--two-stage"])
    assert recommend.two_stage is True
    assert parser.parse_args(["recommend", "--user", "1"]).two_stage is False
    query = parser.parse_args(["query", "--user", "1", "--model-name", "ranking", "--signature", "recommend"])
    assert (query.model_name, query.signature) == ("ranking", "recommend")
    with pytest.raises(SystemExit):
        parser.parse_args(["recommend", "--user", "1", "--variant", "ranking"])


def test_read_only_two_stage_commands_name_the_missing_ranking_run(tiny_csv_config):
    path, folder = tiny_csv_config
    exp = Experiment(load_config(path), verbose=0)
    assert not exp.ranking_trained()
    with pytest.raises(MissingRunError, match="'tfrec-llm train --variant ranking --protocol loo'"):
        exp.recommend(["1"], k=3, variant="id", train_missing=False, two_stage=True)
    with pytest.raises(MissingRunError, match="ranking"):
        exp.export_ranking("id", train_missing=False)
    assert not (folder / "runs").exists()  # nothing trained, nothing created


def test_evaluate_with_eval_two_stage_names_the_ranking_run_too(tiny_csv_config):
    path, folder = tiny_csv_config
    two_stage = Experiment(load_config(path, overrides=["eval.two_stage=true"]), verbose=0)
    with pytest.raises(MissingRunError) as err:
        two_stage.evaluate(["loo"], ["bert"], train_missing=False)
    assert f"{folder / 'runs' / 'loo' / 'ranking'}" in str(err.value)
    assert "'tfrec-llm train --variant ranking --protocol loo'" in str(err.value)
    for protocols, variants in ((["cold-items"], ["bert"]), (["loo"], ["id"])):  # no two-stage row there
        with pytest.raises(MissingRunError) as err:
            two_stage.evaluate(protocols, variants, train_missing=False)
        assert "ranking" not in str(err.value)
    assert not (folder / "runs").exists()


def test_a_ranking_run_of_other_settings_is_stale_not_loaded(tiny_csv_config):
    from tfrec_llm.experiments.ranking_run import load_or_train_ranking
    from tfrec_llm.experiments.runs import StaleRunError, run_dir

    path, _ = tiny_csv_config
    cfg = load_config(path, overrides=["model.use_text=false"])
    exp = Experiment(cfg, verbose=0)
    folder = run_dir(cfg, "loo", "ranking")
    os.makedirs(folder)
    for name, text in (("model.weights.h5", "not weights"), ("result.json", "{}")):
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    with open(os.path.join(folder, "fingerprint.json"), "w") as f:
        json.dump({"ranking": {"objective": "rating"}}, f)
    assert exp.ranking_trained()
    with pytest.raises(StaleRunError, match="holds a ranking model trained with other .*ranking"):
        load_or_train_ranking(cfg, exp.prepare("loo", with_text=False), if_missing="error")
    with open(os.path.join(folder, "model.weights.h5")) as f:
        assert f.read() == "not weights"  # kept as it is


@pytest.mark.parametrize("user_text", [False, True])
def test_export_publishes_ranking_beside_retrieval_with_or_without_user_text(
    tiny_csv_config, monkeypatch, capsys, user_text
):
    """The finished ranking run is exported at the retrieval export's version, also for a model
    that reads user text (the two-stage graph takes the optional user_text input;
    tests/export/test_two_stage_export.py checks that graph against Python)."""
    from types import SimpleNamespace

    from tfrec_llm.cli.main import main

    path, folder = tiny_csv_config
    retrieval = str(folder / "exports" / "retrieval" / "3")
    ranking_calls = []

    def export_ranking(self, variant, export_dir, version, train_missing):
        ranking_calls.append((variant, version, train_missing, self.config.model.user_text))
        return str(folder / "exports" / "ranking" / str(version))

    # no training: the retrieval export and the finished ranking run are stood in for
    result = SimpleNamespace(retrieval=retrieval, item_encoder=None, models_config="models.config")
    monkeypatch.setattr(Experiment, "export", lambda self, *args, **kwargs: result)
    monkeypatch.setattr(Experiment, "ranking_trained", lambda self: True)
    monkeypatch.setattr(Experiment, "export_ranking", export_ranking)
    argv = [
        "export",
        "--config",
        path,
        "--variant",
        "id",
        "--quiet",
        "--set",
        f"model.user_text={str(user_text).lower()}",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"exported {retrieval}" in out
    assert ranking_calls == [("id", 3, False, user_text)]
    assert "exported " + str(folder / "exports" / "ranking" / "3") in out
