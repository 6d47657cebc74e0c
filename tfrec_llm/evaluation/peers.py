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

import abc

import importlib
import itertools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tfrec_llm.data.schema import ITEM_ID, USER_ID
from tfrec_llm.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tfrec_llm.data.splits import Split

FIT_ON = ("train", "train_valid")


class _CatalogScorer:
    """Shared plumbing: catalog columns, the binary fit matrix, history vectors."""

    label = "peer"

    def __init__(self, split: Split, fit_on: str, params: dict[str, Any]) -> None:
        if fit_on not in FIT_ON:
            raise ConfigError(f"fit_on={fit_on!r} is not one of {FIT_ON}; use 'train' for tuning "
                              "and 'train_valid' for the TEST refit.")
        self.fit_on = fit_on
        self.params = dict(params)
        self.name = self.label if fit_on == "train" else f"{self.label} (refit on train_valid)"
        self.item_ids = np.asarray(split.item_ids)
        self._item_index = pd.Index(self.item_ids)
        frame = split.train if fit_on == "train" else split.train_valid
        missing = [c for c in (USER_ID, ITEM_ID) if c not in frame.columns]
        if missing or len(frame) == 0:
            raise DataError(f"split.{fit_on} has {len(frame)} rows and columns "
                            f"{list(frame.columns)}; a {self.label} scorer needs at least one "
                            f"interaction with {USER_ID!r} and {ITEM_ID!r} to fit on.")
        users, user_rows = np.unique(frame[USER_ID].to_numpy(), return_inverse=True)
        self._fit_user_index = pd.Index(users)
        cols = self._columns(frame[ITEM_ID].to_numpy(), f"split.{fit_on}")
        self._fit_matrix = self._binary(user_rows, cols, len(users))
        self.fit_seconds = 0.0

    def _columns(self, item_ids: np.ndarray, where: str) -> np.ndarray:
        cols = np.asarray(self._item_index.get_indexer(item_ids), dtype=np.int64)
        if (cols < 0).any():
            unknown = pd.unique(item_ids[cols < 0])[:5].tolist()
            raise DataError(f"{where} holds item ids not in split.item_ids, e.g. {unknown}; "
                            "every scored item must be in the catalog.")
        return cols

    def _binary(self, rows: np.ndarray, cols: np.ndarray, n_rows: int) -> sp.csr_matrix:
        data = np.ones(len(rows), dtype=np.float64)
        matrix = sp.csr_matrix((data, (rows, cols)), shape=(n_rows, len(self.item_ids)))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def _history_matrix(self, histories: Sequence[np.ndarray]) -> sp.csr_matrix:
        lengths = [len(h) for h in histories]
        flat = np.concatenate([np.empty(0, object)] + [np.asarray(h, object) for h in histories])
        rows = np.repeat(np.arange(len(histories)), lengths)
        return self._binary(rows, self._columns(flat, "histories"), len(histories))

    @staticmethod
    def _check_batch(user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> None:
        if len(user_ids) != len(histories):
            raise DataError(f"score got {len(user_ids)} user_ids but {len(histories)} histories; "
                            "pass one history (possibly empty) per user.")


class EASEScorer(_CatalogScorer):
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
        gram = (self._fit_matrix.T @ self._fit_matrix).toarray()
        gram[np.diag_indices_from(gram)] += l2
        precision = np.linalg.inv(gram)
        self.B = precision / -np.diag(precision)
        np.fill_diagonal(self.B, 0.0)
        self.fit_seconds = time.perf_counter() - start

    @staticmethod
    def default_grid() -> list[dict[str, Any]]:
        """Validation grid over l2."""
        return [{"l2": v} for v in (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)]

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores [len(user_ids), num_items] = binary history @ B."""
        self._check_batch(user_ids, histories)
        return np.asarray(self._history_matrix(histories) @ self.B)


class ItemKNNScorer(_CatalogScorer):
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

    def __init__(self, split: Split, k_neighbors: int = 100, shrink: float = 0.0,
                 fit_on: str = "train") -> None:
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
            np.put_along_axis(sim, order[int(k_neighbors):], 0.0, axis=0)
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


class _FactorScorer(_CatalogScorer, abc.ABC):
    """An ``implicit`` CPU factor model; scores = user factors @ item factors^T."""

    recalculate_user = False

    def _fit(self, module: str, cls: str, **kwargs: Any) -> None:
        try:
            implicit_cpu = importlib.import_module(f"implicit.cpu.{module}")
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(f"{self.label}Scorer needs the `implicit` package: "
                              "pip install 'tfrec_llm[bench]' (or implicit==0.7.3).") from err
        from threadpoolctl import threadpool_limits  # a dependency of implicit

        start = time.perf_counter()
        with threadpool_limits(1, "blas"):  # implicit asks for single-threaded BLAS
            self.model = getattr(implicit_cpu, cls)(**kwargs)
            self.model.fit(self._fit_matrix.astype(np.float32), show_progress=False)
        self.fit_seconds = time.perf_counter() - start

    @abc.abstractmethod
    def _cold_user_factors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Factors [len(histories), factors] for users the fit has not seen."""

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores [len(user_ids), num_items] = user factors @ item factors^T."""
        self._check_batch(user_ids, histories)
        rows = self._fit_user_index.get_indexer(np.asarray(user_ids))
        fold = np.ones(len(rows), bool) if self.recalculate_user else rows < 0
        factors = np.zeros((len(rows), self.model.item_factors.shape[1]), np.float32)
        factors[~fold] = self.model.user_factors[rows[~fold]]
        if fold.any():
            cold = [histories[int(i)] for i in np.flatnonzero(fold)]
            factors[fold] = self._cold_user_factors(cold)
        return np.asarray(factors @ self.model.item_factors.T)


class ALSScorer(_FactorScorer):
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008) from ``implicit.cpu.als``.

    Args:
        split: The Split to fit on.
        factors: Latent dimension.
        regularization: L2 on the factors.
        iterations: ALS sweeps.
        alpha: Confidence of a positive (implicit multiplies the binary matrix by it).
        random_state: Seed of implicit's factor initialisation.
        num_threads: implicit solver threads (results do not depend on it).
        recalculate_user: Fold in every scored user from the given history instead of
            using the fitted user factors (unknown users are always folded in).
        fit_on: "train" or "train_valid".

    Raises:
        ConfigError: If a hyperparameter or ``fit_on`` is invalid.
        DataError: If the fit frame is empty or holds ids outside ``split.item_ids``; at
            ``score`` time, if a history does.
    """

    label = "ALS"

    def __init__(self, split: Split, factors: int = 64, regularization: float = 0.01,
                 iterations: int = 15, alpha: float = 1.0, random_state: int = 0,
                 num_threads: int = 1, recalculate_user: bool = False,
                 fit_on: str = "train") -> None:
        super().__init__(split, fit_on, {"factors": factors, "regularization": regularization,
                                         "iterations": iterations, "alpha": alpha})
        self.recalculate_user = bool(recalculate_user)
        self._fit("als", "AlternatingLeastSquares", factors=factors,
                  regularization=regularization, alpha=alpha, iterations=iterations,
                  random_state=random_state, num_threads=num_threads)
        unseen = np.asarray(self._fit_matrix.sum(axis=0)).ravel() == 0
        self.model.item_factors[unseen] = 0.0  # before implicit first computes and caches YtY

    @staticmethod
    def default_grid() -> list[dict[str, Any]]:
        """Validation grid over factors x regularization (15 iterations)."""
        return [{"factors": f, "regularization": r, "iterations": 15}
                for f, r in itertools.product((32, 64, 128), (0.01, 0.1))]

    def _cold_user_factors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        matrix = self._history_matrix(histories).astype(np.float32)
        factors = self.model.recalculate_user(np.arange(len(histories)), matrix)
        return np.asarray(factors).reshape(len(histories), -1)


class BPRScorer(_FactorScorer):
    """Bayesian Personalized Ranking (Rendle et al. 2009) from ``implicit.cpu.bpr``.

    implicit appends a constant 1 to every user vector and an item bias to every item vector.
    Users unknown to the fit get zero latent factors, so they are ranked by item bias alone.

    Args:
        split: The Split to fit on.
        factors: Latent dimension (the bias column comes on top).
        learning_rate: SGD step.
        regularization: L2 on the factors.
        iterations: Epochs.
        random_state: Seed of implicit's initialisation and negative sampling.
        num_threads: SGD threads; 1 keeps the fit deterministic (more threads race, Hogwild).
        fit_on: "train" or "train_valid".

    Raises:
        ConfigError: If a hyperparameter or ``fit_on`` is invalid.
        DataError: If the fit frame is empty or holds ids outside ``split.item_ids``; at
            ``score`` time, if a history does.
    """

    label = "BPR"

    def __init__(self, split: Split, factors: int = 64, learning_rate: float = 0.01,
                 regularization: float = 0.01, iterations: int = 100, random_state: int = 0,
                 num_threads: int = 1, fit_on: str = "train") -> None:
        super().__init__(split, fit_on, {"factors": factors, "learning_rate": learning_rate,
                                         "regularization": regularization,
                                         "iterations": iterations})
        self._fit("bpr", "BayesianPersonalizedRanking", factors=factors,
                  learning_rate=learning_rate, regularization=regularization,
                  iterations=iterations, random_state=random_state, num_threads=num_threads)

    @staticmethod
    def default_grid() -> list[dict[str, Any]]:
        """Validation grid over factors x learning_rate (100 epochs)."""
        return [{"factors": f, "learning_rate": lr, "iterations": 100}
                for f, lr in itertools.product((32, 64, 128), (0.01, 0.05))]

    def _cold_user_factors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        factors = np.zeros((len(histories), self.model.user_factors.shape[1]), np.float32)
        factors[:, -1] = 1.0  # implicit's constant bias column
        return factors


def tune_on_valid(make_scorer: Callable[[dict[str, Any]], Any], grid: Sequence[dict[str, Any]],
                  split: Split, metric: str = "ndcg@10", ks: Sequence[int] = (10, 50),
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
        raise ConfigError("grid is empty; pass at least one parameter dict, e.g. "
                          "EASEScorer.default_grid().")
    name, _, k = metric.partition("@")
    if not name or not k.isdigit() or int(k) not in ks:
        raise ConfigError(f"metric={metric!r} must be '<name>@<k>' with k in ks={tuple(ks)}, "
                          "e.g. 'ndcg@10'.")
    rows: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any], Any] | None = None
    for params in grid:
        start = time.perf_counter()
        scorer = make_scorer(dict(params))
        fitted = time.perf_counter()
        result = evaluate(scorer, split.valid, split.item_ids, ks=tuple(ks))
        if metric not in result:
            raise ConfigError(f"metric={metric!r} is not among evaluate's results "
                              f"{sorted(result)}; pick one of them.")
        rows.append({"params": dict(params), **{f"valid/{key}": v for key, v in result.items()},
                     "fit_seconds": fitted - start,
                     "eval_seconds": time.perf_counter() - fitted})
        if best is None or result[metric] > best[0]:
            best = (result[metric], dict(params), scorer)
    assert best is not None  # the grid is not empty
    return best[1], best[2], rows
