"""The query tower's optional user text: it moves the query when given, and nothing when absent.

A numpy reference recomputes the text part (Dense-gelu-Dense of the vector, zero for an
all-zero row) and the synthetic training text (normalised mean of the last 5 items' vectors).
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_clustered_dataset, make_small_two_tower
from tfrec_llm.errors import ConfigError
from tfrec_llm.models.query_tower import QueryTower
from tfrec_llm.models.retrieval import USER_TEXT_ITEMS


@pytest.fixture(scope="module")
def fixture():
    return make_small_two_tower(make_clustered_dataset(), user_text=True, history_length=7)


def _gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(__import__("math").erf)(x / np.sqrt(2.0)))


def test_text_changes_the_query_and_an_empty_text_does_not(fixture):
    model = fixture.model
    users = tf.constant([0, 1, 2])
    history = tf.constant([[-1, -1, 0, 1, 2, 3, 4], [-1] * 7, [-1, -1, -1, -1, -1, 5, 6]])
    text = np.random.default_rng(3).normal(size=(3, 6)).astype(np.float32)
    text[1] = 0.0  # user 1 wrote nothing
    without = model.query_embedding(users, history).numpy()
    with_text = model.query_embedding(users, history, user_text=tf.constant(text)).numpy()
    np.testing.assert_array_equal(with_text[1], without[1])  # zero row = no text, exactly
    assert np.abs(with_text[[0, 2]] - without[[0, 2]]).max(axis=1).min() > 1e-3
    # the text part, by hand: zero for the empty row, Dense(gelu) -> Dense for the others
    dense1, dense2 = model.query_tower.text_projection.layers
    w1, b1 = (v.numpy() for v in dense1.weights)
    w2, b2 = (v.numpy() for v in dense2.weights)
    expected = _gelu(text @ w1 + b1) @ w2 + b2
    expected[1] = 0.0
    got = model.query_tower.text_part(tf.constant(text)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_synthetic_training_text_is_the_mean_of_the_last_items(fixture):
    model = fixture.model
    table = model.item_tower.text_table.numpy()
    history = np.array([[-1, 0, 1, 2, 3, 4, 5], [-1, -1, -1, -1, -1, -1, 7], [-1] * 7])
    got = model.recent_titles_text(tf.constant(history)).numpy()
    per_position = model.recent_titles_text(tf.constant(history), per_position=True).numpy()
    for row, items in enumerate(history):
        real = items[items >= 0][-USER_TEXT_ITEMS:]
        if len(real) == 0:
            np.testing.assert_array_equal(got[row], 0.0)
            continue
        mean = table[real].sum(axis=0)
        np.testing.assert_allclose(got[row], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    # position t averages the items at (t - 5, t]: position 4 of row 0 holds items 0..3
    window = table[[0, 1, 2, 3]].sum(axis=0)
    np.testing.assert_allclose(per_position[0, 4], window / np.linalg.norm(window), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(per_position[:, -1], got, rtol=1e-5, atol=1e-6)


def test_training_dropout_masks_text_and_history_per_row():
    tower = QueryTower(
        num_users=2,
        user_vocab_size=3,
        embedding_dim=4,
        user_text_dim=3,
        user_text_dropout=0.5,
        user_text_history_dropout=0.5,
    )
    tf.random.set_seed(0)
    inputs = {
        "user": tf.zeros([400], tf.int32),
        "history": tf.ones([400, 2, 4]),
        "history_mask": tf.ones([400, 2], bool),
        "user_text": tf.ones([400, 3]),
    }
    text, keep = tower._text_and_history_keep(inputs, training=True)
    shown = np.abs(text.numpy()).sum(axis=1) > 0
    keep = keep.numpy()
    assert 0.35 < shown.mean() < 0.65  # about half the rows keep their text
    assert (keep[~shown] == 1.0).all()  # a row without text always keeps its history
    assert 0.3 < 1 - keep[shown].mean() < 0.7  # about half of the rows with text lose the history
    text, keep = tower._text_and_history_keep(inputs, training=False)
    assert (keep.numpy() == 1.0).all() and (text.numpy() == 1.0).all()  # inference changes nothing


def test_the_config_sets_both_text_dropouts_of_the_built_query_tower():
    built = make_small_two_tower(
        make_clustered_dataset(), user_text=True, user_text_dropout=0.8, user_text_history_dropout=0.0
    )
    tower = built.model.query_tower
    assert (tower.user_text_dropout, tower.user_text_history_dropout) == (0.8, 0.0)
    inputs = {
        "user": tf.zeros([400], tf.int32),
        "history": tf.ones([400, 2, 8]),
        "history_mask": tf.ones([400, 2], bool),
        "user_text": tf.ones([400, 6]),
    }
    tf.random.set_seed(0)
    text, keep = tower._text_and_history_keep(inputs, training=True)
    assert 0.1 < (np.abs(text.numpy()).sum(axis=1) > 0).mean() < 0.3  # about 20% keep their text
    assert (keep.numpy() == 1.0).all()  # history dropout 0: every row keeps its history
    default = make_small_two_tower(make_clustered_dataset(), user_text=True).model.query_tower
    assert (default.user_text_dropout, default.user_text_history_dropout) == (0.5, 0.3)


def test_user_text_needs_a_precomputed_text_table():
    with pytest.raises(ConfigError, match="user_text=true needs the item text vectors"):
        make_small_two_tower(make_clustered_dataset(), user_text=True, use_text=False)
