"""Paired statistics for comparing two models on the same users, and team-draft interleaving.

Everything here is plain numpy (``scipy`` only for the Wilcoxon signed-rank test, when it is
installed) and seeded: the same inputs and seed give the same interval and the same simulated
interleavings.

Example:
    >>> diff = np.array([0.1, 0.0, -0.05, 0.2])
    >>> bootstrap_mean_ci(diff, n_resamples=2000, seed=0)  # doctest: +SKIP
    (-0.0125, 0.15)
    >>> sign_test(diff).p_value  # 2 positives, 1 negative: 2 * P(X <= 1), X ~ Bin(3, 1/2)
    1.0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from tfrec_llm.errors import ConfigError, DataError

_CHUNK = 256
"""Bootstrap resamples drawn at once (bounds the ``[chunk, n]`` index array)."""


@dataclasses.dataclass(frozen=True)
class PairedTest:
    """Result of a paired two-sided test of "no difference".

    Attributes:
        name: ``"wilcoxon"`` (signed-rank) or ``"sign"`` (exact binomial sign test).
        statistic: Wilcoxon: the smaller of the positive and negative rank sums; sign: the
            number of positive differences.
        p_value: Two-sided p-value (1.0 when every difference is zero).
        n_nonzero: Pairs with a non-zero difference (zeros are dropped by both tests).
    """

    name: str
    statistic: float
    p_value: float
    n_nonzero: int


def _differences(diff: Sequence[float] | np.ndarray) -> np.ndarray:
    """``diff`` as a 1-D finite float array, or a DataError."""
    values = np.asarray(diff, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise DataError(f"paired differences must be a non-empty 1-D array, got shape {values.shape}.")
    if not np.isfinite(values).all():
        raise DataError("paired differences hold NaN or inf; drop the users without a value first.")
    return values


def bootstrap_mean_ci(
    diff: Sequence[float] | np.ndarray,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of paired differences.

    Users are resampled with replacement (``numpy.random.default_rng(seed).integers``, drawn
    in chunks of resamples); the interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles (numpy's default linear interpolation) of the
    resampled means.

    Args:
        diff: ``[n_users]`` per-user differences (B - A).
        n_resamples: Bootstrap resamples, a positive integer.
        confidence: Coverage in (0, 1).
        seed: Seed of the resampling.

    Returns:
        ``(low, high)``.

    Raises:
        ConfigError: If ``n_resamples`` or ``confidence`` is out of range.
        DataError: If ``diff`` is empty, not 1-D or not finite.
    """
    values = _differences(diff)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ConfigError(f"n_resamples must be a positive integer, got {n_resamples!r}.")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}.")
    rng = np.random.default_rng(seed)
    n = values.size
    means = np.empty(int(n_resamples), dtype=np.float64)
    for start in range(0, int(n_resamples), _CHUNK):
        stop = min(start + _CHUNK, int(n_resamples))
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def sign_test(diff: Sequence[float] | np.ndarray) -> PairedTest:
    """Exact two-sided sign test: under no difference, each non-zero sign is a fair coin.

    ``p = min(1, 2 * P(X <= min(n+, n-)))`` with ``X ~ Binomial(n+ + n-, 1/2)``, computed
    with exact integers.

    Raises:
        DataError: If ``diff`` is empty, not 1-D or not finite.
    """
    values = _differences(diff)
    positive = int(np.count_nonzero(values > 0))
    negative = int(np.count_nonzero(values < 0))
    n = positive + negative
    if n == 0:
        return PairedTest("sign", 0.0, 1.0, 0)
    tail = sum(math.comb(n, i) for i in range(min(positive, negative) + 1))
    return PairedTest("sign", float(positive), min(1.0, 2 * tail / 2**n), n)


def wilcoxon_test(diff: Sequence[float] | np.ndarray) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, zeros dropped).

    Raises:
        DataError: If ``diff`` is empty, not 1-D or not finite.
        ImportError: If scipy is not installed (use `sign_test`).
    """
    from scipy import stats

    values = _differences(diff)
    nonzero = int(np.count_nonzero(values))
    if nonzero == 0:
        return PairedTest("wilcoxon", 0.0, 1.0, 0)
    result = stats.wilcoxon(values, zero_method="wilcox", alternative="two-sided")
    return PairedTest("wilcoxon", float(result.statistic), float(result.pvalue), nonzero)


def paired_test(diff: Sequence[float] | np.ndarray, method: str = "auto") -> PairedTest:
    """The paired test of ``method``: ``wilcoxon``, ``sign`` or ``auto`` (Wilcoxon with scipy, else sign).

    Raises:
        ConfigError: If ``method`` is unknown.
        DataError: As the tests.
    """
    if method not in ("auto", "wilcoxon", "sign"):
        raise ConfigError(f"method={method!r}; expected 'auto', 'wilcoxon' or 'sign'.")
    if method == "sign":
        return sign_test(diff)
    if method == "auto":
        try:
            import scipy.stats  # noqa: F401
        except ImportError:
            return sign_test(diff)
    return wilcoxon_test(diff)


def team_draft_interleave(
    ranking_a: Sequence[int] | np.ndarray,
    ranking_b: Sequence[int] | np.ndarray,
    rng: np.random.Generator,
    length: int,
) -> tuple[list[int], list[int]]:
    """One team-draft interleaving of two rankings (Radlinski, Kurup and Joachims, 2008).

    While the list is shorter than ``length``: the team with fewer picks so far picks next
    (a coin flip of ``rng`` on equal counts); it adds its highest-ranked item not yet in the
    list. A team whose ranking is used up lets the other pick. Negative entries (padding) are
    skipped.

    Args:
        ranking_a: Model A's items, best first.
        ranking_b: Model B's items, best first.
        rng: Source of the coin flips.
        length: Length of the interleaved list.

    Returns:
        (items, teams): the interleaved items and, for each, 0 (picked by A) or 1 (by B).
    """
    lists = [[int(x) for x in ranking_a if int(x) >= 0], [int(x) for x in ranking_b if int(x) >= 0]]
    cursor = [0, 0]
    picks = [0, 0]
    items: list[int] = []
    teams: list[int] = []
    seen: set[int] = set()

    def next_of(team: int) -> int | None:
        while cursor[team] < len(lists[team]) and lists[team][cursor[team]] in seen:
            cursor[team] += 1
        return lists[team][cursor[team]] if cursor[team] < len(lists[team]) else None

    while len(items) < length:
        if picks[0] != picks[1]:
            team = 0 if picks[0] < picks[1] else 1
        else:
            team = int(rng.integers(0, 2))
        item = next_of(team)
        if item is None:
            team = 1 - team
            item = next_of(team)
            if item is None:
                break
        items.append(item)
        teams.append(team)
        seen.add(item)
        picks[team] += 1
    return items, teams


@dataclasses.dataclass(frozen=True)
class InterleavingResult:
    """Outcome of simulated team-draft interleavings, one per user.

    Attributes:
        wins_a: Users whose clicks went more to A's picks.
        wins_b: Users whose clicks went more to B's picks.
        ties: Users with as many clicks on each side (no click included).
        no_click: Users whose held-out items were not in the interleaved list at all.
        test: Sign test of B's wins against A's.
    """

    wins_a: int
    wins_b: int
    ties: int
    no_click: int
    test: PairedTest

    @property
    def win_rate_b(self) -> float:
        """B's share of the decided users, ``wins_b / (wins_a + wins_b)`` (NaN if none)."""
        decided = self.wins_a + self.wins_b
        return self.wins_b / decided if decided else float("nan")


def simulate_interleaving(
    rankings_a: Sequence[Sequence[int]] | np.ndarray,
    rankings_b: Sequence[Sequence[int]] | np.ndarray,
    clicks: Sequence[Sequence[int]],
    length: int = 10,
    seed: int = 0,
) -> InterleavingResult:
    """Team-draft interleaves A's and B's ranking for every user; the held-out items are the clicks.

    Each user sees one interleaved list (coin flips from ``numpy.random.default_rng(seed)``,
    users in order); every held-out item in it is a click credited to the team that placed it.

    Args:
        rankings_a: Per user, A's items best first (negative = padding).
        rankings_b: Per user, B's items best first.
        clicks: Per user, the held-out (TEST) items.
        length: Interleaved list length.
        seed: Seed of the coin flips.

    Returns:
        The win, tie and no-click counts, and a sign test of wins.

    Raises:
        DataError: If the three per-user sequences differ in length or are empty.
    """
    if not len(rankings_a) == len(rankings_b) == len(clicks) or len(clicks) == 0:
        raise DataError(
            f"rankings_a ({len(rankings_a)}), rankings_b ({len(rankings_b)}) and clicks "
            f"({len(clicks)}) need one non-empty entry per user each."
        )
    rng = np.random.default_rng(seed)
    outcome = np.zeros(len(clicks), dtype=np.int64)
    no_click = 0
    for u, (a, b, clicked) in enumerate(zip(rankings_a, rankings_b, clicks)):
        items, teams = team_draft_interleave(a, b, rng, length)
        targets = {int(c) for c in clicked}
        credit = [0, 0]
        for item, team in zip(items, teams):
            if item in targets:
                credit[team] += 1
        no_click += credit == [0, 0]
        outcome[u] = np.sign(credit[1] - credit[0])
    wins_b = int(np.count_nonzero(outcome > 0))
    wins_a = int(np.count_nonzero(outcome < 0))
    ties = int(outcome.size - wins_a - wins_b)
    return InterleavingResult(wins_a, wins_b, ties, no_click, sign_test(outcome.astype(np.float64)))
