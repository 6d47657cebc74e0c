"""The ranking model, its DCN-v2 cross network and the multitask model.

References are independent: the cross layers and the MLP are recomputed in numpy from the
layers' weights (``x_{l+1} = x0 * (x_l W + b) + x_l``), the multitask loss from the in-batch
softmax and the MSE written out in numpy, and the trained model is compared with the constant
predictor (the mean TRAIN rating) on held-out rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_clustered_dataset
from tfrec_llm.config import config_from_dict
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.ranking_examples import random_split, rating_examples
from tfrec_llm.data.splits import make_split
from tfrec_llm.errors import ConfigError
from tfrec_llm.models.layers.cross_network import CrossNetwork
from tfrec_llm.models.multitask import MultitaskModel
from tfrec_llm.models.ranking import RankingModel
from tfrec_llm.training.ranking_trainer import build_ranking_model

HISTORY = 5


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _numpy_cross(net: CrossNetwork, x0: np.ndarray) -> np.ndarray:
    """The cross layers by the DCN-v2 formula, from the layers' weights."""
    x = x0
    for layer in net.crosses:
        if net.projection_dim:
            u = layer._dense_u.kernel.numpy()
            v, b = layer._dense_v.kernel.numpy(), layer._dense_v.bias.numpy()
            x = x0 * ((x @ u) @ v + b) + x
        else:
            w, b = layer._dense.kernel.numpy(), layer._dense.bias.numpy()
            x = x0 * (x @ w + b) + x
    return x


def _numpy_mlp(net: CrossNetwork, x: np.ndarray) -> np.ndarray:
    for layer in net.deep:
        x = _relu(x @ layer.kernel.numpy() + layer.bias.numpy())
    return x


@pytest.mark.parametrize(
    ("structure", "projection_dim", "deep_layers"),
    [("stacked", 0, [6, 3]), ("stacked", 0, []), ("parallel", 0, [4]), ("stacked", 2, [3])],
)
def test_cross_network_equals_the_dcn_v2_formula(structure, projection_dim, deep_layers):
    tf.keras.utils.set_random_seed(0)
    net = CrossNetwork(
        cross_layers=3, structure=structure, projection_dim=projection_dim, deep_layers=deep_layers
    )
    x0 = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    out = net(x0).numpy()
    for layer in net.crosses:  # non-zero biases, so the "+ b" term is checked too
        dense = layer._dense_v if projection_dim else layer._dense
        dense.bias.assign(np.random.default_rng(2).normal(size=5).astype(np.float32))
    out = net(x0).numpy()
    crossed = _numpy_cross(net, x0)
    if structure == "stacked":
        expected = _numpy_mlp(net, crossed) if deep_layers else crossed
    else:
        expected = np.concatenate([crossed, _numpy_mlp(net, x0)], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # One layer by hand: x1 = x0 * (x0 W + b) + x0.
    if not projection_dim:
        w, b = net.crosses[0]._dense.kernel.numpy(), net.crosses[0]._dense.bias.numpy()
        np.testing.assert_allclose(net.crosses[0](x0).numpy(), x0 * (x0 @ w + b) + x0, rtol=1e-5, atol=1e-5)


def test_cross_network_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="structure must be one of"):
        CrossNetwork(structure="diagonal")
    with pytest.raises(ConfigError, match="at least one cross layer or one deep layer"):
        CrossNetwork(cross_layers=0, deep_layers=[])


def _rated(seed: int = 0):
    """The clustered data with ratings 4.5 +- 0.5 on own-cluster items and 1.5 +- 0.5 on others."""
    dataset = make_clustered_dataset(num_users=60, per_user=12, seed=seed)
    frame = dataset.interactions.copy()
    user = frame["user_id"].astype(int).to_numpy()
    item = frame["item_id"].astype(int).to_numpy() - 1
    own = (item >= 15) == (user > 30)
    noise = np.random.default_rng(seed).choice([-0.5, 0.5], len(frame))
    frame["rating"] = np.where(own, 4.5, 1.5) + noise
    dataset = type(dataset)(**{**vars(dataset), "interactions": frame})
    return dataset, build_catalog(dataset, make_split(dataset, "loo"))


def _config(**ranking):
    return config_from_dict(
        {
            "model": {
                "embedding_dim": 8,
                "history_length": HISTORY,
                "use_text": False,
                "use_profile": True,
                "history_encoder": "mean",
            },
            "ranking": {"deep_layers": [16], **ranking},
            "train": {"batch_size": 64, "learning_rate": 0.01},
        }
    )


@pytest.fixture(scope="module")
def trained():
    """A rating model fitted on a random 80% of the tiny rated data; the held-out 20%."""
    tf.keras.utils.set_random_seed(0)
    dataset, catalog = _rated()
    train, test = random_split(dataset.interactions, 0.2, seed=0)
    cfg = _config()
    model = build_ranking_model(cfg, catalog, output_bias=float(train["rating"].mean()))
    model.compile(tf.keras.optimizers.Adam(0.01))
    examples = rating_examples(train, catalog, HISTORY, history=train)
    dataset_tf = tf.data.Dataset.from_tensor_slices(examples).shuffle(1000, seed=0).batch(64)
    model.fit(dataset_tf, epochs=12, verbose=0)
    return model, catalog, cfg, train, rating_examples(test, catalog, HISTORY, history=train)


def test_trained_rating_model_beats_the_constant_mean(trained):
    model, _, _, train, test = trained
    predictions = model(test).numpy()
    rmse = np.sqrt(np.mean((predictions - test["rating"]) ** 2))
    constant = np.sqrt(np.mean((train["rating"].mean() - test["rating"]) ** 2))
    # The constant is ~1.3 here and the noise floor 0.5: learning the user x item clusters
    # must take most of the way down.
    assert constant > 1.1
    assert rmse < 0.7 * constant, (rmse, constant)


def test_score_candidates_equals_scoring_each_pair(trained):
    model, _, _, _, test = trained
    query = {"user": test["user"][:3], "history": test["history"][:3]}
    candidates = np.array([[0, 5, 29], [3, 3, 17], [16, 1, 2]], np.int32)
    scores = model.score_candidates(query, candidates).numpy()
    for column in range(3):
        pairs = {**query, "item": candidates[:, column]}
        np.testing.assert_allclose(scores[:, column], model(pairs).numpy(), rtol=1e-5, atol=1e-5)
    shared = model.score_candidates(query, candidates[0]).numpy()  # [N] for every user
    np.testing.assert_allclose(shared[0], scores[0], rtol=1e-5, atol=1e-5)


def _copy(model):
    """A model rebuilt from its config, tables and weights copied."""
    clone = type(model).from_config(model.get_config())
    probe = {"user": np.zeros(1, np.int32), "history": -np.ones((1, HISTORY), np.int32)}
    clone({**probe, "item": np.zeros(1, np.int32)})  # creates every weight
    clone.set_weights(model.get_weights())
    return clone


def test_config_round_trip_gives_identical_outputs(trained):
    model, catalog, cfg, _, test = trained
    clone = _copy(model)
    assert clone.get_config() == model.get_config()
    np.testing.assert_array_equal(clone(test).numpy(), model(test).numpy())
    multitask = build_ranking_model(_config(use_retrieval_score=True), catalog, multitask=True)
    multitask_clone = _copy(multitask)
    assert multitask_clone.get_config() == multitask.get_config()
    np.testing.assert_array_equal(multitask_clone(test).numpy(), multitask(test).numpy())


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_multitask_loss_is_the_weighted_sum_of_both_task_losses(trained):
    _, catalog, _, _, test = trained
    tf.keras.utils.set_random_seed(3)
    cfg = _config(retrieval_weight=0.3, ranking_weight=2.0)
    model = build_ranking_model(cfg, catalog, output_bias=3.0, multitask=True)
    batch = {key: value[:8] for key, value in test.items()}
    batch["item"] = np.arange(8, dtype=np.int32) * 3  # distinct items: no accidental hits
    total = float(model.compute_loss(batch))
    # Retrieval: in-batch softmax of cosine / temperature, the diagonal the labels, summed.
    query = model.query_embedding(batch["user"], batch["history"]).numpy()
    candidate = model.candidate_embedding(batch["item"]).numpy()
    logits = query @ candidate.T / cfg.model.temperature
    retrieval = -np.trace(_log_softmax(logits))
    ranking = np.mean((model(batch).numpy() - batch["rating"]) ** 2)
    np.testing.assert_allclose(total, 0.3 * retrieval + 2.0 * ranking, rtol=1e-5)
    assert retrieval > 1.0 and ranking > 0.1  # both terms weigh in


def test_errors_name_the_argument():
    with pytest.raises(ConfigError, match="objective must be one of"):
        RankingModel(item_tower={}, query_tower={}, objective="pointwise")
    with pytest.raises(ConfigError, match=r"ranking.cross_structure='diagonal'; expected one of"):
        config_from_dict({"ranking": {"cross_structure": "diagonal"}})
    with pytest.raises(ConfigError, match="retrieval_weight=0.0, ranking_weight=0.0"):
        MultitaskModel(ranking={}, retrieval_weight=0.0, ranking_weight=0.0)


def test_retrieval_score_feature_is_required_when_configured(trained):
    _, catalog, _, _, test = trained
    model = build_ranking_model(_config(use_retrieval_score=True), catalog)
    query = {"user": test["user"][:2], "history": test["history"][:2]}
    with pytest.raises(ConfigError, match="use_retrieval_score=True needs the retrieval scores"):
        model.score_candidates(query, np.array([[1, 2], [3, 4]], np.int32))
    low = model.score_candidates(query, np.array([[1, 2], [3, 4]], np.int32), np.zeros((2, 2), np.float32))
    high = model.score_candidates(
        query, np.array([[1, 2], [3, 4]], np.int32), np.full((2, 2), 5.0, np.float32)
    )
    assert not np.allclose(low.numpy(), high.numpy())  # the score reaches the output


def test_listwise_and_click_losses_equal_their_numpy_formulas(trained):
    _, catalog, _, _, test = trained
    query = {"user": test["user"][:4], "history": test["history"][:4]}
    listwise = build_ranking_model(_config(objective="listwise", list_size=3), catalog)
    labels = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 2, 2]], np.float32)
    batch = {
        **query,
        "item": np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [0, 10, 20]], np.int32),
        "label": labels,
    }
    scores = listwise(batch).numpy()
    target = labels / labels.sum(axis=1, keepdims=True)  # the last list: half on each of two items
    expected = np.mean(-(target * _log_softmax(scores)).sum(axis=1))
    np.testing.assert_allclose(float(listwise.compute_loss(batch)), expected, rtol=1e-5)

    clicks = build_ranking_model(_config(objective="ctr"), catalog)
    batch = {**query, "item": np.array([1, 2, 3, 4], np.int32), "label": np.array([1, 0, 1, 0], np.float32)}
    logits = clicks(batch).numpy().astype(np.float64)
    probability = 1.0 / (1.0 + np.exp(-logits))
    label = batch["label"]
    expected = np.mean(-(label * np.log(probability) + (1 - label) * np.log(1 - probability)))
    np.testing.assert_allclose(float(clicks.compute_loss(batch)), expected, rtol=1e-4)
