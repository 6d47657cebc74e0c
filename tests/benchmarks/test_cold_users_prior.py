"""Tests of benchmarks/cold_users_prior.py: the cold-like VALID task, the score arithmetic, the choice."""

from __future__ import annotations

import numpy as np

from tests.conftest import make_clustered_dataset
from tfrec_llm.config import ModelConfig
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.schema import ITEM_ID, USER_ID
from tfrec_llm.data.splits import make_split
from tfrec_llm.experiments.builders import build_two_tower


def test_cold_like_valid_reads_the_first_five_train_items(bench) -> None:
    script = bench("cold_users_prior")
    split = make_split(make_clustered_dataset(), "cold-users")
    task = script.cold_like_valid(split)
    assert len(task.user_ids) > 0 and not set(task.user_ids) & set(split.cold_user_ids)
    for row, user in enumerate(task.user_ids.tolist()):
        train = split.train.loc[split.train[USER_ID] == user, ITEM_ID].tolist()  # chronological
        assert task.histories[row].tolist() == train[:5]
        assert sorted(task.exclude[row].tolist()) == sorted(set(train))
        at = split.valid.user_ids.tolist().index(user)
        assert task.targets[row].tolist() == split.valid.targets[at].tolist()
        assert not set(task.targets[row].tolist()) & set(train)


def test_matrix_scores_equal_the_scorer_with_the_prior(bench) -> None:
    script = bench("cold_users_prior")
    dataset = make_clustered_dataset()
    split = make_split(dataset, "cold-users")
    catalog = build_catalog(dataset, split)
    text = np.random.default_rng(1).normal(size=(catalog.num_items, 6)).astype(np.float32)
    model = build_two_tower(ModelConfig(embedding_dim=8, history_length=4), catalog, text)
    prepared = type("P", (), {"catalog": catalog})()
    scores = script.model_scores(model, catalog, {"test": split.test})["test"]
    assert script.check_arithmetic(model, prepared, split.test, scores, 0.5) < 1e-4
    # and the prior changed the scores (the check compares something)
    assert script.check_arithmetic(model, prepared, split.test, scores * 0.5, 0.5) > 1e-3


def test_choice_and_standard_errors(bench) -> None:
    script = bench("cold_users_prior")
    curve = [{"beta": 0.0, "ndcg@10": 0.1}, {"beta": 0.5, "ndcg@10": 0.2}, {"beta": 1.0, "ndcg@10": 0.2}]
    assert script.choose(curve) == 0.5  # the best, the smaller beta on a tie
    values = {"ndcg@10": np.array([0.0, 1.0, 0.5, 0.5])}
    base = {"ndcg@10": np.array([0.0, 0.0, 0.5, 0.5])}
    out = script.summary(values, base)
    assert out["ndcg@10"] == 0.5
    assert np.isclose(out["ndcg@10 se"], np.std([0.0, 1.0, 0.5, 0.5], ddof=1) / 2)
    assert out["ndcg@10 diff"] == 0.25 and np.isclose(out["ndcg@10 diff se"], 0.25)


def test_per_user_values_average_to_the_evaluator_and_give_the_standard_error(bench) -> None:
    """Both scripts' per-user numbers: their means are `evaluate`'s, their SE the sample SE."""
    from tfrec_llm.evaluation.baselines import MostPopScorer
    from tfrec_llm.evaluation.protocols import evaluate

    split = make_split(make_clustered_dataset(), "cold-users")
    scorer = MostPopScorer(split)
    whole = evaluate(scorer, split.test, split.item_ids, ks=(10,))
    values = bench("cold_users_prior").per_user(scorer, split.test, split.item_ids)
    summary = bench("lora").per_user_metrics(scorer, split.test, split.item_ids)
    for key in ("recall@10", "ndcg@10"):
        assert len(values[key]) == len(split.test.user_ids) > 1
        np.testing.assert_allclose(values[key].mean(), whole[key], atol=1e-12)
        np.testing.assert_allclose(summary[key], whole[key], atol=1e-12)
        se = np.std(values[key], ddof=1) / np.sqrt(len(values[key]))
        np.testing.assert_allclose(summary[f"{key} se"], se, atol=1e-12)
