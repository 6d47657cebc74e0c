"""Invariants of every history encoder (padding, causality) and the name registry."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.layers import HISTORY_ENCODERS, build_history_encoder
from tfrec_llm.models.layers.history_encoder import HistoryEncoder

ARGUMENTS = {
    "mean": {},
    "cnn": {"filters": 4, "kernel_size": 2, "dilations": (1, 2)},
    "gru": {"units": 4},
    "lstm": {"units": 4},
    "attention": {"max_length": 8, "num_blocks": 2, "num_heads": 2, "width": 4, "dropout": 0.1},
}
WIDTH = 3


def _encoder(name):
    """The encoder with every weight random (non-zero biases: a zero input step is not inert)."""
    keras.utils.set_random_seed(0)
    encoder = build_history_encoder(name, **ARGUMENTS[name])
    encoder(tf.zeros([1, 2, WIDTH]), tf.ones([1, 2], bool))
    rng = np.random.default_rng(5)
    encoder.set_weights([rng.normal(0, 0.5, size=w.shape).astype(np.float32) for w in encoder.get_weights()])
    return encoder


def test_the_registry_names_every_encoder():
    assert sorted(HISTORY_ENCODERS) == sorted(ARGUMENTS)
    assert all(issubclass(cls, HistoryEncoder) for cls in HISTORY_ENCODERS.values())


@pytest.mark.parametrize("name", ARGUMENTS)
def test_left_padding_changes_nothing_and_padded_outputs_are_zero(name):
    rng = np.random.default_rng(0)
    real = rng.normal(size=(1, 4, WIDTH)).astype(np.float32)
    encoder = _encoder(name)
    unpadded = encoder(tf.constant(real), tf.ones([1, 4], bool)).numpy()[0]
    for pad in (1, 3):
        junk = rng.normal(0, 50, size=(1, pad, WIDTH)).astype(np.float32)  # padding content is arbitrary
        padded = np.concatenate([junk, real], axis=1)
        mask = np.array([[False] * pad + [True] * 4])
        out = encoder(tf.constant(padded), tf.constant(mask)).numpy()[0]
        np.testing.assert_allclose(out[pad:], unpadded, atol=1e-5)
        np.testing.assert_array_equal(out[:pad], 0.0)
        query = encoder.pool_last(tf.constant(out[None]), tf.constant(mask)).numpy()[0]
        np.testing.assert_allclose(query, unpadded[-1], atol=1e-5)


@pytest.mark.parametrize("name", ARGUMENTS)
def test_an_empty_history_gives_zeros(name):
    encoder = _encoder(name)
    out = encoder(tf.ones([2, 5, WIDTH]), tf.zeros([2, 5], bool))
    np.testing.assert_array_equal(out.numpy(), 0.0)
    np.testing.assert_array_equal(encoder.pool_last(out, tf.zeros([2, 5], bool)).numpy(), 0.0)


@pytest.mark.parametrize("name", ARGUMENTS)
def test_a_later_item_never_changes_an_earlier_position(name):
    rng = np.random.default_rng(1)
    values = rng.normal(size=(2, 6, WIDTH)).astype(np.float32)
    mask = np.array([[0, 1, 1, 1, 1, 1], [1] * 6], bool)
    encoder = _encoder(name)
    before = encoder(tf.constant(values), tf.constant(mask)).numpy()
    for t in range(1, 6):
        changed = values.copy()
        changed[:, t:] += rng.normal(0, 3, size=changed[:, t:].shape).astype(np.float32)
        after = encoder(tf.constant(changed), tf.constant(mask)).numpy()
        np.testing.assert_allclose(after[:, :t], before[:, :t], atol=1e-6)
        assert np.abs(after[:, t] - before[:, t]).max() > 1e-3  # position t itself does react


@pytest.mark.parametrize("name", ARGUMENTS)
def test_works_inside_a_tf_function_with_unknown_length(name):
    encoder = _encoder(name)
    values = np.random.default_rng(2).normal(size=(2, 5, WIDTH)).astype(np.float32)
    mask = np.array([[0, 0, 1, 1, 1], [1] * 5], bool)
    eager = encoder(tf.constant(values), tf.constant(mask)).numpy()
    graph = tf.function(
        encoder,
        input_signature=[
            tf.TensorSpec([None, None, WIDTH], tf.float32),
            tf.TensorSpec([None, None], tf.bool),
        ],
    )
    np.testing.assert_allclose(graph(tf.constant(values), tf.constant(mask)).numpy(), eager, atol=1e-6)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(
        ConfigError, match=r"unknown history encoder 'rnn'; expected one of \['attention', 'cnn'"
    ):
        build_history_encoder("rnn")


def test_unknown_arguments_name_the_encoder():
    with pytest.raises(ConfigError, match=r"history encoder 'gru': .*filters.*; check its arguments"):
        build_history_encoder("gru", filters=3)
