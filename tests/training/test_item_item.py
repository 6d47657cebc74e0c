"""The ranker's item-item term (``ranking.item_item_l2``): EASE weights, scores, the fitted weight.

References are numpy: EASE's closed form written out, the history sums as loops, and a weight
planted in simulated lists that the fit must recover.
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
from tfrec_llm.evaluation.peers import EASEScorer
from tfrec_llm.evaluation.two_stage_scorer import TwoStageScorer
from tfrec_llm.experiments.runs import StaleRunError
from tfrec_llm.export.op_scan import check_servable
from tfrec_llm.export.ranking_export import export_ranking
from tfrec_llm.models.item_item import check_item_item_size, ease_weights, interaction_matrix
from tfrec_llm.models.scorer import TwoTowerScorer
from tfrec_llm.training.item_item_fit import fit_item_item_weight, list_item_item_scores, listwise_loss
from tfrec_llm.training.ranking_trainer import build_ranking_model
from tfrec_llm.training.serving_lists import serving_lists

N, L, T = 10, 4, 0.1


def test_ease_weights_are_the_closed_form_and_the_peer_uses_them():
    rng = np.random.default_rng(0)
    x = (rng.random((30, 8)) < 0.3).astype(np.float64)
    gram = x.T @ x + 5.0 * np.eye(8)
    p = np.linalg.inv(gram)
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    b = ease_weights(x, 5.0)
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, expected, rtol=1e-5, atol=1e-6)
    # the objective: B beats B = 0 at reconstructing X (with the ridge term)
    assert ((x - x @ b) ** 2).sum() + 5.0 * (b**2).sum() < (x**2).sum()
    small = make_small_two_tower(make_clustered_dataset())
    peer = EASEScorer(small.split, l2=50.0)
    users = small.catalog.user_index(small.split.train["user_id"].to_numpy(dtype=object))
    items = small.catalog.item_index(small.split.train["item_id"].to_numpy(dtype=object))
    matrix = interaction_matrix(users, items, small.catalog.num_users, small.catalog.num_items)
    np.testing.assert_allclose(ease_weights(matrix, 50.0), peer.B, rtol=1e-5, atol=1e-6)


def test_interaction_matrix_is_binary_and_skips_unknown_indices():
    m = interaction_matrix(np.array([0, 0, 1, -1]), np.array([2, 2, 0, 1]), 2, 3).toarray()
    np.testing.assert_array_equal(m, [[0, 0, 1], [1, 0, 0]])


def test_too_large_a_catalog_and_a_bad_l2_are_named():
    with pytest.raises(ConfigError, match="ranking.item_item_l2 > 0 needs a dense"):
        check_item_item_size(20_001)
    with pytest.raises(ConfigError, match="must be > 0"):
        ease_weights(np.eye(3), 0.0)


def test_history_sums_ignore_padding_in_numpy_and_in_the_model():
    rng = np.random.default_rng(1)
    table = rng.normal(size=(6, 6)).astype(np.float32)
    history = np.array([[-1, -1, 0, 3], [-1, -1, -1, -1], [4, 4, 1, 2]], np.int32)
    items = np.array([[1, 2], [0, 4], [3, 3]], np.int32)
    expected = np.zeros((3, 2))
    for row in range(3):
        for col in range(2):
            expected[row, col] = sum(table[h, items[row, col]] for h in history[row] if h >= 0)
    np.testing.assert_allclose(list_item_item_scores(table, history, items), expected, rtol=1e-6)
    small = make_small_two_tower(make_clustered_dataset(num_items=6, per_user=4), history_encoder="mean")
    cfg = ExperimentConfig(
        model=ModelConfig(embedding_dim=8, history_length=L, history_encoder="mean", temperature=T),
        ranking=_ranking(item_item_l2=10.0),
    )
    model = build_ranking_model(cfg, small.catalog, small.text_embeddings)
    model.set_item_item(table, 0.0)
    np.testing.assert_allclose(model.item_item_scores(history, items).numpy(), expected, rtol=1e-5)


def _ranking(**fields) -> RankingConfig:
    return RankingConfig(
        objective="listwise",
        examples="valid_lists",
        residual=True,
        deep_layers=(8,),
        num_candidates=N,
        **fields,
    )


def test_the_fit_recovers_a_planted_weight():
    rng = np.random.default_rng(2)
    lists, size, planted = 3000, 8, 2.5
    base = rng.normal(size=(lists, size))
    # one history item per list, its own row of the table: s(list, c) = table[list, c]
    table = rng.normal(size=(lists, size)).astype(np.float32)
    history = np.arange(lists)[:, None]
    items = np.tile(np.arange(size), (lists, 1))
    logits = base + planted * table
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    chosen = np.array([rng.choice(size, p=p) for p in prob])
    label = np.zeros((lists, size), np.float32)
    label[np.arange(lists), chosen] = 1.0
    fitted = {"history": history, "item": items, "retrieval_score": base * T, "label": label}
    weight, loss, loss_at_zero = fit_item_item_weight(fitted, table, T)
    assert abs(weight - planted) < 0.2
    assert loss < loss_at_zero
    for step in (-0.3, 0.3):  # a minimum
        assert listwise_loss(base, table, label, weight + step) > loss


@pytest.fixture(scope="module")
def small_setup():
    tf.keras.utils.set_random_seed(5)
    small = make_small_two_tower(make_clustered_dataset(), history_encoder="mean", temperature=T)
    cfg = ExperimentConfig(
        model=ModelConfig(embedding_dim=8, history_length=L, history_encoder="mean", temperature=T),
        ranking=_ranking(item_item_l2=20.0),
        train=TrainConfig(epochs=2, batch_size=8, patience=1),
    )
    return small, cfg


def test_item_item_ranker_trains_reloads_scores_as_written_and_serves_the_same(small_setup, tmp_path):
    from tfrec_llm.experiments.prepare import Prepared
    from tfrec_llm.experiments.ranking_run import load_or_train_ranking

    small, cfg = small_setup
    prepared = Prepared(make_clustered_dataset(), small.split, small.catalog, (), small.text_embeddings)
    folder = str(tmp_path / "ranking")
    trained, info = load_or_train_ranking(cfg, prepared, folder, variant="id", retrieval_model=small.model)
    weight = info["item_item_weight"]
    fit_loss = info["item_item_fit_loss"]
    assert weight != 0.0 and fit_loss[1] <= fit_loss[0]
    ranking, _ = load_or_train_ranking(cfg, prepared, folder, if_missing="error", variant="id")
    assert float(ranking.item_item_weight.numpy()) == pytest.approx(weight, abs=1e-6)
    # score = retrieval / T + w * sum_h B[h, c] + f, with f zeroed here: written out in numpy
    ranking.output_layer.kernel.assign(tf.zeros_like(ranking.output_layer.kernel))
    ranking.output_layer.bias.assign(tf.zeros_like(ranking.output_layer.bias))
    scorer = TwoTowerScorer(small.model, small.catalog)
    lists = serving_lists(scorer, small.catalog, small.split.valid, L, N)
    users = small.catalog.user_index(small.split.train["user_id"].to_numpy(dtype=object))
    items = small.catalog.item_index(small.split.train["item_id"].to_numpy(dtype=object))
    table = ease_weights(
        interaction_matrix(users, items, small.catalog.num_users, small.catalog.num_items), 20.0
    )
    expected = lists["retrieval_score"] / T + weight * list_item_item_scores(
        table, lists["history"], lists["item"]
    )
    feats = {"user": tf.constant(lists["user"]), "history": tf.constant(lists["history"])}
    got = ranking.score_candidates(feats, tf.constant(lists["item"]), tf.constant(lists["retrieval_score"]))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)
    # the exported two-stage SavedModel is servable and ranks as the Python two-stage scorer
    split, catalog = small.split, small.catalog
    histories = split.train_valid.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()
    served_users = [str(u) for u in split.test.user_ids[:6]]
    path = export_ranking(cfg, small.model, ranking, catalog, histories, str(tmp_path / "exports"), version=1)
    assert check_servable(path).ok
    none = tf.zeros([0, 0], tf.string)
    out = tf.saved_model.load(path).signatures["recommend"](
        user_id=tf.constant(served_users), recent_item_ids=none, exclude_item_ids=none, k=tf.constant(3)
    )
    python = TwoStageScorer(scorer, ranking, catalog, N).score(
        np.asarray(served_users, dtype=object), [np.asarray(histories[u], dtype=object) for u in served_users]
    )
    expected_ids = catalog.item_ids[np.argsort(-python, axis=1, kind="stable")[:, :3]]
    assert [[i.decode() for i in row] for row in out["item_ids"].numpy()] == expected_ids.tolist()


def test_a_run_recorded_before_the_field_is_stale_only_when_it_is_set(small_setup, tmp_path):
    from tfrec_llm.experiments.prepare import Prepared
    from tfrec_llm.experiments.ranking_run import load_or_train_ranking

    small, cfg = small_setup
    plain = dataclasses.replace(cfg, ranking=_ranking())
    prepared = Prepared(make_clustered_dataset(), small.split, small.catalog, (), small.text_embeddings)
    folder = str(tmp_path / "ranking")
    load_or_train_ranking(plain, prepared, folder, variant="id", retrieval_model=small.model)
    path = os.path.join(folder, "fingerprint.json")
    with open(path) as f:
        recorded = json.load(f)
    del recorded["ranking"]["item_item_l2"]  # as written before the field existed
    with open(path, "w") as f:
        json.dump(recorded, f)
    load_or_train_ranking(plain, prepared, folder, if_missing="error", variant="id")  # still valid
    with pytest.raises(StaleRunError, match="other ranking settings"):
        load_or_train_ranking(cfg, prepared, folder, if_missing="error", variant="id")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"item_item_l2": -1.0}, "ranking.item_item_l2=-1.0; expected a ridge strength >= 0"),
        ({"item_item_l2": 100.0}, "ranking.item_item_l2=100.0; expected 0 unless ranking.residual=true"),
    ],
)
def test_bad_item_item_settings_are_named(fields, message):
    with pytest.raises(ConfigError) as error:
        dataclasses.replace(RankingConfig(), **fields)
    assert str(error.value).startswith(message)
