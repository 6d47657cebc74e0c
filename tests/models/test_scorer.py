"""Tests for tfrec_llm.models.scorer.TwoTowerScorer: the traced query embedding equals the eager one.

The scorer runs ``model.query_embedding`` as one traced graph per model object (the validation
of every epoch reuses it); the reference is the same method called eagerly, op by op.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_clustered_dataset, make_small_two_tower
from tfrec_llm.models.scorer import TwoTowerScorer


def _eager(model, catalog, users, histories, texts=None):
    rows = catalog.user_index(np.asarray(users, dtype=object)).astype(np.int32)
    padded = catalog.pad_histories(histories, model.history_length)
    text = None if texts is None else tf.constant(texts)
    return model.query_embedding(tf.constant(rows), tf.constant(padded), user_text=text).numpy()


@pytest.mark.parametrize("encoder", ["gru", "attention", "mean"])
def test_traced_queries_equal_eager_ones_and_follow_weight_changes(encoder):
    small = make_small_two_tower(make_clustered_dataset(), history_encoder=encoder)
    model, catalog = small.model, small.catalog
    users = [str(u) for u in catalog.user_ids[:7]] + ["unknown"]
    histories = [list(catalog.item_ids[i : i + 1 + i % 5]) for i in range(len(users) - 1)] + [[]]
    scorer = TwoTowerScorer(model, catalog, batch_size=3)  # batches of 3, 3 and 2: one trace
    np.testing.assert_allclose(
        scorer.query_embeddings(np.array(users, dtype=object), histories),
        _eager(model, catalog, users, histories),
        rtol=1e-5,
        atol=1e-6,
    )
    # new weights, same model object: the reused trace reads them
    before = scorer.query_embeddings(np.array(users, dtype=object), histories)
    for variable in model.query_tower.trainable_variables:
        variable.assign(variable * 1.5 + 0.01)
    after = TwoTowerScorer(model, catalog).query_embeddings(np.array(users, dtype=object), histories)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _eager(model, catalog, users, histories), rtol=1e-5, atol=1e-6)


def test_traced_queries_read_user_texts():
    dataset = make_clustered_dataset()
    small = make_small_two_tower(dataset, user_text=True)
    model, catalog = small.model, small.catalog
    users = [str(catalog.user_ids[0]), str(catalog.user_ids[1]), "new"]
    histories = [list(catalog.item_ids[:3]), list(catalog.item_ids[3:4]), []]
    vectors = np.random.default_rng(3).normal(size=(2, model.user_text_dim)).astype(np.float32)
    texts = {users[0]: vectors[0], users[2]: vectors[1]}
    got = TwoTowerScorer(model, catalog, user_texts=texts).query_embeddings(
        np.array(users, dtype=object), histories
    )
    dense = np.stack([vectors[0], np.zeros(model.user_text_dim, np.float32), vectors[1]])
    np.testing.assert_allclose(got, _eager(model, catalog, users, histories, dense), rtol=1e-5, atol=1e-6)


def test_a_scored_model_is_freed_with_its_trace():
    # the trace belongs to the model (a tf.function method), so scoring many models (a tuning
    # search, a test session) keeps none of them alive
    import gc
    import weakref

    dataset = make_clustered_dataset()
    refs = []
    for _ in range(3):
        small = make_small_two_tower(dataset, history_encoder="gru")
        scorer = TwoTowerScorer(small.model, small.catalog)
        scorer.query_embeddings(np.array(["1"], dtype=object), [[small.catalog.item_ids[0]]])
        refs.append(weakref.ref(small.model))
        del scorer, small
    gc.collect()
    assert [r() for r in refs] == [None, None, None]
