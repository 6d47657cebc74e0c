"""Reference scorers that every quality table lists: Random and MostPop.

Both follow the `tfrec_llm.evaluation.protocols.Scorer` protocol and run through the same split
and metric code as the models (docs/evaluation.md, "Rules").

Example:
    >>> split = make_split(dataset, "loo")  # doctest: +SKIP
    >>> evaluate(MostPopScorer(split), split.test, split.item_ids)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import numpy as np

from tfrec_llm.data.schema import ITEM_ID
from tfrec_llm.data.splits import Split
from tfrec_llm.errors import ConfigError, DataError


class RandomScorer:
    """Uniform random scores in ``[0, 1)`` from the scorer's own numpy Generator.

    Draws are consumed row by row, so the scores a user gets do not depend on the batch size,
    only on the order in which users are scored since construction.

    Args:
        split: The split whose ``item_ids`` fix the score columns.
        seed: Seed of the scorer's ``numpy.random.Generator``.

    Example:
        >>> scorer = RandomScorer(split, seed=0)  # doctest: +SKIP
        >>> scorer.score(np.array(["1", "2"]), [np.array([]), np.array([])]).shape  # +SKIP
        (2, 1682)
    """

    name = "Random"

    def __init__(self, split: Split, seed: int = 0) -> None:
        self._n_items = int(np.asarray(split.item_ids).size)
        self._rng = np.random.default_rng(seed)

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Returns ``[len(user_ids), n_items]`` float64 uniform scores; ignores histories."""
        return self._rng.random((len(user_ids), self._n_items))


class MostPopScorer:
    """Scores each item by its number of interactions in the split's training frame.

    Every user gets the same scores; items never seen in training score 0 (ties among them
    are broken by the evaluator's tie priority).

    Args:
        split: The split to count over.
        fit_on: ``"train"`` (default, the contract) counts ``split.train``; ``"train_valid"``
            counts ``split.train_valid`` (the refit variant for TEST scores, docs/evaluation.md A).

    Raises:
        ConfigError: If ``fit_on`` is not one of the two names.
        DataError: If the training frame lacks an ``item_id`` column.

    Example:
        >>> scorer = MostPopScorer(split)  # doctest: +SKIP
        >>> evaluate(scorer, split.test, split.item_ids)["ndcg@10"]  # doctest: +SKIP
    """

    name = "MostPop"

    def __init__(self, split: Split, fit_on: str = "train") -> None:
        if fit_on not in ("train", "train_valid"):
            raise ConfigError(f"fit_on must be 'train' or 'train_valid', got {fit_on!r}.")
        frame = getattr(split, fit_on)
        if ITEM_ID not in frame.columns:
            raise DataError(
                f"split.{fit_on} has no {ITEM_ID!r} column (columns: {list(frame.columns)}); "
                "build the split with tfrec_llm.data.splits.make_split."
            )
        item_ids = np.asarray(split.item_ids)
        index = {item: i for i, item in enumerate(item_ids.tolist())}
        trained = frame[ITEM_ID].tolist()
        columns = np.fromiter(map(index.get, trained, repeat(-1)), np.int64, len(trained))
        if (columns < 0).any():
            unknown = trained[int(np.argmax(columns < 0))]
            raise DataError(
                f"split.{fit_on} holds item id {unknown!r}, which is not in split.item_ids; "
                "the catalog must contain every interacted item."
            )
        self._counts = np.bincount(columns, minlength=item_ids.size).astype(np.float64)

    @property
    def counts(self) -> np.ndarray:
        """``[n_items]`` interaction counts in ``split.item_ids`` order (a copy)."""
        return self._counts.copy()

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Returns ``[len(user_ids), n_items]`` float64 counts, the same row for every user."""
        return np.tile(self._counts, (len(user_ids), 1))
