"""Fixtures for the model tests: a tiny random BERT folder whose vocabulary covers the item
texts of the clustered data set (``tests/conftest.py``), adapted from ``tests/text/conftest.py``
(conftest fixtures are directory-scoped)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

# isort: off
import tfrec_llm  # noqa: F401  (selects Keras 2 before transformers loads TensorFlow)
from transformers import BertConfig, TFBertModel

# isort: on

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "space", "rocket", "adventure", "kitchen", "cooking", "recipe", "story", "number",
    "genres", "sci", "fi", "action", "comedy", "drama",
]  # fmt: skip
PUNCT = list(".,()':!?-|")
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
TINY_VOCAB = SPECIALS + WORDS + PUNCT + LETTERS + ["##" + c for c in LETTERS]
assert len(set(TINY_VOCAB)) == len(TINY_VOCAB), "duplicate tokens would shift the ids"
TINY_LAYERS = 2
TINY_HIDDEN = 16


def tiny_config() -> BertConfig:
    return BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=TINY_HIDDEN,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def random_tiny_bert(seed: int) -> TFBertModel:
    """A built tiny TFBertModel whose weights are drawn from a seeded numpy generator."""
    rng = np.random.default_rng(seed)
    model = TFBertModel(tiny_config())
    model(model.dummy_inputs, training=False)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if weight.name.endswith("gamma:0"):
            value = 1.0 + rng.normal(0.0, 0.1, shape)
        else:
            value = rng.normal(0.0, 0.3, shape)
        weight.assign(value.astype(np.float32))
    return model


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> str:
    """TF-style tiny BERT folder: config.json + tf_model.h5 + vocab.txt + tokenizer.json."""
    from tokenizers.implementations import BertWordPieceTokenizer

    folder = str(tmp_path_factory.mktemp("tiny_bert_models"))
    random_tiny_bert(seed=0).save_pretrained(folder)
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(TINY_VOCAB) + "\n")
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as handle:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, handle)
    fast = BertWordPieceTokenizer(os.path.join(folder, "vocab.txt"), lowercase=True)
    fast.save(os.path.join(folder, "tokenizer.json"))
    return folder
