"""Tests for the content-only peers (TextKNN, TF-IDF profile) against hand-built references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tfrec_llm  # noqa: F401  (selects Keras 2 before anything imports TF)
from tfrec_llm.data.splits import EvalTask, Split
from tfrec_llm.errors import ConfigError
from tfrec_llm.evaluation.content_peers import TextKNNScorer, TfidfProfileScorer
from tfrec_llm.evaluation.protocols import evaluate

ITEMS = ["a", "b", "c", "d"]


def _split(cold_test: bool = False) -> Split:
    train = pd.DataFrame(
        {"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "c"], "timestamp": [1, 2, 3], "tie_key": 0.0}
    )
    task = EvalTask(
        name="test",
        user_ids=np.array(["u1", "u2"]),
        histories=(np.array(["a", "b"], object), np.array([], object)),
        exclude=(np.array(["a", "b"], object), np.array([], object)),
        targets=(np.array(["d"], object), np.array(["d"], object)),
        candidate_ids=np.array(["c", "d"]) if cold_test else None,
    )
    return Split("loo", np.array(ITEMS), train, train, task, task, np.array([]), np.array([]))


def test_text_knn_is_the_cosine_of_the_mean_history_vector():
    vectors = np.array([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    scorer = TextKNNScorer(_split(), vectors)
    scores = scorer.score(np.array(["u1", "u2"]), [np.array(["a", "b", "a"]), np.array([])])
    # mean of the unit vectors of a and b (a counted once) = (0.5, 0.5): cosine with each item
    expected = np.array([1, 1, 2, 0]) / np.sqrt(2) / np.array([1, 1, np.sqrt(2), np.sqrt(2)])
    np.testing.assert_allclose(scores[0], expected, atol=1e-12)
    np.testing.assert_array_equal(scores[1], np.zeros(4))  # no history, no evidence
    assert TextKNNScorer(_split(), vectors, label="MiniLM item-kNN").name == "MiniLM item-kNN"


def test_tfidf_profile_ranks_items_sharing_rare_words():
    texts = ["space rocket film", "space station story", "kitchen recipe film", "rocket launch space"]
    scorer = TfidfProfileScorer(_split(), texts)
    scores = scorer.score(np.array(["u1"]), [np.array(["a", "b"])])[0]
    rows = scorer.rows.toarray()
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0)  # L2-normalised rows
    np.testing.assert_allclose(scores, (rows[0] + rows[1]) @ rows.T)
    assert scores[3] > scores[2]  # d shares 'rocket' and 'space' with the history, c only 'film'
    assert scorer.rows.shape[0] == 4


def test_content_peers_rank_cold_candidates_through_the_evaluator():
    split = _split(cold_test=True)
    vectors = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [1.0, 0.05]])
    metrics = evaluate(TextKNNScorer(split, vectors), split.test, split.item_ids, ks=(1,))
    # u1's history (a, b) points at d rather than c: a hit at 1; u2 has no history: all ties
    assert metrics["users"] == 2 and metrics["recall@1"] >= 0.5


def test_rows_must_follow_the_catalog():
    with pytest.raises(ConfigError, match="one row per item of split.item_ids"):
        TextKNNScorer(_split(), np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="one row per item of split.item_ids"):
        TfidfProfileScorer(_split(), ["x", "y"])
