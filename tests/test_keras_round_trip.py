"""Every registered Keras class of tfrec_llm: config round trip and save/load in a fresh process.

One case per class (two for ``TextEncoder``: plain, and with LoRA adapters; two for
``ItemTower``: precomputed text table, and a fine-tuned BERT nested inside; two for
``QueryTower``: mean pooling, and an attention history encoder with user dropout; two for ``TwoTowerModel``: the original model, and a next-item model whose query tower
has a GRU encoder), built tiny, with the checks of ``tests/keras_testing.py``. All cases are saved
first and reloaded by ONE new Python process, so the whole file costs one extra interpreter.
``test_every_registered_class_has_a_case`` reads the package source, so a new registered class
without a case here fails.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tf_keras

import tfrec_llm  # noqa: F401
from tfrec_llm.models.layers import (
    CausalAttentionEncoder,
    CausalConvEncoder,
    CumulativeMeanEncoder,
    GRUEncoder,
    LSTMEncoder,
)
from tfrec_llm.models.layers.cross_network import CrossNetwork
from tfrec_llm.models.multitask import MultitaskModel
from tfrec_llm.models.query_tower import QueryTower
from tfrec_llm.models.ranking import RankingModel
from tfrec_llm.models.retrieval import TwoTowerModel
from tfrec_llm.models.text_adaptors import AlignmentLoss, TextMoEAdaptor, TextWhitening
from tfrec_llm.models.towers import ItemTower
from tfrec_llm.text.encoder import TextEncoder
from tfrec_llm.text.lora import LoRADense
from tfrec_llm.text.pooling import MaskedMeanPooling
from tfrec_llm.text.student import StudentEncoder

PACKAGE = Path(tfrec_llm.__file__).resolve().parent
Case = tuple[Any, dict[str, Any], tuple[Any, ...]]  # (object, constructor arguments, call args)


def _masked_mean_pooling(bert_dir: str, vocab: list[str]) -> Case:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 4, 2)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    return MaskedMeanPooling(name="history_pool"), {"name": "history_pool"}, (values, mask)


def _history(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded histories [3, 4, 3] (padding holds noise) and their mask, one of them empty."""
    sequence = np.random.default_rng(seed).normal(size=(3, 4, 3)).astype(np.float32)
    return sequence, np.array([[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]], bool)


def _cumulative_mean_encoder(bert_dir: str, vocab: list[str]) -> Case:
    return CumulativeMeanEncoder(name="mean_history"), {"name": "mean_history"}, _history(10)


def _causal_conv_encoder(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "filters": 4,
        "kernel_size": 2,
        "dilations": (1, 2),
        "activation": "gelu",
        "residual": True,
        "name": "cnn_history",
    }
    return CausalConvEncoder(**arguments), arguments, _history(11)


def _gru_encoder(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {"units": 4, "dropout": 0.1, "name": "gru_history"}
    return GRUEncoder(**arguments), arguments, _history(12)


def _lstm_encoder(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {"units": 2, "dropout": 0.0, "name": "lstm_history"}
    return LSTMEncoder(**arguments), arguments, _history(13)


def _causal_attention_encoder(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "max_length": 6,
        "num_blocks": 2,
        "num_heads": 2,
        "width": 4,
        "dropout": 0.2,
        "name": "attention_history",
    }
    return CausalAttentionEncoder(**arguments), arguments, _history(14)


def _item_tower(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "num_items": 5,
        "item_vocab_size": 4,
        "text_dim": 3,
        "num_categories": 2,
        "embedding_dim": 4,
        "text_projection_dim": 6,
        "l2": 0.01,
        "id_dropout": 0.1,
        "name": "items",
    }
    tower = ItemTower(**arguments)
    rng = np.random.default_rng(1)
    categories = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]], np.float32)
    tower.set_tables(np.array([1, 2, 3, 0, 0]), rng.normal(size=(5, 3)), categories)
    return tower, arguments, (np.array([[0, 4], [2, -1]], np.int32),)


def _text_whitening(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {"dim": 3, "epsilon": 0.01, "name": "whitening"}
    layer = TextWhitening(**arguments)
    layer.adapt(np.random.default_rng(20).normal(size=(8, 3)))
    return layer, arguments, (np.random.default_rng(21).normal(size=(2, 3)).astype(np.float32),)


def _text_moe_adaptor(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {"experts": 3, "units": 2, "activation": "gelu", "name": "moe"}
    return (
        TextMoEAdaptor(**arguments),
        arguments,
        (np.random.default_rng(22).normal(size=(4, 3)).astype(np.float32),),
    )


def _alignment_loss(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {"weight": 0.5, "kind": "mse", "name": "alignment"}
    rng = np.random.default_rng(23)
    text, ids = (rng.normal(size=(3, 2)).astype(np.float32) for _ in range(2))
    return AlignmentLoss(**arguments), arguments, (text, ids)


def _adapted_item_tower(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "num_items": 6,
        "item_vocab_size": 4,
        "text_dim": 3,
        "embedding_dim": 4,
        "text_projection_dim": 5,
        "text_whitening": True,
        "text_experts": 2,
        "name": "adapted_items",
    }
    tower = ItemTower(**arguments)
    tower.set_tables(np.array([1, 2, 3, 0, 0, 1]), np.random.default_rng(24).normal(size=(6, 3)))
    return tower, arguments, (np.array([[0, 4], [5, -1]], np.int32),)


def _fine_tuned_item_tower(bert_dir: str, vocab: list[str]) -> Case:
    # text_dim=0 and use_categories=True without categories: both must stay as passed.
    arguments = {
        "num_items": 3,
        "item_vocab_size": 3,
        "text_dim": 0,
        "num_categories": 0,
        "use_categories": True,
        "embedding_dim": 4,
        "text_projection_dim": 4,
        "text_model_path": bert_dir,
        "text_max_length": 6,
        "fine_tune_layers": 1,
        "name": "fine_tuned_items",
    }
    tower = ItemTower(**arguments)
    texts = [["space", "rocket"], ["kitchen", "cooking", "recipe", "story"], ["sci"]]
    ids = np.zeros((3, 6), np.int32)  # [PAD] is id 0
    for row, words in enumerate(texts):
        tokens = ["[CLS]", *words, "[SEP]"]
        ids[row, : len(tokens)] = [vocab.index(token) for token in tokens]
    tower.set_tables(np.array([1, 2, 0]), token_ids=ids, attention_mask=(ids > 0).astype(np.int32))
    return tower, arguments, (np.array([2, 0, 1, 0], np.int32),)


def _query_tower(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "num_users": 3,
        "user_vocab_size": 3,
        "profile_sizes": [2, 3],
        "embedding_dim": 4,
        "l2": 0.001,
        "name": "queries",
    }
    tower = QueryTower(**arguments)
    tower.set_tables(np.array([1, 2, 0, 0]), np.array([[0, 1], [1, 2], [1, 0], [0, 0]]))
    features = {
        "user": np.array([0, 2, 3], np.int32),
        "history": np.random.default_rng(2).normal(size=(3, 2, 4)).astype(np.float32),
        "history_mask": np.array([[True, False], [True, True], [False, False]]),
    }
    return tower, arguments, (features,)


def _sequence_query_tower(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "num_users": 3,
        "user_vocab_size": 3,
        "profile_sizes": [2],
        "embedding_dim": 4,
        "history_encoder": {
            "name": "attention",
            "max_length": 3,
            "num_blocks": 1,
            "num_heads": 2,
            "width": 4,
        },
        "user_dropout": 0.25,
        "name": "sequence_queries",
    }
    tower = QueryTower(**arguments)
    tower.set_tables(np.array([1, 2, 0, 0]), np.array([[0], [1], [1], [0]]))
    features = {
        "user": np.array([0, 2, 3], np.int32),
        "history": np.random.default_rng(4).normal(size=(3, 3, 4)).astype(np.float32),
        "history_mask": np.array([[False, True, True], [True, True, True], [False, False, False]]),
    }
    return tower, arguments, (features,)


def _two_tower_model(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "item_tower": {
            "num_items": 4,
            "item_vocab_size": 3,
            "text_dim": 3,
            "num_categories": 0,
            "embedding_dim": 4,
            "text_projection_dim": 4,
        },
        "query_tower": {
            "num_users": 2,
            "user_vocab_size": 3,
            "profile_sizes": [2],
            "embedding_dim": 4,
        },
        "history_length": 3,
        "temperature": 0.2,
        "logq_correction": False,
        "text_alignment": 0.3,
        "name": "two_tower",
    }
    model = TwoTowerModel(**arguments)
    model.item_tower.set_tables(
        np.array([1, 2, 0, 1]), np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32)
    )
    model.query_tower.set_tables(np.array([1, 2, 0]), np.array([[1], [0], [0]]))
    features = {
        "user": np.array([0, 1, 2], np.int32),
        "history": np.array([[0, 1, -1], [3, -1, -1], [-1, -1, -1]], np.int32),
    }
    return model, arguments, (features,)


def _next_item_two_tower_model(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "item_tower": {
            "num_items": 5,
            "item_vocab_size": 4,
            "embedding_dim": 4,
            "use_text": False,
            "use_categories": False,
        },
        "query_tower": {
            "num_users": 2,
            "user_vocab_size": 3,
            "embedding_dim": 4,
            "history_encoder": {"name": "gru", "units": 3, "dropout": 0.1},
        },
        "history_length": 3,
        "objective": "next_item",
        "loss": "full_softmax",
        "name": "next_item_two_tower",
    }
    model = TwoTowerModel(**arguments)
    model.item_tower.set_tables(np.array([1, 2, 3, 0, 1]))
    model.query_tower.set_tables(np.array([1, 2, 0]))
    features = {
        "user": np.array([0, 1, 2], np.int32),
        "history": np.array([[4, 1, 3], [-1, 2, 0], [-1, -1, -1]], np.int32),
    }
    return model, arguments, (features,)


def _text_encoder(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "model_path": bert_dir,
        "max_length": 16,
        "pooling": "mean",
        "normalize": True,
        "trainable_layers": 1,
        "name": "item_text",
    }
    texts = np.array(["Toy Story", "space rocket adventure", "", "the spy film about toys"])
    return TextEncoder(**arguments), arguments, (texts,)


def _lora_text_encoder(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "model_path": bert_dir,
        "max_length": 16,
        "lora_rank": 2,
        "lora_alpha": 4.0,
        "lora_layers": 1,
        "name": "lora_text",
    }
    texts = np.array(["Toy Story", "space rocket adventure", "", "the spy film about toys"])
    return TextEncoder(**arguments), arguments, (texts,)


def _lora_dense(bert_dir: str, vocab: list[str]) -> Case:
    dense = tf_keras.layers.Dense(3, activation="gelu", trainable=False, name="projection")
    arguments = {
        "dense": tf_keras.layers.serialize(dense),
        "rank": 2,
        "alpha": 6.0,
        "seed": 3,
        "name": "lora",
    }
    inputs = np.random.default_rng(25).normal(size=(2, 4, 5)).astype(np.float32)
    return LoRADense(**arguments), arguments, (inputs,)


def _cross_network(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "cross_layers": 2,
        "structure": "parallel",
        "projection_dim": 2,
        "deep_layers": [3],
        "dropout": 0.1,
        "name": "crossing",
    }
    features = np.random.default_rng(11).normal(size=(3, 4)).astype(np.float32)
    return CrossNetwork(**arguments), arguments, (features,)


def _ranking_arguments() -> dict[str, Any]:
    return {
        "item_tower": {
            "num_items": 4,
            "item_vocab_size": 3,
            "text_dim": 3,
            "num_categories": 2,
            "embedding_dim": 4,
            "text_projection_dim": 4,
            "normalize": False,
        },
        "query_tower": {"num_users": 2, "user_vocab_size": 3, "embedding_dim": 4, "normalize": False},
        "cross": {"cross_layers": 2, "structure": "stacked", "deep_layers": [5]},
        "objective": "ctr",
        "use_retrieval_score": True,
        "output_bias": 0.5,
    }


def _set_ranking_tables(model: RankingModel) -> None:
    rng = np.random.default_rng(12)
    model.item_tower.set_tables(
        np.array([1, 2, 0, 1]), rng.normal(size=(4, 3)).astype(np.float32), np.eye(4, 2, dtype=np.float32)
    )
    model.query_tower.set_tables(np.array([1, 2, 0]))


_RANKING_FEATURES = {
    "user": np.array([0, 1, 2], np.int32),
    "history": np.array([[0, 1, -1], [3, -1, -1], [-1, -1, -1]], np.int32),
    "item": np.array([[1, 3], [0, 2], [2, 2]], np.int32),
}


def _ranking_model(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {**_ranking_arguments(), "name": "ranking"}
    model = RankingModel(**arguments)
    _set_ranking_tables(model)
    scores = np.array([[0.5, -0.2], [0.1, 0.0], [1.0, 0.3]], np.float32)
    return model, arguments, ({**_RANKING_FEATURES, "retrieval_score": scores},)


def _item_item_ranking_model(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {**_ranking_arguments(), "residual_temperature": 0.1, "item_item": True, "name": "ranking_ii"}
    model = RankingModel(**arguments)
    _set_ranking_tables(model)
    model.set_item_item(np.random.default_rng(13).normal(size=(4, 4)).astype(np.float32), 1.5)
    scores = np.array([[0.5, -0.2], [0.1, 0.0], [1.0, 0.3]], np.float32)
    return model, arguments, ({**_RANKING_FEATURES, "retrieval_score": scores},)


def _multitask_model(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "ranking": _ranking_arguments(),
        "retrieval_weight": 0.5,
        "ranking_weight": 2.0,
        "temperature": 0.2,
        "remove_accidental_hits": False,
        "name": "multitask",
    }
    model = MultitaskModel(**arguments)
    _set_ranking_tables(model.ranking)
    return model, arguments, (dict(_RANKING_FEATURES),)


def _student_encoder(bert_dir: str, vocab: list[str]) -> Case:
    arguments = {
        "vocab_size": len(vocab),
        "output_dim": 6,
        "embedding_dim": 8,
        "num_layers": 1,
        "num_heads": 2,
        "max_length": 16,
        "normalize": True,
        "name": "student",
    }
    ids = np.array([[2, 7, 9, 3, 0], [2, 11, 3, 0, 0]], np.int32)
    return (
        StudentEncoder(**arguments),
        arguments,
        ({"input_ids": ids, "attention_mask": (ids > 0).astype(np.int32)},),
    )


CASES: dict[str, Callable[[str, list[str]], Case]] = {
    "MaskedMeanPooling": _masked_mean_pooling,
    "CumulativeMeanEncoder": _cumulative_mean_encoder,
    "CausalConvEncoder": _causal_conv_encoder,
    "GRUEncoder": _gru_encoder,
    "LSTMEncoder": _lstm_encoder,
    "CausalAttentionEncoder": _causal_attention_encoder,
    "ItemTower": _item_tower,
    "ItemTower/fine-tuned": _fine_tuned_item_tower,
    "ItemTower/adapted": _adapted_item_tower,
    "TextWhitening": _text_whitening,
    "TextMoEAdaptor": _text_moe_adaptor,
    "AlignmentLoss": _alignment_loss,
    "QueryTower": _query_tower,
    "QueryTower/attention": _sequence_query_tower,
    "TwoTowerModel": _two_tower_model,
    "TwoTowerModel/next_item": _next_item_two_tower_model,
    "TextEncoder": _text_encoder,
    "TextEncoder/lora": _lora_text_encoder,
    "LoRADense": _lora_dense,
    "StudentEncoder": _student_encoder,
    "CrossNetwork": _cross_network,
    "RankingModel": _ranking_model,
    "RankingModel/item_item": _item_item_ranking_model,
    "MultitaskModel": _multitask_model,
}


@pytest.fixture(scope="module")
def built(tiny_bert_dir, tiny_vocab) -> dict[str, Case]:
    return {name: factory(tiny_bert_dir, tiny_vocab) for name, factory in CASES.items()}


@pytest.fixture(scope="module")
def reloaded(built, keras_testing, tmp_path_factory) -> dict[str, tuple[Path, np.ndarray]]:
    """name -> (folder with the fresh process's outputs, outputs computed here)."""
    root = tmp_path_factory.mktemp("keras_round_trip")
    saved = {}
    for i, (name, (obj, _, args)) in enumerate(built.items()):
        folder = root / f"case_{i}"
        saved[name] = (folder, keras_testing.save_case(obj, args, folder, seed=i))
    keras_testing.outputs_in_fresh_process([folder for folder, _ in saved.values()])
    return saved


@pytest.mark.parametrize("case", CASES)
def test_config_round_trip_keeps_the_constructor_arguments(case, built, keras_testing):
    obj, arguments, _ = built[case]
    keras_testing.assert_config_round_trip(obj, arguments)


@pytest.mark.parametrize("case", CASES)
def test_fresh_process_rebuilds_loads_and_gives_the_same_outputs(case, reloaded, keras_testing):
    folder, expected = reloaded[case]
    keras_testing.assert_fresh_process_outputs(folder, expected)


def _registrations(path: Path) -> dict[str, list[str]]:
    """class name -> the ``package=`` of each ``register_keras_serializable`` decorating it."""
    found: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ClassDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith(
                "register_keras_serializable"
            ):
                packages = [ast.literal_eval(k.value) for k in decorator.keywords if k.arg == "package"]
                found.setdefault(node.name, []).extend(packages or ["<none>"])
    return found


def test_every_registered_class_has_a_case():
    registered: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        registered.update(_registrations(path))
    assert all(packages == ["tfrec_llm"] for packages in registered.values()), registered
    assert set(registered) == {name.split("/")[0] for name in CASES}
