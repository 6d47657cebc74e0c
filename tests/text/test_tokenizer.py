"""Tests for tfrec_llm.text.tokenizer: the in-graph, classic-ops BERT tokenizer."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

import tfrec_llm  # noqa: F401
from tfrec_llm.errors import ConfigError
from tfrec_llm.text.tokenizer import load_tokenizer


def _ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """Unpadded ids per text."""
    batch = tokenizer(tf.constant(texts))
    ids = batch["input_ids"].numpy()
    lengths = batch["attention_mask"].numpy().sum(axis=1)
    return [row[:length].tolist() for row, length in zip(ids, lengths, strict=True)]


def test_tokenizer_uses_classic_tf_text_ops(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    assert isinstance(tokenizer.tf_tokenizer, tf_text.BertTokenizer)
    assert not isinstance(tokenizer.tf_tokenizer, tf_text.FastBertTokenizer)
    assert (tokenizer.padding, tokenizer.truncation, tokenizer.max_length) == ("longest", True, 64)


def test_tokenizer_ids_mask_and_padding_by_hand(tiny_model_dir, tiny_vocab):
    tokenizer = load_tokenizer(tiny_model_dir)
    batch = tokenizer(tf.constant(["Toy Story!", "The spy"]))
    v = tiny_vocab.index
    # "Toy Story!" -> [CLS] toy story ! [SEP]; "The spy" -> [CLS] the spy [SEP] [PAD]
    expected_ids = [
        [v("[CLS]"), v("toy"), v("story"), v("!"), v("[SEP]")],
        [v("[CLS]"), v("the"), v("spy"), v("[SEP]"), v("[PAD]")],
    ]
    np.testing.assert_array_equal(batch["input_ids"].numpy(), expected_ids)
    np.testing.assert_array_equal(batch["attention_mask"].numpy(), [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])


def test_tokenizer_splits_unknown_words_into_wordpieces(tiny_model_dir, tiny_vocab):
    tokenizer = load_tokenizer(tiny_model_dir)
    v = tiny_vocab.index
    # "toys" is a word; "Toyz" is not: t ##o ##y ##z (greedy longest match from the left).
    assert _ids(tokenizer, ["toys", "Toyz"]) == [
        [v("[CLS]"), v("toys"), v("[SEP]")],
        [v("[CLS]"), v("toy"), v("##z"), v("[SEP]")],
    ]


def test_tokenizer_truncates_to_max_length_including_special_tokens(tiny_model_dir, tiny_vocab):
    tokenizer = load_tokenizer(tiny_model_dir, max_length=4)
    v = tiny_vocab.index
    assert _ids(tokenizer, ["the spy film about toys", ""]) == [
        [v("[CLS]"), v("the"), v("spy"), v("[SEP]")],
        [v("[CLS]"), v("[SEP]")],
    ]


def test_tokenizer_reads_tokenizer_json_when_vocab_txt_is_absent(tmp_path, tiny_fast_dir, tiny_vocab):
    folder = str(tmp_path / "json_only")
    shutil.copytree(tiny_fast_dir, folder, ignore=shutil.ignore_patterns("vocab.txt"))
    tokenizer = load_tokenizer(folder)
    v = tiny_vocab.index
    assert _ids(tokenizer, ["animated film"]) == [[v("[CLS]"), v("animated"), v("film"), v("[SEP]")]]


@pytest.mark.parametrize("max_length", [1, 513, 0, "64", 64.0, True])
def test_tokenizer_rejects_invalid_max_length(tiny_model_dir, max_length):
    with pytest.raises(ConfigError, match=r"max_length=.* is invalid: expected an int in \[2, 512\]"):
        load_tokenizer(tiny_model_dir, max_length=max_length)


def test_tokenizer_rejects_a_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="model_path=.*missing.* is not a directory"):
        load_tokenizer(str(tmp_path / "missing"))


def test_tokenizer_names_the_missing_vocabulary(tmp_path):
    open(tmp_path / "config.json", "w").close()
    with pytest.raises(
        ConfigError, match=r"lacks vocab\.txt \(and tokenizer\.json\); it holds \['config\.json'\]"
    ):
        load_tokenizer(str(tmp_path))


def test_minilm_in_graph_ids_equal_fast_tokenizer_ids_on_ml100k_titles(minilm_path, ml100k_titles):
    from tokenizers import Tokenizer

    accented = [title for title in ml100k_titles if not title.isascii()]
    titles = accented + ml100k_titles[: 200 - len(accented)]
    assert len(titles) == 200 and len(accented) == 9
    fast = Tokenizer.from_file(os.path.join(minilm_path, "tokenizer.json"))
    fast.no_padding()
    fast.enable_truncation(max_length=64)
    expected = [encoding.ids for encoding in fast.encode_batch(titles)]

    assert _ids(load_tokenizer(minilm_path, max_length=64), titles) == expected


def test_minilm_in_graph_tokenizer_applies_nfkc_where_fast_tokenizer_does_not(minilm_path):
    # A known difference (why encode_texts normalises first): TF Text case-folds with ICU
    # NFKC_Casefold, so the ligature "ﬁ" becomes "fi"; the Hugging Face tokenizer keeps it.
    from tokenizers import Tokenizer

    fast = Tokenizer.from_file(os.path.join(minilm_path, "tokenizer.json"))
    in_graph = _ids(load_tokenizer(minilm_path), ["\ufb01ne", "fine"])
    assert in_graph[0] == in_graph[1]
    assert fast.encode("\ufb01ne").ids != fast.encode("fine").ids
