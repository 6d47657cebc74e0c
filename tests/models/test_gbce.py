"""gBCE (gSASRec) against numpy: its exponent, its loss, its negatives, and a model's loss on a
batch with the negatives fixed; plus a model trained with it learning a sequence that
popularity misses."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError
from tfrec_llm.models import losses
from tfrec_llm.models.losses import gbce_beta, gbce_losses, sample_negatives


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.log1p(np.exp(-x))


@pytest.mark.parametrize(
    ("negatives", "items", "t", "expected"),
    [
        (256, 1683, 0.0, 1.0),  # plain BCE
        (256, 1683, 1.0, 256 / 1682),  # fully calibrated: beta = alpha
        (256, 1683, 0.75, (256 / 1682) * (0.75 * (1 - 1682 / 256) + 1682 / 256)),
        (9, 10, 0.5, 1.0),  # every other item sampled: alpha = 1
    ],
)
def test_gbce_beta_is_the_papers_formula(negatives, items, t, expected):
    assert float(gbce_beta(negatives, items, t)) == pytest.approx(expected, rel=1e-6)


def test_gbce_losses_equal_numpy_and_leave_out_accidental_hits():
    rng = np.random.default_rng(0)
    positive = rng.normal(size=4).astype(np.float32) * 3
    negative = rng.normal(size=(4, 5)).astype(np.float32) * 3
    hits = np.zeros((4, 5), bool)
    hits[1, 2] = hits[3, 0] = True
    beta = 0.4
    got = gbce_losses(
        tf.constant(positive), tf.constant(negative), tf.constant(beta), tf.constant(hits)
    ).numpy()
    terms = np.where(hits, 0.0, -np.log1p(-1 / (1 + np.exp(-negative.astype(np.float64)))))
    expected = (-beta * _log_sigmoid(positive.astype(np.float64)) + terms.sum(axis=1)) / 6
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    big = gbce_losses(tf.constant([80.0, -80.0]), tf.constant([[-80.0], [80.0]]), tf.constant(1.0)).numpy()
    assert np.all(np.isfinite(big)) and big[0] < 1e-6 and big[1] == pytest.approx(80.0, rel=1e-4)


def test_negatives_come_only_from_the_allowed_items():
    tf.random.set_seed(1)
    allowed = np.zeros(50, bool)
    allowed[[3, 17, 40]] = True
    drawn, pool = sample_negatives(600, 50, tf.constant(allowed))
    assert int(pool) == 3 and set(drawn.numpy().tolist()) == {3, 17, 40}
    everything, pool = sample_negatives(2000, 50, None)
    assert int(pool) == 50 and everything.numpy().min() >= 0 and everything.numpy().max() <= 49
    assert len(set(everything.numpy().tolist())) > 45


def _model(**kwargs):
    from tfrec_llm.models.retrieval import TwoTowerModel

    keras.utils.set_random_seed(0)
    model = TwoTowerModel(
        item_tower={"num_items": 10, "item_vocab_size": 11, "embedding_dim": 8, "use_text": False,
                    "use_categories": False},
        query_tower={"num_users": 3, "user_vocab_size": 4, "embedding_dim": 8,
                     "history_encoder": {"name": "gru", "units": 6, "dropout": 0.0}},
        history_length=4, objective="next_item", temperature=0.5, **kwargs,
    )  # fmt: skip
    model.item_tower.set_tables(np.arange(1, 11))
    model.query_tower.set_tables(np.array([1, 2, 3, 0]))
    model({"user": tf.constant([0]), "history": tf.constant([[0, 1, -1, 2]])})
    model.candidate_embedding(tf.constant([0]))
    return model


def test_a_models_gbce_loss_equals_numpy_with_the_negatives_fixed(monkeypatch):
    model = _model(loss="gbce", gbce_negatives=3, gbce_t=0.5)
    assert model.get_config()["gbce_negatives"] == 3 and model.get_config()["gbce_t"] == 0.5
    negatives = np.array([4, 7, 1], np.int32)
    monkeypatch.setattr(losses, "sample_negatives", lambda count, n, allowed: (tf.constant(negatives), 10))
    sequence = np.array([[0, 1, 2, 3, 4], [-1, -1, 5, 6, 7]], np.int32)
    batch = {"user": tf.constant([0, 1]), "sequence": tf.constant(sequence),
             "sequence_probability": tf.ones([2, 5])}  # fmt: skip
    got = float(model.compute_loss(batch, training=False))
    catalog = model.all_candidate_embeddings().astype(np.float64)
    beta = (3 / 9) * (0.5 * (1 - 9 / 3) + 9 / 3)
    expected = []
    for row, items in enumerate(sequence):
        for t in range(4):
            if items[t] < 0:
                continue
            history = np.full((1, 4), -1, np.int32)
            history[0, 3 - t :] = items[: t + 1]
            query = (
                model.query_embedding(tf.constant([row]), tf.constant(history)).numpy()[0].astype(np.float64)
            )
            target = items[t + 1]
            positive = query @ catalog[target] / 0.5
            negative = catalog[negatives] @ query / 0.5
            terms = np.where(negatives == target, 0.0, np.log1p(np.exp(negative)))
            expected.append((-beta * _log_sigmoid(positive) + terms.sum()) / 4)
    assert len(expected) == 6
    assert got == pytest.approx(np.mean(expected), rel=1e-4)


def test_bad_gbce_settings_are_refused():
    with pytest.raises(ConfigError, match="gbce_negatives >= 1 and gbce_t in"):
        _model(loss="gbce", gbce_t=1.5)
    from tfrec_llm.config import load_config

    with pytest.raises(ConfigError, match="model.gbce_negatives"):
        load_config(None, ["model.loss=gbce", "model.gbce_negatives=0"])
    assert "gbce_t" not in _model(loss="full_softmax").get_config()  # older configs unchanged
