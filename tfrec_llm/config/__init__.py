"""Experiment configuration: nested frozen dataclasses, their checks and the one YAML loader.

``sections`` holds the dataclasses, ``choices`` the closed sets of names, ``checks`` and
``tune_checks`` the validation run when a config is built, ``yaml_io`` the loader and dumper.
"""

from tfrec_llm.config.sections import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    ExportConfig,
    HyperParameterSpec,
    ModelConfig,
    TextConfig,
    TrainConfig,
    TuneConfig,
)
from tfrec_llm.config.yaml_io import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    replace,
)

__all__ = [
    "DataConfig",
    "EvalConfig",
    "ExperimentConfig",
    "ExportConfig",
    "HyperParameterSpec",
    "ModelConfig",
    "TextConfig",
    "TrainConfig",
    "TuneConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
    "replace",
]
