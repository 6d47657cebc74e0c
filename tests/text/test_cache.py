"""Tests for tfrec_llm.text.cache: the on-disk embedding cache keyed by model and text hash."""

from __future__ import annotations

import hashlib
import logging
import os

import numpy as np
import pytest

import tfrec_llm  # noqa: F401
from tfrec_llm.errors import ConfigError, DataError
from tfrec_llm.text.cache import EmbeddingCache, text_hash


class FakeEncoder:
    """Deterministic 3-d 'embedding' [len, sum of code points, 1] that records its calls."""

    def __init__(self, dim: int = 3) -> None:
        self.calls: list[list[str]] = []
        self.dim = dim

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([self.vector(text) for text in texts], dtype=np.float32).reshape(-1, self.dim)

    def vector(self, text: str) -> list[float]:
        return ([float(len(text)), float(sum(map(ord, text))), 1.0] * self.dim)[: self.dim]


def test_text_hash_is_sha256_of_utf8():
    assert text_hash("Café") == hashlib.sha256("Café".encode()).hexdigest()


def test_first_call_encodes_each_distinct_text_once_in_input_order(tmp_path):
    cache, encoder = EmbeddingCache(str(tmp_path)), FakeEncoder()
    texts = ["b", "aa", "b", "", "aa"]
    vectors = cache.get_or_encode("m1", texts, encoder)
    assert encoder.calls == [["b", "aa", ""]]
    assert (cache.hits, cache.misses) == (0, 3)
    expected = np.array([[1, 98, 1], [2, 194, 1], [1, 98, 1], [0, 0, 1], [2, 194, 1]], np.float32)
    np.testing.assert_array_equal(vectors, expected)
    assert vectors.dtype == np.float32


def test_second_call_encodes_nothing_and_returns_identical_rows(tmp_path):
    encoder = FakeEncoder()
    first = EmbeddingCache(str(tmp_path)).get_or_encode("m1", ["x", "yy"], encoder)
    cache = EmbeddingCache(str(tmp_path))  # a new object reads the file
    second = cache.get_or_encode("m1", ["yy", "x", "x"], encoder)
    assert len(encoder.calls) == 1 and (cache.hits, cache.misses) == (2, 0)
    np.testing.assert_array_equal(second, first[[1, 0, 0]])


def test_changing_one_text_encodes_exactly_that_text(tmp_path):
    cache, encoder = EmbeddingCache(str(tmp_path)), FakeEncoder()
    cache.get_or_encode("m1", ["a", "b", "c"], encoder)
    vectors = cache.get_or_encode("m1", ["a", "B", "c"], encoder)
    assert encoder.calls[1] == ["B"] and (cache.hits, cache.misses) == (2, 1)
    np.testing.assert_array_equal(vectors[1], encoder.vector("B"))
    # the file now holds all four texts
    cache.get_or_encode("m1", ["a", "b", "c", "B"], encoder)
    assert cache.misses == 0 and len(encoder.calls) == 2


def test_model_keys_are_kept_apart(tmp_path):
    cache = EmbeddingCache(str(tmp_path))
    cache.get_or_encode("m1", ["a"], FakeEncoder())
    wide = cache.get_or_encode("m2", ["a"], FakeEncoder(dim=5))
    assert wide.shape == (1, 5) and cache.misses == 1
    assert cache.path_for("m1") != cache.path_for("m2")
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".npz")]) == 2


def test_writes_leave_no_temporary_files(tmp_path):
    cache = EmbeddingCache(str(tmp_path / "nested" / "dir"))
    cache.get_or_encode("m1", ["a", "b"], FakeEncoder())
    assert os.listdir(tmp_path / "nested" / "dir") == [os.path.basename(cache.path_for("m1"))]


def test_corrupt_file_is_logged_and_recomputed(tmp_path, caplog):
    cache, encoder = EmbeddingCache(str(tmp_path)), FakeEncoder()
    cache.get_or_encode("m1", ["a", "b"], encoder)
    with open(cache.path_for("m1"), "wb") as handle:
        handle.write(b"not an npz file")
    with caplog.at_level(logging.WARNING, logger="tfrec_llm.text.cache"):
        vectors = cache.get_or_encode("m1", ["a", "b"], encoder)
    assert "is unreadable" in caplog.text
    assert cache.misses == 2
    np.testing.assert_array_equal(vectors, [encoder.vector("a"), encoder.vector("b")])
    cache.get_or_encode("m1", ["a", "b"], encoder)  # the rewritten file is good again
    assert cache.misses == 0


def _write_npz(path: str, **arrays) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


@pytest.mark.parametrize(
    "arrays,reason",
    [
        (
            {"version": 1, "model_key": "m1", "keys": ["h1", "h2"], "vectors": np.ones((3, 3))},
            "2 keys but vectors of shape",
        ),
        (
            {"version": 1, "model_key": "other", "keys": ["h1"], "vectors": np.ones((1, 3))},
            "it belongs to model_key 'other'",
        ),
        (
            {"version": 7, "model_key": "m1", "keys": ["h1"], "vectors": np.ones((1, 3))},
            "format version 7",
        ),
        (
            {"version": 1, "model_key": "m1", "keys": ["h1"], "vectors": np.full((1, 3), np.nan)},
            "non-finite vectors",
        ),
        (
            {"version": 1, "model_key": "m1", "keys": ["h1", "h1"], "vectors": np.ones((2, 3))},
            "duplicate text hashes",
        ),
    ],
)
def test_inconsistent_file_is_logged_and_recomputed(tmp_path, caplog, arrays, reason):
    cache, encoder = EmbeddingCache(str(tmp_path)), FakeEncoder()
    _write_npz(cache.path_for("m1"), **{k: np.asarray(v) for k, v in arrays.items()})
    with caplog.at_level(logging.WARNING, logger="tfrec_llm.text.cache"):
        vectors = cache.get_or_encode("m1", ["a"], encoder)
    assert "is inconsistent" in caplog.text and reason in caplog.text
    np.testing.assert_array_equal(vectors, [encoder.vector("a")])


def test_cached_vectors_of_another_width_are_never_served(tmp_path, caplog):
    cache = EmbeddingCache(str(tmp_path))
    cache.get_or_encode("m1", ["a", "b"], FakeEncoder(dim=3))
    wider = FakeEncoder(dim=4)
    with caplog.at_level(logging.WARNING, logger="tfrec_llm.text.cache"):
        vectors = cache.get_or_encode("m1", ["a", "c"], wider)  # a hit, c a miss
    assert "holds 3-d vectors but the encoder gives 4-d" in caplog.text
    assert wider.calls[-1] == ["a", "c"] and (cache.hits, cache.misses) == (0, 2)
    np.testing.assert_array_equal(vectors, [wider.vector("a"), wider.vector("c")])


def test_dim_argument_discards_a_file_of_another_width_even_without_misses(tmp_path, caplog):
    cache = EmbeddingCache(str(tmp_path))
    cache.get_or_encode("m1", ["a"], FakeEncoder(dim=3))
    wider = FakeEncoder(dim=4)
    with caplog.at_level(logging.WARNING, logger="tfrec_llm.text.cache"):
        vectors = cache.get_or_encode("m1", ["a"], wider, dim=4)
    assert "holds 3-d vectors, expected 4-d" in caplog.text
    assert vectors.shape == (1, 4) and cache.misses == 1


def test_encode_fn_returning_the_wrong_shape_is_an_error(tmp_path):
    cache = EmbeddingCache(str(tmp_path))
    with pytest.raises(
        DataError,
        match=r"encode_fn returned an array of shape \(1, 3\) for 2 texts; expected \[2, dim\]",
    ):
        cache.get_or_encode("m1", ["a", "b"], lambda texts: np.zeros((1, 3)))
    with pytest.raises(DataError, match=r"shape \(2, 3\) for 2 texts; expected \[2, 8\]"):
        cache.get_or_encode("m1", ["a", "b"], FakeEncoder(), dim=8)
    assert not os.path.exists(cache.path_for("m1"))


def test_empty_input_returns_an_empty_matrix(tmp_path):
    cache = EmbeddingCache(str(tmp_path))
    assert cache.get_or_encode("m1", [], FakeEncoder()).shape == (0, 0)
    assert cache.get_or_encode("m1", [], FakeEncoder(), dim=3).shape == (0, 3)
    cache.get_or_encode("m1", ["a"], FakeEncoder())
    assert cache.get_or_encode("m1", [], FakeEncoder()).shape == (0, 3)


@pytest.mark.parametrize("model_key", ["", None, 3])
def test_invalid_model_key_is_rejected(tmp_path, model_key):
    with pytest.raises(ConfigError, match=r"model_key=.* is invalid: expected a non-empty str"):
        EmbeddingCache(str(tmp_path)).get_or_encode(model_key, ["a"], FakeEncoder())


def test_non_string_text_is_rejected(tmp_path):
    with pytest.raises(DataError, match=r"texts\[1\] is NoneType None, expected str"):
        EmbeddingCache(str(tmp_path)).get_or_encode("m1", ["a", None], FakeEncoder())


def test_invalid_directory_is_rejected():
    with pytest.raises(ConfigError, match=r"directory='' is invalid: expected a folder path"):
        EmbeddingCache("")


def test_minilm_cache_hits_return_identical_arrays_and_reencode_one_change(
    tmp_path, minilm_encoder, minilm_path, ml100k_titles
):
    from tfrec_llm.text.bert_loader import model_fingerprint
    from tfrec_llm.text.encoder import encode_texts

    calls: list[int] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return encode_texts(minilm_encoder, texts)

    key = f"{model_fingerprint(minilm_path)}-len{minilm_encoder.max_length}-{minilm_encoder.pooling}"
    titles = ml100k_titles[:50]
    cache = EmbeddingCache(str(tmp_path))
    first = cache.get_or_encode(key, titles, encode, dim=minilm_encoder.hidden_size)
    assert first.shape == (50, 384) and calls == [50]

    second = cache.get_or_encode(key, titles, encode, dim=minilm_encoder.hidden_size)
    assert cache.misses == 0 and cache.hits == 50 and calls == [50]
    np.testing.assert_array_equal(second, first)

    changed = titles[:7] + ["Toy Story 2 (1999)"] + titles[8:]
    third = cache.get_or_encode(key, changed, encode, dim=minilm_encoder.hidden_size)
    assert cache.misses == 1 and calls == [50, 1]
    np.testing.assert_array_equal(np.delete(third, 7, axis=0), np.delete(first, 7, axis=0))
    np.testing.assert_allclose(third[7], encode_texts(minilm_encoder, ["Toy Story 2 (1999)"])[0], atol=1e-6)
