"""Offline A/B comparison of two scorers on the same users of one evaluation task.

`user_evaluation` ranks every user's targets exactly as `tfrec_llm.evaluation.protocols.evaluate`
does (same candidates, exclusions and tie priority) but keeps the per-user values and each
user's top of the ranking. `compare_scorers` pairs two such evaluations user by user and
reports, per metric, the mean difference (B - A) with a seeded bootstrap confidence interval
and a paired test, plus a team-draft interleaving simulation in which the held-out items are
the clicks (`tfrec_llm.evaluation.paired`).

Example:
    >>> result = compare_scorers(scorer_a, scorer_b, split.test, split.item_ids)  # doctest: +SKIP
    >>> print(result.to_markdown())  # doctest: +SKIP
    >>> result.plot("differences.png")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tfrec_llm.atomic_io import atomic_path
from tfrec_llm.config.choices import METRICS
from tfrec_llm.data.splits import EvalTask, tie_priority
from tfrec_llm.errors import DataError
from tfrec_llm.evaluation.metrics import rank_targets, user_hit_rate_at_k, user_ndcg_at_k, user_recall_at_k
from tfrec_llm.evaluation.paired import (
    InterleavingResult,
    PairedTest,
    bootstrap_mean_ci,
    paired_test,
    simulate_interleaving,
)
from tfrec_llm.evaluation.protocols import (
    Scorer,
    _check_ks,
    _check_task,
    _checked_scores,
    _index_of,
    _lookup,
    _mask,
    _scorer_name,
)

_PER_USER = {"recall": user_recall_at_k, "hr": user_hit_rate_at_k, "ndcg": user_ndcg_at_k}


@dataclasses.dataclass(frozen=True)
class UserEvaluation:
    """Per-user results of one scorer on one task.

    Attributes:
        name: The scorer's name.
        user_ids: ``[n_users]`` the task's users, in task order.
        values: ``"<metric>@<k>"`` -> ``[n_users]`` per-user value.
        rankings: ``[n_users, depth]`` catalog positions (into ``item_ids``) of each user's
            top items, best first, excluded items removed, ``-1`` past the candidates.
        targets: Per user, the catalog positions of the targets.
    """

    name: str
    user_ids: np.ndarray
    values: dict[str, np.ndarray]
    rankings: np.ndarray
    targets: tuple[np.ndarray, ...]


def user_evaluation(
    scorer: Scorer,
    task: EvalTask,
    item_ids: np.ndarray,
    ks: Sequence[int] = (10, 50),
    depth: int = 10,
    batch_size: int = 256,
) -> UserEvaluation:
    """Per-user Recall/HR/NDCG@K and top-``depth`` rankings of ``scorer`` on ``task``.

    The means of ``values`` equal the numbers of `tfrec_llm.evaluation.protocols.evaluate`.

    Args:
        scorer: The model, built for the split of ``task``.
        task: The evaluation task.
        item_ids: The catalog (``split.item_ids``).
        ks: Cut-offs.
        depth: Length of the kept top rankings.
        batch_size: Users per ``scorer.score`` call.

    Returns:
        The per-user evaluation.

    Raises:
        ConfigError: If ``ks`` is invalid.
        DataError: As `tfrec_llm.evaluation.protocols.evaluate`.
    """
    ks = _check_ks(ks)
    item_ids = np.asarray(item_ids)
    index = _index_of(item_ids)
    user_ids = np.asarray(task.user_ids)
    n_users = _check_task(task, user_ids)
    name = _scorer_name(scorer)
    priority = tie_priority(item_ids.size)
    cand_items = np.arange(item_ids.size)
    if task.candidate_ids is not None:
        cand_items = _lookup(index, np.asarray(task.candidate_ids), task, "candidate", None)
        priority = priority[cand_items]
    col_of_item = np.full(item_ids.size, -1)
    col_of_item[cand_items] = np.arange(cand_items.size)
    values = {f"{m}@{k}": np.empty(n_users) for k in ks for m in METRICS}
    rankings = np.full((n_users, depth), -1, dtype=np.int64)
    for start in range(0, n_users, batch_size):
        stop = min(start + batch_size, n_users)
        users = user_ids[start:stop]
        raw = scorer.score(users, task.histories[start:stop])
        scores = _checked_scores(raw, name, users, item_ids.size)[:, cand_items]
        targets = _mask(task.targets[start:stop], users, index, col_of_item, cand_items.size, task, "target")
        excluded = _mask(
            task.exclude[start:stop], users, index, col_of_item, cand_items.size, task, "exclude"
        )
        excluded &= ~targets
        ranks = rank_targets(scores, targets, excluded, priority)
        for key in values:
            metric, k = key.split("@")
            values[key][start:stop] = _PER_USER[metric](ranks, int(k))
        # Best first: not excluded, then higher score, then lower priority.
        order = np.lexsort((np.broadcast_to(priority, scores.shape), -scores, excluded), axis=1)[:, :depth]
        top = cand_items[order]
        top[np.take_along_axis(excluded, order, axis=1)] = -1
        rankings[start:stop, : top.shape[1]] = top
    targets_pos = tuple(_lookup(index, np.asarray(t), task, "target", None) for t in task.targets)
    return UserEvaluation(name, user_ids, values, rankings, targets_pos)


@dataclasses.dataclass(frozen=True)
class MetricComparison:
    """One metric of A and B on the same users.

    Attributes:
        key: ``"<metric>@<k>"``.
        mean_a: A's mean over the users.
        mean_b: B's mean over the users.
        ci: Bootstrap confidence interval of ``mean_b - mean_a``.
        test: Paired test of the per-user differences.
    """

    key: str
    mean_a: float
    mean_b: float
    ci: tuple[float, float]
    test: PairedTest

    @property
    def difference(self) -> float:
        """``mean_b - mean_a``."""
        return self.mean_b - self.mean_a

    @property
    def significant(self) -> bool:
        """Whether the confidence interval excludes 0."""
        return self.ci[0] > 0.0 or self.ci[1] < 0.0


@dataclasses.dataclass(frozen=True)
class ComparisonResult:
    """A/B comparison of two scorers on one task.

    Attributes:
        a: Per-user evaluation of A.
        b: Per-user evaluation of B.
        primary: The metric key the test, the plot and the headline are about.
        metrics: One comparison per metric key (``primary`` first).
        interleaving: Team-draft interleaving outcome (held-out items as clicks).
        confidence: Coverage of the intervals.
        label: What was compared on (e.g. ``"protocol loo, test"``).
    """

    a: UserEvaluation
    b: UserEvaluation
    primary: str
    metrics: tuple[MetricComparison, ...]
    interleaving: InterleavingResult
    confidence: float
    label: str = ""

    @property
    def differences(self) -> np.ndarray:
        """``[n_users]`` per-user B - A of the primary metric."""
        return self.b.values[self.primary] - self.a.values[self.primary]

    def to_markdown(self) -> str:
        """The report: headline, per-metric table, interleaving, how to read it."""
        head = self.metrics[0]
        pct = int(round(self.confidence * 100))
        verdict = "a real difference" if head.significant else "not distinguishable from 0"
        inter = self.interleaving
        lines = [
            f"# A/B comparison: {self.a.name} (A) vs {self.b.name} (B)",
            "",
            f"{self.label + ': ' if self.label else ''}{self.a.user_ids.size} users, the same for both.",
            "",
            f"**{head.key}: A {head.mean_a:.4f}, B {head.mean_b:.4f}, B - A {head.difference:+.4f} "
            f"({pct}% CI [{head.ci[0]:+.4f}, {head.ci[1]:+.4f}]; {head.test.name} p = "
            f"{head.test.p_value:.3g}): {verdict}.**",
            "",
            f"| metric | A | B | B - A | {pct}% CI | test | p | users with a difference |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m in self.metrics:
            lines.append(
                f"| {m.key} | {m.mean_a:.4f} | {m.mean_b:.4f} | {m.difference:+.4f} | "
                f"[{m.ci[0]:+.4f}, {m.ci[1]:+.4f}] | {m.test.name} | {m.test.p_value:.3g} | "
                f"{m.test.n_nonzero} |"
            )
        lines += [
            "",
            "## Team-draft interleaving (the held-out item is the click)",
            "",
            f"A wins {inter.wins_a}, B wins {inter.wins_b}, ties {inter.ties} (of which no click "
            f"{inter.no_click}); B's win rate among decided users {inter.win_rate_b:.3f} "
            f"(sign test p = {inter.test.p_value:.3g}).",
            "",
            "The interval is a percentile bootstrap over users of the mean per-user difference "
            "(seeded); the paired test drops users whose values are equal.",
        ]
        return "\n".join(lines)

    def plot(self, path: str) -> str:
        """Writes a PNG histogram of the per-user differences of the primary metric; returns ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        diff = self.differences
        nonzero = diff[diff != 0]
        head = self.metrics[0]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist(nonzero if nonzero.size else diff, bins=40, color="#4C72B0")
        ax.axvline(head.difference, color="black", label=f"mean {head.difference:+.4f}")
        ax.axvspan(head.ci[0], head.ci[1], color="orange", alpha=0.3, label="bootstrap CI")
        ax.axvline(0.0, color="grey", linestyle=":")
        ax.set_xlabel(f"{head.key}: B ({self.b.name}) - A ({self.a.name}) per user")
        ax.set_ylabel("users")
        ax.set_title(
            f"{nonzero.size} of {diff.size} users differ ({diff.size - nonzero.size} equal, not shown)"
        )
        ax.legend()
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        return path


def compare_evaluations(
    a: UserEvaluation,
    b: UserEvaluation,
    primary: str = "ndcg@10",
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    test: str = "auto",
    label: str = "",
) -> ComparisonResult:
    """Pairs two per-user evaluations of the same task.

    Args:
        a: Model A's evaluation.
        b: Model B's evaluation (same users, same order).
        primary: The headline metric key; must be among ``a.values``.
        n_resamples: Bootstrap resamples.
        confidence: Coverage of the intervals.
        seed: Seed of the bootstrap and of the interleaving coin flips.
        test: ``auto``, ``wilcoxon`` or ``sign``.
        label: Shown in the report.

    Returns:
        The comparison.

    Raises:
        DataError: If the users differ or ``primary`` is not computed.
    """
    if a.user_ids.shape != b.user_ids.shape or (a.user_ids != b.user_ids).any():
        raise DataError(
            "A and B were evaluated on different users; score both on the same task of the same split."
        )
    if primary not in a.values or primary not in b.values:
        raise DataError(f"metric {primary!r} was not computed; available: {sorted(a.values)}.")
    keys = [primary] + sorted(k for k in a.values if k != primary)
    metrics = []
    for key in keys:
        diff = b.values[key] - a.values[key]
        metrics.append(
            MetricComparison(
                key,
                float(a.values[key].mean()),
                float(b.values[key].mean()),
                bootstrap_mean_ci(diff, n_resamples, confidence, seed),
                paired_test(diff, test),
            )
        )
    depth = min(a.rankings.shape[1], b.rankings.shape[1])
    interleaving = simulate_interleaving(a.rankings, b.rankings, a.targets, length=depth, seed=seed)
    return ComparisonResult(a, b, primary, tuple(metrics), interleaving, confidence, label)


def compare_scorers(
    scorer_a: Scorer,
    scorer_b: Scorer,
    task: EvalTask,
    item_ids: np.ndarray,
    metric: str = "ndcg",
    k: int = 10,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    test: str = "auto",
    label: str = "",
) -> ComparisonResult:
    """Scores A and B on ``task`` and compares them user by user (see `compare_evaluations`).

    Recall, HR and NDCG are reported at ``k``; ``metric@k`` is the headline, and the
    interleaved lists are ``k`` long.

    Raises:
        ConfigError: If ``k`` is invalid.
        DataError: If ``metric`` is unknown, or as `user_evaluation`.
    """
    if metric not in METRICS:
        raise DataError(f"metric={metric!r}; expected one of {METRICS}.")
    a = user_evaluation(scorer_a, task, item_ids, ks=(k,), depth=k)
    b = user_evaluation(scorer_b, task, item_ids, ks=(k,), depth=k)
    return compare_evaluations(a, b, f"{metric}@{k}", n_resamples, confidence, seed, test, label)
