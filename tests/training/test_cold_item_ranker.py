"""``ranking.cold_item_neighbours``: new items scored through their text neighbours, end to end.

A ranker is trained under ``cold-items`` on a small clustered data set. Its scores are checked
against numpy written from the definition (EASE of TRAIN, the new items' rows and columns from
`transfer_item_item`, no retrieval term for them), in Python, in the two-stage scorer that
ranks every candidate, and in the exported ``score`` signature.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_clustered_dataset
from tfrec_llm.config import ExperimentConfig, ModelConfig, TrainConfig
from tfrec_llm.config.ranking_section import RankingConfig
from tfrec_llm.errors import ConfigError
from tfrec_llm.evaluation.protocols import evaluate
from tfrec_llm.evaluation.two_stage_scorer import TwoStageScorer
from tfrec_llm.export.op_scan import check_servable
from tfrec_llm.export.ranking_export import export_ranking
from tfrec_llm.models.cold_transfer import transfer_item_item
from tfrec_llm.models.item_item import ease_weights, interaction_matrix
from tfrec_llm.models.ranking import RankingModel
from tfrec_llm.models.scorer import TwoTowerScorer
from tfrec_llm.training.item_item_fit import list_item_item_scores

N, L, T, K, POWER = 10, 4, 0.1, 3, 2.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tfrec_llm.data.catalog import build_catalog
    from tfrec_llm.data.splits import make_split
    from tfrec_llm.experiments.builders import build_two_tower
    from tfrec_llm.experiments.prepare import Prepared
    from tfrec_llm.experiments.ranking_run import load_or_train_ranking

    tf.keras.utils.set_random_seed(5)
    dataset = make_clustered_dataset()
    split = make_split(dataset, "cold-items")
    catalog = build_catalog(dataset, split)
    text = np.random.default_rng(1).normal(size=(catalog.num_items, 6)).astype(np.float32)
    model_config = ModelConfig(embedding_dim=8, history_length=L, history_encoder="mean", temperature=T)
    retrieval = build_two_tower(model_config, catalog, text)
    ranking_config = RankingConfig(
        objective="listwise",
        examples="valid_lists",
        residual=True,
        deep_layers=(8,),
        num_candidates=N,
        item_item_l2=20.0,
        cold_item_neighbours=K,
        cold_item_power=POWER,
    )
    cfg = ExperimentConfig(
        model=model_config, ranking=ranking_config, train=TrainConfig(epochs=2, batch_size=8, patience=1)
    )
    prepared = Prepared(dataset, split, catalog, (), text)
    folder = str(tmp_path_factory.mktemp("ranking"))
    ranking, info = load_or_train_ranking(cfg, prepared, folder, variant="id", retrieval_model=retrieval)
    return cfg, prepared, retrieval, ranking, info, folder


def _reference_table(prepared):
    catalog, train = prepared.catalog, prepared.split.train
    users = catalog.user_index(train["user_id"].to_numpy(dtype=object))
    items = catalog.item_index(train["item_id"].to_numpy(dtype=object))
    matrix = interaction_matrix(users, items, catalog.num_users, catalog.num_items)
    known = np.asarray(matrix.sum(axis=0)).ravel() > 0
    table = ease_weights(matrix, 20.0)
    return transfer_item_item(table, prepared.text_embeddings, known, K, POWER), known


def test_new_items_take_their_neighbours_table_and_lose_the_learned_terms(trained):
    cfg, prepared, retrieval, ranking, info, folder = trained
    table, known = _reference_table(prepared)
    cold = prepared.catalog.item_index(prepared.split.cold_item_ids)
    assert not known[cold].any() and info["cold_items_transferred"] == int((~known).sum()) >= len(cold)
    np.testing.assert_array_equal(ranking.item_known.numpy(), known.astype(np.float32))
    np.testing.assert_allclose(ranking.item_item_table.numpy(), table, rtol=1e-5, atol=1e-6)
    from tfrec_llm.experiments.ranking_run import load_or_train_ranking

    reloaded, _ = load_or_train_ranking(cfg, prepared, folder, if_missing="error", variant="id")
    np.testing.assert_array_equal(reloaded.item_known.numpy(), known.astype(np.float32))
    np.testing.assert_allclose(reloaded.item_item_table.numpy(), table, rtol=1e-5, atol=1e-6)
    assert np.abs(table[:, cold]).sum() > 0  # the new items have columns now
    # score = known * (retrieval / T + f) + w * sum_h table[h, c]; f zeroed here, written in numpy
    ranking.output_layer.kernel.assign(tf.zeros_like(ranking.output_layer.kernel))
    ranking.output_layer.bias.assign(tf.zeros_like(ranking.output_layer.bias))
    task = prepared.split.test
    users = prepared.catalog.user_index(task.user_ids).astype(np.int32)
    history = prepared.catalog.pad_histories(task.histories, L)
    items = np.tile(np.arange(prepared.catalog.num_items, dtype=np.int32), (len(users), 1))
    first = TwoTowerScorer(retrieval, prepared.catalog).score(task.user_ids, task.histories)
    weight = float(ranking.item_item_weight.numpy())
    expected = known * first / T + weight * list_item_item_scores(table, history, items)
    got = ranking.score_candidates(
        {"user": tf.constant(users), "history": tf.constant(history)}, tf.constant(items), tf.constant(first)
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)
    # f is dropped for new items too: with a non-zero f, they still score the item-item term alone
    ranking.output_layer.bias.assign(tf.fill(tf.shape(ranking.output_layer.bias), 7.0))
    got = ranking.score_candidates(
        {"user": tf.constant(users), "history": tf.constant(history)}, tf.constant(items), tf.constant(first)
    ).numpy()
    np.testing.assert_allclose(got, expected + 7.0 * known, rtol=1e-4, atol=1e-4)
    # the two-stage scorer over every candidate ranks the cold items by the item-item term alone
    scorer = TwoStageScorer(TwoTowerScorer(retrieval, prepared.catalog), ranking, prepared.catalog, 10**6)

    class ItemItem:
        name = "numpy"

        def score(self, user_ids, histories):
            padded = prepared.catalog.pad_histories(histories, L)
            every = np.tile(np.arange(prepared.catalog.num_items), (len(user_ids), 1))
            return list_item_item_scores(table, padded, every)

    ours = evaluate(scorer, task, prepared.split.item_ids, ks=(3,))
    assert ours == pytest.approx(evaluate(ItemItem(), task, prepared.split.item_ids, ks=(3,)))


def test_the_exported_score_signature_scores_new_items_as_python(trained, tmp_path):
    cfg, prepared, retrieval, ranking, _, _ = trained
    catalog, split = prepared.catalog, prepared.split
    histories = split.train_valid.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()
    path = export_ranking(cfg, retrieval, ranking, catalog, histories, str(tmp_path / "exports"), version=1)
    assert check_servable(path).ok
    users = [str(u) for u in split.test.user_ids[:4]]
    candidates = np.tile(np.asarray(split.cold_item_ids, dtype=object)[:5], (len(users), 1))
    none = tf.zeros([0, 0], tf.string)
    served = (
        tf.saved_model.load(path)
        .signatures["score"](
            user_id=tf.constant(users), item_ids=tf.constant(candidates.astype(str)), recent_item_ids=none
        )["scores"]
        .numpy()
    )
    rows = catalog.item_index(candidates.ravel()).reshape(candidates.shape).astype(np.int32)
    index = catalog.user_index(np.asarray(users, dtype=object)).astype(np.int32)
    padded = catalog.pad_histories([np.asarray(histories[u], dtype=object) for u in users], L)
    first = TwoTowerScorer(retrieval, catalog).score(
        np.asarray(users, dtype=object), [histories[u] for u in users]
    )
    python = ranking.score_candidates(
        {"user": tf.constant(index), "history": tf.constant(padded)},
        tf.constant(rows),
        tf.constant(np.take_along_axis(first, rows, axis=1)),
    ).numpy()
    np.testing.assert_allclose(served, python, rtol=1e-4, atol=1e-4)


def test_the_mask_is_refused_without_the_switch_and_required_with_it():
    towers = {
        "item_tower": {"num_items": 3, "item_vocab_size": 4, "embedding_dim": 4, "use_text": False},
        "query_tower": {"num_users": 2, "user_vocab_size": 3, "embedding_dim": 4},
    }
    plain = RankingModel(**towers, item_item=True, residual_temperature=T)
    with pytest.raises(ConfigError, match="pass a \\[3\\] mask exactly when it is on"):
        plain.set_item_item(np.zeros((3, 3)), 1.0, known=np.ones(3, bool))
    transfer = RankingModel(**towers, item_item=True, cold_item_transfer=True, residual_temperature=T)
    with pytest.raises(ConfigError, match="pass a \\[3\\] mask exactly when it is on"):
        transfer.set_item_item(np.zeros((3, 3)), 1.0)
    assert RankingModel.from_config(transfer.get_config()).cold_item_transfer
    assert "cold_item_transfer" not in plain.get_config()
    with pytest.raises(ConfigError, match="cold_item_transfer=True needs item_item=True"):
        RankingModel(**towers, cold_item_transfer=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cold_item_neighbours": -1}, "ranking.cold_item_neighbours=-1; expected an integer >= 0"),
        (
            {"cold_item_neighbours": 5},
            "ranking.cold_item_neighbours=5; expected 0 unless ranking.item_item_l2 > 0",
        ),
        ({"cold_item_power": -2.0}, "ranking.cold_item_power=-2.0; expected an exponent >= 0"),
    ],
)
def test_bad_cold_item_settings_are_named(fields, message):
    with pytest.raises(ConfigError) as error:
        dataclasses.replace(RankingConfig(), **fields)
    assert str(error.value).startswith(message)


def test_a_run_without_text_vectors_is_told_to_switch_it_off(trained, tmp_path):
    from tfrec_llm.experiments.ranking_run import load_or_train_ranking

    cfg, prepared, retrieval, _, _, _ = trained
    no_text = dataclasses.replace(prepared, text_embeddings=None)
    with pytest.raises(ConfigError, match="Set ranking.cold_item_neighbours=0"):
        load_or_train_ranking(cfg, no_text, str(tmp_path / "r"), variant="id", retrieval_model=retrieval)
