"""Shared fixtures: a tiny clustered data set, a tiny random BERT, MiniLM, test helpers.

Data: two taste clusters: users 1..N/2 interact mostly with "space" items, the others mostly
with "cooking" items, in a fixed order within each cluster, so a trained model must beat
popularity and text is informative (each item's title names its cluster).

Tiny BERT: one random 2-layer BERT (seeded numpy weights) whose vocabulary covers the text
tests' sentences ("Toy Story", "the spy film about toys") and the data set's item texts, saved
as the folders the loaders accept: hub style with PyTorch-named safetensors (``tiny_model_dir``),
the same plus ``tokenizer.json`` (``tiny_fast_dir``), TF ``tf_model.h5`` (``tiny_h5_dir``), and
``tf_model.h5`` plus ``tokenizer.json`` (``tiny_bert_dir``, what the model tests fine-tune).
``transformers`` is imported only by the fixtures that need it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
import yaml

import tfrec_llm  # noqa: F401  (Keras 2 before TensorFlow)
from tfrec_llm.data.schema import RecDataset

if TYPE_CHECKING:
    from transformers import BertConfig, TFBertModel

TESTS = Path(__file__).resolve().parent


def make_clustered_dataset(
    num_users: int = 40, num_items: int = 30, per_user: int = 12, seed: int = 0
) -> RecDataset:
    """A two-cluster data set (synthetic, deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    half = num_items // 2
    rows = []
    for u in range(1, num_users + 1):
        cluster = 0 if u <= num_users // 2 else 1
        own = np.arange(half) + cluster * half
        other = np.arange(half) + (1 - cluster) * half
        picks = list(rng.choice(own, size=per_user - 2, replace=False)) + list(
            rng.choice(other, size=2, replace=False)
        )
        rng.shuffle(picks)
        for t, item in enumerate(picks):
            rows.append((str(u), str(item + 1), 1_000_000 + 100 * u + t))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    interactions["timestamp"] = interactions["timestamp"].astype(np.int64)
    kinds = ["space rocket adventure", "kitchen cooking recipe"]
    items = pd.DataFrame(
        {
            "item_id": [str(i + 1) for i in range(num_items)],
            "title": [f"{kinds[i // half]} story number {i + 1}" for i in range(num_items)],
            "year": ["1995"] * num_items,
            "genres": ["Sci-Fi|Action" if i < half else "Comedy|Drama" for i in range(num_items)],
        }
    )
    users = pd.DataFrame(
        {
            "user_id": [str(u) for u in range(1, num_users + 1)],
            "age": [str(20 + u % 3) for u in range(1, num_users + 1)],
            "gender": ["M" if u % 2 else "F" for u in range(1, num_users + 1)],
            "occupation": ["engineer" if u <= num_users // 2 else "chef" for u in range(1, num_users + 1)],
        }
    )
    return RecDataset(
        name="tiny-clusters",
        interactions=interactions,
        items=items,
        users=users,
        item_text_fields=("title", "year", "genres"),
        item_categorical_fields=("genres",),
        user_profile_fields=("age", "gender", "occupation"),
    )


@pytest.fixture()
def tiny_dataset() -> RecDataset:
    return make_clustered_dataset()


@pytest.fixture()
def dataset_factory():
    """The ``make_clustered_dataset`` function, for tests that need other sizes."""
    return make_clustered_dataset


@pytest.fixture()
def tiny_csv_config(tiny_dataset, tmp_path) -> tuple[str, Path]:
    """The tiny data set written as CSV files, and a YAML config (ID-sized model) that reads them.

    Returns:
        (config path, the folder holding the files; runs/ and exports/ go there too).
    """
    tiny_dataset.interactions.to_csv(tmp_path / "interactions.csv", index=False)
    tiny_dataset.items.to_csv(tmp_path / "items.csv", index=False)
    tiny_dataset.users.to_csv(tmp_path / "users.csv", index=False)
    cfg = {
        "data": {
            "source": "csv",
            "path": str(tmp_path / "interactions.csv"),
            "items_path": str(tmp_path / "items.csv"),
            "users_path": str(tmp_path / "users.csv"),
            "item_text_fields": ["title", "year", "genres"],
            "item_categorical_fields": ["genres"],
            "user_profile_fields": ["age", "gender", "occupation"],
        },
        "model": {"embedding_dim": 16, "history_length": 5},
        "train": {"model_dir": str(tmp_path / "runs"), "epochs": 2, "batch_size": 32},
        "export": {"export_dir": str(tmp_path / "exports")},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path), tmp_path


# ---------------------------------------------------------------- a small two-tower model


class SmallTwoTower(NamedTuple):
    """What ``make_small_two_tower`` returns."""

    split: Any
    catalog: Any
    text_embeddings: np.ndarray
    model: Any


def make_small_two_tower(dataset: RecDataset, text_seed: int = 1, **model_fields: Any) -> SmallTwoTower:
    """LOO split, catalog, random 6-d item texts (seeded) and an untrained two-tower model.

    The shape the retrieval, export and serving tests build on: ``ModelConfig(embedding_dim=8,
    history_length=4)``, overridable through ``model_fields``.
    """
    from tfrec_llm.config import ModelConfig
    from tfrec_llm.data.catalog import build_catalog
    from tfrec_llm.data.splits import make_split
    from tfrec_llm.experiments.builders import build_two_tower

    split = make_split(dataset, "loo")
    catalog = build_catalog(dataset, split)
    text = np.random.default_rng(text_seed).normal(size=(catalog.num_items, 6)).astype(np.float32)
    model_config = ModelConfig(**{"embedding_dim": 8, "history_length": 4, **model_fields})
    return SmallTwoTower(split, catalog, text, build_two_tower(model_config, catalog, text))


@pytest.fixture()
def small_two_tower():
    """The ``make_small_two_tower`` function (call it with a data set and ModelConfig fields)."""
    return make_small_two_tower


# ---------------------------------------------------------------- tiny random BERT

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    # the text tests' sentences
    "toy", "story", "the", "an", "film", "about", "animated", "spy", "toys", "life",
    "genres", "animation", "comedy", "drama", "action", "secret", "agent", "come", "to",
    "that", "children", "##ing",
    # the item texts of make_clustered_dataset
    "space", "rocket", "adventure", "kitchen", "cooking", "recipe", "number", "sci", "fi",
]  # fmt: skip
PUNCT = list(".,()':!?-|")
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
TINY_VOCAB = SPECIALS + WORDS + PUNCT + LETTERS + ["##" + c for c in LETTERS]
assert len(set(TINY_VOCAB)) == len(TINY_VOCAB), "duplicate tokens would shift the ids"
TINY_LAYERS = 2
TINY_HIDDEN = 32


def tiny_bert_config() -> BertConfig:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=TINY_HIDDEN,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def random_tiny_bert(seed: int) -> TFBertModel:
    """A built tiny TFBertModel whose weights are drawn from a seeded numpy generator."""
    from transformers import TFBertModel

    rng = np.random.default_rng(seed)
    model = TFBertModel(tiny_bert_config())
    model(model.dummy_inputs, training=False)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if weight.name.endswith("gamma:0"):
            value = 1.0 + rng.normal(0.0, 0.1, shape)
        else:
            value = rng.normal(0.0, 0.3, shape)
        weight.assign(value.astype(np.float32))
    return model


def pytorch_state_dict(model: TFBertModel, prefix: str = "") -> dict[str, np.ndarray]:
    """The model's weights under PyTorch BertModel names (kernels transposed)."""
    from transformers.modeling_tf_pytorch_utils import convert_tf_weight_name_to_pt_weight_name

    state = {}
    for weight in model.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(weight.name, tf_weight_shape=weight.shape)
        name = name.removeprefix("bert.")  # hub checkpoints of BertModel carry no prefix
        value = weight.numpy()
        if transpose.name == "SIMPLE":
            value = value.T
        state[prefix + name] = np.ascontiguousarray(value)
    return state


def weights_by_name(model: TFBertModel) -> dict[str, np.ndarray]:
    """Weights keyed by name without the model-level scope (which differs per instance)."""
    return {w.name.split("/", 1)[1]: w.numpy() for w in model.weights}


def write_tokenizer_files(folder: str) -> None:
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(TINY_VOCAB) + "\n")
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as handle:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, handle)


def write_tokenizer_json(folder: str) -> None:
    """A tokenizer.json equivalent to vocab.txt, as the hub ships next to it."""
    from tokenizers.implementations import BertWordPieceTokenizer

    fast = BertWordPieceTokenizer(os.path.join(folder, "vocab.txt"), lowercase=True)
    fast.save(os.path.join(folder, "tokenizer.json"))


@pytest.fixture(scope="session")
def tiny_reference() -> TFBertModel:
    """The tiny model whose weights every tiny folder holds."""
    return random_tiny_bert(seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_reference) -> str:
    """Hub-style folder: config.json, vocab.txt, PyTorch-named weights; no tokenizer.json."""
    import safetensors.numpy

    folder = str(tmp_path_factory.mktemp("tiny_pt"))
    tiny_bert_config().save_pretrained(folder)
    write_tokenizer_files(folder)
    safetensors.numpy.save_file(
        pytorch_state_dict(tiny_reference),
        os.path.join(folder, "model.safetensors"),
        metadata={"format": "pt"},
    )
    return folder


@pytest.fixture(scope="session")
def tiny_fast_dir(tmp_path_factory, tiny_model_dir) -> str:
    """The tiny folder plus a tokenizer.json (the fast offline tokenization path)."""
    folder = str(tmp_path_factory.mktemp("tiny_fast"))
    shutil.copytree(tiny_model_dir, folder, dirs_exist_ok=True)
    write_tokenizer_json(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_h5_dir(tmp_path_factory, tiny_reference) -> str:
    """TF-style folder written by TFBertModel.save_pretrained: config.json + tf_model.h5."""
    folder = str(tmp_path_factory.mktemp("tiny_h5"))
    tiny_reference.save_pretrained(folder)
    write_tokenizer_files(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, tiny_h5_dir) -> str:
    """TF-style tiny BERT folder: config.json + tf_model.h5 + vocab.txt + tokenizer.json."""
    folder = str(tmp_path_factory.mktemp("tiny_bert_models"))
    shutil.copytree(tiny_h5_dir, folder, dirs_exist_ok=True)
    write_tokenizer_json(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_vocab() -> list[str]:
    """The tiny vocabulary, one token per id (ids = list positions)."""
    return list(TINY_VOCAB)


@pytest.fixture(scope="session")
def tiny_weights(tiny_reference) -> dict[str, np.ndarray]:
    """The tiny reference weights keyed by name without the model-level scope."""
    return weights_by_name(tiny_reference)


@pytest.fixture(scope="session")
def tiny_state_dict(tiny_reference) -> dict[str, np.ndarray]:
    """The tiny reference weights under PyTorch BertModel names."""
    return pytorch_state_dict(tiny_reference)


# ---------------------------------------------------------------- the real model and data


@pytest.fixture(scope="session")
def minilm_path() -> str:
    from tfrec_llm.text.bert_loader import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def minilm_encoder(minilm_path):
    """The bundled MiniLM as a frozen TextEncoder, loaded once per test session (~5 s)."""
    from tfrec_llm.text.encoder import TextEncoder

    return TextEncoder(minilm_path)


@pytest.fixture(scope="session")
def ml100k_titles() -> list[str]:
    """All 1,682 ML-100K titles from the copy inside the recbole wheel (never imported).

    The file is UTF-8 (e.g. "Misérables, Les"); read as latin-1 its 9 accented titles become
    mojibake such as "MisÃ©rables".
    """
    spec = importlib.util.find_spec("recbole")
    assert spec is not None and spec.submodule_search_locations
    path = os.path.join(spec.submodule_search_locations[0], "dataset_example", "ml-100k", "ml-100k.item")
    frame = pd.read_csv(path, sep="\t", encoding="utf-8", dtype=str, keep_default_na=False)
    return frame["movie_title:token_seq"].tolist()


# ---------------------------------------------------------------- helper modules by path


def load_test_module(path: Path, name: str) -> ModuleType:
    """Imports a helper file of tests/ as module ``name`` (pytest runs in importlib mode)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def keras_testing() -> ModuleType:
    """tests/keras_testing.py: the config and fresh-process save/load round-trip checks."""
    return load_test_module(TESTS / "keras_testing.py", "keras_testing")


@pytest.fixture(scope="session")
def retrieval_fixture() -> ModuleType:
    """tests/serving/retrieval_fixture.py: the contract-shaped retrieval SavedModel helpers."""
    return load_test_module(TESTS / "serving" / "retrieval_fixture.py", "retrieval_fixture")


@pytest.fixture(scope="session")
def retrieval_templates(tmp_path_factory, retrieval_fixture) -> dict[int, str]:
    """{1: path, 2: path}: fixture SavedModels for versions 1 and 2, saved once per session."""
    root = tmp_path_factory.getbasetemp() / "retrieval_templates"
    paths = {v: str(root / str(v)) for v in (1, 2)}
    for version, path in paths.items():
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            retrieval_fixture.save_retrieval_fixture(path, version)
    return paths
