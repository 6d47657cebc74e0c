"""Hyperparameter search over the two-tower model with KerasTuner (``tfrec-llm tune``).

``search_space`` turns the ``tune.space`` section of the config into KerasTuner
hyperparameters and trial values back into configs; ``tuner`` holds the KerasTuner subclasses
whose ``run_trial`` trains and scores one config; ``results`` writes the per-trial table and
the best config. See docs/tuning.md.
"""

from tfrec_llm.tuning.results import TrialRecord, best_config, best_record, trial_records
from tfrec_llm.tuning.search_space import (
    apply_values,
    build_hyperparameters,
    check_space,
    objective_name,
    trial_config,
)
from tfrec_llm.tuning.tuner import (
    TUNERS,
    SearchSummary,
    TwoTowerBayesianOptimization,
    TwoTowerHyperband,
    TwoTowerRandomSearch,
    TwoTowerTrials,
    build_tuner,
)

__all__ = [
    "TUNERS",
    "SearchSummary",
    "TrialRecord",
    "TwoTowerBayesianOptimization",
    "TwoTowerHyperband",
    "TwoTowerRandomSearch",
    "TwoTowerTrials",
    "apply_values",
    "best_config",
    "best_record",
    "build_hyperparameters",
    "build_tuner",
    "check_space",
    "objective_name",
    "trial_config",
    "trial_records",
]
