"""The synthetic multi-scenario generator, the leave-last-out split and the scenario schema."""

import numpy as np
import pandas as pd
import pytest

from tfrec_llm.data.schema import (
    DEFAULT_SCENARIO,
    RecDataset,
    scenario_values,
    validate_frame,
)
from tfrec_llm.data.synthetic_scenarios import (
    ScenarioSpec,
    generate_scenarios,
    leave_last_out,
)
from tfrec_llm.errors import DataError

SPECS = (
    ScenarioSpec("a", num_items=80, interactions=10, noise=0.3),
    ScenarioSpec("b", num_items=60, interactions=8, sparse_interactions=2, sparse_fraction=0.5),
)


@pytest.fixture(scope="module")
def data():
    return generate_scenarios(num_users=200, specs=SPECS, latent_dim=6, seed=3)


def test_same_seed_same_data_other_seed_other_data(data):
    again = generate_scenarios(num_users=200, specs=SPECS, latent_dim=6, seed=3)
    pd.testing.assert_frame_equal(data.dataset.interactions, again.dataset.interactions)
    pd.testing.assert_frame_equal(data.dataset.items, again.dataset.items)
    np.testing.assert_array_equal(data.user_vectors, again.user_vectors)
    other = generate_scenarios(num_users=200, specs=SPECS, latent_dim=6, seed=4)
    assert not data.dataset.interactions["item_id"].equals(other.dataset.interactions["item_id"])


def test_frames_are_canonical_with_scenarios_catalogs_and_text(data):
    ds = data.dataset
    validate_frame(ds.interactions, "interactions", "test")
    assert set(ds.items.columns) == {"item_id", "scenario", "text"}
    assert ds.items.groupby("scenario").size().to_dict() == {"a": 80, "b": 60}
    # Each item's text names its scenario and its dominant latent topic's word.
    first = ds.items.iloc[0]
    topic = int(np.argmax(data.item_vectors[0]))
    assert first["text"].startswith(f"{first['scenario']}: ")
    assert data.item_topics[0] == topic
    # Items of an interaction belong to the interaction's scenario (RecDataset checks it too).
    merged = ds.interactions.merge(ds.items, on="item_id", suffixes=("", "_item"))
    assert (merged["scenario"] == merged["scenario_item"]).all()


def test_sparsity_per_scenario(data):
    counts = data.dataset.interactions.groupby(["scenario", "user_id"]).size()
    assert (counts["a"] == 10).all()
    sparse = set(data.sparse_users["b"])
    assert 60 < len(sparse) < 140  # about half of 200
    per_user = counts["b"]
    assert (per_user[per_user.index.isin(sparse)] == 2).all()
    assert (per_user[~per_user.index.isin(sparse)] == 8).all()
    assert len(data.sparse_users["a"]) == 0


def _enrichment(data):
    """Mean true u.v of chosen items minus the mean over the scenario's catalog."""
    ds = data.dataset
    users = pd.Index(ds.users["user_id"]).get_indexer(ds.interactions["user_id"])
    items = pd.Index(ds.items["item_id"]).get_indexer(ds.interactions["item_id"])
    chosen = np.einsum("nk,nk->n", data.user_vectors[users], data.item_vectors[items])
    catalog_mean = []
    for name in ("a", "b"):
        rows = np.flatnonzero(ds.items["scenario"] == name)
        catalog_mean.append((data.user_vectors @ data.item_vectors[rows].T).mean())
    same_topic = data.item_topics[items] == data.user_vectors[users].argmax(axis=1)
    return chosen.mean() - np.mean(catalog_mean), same_topic.mean()


def test_interactions_are_enriched_for_items_aligned_with_the_user(data):
    gain, same_topic = _enrichment(data)
    assert gain > 0.2
    assert same_topic > 3 / 6  # chance is about 1/6 with 6 topics
    # Without affinity, choices follow popularity only: the enrichment disappears.
    flat = generate_scenarios(num_users=200, specs=SPECS, latent_dim=6, affinity=0.0, seed=3)
    flat_gain, flat_same = _enrichment(flat)
    assert abs(flat_gain) < 0.05
    assert flat_same < 0.3


def test_true_logits_are_affinity_dot_plus_log_popularity(data):
    got = data.true_logits(np.array([0, 5]), np.array([1, 70, 100]))
    want = data.affinity * data.user_vectors[[0, 5]] @ data.item_vectors[[1, 70, 100]].T
    want += data.item_log_popularity[[1, 70, 100]]
    np.testing.assert_allclose(got, want)


def test_bad_settings_are_refused():
    with pytest.raises(DataError, match="asks 10 interactions of a 5-item catalog"):
        generate_scenarios(num_users=3, specs=(ScenarioSpec("x", 5, 10),))
    with pytest.raises(DataError, match="unique scenario names"):
        generate_scenarios(num_users=3, specs=(ScenarioSpec("x", 5, 1), ScenarioSpec("x", 5, 1)))


def test_leave_last_out_holds_out_each_users_last_interaction_per_scenario(data):
    train, test = leave_last_out(data.dataset.interactions)
    assert len(train) + len(test) == len(data.dataset.interactions)
    # One test row per (user, scenario) with >= 2 interactions: every user in a, all in b.
    assert test.groupby("scenario").size().to_dict() == {"a": 200, "b": 200}
    last = data.dataset.interactions.groupby(["user_id", "scenario"])["timestamp"].max()
    keyed = test.set_index(["user_id", "scenario"])["timestamp"]
    assert (keyed == last.loc[keyed.index]).all()
    one = pd.DataFrame(
        {"user_id": ["u", "u", "v"], "item_id": ["1", "2", "3"], "timestamp": [2, 1, 5]}
    ).astype({"timestamp": np.int64})
    train, test = leave_last_out(one)  # no scenario column: one scenario; v has 1 interaction
    assert test[["user_id", "item_id"]].values.tolist() == [["u", "1"]]
    assert sorted(train["item_id"]) == ["2", "3"]


def _frames(scenarios=None, item_scenarios=None):
    inter = pd.DataFrame(
        {"user_id": ["1", "2"], "item_id": ["7", "8"], "timestamp": np.array([1, 2], np.int64)}
    )
    if scenarios is not None:
        inter["scenario"] = pd.Series(scenarios, dtype=object)
    items = pd.DataFrame({"item_id": ["7", "8"]})
    if item_scenarios is not None:
        items["scenario"] = pd.Series(item_scenarios, dtype=object)
    return inter, items, pd.DataFrame({"user_id": ["1", "2"]})


def test_schema_without_scenario_is_one_default_scenario():
    inter, items, users = _frames()
    ds = RecDataset("toy", inter, items, users)
    assert scenario_values(ds.interactions).tolist() == [DEFAULT_SCENARIO] * 2
    assert scenario_values(ds.items).tolist() == [DEFAULT_SCENARIO] * 2


def test_schema_with_scenarios_checks_values_and_item_catalogs():
    inter, items, users = _frames(["shop", "news"], ["shop", "news"])
    ds = RecDataset("toy", inter, items, users)
    assert scenario_values(ds.interactions).tolist() == ["shop", "news"]
    with pytest.raises(DataError, match=r"column 'scenario' has 1 empty values"):
        validate_frame(_frames(["shop", ""])[0], "interactions", "src")
    with pytest.raises(DataError, match=r"column 'scenario' has 1 empty values"):
        validate_frame(_frames(None, ["", "news"])[1], "items", "src")
    with pytest.raises(DataError, match="column 'scenario' must hold str values"):
        validate_frame(_frames([1, 2])[0], "interactions", "src")
    inter, items, users = _frames(["shop", "shop"], ["shop", "news"])
    with pytest.raises(DataError, match="1 interactions have a scenario that is not their item's"):
        RecDataset("toy", inter, items, users)
