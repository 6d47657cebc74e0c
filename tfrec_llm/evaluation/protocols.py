"""The evaluator: runs a `Scorer` over an `EvalTask` and reports Recall/HR/NDCG@K.

Every quality number of tfrec_llm goes through `evaluate` (docs/evaluation.md): the scorer scores
the whole catalog, the evaluator restricts the columns to the task's candidates, removes each
user's excluded items from the ranking, breaks equal scores by the fixed tie priority
(``numpy.random.default_rng(12345).permutation(n_items)``, lower first, never by id) and ranks
the targets with `tfrec_llm.evaluation.metrics.rank_targets`. The tie priority comes from
`tfrec_llm.data.splits.tie_priority`, the one protocol module.

Example:
    >>> split = make_split(dataset, "loo")  # doctest: +SKIP
    >>> evaluate(MostPopScorer(split), split.test, split.item_ids)  # doctest: +SKIP
    {'recall@10': ..., 'hr@10': ..., 'ndcg@10': ..., 'recall@50': ..., ..., 'users': 943}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tfrec_llm.config.choices import METRICS
from tfrec_llm.data.splits import EvalTask, Split, tie_priority
from tfrec_llm.errors import ConfigError, DataError
from tfrec_llm.evaluation.metrics import (
    rank_targets,
    user_hit_rate_at_k,
    user_ndcg_at_k,
    user_recall_at_k,
)

TASK_NAMES = ("valid", "test")
"""The `Split` attributes that hold an `EvalTask`."""


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores the whole catalog for a batch of users.

    A scorer is built for one `Split` and knows its ``item_ids``; column ``j`` of its output is
    the score of ``split.item_ids[j]``. Larger is better.

    Attributes:
        name: Model name used in reports (e.g. ``"MostPop"``).
    """

    name: str

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Returns float scores ``[len(user_ids), n_items]`` in ``split.item_ids`` order.

        Args:
            user_ids: ``[batch]`` user ids (str).
            histories: Per user, the chronological item ids the model may condition on.
        """
        ...


def evaluate(
    scorer: Scorer,
    task: EvalTask,
    item_ids: np.ndarray,
    ks: Sequence[int] = (10, 50),
    batch_size: int = 256,
) -> dict[str, float]:
    """Ranks every user's targets and averages Recall@K, HR@K and NDCG@K over the users.

    For each batch of users: scores = ``scorer.score(user_ids, histories)``; columns are kept
    for ``task.candidate_ids`` only (all of ``item_ids`` when it is None); each user's
    ``exclude`` ids are removed from the ranking (a target is always ranked, even if it is
    also excluded); equal scores are ordered by the tie priority of the item's position in
    ``item_ids``; ranks are 1-based. Repeated target ids of one user count once.

    Args:
        scorer: The model, built for the split that ``task`` comes from.
        task: Users, histories, excluded ids, targets and optional candidate ids.
        item_ids: ``[n_items]`` the catalog, in the column order of the scorer's output
            (``split.item_ids``).
        ks: Cut-offs, positive integers.
        batch_size: Users scored per call of ``scorer.score``.

    Returns:
        ``{"recall@k", "hr@k", "ndcg@k"}`` for each ``k`` in ``ks`` (in that order), each the
        mean over the task's users, plus ``"users"``: the number of users.

    Raises:
        ConfigError: If ``ks`` or ``batch_size`` is invalid.
        DataError: If a target, excluded or candidate id is not in ``item_ids``, a target is
            not a candidate, a user has no target, the task's fields disagree in length,
            ``item_ids`` repeats an id, or the scorer returns a wrong shape or NaN.
    """
    ks = _check_ks(ks)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    item_ids = np.asarray(item_ids)
    index = _index_of(item_ids)
    user_ids = np.asarray(task.user_ids)
    n_users = _check_task(task, user_ids)
    name = _scorer_name(scorer)

    n_items = item_ids.size
    if task.candidate_ids is None:
        cand_items = None
        col_of_item = np.arange(n_items)
        priority = tie_priority(n_items)
    else:
        cand_items = _lookup(index, np.asarray(task.candidate_ids), task, "candidate", None)
        if np.unique(cand_items).size != cand_items.size:
            raise DataError(f"task {task.name!r}: candidate_ids repeats an id; give each candidate once.")
        col_of_item = np.full(n_items, -1)
        col_of_item[cand_items] = np.arange(cand_items.size)
        priority = tie_priority(n_items)[cand_items]
    n_cand = priority.size

    sums = {f"{metric}@{k}": 0.0 for k in ks for metric in METRICS}
    for start in range(0, n_users, batch_size):
        stop = min(start + batch_size, n_users)
        batch_users = user_ids[start:stop]
        scores = _checked_scores(
            scorer.score(batch_users, task.histories[start:stop]), name, batch_users, n_items
        )
        if cand_items is not None:
            scores = scores[:, cand_items]
        target_mask = _mask(task.targets[start:stop], batch_users, index, col_of_item, n_cand, task, "target")
        exclude_mask = _mask(
            task.exclude[start:stop], batch_users, index, col_of_item, n_cand, task, "exclude"
        )
        ranks = rank_targets(scores, target_mask, exclude_mask, priority)
        for k in ks:
            sums[f"recall@{k}"] += float(user_recall_at_k(ranks, k).sum())
            sums[f"hr@{k}"] += float(user_hit_rate_at_k(ranks, k).sum())
            sums[f"ndcg@{k}"] += float(user_ndcg_at_k(ranks, k).sum())

    result: dict[str, float] = {key: value / n_users for key, value in sums.items()}
    result["users"] = n_users
    return result


def evaluate_all(
    scorers: Sequence[Scorer],
    split: Split,
    tasks: Sequence[str] = TASK_NAMES,
    ks: Sequence[int] = (10, 50),
    batch_size: int = 256,
) -> list[dict[str, Any]]:
    """Evaluates several scorers on the tasks of one split; returns long-format records.

    Scorers run in the given order, and for each scorer the tasks in the given order.

    Args:
        scorers: Models built for ``split``; their names must be distinct.
        split: The split whose tasks are evaluated.
        tasks: Names of the split's tasks, from ``("valid", "test")``.
        ks: Cut-offs, positive integers.
        batch_size: Users scored per call of ``scorer.score``.

    Returns:
        One record per (scorer, task, metric, k): ``{"model": scorer.name, "protocol":
        split.protocol, "split": task name, "metric": "recall" | "hr" | "ndcg", "k": k,
        "value": float}``.

    Raises:
        ConfigError: If a task name is unknown, two scorers share a name, or as `evaluate`.
        DataError: As `evaluate`.
    """
    for task_name in tasks:
        if task_name not in TASK_NAMES:
            raise ConfigError(f"tasks: unknown task {task_name!r}; expected names from {TASK_NAMES}.")
    names = [_scorer_name(scorer) for scorer in scorers]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"scorers: names {repeated} are used more than once; give each scorer a distinct "
            "name so that its records can be told apart."
        )
    ks = _check_ks(ks)
    records: list[dict[str, Any]] = []
    for scorer, name in zip(scorers, names, strict=True):
        for task_name in tasks:
            result = evaluate(scorer, getattr(split, task_name), split.item_ids, ks, batch_size)
            for k in ks:
                for metric in METRICS:
                    records.append(
                        {
                            "model": name,
                            "protocol": split.protocol,
                            "split": task_name,
                            "metric": metric,
                            "k": k,
                            "value": float(result[f"{metric}@{k}"]),
                        }
                    )
    return records


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Validates the cut-offs and returns them as a tuple of ints."""
    ks_tuple = tuple(ks)
    bad = [k for k in ks_tuple if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1]
    if not ks_tuple or bad:
        raise ConfigError(
            f"ks must be a non-empty sequence of positive integers, got {ks!r}; e.g. ks=(10, 50)."
        )
    if len(set(ks_tuple)) != len(ks_tuple):
        raise ConfigError(f"ks repeats a cut-off: {ks!r}; list each k once.")
    return tuple(int(k) for k in ks_tuple)


def _py(value: Any) -> Any:
    """A numpy scalar as the Python value (``'2'``, not ``np.str_('2')``) for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _scorer_name(scorer: Scorer) -> str:
    """The scorer's ``name``, or its class name when it has none."""
    return str(getattr(scorer, "name", type(scorer).__name__))


def _index_of(item_ids: np.ndarray) -> dict[Any, int]:
    """Maps each catalog id to its column; rejects repeated ids."""
    if item_ids.ndim != 1:
        raise DataError(f"item_ids must be 1-D [n_items], got shape {item_ids.shape}.")
    index = {item: i for i, item in enumerate(item_ids.tolist())}
    if len(index) != item_ids.size:
        values, counts = np.unique(item_ids, return_counts=True)
        raise DataError(
            f"item_ids repeats id {_py(values[counts > 1][0])!r}; the catalog must list each "
            "item once (use split.item_ids)."
        )
    return index


def _check_task(task: EvalTask, user_ids: np.ndarray) -> int:
    """Checks that the per-user fields line up; returns the number of users."""
    n_users = int(user_ids.size)
    lengths = {
        "histories": len(task.histories),
        "exclude": len(task.exclude),
        "targets": len(task.targets),
    }
    wrong = {field: n for field, n in lengths.items() if n != n_users}
    if wrong:
        raise DataError(
            f"task {task.name!r} has {n_users} user_ids but {wrong} entries; every per-user "
            "field needs one entry per user."
        )
    if n_users == 0:
        raise DataError(f"task {task.name!r} has no users; there is nothing to evaluate.")
    return n_users


def _lookup(
    index: Mapping[Any, int],
    ids: np.ndarray,
    task: EvalTask,
    kind: str,
    users: np.ndarray | None,
) -> np.ndarray:
    """Maps ids to catalog columns; an unknown id raises a DataError naming it."""
    columns = np.fromiter(map(index.get, ids.tolist(), repeat(-1)), np.int64, ids.size)
    if (columns < 0).any():
        first = int(np.argmax(columns < 0))
        owner = "" if users is None else f" of user {_py(users[first])!r}"
        raise DataError(
            f"task {task.name!r}: {kind} id {_py(ids[first])!r}{owner} is not in item_ids "
            f"({len(index)} items); the task and the scorer must come from the same split."
        )
    return columns


def _mask(
    id_lists: Sequence[np.ndarray],
    batch_users: np.ndarray,
    index: Mapping[Any, int],
    col_of_item: np.ndarray,
    n_cand: int,
    task: EvalTask,
    kind: str,
) -> np.ndarray:
    """Builds the ``[batch, n_cand]`` bool mask of one per-user id field."""
    lengths = np.array([len(ids) for ids in id_lists], dtype=np.int64)
    if kind == "target" and (lengths == 0).any():
        user = _py(batch_users[int(np.argmax(lengths == 0))])
        raise DataError(
            f"task {task.name!r}: user {user!r} has no target; every evaluated user needs at "
            "least one target (drop the user in the split)."
        )
    mask = np.zeros((len(id_lists), n_cand), dtype=bool)
    if lengths.sum() == 0:
        return mask
    flat = np.concatenate([np.asarray(ids).ravel() for ids in id_lists])
    owners = np.repeat(batch_users, lengths)
    rows = np.repeat(np.arange(len(id_lists)), lengths)
    cols = col_of_item[_lookup(index, flat, task, kind, owners)]
    if kind == "target" and (cols < 0).any():
        first = int(np.argmax(cols < 0))
        raise DataError(
            f"task {task.name!r}: target id {_py(flat[first])!r} of user {_py(owners[first])!r} "
            "is not among task.candidate_ids, so it can never be ranked; the split must draw "
            "targets from the candidates."
        )
    keep = cols >= 0  # excluded ids outside the candidates do not matter
    mask[rows[keep], cols[keep]] = True
    return mask


def _checked_scores(raw: Any, name: str, batch_users: np.ndarray, n_items: int) -> np.ndarray:
    """Checks the shape, dtype and finiteness of a scorer's output."""
    scores: np.ndarray = np.asarray(raw)
    expected = (batch_users.size, n_items)
    if scores.shape != expected:
        raise DataError(
            f"scorer {name!r} returned scores of shape {scores.shape}, expected {expected} "
            "([batch users, items of split.item_ids])."
        )
    if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
        raise DataError(f"scorer {name!r} returned scores of dtype {scores.dtype}; expected float scores.")
    if np.issubdtype(scores.dtype, np.floating):
        nan_rows = np.isnan(scores).any(axis=1)
        if nan_rows.any():
            user = _py(batch_users[int(np.argmax(nan_rows))])
            raise DataError(
                f"scorer {name!r} returned NaN scores (first for user {user!r}); NaN cannot be "
                "ranked. Fix the model (or map missing scores to -inf)."
            )
    return scores
