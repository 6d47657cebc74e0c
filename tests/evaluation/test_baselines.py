"""Tests for tfrec_llm.evaluation.baselines: RandomScorer and MostPopScorer."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from tfrec_llm.data.splits import EvalTask, Split
from tfrec_llm.errors import ConfigError, DataError
from tfrec_llm.evaluation.baselines import MostPopScorer, RandomScorer
from tfrec_llm.evaluation.protocols import Scorer, evaluate

ITEMS = np.array(["1", "2", "3", "4", "5"], dtype=object)


def _frame(pairs):
    users, items = zip(*pairs, strict=True) if pairs else ((), ())
    return pd.DataFrame(
        {
            "user_id": list(users),
            "item_id": list(items),
            "timestamp": np.arange(len(users), dtype=np.int64),
            "tie_key": np.linspace(0, 1, len(users)),
        }
    )


def _task(users, exclude, targets, name="test"):
    return EvalTask(
        name=name,
        user_ids=np.array(users, dtype=object),
        histories=tuple(np.array(e, dtype=object) for e in exclude),
        exclude=tuple(np.array(e, dtype=object) for e in exclude),
        targets=tuple(np.array(t, dtype=object) for t in targets),
        candidate_ids=None,
    )


def _split(train_pairs, test, train_valid_pairs=None, item_ids=ITEMS):
    train = _frame(train_pairs)
    return Split(
        protocol="loo",
        item_ids=item_ids,
        train=train,
        train_valid=_frame(train_valid_pairs) if train_valid_pairs is not None else train,
        valid=test,
        test=test,
        cold_item_ids=np.array([], dtype=object),
        cold_user_ids=np.array([], dtype=object),
    )


# Train counts: item 1 -> 3, item 2 -> 1, item 3 -> 2, items 4 and 5 -> 0.
TRAIN = [("a", "1"), ("a", "3"), ("b", "1"), ("b", "2"), ("b", "3"), ("c", "1")]


def test_mostpop_counts_train_interactions():
    scorer = MostPopScorer(_split(TRAIN, _task(["a"], [[]], [["1"]])))
    assert scorer.name == "MostPop"
    assert scorer.counts.tolist() == [3.0, 1.0, 2.0, 0.0, 0.0]
    scores = scorer.score(np.array(["a", "b"]), [np.array([]), np.array([])])
    assert scores.shape == (2, 5)
    assert scores.tolist() == [[3.0, 1.0, 2.0, 0.0, 0.0]] * 2


def test_mostpop_on_a_tiny_split_gives_the_hand_computed_ndcg():
    # Tie priority of 5 items: default_rng(12345).permutation(5) = [4, 3, 0, 2, 1], so among
    # the zero-count items 4 (prio 2) and 5 (prio 1), item 5 ranks first.
    # uA: exclude 1; ranking 3 (2), 2 (1), 5, 4 -> target 3 at rank 1 -> NDCG 1.
    # uB: exclude 3; ranking 1 (3), 2 (1), ... -> target 2 at rank 2 -> NDCG 1/log2(3).
    # uC: exclude 1, 2, 3; ranking 5, 4 -> target 4 at rank 2 -> NDCG 1/log2(3).
    # uD: exclude 1, 2, 3; target 5 at rank 1 -> NDCG 1.
    # Mean NDCG@10 = (1 + 0.630930 + 0.630930 + 1) / 4 = 0.815465; HR@1 = 2 / 4 = 0.5.
    test = _task(
        ["uA", "uB", "uC", "uD"],
        [["1"], ["3"], ["1", "2", "3"], ["1", "2", "3"]],
        [["3"], ["2"], ["4"], ["5"]],
    )
    split = _split(TRAIN, test)
    result = evaluate(MostPopScorer(split), split.test, split.item_ids, ks=(1, 10))
    assert result["ndcg@10"] == pytest.approx((2 + 2 / math.log2(3)) / 4)
    assert result["ndcg@10"] == pytest.approx(0.815465, abs=1e-6)
    assert result["hr@1"] == 0.5
    assert result["hr@10"] == 1.0
    assert result["users"] == 4


def test_mostpop_can_count_train_valid():
    split = _split(TRAIN, _task(["a"], [[]], [["1"]]), TRAIN + [("c", "5"), ("a", "5")])
    assert MostPopScorer(split, fit_on="train_valid").counts.tolist() == [3, 1, 2, 0, 2]
    assert MostPopScorer(split).counts.tolist() == [3, 1, 2, 0, 0]


def test_mostpop_errors():
    split = _split(TRAIN, _task(["a"], [[]], [["1"]]))
    with pytest.raises(ConfigError, match="fit_on must be 'train' or 'train_valid', got 'test'"):
        MostPopScorer(split, fit_on="test")
    unknown = _split(TRAIN + [("a", "9")], _task(["a"], [[]], [["1"]]))
    with pytest.raises(DataError, match="split.train holds item id '9'"):
        MostPopScorer(unknown)
    no_column = _split(TRAIN, _task(["a"], [[]], [["1"]]))
    no_column = dataclasses.replace(no_column, train=no_column.train.drop(columns="item_id"))
    with pytest.raises(DataError, match="split.train has no 'item_id' column"):
        MostPopScorer(no_column)


def test_random_scores_are_uniform_seeded_and_batch_independent():
    split = _split(TRAIN, _task(["a"], [[]], [["1"]]))
    users = np.array(["a", "b", "c", "d", "e"])
    histories = [np.array([])] * 5
    whole = RandomScorer(split, seed=3).score(users, histories)
    assert RandomScorer(split).name == "Random"
    assert whole.shape == (5, 5) and whole.min() >= 0.0 and whole.max() < 1.0
    np.testing.assert_array_equal(whole, np.random.default_rng(3).random((5, 5)))
    batched = RandomScorer(split, seed=3)
    parts = [batched.score(users[:2], histories[:2]), batched.score(users[2:], histories[2:])]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    other = RandomScorer(split, seed=4).score(users, histories)
    assert not np.array_equal(other, whole)


def test_random_hit_rate_is_close_to_k_over_n():
    # 100 items, one target, nothing excluded: E[HR@10] = 10 / 100 = 0.1; with 2,000 users the
    # standard error is sqrt(0.1 * 0.9 / 2000) = 0.0067, so 0.1 +- 0.03 is > 4 sigma.
    items = np.array([str(i) for i in range(1, 101)], dtype=object)
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(2000)]
    test = _task(users, [[]] * 2000, [[items[i]] for i in rng.integers(0, 100, 2000)])
    split = _split(TRAIN, test, item_ids=items)
    result = evaluate(RandomScorer(split, seed=0), split.test, split.item_ids, ks=(10,))
    assert result["hr@10"] == pytest.approx(0.1, abs=0.03)


def test_baselines_follow_the_scorer_protocol():
    split = _split(TRAIN, _task(["a"], [[]], [["1"]]))
    assert isinstance(RandomScorer(split), Scorer)
    assert isinstance(MostPopScorer(split), Scorer)
