"""Scenario retrieval model: MMoE against numpy, per-scenario heads, metrics, a tiny fit."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tfrec_llm.config.sections import ExperimentConfig, ScenariosConfig
from tfrec_llm.data.synthetic_scenarios import ScenarioSpec, generate_scenarios, leave_last_out
from tfrec_llm.errors import ConfigError
from tfrec_llm.models.scenario_inputs import (
    build_features,
    fit_scenario_model,
    index_dataset,
    rank_metrics,
    scenario_scores,
)
from tfrec_llm.models.scenarios import MMoE, ScenarioRetrievalModel

SPECS = (
    ScenarioSpec("a", num_items=60, interactions=12, noise=0.3),
    ScenarioSpec("b", num_items=40, interactions=10, sparse_interactions=2, sparse_fraction=0.6),
)


def _relu(x):
    return np.maximum(x, 0.0)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_mmoe_gates_sum_to_one_and_mixture_matches_numpy():
    layer = MMoE(num_experts=3, units=4, num_tasks=2)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    mixture, gates = layer(tf.constant(x))
    for w in (layer.expert_bias, layer.gate_bias):  # non-zero biases so they are checked too
        w.assign(np.random.default_rng(1).normal(size=w.shape).astype(np.float32))
    mixture, gates = (t.numpy() for t in layer(tf.constant(x)))
    np.testing.assert_allclose(gates.sum(axis=-1), 1.0, rtol=1e-6)
    wk, bk = layer.expert_kernel.numpy(), layer.expert_bias.numpy()
    wg, bg = layer.gate_kernel.numpy(), layer.gate_bias.numpy()
    experts = np.stack([_relu(x @ wk[:, e, :] + bk[e]) for e in range(3)], axis=1)
    want_gates = np.stack([_softmax(x @ wg[t] + bg[t]) for t in range(2)], axis=1)
    want = np.einsum("bte,beu->btu", want_gates, experts)
    np.testing.assert_allclose(gates, want_gates, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mixture, want, rtol=1e-5, atol=1e-5)
    assert MMoE.from_config(layer.get_config()).num_experts == 3


def _tiny_model(head):
    catalogs = [np.arange(0, 4), np.arange(4, 7)]
    words = np.array([[1, 0], [2, 0], [1, 2], [0, 0], [3, 0], [3, 1], [2, 0]])
    return ScenarioRetrievalModel(3, catalogs, words, 3, embedding_dim=4, head=head, expert_units=5)


@pytest.mark.parametrize("head", ["shared_bottom", "mmoe"])
def test_query_uses_the_head_of_its_scenario(head):
    model = _tiny_model(head)
    feats = {
        "user": tf.constant([0, 0]),
        "scenario": tf.constant([0, 1]),
        "history": tf.constant([[1, 5, -1], [1, 5, -1]]),
    }
    query = model.query_embeddings(feats).numpy()
    x = model.head_inputs(feats).numpy()
    if head == "mmoe":
        mixed = model.mixer(tf.constant(x))[0].numpy()
        np.testing.assert_allclose(model.gates(feats).numpy().sum(-1), 1.0, rtol=1e-6)
    else:
        kernel, bias = (w.numpy() for w in model.mixer.weights)
        mixed = np.repeat(_relu(x @ kernel + bias)[:, None, :], 2, axis=1)
    kernel, bias = model.out_kernel.numpy(), model.out_bias.numpy()
    for row, scen in enumerate([0, 1]):
        out = mixed[row, scen] @ kernel[scen] + bias[scen]
        np.testing.assert_allclose(query[row], out / np.linalg.norm(out), rtol=1e-4, atol=1e-5)
    # Same user and history: the two scenarios' heads give different queries.
    assert not np.allclose(query[0], query[1])


def test_history_is_a_masked_mean_that_drops_the_positive():
    model = _tiny_model("shared_bottom")
    base = {"user": tf.constant([1]), "scenario": tf.constant([0])}
    vec = model.item_vectors(tf.constant([1, 5])).numpy()
    x = model.head_inputs({**base, "history": tf.constant([[1, 5, -1]])}).numpy()
    np.testing.assert_allclose(x[0, 4:8], vec.mean(axis=0), rtol=1e-5, atol=1e-6)
    x = model.head_inputs({**base, "history": tf.constant([[1, 5, -1]]), "item": [5]}).numpy()
    np.testing.assert_allclose(x[0, 4:8], vec[0], rtol=1e-5, atol=1e-6)


def test_heads_are_checked_in_config_and_model():
    assert ExperimentConfig().scenarios.head == "shared_bottom"
    with pytest.raises(ConfigError, match=r"scenarios.head='moe'; expected one of"):
        ScenariosConfig(head="moe")
    with pytest.raises(ConfigError, match=r"scenarios.num_experts=0; expected an integer >= 1"):
        ScenariosConfig(num_experts=0)
    with pytest.raises(ConfigError, match="scenarios.head='x'"):
        _tiny_model("x")
    with pytest.raises(ConfigError, match="needs scenarios.head='mmoe'"):
        _tiny_model("shared_bottom").gates({})


def test_rank_metrics_hand_computed():
    data = generate_scenarios(num_users=2, specs=(ScenarioSpec("s", 4, 2),), seed=0)
    index = index_dataset(data.dataset)
    ids = index.item_ids
    train = pd.DataFrame({"user_id": ["u0", "u1"], "item_id": [ids[0], ids[3]], "scenario": "s"})
    test = pd.DataFrame({"user_id": ["u0", "u1"], "item_id": [ids[2], ids[1]], "scenario": "s"})
    scores = np.array([[9.0, 5.0, 1.0, 3.0], [0.0, 2.0, 7.0, 8.0]])
    got = rank_metrics(index, train, test, 0, scores, k=2)
    # u0: item 0 is seen (dropped); ranking 1 (5), 3 (3), 2 (1): target at rank 3 -> miss.
    # u1: item 3 is seen; ranking 2 (7), 1 (2): target at rank 2 -> hit, NDCG 1/log2(3).
    np.testing.assert_allclose(got["recall"], [0.0, 1.0])
    np.testing.assert_allclose(got["ndcg"], [0.0, 1.0 / np.log2(3.0)])


@pytest.fixture(scope="module")
def fitted():
    data = generate_scenarios(num_users=300, specs=SPECS, latent_dim=6, seed=1)
    index = index_dataset(data.dataset)
    train, test = leave_last_out(data.dataset.interactions)
    model = ScenarioRetrievalModel(
        len(index.user_ids), index.catalogs, index.item_words, index.num_words, 16, "mmoe"
    )
    fit_scenario_model(model, build_features(index, train, train, 20), epochs=6, seed=0)
    return data, index, train, test, model


def test_a_tiny_shared_model_beats_most_popular(fitted):
    data, index, train, test, model = fitted
    counts = np.bincount(index.rows(train)[1], minlength=len(index.item_ids)).astype(float)
    ours, pop, oracle = [], [], []
    for s, name in enumerate(index.scenarios):
        rows = test[test["scenario"] == name]
        query = build_features(index, train, rows, 20, with_item=False)
        catalog = index.catalogs[s]
        ours.append(rank_metrics(index, train, rows, s, scenario_scores(model, query, catalog)))
        flat = np.tile(counts[catalog], (len(rows), 1))
        pop.append(rank_metrics(index, train, rows, s, flat))
        truth = data.true_logits(index.rows(rows)[0], catalog)
        oracle.append(rank_metrics(index, train, rows, s, truth))
    ndcg = [np.concatenate([m["ndcg"] for m in ms]).mean() for ms in (ours, pop, oracle)]
    assert ndcg[0] > ndcg[1] + 0.02, ndcg
    assert ndcg[2] > ndcg[0], ndcg  # the true vectors remain the ceiling
