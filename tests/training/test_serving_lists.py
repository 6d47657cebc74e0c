"""Serving-like ranking lists (``ranking.examples=valid_lists``) and the residual ranker.

References are written out in numpy: the retrieval scores of the whole catalog, the history
removed, a stable top N; the residual ranker's score is ``retrieval / temperature + f``.
"""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_clustered_dataset, make_small_two_tower
from tfrec_llm.config import ExperimentConfig, ModelConfig, TrainConfig
from tfrec_llm.config.ranking_section import RankingConfig
from tfrec_llm.errors import ConfigError
from tfrec_llm.evaluation.two_stage_scorer import TwoStageScorer
from tfrec_llm.export.ranking_export import two_stage_module
from tfrec_llm.models.scorer import TwoTowerScorer
from tfrec_llm.training.ranking_trainer import build_ranking_model, evaluate_ranking
from tfrec_llm.training.serving_lists import serving_lists, split_lists

N, L, T = 10, 4, 0.1


@pytest.fixture(scope="module")
def setup():
    tf.keras.utils.set_random_seed(5)
    small = make_small_two_tower(make_clustered_dataset(), history_encoder="mean", temperature=T)
    cfg = ExperimentConfig(
        model=ModelConfig(embedding_dim=8, history_length=L, history_encoder="mean", temperature=T),
        ranking=RankingConfig(
            objective="listwise", examples="valid_lists", residual=True, deep_layers=(8,), num_candidates=N
        ),
        train=TrainConfig(epochs=2, batch_size=8, patience=1),
    )
    scorer = TwoTowerScorer(small.model, small.catalog)
    lists = serving_lists(scorer, small.catalog, small.split.valid, L, N)
    return small, cfg, scorer, lists


def _first_stage(scorer, catalog, task):
    scores = scorer.score(np.asarray(task.user_ids, dtype=object), task.histories).astype(np.float64)
    for row, history in enumerate(task.histories):
        scores[row, catalog.item_index(np.asarray(history, dtype=object))] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :N]
    return top, np.take_along_axis(scores, top, axis=1)


def test_lists_are_the_retrieval_top_n_with_the_valid_target(setup):
    small, _, scorer, lists = setup
    task, catalog = small.split.valid, small.catalog
    top, top_scores = _first_stage(scorer, catalog, task)
    target = np.array([catalog.item_index(np.asarray(t, dtype=object))[0] for t in task.targets])
    kept = np.flatnonzero((top == target[:, None]).any(axis=1))
    assert 0 < len(kept) < len(task.user_ids)  # some targets are outside the top N: dropped
    np.testing.assert_array_equal(lists["user"], catalog.user_index(task.user_ids[kept]))
    np.testing.assert_array_equal(lists["item"], top[kept])
    np.testing.assert_allclose(lists["retrieval_score"], top_scores[kept], rtol=1e-6)
    np.testing.assert_array_equal(lists["label"], (top[kept] == target[kept, None]).astype(np.float32))
    assert lists["label"].sum(axis=1).tolist() == [1.0] * len(kept)
    padded = catalog.pad_histories([task.histories[i] for i in kept], L)
    np.testing.assert_array_equal(lists["history"], padded)


def test_split_lists_holds_out_a_seeded_fraction_of_the_users(setup):
    lists = setup[3]
    fit, held = split_lists(lists, holdout=0.25, seed=0)
    count = len(lists["user"])
    assert len(held["user"]) == round(0.25 * count) and len(fit["user"]) + len(held["user"]) == count
    assert not set(fit["user"].tolist()) & set(held["user"].tolist())
    again, _ = split_lists(lists, holdout=0.25, seed=0)
    np.testing.assert_array_equal(again["item"], fit["item"])


def test_untrained_residual_ranker_ranks_exactly_as_retrieval(setup):
    small, cfg, scorer, lists = setup
    ranking = build_ranking_model(cfg, small.catalog, small.text_embeddings)
    feats = {"user": tf.constant(lists["user"]), "history": tf.constant(lists["history"])}
    scores = ranking.score_candidates(
        feats, tf.constant(lists["item"]), tf.constant(lists["retrieval_score"])
    )
    np.testing.assert_allclose(scores.numpy(), lists["retrieval_score"] / T, rtol=1e-5)
    task = small.split.test
    two = TwoStageScorer(scorer, ranking, small.catalog, N).score(task.user_ids, task.histories)
    top, _ = _first_stage(scorer, small.catalog, task)
    np.testing.assert_array_equal(np.argsort(-two, axis=1, kind="stable")[:, :N], top)


def test_valid_lists_run_trains_reloads_and_the_served_graph_agrees(setup, tmp_path):
    from tfrec_llm.experiments.prepare import Prepared
    from tfrec_llm.experiments.ranking_run import load_or_train_ranking

    small, cfg, scorer, lists = setup
    dataset = make_clustered_dataset()
    prepared = Prepared(dataset, small.split, small.catalog, (), small.text_embeddings)
    folder = str(tmp_path / "ranking")
    trained, info = load_or_train_ranking(cfg, prepared, folder, variant="id", retrieval_model=small.model)
    assert "neg_loss" in info["valid_metrics"] and info["valid_metrics"]["neg_loss"] < 0
    with open(os.path.join(folder, "fingerprint.json")) as f:
        assert json.load(f)["first_stage"] == "id"
    ranking, _ = load_or_train_ranking(cfg, prepared, folder, if_missing="error", variant="id")
    feats = {"user": tf.constant(lists["user"]), "history": tf.constant(lists["history"])}
    args = (feats, tf.constant(lists["item"]), tf.constant(lists["retrieval_score"]))
    np.testing.assert_allclose(ranking.score_candidates(*args), trained.score_candidates(*args), rtol=1e-6)
    # never worse than the retrieval order (the untrained residual) on the held-out users
    held = split_lists(lists, cfg.ranking.holdout, cfg.train.seed)[1]
    untrained = build_ranking_model(cfg, small.catalog, small.text_embeddings)
    untrained.compile()
    ranking.compile()  # a loaded run is not compiled; evaluate needs it
    assert evaluate_ranking(ranking, held)["loss"] <= evaluate_ranking(untrained, held)["loss"] + 1e-6
    if info["kept_retrieval_order"]:
        np.testing.assert_allclose(ranking.score_candidates(*args), lists["retrieval_score"] / T, rtol=1e-5)
    kernel = ranking.output_layer.kernel
    kernel.assign(np.random.default_rng(0).normal(size=kernel.shape).astype(np.float32))  # a visible f
    split, catalog = small.split, small.catalog
    histories = split.train_valid.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()
    users = [str(u) for u in split.test.user_ids[:6]]
    module = two_stage_module(cfg, small.model, ranking, catalog, histories)
    none = tf.zeros([0, 0], tf.string)
    out = module.recommend(tf.constant(users), none, none, tf.constant(3))
    python = TwoStageScorer(scorer, ranking, catalog, N).score(
        np.asarray(users, dtype=object), [np.asarray(histories[u], dtype=object) for u in users]
    )
    expected = catalog.item_ids[np.argsort(-python, axis=1, kind="stable")[:, :3]]
    assert [[i.decode() for i in row] for row in out["item_ids"].numpy()] == expected.tolist()
    retrieval_only = np.argsort(-out["retrieval_scores"].numpy(), axis=1, kind="stable")
    assert not (retrieval_only == np.arange(3)).all()  # f re-ordered at least one answer


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"examples": "lists"}, "ranking.examples='lists'; expected one of ('train', 'valid_lists')"),
        ({"examples": "valid_lists"}, "ranking.examples='valid_lists'; expected 'train' unless"),
        ({"residual": True}, "ranking.residual=True; expected false unless ranking.examples=valid_lists"),
        ({"holdout": 0.0}, "ranking.holdout=0.0; expected a fraction in (0, 1)"),
    ],
)
def test_bad_examples_settings_are_named(fields, message):
    with pytest.raises(ConfigError) as error:
        dataclasses.replace(RankingConfig(), **fields)
    assert str(error.value).startswith(message)
