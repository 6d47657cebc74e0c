"""Tests for tfrec_llm.models.layers.causal_attention against a numpy pre-LN Transformer."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.layers import CausalAttentionEncoder
from tfrec_llm.models.layers.causal_attention import LAYER_NORM_EPSILON

_erf = np.vectorize(math.erf)


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x, norm):
    gamma, beta = norm.get_weights()
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPSILON) * gamma + beta


def _heads(x, dense):
    """A query/key/value projection of MultiHeadAttention: x [L, width] -> [heads, L, key_dim]."""
    kernel, bias = dense.get_weights()  # [width, heads, key_dim], [heads, key_dim]
    return np.einsum("td,dhk->htk", x, kernel) + bias[:, None]


def _numpy_encoder(encoder, x, mask):
    """One history x [L, d]: returns (outputs [L, width], last block's weights [heads, L, L])."""
    m = mask[:, None].astype(np.float64)
    length = len(mask)
    if encoder.input_projection is not None:
        w, b = encoder.input_projection.get_weights()
        x = (x * m) @ w + b
    positions = np.clip(np.cumsum(mask) - 1, 0, None)
    h = (x + encoder.position_embedding.get_weights()[0][positions]) * m
    allowed = np.tril(np.ones([length, length], bool)) & (mask[None, :] | np.eye(length, dtype=bool))
    for i in range(encoder.num_blocks):
        mha = encoder.attentions[i]
        a = _layer_norm(h, encoder.attention_norms[i])
        q, k, v = (_heads(a, dense) for dense in (mha._query_dense, mha._key_dense, mha._value_dense))
        scores = np.einsum("hqk,hsk->hqs", q, k) / math.sqrt(q.shape[-1])
        scores = np.where(allowed[None], scores, -np.inf)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = np.einsum("hqs,hsk->hqk", weights, v)
        kernel, bias = mha._output_dense.get_weights()  # [heads, key_dim, width], [width]
        h = h + np.einsum("hqk,hkd->qd", context, kernel) + bias
        w1, b1 = encoder.ffn_in[i].get_weights()
        w2, b2 = encoder.ffn_out[i].get_weights()
        h = (h + _gelu(_layer_norm(h, encoder.ffn_norms[i]) @ w1 + b1) @ w2 + b2) * m
    return _layer_norm(h, encoder.final_norm) * m, weights


def _randomised(values, mask, **arguments):
    encoder = CausalAttentionEncoder(dropout=0.0, **arguments)
    encoder(tf.constant(values), tf.constant(mask))
    rng = np.random.default_rng(7)
    encoder.set_weights([rng.normal(0, 0.5, size=w.shape).astype(np.float32) for w in encoder.get_weights()])
    return encoder


VALUES = np.random.default_rng(0).normal(size=(3, 5, 3)).astype(np.float32)
MASK = np.array([[0, 0, 1, 1, 1], [1] * 5, [0, 1, 1, 0, 1]], bool)


@pytest.mark.parametrize(
    "arguments",
    [
        {"max_length": 5, "num_blocks": 1, "num_heads": 1, "width": 4},  # single head, projected input
        {"max_length": 8, "num_blocks": 2, "num_heads": 2, "width": 4},  # two heads, two blocks
    ],
)
def test_matches_a_numpy_pre_layer_norm_transformer(arguments):
    encoder = _randomised(VALUES, MASK, **arguments)
    assert encoder.input_projection is not None  # d = 3 != width = 4
    out, attention = encoder(tf.constant(VALUES), tf.constant(MASK), return_attention=True)
    assert out.shape == (3, 5, 4) and attention.shape == (3, arguments["num_heads"], 5)
    for b in range(3):
        expected, weights = _numpy_encoder(encoder, VALUES[b].astype(np.float64), MASK[b])
        np.testing.assert_allclose(out.numpy()[b], expected, atol=1e-4)
        # the last real position is the last column in every row here
        np.testing.assert_allclose(attention.numpy()[b], weights[:, -1], atol=1e-5)


def test_attention_weights_cover_only_real_items_and_sum_to_one():
    encoder = _randomised(VALUES, MASK, max_length=5, num_blocks=1, num_heads=2, width=4)
    mask = np.array([[0, 0, 1, 1, 0], [0] * 5, [1] * 5], bool)
    _, attention = encoder(tf.constant(VALUES), tf.constant(mask), return_attention=True)
    attention = attention.numpy()
    np.testing.assert_array_equal(attention[0][:, [0, 1, 4]], 0.0)  # padding and after the last item
    np.testing.assert_allclose(attention[0].sum(-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(attention[1], 0.0)  # empty history
    np.testing.assert_allclose(attention[2].sum(-1), 1.0, atol=1e-6)


def test_dropout_acts_only_in_training():
    encoder = CausalAttentionEncoder(max_length=5, num_blocks=1, num_heads=1, width=3, dropout=0.5)
    sequence, mask = tf.constant(VALUES), tf.constant(MASK)
    inference = encoder(sequence, mask).numpy()
    np.testing.assert_array_equal(encoder(sequence, mask, training=False).numpy(), inference)
    assert encoder.input_projection is None  # d == width
    tf.random.set_seed(0)
    assert np.abs(encoder(sequence, mask, training=True).numpy() - inference).max() > 1e-3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"max_length": 0},
            r"CausalAttentionEncoder: max_length must be a positive integer, got max_length=0",
        ),
        ({"num_blocks": -1}, r"num_blocks must be a positive integer, got num_blocks=-1"),
        ({"num_heads": 0}, r"num_heads must be a positive integer, got num_heads=0"),
        ({"width": None}, r"width must be a positive integer, got width=None"),
        ({"dropout": -0.5}, r"dropout must be a number in \[0, 1\), got dropout=-0\.5"),
        ({"width": 6, "num_heads": 4}, r"width must be a multiple of num_heads, got width=6 and num_heads=4"),
    ],
)
def test_invalid_arguments_are_named(arguments, message):
    with pytest.raises(ConfigError, match=message):
        CausalAttentionEncoder(**arguments)


def test_histories_longer_than_max_length_are_refused_at_build():
    encoder = CausalAttentionEncoder(max_length=4, num_blocks=1, num_heads=1, width=3)
    with pytest.raises(ConfigError, match=r"histories of length 5 exceed max_length=4; raise max_length"):
        encoder(tf.constant(VALUES), tf.constant(MASK))
