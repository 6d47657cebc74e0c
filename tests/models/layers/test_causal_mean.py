"""Tests for tfrec_llm.models.layers.causal_mean against a numpy cumulative mean."""

import numpy as np
import tensorflow as tf

from tfrec_llm.models.layers import CumulativeMeanEncoder, MaskedMeanPooling


def _numpy_cumulative_mean(values, mask):
    out = np.zeros_like(values)
    for b in range(values.shape[0]):
        for t in range(values.shape[1]):
            real = [values[b, s] for s in range(t + 1) if mask[b, s]]
            if mask[b, t]:
                out[b, t] = np.mean(real, axis=0)
    return out


def test_hand_computed_cumulative_mean():
    # items 2, 4, 9 after one padded step (holding 100): means 2, (2+4)/2 = 3, (2+4+9)/3 = 5.
    values = tf.constant([[[100.0], [2.0], [4.0], [9.0]]])
    out = CumulativeMeanEncoder()(values, tf.constant([[False, True, True, True]]))
    np.testing.assert_allclose(out.numpy()[0, :, 0], [0.0, 2.0, 3.0, 5.0], atol=1e-6)


def test_matches_the_numpy_cumulative_mean_with_holes_and_empty_rows():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 6, 3)).astype(np.float32)
    mask = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]], bool)
    out = CumulativeMeanEncoder()(tf.constant(values), tf.constant(mask)).numpy()
    np.testing.assert_allclose(out, _numpy_cumulative_mean(values, mask), atol=1e-6)


def test_last_position_equals_masked_mean_pooling_of_the_whole_history():
    rng = np.random.default_rng(1)
    values = tf.constant(rng.normal(size=(3, 5, 4)).astype(np.float32))
    mask = tf.constant(np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], bool))
    encoder = CumulativeMeanEncoder()
    pooled = encoder.pool_last(encoder(values, mask), mask).numpy()
    np.testing.assert_allclose(pooled, MaskedMeanPooling()(values, mask).numpy(), atol=1e-6)
    np.testing.assert_array_equal(pooled[2], np.zeros(4))


def test_has_no_weights_and_keeps_the_width():
    encoder = CumulativeMeanEncoder()
    assert encoder(tf.ones([1, 2, 5]), tf.ones([1, 2], bool)).shape == (1, 2, 5)
    assert not encoder.weights
    assert encoder.compute_output_shape([None, 2, 5]) == tf.TensorShape([None, 2, 5])
