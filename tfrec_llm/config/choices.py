"""The closed sets of names a config may use: the one list of each, which everything derives from.

The config checks (`tfrec_llm.config.checks`), the split protocols (`tfrec_llm.data.splits`), the
evaluator (`tfrec_llm.evaluation.protocols`), the CLI and the experiment layer import these
tuples instead of spelling the names again.
"""

from __future__ import annotations

import types
from collections.abc import Mapping

PROTOCOLS = ("loo", "cold-items", "cold-users")
"""Split protocols of docs/evaluation.md: A (leave-last-out), B (cold items), C (cold users)."""

METRICS = ("recall", "hr", "ndcg")
"""Ranking metrics the evaluator reports, each as ``<metric>@<k>``."""

_SWITCHES = {
    "id": {"use_ids": True, "use_text": False, "use_categories": False},
    "text": {"use_ids": False, "use_text": True, "use_categories": True},
    "bert": {"use_ids": True, "use_text": True, "use_categories": True},
}
VARIANTS: Mapping[str, Mapping[str, bool]] = types.MappingProxyType(
    {name: types.MappingProxyType(switches) for name, switches in _SWITCHES.items()}
)
"""Model variants compared in every report: the candidate-tower switches of each (read-only)."""

VARIANT_NAMES: Mapping[str, str] = types.MappingProxyType(
    {"id": "TwoTower-ID", "text": "TwoTower-TextOnly", "bert": "TwoTower-BERT"}
)
"""Report name of each variant."""

MOVIELENS_SOURCES = ("movielens_100k", "movielens_100k_raw", "movielens_1m")
"""``data.source`` values with a fixed file layout (a folder of MovieLens files)."""

GENERIC_SOURCES = ("csv", "parquet", "jsonl")
"""``data.source`` values read by ``read_tabular`` (interactions file + optional items/users)."""

DATA_SOURCES = MOVIELENS_SOURCES + GENERIC_SOURCES
"""Every ``data.source`` value."""

OPTIMIZERS = ("adam", "adagrad")
"""``train.optimizer`` values."""

POOLINGS = ("mean", "cls")
"""``text.pooling`` values: masked mean over tokens (sentence-transformers) or the [CLS] state."""

HISTORY_ENCODERS = ("mean", "cnn", "gru", "lstm", "attention")
"""``model.history_encoder`` values (``tfrec_llm.models.layers.history_encoders``)."""

OBJECTIVES = ("interaction", "next_item")
"""``model.objective`` values: one example per interaction (predict it from the items before
it), or SASRec's windows in which every position predicts the next item."""

LOSSES = ("in_batch", "full_softmax")
"""``model.loss`` values: in-batch sampled softmax (logQ-corrected) or softmax over the catalog."""

BASELINES = ("Random", "MostPop")
"""``eval.baselines`` values."""

TUNER_ALGORITHMS = ("random", "hyperband", "bayesian")
"""``tune.algorithm`` values (KerasTuner RandomSearch, Hyperband, BayesianOptimization)."""

HP_TYPES = ("int", "float", "choice", "bool")
"""``tune.space[i].type`` values."""

HP_SAMPLINGS = ("linear", "log", "reverse_log")
"""``tune.space[i].sampling`` values."""

TUNABLE_SECTIONS = ("model", "train")
"""Config sections whose fields a search may set."""

UNTUNABLE_FIELDS = ("train.model_dir", "train.monitor")
"""Fields of the tunable sections that a search may not set."""

__all__ = [
    "BASELINES",
    "DATA_SOURCES",
    "GENERIC_SOURCES",
    "HISTORY_ENCODERS",
    "HP_SAMPLINGS",
    "HP_TYPES",
    "METRICS",
    "MOVIELENS_SOURCES",
    "LOSSES",
    "OBJECTIVES",
    "OPTIMIZERS",
    "POOLINGS",
    "PROTOCOLS",
    "TUNABLE_SECTIONS",
    "TUNER_ALGORITHMS",
    "UNTUNABLE_FIELDS",
    "VARIANTS",
    "VARIANT_NAMES",
]
