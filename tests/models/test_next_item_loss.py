"""Tests for the TwoTowerModel objectives and losses against numpy references.

The references rebuild every query with ``query_embedding`` (the tower's ``call``) on the
history cut after each position, and every candidate with ``all_candidate_embeddings``, so they
share no code with ``_next_item_loss`` / ``_softmax_loss`` beyond the towers themselves.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.future_targets import early_positions_only, future_offsets
from tfrec_llm.models.retrieval import TwoTowerModel

NUM_ITEMS = 10
LENGTH = 4
DIM = 8
ENCODERS = {
    "gru": {"name": "gru", "units": 6, "dropout": 0.0},
    "attention": {"name": "attention", "max_length": LENGTH, "num_blocks": 1, "num_heads": 2, "width": 6, "dropout": 0.0},
    "mean": {"name": "mean"},
}  # fmt: skip

# Windows of LENGTH + 1 items, left-padded. Valid positions (input and target real): row 0 all
# 4, row 1 three (item 5 twice), row 2 one (target 1, also row 0's first target: an accidental
# hit), row 3 none.
SEQUENCE = np.array(
    [[0, 1, 2, 3, 4], [-1, 5, 6, 5, 7], [-1, -1, -1, 8, 1], [-1, -1, -1, -1, 9]],
    np.int32,
)
USERS = np.array([0, 1, 2, 3], np.int32)  # 3 = the unknown user
ITEM_SHARE = (np.arange(NUM_ITEMS) + 1) / (NUM_ITEMS * (NUM_ITEMS + 1) / 2)


def _model(encoder, query_use_history=True, **kwargs):
    """Ids-only towers with random weights."""
    keras.utils.set_random_seed(0)
    query = {"num_users": 3, "user_vocab_size": 4, "embedding_dim": DIM, "use_history": query_use_history}
    if encoder is not None:
        query["history_encoder"] = encoder
    model = TwoTowerModel(
        item_tower={
            "num_items": NUM_ITEMS,
            "item_vocab_size": NUM_ITEMS + 1,
            "embedding_dim": DIM,
            "use_text": False,
            "use_categories": False,
        },
        query_tower=query,
        history_length=LENGTH,
        **kwargs,
    )
    model.item_tower.set_tables(np.arange(1, NUM_ITEMS + 1))
    model.query_tower.set_tables(np.array([1, 2, 3, 0]))
    model({"user": tf.constant([0]), "history": tf.constant([[0, 1, -1, 2]])})
    model.candidate_embedding(tf.constant([0]))
    rng = np.random.default_rng(3)
    for weight in model.trainable_weights:
        weight.assign(rng.normal(0.0, 0.5, size=weight.shape).astype(np.float32))
    return model


def _next_item_batch():
    probability = np.where(SEQUENCE >= 0, ITEM_SHARE[np.maximum(SEQUENCE, 0)], 0.0).astype(np.float32)
    return {
        "user": tf.constant(USERS),
        "sequence": tf.constant(SEQUENCE),
        "sequence_probability": tf.constant(probability),
    }


def _reference_queries(model):
    """[n, DIM] query of every valid position (``call`` on the cut history), targets, shares."""
    queries, targets, shares = [], [], []
    for row, sequence in enumerate(SEQUENCE):
        for t in range(LENGTH):
            if sequence[t] < 0 or sequence[t + 1] < 0:
                continue
            history = np.full((1, LENGTH), -1, np.int32)
            history[0, LENGTH - 1 - t :] = sequence[: t + 1]
            query = model.query_embedding(tf.constant(USERS[row : row + 1]), tf.constant(history))
            queries.append(query.numpy()[0])
            targets.append(sequence[t + 1])
            shares.append(ITEM_SHARE[sequence[t + 1]])
    assert len(targets) == 8
    return np.array(queries), np.array(targets), np.array(shares)


def _log_softmax(logits):
    logits = logits - logits.max(axis=1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def _full_softmax(queries, targets, catalog, temperature):
    """Mean cross-entropy over the whole catalog."""
    log_p = _log_softmax(queries.astype(np.float64) @ catalog.T / temperature)
    return -log_p[np.arange(len(targets)), targets].mean()


def _in_batch(queries, targets, catalog, temperature, shares, hits):
    """tfrs.tasks.Retrieval: in-batch logits, logQ, accidental hits masked, SUMMED cross-entropy."""
    logits = queries.astype(np.float64) @ catalog[targets].T / temperature
    if shares is not None:
        logits = logits - np.log(np.clip(shares, 1e-6, 1.0))[None, :]
    if hits:
        same = targets[:, None] == targets[None, :]
        np.fill_diagonal(same, False)
        logits = np.where(same, logits - 1e30, logits)
    return -np.trace(_log_softmax(logits))  # CategoricalCrossentropy(reduction=SUM)


@pytest.mark.parametrize("encoder", ["gru", "attention", "mean"])
def test_next_item_full_softmax_matches_numpy(encoder):
    model = _model(ENCODERS[encoder], objective="next_item", loss="full_softmax", temperature=0.2)
    queries, targets, _ = _reference_queries(model)
    expected = _full_softmax(queries, targets, model.all_candidate_embeddings(), 0.2)
    got = float(model.compute_loss(_next_item_batch(), training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


@pytest.mark.parametrize("corrections", [True, False])
@pytest.mark.parametrize("encoder", ["gru", "attention"])
def test_next_item_in_batch_matches_the_tfrs_softmax(encoder, corrections):
    model = _model(
        ENCODERS[encoder],
        objective="next_item",
        loss="in_batch",
        temperature=0.3,
        logq_correction=corrections,
        remove_accidental_hits=corrections,
    )
    queries, targets, shares = _reference_queries(model)
    assert len(set(targets)) < len(targets), "the batch must hold an accidental hit"
    catalog = model.all_candidate_embeddings()
    expected = _in_batch(queries, targets, catalog, 0.3, shares if corrections else None, corrections)
    got = float(model.compute_loss(_next_item_batch(), training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # the corrections matter on this batch (else the case above would not test them)
    plain = _in_batch(queries, targets, catalog, 0.3, None, False)
    assert corrections == (abs(plain - expected) > 1e-3)


def test_a_window_without_a_target_adds_nothing():
    model = _model(ENCODERS["gru"], objective="next_item", loss="full_softmax")
    batch = _next_item_batch()
    base = float(model.compute_loss(batch))
    # a row with no valid position adds nothing; nor do its probabilities
    extra = {
        "user": tf.constant([*USERS, 1]),
        "sequence": tf.constant(np.vstack([SEQUENCE, [[-1, -1, -1, -1, 4]]]).astype(np.int32)),
        "sequence_probability": tf.concat(
            [batch["sequence_probability"], [[0.0, 0.0, 0.0, 0.0, 0.9]]], axis=0
        ),
    }
    np.testing.assert_allclose(float(model.compute_loss(extra)), base, rtol=1e-6)


@pytest.mark.parametrize("encoder", [None, "gru"])
def test_interaction_full_softmax_matches_numpy(encoder):
    model = _model(None if encoder is None else ENCODERS[encoder], loss="full_softmax", temperature=0.25)
    history = np.array([[-1, -1, 0, 1], [2, 3, 4, 5], [-1, -1, -1, -1], [-1, 7, 7, 8]], np.int32)
    item = np.array([2, 6, 3, 2], np.int32)  # an accidental hit: full softmax ignores it
    features = {
        "user": tf.constant(USERS),
        "history": tf.constant(history),
        "item": tf.constant(item),
        "item_probability": tf.constant(ITEM_SHARE[item].astype(np.float32)),
    }
    queries = model.query_embedding(tf.constant(USERS), tf.constant(history)).numpy()
    expected = _full_softmax(queries, item, model.all_candidate_embeddings(), 0.25)
    np.testing.assert_allclose(float(model.compute_loss(features)), expected, rtol=1e-4)
    # the in-batch loss of the same model and batch is the TFRS softmax over the 4 positives
    in_batch = _model(None if encoder is None else ENCODERS[encoder], temperature=0.25)
    expected = _in_batch(queries, item, in_batch.all_candidate_embeddings(), 0.25, ITEM_SHARE[item], True)
    np.testing.assert_allclose(float(in_batch.compute_loss(features)), expected, rtol=1e-4)


def test_objective_and_loss_are_in_the_config():
    model = _model(ENCODERS["gru"], objective="next_item", loss="full_softmax")
    config = model.get_config()
    assert (config["objective"], config["loss"]) == ("next_item", "full_softmax")
    clone = TwoTowerModel.from_config(config)
    assert (clone.objective, clone.loss_name) == ("next_item", "full_softmax")
    # a config written before these fields existed builds the original model
    old = {key: value for key, value in config.items() if key not in ("objective", "loss")}
    old["query_tower"] = {k: v for k, v in config["query_tower"].items() if k != "history_encoder"}
    rebuilt = TwoTowerModel.from_config(old)
    assert (rebuilt.objective, rebuilt.loss_name, rebuilt.query_tower.encoder) == (
        "interaction",
        "in_batch",
        None,
    )


def test_objective_and_loss_errors():
    with pytest.raises(ConfigError, match="objective='next_item' needs a query tower with a history encoder"):
        _model(None, objective="next_item")
    with pytest.raises(ConfigError, match="objective='next_item' needs a query tower with a history encoder"):
        _model(ENCODERS["gru"], objective="next_item", query_use_history=False)
    with pytest.raises(
        ConfigError, match=r"objective must be one of \('interaction', 'next_item'\), got 'foo'"
    ):
        _model(ENCODERS["gru"], objective="foo")
    with pytest.raises(
        ConfigError, match=r"loss must be one of \('in_batch', 'full_softmax', 'gbce'\), got 'foo'"
    ):
        _model(ENCODERS["gru"], loss="foo")


@pytest.mark.parametrize("objective", ["next_item", "interaction"])
def test_full_softmax_restricted_to_trained_items(objective):
    """restrict_softmax: items outside the set leave the softmax (numpy over the kept columns)."""
    model = _model(ENCODERS["gru"], objective=objective, loss="full_softmax", temperature=0.2)
    catalog = model.all_candidate_embeddings()
    if objective == "next_item":
        batch = _next_item_batch()
        queries, targets, _ = _reference_queries(model)
    else:
        history = np.array([[-1, -1, 0, 1], [2, 3, 4, 5]], np.int32)
        targets = np.array([2, 6], np.int32)
        batch = {
            "user": tf.constant(USERS[:2]),
            "history": tf.constant(history),
            "item": tf.constant(targets),
            "item_probability": tf.constant(ITEM_SHARE[targets].astype(np.float32)),
        }
        queries = model.query_embedding(tf.constant(USERS[:2]), tf.constant(history)).numpy()
    full = float(model.compute_loss(batch))
    np.testing.assert_allclose(full, _full_softmax(queries, targets, catalog, 0.2), rtol=1e-4)
    kept = np.unique(targets)  # every target, and no other item
    assert len(kept) < NUM_ITEMS
    model.restrict_softmax(kept)
    restricted = float(model.compute_loss(batch))
    expected = _full_softmax(queries, np.searchsorted(kept, targets), catalog[kept], 0.2)
    np.testing.assert_allclose(restricted, expected, rtol=1e-4)
    assert restricted < full - 1e-3  # fewer negatives, a smaller loss
    model.restrict_softmax(None)
    np.testing.assert_allclose(float(model.compute_loss(batch)), full, rtol=1e-6)


def test_future_offsets_stay_within_reach_and_are_uniform():
    """Position t of 5 may look min(3, 5 - t) items ahead; each allowed offset equally often."""
    keras.utils.set_random_seed(5)
    n, length, window = 6000, 5, 3
    offsets = future_offsets(n, length, window).numpy()
    assert offsets.shape == (n, length) and offsets.dtype == np.int32
    for t, reach in enumerate([3, 3, 3, 2, 1]):
        counts = np.bincount(offsets[:, t], minlength=reach)
        assert len(counts) == reach, (t, counts)  # never past the window's last item
        share = 1.0 / reach
        tolerance = 5 * np.sqrt(share * (1 - share) / n) + 1e-9
        np.testing.assert_allclose(counts / n, share, atol=tolerance)
    assert not future_offsets(7, length, 1).numpy().any()  # window 1: the next item


def _future_reference(model, offsets):
    """Queries, targets of every valid position with target ``sequence[t + 1 + offset]``."""
    queries, targets = [], []
    for row, sequence in enumerate(SEQUENCE):
        for t in range(LENGTH):
            if sequence[t] < 0:
                continue
            history = np.full((1, LENGTH), -1, np.int32)
            history[0, LENGTH - 1 - t :] = sequence[: t + 1]
            queries.append(
                model.query_embedding(tf.constant(USERS[row : row + 1]), tf.constant(history)).numpy()[0]
            )
            targets.append(sequence[t + 1 + offsets[row, t]])
    return np.array(queries), np.array(targets)


def test_future_window_loss_matches_numpy_and_evaluation_keeps_the_next_item():
    model = _model(
        ENCODERS["mean"], objective="next_item", loss="full_softmax", temperature=0.2, future_window=3
    )
    catalog = model.all_candidate_embeddings()
    tf.random.set_seed(11)
    got = float(model.compute_loss(_next_item_batch(), training=True))
    tf.random.set_seed(11)  # the same draw as inside the loss (the mean encoder draws nothing else)
    offsets = future_offsets(len(SEQUENCE), LENGTH, 3).numpy()
    assert offsets[SEQUENCE[:, :-1] >= 0].any(), "the draw must move some target past the next item"
    queries, targets = _future_reference(model, offsets)
    np.testing.assert_allclose(got, _full_softmax(queries, targets, catalog, 0.2), rtol=1e-4)
    next_queries, next_targets = _future_reference(model, np.zeros_like(offsets))
    assert abs(got - _full_softmax(next_queries, next_targets, catalog, 0.2)) > 1e-3
    # outside training every position predicts its next item, as with future_window 1
    evaluated = float(model.compute_loss(_next_item_batch(), training=False))
    np.testing.assert_allclose(evaluated, _full_softmax(next_queries, next_targets, catalog, 0.2), rtol=1e-4)


def test_future_weight_mixes_the_next_item_and_the_future_losses():
    model = _model(
        ENCODERS["mean"],
        objective="next_item",
        loss="full_softmax",
        temperature=0.2,
        future_window=3,
        future_weight=0.25,
    )
    catalog = model.all_candidate_embeddings()
    tf.random.set_seed(4)
    got = float(model.compute_loss(_next_item_batch(), training=True))
    tf.random.set_seed(4)  # the next-item part draws nothing, so the future part gets this draw
    offsets = future_offsets(len(SEQUENCE), LENGTH, 3).numpy()
    future = _full_softmax(*_future_reference(model, offsets), catalog, 0.2)
    following = _full_softmax(*_future_reference(model, np.zeros_like(offsets)), catalog, 0.2)
    assert abs(future - following) > 1e-3
    np.testing.assert_allclose(got, 0.75 * following + 0.25 * future, rtol=1e-4)
    assert model.get_config()["future_weight"] == 0.25
    with pytest.raises(ConfigError, match=r"future_weight must be in \[0, 1\], got 1.5"):
        _model(ENCODERS["mean"], objective="next_item", future_window=3, future_weight=1.5)


def test_future_window_is_in_the_config_and_needs_next_item():
    model = _model(ENCODERS["gru"], objective="next_item", loss="full_softmax", future_window=4)
    config = model.get_config()
    assert config["future_window"] == 4
    assert TwoTowerModel.from_config(config).future_window == 4
    assert "future_window" not in _model(ENCODERS["gru"], objective="next_item").get_config()
    with pytest.raises(ConfigError, match=r"future_window must be >= 1, and 1 unless objective='next_item'"):
        _model(ENCODERS["gru"], objective="interaction", future_window=2)
    with pytest.raises(ConfigError, match=r"future_window must be >= 1"):
        _model(ENCODERS["gru"], objective="next_item", future_window=0)


def test_early_positions_only_keeps_offsets_where_at_most_context_items_were_seen():
    offsets = tf.constant([[2, 2, 2, 2], [1, 1, 1, 1]], tf.int32)
    inputs = tf.constant([[-1, 4, 5, 6], [3, -1, 7, 8]], tf.int32)  # seen: [0,1,2,3], [1,1,2,3]
    np.testing.assert_array_equal(
        early_positions_only(offsets, inputs, 2).numpy(), [[2, 2, 2, 0], [1, 1, 1, 0]]
    )
    np.testing.assert_array_equal(
        early_positions_only(offsets, inputs, 1).numpy(), [[2, 2, 0, 0], [1, 1, 0, 0]]
    )
    np.testing.assert_array_equal(early_positions_only(offsets, inputs, 0).numpy(), offsets.numpy())


def test_future_context_draws_future_targets_only_at_short_context_positions():
    """future_context 2: positions that have seen 1 or 2 items look ahead, later ones keep the next."""
    model = _model(
        ENCODERS["mean"],
        objective="next_item",
        loss="full_softmax",
        temperature=0.2,
        future_window=3,
        future_context=2,
    )
    catalog = model.all_candidate_embeddings()
    tf.random.set_seed(1)
    got = float(model.compute_loss(_next_item_batch(), training=True))
    tf.random.set_seed(1)  # the same draw as inside the loss
    offsets = future_offsets(len(SEQUENCE), LENGTH, 3).numpy()
    seen = np.cumsum(SEQUENCE[:, :-1] >= 0, axis=1)
    early = np.where(seen <= 2, offsets, 0)
    valid = SEQUENCE[:, :-1] >= 0
    assert (early != offsets)[valid].any(), "the draw must move a late target that the context keeps"
    assert early[valid].any(), "and an early one that it lets through"
    expected = _full_softmax(*_future_reference(model, early), catalog, 0.2)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert abs(got - _full_softmax(*_future_reference(model, offsets), catalog, 0.2)) > 1e-3
    config = model.get_config()
    assert config["future_context"] == 2 and TwoTowerModel.from_config(config).future_context == 2
    assert "future_context" not in _model(ENCODERS["mean"], objective="next_item").get_config()
    with pytest.raises(ConfigError, match=r"future_context must be >= 0, got -1"):
        _model(ENCODERS["mean"], objective="next_item", future_window=3, future_context=-1)
