"""``tfrec-llm recommend --scenario NAME``: answers from that scenario's catalog only; bad names refused."""

import dataclasses
import re

import pytest
import yaml

from tfrec_llm.cli.main import main
from tfrec_llm.data.scenario_catalog import scenario_item_ids, scenario_names
from tfrec_llm.data.synthetic_scenarios import ScenarioSpec, generate_scenarios
from tfrec_llm.errors import ConfigError

SPECS = (
    ScenarioSpec("shop", num_items=24, interactions=8),
    ScenarioSpec("news", num_items=12, interactions=4),
)


@pytest.fixture(scope="module")
def scenario_config(tmp_path_factory):
    """Tiny synthetic two-scenario data as CSV, a config reading it, and an ID model trained on it."""
    folder = tmp_path_factory.mktemp("scenarios")
    data = generate_scenarios(num_users=40, specs=SPECS, latent_dim=4, seed=3)
    data.dataset.interactions.to_csv(folder / "interactions.csv", index=False)
    data.dataset.items.to_csv(folder / "items.csv", index=False)
    cfg = {
        "data": {
            "source": "csv",
            "path": str(folder / "interactions.csv"),
            "items_path": str(folder / "items.csv"),
            "item_text_fields": ["text"],
        },
        "text": {"template": "{text}"},
        "model": {"embedding_dim": 8, "history_length": 4},
        "train": {"model_dir": str(folder / "runs"), "epochs": 1, "batch_size": 64},
        "export": {"export_dir": str(folder / "exports")},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--variant", "id", "--protocol", "loo", "--quiet"]) == 0
    return str(path), data


def _items(out: str) -> list[str]:
    return re.findall(r"^\s+\d+\. \[\s*(\S+)\]", out, flags=re.M)


def _blocks(out: str) -> dict[str, list[str]]:
    """user id -> the item ids printed under it."""
    return {
        block.split(":", 1)[0]: _items(block.split(":", 1)[1])
        for block in re.split(r"^user ", out, flags=re.M)
        if block.strip()
    }


def test_recommend_keeps_the_scenario_catalog(scenario_config, capsys):
    path, data = scenario_config
    capsys.readouterr()
    argv = ["recommend", "--config", path, "--variant", "id", "--quiet"]
    # k above what the scenario has left: exactly its items each user never had, nothing else
    assert main([*argv, "--user", "u0", "--user", "u1", "--k", "30", "--scenario", "news"]) == 0
    answers = _blocks(capsys.readouterr().out)
    frame = data.dataset.interactions
    catalog = set(scenario_item_ids(data.dataset, "news"))
    assert sorted(answers) == ["u0", "u1"]
    for user, items in answers.items():
        seen = set(frame.loc[frame["user_id"] == user, "item_id"])
        assert len(items) == len(set(items)) and set(items) == catalog - seen
    assert main([*argv, "--user", "u0", "--k", "5", "--scenario", "shop"]) == 0
    shop = _items(capsys.readouterr().out)
    assert len(shop) == 5 and all(item.startswith("shop-") for item in shop)


def test_recommend_refuses_an_unknown_scenario(scenario_config, capsys):
    path, _ = scenario_config
    argv = ["recommend", "--config", path, "--variant", "id", "--user", "u0", "--scenario", "videos"]
    assert main(argv) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (
        "tfrec-llm recommend: error: --scenario 'videos' is not a scenario of the data set; "
        "expected one of ['news', 'shop']."
    )


def test_scenario_catalog_of_items_or_interactions_and_the_no_scenario_error(tiny_dataset):
    data = generate_scenarios(num_users=5, specs=SPECS, latent_dim=4, seed=0).dataset
    assert scenario_names(data) == ["news", "shop"]
    assert list(scenario_item_ids(data, "news")) == [f"news-{i}" for i in range(12)]
    # without a scenario column in the items table, the interactions' column decides
    interactions_only = dataclasses.replace(data, items=data.items.drop(columns="scenario"))
    frame = data.interactions
    expected = list(dict.fromkeys(frame.loc[frame["scenario"] == "shop", "item_id"]))
    assert list(scenario_item_ids(interactions_only, "shop")) == expected
    assert scenario_names(tiny_dataset) == []
    with pytest.raises(ConfigError) as error:
        scenario_item_ids(tiny_dataset, "news")
    assert str(error.value) == (
        "--scenario 'news': the data set has no scenario column, so its model serves one "
        "scenario; leave out --scenario (or add a 'scenario' column to the interactions or "
        "items file)."
    )
