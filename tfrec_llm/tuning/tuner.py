"""KerasTuner over the two-tower model: RandomSearch, Hyperband and BayesianOptimization.

KerasTuner 1.4.8 binds to Keras 3 and rejects tf-keras models (docs/stack.md), so these tuners
never hand it a model: the search space is declared up front from ``tune.space``
(:mod:`tfrec_llm.tuning.search_space`), and ``run_trial`` trains the two-tower model with
:func:`tfrec_llm.experiments.runs.train_variant` -- early stopping and best weights on the
VALID objective of our full-ranking evaluator -- and returns its metrics as a dict.

Layout of the search directory ``DIR``::

    search.yaml           the base config of the search; a restart must use the same one
    oracle.json           KerasTuner's oracle state; <tuner id>.json, the tuner's
    trial_<id>/           trial.json (KerasTuner) + config.yaml (the trial's config),
                          best.weights.h5, validation.json, backup/ (resume), logs/
    results.csv           one row per trial: hyperparameters, objective, seconds
    results.md            the same table in markdown, best trial marked
    best.yaml             the best trial's full config (``tfrec-llm train --config DIR/best.yaml``)

Restarting a search with the same ``DIR`` (``overwrite=False``) reloads KerasTuner's state:
finished trials are kept, an interrupted trial runs again and resumes from its last finished
epoch (``trial_<id>/backup``). Setting ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT`` runs KerasTuner's chief/worker mode (docs/tuning.md); KerasTuner
reads those variables itself.

Example:
    >>> tuner = build_tuner(cfg, "runs/tune", variant="bert", trial_setup=seed_everything)
    >>> tuner.search(prepare(cfg, cfg.tune.protocol))
    >>> summary = tuner.write_results()
    >>> summary.best.trial_id, summary.best.score
"""

from __future__ import annotations

from typing import Any

import keras_tuner

from tfrec_llm.config import ExperimentConfig
from tfrec_llm.tuning import oracles
from tfrec_llm.tuning.distributed import is_distributed_chief, is_distributed_worker
from tfrec_llm.tuning.summary import SearchSummary, write_search_results
from tfrec_llm.tuning.trials import TrialSetup, TwoTowerTrials

__all__ = [
    "TUNERS",
    "SearchSummary",
    "TrialSetup",
    "TwoTowerBayesianOptimization",
    "TwoTowerHyperband",
    "TwoTowerRandomSearch",
    "TwoTowerTrials",
    "build_tuner",
    "is_distributed_chief",
    "is_distributed_worker",
    "write_search_results",
]


class TwoTowerRandomSearch(TwoTowerTrials, keras_tuner.RandomSearch):
    """Random search over ``tune.space``, ``tune.max_trials`` trials."""

    oracle_class = oracles.RandomSearchOracle

    @staticmethod
    def oracle_arguments(cfg: ExperimentConfig) -> dict[str, Any]:
        return {"max_trials": cfg.tune.max_trials}


class TwoTowerHyperband(TwoTowerTrials, keras_tuner.Hyperband):
    """Hyperband with ``train.epochs`` as its largest budget.

    Each trial trains from scratch for its budget (``tuner/epochs``); weights are not carried
    over from the trial it continues (KerasTuner's Keras-model checkpoints do not apply).
    """

    oracle_class = oracles.HyperbandOracle

    @staticmethod
    def oracle_arguments(cfg: ExperimentConfig) -> dict[str, Any]:
        return {
            "max_epochs": cfg.train.epochs,
            "factor": cfg.tune.hyperband_factor,
            "hyperband_iterations": cfg.tune.hyperband_iterations,
        }


class TwoTowerBayesianOptimization(TwoTowerTrials, keras_tuner.BayesianOptimization):
    """Gaussian-process Bayesian optimisation, ``tune.max_trials`` trials (needs scikit-learn)."""

    oracle_class = oracles.BayesianOptimizationOracle

    @staticmethod
    def oracle_arguments(cfg: ExperimentConfig) -> dict[str, Any]:
        return {
            "max_trials": cfg.tune.max_trials,
            "num_initial_points": cfg.tune.bayesian_initial_points or None,
        }


TUNERS: dict[str, type[TwoTowerTrials]] = {
    "random": TwoTowerRandomSearch,
    "hyperband": TwoTowerHyperband,
    "bayesian": TwoTowerBayesianOptimization,
}


def build_tuner(
    cfg: ExperimentConfig,
    directory: str,
    variant: str = "bert",
    *,
    overwrite: bool = False,
    trial_setup: TrialSetup | None = None,
    oracle_address: str | None = None,
) -> TwoTowerTrials:
    """The tuner of ``cfg.tune.algorithm`` (see :class:`TwoTowerTrials` for the arguments)."""
    cls = TUNERS[cfg.tune.algorithm]
    return cls(
        cfg,
        directory,
        variant,
        overwrite=overwrite,
        trial_setup=trial_setup,
        oracle_address=oracle_address,
    )
