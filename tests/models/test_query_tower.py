"""Tests for tfrec_llm.models.query_tower: history encoders, every-position queries, user dropout."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.config.choices import HISTORY_ENCODERS
from tfrec_llm.errors import ConfigError
from tfrec_llm.models.query_tower import QueryTower

LENGTH = 5
DIM = 4
ENCODERS = {
    "mean": {"name": "mean"},
    "cnn": {"name": "cnn", "filters": 3, "kernel_size": 2, "dilations": [1, 2]},
    "gru": {"name": "gru", "units": 3, "dropout": 0.0},
    "lstm": {"name": "lstm", "units": 3, "dropout": 0.0},
    "attention": {"name": "attention", "max_length": 8, "num_blocks": 2, "num_heads": 2, "width": 4, "dropout": 0.0},
}  # fmt: skip


def test_every_configurable_encoder_has_a_case():
    assert sorted(ENCODERS) == sorted(HISTORY_ENCODERS)


def _tower(encoder, **kwargs):
    """A tower with ids and a profile, every float weight random (non-zero biases)."""
    keras.utils.set_random_seed(0)
    tower = QueryTower(
        num_users=3,
        user_vocab_size=4,
        profile_sizes=(3,),
        embedding_dim=DIM,
        history_encoder=encoder,
        **kwargs,
    )
    tower.set_tables(np.array([1, 2, 3, 0]), np.array([[1], [2], [1], [0]]))
    tower(_inputs(np.ones((1, LENGTH), bool)))  # builds every weight
    rng = np.random.default_rng(7)
    for weight in tower.trainable_weights:
        weight.assign(rng.normal(0.0, 0.5, size=weight.shape).astype(np.float32))
    return tower


def _inputs(mask, users=None, seed=1):
    """History [batch, L, DIM] (padding holds noise, which must not matter) + mask + users."""
    mask = np.asarray(mask, bool)
    history = np.random.default_rng(seed).normal(size=(*mask.shape, DIM)).astype(np.float32)
    users = np.arange(len(mask)) % 4 if users is None else np.asarray(users)
    return {
        "user": tf.constant(users, tf.int32),
        "history": tf.constant(history),
        "history_mask": tf.constant(mask),
    }


# rows: full; 3 real items; 1 real item; empty. Users 0, 1, 2 and 3 (the unknown user).
MASK = np.array(
    [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
    bool,
)


def _cut_after(inputs, t):
    """The histories cut after column t, left-padded back to the same length."""
    history, mask = inputs["history"].numpy(), inputs["history_mask"].numpy()
    shift = LENGTH - 1 - t
    cut_history = np.zeros_like(history)
    cut_mask = np.zeros_like(mask)
    cut_history[:, shift:] = history[:, : t + 1]
    cut_mask[:, shift:] = mask[:, : t + 1]
    return {
        "user": inputs["user"],
        "history": tf.constant(cut_history),
        "history_mask": tf.constant(cut_mask),
    }


@pytest.mark.parametrize("name", ENCODERS)
def test_every_position_equals_call_on_the_history_cut_after_it(name):
    tower = _tower(ENCODERS[name])
    inputs = _inputs(MASK)
    positions = tower.encode_positions(inputs).numpy()
    assert positions.shape == (4, LENGTH, DIM)
    checked = 0
    for t in range(LENGTH):
        expected = tower(_cut_after(inputs, t)).numpy()
        for row in np.flatnonzero(MASK[:, t]):
            np.testing.assert_allclose(positions[row, t], expected[row], atol=1e-5)
            checked += 1
    assert checked == int(MASK.sum())
    # the last column is the query of the whole history
    full = tower(inputs).numpy()
    np.testing.assert_allclose(positions[:3, -1], full[:3], atol=1e-5)
    # the user part matters: the same history with other users gives other queries
    other = tower.encode_positions({**inputs, "user": tf.constant([1, 2, 0, 0])}).numpy()
    assert not np.allclose(other[0, -1], positions[0, -1], atol=1e-3)


@pytest.mark.parametrize("name", ENCODERS)
def test_padded_positions_are_zero_and_more_left_padding_changes_nothing(name):
    tower = _tower(ENCODERS[name])
    inputs = _inputs(MASK)
    positions = tower.encode_positions(inputs).numpy()
    np.testing.assert_array_equal(positions[~MASK], 0.0)
    norms = np.linalg.norm(positions[MASK], axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)

    extra = 3
    junk = np.random.default_rng(3).normal(0, 50, size=(4, extra, DIM)).astype(np.float32)
    padded = {
        "user": inputs["user"],
        "history": tf.constant(np.concatenate([junk, inputs["history"].numpy()], axis=1)),
        "history_mask": tf.constant(np.concatenate([np.zeros((4, extra), bool), MASK], axis=1)),
    }
    np.testing.assert_allclose(tower.encode_positions(padded).numpy()[:, extra:], positions, atol=1e-5)
    np.testing.assert_allclose(tower(padded).numpy(), tower(inputs).numpy(), atol=1e-5)


def test_mean_pooling_tower_has_no_encode_positions():
    tower = QueryTower(num_users=2, user_vocab_size=3, embedding_dim=DIM)
    with pytest.raises(ConfigError, match="needs a history encoder"):
        tower.encode_positions(_inputs(MASK[:2], users=[0, 1]))
    # an encoder is ignored without the history: still no encode_positions
    tower = QueryTower(
        num_users=2, user_vocab_size=3, embedding_dim=DIM, use_history=False, history_encoder=ENCODERS["gru"]
    )
    assert tower.encoder is None
    with pytest.raises(ConfigError, match="needs a history encoder"):
        tower.encode_positions(_inputs(MASK[:2], users=[0, 1]))


@pytest.mark.parametrize("name", [None, "gru", "attention"])
def test_history_weights_sum_to_one_over_real_items_and_zero_at_padding(name):
    tower = _tower(None if name is None else ENCODERS[name])
    weights = tower.history_weights(_inputs(MASK)).numpy()
    assert weights.shape == (4, LENGTH)
    np.testing.assert_array_equal(weights[~MASK], 0.0)
    np.testing.assert_allclose(weights[:3].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(weights[3], 0.0)  # the empty history
    assert (weights >= 0).all()
    counts = MASK.sum(axis=1, keepdims=True)
    uniform = np.divide(MASK, counts, out=np.zeros(MASK.shape), where=counts > 0)
    if name == "attention":
        # the attention weights depend on the items; not the uniform average
        assert not np.allclose(weights[0], uniform[0], atol=1e-3)
    else:
        np.testing.assert_allclose(weights, uniform, atol=1e-6)


def test_attention_history_weights_ignore_the_padding_content():
    tower = _tower(ENCODERS["attention"])
    a = tower.history_weights(_inputs(MASK, seed=1)).numpy()
    inputs = _inputs(MASK, seed=1)
    history = inputs["history"].numpy()
    history[~MASK] = 100.0
    b = tower.history_weights({**inputs, "history": tf.constant(history)}).numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


USERS = 4000
RATE = 0.3
# Hoeffding: P(|fraction - RATE| >= TOLERANCE) <= 2 exp(-2 USERS TOLERANCE^2) ~ 5.5e-6.
TOLERANCE = 0.04
assert 2 * math.exp(-2 * USERS * TOLERANCE**2) < 1e-5


@pytest.mark.parametrize(
    "encoder", [None, ENCODERS["gru"], ENCODERS["attention"]], ids=["mean", "gru", "attention"]
)
def test_user_dropout_replaces_that_share_of_users_by_the_unknown_user_in_training(encoder):
    tower = _tower(encoder, user_dropout=RATE)  # the encoders' own dropout is 0
    one = np.ones((1, LENGTH), bool)
    known = tower(_inputs(one, users=[0]), training=False).numpy()[0]
    unknown = tower(_inputs(one, users=[3]), training=False).numpy()[0]
    assert not np.allclose(known, unknown, atol=1e-3)

    inputs = _inputs(np.ones((USERS, LENGTH), bool), users=np.zeros(USERS))
    inputs["history"] = tf.tile(_inputs(one)["history"], [USERS, 1, 1])  # many copies of one user
    keras.utils.set_random_seed(1)
    queries = tower(inputs, training=True).numpy()
    is_unknown = np.abs(queries - unknown).max(axis=1) < 1e-5
    is_known = np.abs(queries - known).max(axis=1) < 1e-5
    assert (is_unknown ^ is_known).all(), "each query is the user's or the unknown user's"
    assert abs(is_unknown.mean() - RATE) < TOLERANCE
    if encoder is not None:  # every position of a row is dropped together (one draw per row)
        known_positions = tower.encode_positions(_inputs(one, users=[0]), training=False).numpy()
        unknown_positions = tower.encode_positions(_inputs(one, users=[3]), training=False).numpy()
        positions = tower.encode_positions(inputs, training=True).numpy()
        dropped = np.abs(positions - unknown_positions).max(axis=(1, 2)) < 1e-5
        kept = np.abs(positions - known_positions).max(axis=(1, 2)) < 1e-5
        assert (dropped ^ kept).all()
        assert abs(dropped.mean() - RATE) < TOLERANCE

    # no user is dropped outside training
    for training in (False, None):
        np.testing.assert_allclose(
            tower(inputs, training=training).numpy(), np.tile(known, (USERS, 1)), atol=1e-5
        )


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, True])
def test_invalid_user_dropout_raises(rate):
    with pytest.raises(ConfigError, match="user_dropout must be a number in"):
        QueryTower(num_users=2, user_vocab_size=3, embedding_dim=DIM, user_dropout=rate)


def test_history_encoder_errors():
    with pytest.raises(ConfigError, match="history_encoder needs a 'name'"):
        QueryTower(num_users=2, user_vocab_size=3, history_encoder={"units": 4})
    with pytest.raises(ConfigError, match="unknown history encoder 'transformer'"):
        QueryTower(num_users=2, user_vocab_size=3, history_encoder={"name": "transformer"})
    with pytest.raises(ConfigError, match="history encoder 'gru'"):
        QueryTower(num_users=2, user_vocab_size=3, history_encoder={"name": "gru", "filters": 4})


@pytest.mark.parametrize("name", ["cnn", "attention"])
def test_config_with_an_encoder_round_trips_to_the_same_outputs(name, keras_testing):
    tower = _tower(ENCODERS[name], user_dropout=0.2)
    arguments = {"history_encoder": ENCODERS[name], "user_dropout": 0.2, "embedding_dim": DIM}
    config = keras_testing.assert_config_round_trip(tower, arguments)
    clone = QueryTower.from_config(config)
    inputs = _inputs(MASK)
    clone(inputs)
    clone.set_weights(tower.get_weights())
    np.testing.assert_allclose(clone(inputs).numpy(), tower(inputs).numpy(), atol=1e-6)
    np.testing.assert_allclose(
        clone.encode_positions(inputs).numpy(), tower.encode_positions(inputs).numpy(), atol=1e-6
    )


def test_mean_pooling_tower_config_has_no_new_keys():
    config = QueryTower(num_users=2, user_vocab_size=3, embedding_dim=DIM).get_config()
    assert "history_encoder" not in config and "user_dropout" not in config
