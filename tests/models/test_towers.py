"""Tests for tfrec_llm.models.towers against numpy references."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.query_tower import QueryTower
from tfrec_llm.models.towers import ItemTower


def _l2(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_id_only_item_tower_is_the_normalised_embedding_row():
    tower = ItemTower(num_items=4, item_vocab_size=3, embedding_dim=5, use_text=False, use_categories=False)
    tower.set_tables(np.array([2, 0, 1, 0]))
    out = tower(tf.constant([0, 1, 3])).numpy()
    table = tower.id_embedding.embeddings.numpy()
    np.testing.assert_allclose(out, _l2(table[[2, 0, 0]]), atol=1e-6)
    # items 1 and 3 are both OOV (vocab row 0): same embedding
    np.testing.assert_allclose(out[1], out[2])


def test_unnormalised_towers_return_the_raw_vectors():
    items = ItemTower(
        num_items=4, item_vocab_size=3, embedding_dim=5, use_text=False, use_categories=False, normalize=False
    )
    items.set_tables(np.array([2, 0, 1, 0]))
    out = items(tf.constant([0, 1, 3])).numpy()
    np.testing.assert_allclose(out, items.id_embedding.embeddings.numpy()[[2, 0, 0]], atol=1e-6)
    assert not np.allclose(np.linalg.norm(out, axis=1), 1.0)
    queries = QueryTower(num_users=2, user_vocab_size=3, embedding_dim=4, use_history=False)
    raw = QueryTower(num_users=2, user_vocab_size=3, embedding_dim=4, use_history=False, normalize=False)
    inputs = {
        "user": tf.constant([0, 1]),
        "history": tf.zeros([2, 1, 4]),
        "history_mask": tf.zeros([2, 1], bool),
    }
    raw(inputs)
    queries(inputs)
    queries.set_weights(raw.get_weights())
    np.testing.assert_allclose(queries(inputs).numpy(), _l2(raw(inputs).numpy()), atol=1e-6)
    # the default configs do not name the switch (saved configs stay as they were)
    assert "normalize" not in queries.get_config() and raw.get_config()["normalize"] is False


def test_item_tower_with_text_and_categories_matches_numpy():
    rng = np.random.default_rng(0)
    text = rng.normal(size=(3, 4)).astype(np.float32)
    cats = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    tower = ItemTower(
        num_items=3, item_vocab_size=3, text_dim=4, num_categories=2, embedding_dim=6, text_projection_dim=8
    )
    tower.set_tables(np.array([1, 2, 0]), text, cats)
    out = tower(tf.constant([[0, 2]])).numpy()  # any input shape
    assert out.shape == (1, 2, 6)

    emb = tower.id_embedding.embeddings.numpy()
    w1, b1 = tower.text_projection.layers[0].get_weights()
    w2, b2 = tower.text_projection.layers[1].get_weights()
    wc, bc = tower.category_projection.get_weights()
    wf, bf = tower.fusion.get_weights()
    gelu = lambda x: keras.activations.gelu(tf.constant(x)).numpy()  # noqa: E731
    for pos, item in enumerate([0, 2]):
        parts = np.concatenate(
            [emb[[1, 2, 0][item]], gelu(text[item] @ w1 + b1) @ w2 + b2, cats[item] @ wc + bc]
        )
        np.testing.assert_allclose(out[0, pos], _l2(parts @ wf + bf), atol=1e-5)


def test_id_dropout_only_in_training():
    tower = ItemTower(
        num_items=2,
        item_vocab_size=3,
        embedding_dim=4,
        use_text=False,
        use_categories=False,
        id_dropout=0.999,
    )
    tower.set_tables(np.array([1, 2]))
    inference = tower(tf.constant([0, 1]), training=False).numpy()
    assert not np.allclose(inference[0], inference[1])
    dropped = tower(tf.constant([0, 1]), training=True).numpy()
    np.testing.assert_allclose(dropped[0], dropped[1], atol=1e-6)  # both mapped to the OOV row


def test_tower_argument_errors():
    with pytest.raises(ConfigError, match="use_text=True needs text_dim > 0"):
        ItemTower(num_items=2, item_vocab_size=2, text_dim=0)
    with pytest.raises(ConfigError, match="all false"):
        QueryTower(num_users=2, user_vocab_size=2, use_ids=False, use_profile=False, use_history=False)
    tower = ItemTower(num_items=2, item_vocab_size=2, text_dim=3, use_categories=False)
    with pytest.raises(ConfigError, match=r"text_embeddings shape \(2, 4\), expected \(2, 3\)"):
        tower.set_tables(np.array([1, 0]), np.zeros((2, 4)))


def test_query_tower_unknown_user_and_empty_history():
    tower = QueryTower(num_users=2, user_vocab_size=3, profile_sizes=(3,), embedding_dim=4)
    tower.set_tables(np.array([1, 2, 0]), np.array([[1], [2], [0]]))
    hist = tf.zeros([3, 2, 4])
    mask = tf.zeros([3, 2], tf.bool)
    out = tower({"user": tf.constant([0, 2, 99]), "history": hist, "history_mask": mask}).numpy()
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # user index 99 is clipped to the unknown-user row (2): same as user 2
    np.testing.assert_allclose(out[1], out[2])


@pytest.mark.parametrize("cls, kwargs", [
    (ItemTower, {"num_items": 3, "item_vocab_size": 2, "text_dim": 4, "num_categories": 2, "embedding_dim": 8}),
    (QueryTower, {"num_users": 3, "user_vocab_size": 2, "profile_sizes": [2, 3], "embedding_dim": 8}),
    (ItemTower, {"num_items": 3, "item_vocab_size": 2, "use_text": False, "name": "catalog_items"}),
    (QueryTower, {"num_users": 3, "user_vocab_size": 2, "profile_sizes": (4,), "trainable": False}),
    (ItemTower, {"num_items": 3, "item_vocab_size": 2, "use_text": False, "normalize": False}),
    (QueryTower, {"num_users": 3, "user_vocab_size": 2, "normalize": False}),
])  # fmt: skip
def test_config_round_trip(cls, kwargs, keras_testing):
    config = keras_testing.assert_config_round_trip(cls(**kwargs), kwargs)
    if "name" not in kwargs:  # Keras numbers default names per instance: item_tower, item_tower_1
        assert config["name"].startswith({ItemTower: "item_tower", QueryTower: "query_tower"}[cls])


def test_item_tower_config_keeps_use_categories_when_the_data_has_none():
    tower = ItemTower(num_items=2, item_vocab_size=2, text_dim=3, num_categories=0, use_categories=True)
    assert tower.get_config()["use_categories"] is True
    assert tower.category_projection is None  # derived: no categorical fields, no projection
    tower.set_tables(np.array([1, 0]), np.ones((2, 3)), np.ones((2, 1)))  # categories ignored
    assert tower(tf.constant([0, 1])).shape == (2, 64)


def test_query_tower_config_keeps_use_profile_when_the_data_has_no_profile():
    tower = QueryTower(num_users=2, user_vocab_size=2, profile_sizes=(), embedding_dim=4)
    assert tower.get_config()["use_profile"] is True
    assert tower.profile_embeddings == []  # derived: no profile fields, no embeddings
    hist = tf.ones([1, 2, 4])
    out = tower({"user": tf.constant([1]), "history": hist, "history_mask": tf.ones([1, 2], tf.bool)})
    assert out.shape == (1, 4)
