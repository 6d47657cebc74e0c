"""Tests for tfrec_llm.models.retrieval: the loss against a numpy in-batch softmax."""

import numpy as np
import tensorflow as tf

from tfrec_llm.config.choices import VARIANTS
from tfrec_llm.data.tfdata import training_examples
from tfrec_llm.models.retrieval import TwoTowerModel

# The model fields of the ``mean`` variant: the original two-tower (user id, profile, mean-pooled
# history), one example per interaction, in-batch softmax -- the loss these tests check.
_MEAN = {key.split(".", 1)[1]: value for key, value in VARIANTS["mean"].items() if key.startswith("model.")}


def _softmax_loss(q, c, temperature, probability, ids):
    logits = q @ c.T / temperature
    if probability is not None:
        logits = logits - np.log(probability)[None, :]
    if ids is not None:
        same = ids[:, None] == ids[None, :]
        np.fill_diagonal(same, False)
        logits = np.where(same, logits - 1e30, logits)
    logits = logits - logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -np.trace(log_softmax)  # TFRS sums over the batch


def _model_and_batch(make_small_two_tower, dataset, **model_kwargs):
    split, catalog, _, model = make_small_two_tower(dataset, text_seed=0, **model_kwargs)
    ex = training_examples(split.train, catalog, 4)
    batch = {k: tf.constant(v[:16]) for k, v in ex.items()}
    batch["item"] = tf.concat([batch["item"][:15], batch["item"][:1]], axis=0)  # an accidental hit
    batch["item_probability"] = tf.concat(
        [batch["item_probability"][:15], batch["item_probability"][:1]], axis=0
    )
    return model, batch


def test_loss_matches_numpy_with_temperature_logq_and_hit_removal(tiny_dataset, small_two_tower):
    model, batch = _model_and_batch(small_two_tower, tiny_dataset, **{**_MEAN, "temperature": 0.2})
    assert (model.objective, model.loss_name) == ("interaction", "in_batch")
    q = model.query_embedding(batch["user"], batch["history"]).numpy()
    c = model.candidate_embedding(batch["item"]).numpy()
    expected = _softmax_loss(q, c, 0.2, batch["item_probability"].numpy(), batch["item"].numpy())
    got = float(model.compute_loss(batch, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_loss_without_corrections_matches_plain_softmax(tiny_dataset, small_two_tower):
    model, batch = _model_and_batch(
        small_two_tower,
        tiny_dataset,
        **{**_MEAN, "temperature": 1.0, "logq_correction": False, "remove_accidental_hits": False},
    )
    assert (model.objective, model.loss_name) == ("interaction", "in_batch")
    q = model.query_embedding(batch["user"], batch["history"]).numpy()
    c = model.candidate_embedding(batch["item"]).numpy()
    np.testing.assert_allclose(
        float(model.compute_loss(batch)), _softmax_loss(q, c, 1.0, None, None), rtol=1e-4
    )


def test_history_is_embedded_with_the_candidate_tower(tiny_dataset, small_two_tower):
    model, batch = _model_and_batch(small_two_tower, tiny_dataset)
    # Changing an item's text changes both its candidate embedding and every query whose history holds it.
    hist = batch["history"].numpy()
    row = int(np.nonzero((hist >= 0).sum(axis=1) >= 1)[0][0])
    item = int(hist[row][hist[row] >= 0][-1])
    before = model.query_embedding(batch["user"][row : row + 1], batch["history"][row : row + 1]).numpy()
    table = model.item_tower.text_table.numpy()
    table[item] += 5.0
    model.item_tower.text_table.assign(table)
    after = model.query_embedding(batch["user"][row : row + 1], batch["history"][row : row + 1]).numpy()
    assert not np.allclose(before, after)


def test_save_and_load_weights_give_same_outputs(tiny_dataset, small_two_tower, tmp_path):
    model, batch = _model_and_batch(small_two_tower, tiny_dataset)
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    clone = TwoTowerModel.from_config(model.get_config())
    clone.query_embedding(batch["user"][:1], batch["history"][:1])
    clone.candidate_embedding(batch["item"][:1])
    clone.load_weights(path)
    np.testing.assert_allclose(
        clone.query_embedding(batch["user"], batch["history"]).numpy(),
        model.query_embedding(batch["user"], batch["history"]).numpy(),
        atol=1e-6,
    )
    np.testing.assert_allclose(clone.all_candidate_embeddings(), model.all_candidate_embeddings(), atol=1e-6)
