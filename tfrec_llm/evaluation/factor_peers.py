"""The ``implicit`` factor-model peers, ALS and BPR (see ``evaluation.peers`` for the contract)."""

from __future__ import annotations

import abc
import importlib
import itertools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tfrec_llm.evaluation.peer_base import CatalogScorer

if TYPE_CHECKING:
    from tfrec_llm.data.splits import Split


class _FactorScorer(CatalogScorer, abc.ABC):
    """An ``implicit`` CPU factor model; scores = user factors @ item factors^T."""

    recalculate_user = False
    implicit_module = ""
    """Module of ``implicit.cpu`` that holds the model, e.g. ``als``."""
    implicit_class = ""
    """The model class in that module, e.g. ``AlternatingLeastSquares``."""

    def __init__(
        self, split: Split, fit_on: str, params: dict[str, Any], random_state: int, num_threads: int
    ) -> None:
        """Fits ``implicit.cpu.<implicit_module>.<implicit_class>(**params)`` on the fit matrix."""
        super().__init__(split, fit_on, params)
        try:
            implicit_cpu = importlib.import_module(f"implicit.cpu.{self.implicit_module}")
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"{self.label}Scorer needs the `implicit` package: "
                "pip install 'tfrec_llm[bench]' (or implicit==0.7.3)."
            ) from err
        from threadpoolctl import threadpool_limits  # a dependency of implicit

        start = time.perf_counter()
        with threadpool_limits(1, "blas"):  # implicit asks for single-threaded BLAS
            self.model = getattr(implicit_cpu, self.implicit_class)(
                **params, random_state=random_state, num_threads=num_threads
            )
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
    implicit_module = "als"
    implicit_class = "AlternatingLeastSquares"

    def __init__(
        self,
        split: Split,
        factors: int = 64,
        regularization: float = 0.01,
        iterations: int = 15,
        alpha: float = 1.0,
        random_state: int = 0,
        num_threads: int = 1,
        recalculate_user: bool = False,
        fit_on: str = "train",
    ) -> None:
        self.recalculate_user = bool(recalculate_user)
        params = {
            "factors": factors,
            "regularization": regularization,
            "iterations": iterations,
            "alpha": alpha,
        }
        super().__init__(split, fit_on, params, random_state, num_threads)
        unseen = np.asarray(self._fit_matrix.sum(axis=0)).ravel() == 0
        self.model.item_factors[unseen] = 0.0  # before implicit first computes and caches YtY

    @staticmethod
    def default_grid() -> list[dict[str, Any]]:
        """Validation grid over factors x regularization (15 iterations)."""
        return [
            {"factors": f, "regularization": r, "iterations": 15}
            for f, r in itertools.product((32, 64, 128), (0.01, 0.1))
        ]

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
    implicit_module = "bpr"
    implicit_class = "BayesianPersonalizedRanking"

    def __init__(
        self,
        split: Split,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        random_state: int = 0,
        num_threads: int = 1,
        fit_on: str = "train",
    ) -> None:
        params = {
            "factors": factors,
            "learning_rate": learning_rate,
            "regularization": regularization,
            "iterations": iterations,
        }
        super().__init__(split, fit_on, params, random_state, num_threads)

    @staticmethod
    def default_grid() -> list[dict[str, Any]]:
        """Validation grid over factors x learning_rate (100 epochs)."""
        return [
            {"factors": f, "learning_rate": lr, "iterations": 100}
            for f, lr in itertools.product((32, 64, 128), (0.01, 0.05))
        ]

    def _cold_user_factors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        factors = np.zeros((len(histories), self.model.user_factors.shape[1]), np.float32)
        factors[:, -1] = 1.0  # implicit's constant bias column
        return factors
