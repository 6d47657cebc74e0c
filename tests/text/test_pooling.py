"""Tests for tfrec_llm.text.pooling: masked mean against a numpy reference and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tfrec_llm  # noqa: F401
from tfrec_llm.models.layers import MaskedMeanPooling as ReExported
from tfrec_llm.text.pooling import MaskedMeanPooling, masked_mean

# Valid positions per row: 5 (no padding), 3, 1, 0 (all masked).
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.int32)


def _numpy_masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Independent float64 reference: per row, the mean of the positions ``mask`` keeps.

    A row with nothing kept is all zeros (the documented choice).
    """
    out = np.zeros((values.shape[0], values.shape[2]))
    for row in range(values.shape[0]):
        kept = values[row][mask[row].astype(bool)].astype(np.float64)
        if len(kept):
            out[row] = kept.mean(axis=0)
    return out


def _values(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(4, 5, 3)).astype(np.float32)


def test_mean_by_hand():
    # Row 0: (1 + 6) / 2 = 3.5 and (10 + 0) / 2 = 5 (the middle position is padding);
    # row 1: only position 1 -> (2, 20).
    values = tf.constant([[[1.0, 10.0], [2.0, 20.0], [6.0, 0.0]]] * 2)
    mask = tf.constant([[True, False, True], [False, True, False]])
    np.testing.assert_array_equal(masked_mean(values, mask).numpy(), [[3.5, 5.0], [2.0, 20.0]])


def test_layer_equals_numpy_reference_including_an_all_masked_row():
    values = _values()
    got = MaskedMeanPooling()(tf.constant(values), tf.constant(MASK)).numpy()
    assert got.dtype == np.float32 and got.shape == (4, 3)
    np.testing.assert_allclose(got, _numpy_masked_mean(values, MASK), rtol=0, atol=1e-6)


def test_all_masked_row_is_exactly_zero_not_nan():
    got = MaskedMeanPooling()(tf.constant(_values()), tf.constant(MASK)).numpy()
    np.testing.assert_array_equal(got[3], np.zeros(3, np.float32))


def test_padding_values_never_change_the_output():
    values = _values()
    garbage = values.copy()
    garbage[MASK == 0] = np.random.default_rng(1).uniform(-1e6, 1e6, size=(int((MASK == 0).sum()), 3))
    pool = MaskedMeanPooling()
    np.testing.assert_array_equal(
        pool(tf.constant(garbage), tf.constant(MASK)).numpy(),
        pool(tf.constant(values), tf.constant(MASK)).numpy(),
    )


def test_extra_padding_columns_never_change_the_output():
    values = _values()
    wider = np.concatenate([values, np.full((4, 3, 3), 7.0, np.float32)], axis=1)
    wider_mask = np.concatenate([MASK, np.zeros((4, 3), np.int32)], axis=1)
    np.testing.assert_array_equal(
        masked_mean(tf.constant(wider), tf.constant(wider_mask)).numpy(),
        masked_mean(tf.constant(values), tf.constant(MASK)).numpy(),
    )


@pytest.mark.parametrize("dtype", [tf.bool, tf.int32, tf.int64, tf.float32])
def test_mask_dtypes_give_identical_results(dtype):
    values = tf.constant(_values())
    expected = masked_mean(values, tf.constant(MASK)).numpy()
    np.testing.assert_array_equal(masked_mean(values, tf.cast(MASK, dtype)).numpy(), expected)


def test_float64_values_stay_float64():
    values = _values().astype(np.float64)
    got = masked_mean(tf.constant(values), tf.constant(MASK)).numpy()
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, _numpy_masked_mean(values, MASK), rtol=0, atol=1e-12)


def test_graph_mode_with_unknown_shapes_equals_eager():
    spec = [tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([None, None], tf.int32)]
    graph = tf.function(masked_mean, input_signature=spec)
    values = tf.constant(_values())
    np.testing.assert_array_equal(
        graph(values, tf.constant(MASK)).numpy(), masked_mean(values, tf.constant(MASK)).numpy()
    )


def test_models_layers_re_exports_the_same_class():
    assert ReExported is MaskedMeanPooling


def test_layer_has_no_weights_and_a_base_only_config():
    pool = MaskedMeanPooling(name="history_pool")
    pool(tf.constant(_values()), tf.constant(MASK))
    assert pool.weights == []
    assert pool.get_config() == {"name": "history_pool", "trainable": True, "dtype": "float32"}
