"""Tests for tfrec_llm.models.layers.causal_conv against hand sums and a numpy convolution."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.layers import CausalConvEncoder


def _ones_encoder(dilations):
    encoder = CausalConvEncoder(
        filters=1, kernel_size=2, dilations=dilations, activation="linear", residual=False
    )
    encoder(tf.zeros([1, 1, 1]), tf.ones([1, 1], bool))
    for conv in encoder.convolutions:
        conv.set_weights([np.ones([2, 1, 1], np.float32), np.zeros([1], np.float32)])
    return encoder


def test_ones_kernel_sums_the_step_and_the_dilated_previous_real_steps():
    # One padded step (holding 50) then items 1, 2, 3, 4.
    values = tf.constant([[[50.0], [1.0], [2.0], [3.0], [4.0]]])
    mask = tf.constant([[False, True, True, True, True]])
    # dilation 1: y[t] = x[t] + x[t-1], padding counts as 0: 1, 3, 5, 7.
    np.testing.assert_allclose(_ones_encoder((1,))(values, mask).numpy()[0, :, 0], [0, 1, 3, 5, 7])
    # dilation 2: y[t] = x[t] + x[t-2]: 1, 2, 1+3, 2+4.
    np.testing.assert_allclose(_ones_encoder((2,))(values, mask).numpy()[0, :, 0], [0, 1, 2, 4, 6])
    # dilations (1, 1): z[t] = y[t] + y[t-1] over y = 1, 3, 5, 7: 1, 4, 8, 12.
    np.testing.assert_allclose(_ones_encoder((1, 1))(values, mask).numpy()[0, :, 0], [0, 1, 4, 8, 12])


def _numpy_causal_conv(x, kernel, bias, dilation):
    """x [L, c_in], kernel [k, c_in, c_out]: y[t] = b + sum_j kernel[j] . x[t - (k-1-j) * dilation]."""
    k = kernel.shape[0]
    y = np.tile(bias, (x.shape[0], 1)).astype(np.float64)
    for t in range(x.shape[0]):
        for j in range(k):
            s = t - (k - 1 - j) * dilation
            if s >= 0:
                y[t] += x[s] @ kernel[j]
    return y


def _numpy_encoder(encoder, x, mask):
    m = mask[:, None].astype(np.float64)
    hidden = x * m
    for i, conv in enumerate(encoder.convolutions):
        kernel, bias = conv.get_weights()
        out = np.maximum(_numpy_causal_conv(hidden, kernel, bias, encoder.dilations[i]), 0.0) * m
        if encoder.residual:
            skip = hidden @ encoder.input_projection.get_weights()[0] if i == 0 else hidden
            out = out + skip
        hidden = out
    return hidden * m


def test_dilated_residual_stack_matches_a_numpy_convolution():
    rng = np.random.default_rng(0)
    encoder = CausalConvEncoder(filters=4, kernel_size=3, dilations=(1, 2), activation="relu", residual=True)
    values = rng.normal(size=(3, 7, 2)).astype(np.float32)
    mask = np.array([[0, 0, 0, 1, 1, 1, 1], [1] * 7, [0, 1, 1, 0, 1, 1, 1]], bool)
    encoder(tf.constant(values), tf.constant(mask))
    assert encoder.input_projection is not None  # d = 2 != filters = 4
    encoder.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in encoder.get_weights()])
    out = encoder(tf.constant(values), tf.constant(mask)).numpy()
    for b in range(3):
        np.testing.assert_allclose(out[b], _numpy_encoder(encoder, values[b], mask[b]), atol=1e-5)


def test_no_projection_when_the_width_already_matches():
    encoder = CausalConvEncoder(filters=3, kernel_size=2, dilations=(1,))
    assert encoder(tf.ones([1, 4, 3]), tf.ones([1, 4], bool)).shape == (1, 4, 3)
    assert encoder.input_projection is None
    assert encoder.compute_output_shape([None, 4, 7]) == tf.TensorShape([None, 4, 3])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"filters": 0}, r"CausalConvEncoder: filters must be a positive integer, got filters=0"),
        ({"kernel_size": 2.5}, r"kernel_size must be a positive integer, got kernel_size=2\.5"),
        ({"dilations": ()}, r"dilations must be a non-empty sequence of positive integers .*dilations=\(\)"),
        ({"dilations": 2}, r"dilations must be a non-empty sequence of positive integers .*dilations=2"),
        ({"dilations": "12"}, r"dilations must be a non-empty sequence .*dilations='12'"),
        ({"dilations": (1, 0)}, r"dilations\[\] must be a positive integer, got dilations\[\]=0"),
        ({"activation": None}, r"activation must be the name of a Keras activation, got None"),
        ({"activation": "nope"}, r"unknown activation='nope'; use a Keras activation name"),
        ({"residual": "yes"}, r"residual must be true or false, got residual='yes'"),
    ],
)
def test_invalid_arguments_are_named(arguments, message):
    with pytest.raises(ConfigError, match=message):
        CausalConvEncoder(**arguments)
