"""The ``ranking`` serving graph: retrieve N, rank them, return the top K, from raw strings.

`TwoStageModule` holds a `RetrievalModule` (the first stage: string tables, candidate
embeddings, stored histories, seen items, popularity) and the trained `RankingModel` (the
second stage), so that one SavedModel answers a request in one graph.

Signature ``recommend`` (also ``serving_default``):
    inputs:  user_id          string [batch]
             recent_item_ids  string [batch, n]  optional, as the retrieval signature's
             exclude_item_ids string [batch, m]  optional, as the retrieval signature's
             k                int32 []           optional: default ``default_k``; k <= 0 fails
                                                 with INVALID_ARGUMENT ("k must be >= 1");
                                                 capped at min(max_k, num_candidates, catalog)
             user_text        string [batch]     optional, only when the model reads user text
                                                 (``model.user_text``): as the retrieval
                                                 signature's, it shapes the first stage's query
    outputs: item_ids         string [batch, k]   the ranking model's top k of the N retrieved
             scores           float32 [batch, k]  the ranking model's scores (-inf for slots
                                                  filled by excluded items, tiny catalogs only)
             retrieval_scores float32 [batch, k]  the same items' first-stage scores
             used_fallback    bool [batch]        unknown user without history: the answer is
                                                  the popularity ranking, not re-ranked (the
                                                  ranking model knows nothing of them either)

Signature ``score``: ``user_id`` [batch], ``item_ids`` string [batch, n] (and the optional
``recent_item_ids``, and ``user_text`` for a model that reads it) -> ``scores`` float32
[batch, n], the ranking model's score of each pair; item ids not in the catalog score -inf.

The retrieval stage is exactly the retrieval signature's (same exclusion of seen, recent and
excluded items); its top N (``ranking.num_candidates``, default 100) and
their scores are ranked as ``RankingModel.score_candidates`` ranks them, with the user's index
(OOV row for unknown users) and the same history window the query tower read; the ranking
model's item vectors of the whole catalog are computed once at export (``ranking_items``), so
a request gathers rows instead of running the item tower (text projection, categories).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrec_llm.data.catalog import Catalog
from tfrec_llm.errors import ConfigError
from tfrec_llm.export.serving_module import RetrievalModule
from tfrec_llm.export.signatures import _NO_IDS, _NO_TEXT, USER_TEXT_INPUT, top_k_function
from tfrec_llm.models.ranking import RankingModel
from tfrec_llm.models.retrieval import TwoTowerModel
from tfrec_llm.text.encoder import TextEncoder

DEFAULT_NUM_CANDIDATES = 100
"""N, the candidates the first stage hands to the ranking model."""


class TwoStageModule(tf.Module):
    """Retrieval of N candidates, then ranking of them, for raw user ids.

    Args:
        model: Trained two-tower (retrieval) model.
        ranking_model: Trained ranking model of the same catalog.
        catalog: The catalog both were trained on.
        histories: user id -> chronological item ids (as `RetrievalModule`'s).
        default_k: K when a request does not send ``k``.
        max_k: Cap on ``k``.
        num_candidates: N, the retrieved candidates that are ranked.
        text_encoder: The item texts' encoder, for a model whose query tower reads user text
            (``model.user_text_dim``): adds the optional ``user_text`` input to both signatures.
            The text shapes the first stage only; the ranking model reads the user's index and
            history, as for any user.

    Raises:
        ConfigError: If ``num_candidates`` < 1, or ``text_encoder`` is missing for a model that
            reads user text (or given for one that does not).
    """

    def __init__(
        self,
        model: TwoTowerModel,
        ranking_model: RankingModel,
        catalog: Catalog,
        histories: Mapping[str, Sequence[str]],
        default_k: int = 10,
        max_k: int = 100,
        num_candidates: int = DEFAULT_NUM_CANDIDATES,
        text_encoder: TextEncoder | None = None,
    ) -> None:
        super().__init__(name="ranking")
        if isinstance(num_candidates, bool) or int(num_candidates) < 1:
            raise ConfigError(
                f"ranking.num_candidates={num_candidates!r}; expected an integer >= 1 (the retrieved "
                "candidates the ranking model re-ranks, e.g. 100)."
            )
        self.retrieval = RetrievalModule(
            model, catalog, histories, default_k, max_k, text_encoder=text_encoder
        )
        self.ranking_model = ranking_model
        # the ranking model's item vectors of the whole catalog, computed once (as the
        # retrieval candidates): a request gathers rows instead of running the item tower
        items = tf.range(catalog.num_items, dtype=tf.int32)
        self.ranking_items = tf.Variable(
            ranking_model.item_tower(items, training=False), trainable=False, name="ranking_items"
        )
        self.num_candidates = min(int(num_candidates), catalog.num_items)
        self.max_k = min(int(max_k), self.num_candidates)
        self.default_k = default_k
        with_text = text_encoder is not None
        recommend = top_k_function(self._recommend, default_k, user_text=with_text)
        score_inputs = [
            tf.TensorSpec([None], tf.string, name="user_id"),
            tf.TensorSpec([None, None], tf.string, name="item_ids"),
            tf.TensorSpec([None, None], tf.string, name="recent_item_ids"),
        ]

        @tf.function(input_signature=score_inputs)
        def score(user_id: tf.Tensor, item_ids: tf.Tensor, recent_item_ids: tf.Tensor = _NO_IDS) -> dict:
            return {"scores": self._score(user_id, item_ids, recent_item_ids)}

        if with_text:  # the same signature plus the optional user_text

            @tf.function(input_signature=[*score_inputs, USER_TEXT_INPUT])
            def score(  # noqa: F811
                user_id: tf.Tensor,
                item_ids: tf.Tensor,
                recent_item_ids: tf.Tensor = _NO_IDS,
                user_text: tf.Tensor = _NO_TEXT,
            ) -> dict:
                return {"scores": self._score(user_id, item_ids, recent_item_ids, user_text)}

        self.recommend = recommend
        self.score = score

    def _rank(self, q: dict, items: tf.Tensor, retrieval_scores: tf.Tensor) -> tf.Tensor:
        """[batch, n] ranking scores of catalog rows ``items`` (= ``RankingModel.score_candidates``)."""
        model = self.ranking_model
        history = q["history"]
        user = model.query_tower(
            {
                "user": q["users"],
                "history": tf.gather(self.ranking_items, tf.maximum(history, 0)),
                "history_mask": history >= 0,
            },
            training=False,
        )
        vectors = tf.gather(self.ranking_items, items)
        ranked = model.score_pairs(user, vectors, items, retrieval_scores, training=False, history=history)
        return tf.cast(ranked, tf.float32)

    def _recommend(
        self,
        user_id: tf.Tensor,
        recent_item_ids: tf.Tensor,
        exclude_item_ids: tf.Tensor,
        k: tf.Tensor,
        user_text: tf.Tensor | None = None,
    ) -> dict[str, tf.Tensor]:
        retrieval = self.retrieval
        # the retrieval signature's request handling: OOV users, stored + recent history, user
        # text, exclusions (-inf), k <= 0 rejected
        q, scores = retrieval._request_scores(user_id, recent_item_ids, exclude_item_ids, k, user_text)

        first = tf.math.top_k(scores, k=self.num_candidates)  # stage 1: N candidates
        usable = tf.math.is_finite(first.values)
        safe_scores = tf.where(usable, first.values, tf.zeros_like(first.values))
        ranked = self._rank(q, first.indices, safe_scores)
        # fallback users keep the popularity order; excluded slots stay last
        ranked = tf.where(q["fallback"][:, tf.newaxis], first.values, ranked)
        ranked = tf.where(usable, ranked, tf.fill(tf.shape(ranked), -np.inf))
        second = tf.math.top_k(ranked, k=tf.minimum(k, self.max_k))  # stage 2: top K of N
        rows = tf.gather(first.indices, second.indices, batch_dims=1)
        return {
            "item_ids": tf.gather(retrieval.item_ids, rows),
            "scores": second.values,
            "retrieval_scores": tf.gather(first.values, second.indices, batch_dims=1),
            "used_fallback": q["fallback"],
        }

    def _score(
        self,
        user_id: tf.Tensor,
        item_ids: tf.Tensor,
        recent_item_ids: tf.Tensor,
        user_text: tf.Tensor | None = None,
    ) -> tf.Tensor:
        retrieval = self.retrieval
        q = retrieval._query(user_id, recent_item_ids, _NO_IDS, user_text)
        items = retrieval.item_table.lookup(item_ids)
        known = items >= 0
        items = tf.maximum(items, 0)
        first = tf.gather(retrieval._scores(q), items, batch_dims=1)
        ranked = self._rank(q, items, first)
        return tf.where(known, ranked, tf.fill(tf.shape(ranked), -np.inf))
