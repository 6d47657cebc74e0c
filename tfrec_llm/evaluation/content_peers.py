"""Content-only peers: a user profile built from the text of the items in their history.

They need no training on interactions at all, so they are the floor a text-aware model must
clear on cold items (protocol B): if a trained two-tower model does not beat plain text
similarity, the training added nothing for new items.

- ``TextKNNScorer``: the mean of the history items' L2-normalised text vectors (e.g. frozen
  MiniLM embeddings), scored by cosine against every item's vector.
- ``TfidfProfileScorer``: TF-IDF rows of the item texts (English stop words removed, rows
  L2-normalised), the profile their sum over the history, scored by dot product.

Both take their item vectors or texts in ``split.item_ids`` order (``Prepared.item_texts`` and
``Prepared.text_embeddings`` already are). A user with an empty history scores 0 everywhere.

Example:
    >>> scorer = TextKNNScorer(prepared.split, prepared.text_embeddings)  # doctest: +SKIP
    >>> evaluate(scorer, prepared.split.test, prepared.split.item_ids)["recall@10"]  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tfrec_llm.errors import ConfigError
from tfrec_llm.evaluation.peer_base import CatalogScorer

if TYPE_CHECKING:
    from tfrec_llm.data.splits import Split

__all__ = ["TextEvidenceKNNScorer", "TextKNNScorer", "TfidfProfileScorer"]


def _check_rows(split: Split, rows: int, what: str) -> None:
    if rows != len(split.item_ids):
        raise ConfigError(
            f"{what} has {rows} rows but the split has {len(split.item_ids)} items; pass one row "
            "per item of split.item_ids, in that order (Prepared.item_texts / text_embeddings)."
        )


class TextKNNScorer(CatalogScorer):
    """Cosine between the mean of the history's text vectors and every item's text vector.

    Args:
        split: The Split (``split.item_ids`` gives the rows of ``item_vectors``).
        item_vectors: [num_items, dim] text embeddings in ``split.item_ids`` order.
        label: Report name (default ``TextKNN``; the benchmark says which encoder).

    Raises:
        ConfigError: If ``item_vectors`` does not have one row per item.
    """

    label = "TextKNN"

    def __init__(self, split: Split, item_vectors: np.ndarray, label: str | None = None) -> None:
        if label:
            self.label = label
        super().__init__(split, "train", {})
        vectors = np.asarray(item_vectors, np.float64)
        _check_rows(split, len(vectors), "item_vectors")
        start = time.perf_counter()
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        self.fit_seconds = time.perf_counter() - start

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores [len(user_ids), num_items]: cosine(mean of history vectors, item vector).

        The mean and the sum point the same way, so the sum is normalised directly.
        """
        self._check_batch(user_ids, histories)
        history = self._history_matrix(histories)  # repeated items count once
        profile = np.asarray(history @ self.unit)
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        profile = np.divide(profile, norms, out=np.zeros_like(profile), where=norms > 0)
        return profile @ self.unit.T


class TfidfProfileScorer(CatalogScorer):
    """TF-IDF item rows (stop words removed); profile = sum of the history's rows; dot product.

    Args:
        split: The Split (``split.item_ids`` gives the order of ``item_texts``).
        item_texts: One text per item of ``split.item_ids``.
        stop_words: scikit-learn's ``stop_words`` (default ``english``; None keeps every word).

    Raises:
        ConfigError: If ``item_texts`` does not have one text per item.
    """

    label = "TF-IDF profile"

    def __init__(self, split: Split, item_texts: Sequence[str], stop_words: str | None = "english") -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        super().__init__(split, "train", {"stop_words": stop_words})
        _check_rows(split, len(item_texts), "item_texts")
        start = time.perf_counter()
        self.rows = TfidfVectorizer(stop_words=stop_words).fit_transform(list(item_texts)).tocsr()
        self.fit_seconds = time.perf_counter() - start

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores [len(user_ids), num_items] = (binary history @ rows) @ rows^T."""
        self._check_batch(user_ids, histories)
        profile = self._history_matrix(histories) @ self.rows
        return np.asarray((profile @ self.rows.T).todense())


class TextEvidenceKNNScorer(TextKNNScorer):
    """``TextKNNScorer`` that also reads a user's own text: cosine(profile, item vector).

    The profile is the L2-normalised sum of the history's item vectors and the user's text
    vector (the same BERT), so a user with only text is scored by text similarity alone, and
    a user with only items exactly as by ``TextKNNScorer``.

    Args:
        split: The Split (``split.item_ids`` gives the rows of ``item_vectors``).
        item_vectors: [num_items, dim] text embeddings in ``split.item_ids`` order.
        user_texts: user id -> [dim] embedding of the user's text (same encoder); users
            missing here gave no text.
        label: Report name.
    """

    label = "TextKNN+user text"

    def __init__(
        self,
        split: Split,
        item_vectors: np.ndarray,
        user_texts: dict[str, np.ndarray],
        label: str | None = None,
    ) -> None:
        super().__init__(split, item_vectors, label)
        self.user_texts = {user: np.asarray(v, np.float64) for user, v in user_texts.items()}

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores [len(user_ids), num_items]: cosine(history vectors + text vector, item vector)."""
        self._check_batch(user_ids, histories)
        profile = np.asarray(self._history_matrix(histories) @ self.unit)
        for row, user in enumerate(np.asarray(user_ids, dtype=object).tolist()):
            text = self.user_texts.get(user)
            if text is not None:
                profile[row] += text / max(float(np.linalg.norm(text)), 1e-12)
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        profile = np.divide(profile, norms, out=np.zeros_like(profile), where=norms > 0)
        return profile @ self.unit.T
