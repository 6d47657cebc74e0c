"""Tests for tfrec_llm.experiments.builders: the model section -> the towers' arguments."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec_llm.config import ModelConfig
from tfrec_llm.config.choices import HISTORY_ENCODERS, VARIANTS
from tfrec_llm.experiments.builders import history_encoder_args, query_encoder_args
from tfrec_llm.models.layers import HISTORY_ENCODERS as ENCODER_CLASSES
from tfrec_llm.models.query_tower import QueryTower

_SEQUENCE = dict(history_length=7, encoder_width=12, encoder_blocks=3, encoder_heads=4, encoder_dropout=0.15)
# The model fields of the ``mean`` variant: the original mean-pooling two-tower.
_MEAN = {key.split(".", 1)[1]: value for key, value in VARIANTS["mean"].items() if key.startswith("model.")}


@pytest.mark.parametrize(
    "name, objective, expected",
    [
        ("mean", "interaction", None),
        ("mean", "next_item", {"name": "mean"}),
        ("cnn", "interaction", {"name": "cnn", "filters": 12}),
        ("gru", "next_item", {"name": "gru", "units": 12, "dropout": 0.15}),
        ("lstm", "interaction", {"name": "lstm", "units": 12, "dropout": 0.15}),
        (
            "attention",
            "next_item",
            {"name": "attention", "max_length": 7, "num_blocks": 3, "num_heads": 4, "width": 12, "dropout": 0.15},
        ),
    ],
)  # fmt: skip
def test_history_encoder_args_of_each_name(name, objective, expected):
    cfg = ModelConfig(history_encoder=name, objective=objective, **_SEQUENCE)
    args = history_encoder_args(cfg)
    assert args == expected
    if args is None:
        return
    # the arguments build that encoder, with those values, inside a query tower
    tower = QueryTower(num_users=2, user_vocab_size=3, embedding_dim=4, history_encoder=args)
    assert type(tower.encoder) is ENCODER_CLASSES[name]
    config = tower.encoder.get_config()
    assert {key: config[key] for key in args if key != "name"} == {
        k: v for k, v in args.items() if k != "name"
    }


def test_every_encoder_name_has_arguments():
    for name in HISTORY_ENCODERS:
        cfg = ModelConfig(history_encoder=name, objective="next_item", **_SEQUENCE)
        assert history_encoder_args(cfg)["name"] == name


def test_query_encoder_args_are_empty_for_the_mean_pooling_model():
    assert query_encoder_args(ModelConfig(**_MEAN)) == {}
    assert query_encoder_args(ModelConfig(**{**_MEAN, "user_dropout": 0.3})) == {"user_dropout": 0.3}
    assert query_encoder_args(ModelConfig(history_encoder="gru", encoder_width=5)) == {
        "history_encoder": {"name": "gru", "units": 5, "dropout": 0.2}
    }


def test_query_encoder_args_of_the_defaults_are_the_gru_encoder():
    # GRU: the best encoder on VALID NDCG@10 in benchmarks/results/quality.md
    assert query_encoder_args(ModelConfig()) == {
        "history_encoder": {"name": "gru", "units": 64, "dropout": 0.2}
    }
    attention = ModelConfig(history_encoder="attention")
    assert query_encoder_args(attention) == {
        "history_encoder": {
            "name": "attention",
            "max_length": 100,  # = history_length
            "num_blocks": 2,
            "num_heads": 2,
            "width": 64,
            "dropout": 0.2,
        }
    }


def test_mean_variant_has_the_original_query_tower(tiny_dataset, small_two_tower):
    model = small_two_tower(tiny_dataset, **_MEAN).model
    query = model.get_config()["query_tower"]
    # exactly the keys of the mean-pooling tower, so its checkpoints stay valid
    assert set(query) == {
        "num_users",
        "user_vocab_size",
        "profile_sizes",
        "embedding_dim",
        "use_ids",
        "use_profile",
        "use_history",
        "l2",
    }
    assert model.query_tower.encoder is None
    assert (model.objective, model.loss_name) == ("interaction", "in_batch")
    assert query["use_ids"] is True and query["use_profile"] is True  # user ids and profile


def test_default_model_config_has_the_gru_query_tower(tiny_dataset, small_two_tower):
    model = small_two_tower(tiny_dataset).model
    config = model.get_config()
    query = config["query_tower"]
    assert type(model.query_tower.encoder) is ENCODER_CLASSES["gru"]
    assert query["history_encoder"]["name"] == "gru"
    assert query["use_ids"] is False and query["use_profile"] is False  # no user ids, no profile
    assert (config["objective"], config["loss"]) == ("next_item", "full_softmax")
    assert config["temperature"] == 0.1
    assert model.query_tower.id_embedding is None


def test_sequence_fields_reach_the_model(tiny_dataset, small_two_tower):
    built = small_two_tower(
        tiny_dataset,
        history_encoder="attention",
        encoder_width=8,
        encoder_blocks=1,
        encoder_heads=2,
        objective="next_item",
        loss="full_softmax",
        use_user_ids=False,
        user_dropout=0.1,
    )
    model = built.model
    config = model.get_config()
    assert (config["objective"], config["loss"]) == ("next_item", "full_softmax")
    query = config["query_tower"]
    assert query["use_ids"] is False and query["user_dropout"] == 0.1
    assert query["history_encoder"]["max_length"] == 4  # the history length of small_two_tower
    assert model.item_tower.get_config()["use_ids"] is True  # use_user_ids leaves the items alone
    assert model.query_tower.id_embedding is None
    history = np.array([[-1, 0, 1, 2]], np.int32)
    assert model({"user": tf.constant([0]), "history": tf.constant(history)}).shape == (1, 8)


def test_mean_encoder_under_next_item_is_the_running_mean(tiny_dataset, small_two_tower):
    model = small_two_tower(tiny_dataset, history_encoder="mean", objective="next_item", use_text=False).model
    assert type(model.query_tower.encoder) is ENCODER_CLASSES["mean"]
    assert model.get_config()["query_tower"]["history_encoder"] == {"name": "mean"}


def test_normalize_false_reaches_both_towers(tiny_dataset, small_two_tower):
    from tfrec_llm.config import ModelConfig

    assert query_encoder_args(ModelConfig(normalize=False))["normalize"] is False
    assert "normalize" not in query_encoder_args(ModelConfig())
    model = small_two_tower(tiny_dataset, normalize=False).model
    assert model.item_tower.normalize is False and model.query_tower.normalize is False
    assert not np.allclose(np.linalg.norm(model.all_candidate_embeddings(), axis=1), 1.0)
    assert model.get_config()["item_tower"]["normalize"] is False
