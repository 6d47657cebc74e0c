"""Tests for tfrec_llm.models.text_adaptors and their wiring into the towers, against numpy."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.text_adaptors import AlignmentLoss, TextMoEAdaptor, TextWhitening


def _correlated(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) + 3.0).astype(np.float32)


def test_whitened_vectors_have_zero_mean_and_identity_covariance():
    x = _correlated(400, 6)
    assert np.abs(np.cov(x, rowvar=False) - np.eye(6)).max() > 0.5  # far from white before
    layer = TextWhitening(6, epsilon=1e-9)
    np.testing.assert_allclose(layer(tf.constant(x)).numpy(), x, atol=1e-6)  # identity before adapt
    layer.adapt(x)
    white = layer(tf.constant(x)).numpy().astype(np.float64)
    np.testing.assert_allclose(white.mean(axis=0), np.zeros(6), atol=1e-3)
    np.testing.assert_allclose(np.cov(white, rowvar=False, bias=True), np.eye(6), atol=1e-3)
    assert not layer.trainable_weights  # a fixed layer


def test_whitening_epsilon_floors_near_null_directions():
    x = _correlated(200, 4)
    x = np.concatenate([x, x[:, :1] * 2.0], axis=1)  # a 5th, linearly dependent column
    layer = TextWhitening(5, epsilon=0.01)
    layer.adapt(x)
    white = layer(tf.constant(x)).numpy()
    assert np.isfinite(white).all() and np.abs(white).max() < 100
    with pytest.raises(ConfigError, match="TextWhitening.adapt"):
        layer.adapt(x[:, :4])


def test_moe_output_is_the_gate_weighted_sum_of_the_expert_projections():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    layer = TextMoEAdaptor(experts=3, units=2)
    layer(tf.constant(x))
    layer.biases.assign(rng.normal(size=(3, 2)).astype(np.float32))
    kernels, biases, gate = (w.numpy().astype(np.float64) for w in (layer.kernels, layer.biases, layer.gate))
    logits = x @ gate
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    expected = sum(weights[:, [k]] * (x @ kernels[k] + biases[k]) for k in range(3))
    np.testing.assert_allclose(layer(tf.constant(x)).numpy(), expected, atol=1e-5)
    # any leading shape, and the gelu activation applied after the mixing
    gelu = TextMoEAdaptor(experts=3, units=2, activation="gelu")
    gelu(tf.constant(x))
    gelu.set_weights(layer.get_weights())
    out = gelu(tf.constant(x[np.newaxis])).numpy()[0]
    np.testing.assert_allclose(out, tf.nn.gelu(expected.astype(np.float32)).numpy(), atol=1e-5)
    with pytest.raises(ConfigError, match="experts must be >= 1"):
        TextMoEAdaptor(experts=0, units=2)


def test_alignment_loss_equals_the_hand_computed_value_and_stops_the_id_gradient():
    text = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    ids = tf.constant([[1.0, 1.0], [0.0, -1.0]])
    # cosines 1/sqrt(2) and -1: 0.5 * mean(1 - 0.70711, 1 + 1)
    assert AlignmentLoss(0.5)(text, ids).numpy() == pytest.approx(0.5 * (1 - 2**-0.5 + 2) / 2, rel=1e-6)
    # squared differences (0, 1) and (0, 9), mean per item 0.5 and 4.5
    assert AlignmentLoss(0.5, kind="mse")(text, ids).numpy() == pytest.approx(0.5 * (0.5 + 4.5) / 2)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([text, ids])
        loss = AlignmentLoss(1.0)(text, ids)
    assert tape.gradient(loss, ids) is None and tape.gradient(loss, text) is not None
    with pytest.raises(ConfigError, match="kind must be one of"):
        AlignmentLoss(1.0, kind="l1")


def test_config_switches_reach_the_towers_and_the_loss(tiny_dataset, small_two_tower):
    small = small_two_tower(tiny_dataset, text_whitening=True, text_experts=3, text_alignment=0.5)
    model, tower = small.model, small.model.item_tower
    assert isinstance(tower.text_projection.layers[0], TextMoEAdaptor)
    assert tower.get_config()["text_whitening"] and tower.get_config()["text_experts"] == 3
    assert model.get_config()["text_alignment"] == 0.5
    # the whitening was fitted on the catalog's text table
    white = tower.whitening(tf.constant(small.text_embeddings)).numpy().astype(np.float64)
    np.testing.assert_allclose(np.cov(white, rowvar=False, bias=True), np.eye(6), atol=0.05)
    # the model's alignment term over the distinct items (padding ignored), against numpy
    items = tf.constant([[3, 1, -1], [1, 0, 3]])
    unique = tf.constant([3, 1, 0])
    text, ids = tower.text_part(unique).numpy(), tower.id_part(unique).numpy()
    cosine = (text * ids).sum(1) / np.linalg.norm(text, axis=1) / np.linalg.norm(ids, axis=1)
    assert model.alignment_loss(items).numpy() == pytest.approx(0.5 * np.mean(1 - cosine), rel=1e-5)
    # defaults leave the configs as they were
    plain = small_two_tower(tiny_dataset).model
    assert "text_alignment" not in plain.get_config() and plain.alignment is None
    assert not {"text_whitening", "text_experts"} & set(plain.item_tower.get_config())


def test_the_alignment_term_is_added_to_the_training_loss(tiny_dataset, small_two_tower):
    model = small_two_tower(
        tiny_dataset, text_alignment=2.0, objective="interaction", loss="full_softmax"
    ).model
    features = {
        "user": tf.constant([0, 1]),
        "history": tf.constant([[0, 1, -1, -1], [2, 3, 4, -1]]),
        "item": tf.constant([2, 5]),
        "item_probability": tf.constant([0.1, 0.1]),
    }
    total = model.compute_loss(features, training=False).numpy()
    retrieval = model._retrieval_loss(features, training=False).numpy()
    assert total == pytest.approx(retrieval + model.alignment_loss(features["item"]).numpy(), rel=1e-5)
    with pytest.raises(ConfigError, match="text_alignment > 0 needs"):
        small_two_tower(tiny_dataset, text_alignment=1.0, use_ids=False)
