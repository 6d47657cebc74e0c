"""Classic collaborative-filtering peers as Scorers: EASE, ItemKNN, ALS and BPR.

Every peer is built for one ``Split`` and fits, in its constructor, on the binary user x item
matrix of ``split.train`` (``fit_on="train"``) or ``split.train_valid`` (``fit_on="train_valid"``,
the refit for the TEST score; the scorer's ``name`` then says so). Columns of every score matrix
follow ``split.item_ids``. Repeated (user, item) pairs count once. Every peer has ``name``,
``fit_on``, ``params`` (its hyperparameters) and ``fit_seconds`` (wall time of the fit itself,
building the binary matrix excluded).

Where the user vector comes from:
    - EASE, ItemKNN: from the ``histories`` passed to ``score`` (so cold users and TRAIN+VALID
      test histories work without a refit).
    - ALS, BPR (``implicit`` CPU models): from the fit. A user not in the fit frame is folded in
      from the history by ALS (``implicit``'s ``recalculate_user``); BPR cannot fold in (implicit
      does not support it), so such a user gets zero latent factors and is scored by the learned
      item bias alone. ``ALSScorer(recalculate_user=True)`` folds in every user from the given
      history. ALS gives items without a fit interaction zero factors (score 0, which is also the
      exact ALS solution for them); BPR trains them as negatives like any other item.

Memory: EASE and ItemKNN hold dense [num_items, num_items] float64 matrices (22 MB for ML-100K).

Example:
    >>> make = lambda p: EASEScorer(split, **p)  # doctest: +SKIP
    >>> best, _, rows = tune_on_valid(make, EASEScorer.default_grid(), split)  # doctest: +SKIP
    >>> final = EASEScorer(split, **best, fit_on="train_valid")  # doctest: +SKIP
    >>> evaluate(final, split.test, split.item_ids)["ndcg@10"]  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tfrec_llm.errors import ConfigError
from tfrec_llm.evaluation.factor_peers import ALSScorer, BPRScorer
from tfrec_llm.evaluation.peer_base import FIT_ON, CatalogScorer
from tfrec_llm.models.item_item import ease_weights

if TYPE_CHECKING:
    from tfrec_llm.data.splits import Split

__all__ = ["FIT_ON", "ALSScorer", "BPRScorer", "EASEScorer", "ItemKNNScorer", "tune_on_valid"]


class EASEScorer(CatalogScorer):
    """EASE (Steck, 2019): closed-form item-item ridge regression with a zero diagonal.

    B = argmin ||X - XB||^2 + l2 ||B||^2 s.t. diag(B) = 0, solved as P = (X^T X + l2 I)^-1,
    B_ij = -P_ij / P_jj, B_jj = 0. Scores: [n, num_items] = x_u B, x_u the binary history.

    Args:
        split: The Split to fit on (``split.item_ids`` gives the columns).
        l2: Ridge strength lambda, > 0.
        fit_on: "train" or "train_valid".

    Raises:
        ConfigError: If a hyperparameter or ``fit_on`` is invalid.
        DataError: If the fit frame is empty or holds ids outside ``split.item_ids``; at
            ``score`` time, if a history does.
    """

    label = "EASE"

    def __init__(self, split: Split, l2: float = 500.0, fit_on: str = "train") -> None:
        if not l2 > 0:
            raise ConfigError(f"l2={l2!r} must be > 0 (X^T X alone is singular); try 500.")
        super().__init__(split, fit_on, {"l2": float(l2)})
        start = time.perf_counter()
        self.B = ease_weights(self._fit_matrix, l2, dtype=np.float64)
        self.fit_seconds = time.perf_counter() - start

    @staticmethod
    def default_grid() -> list[dict[str, Any]]:
        """Validation grid over l2."""
        return [{"l2": v} for v in (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)]

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores [len(user_ids), num_items] = binary history @ B."""
        self._check_batch(user_ids, histories)
        return np.asarray(self._history_matrix(histories) @ self.B)


class ItemKNNScorer(CatalogScorer):
    """Item-based k-nearest neighbours with cosine similarity on the binary matrix.

    S_ij = <x_i, x_j> / (|x_i| |x_j| + shrink), S_jj = 0; column j keeps only its k_neighbors
    largest entries (equal values: lower catalog position first). Scores = x_u S.

    Args:
        split: The Split to fit on.
        k_neighbors: Neighbours kept per item, >= 1.
        shrink: Added to the cosine denominator, >= 0 (damps pairs with little support).
        fit_on: "train" or "train_valid".

    Raises:
        ConfigError: If a hyperparameter or ``fit_on`` is invalid.
        DataError: If the fit frame is empty or holds ids outside ``split.item_ids``; at
            ``score`` time, if a history does.
    """

    label = "ItemKNN"

    def __init__(
        self, split: Split, k_neighbors: int = 100, shrink: float = 0.0, fit_on: str = "train"
    ) -> None:
        if int(k_neighbors) != k_neighbors or k_neighbors < 1:
            raise ConfigError(f"k_neighbors={k_neighbors!r} must be an integer >= 1; try 100.")
        if not shrink >= 0:
            raise ConfigError(f"shrink={shrink!r} must be >= 0; use 0 for plain cosine.")
        super().__init__(split, fit_on, {"k_neighbors": int(k_neighbors), "shrink": float(shrink)})
        start = time.perf_counter()
        cooc = (self._fit_matrix.T @ self._fit_matrix).toarray()
        norms = np.sqrt(np.diag(cooc))
        denom = np.outer(norms, norms) + shrink
        sim = np.divide(cooc, denom, out=np.zeros_like(cooc), where=denom > 0)
        np.fill_diagonal(sim, 0.0)
        if k_neighbors < sim.shape[0]:
            order = np.argsort(-sim, axis=0, kind="stable")
            np.put_along_axis(sim, order[int(k_neighbors) :], 0.0, axis=0)
        self.S = sim
        self.fit_seconds = time.perf_counter() - start

    @staticmethod
    def default_grid() -> list[dict[str, Any]]:
        """Validation grid over k_neighbors."""
        return [{"k_neighbors": k} for k in (20, 50, 100, 200)]

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores [len(user_ids), num_items] = binary history @ S."""
        self._check_batch(user_ids, histories)
        return np.asarray(self._history_matrix(histories) @ self.S)


def tune_on_valid(
    make_scorer: Callable[[dict[str, Any]], Any],
    grid: Sequence[dict[str, Any]],
    split: Split,
    metric: str = "ndcg@10",
    ks: Sequence[int] = (10, 50),
) -> tuple[dict[str, Any], Any, list[dict[str, Any]]]:
    """Grid search on ``split.valid`` with ``protocols.evaluate``.

    Args:
        make_scorer: Builds a scorer fitted on TRAIN from one grid point, e.g.
            ``lambda p: EASEScorer(split, **p)``.
        grid: Parameter dicts, tried in order; the first of equal best values wins.
        split: Gives ``valid`` and ``item_ids``.
        metric: Key of ``evaluate``'s result to maximise, ``<name>@<k>`` with k in ``ks``.
        ks: Cut-offs passed to ``evaluate``.

    Returns:
        (best params, the scorer fitted with them on TRAIN, one row per grid point:
        ``{"params": ..., "valid/<metric>": ..., "fit_seconds": ..., "eval_seconds": ...}``).

    Raises:
        ConfigError: Empty grid, or a metric ``evaluate`` does not return.
    """
    from tfrec_llm.evaluation.protocols import evaluate

    if len(grid) == 0:
        raise ConfigError("grid is empty; pass at least one parameter dict, e.g. EASEScorer.default_grid().")
    name, _, k = metric.partition("@")
    if not name or not k.isdigit() or int(k) not in ks:
        raise ConfigError(f"metric={metric!r} must be '<name>@<k>' with k in ks={tuple(ks)}, e.g. 'ndcg@10'.")
    rows: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any], Any] | None = None
    for params in grid:
        start = time.perf_counter()
        scorer = make_scorer(dict(params))
        fitted = time.perf_counter()
        result = evaluate(scorer, split.valid, split.item_ids, ks=tuple(ks))
        if metric not in result:
            raise ConfigError(
                f"metric={metric!r} is not among evaluate's results {sorted(result)}; pick one of them."
            )
        rows.append(
            {
                "params": dict(params),
                **{f"valid/{key}": v for key, v in result.items()},
                "fit_seconds": fitted - start,
                "eval_seconds": time.perf_counter() - fitted,
            }
        )
        if best is None or result[metric] > best[0]:
            best = (result[metric], dict(params), scorer)
    assert best is not None  # the grid is not empty
    return best[1], best[2], rows
