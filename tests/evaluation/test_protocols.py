"""Tests for tfrec_llm.evaluation.protocols: evaluate, evaluate_all and the Scorer protocol."""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tfrec_llm.data import splits
from tfrec_llm.data.splits import EvalTask, Split
from tfrec_llm.errors import ConfigError, DataError
from tfrec_llm.evaluation import protocols
from tfrec_llm.evaluation.protocols import Scorer, evaluate, evaluate_all

ITEMS = np.array(["1", "2", "3", "4"])
# numpy.random.default_rng(12345).permutation(4) == [2, 0, 3, 1] (spelled out, docs/evaluation.md A).
PRIO_4 = [2, 0, 3, 1]


def _arr(*ids):
    return np.array(ids, dtype=object)


def _task(targets, exclude=None, histories=None, candidate_ids=None, name="test", users=None):
    n = len(targets)
    exclude = exclude if exclude is not None else [()] * n
    histories = histories if histories is not None else exclude
    return EvalTask(
        name=name,
        user_ids=np.array(users if users is not None else [f"u{i}" for i in range(n)], object),
        histories=tuple(_arr(*h) for h in histories),
        exclude=tuple(_arr(*e) for e in exclude),
        targets=tuple(_arr(*t) for t in targets),
        candidate_ids=None if candidate_ids is None else _arr(*candidate_ids),
    )


class FixedScorer:
    """Returns one fixed score row per user id, and records what it was called with."""

    def __init__(self, rows, name="Fixed"):
        self.rows = {user: np.asarray(row, float) for user, row in rows.items()}
        self.name = name
        self.calls = []

    def score(self, user_ids, histories):
        self.calls.append((list(user_ids), [list(h) for h in histories]))
        return np.stack([self.rows[u] for u in user_ids])


class ConstantScorer:
    name = "Constant"

    def __init__(self, n_items):
        self.n_items = n_items

    def score(self, user_ids, histories):
        return np.zeros((len(user_ids), self.n_items))


def _reference(scores, item_ids, targets, exclude, candidates, k):
    """Pure-Python NDCG@k / recall@k of one user: sorted() over (-score, prio) tuples."""
    prio = np.random.default_rng(12345).permutation(len(item_ids))
    position = {item: i for i, item in enumerate(item_ids)}
    pool = [i for i in (candidates if candidates is not None else item_ids)]
    ranked = [i for i in pool if i not in set(exclude) or i in set(targets)]
    order = sorted(ranked, key=lambda i: (-scores[position[i]], prio[position[i]]))
    ranks = [order.index(t) + 1 for t in sorted(set(targets))]
    dcg = sum(1 / math.log2(r + 1) for r in ranks if r <= k)
    idcg = sum(1 / math.log2(i + 1) for i in range(1, min(len(ranks), k) + 1))
    return dcg / idcg, sum(r <= k for r in ranks) / len(ranks)


def test_hand_computed_scores_exclusion_and_keys():
    # u0: scores 0.4, 0.3, 0.2, 0.1 for items 1..4; item 1 excluded; target item 3.
    #     ranking: 2 (0.3), 3 (0.2), 4 (0.1) -> rank 2 -> NDCG = 1/log2(3) = 0.630930.
    # u1: target item 1 (0.4, best) -> rank 1 -> NDCG = 1.
    scorer = FixedScorer({"u0": [0.4, 0.3, 0.2, 0.1], "u1": [0.4, 0.3, 0.2, 0.1]})
    task = _task(targets=[["3"], ["1"]], exclude=[["1"], []])
    result = evaluate(scorer, task, ITEMS, ks=(1, 10))
    assert list(result) == ["recall@1", "hr@1", "ndcg@1", "recall@10", "hr@10", "ndcg@10", "users"]
    assert result["users"] == 2
    assert result["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1.0) / 2)
    # k = 1: only u1 hits -> 0.5 for all three metrics.
    assert result["recall@1"] == result["hr@1"] == result["ndcg@1"] == 0.5
    assert result["hr@10"] == result["recall@10"] == 1.0


def test_constant_scorer_is_ranked_by_the_fixed_priority_not_by_id():
    # Constant scores: the order is the tie priority [2, 0, 3, 1] -> items 2, 4, 1, 3.
    # Target item 4 -> rank 2 -> NDCG@10 = 1/log2(3); item 3 -> rank 4 -> 1/log2(5).
    task = _task(targets=[["4"], ["3"]])
    result = evaluate(ConstantScorer(4), task, ITEMS, ks=(1, 10))
    assert result["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / 2)
    assert result["hr@1"] == 0.0
    for targets in (["1"], ["2"], ["3"], ["4"]):
        expected, _ = _reference(np.zeros(4), list(ITEMS), targets, [], None, 10)
        got = evaluate(ConstantScorer(4), _task(targets=[targets]), ITEMS, ks=(10,))
        assert got["ndcg@10"] == pytest.approx(expected)
    # Item "2" has the lowest priority (0) and is first.
    assert evaluate(ConstantScorer(4), _task(targets=[["2"]]), ITEMS, ks=(1,))["hr@1"] == 1.0


def test_priority_follows_the_position_in_item_ids():
    # Same catalog listed in another order: the item at position 1 now is "3" -> it wins ties.
    items = np.array(["4", "3", "2", "1"])
    assert evaluate(ConstantScorer(4), _task(targets=[["3"]]), items, ks=(1,))["hr@1"] == 1.0


def test_candidate_restriction_ranks_cold_items_only():
    # scores 0.9, 0.8, 0.2, 0.1; candidates = items 3 and 4; target 4.
    # Among candidates only item 3 (0.2) beats it -> rank 2 (rank 4 over the whole catalog).
    scorer = FixedScorer({"u0": [0.9, 0.8, 0.2, 0.1]})
    restricted = evaluate(scorer, _task([["4"]], candidate_ids=["3", "4"]), ITEMS, ks=(2, 3))
    assert restricted["hr@2"] == 1.0
    assert restricted["ndcg@2"] == pytest.approx(1 / math.log2(3))
    full = evaluate(scorer, _task([["4"]]), ITEMS, ks=(2, 3))
    assert full["hr@3"] == 0.0
    # Excluding a non-candidate (item 1) changes nothing; excluding item 3 lifts 4 to rank 1.
    out = evaluate(scorer, _task([["4"]], [["1"]], candidate_ids=["3", "4"]), ITEMS, ks=(1,))
    assert out["hr@1"] == 0.0
    out = evaluate(scorer, _task([["4"]], [["3"]], candidate_ids=["3", "4"]), ITEMS, ks=(1,))
    assert out["hr@1"] == 1.0


def test_ties_among_candidates_use_the_catalog_priority():
    # Constant scores, candidates = items 1 and 3 (priorities 2 and 3) -> item 1 first.
    task = _task([["3"], ["1"]], candidate_ids=["3", "1"])
    result = evaluate(ConstantScorer(4), task, ITEMS, ks=(1,))
    assert result["hr@1"] == 0.5  # u1 (target 1) hits, u0 (target 3) is second


def test_multiple_targets_recall_and_ndcg():
    # scores 0.4..0.1; targets 2 and 4 -> ranks 2 and 4.
    # Recall@2 = 1/2; NDCG@2 = (1/log2(3)) / (1 + 1/log2(3)) = 0.630930 / 1.630930.
    scorer = FixedScorer({"u0": [0.4, 0.3, 0.2, 0.1]})
    result = evaluate(scorer, _task([["2", "4"]]), ITEMS, ks=(2,))
    assert result["recall@2"] == 0.5 and result["hr@2"] == 1.0
    assert result["ndcg@2"] == pytest.approx(0.630930 / 1.630930, abs=1e-6)
    # A repeated target counts once.
    again = evaluate(scorer, _task([["2", "4", "4"]]), ITEMS, ks=(2,))
    assert again == result


def test_random_tasks_match_pure_python_reference():
    rng = np.random.default_rng(3)
    items = np.array([str(i) for i in range(1, 41)])
    n_users = 50
    scores = {f"u{u}": rng.integers(0, 5, 40) / 4.0 for u in range(n_users)}
    targets, exclude = [], []
    for _ in range(n_users):
        chosen = rng.choice(items, size=8, replace=False)
        targets.append(list(chosen[: rng.integers(1, 4)]))
        exclude.append(list(chosen[4:]))
    for candidates in (None, list(rng.choice(items, 20, replace=False)) + targets[0]):
        if candidates is not None:
            candidates = sorted(set(candidates))
            targets = [[t for t in ts if t in candidates] or [candidates[0]] for ts in targets]
        task = _task(targets, exclude, candidate_ids=candidates)
        result = evaluate(FixedScorer(scores), task, items, ks=(5, 10), batch_size=7)
        for k in (5, 10):
            refs = [
                _reference(scores[f"u{u}"], list(items), targets[u], exclude[u], candidates, k)
                for u in range(n_users)
            ]
            assert result[f"ndcg@{k}"] == pytest.approx(np.mean([r[0] for r in refs]))
            assert result[f"recall@{k}"] == pytest.approx(np.mean([r[1] for r in refs]))


def test_batches_and_histories_reach_the_scorer():
    scorer = FixedScorer({f"u{i}": [0.4, 0.3, 0.2, 0.1] for i in range(5)})
    task = _task([["1"]] * 5, exclude=[["2"]] * 5, histories=[["3", "2"]] * 5)
    one = evaluate(scorer, task, ITEMS, batch_size=2)
    assert [c[0] for c in scorer.calls] == [["u0", "u1"], ["u2", "u3"], ["u4"]]
    assert scorer.calls[0][1] == [["3", "2"], ["3", "2"]]
    assert evaluate(scorer, task, ITEMS, batch_size=256) == one


def test_unknown_ids_are_named():
    scorer = FixedScorer({"u0": [0.4, 0.3, 0.2, 0.1]})
    with pytest.raises(DataError, match=r"target id 'zz' of user 'u0' is not in item_ids"):
        evaluate(scorer, _task([["zz"]]), ITEMS)
    with pytest.raises(DataError, match=r"exclude id '99' of user 'u0' is not in item_ids"):
        evaluate(scorer, _task([["1"]], [["99"]]), ITEMS)
    with pytest.raises(DataError, match=r"candidate id '7' is not in item_ids"):
        evaluate(scorer, _task([["1"]], candidate_ids=["1", "7"]), ITEMS)
    with pytest.raises(DataError, match=r"target id '1' of user 'u0' is not among"):
        evaluate(scorer, _task([["1"]], candidate_ids=["3", "4"]), ITEMS)


def test_bad_scores_name_the_scorer():
    bad = FixedScorer({"u0": [0.4, np.nan, 0.2, 0.1]}, name="Bad")
    with pytest.raises(DataError, match=r"scorer 'Bad' returned NaN scores \(first for user 'u0'"):
        evaluate(bad, _task([["1"]]), ITEMS)
    short = FixedScorer({"u0": [0.4, 0.3]}, name="Short")
    with pytest.raises(DataError, match=r"scorer 'Short' returned scores of shape \(1, 2\)"):
        evaluate(short, _task([["1"]]), ITEMS)
    text = FixedScorer({"u0": [0.4, 0.3, 0.2, 0.1]}, name="Text")
    text.score = lambda user_ids, histories: np.array([["a", "b", "c", "d"]])
    with pytest.raises(DataError, match=r"scorer 'Text' returned scores of dtype <U1"):
        evaluate(text, _task([["1"]]), ITEMS)


def test_malformed_tasks_and_catalogs():
    scorer = ConstantScorer(4)
    with pytest.raises(DataError, match=r"user 'u1' has no target"):
        evaluate(scorer, _task([["1"], []]), ITEMS)
    broken = _task([["1"], ["2"]])
    broken = EvalTask(
        broken.name, broken.user_ids, broken.histories[:1], broken.exclude, broken.targets, None
    )
    with pytest.raises(DataError, match=r"has 2 user_ids but \{'histories': 1\} entries"):
        evaluate(scorer, broken, ITEMS)
    with pytest.raises(DataError, match="has no users"):
        evaluate(scorer, _task([]), ITEMS)
    with pytest.raises(DataError, match="item_ids repeats id '2'"):
        evaluate(scorer, _task([["1"]]), np.array(["1", "2", "2", "3"]))
    with pytest.raises(DataError, match="candidate_ids repeats an id"):
        evaluate(scorer, _task([["1"]], candidate_ids=["1", "1"]), ITEMS)


@pytest.mark.parametrize("ks", [(), (0,), (10, 10), (2.5,), "10"])
def test_bad_ks_are_config_errors(ks):
    with pytest.raises(ConfigError, match="ks "):
        evaluate(ConstantScorer(4), _task([["1"]]), ITEMS, ks=ks)


def test_bad_batch_size_is_a_config_error():
    with pytest.raises(ConfigError, match="batch_size must be a positive integer, got 0"):
        evaluate(ConstantScorer(4), _task([["1"]]), ITEMS, batch_size=0)


def _split(valid, test):
    train = pd.DataFrame({"user_id": ["u0"], "item_id": ["1"], "timestamp": [1], "tie_key": [0.5]})
    return Split(
        protocol="loo",
        item_ids=ITEMS,
        train=train,
        train_valid=train,
        valid=valid,
        test=test,
        cold_item_ids=np.array([], object),
        cold_user_ids=np.array([], object),
    )


def test_evaluate_all_returns_one_record_per_model_task_metric_k():
    split = _split(_task([["2"]], name="valid"), _task([["3"]], name="test"))
    scorer = FixedScorer({"u0": [0.4, 0.3, 0.2, 0.1]}, name="Fixed")
    records = evaluate_all([scorer, ConstantScorer(4)], split, ks=(1, 10))
    assert len(records) == 2 * 2 * 3 * 2
    assert records[0] == {
        "model": "Fixed",
        "protocol": "loo",
        "split": "valid",
        "metric": "recall",
        "k": 1,
        "value": 0.0,
    }
    # Fixed on test: item 3 has rank 3 -> NDCG@10 = 1/log2(4) = 0.5.
    (value,) = [
        r["value"]
        for r in records
        if (r["model"], r["split"], r["metric"], r["k"]) == ("Fixed", "test", "ndcg", 10)
    ]
    assert value == pytest.approx(0.5)
    assert [r["model"] for r in records[::12]] == ["Fixed", "Constant"]
    assert evaluate_all([scorer], split, tasks=("test",), ks=(10,))[0]["split"] == "test"


def test_evaluate_all_errors():
    split = _split(_task([["2"]], name="valid"), _task([["3"]], name="test"))
    with pytest.raises(ConfigError, match="unknown task 'train'"):
        evaluate_all([ConstantScorer(4)], split, tasks=("train",))
    with pytest.raises(ConfigError, match=r"names \['Constant'\] are used more than once"):
        evaluate_all([ConstantScorer(4), ConstantScorer(4)], split)


def test_scorer_protocol_is_structural():
    assert isinstance(ConstantScorer(4), Scorer)
    assert not isinstance(object(), Scorer)


def test_tie_priority_used_by_evaluate_is_the_documented_formula():
    # evaluate takes its priority from tfrec_llm.data.splits.tie_priority; check it against
    # docs/evaluation.md's formula, written out here independently.
    assert protocols.tie_priority is splits.tie_priority
    assert splits.tie_priority(4).tolist() == PRIO_4
    for n in (1, 1682, 3706):
        expected = np.random.default_rng(12345).permutation(n)
        np.testing.assert_array_equal(splits.tie_priority(n), expected)


def test_evaluation_does_not_import_tensorflow():
    code = (
        "import sys, tfrec_llm.evaluation.protocols, tfrec_llm.evaluation.baselines, "
        "tfrec_llm.evaluation.report; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
