"""model.popularity_prior: cosine / temperature + beta * log(1 + TRAIN count), in every scorer.

Numpy references for the Python scorer, parity of the exported retrieval graph (SavedModel,
loaded back) with it, protocol B's ranking unchanged, config checks, fingerprints of old runs,
and the ANN export refusal.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_clustered_dataset
from tfrec_llm.config import ExperimentConfig, ModelConfig, load_config, replace
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split
from tfrec_llm.errors import ConfigError
from tfrec_llm.evaluation.protocols import evaluate
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.experiments.fingerprint import training_fingerprint, with_new_fields
from tfrec_llm.export.exporter import export_retrieval
from tfrec_llm.export.serving_module import RetrievalModule
from tfrec_llm.models.retrieval import TwoTowerModel
from tfrec_llm.models.scorer import TwoTowerScorer, prior_bias

BETA = 0.7


def _model(protocol: str, beta: float):
    dataset = make_clustered_dataset()
    split = make_split(dataset, protocol)
    catalog = build_catalog(dataset, split)
    text = np.random.default_rng(1).normal(size=(catalog.num_items, 6)).astype(np.float32)
    config = ModelConfig(embedding_dim=8, history_length=4, popularity_prior=beta)
    return split, catalog, build_two_tower(config, catalog, text)


@pytest.fixture(scope="module")
def warm():
    return _model("loo", BETA)


def test_prior_bias_matches_numpy():
    catalog = dataclasses.make_dataclass("C", ["popularity"])(np.array([0.0, 1.0, 9.0], np.float32))
    np.testing.assert_allclose(prior_bias(catalog, 0.5, 0.1), 0.05 * np.log([1.0, 2.0, 10.0]), rtol=1e-6)
    assert prior_bias(catalog, 0.0, 0.1) is None


def test_scorer_adds_the_prior_to_cosine_over_temperature(warm):
    split, catalog, model = warm
    users, histories = split.test.user_ids[:5], split.test.histories[:5]
    plain = TwoTowerScorer(model, catalog, popularity_prior=0.0).score(users, histories)
    scorer = TwoTowerScorer(model, catalog)  # takes the model's beta
    expected = plain / model.temperature + BETA * np.log1p(catalog.popularity)[np.newaxis, :]
    np.testing.assert_allclose(scorer.score(users, histories), expected, rtol=1e-5, atol=1e-5)
    assert catalog.popularity.max() > catalog.popularity.min()  # the prior reorders something
    assert not np.array_equal(np.argsort(-plain, axis=1), np.argsort(-expected, axis=1))


def test_model_config_keeps_the_prior(warm):
    _, _, model = warm
    assert model.popularity_prior == BETA
    assert TwoTowerModel.from_config(model.get_config()).popularity_prior == BETA
    plain = TwoTowerModel.from_config({**model.get_config(), "popularity_prior": 0.0})
    assert "popularity_prior" not in plain.get_config()  # off: configs as before the field


def test_exported_graph_scores_as_the_scorer(warm, tmp_path):
    split, catalog, model = warm
    histories = split.train_valid.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()
    module = RetrievalModule(model, catalog, histories, default_k=5, max_k=5)
    serve = module.serve  # the tf.function the exporter saves as serving_default
    users = np.asarray(split.test.user_ids[:6])
    out = serve(
        user_id=tf.constant(users.astype(str)),
        recent_item_ids=tf.zeros([0, 0], tf.string),
        exclude_item_ids=tf.zeros([0, 0], tf.string),
        k=tf.constant(5),
    )
    # the scorer, fed the histories the server stores (its last history_length items)
    scores = TwoTowerScorer(model, catalog).score(users, [np.asarray(histories[u]) for u in users])
    for row, user in enumerate(users):
        seen = catalog.item_index(np.asarray(histories[user], dtype=object))
        ranked = scores[row].copy()
        ranked[seen] = -np.inf
        top = np.argsort(-ranked, kind="stable")[:5]
        np.testing.assert_allclose(out["scores"].numpy()[row], ranked[top], rtol=1e-5, atol=1e-4)
        assert out["item_ids"].numpy()[row].astype(str).tolist() == list(catalog.item_ids[top])


def test_cold_item_ranking_is_unchanged():
    split, catalog, model = _model("cold-items", BETA)
    cold_rows = catalog.item_index(np.asarray(split.cold_item_ids, dtype=object))
    assert np.all(catalog.popularity[cold_rows] == 0)  # no TRAIN interaction: the same bonus 0
    task = split.test
    users, histories = task.user_ids, task.histories
    plain = TwoTowerScorer(model, catalog, popularity_prior=0.0).score(users, histories)[:, cold_rows]
    prior = TwoTowerScorer(model, catalog).score(users, histories)[:, cold_rows]
    assert np.array_equal(np.argsort(-plain, axis=1), np.argsort(-prior, axis=1))
    with_prior = evaluate(TwoTowerScorer(model, catalog), task, split.item_ids)
    without = evaluate(TwoTowerScorer(model, catalog, popularity_prior=0.0), task, split.item_ids)
    assert with_prior == without


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf")])
def test_bad_prior_is_refused(value):
    with pytest.raises(ConfigError, match=r"model.popularity_prior=.*; expected >= 0 \(finite\)"):
        load_config(None, [f"model.popularity_prior={value}"])


def test_runs_recorded_before_the_field_stay_valid():
    recorded = training_fingerprint(ExperimentConfig())
    del recorded["model"]["popularity_prior"]  # what a run trained before this field recorded
    assert with_new_fields(recorded) == training_fingerprint(ExperimentConfig())
    changed = replace(ExperimentConfig(), model__popularity_prior=0.5)
    assert with_new_fields(recorded) != training_fingerprint(changed)


def test_ann_export_with_prior_is_refused(warm, tmp_path):
    _, catalog, model = warm
    cfg = replace(ExperimentConfig(), model__popularity_prior=BETA, export__ann="on")
    with pytest.raises(ConfigError) as caught:
        export_retrieval(cfg, model, catalog, {}, str(tmp_path))
    assert str(caught.value).startswith(
        "model.popularity_prior=0.7 with an ANN index (export.ann='on'): the index searches the "
        "cosine alone and would drop the prior. Set export.ann=off"
    )
    assert not any(tmp_path.iterdir())  # refused before anything was written
