"""Full-catalog scoring of a trained two-tower model, for the evaluator (a ``Scorer``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfrec_llm.data.catalog import Catalog
from tfrec_llm.models.retrieval import TwoTowerModel


def prior_bias(catalog: Catalog, beta: float, temperature: float) -> np.ndarray | None:
    """[num_items] ``temperature * beta * log(1 + TRAIN count)``, or None when ``beta`` is 0.

    The score with the prior is ``(q . c + prior_bias) / temperature`` = ``cosine / temperature
    + beta * log(1 + count)`` (``model.popularity_prior``); an item without TRAIN
    interactions (a new item) gets 0, the bias of an unseen item.

    Example:
        >>> prior_bias(catalog, 0.5, 0.1)  # counts [0, 9]: [0.0, 0.05 * log(10)]  # doctest: +SKIP
    """
    if not beta:
        return None
    counts = np.maximum(np.asarray(catalog.popularity, np.float64), 0.0)
    return (temperature * beta * np.log1p(counts)).astype(np.float32)


class TwoTowerScorer:
    """Scores every catalog item for users given their histories, with a fixed model snapshot.

    The candidate embeddings are computed once, at construction; build a new scorer after
    the weights change.

    Args:
        model: The trained model.
        catalog: The catalog the model was built on.
        name: Name in reports.
        batch_size: Users per query-tower call.
        hide_user_ids: Treat every user as unknown (the unknown-user row: no id, no profile),
            so the history alone makes the query, as for a logged-out user.
        user_texts: user id -> [text_dim] BERT vector of the user's own text (a model with
            ``model.user_text``); users missing here, or None, gave no text.
        popularity_prior: beta of `prior_bias`; None (default) takes the model's
            ``popularity_prior`` (0 = plain dot products).
    """

    def __init__(
        self,
        model: TwoTowerModel,
        catalog: Catalog,
        name: str = "TwoTower",
        batch_size: int = 1024,
        hide_user_ids: bool = False,
        user_texts: Mapping[str, np.ndarray] | None = None,
        popularity_prior: float | None = None,
    ) -> None:
        self.name = name
        self.hide_user_ids = hide_user_ids
        self.model = model
        self.catalog = catalog
        self.batch_size = batch_size
        self.candidates = model.all_candidate_embeddings()
        self.user_texts = dict(user_texts or {})
        beta = model.popularity_prior if popularity_prior is None else popularity_prior
        self.bias = prior_bias(catalog, beta, model.temperature)

    def query_embeddings(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[n, dim] query embeddings of users (unknown ids use the unknown-user row)."""
        users = self.catalog.user_index(np.asarray(user_ids, dtype=object)).astype(np.int32)
        if self.hide_user_ids:
            users = np.full_like(users, self.catalog.num_users)
        padded = self.catalog.pad_histories(histories, self.model.history_length)
        texts = None
        if self.user_texts:
            texts = np.zeros((len(users), self.model.user_text_dim), np.float32)
            for row, user in enumerate(np.asarray(user_ids, dtype=object).tolist()):
                if user in self.user_texts:
                    texts[row] = self.user_texts[user]
        out = []
        for i in range(0, len(users), self.batch_size):
            rows = slice(i, i + self.batch_size)
            text = None if texts is None else tf.constant(texts[rows])
            out.append(
                self.model.inference_query_embedding(
                    tf.constant(users[rows]), tf.constant(padded[rows]), text
                ).numpy()
            )
        return np.concatenate(out) if out else np.zeros((0, self.candidates.shape[1]), np.float32)

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[n, num_items] dot-product scores, columns in catalog order.

        With a popularity prior: ``(q . c + prior_bias) / temperature`` (`prior_bias`), the
        scores the exported retrieval graph returns.
        """
        scores = self.query_embeddings(user_ids, histories) @ self.candidates.T
        if self.bias is None:
            return scores
        return (scores + self.bias) / np.float32(self.model.temperature)
