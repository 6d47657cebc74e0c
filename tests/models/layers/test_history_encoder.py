"""Tests for tfrec_llm.models.layers.history_encoder: masking helpers and argument checks."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.layers.history_encoder import (
    HistoryEncoder,
    check_positive_int,
    check_rate,
    last_position,
    zero_padding,
)


def test_last_position_picks_the_last_real_step_and_zeros_for_an_empty_row():
    outputs = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)  # [batch, L, 2]
    mask = np.array([[False, True, True], [True, True, True], [True, False, False], [False] * 3])
    got = last_position(tf.constant(outputs), tf.constant(mask)).numpy()
    np.testing.assert_array_equal(got, [outputs[0, 2], outputs[1, 2], outputs[2, 0], [0.0, 0.0]])


def test_last_position_keeps_trailing_axes():
    outputs = np.ones([2, 3, 2, 4], np.float32)
    got = last_position(tf.constant(outputs), tf.constant([[True, True, False], [False] * 3]))
    assert got.shape == (2, 2, 4)
    np.testing.assert_array_equal(got.numpy(), [np.ones([2, 4]), np.zeros([2, 4])])


def test_zero_padding_zeroes_the_masked_steps_only():
    values = np.full([1, 3, 2], 7.0, np.float32)
    got = zero_padding(tf.constant(values), tf.constant([[0, 1, 1]])).numpy()
    np.testing.assert_array_equal(got, [[[0, 0], [7, 7], [7, 7]]])


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", None])
def test_check_positive_int_names_the_argument_and_value(value):
    with pytest.raises(ConfigError, match=rf"Enc: units must be a positive integer, got units={value!r}"):
        check_positive_int("Enc", "units", value)


@pytest.mark.parametrize("value", [-0.1, 1.0, True, "0.1"])
def test_check_rate_names_the_argument_and_value(value):
    with pytest.raises(ConfigError, match=r"Enc: dropout must be a number in \[0, 1\), got dropout="):
        check_rate("Enc", "dropout", value)


def test_checks_return_plain_python_numbers():
    assert check_positive_int("Enc", "units", np.int64(3)) == 3
    assert type(check_positive_int("Enc", "units", np.int64(3))) is int
    assert check_rate("Enc", "dropout", 0) == 0.0


def test_the_base_encoder_is_the_identity_with_padding_zeroed():
    sequence = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2) + 1.0
    mask = np.array([[False, True, True], [False, False, True]])
    out = HistoryEncoder()(tf.constant(sequence), tf.constant(mask)).numpy()
    np.testing.assert_array_equal(out, sequence * mask[..., None])
    # so the query of a history is its last real item
    np.testing.assert_array_equal(last_position(out, mask).numpy(), sequence[:, -1])
