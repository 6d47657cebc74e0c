"""Tests for the offline A/B comparison: paired statistics, team-draft interleaving, per-user evaluation."""

import math

import numpy as np
import pytest
from scipy import stats

from tfrec_llm.data.splits import EvalTask, make_split, tie_priority
from tfrec_llm.errors import ConfigError, DataError
from tfrec_llm.evaluation.baselines import MostPopScorer, RandomScorer
from tfrec_llm.evaluation.compare import compare_scorers, user_evaluation
from tfrec_llm.evaluation.paired import (
    bootstrap_mean_ci,
    paired_test,
    sign_test,
    simulate_interleaving,
    team_draft_interleave,
    wilcoxon_test,
)
from tfrec_llm.evaluation.protocols import evaluate

# ---------------------------------------------------------------- bootstrap


def test_bootstrap_matches_a_numpy_reference_with_the_same_seed():
    diff = np.array([0.3, -0.1, 0.0, 0.5, 0.2, -0.4, 0.1])
    rng = np.random.default_rng(7)
    idx = np.concatenate([rng.integers(0, 7, size=(256, 7)), rng.integers(0, 7, size=(44, 7))])
    means = diff[idx].mean(axis=1)
    expected = np.quantile(means, [0.025, 0.975])
    assert bootstrap_mean_ci(diff, n_resamples=300, seed=7) == pytest.approx(tuple(expected), abs=1e-12)


def test_bootstrap_is_seeded_and_close_to_scipy_and_to_the_normal_interval():
    diff = np.random.default_rng(0).normal(0.05, 1.0, size=400)
    low, high = bootstrap_mean_ci(diff, n_resamples=4000, seed=3)
    assert (low, high) == bootstrap_mean_ci(diff, n_resamples=4000, seed=3)
    assert (low, high) != bootstrap_mean_ci(diff, n_resamples=4000, seed=4)
    ref = stats.bootstrap((diff,), np.mean, n_resamples=4000, method="percentile", random_state=1)
    half = 1.96 * diff.std(ddof=1) / math.sqrt(diff.size)
    assert low == pytest.approx(ref.confidence_interval.low, abs=0.015)
    assert high == pytest.approx(ref.confidence_interval.high, abs=0.015)
    assert high - low == pytest.approx(2 * half, rel=0.08)
    assert low < diff.mean() < high


def test_bootstrap_of_a_constant_difference_is_that_constant_and_bad_arguments_fail():
    assert bootstrap_mean_ci(np.full(5, 0.25), n_resamples=50) == (0.25, 0.25)
    with pytest.raises(ConfigError):
        bootstrap_mean_ci([1.0], n_resamples=0)
    with pytest.raises(ConfigError):
        bootstrap_mean_ci([1.0], confidence=1.0)
    with pytest.raises(DataError):
        bootstrap_mean_ci([1.0, np.nan])


# ---------------------------------------------------------------- paired tests


def test_sign_test_hand_computed():
    # 8 positives, 2 negatives, 3 zeros: p = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10.
    diff = [1, 2, 3, 4, 5, 6, 7, 8, -1, -2, 0, 0, 0]
    result = sign_test(diff)
    assert result.p_value == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert (result.statistic, result.n_nonzero) == (8, 10)
    assert result.p_value == pytest.approx(stats.binomtest(8, 10).pvalue)
    assert sign_test([0.0, 0.0]).p_value == 1.0
    assert sign_test([1.0, -1.0]).p_value == 1.0  # the tail is capped at 1


def test_wilcoxon_hand_computed():
    # |d| ranks 1..5; W- = 2 (the -2), W+ = 13; exact p = 2 * #{subsets of 1..5 with sum <= 2} / 32.
    result = wilcoxon_test([1.0, -2.0, 3.0, 4.0, 5.0, 0.0])
    assert result.statistic == 2.0
    assert result.p_value == pytest.approx(2 * 3 / 32)
    assert result.n_nonzero == 5
    assert wilcoxon_test(np.zeros(4)).p_value == 1.0
    assert paired_test([1.0, -2.0, 3.0, 4.0, 5.0]).name == "wilcoxon"
    assert paired_test([1.0, 2.0], method="sign").name == "sign"
    with pytest.raises(ConfigError):
        paired_test([1.0], method="t")


# ---------------------------------------------------------------- team-draft interleaving


class ScriptedCoins:
    """A stand-in for numpy's Generator whose coin flips are given in advance."""

    def __init__(self, flips):
        self.flips = list(flips)

    def integers(self, low, high):
        return self.flips.pop(0)


def test_team_draft_interleave_hand_made():
    a, b = [1, 2, 3, 4], [2, 5, 1, 6]
    # Coin A: A picks 1, B picks 2; coin B: B picks 5, A picks 3 (2 taken); coin A: A 4, B 6.
    items, teams = team_draft_interleave(a, b, ScriptedCoins([0, 1, 0]), length=6)
    assert items == [1, 2, 5, 3, 4, 6]
    assert teams == [0, 1, 1, 0, 0, 1]
    # Coin B first: B picks 2, A picks 1 (its best, free); coin B: B picks 5, A picks 3.
    items, teams = team_draft_interleave(a, b, ScriptedCoins([1, 1]), length=4)
    assert items == [2, 1, 5, 3] and teams == [1, 0, 1, 0]
    # A used up: B fills the list; padding (-1) skipped.
    items, teams = team_draft_interleave([7, -1], [7, 8, 9], ScriptedCoins([0, 0]), length=5)
    assert items == [7, 8, 9] and teams == [0, 1, 1]


def test_interleaving_credits_the_click_to_the_team_that_placed_it():
    # User 0: the click (5) is only in B's list; user 1: only in A's; users 2-3: both rankings
    # equal, so the team that places the click is a coin flip; user 4: no click shown.
    rankings_a = [[1, 2], [5, 6], [3, 4], [3, 4], [1, 2]]
    rankings_b = [[1, 5], [7, 8], [3, 4], [3, 4], [3, 4]]
    clicks = [[5], [6], [3], [3], [9]]
    result = simulate_interleaving(rankings_a, rankings_b, clicks, length=4, seed=0)
    assert result.wins_a + result.wins_b + result.ties == 5
    assert result.no_click == 1
    # Users 0 and 1 are decided whatever the coins; users 2-3 go to whoever picks item 3 first.
    assert result.wins_a >= 1 and result.wins_b >= 1
    assert result.ties == 1
    again = simulate_interleaving(rankings_a, rankings_b, clicks, length=4, seed=0)
    assert again == result
    with pytest.raises(DataError):
        simulate_interleaving([[1]], [[1], [2]], [[1]])


def test_interleaving_a_ranking_against_itself_never_decides_more_than_chance():
    rng = np.random.default_rng(1)
    rankings = [rng.permutation(20)[:10] for _ in range(300)]
    clicks = [[int(r[rng.integers(0, 10)])] for r in rankings]
    result = simulate_interleaving(rankings, rankings, clicks, length=10, seed=2)
    assert result.ties == 0 and result.no_click == 0  # every click is shown and credited
    assert 0.4 < result.win_rate_b < 0.6
    assert result.test.p_value > 0.01


# ---------------------------------------------------------------- per-user evaluation and compare


class TableScorer:
    """Fixed random scores per user (the same on every call), with ties from rounding."""

    name = "Table"

    def __init__(self, split, seed=3):
        self.item_count = split.item_ids.size
        self.seed = seed

    def score(self, user_ids, histories):
        return np.stack(
            [
                np.random.default_rng([self.seed, int(u)]).integers(0, 8, self.item_count) / 8.0
                for u in user_ids
            ]
        )


def test_user_evaluation_means_equal_the_evaluator(tiny_dataset):
    split = make_split(tiny_dataset, "loo")
    scorer = TableScorer(split)
    per_user = user_evaluation(scorer, split.test, split.item_ids, ks=(5, 10), depth=7)
    totals = evaluate(scorer, split.test, split.item_ids, ks=(5, 10))
    for key, values in per_user.values.items():
        assert values.mean() == pytest.approx(totals[key])
    # The target's position in the kept ranking is its rank (when in the top 7).
    scores = scorer.score(split.test.user_ids, split.test.histories)
    position = {item: i for i, item in enumerate(split.item_ids.tolist())}
    for u, (ranking, targets) in enumerate(zip(per_user.rankings, per_user.targets)):
        history = {position[i] for i in split.test.exclude[u]}
        assert not history & set(ranking.tolist())
        priority = tie_priority(split.item_ids.size)
        assert list(ranking) == sorted(ranking, key=lambda i: (-scores[u, i], priority[i]))  # best first
        hit = np.flatnonzero(ranking == targets[0])
        assert (per_user.values["hr@5"][u] == 1.0) == (hit.size == 1 and hit[0] < 5)


def test_compare_on_a_cold_items_task_ranks_only_candidates(tiny_dataset):
    split = make_split(tiny_dataset, "cold-items")
    per_user = user_evaluation(MostPopScorer(split), split.test, split.item_ids, ks=(3,), depth=3)
    position = {item: i for i, item in enumerate(split.item_ids.tolist())}
    candidates = {position[i] for i in split.test.candidate_ids} | {-1}
    assert set(per_user.rankings.ravel().tolist()) <= candidates


def test_a_model_compared_with_itself_differs_by_zero(small_two_tower, tiny_dataset, tmp_path):
    from tfrec_llm.models.scorer import TwoTowerScorer

    fixture = small_two_tower(tiny_dataset)
    scorer = TwoTowerScorer(fixture.model, fixture.catalog, name="Same")
    result = compare_scorers(scorer, scorer, fixture.split.test, fixture.split.item_ids, n_resamples=500)
    for m in result.metrics:
        assert m.difference == 0.0
        assert m.ci[0] <= 0.0 <= m.ci[1]
        assert m.test.p_value == 1.0 and not m.significant
    # Identical rankings: team-draft credits each click to a coin flip's team, so the split of
    # the clicks is a fair coin's (the trained fixture decides how many users click, so the
    # bound is the 0.1% tail, not 5%: a 5% bound failed on one machine with 15 vs 5), and the
    # users without a click are ties.
    inter = result.interleaving
    assert inter.wins_a + inter.wins_b + inter.ties == fixture.split.test.user_ids.size
    assert inter.ties == inter.no_click and inter.wins_a + inter.wins_b > 0
    assert inter.test.p_value > 0.001
    assert "B - A +0.0000" in result.to_markdown()
    png = result.plot(str(tmp_path / "diff.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_compare_random_with_mostpop_matches_the_evaluator_and_scipy(tiny_dataset, tmp_path):
    split = make_split(tiny_dataset, "loo")
    a, b = RandomScorer(split, seed=0), MostPopScorer(split)
    result = compare_scorers(a, b, split.test, split.item_ids, metric="hr", k=10, n_resamples=1000)
    head = result.metrics[0]
    ref_a = evaluate(RandomScorer(split, seed=0), split.test, split.item_ids, ks=(10,))["hr@10"]
    ref_b = evaluate(b, split.test, split.item_ids, ks=(10,))["hr@10"]
    assert (head.key, head.mean_a, head.mean_b) == ("hr@10", pytest.approx(ref_a), pytest.approx(ref_b))
    diff = result.differences
    assert head.test.p_value == pytest.approx(stats.wilcoxon(diff[diff != 0]).pvalue)
    assert head.ci[0] <= diff.mean() <= head.ci[1]
    report = result.to_markdown()
    assert "Random (A) vs MostPop (B)" in report and "hr@10" in report and "ndcg@10" in report
    with pytest.raises(DataError):
        task = split.test
        other = EvalTask(task.name, task.user_ids[::-1], task.histories[::-1], task.exclude[::-1],
                         task.targets[::-1], None)  # fmt: skip
        from tfrec_llm.evaluation.compare import compare_evaluations

        compare_evaluations(
            user_evaluation(a, task, split.item_ids, ks=(10,)),
            user_evaluation(b, other, split.item_ids, ks=(10,)),
        )
