"""Tests for tfrec_llm.text.fast_encode: the batch plan, and vectors equal to plain BERT's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf

import tfrec_llm  # noqa: F401
from tfrec_llm.errors import ConfigError
from tfrec_llm.text.encoder import TextEncoder, encode_texts
from tfrec_llm.text.fast_encode import encode_token_ids, padded_shapes, plan_batches

MAX_LENGTH = 12
TEXTS = [
    "the spy film about toys that come to life and the toys that spy on the film " * 4,  # > max
    "",
    "Toy Story",
    "a",
    "Animated toys come to life!",
    "toy",
    "the spy film about toys",
    "Toy Story",
    "spy",
]


def _cost(lengths: np.ndarray, runs: list[np.ndarray], call_cost: int) -> int:
    return sum(len(r) * int(lengths[r].max()) for r in runs) + call_cost * len(runs)


def _brute_force_cost(lengths: np.ndarray, max_rows: int, call_cost: int) -> int:
    """Least cost over every cut of the sorted lengths into runs of <= max_rows (2^(n-1) cuts)."""
    ordered = np.sort(lengths)
    best = None
    for cuts in itertools.product([False, True], repeat=len(ordered) - 1):
        bounds = [0] + [i + 1 for i, cut in enumerate(cuts) if cut] + [len(ordered)]
        runs = [ordered[a:b] for a, b in zip(bounds, bounds[1:])]
        if any(len(run) > max_rows for run in runs):
            continue
        cost = sum(len(run) * int(run.max()) for run in runs) + call_cost * len(runs)
        best = cost if best is None else min(best, cost)
    return best


def test_plan_of_the_docstring_example():
    assert [b.tolist() for b in plan_batches([3, 3, 9, 3], 2, call_cost_tokens=0)] == [
        [0, 1],
        [3],
        [2],
    ]


def test_plan_merges_a_short_text_when_padding_it_is_cheaper_than_a_pass():
    # Lengths 9, 10: one pass costs 2 * 10 + c; two cost 9 + 10 + 2c. Merge iff 1 < c.
    assert [b.tolist() for b in plan_batches([10, 9], 8, call_cost_tokens=5)] == [[1, 0]]
    assert [b.tolist() for b in plan_batches([10, 9], 8, call_cost_tokens=0)] == [[1], [0]]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_rows,call_cost", [(1, 5), (3, 0), (3, 7), (4, 30), (8, 2)])
def test_plan_is_optimal_and_covers_every_text_once(seed, max_rows, call_cost):
    lengths = np.random.default_rng(seed).integers(2, 20, size=8)
    runs = plan_batches(lengths, max_rows, call_cost)
    assert sorted(np.concatenate(runs).tolist()) == list(range(len(lengths)))
    assert all(1 <= len(run) <= max_rows for run in runs)
    flat = lengths[np.concatenate(runs)]
    assert np.all(np.diff(flat) >= 0)  # passes in ascending length, sorted inside
    assert _cost(lengths, runs, call_cost) == _brute_force_cost(lengths, max_rows, call_cost)


def test_plan_with_one_length_fills_whole_passes_and_keeps_input_order():
    runs = plan_batches([5] * 7, 3, call_cost_tokens=1)
    assert [run.tolist() for run in runs] == [[0, 1, 2], [3, 4, 5], [6]]
    assert padded_shapes([5] * 7, runs) == [(3, 5), (3, 5), (1, 5)]
    assert plan_batches([], 4) == []


@pytest.mark.parametrize(
    "kwargs", [{"max_rows": 0}, {"max_rows": True}, {"max_rows": 2.0}, {"call_cost_tokens": -1}]
)
def test_plan_rejects_invalid_settings(kwargs):
    with pytest.raises(ConfigError, match="is invalid"):
        plan_batches([3, 4], **{"max_rows": 2, **kwargs})


def test_encode_token_ids_pads_each_pass_to_its_longest_and_restores_input_order():
    ids = [[1, 2, 3], [4], [5, 6], [7, 8, 9, 10], [11, 12]]
    widths = []

    def encode(input_ids, mask):  # row -> [sum of real ids, real length, padded width]
        input_ids, mask = input_ids.numpy(), mask.numpy()
        widths.append(input_ids.shape[1])
        assert np.all(input_ids[mask == 0] == 99)
        width = np.full(len(mask), input_ids.shape[1])
        return np.stack([(input_ids * mask).sum(1), mask.sum(1), width], axis=1)

    got = encode_token_ids(encode, ids, 3, pad_id=99, max_rows=2, call_cost_tokens=0)
    assert got[:, 0].tolist() == [6, 4, 11, 34, 23] and got[:, 1].tolist() == [3, 1, 2, 4, 2]
    assert got[:, 2].tolist() == [3, 1, 2, 4, 2]  # zero padding: each pass of one length
    assert sorted(widths) == [1, 2, 3, 4]


@pytest.fixture(scope="module")
def tiny_fast_encoder(tiny_fast_dir):
    return TextEncoder(tiny_fast_dir, max_length=MAX_LENGTH)


def test_encode_texts_equals_plain_tf_bert_mean_pooling(tiny_fast_encoder, tiny_reference):
    """Texts of 2 to 12 tokens (an empty one, one cut at max_length) against a plain
    ``TFBertModel`` forward pass over the batch padded to its longest, pooled in numpy."""
    batch = tiny_fast_encoder.tokenizer(tf.constant(TEXTS))
    ids = batch["input_ids"].numpy().astype(np.int32)
    mask = batch["attention_mask"].numpy().astype(np.int32)
    lengths = mask.sum(axis=1)
    assert lengths.max() == MAX_LENGTH and lengths.min() == 2  # truncated, and [CLS] [SEP]
    hidden = tiny_reference(input_ids=ids, attention_mask=mask, training=False).last_hidden_state
    weights = mask.astype(np.float64)[:, :, None]
    pooled = (hidden.numpy().astype(np.float64) * weights).sum(1) / weights.sum(1)
    expected = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    for batch_size in (1, 2, 128):
        got = encode_texts(tiny_fast_encoder, TEXTS, batch_size=batch_size)
        assert got.shape == (len(TEXTS), 32) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got[2], got[7], atol=1e-6)  # the same text, wherever it sits
