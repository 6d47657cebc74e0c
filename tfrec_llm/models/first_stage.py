"""The first stage of two-stage recommendation: the retrieval model's top N, history removed.

Shared by the two-stage scorer (`tfrec_llm.evaluation.two_stage_scorer`) and the serving-like
ranking lists it is trained on (`tfrec_llm.training.serving_lists`), so both see the same
candidates in the same order as the exported ``recommend`` signature.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfrec_llm.data.catalog import Catalog
from tfrec_llm.models.scorer import TwoTowerScorer


def first_stage(
    retrieval: TwoTowerScorer,
    catalog: Catalog,
    user_ids: np.ndarray,
    histories: Sequence[np.ndarray],
    num_candidates: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The retrieval stage of `TwoStageScorer`: full-catalog scores, history removed, top N.

    Returns:
        (scores [n, num_items] float64 with the history items at -inf, candidates [n, N]
        int32 catalog indices in descending score order (stable), their scores [n, N]).
    """
    scores = retrieval.score(user_ids, histories).astype(np.float64)
    for row, history in enumerate(histories):
        idx = catalog.item_index(np.asarray(history, dtype=object))
        scores[row, idx[idx >= 0]] = -np.inf
    first = np.argsort(-scores, axis=1, kind="stable")[:, :num_candidates].astype(np.int32)
    return scores, first, np.take_along_axis(scores, first, axis=1)
