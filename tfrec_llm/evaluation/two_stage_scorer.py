"""The two-stage pipeline as a scorer: retrieve N with the retrieval model, re-rank with the ranker.

`TwoStageScorer` has the ``score(user_ids, histories)`` interface of
`tfrec_llm.models.scorer.TwoTowerScorer`, so the protocol evaluators and the paired
comparisons (`tfrec_llm.evaluation.compare`) read it like any model. Per user: the retrieval
scores of the whole catalog, the history items removed (they are excluded from the ranking
anyway), the top N kept; the ranking model scores those N; the returned row puts the N
re-ranked items first (in the ranker's order) and every other item after them (in the
retrieval order), which is what the exported ``recommend`` signature returns for k <= N.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfrec_llm.data.catalog import Catalog
from tfrec_llm.models.first_stage import first_stage
from tfrec_llm.models.ranking import RankingModel
from tfrec_llm.models.scorer import TwoTowerScorer


class TwoStageScorer:
    """Retrieval top N re-ranked by a `RankingModel`; the rest of the catalog after them.

    Args:
        retrieval: The first stage's scorer (its model and catalog).
        ranking_model: The second stage.
        catalog: The catalog both were built on.
        num_candidates: N.
        name: Name in reports.
    """

    def __init__(
        self,
        retrieval: TwoTowerScorer,
        ranking_model: RankingModel,
        catalog: Catalog,
        num_candidates: int = 100,
        name: str = "two-stage",
    ) -> None:
        self.retrieval = retrieval
        self.ranking_model = ranking_model
        self.catalog = catalog
        self.num_candidates = min(int(num_candidates), catalog.num_items)
        self.name = name
        self.history_length = retrieval.model.history_length

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[n, num_items]: the N re-ranked items above every other item, columns in catalog order."""
        scores, first, first_scores = first_stage(
            self.retrieval, self.catalog, user_ids, histories, self.num_candidates
        )
        users = self.catalog.user_index(np.asarray(user_ids, dtype=object)).astype(np.int32)
        padded = self.catalog.pad_histories(histories, self.history_length)
        ranked = self.ranking_model.score_candidates(
            {"user": tf.constant(users), "history": tf.constant(padded)},
            tf.constant(first),
            tf.constant(np.where(np.isfinite(first_scores), first_scores, 0.0).astype(np.float32)),
            training=False,
        ).numpy()
        ranked = np.where(np.isfinite(first_scores), ranked, -np.inf)
        # retrieval order below the N: map retrieval scores under the ranked block
        out = scores - np.nanmax(np.where(np.isfinite(scores), scores, np.nan)) - 1.0
        lowest = np.min(np.where(np.isfinite(ranked), ranked, np.inf), axis=1, keepdims=True)
        block = ranked - np.where(np.isfinite(lowest), lowest, 0.0) + 1.0  # >= 1 for finite rows
        np.put_along_axis(out, first, np.where(np.isfinite(first_scores), block, -np.inf), axis=1)
        return out.astype(np.float32)
