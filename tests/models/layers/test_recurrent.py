"""Tests for tfrec_llm.models.layers.recurrent: numpy recurrences and Keras' own RNN layers."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.layers import GRUEncoder, LSTMEncoder


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_gru(x, kernel, recurrent, bias):
    """Keras GRU (reset_after=True, gates z, r, h): the states after each step of x [n, d]."""
    units = recurrent.shape[0]
    h = np.zeros(units)
    states = []
    for step in x:
        xz, xr, xh = np.split(step @ kernel + bias[0], 3)
        rz, rr, rh = np.split(h @ recurrent + bias[1], 3)
        z, r = _sigmoid(xz + rz), _sigmoid(xr + rr)
        h = z * h + (1 - z) * np.tanh(xh + r * rh)
        states.append(h)
    return np.array(states)


def _numpy_lstm(x, kernel, recurrent, bias):
    """Keras LSTM (gates i, f, c, o): the outputs after each step of x [n, d]."""
    units = recurrent.shape[0]
    h, c = np.zeros(units), np.zeros(units)
    outputs = []
    for step in x:
        i, f, g, o = np.split(step @ kernel + h @ recurrent + bias, 4)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.array(outputs)


CASES = [(GRUEncoder, _numpy_gru, keras.layers.GRU), (LSTMEncoder, _numpy_lstm, keras.layers.LSTM)]


def _randomised(cls, values, mask, seed=0):
    encoder = cls(units=3)
    encoder(tf.constant(values), tf.constant(mask))
    rng = np.random.default_rng(seed)
    encoder.set_weights([rng.normal(0, 0.7, size=w.shape).astype(np.float32) for w in encoder.get_weights()])
    return encoder


@pytest.mark.parametrize(("cls", "reference", "_"), CASES)
def test_real_steps_match_a_numpy_recurrence_over_the_unpadded_items(cls, reference, _):
    rng = np.random.default_rng(1)
    values = rng.normal(size=(3, 6, 2)).astype(np.float32)
    values[0, :2] = 40.0  # padding content must not matter
    mask = np.array([[0, 0, 1, 1, 1, 1], [1] * 6, [0] * 6], bool)
    encoder = _randomised(cls, values, mask)
    out = encoder(tf.constant(values), tf.constant(mask)).numpy()
    kernel, recurrent, bias = encoder.rnn.get_weights()
    for b in range(3):
        real = values[b][mask[b]]
        expected = np.zeros([6, 3])
        if len(real):
            expected[mask[b]] = reference(real.astype(np.float64), kernel, recurrent, bias)
        np.testing.assert_allclose(out[b], expected, atol=1e-5)
    pooled = encoder.pool_last(tf.constant(out), tf.constant(mask)).numpy()
    np.testing.assert_allclose(pooled[0], reference(values[0, 2:], kernel, recurrent, bias)[-1], atol=1e-5)


@pytest.mark.parametrize(("cls", "_", "keras_class"), CASES)
def test_padded_history_matches_keras_rnn_on_the_unpadded_sequence(cls, _, keras_class):
    rng = np.random.default_rng(2)
    real = rng.normal(size=(1, 4, 2)).astype(np.float32)
    padded = np.concatenate([rng.normal(size=(1, 3, 2)).astype(np.float32), real], axis=1)
    mask = np.array([[False] * 3 + [True] * 4])
    encoder = _randomised(cls, padded, mask, seed=3)
    plain = keras_class(3, return_sequences=True)
    plain(tf.constant(real))
    plain.set_weights(encoder.rnn.get_weights())
    out = encoder(tf.constant(padded), tf.constant(mask)).numpy()
    np.testing.assert_allclose(out[:, 3:], plain(tf.constant(real)).numpy(), atol=1e-5)
    np.testing.assert_array_equal(out[:, :3], 0.0)


def test_output_width_is_units():
    encoder = LSTMEncoder(units=5)
    assert encoder(tf.ones([2, 3, 4]), tf.ones([2, 3], bool)).shape == (2, 3, 5)
    assert encoder.compute_output_shape([None, 3, 4]) == tf.TensorShape([None, 3, 5])


@pytest.mark.parametrize("cls", [GRUEncoder, LSTMEncoder])
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"units": 0}, r"units must be a positive integer, got units=0"),
        ({"units": "8"}, r"units must be a positive integer, got units='8'"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got dropout=1\.0"),
    ],
)
def test_invalid_arguments_are_named(cls, arguments, message):
    with pytest.raises(ConfigError, match=f"{cls.__name__}: " + message):
        cls(**arguments)
