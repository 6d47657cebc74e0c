"""Ranking examples that look like serving: the retrieval model's top N, with its real scores.

At serving time the ranking model sees the retrieval model's top N candidates of a user (the
history removed) and their retrieval scores. ``serving_lists`` builds exactly those lists for
the users of an evaluation task, with the task's targets as the positives: for the VALID task
of a protocol the history is TRAIN, which the retrieval model was fitted on, and the target is
the VALID item, which it was only early-stopped on, never fitted on. So the lists, their
retrieval scores and their hard negatives have the distribution the ranker meets at TEST
time, unlike TRAIN interactions, which the retrieval model has memorised. A user whose target
is not among the N teaches nothing about re-ranking them and is left out.

Example:
    >>> lists = serving_lists(TwoTowerScorer(model, catalog), catalog, split.valid, 20, 100)
    >>> fit, held_out = split_lists(lists, holdout=0.2, seed=0)
"""

from __future__ import annotations

import numpy as np

from tfrec_llm.data.catalog import Catalog
from tfrec_llm.data.split_types import EvalTask
from tfrec_llm.errors import DataError
from tfrec_llm.models.first_stage import first_stage
from tfrec_llm.models.scorer import TwoTowerScorer

EXCLUDED_SCORE = -1.0e4
"""Retrieval score given to a candidate slot that only history items could fill (a catalog
smaller than N plus the history): a residual ranker gives it no probability."""


def serving_lists(
    retrieval: TwoTowerScorer,
    catalog: Catalog,
    task: EvalTask,
    history_length: int,
    num_candidates: int,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """One list per user of ``task`` whose target is in the retrieval top ``num_candidates``.

    The candidates and their order are `first_stage`'s (the one `TwoStageScorer` uses), the
    history is ``task.histories`` padded as the scorer pads it.

    Args:
        retrieval: The first stage.
        catalog: The catalog it was built on.
        task: Users, histories and targets (e.g. ``split.valid``).
        history_length: Items of history kept (``model.history_length``).
        num_candidates: N.
        batch_size: Users per retrieval call.

    Returns:
        ``user`` [m] int32, ``history`` [m, L] int32, ``item`` [m, N] int32 candidates,
        ``retrieval_score`` [m, N] float32, ``label`` [m, N] float32 (1 at the targets).

    Raises:
        DataError: No user's target is among the N.
    """
    n = min(int(num_candidates), catalog.num_items)
    parts: list[dict[str, np.ndarray]] = []
    user_ids = np.asarray(task.user_ids, dtype=object)
    for start in range(0, len(user_ids), batch_size):
        rows = slice(start, start + batch_size)
        histories = task.histories[rows]
        _, first, first_scores = first_stage(retrieval, catalog, user_ids[rows], histories, n)
        label = np.zeros(first.shape, np.float32)
        for row, targets in enumerate(task.targets[rows]):
            index = catalog.item_index(np.asarray(targets, dtype=object))
            label[row] = np.isin(first[row], index[index >= 0])
        keep = label.sum(axis=1) > 0
        scores = np.where(np.isfinite(first_scores), first_scores, EXCLUDED_SCORE).astype(np.float32)
        parts.append(
            {
                "user": catalog.user_index(user_ids[rows]).astype(np.int32)[keep],
                "history": catalog.pad_histories(histories, history_length)[keep],
                "item": first[keep],
                "retrieval_score": scores[keep],
                "label": label[keep],
            }
        )
    if not parts or not sum(len(part["user"]) for part in parts):
        raise DataError(
            f"ranking.examples=valid_lists: no user of the {task.name} task has a target among "
            f"the retrieval model's top {n}; raise ranking.num_candidates or use examples=train."
        )
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def split_lists(
    lists: dict[str, np.ndarray], holdout: float, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(fit, held out): a seeded ``holdout`` fraction of the lists (one per user) set aside.

    At least one list on each side when there are two or more.
    """
    count = len(lists["user"])
    order = np.random.default_rng(seed).permutation(count)
    held = min(max(int(round(holdout * count)), 1), count - 1) if count >= 2 else 0
    held_rows, fit_rows = np.sort(order[:held]), np.sort(order[held:])
    return (
        {key: value[fit_rows] for key, value in lists.items()},
        {key: value[held_rows] for key, value in lists.items()},
    )
