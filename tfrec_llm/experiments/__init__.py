"""The application layer: prepare -> load or train -> evaluate -> report -> publish.

The CLI, the tuner, the benchmarks and Python training scripts call these steps; nothing
below this package imports it.
"""

from tfrec_llm.experiments.experiment import Evaluation, Experiment, Recommendations
from tfrec_llm.experiments.prepare import Prepared, known_histories, load_dataset, prepare
from tfrec_llm.experiments.publish import export_variant
from tfrec_llm.experiments.reports import evaluate_protocols, test_table, timed_records
from tfrec_llm.experiments.runs import (
    MissingRunError,
    StaleRunError,
    load_or_train,
    require_trained,
    run_dir,
    variant_config,
)

__all__ = [
    "Evaluation",
    "Experiment",
    "MissingRunError",
    "Prepared",
    "Recommendations",
    "StaleRunError",
    "evaluate_protocols",
    "export_variant",
    "known_histories",
    "load_dataset",
    "load_or_train",
    "prepare",
    "require_trained",
    "run_dir",
    "test_table",
    "timed_records",
    "variant_config",
]
