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

SELECTION_PROTOCOL = "cold-users-select"
"""Protocol C rebuilt inside its warm users (`tfrec_llm.data.splits.split_cold_user_selection`):
a split to choose cold-user settings on, never a protocol to report."""

ITEM_SELECTION_PROTOCOL = "cold-items-select"
"""Protocol B rebuilt inside its warm items (`tfrec_llm.data.splits.split_cold_item_selection`):
a split to choose cold-item settings on, never a protocol to report."""

SELECTION_SPLITS: Mapping[str, str] = types.MappingProxyType(
    {SELECTION_PROTOCOL: "cold-users", ITEM_SELECTION_PROTOCOL: "cold-items"}
)
"""Each selection split and the protocol its choice is reported under."""

SPLIT_NAMES = (*PROTOCOLS, SELECTION_PROTOCOL, ITEM_SELECTION_PROTOCOL)
"""Every name `tfrec_llm.data.splits.make_split` accepts."""

METRICS = ("recall", "hr", "ndcg")
"""Ranking metrics the evaluator reports, each as ``<metric>@<k>``."""

_CANDIDATE_SWITCHES = {
    # without item text there is no BERT to read a user's text either
    "id": {
        "model.use_ids": True,
        "model.use_text": False,
        "model.use_categories": False,
        "model.user_text": False,
    },
    "text": {"model.use_ids": False, "model.use_text": True, "model.use_categories": True},
    "bert": {"model.use_ids": True, "model.use_text": True, "model.use_categories": True},
}
_VARIANTS: dict[str, dict[str, object]] = {
    **_CANDIDATE_SWITCHES,
    # The SASRec-style peer: the causal attention encoder over ids only (no text, categories,
    # user ids or profile), trained on next-item windows with the full softmax; beside
    # ``bert`` it shows what the text adds.
    "sasrec": {
        **_CANDIDATE_SWITCHES["id"],
        "model.use_user_ids": False,
        "model.use_profile": False,
        "model.history_encoder": "attention",
        "model.history_length": 50,  # windows of 51, as the reference SASRec recipe
        "model.objective": "next_item",
        "model.future_window": 1,  # SASRec's own target: the next item
        "model.future_context": 0,
        "model.loss": "full_softmax",
    },
    # The original two-tower with its own training settings: user id, profile, mean-pooled
    # history, one example per interaction, in-batch softmax.
    "mean": {
        **_CANDIDATE_SWITCHES["bert"],
        "model.use_user_ids": True,
        "model.use_profile": True,
        "model.history_encoder": "mean",
        "model.history_length": 50,
        "model.user_text": False,
        "model.objective": "interaction",
        "model.future_window": 1,  # interaction examples have no later items to draw from
        "model.future_context": 0,
        "model.loss": "in_batch",
        "model.temperature": 0.1,
        "model.user_dropout": 0.0,
        "train.batch_size": 512,
        "train.learning_rate": 0.003,
        "train.patience": 3,
        "train.refit_on_train_valid": False,
    },
}
VARIANTS: Mapping[str, Mapping[str, object]] = types.MappingProxyType(
    {name: types.MappingProxyType(fields) for name, fields in _VARIANTS.items()}
)
"""Model variants compared in reports: each is a set of ``section.field`` overrides of the
config (read-only). ``id``, ``text`` and ``bert`` switch the candidate tower's features and
keep the rest of the config; ``sasrec`` and ``mean`` are fixed reference models."""

VARIANT_NAMES: Mapping[str, str] = types.MappingProxyType(
    {
        "id": "TwoTower-ID",
        "text": "TwoTower-TextOnly",
        "bert": "TwoTower-BERT",
        "sasrec": "SASRec-style (ids)",
        "mean": "TwoTower-BERT-MeanPool",
    }
)
"""Report name of each variant."""


REPORT_VARIANTS = ("bert",)
"""Variants that ``tfrec-llm run`` and ``tfrec-llm evaluate`` train and score by default: the
config's own model (``--variants mean,bert`` adds the original mean-pooling two-tower beside it;
each extra variant is one more training run per protocol)."""


TWO_STAGE_PROTOCOL = "loo"
"""The protocol of the ranking run that ``eval.two_stage`` scores (the ranking model's own)."""
TWO_STAGE_VARIANT = "bert"
"""The first stage of the two-stage row (the ranking model is trained on its candidates)."""


def variant_uses_text(variant: str) -> bool:
    """Whether the model of ``variant`` reads the item text embeddings (unknown = False)."""
    return bool(VARIANTS.get(variant, {}).get("model.use_text", False))


MOVIELENS_SOURCES = ("movielens_100k", "movielens_100k_raw", "movielens_1m")
"""``data.source`` values with a fixed file layout (a folder of MovieLens files)."""

GENERIC_SOURCES = ("csv", "parquet", "jsonl")
"""``data.source`` values read by ``read_tabular`` (interactions file + optional items/users)."""

DATA_SOURCES = MOVIELENS_SOURCES + GENERIC_SOURCES
"""Every ``data.source`` value."""

OPTIMIZERS = ("adam", "adagrad")
"""``train.optimizer`` values."""

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
"""``train.strategy`` values: one device, the devices of one host, several hosts (``TF_CONFIG``),
a TPU (``tfrec_llm.training.distribute``, docs/scaling.md)."""

POOLINGS = ("mean", "cls")
"""``text.pooling`` values: masked mean over tokens (sentence-transformers) or the [CLS] state."""

HISTORY_ENCODERS = ("mean", "cnn", "gru", "lstm", "attention")
"""``model.history_encoder`` values (``tfrec_llm.models.layers.history_encoders``)."""

OBJECTIVES = ("interaction", "next_item")
"""``model.objective`` values: one example per interaction (predict it from the items before
it), or SASRec's windows in which every position predicts the next item."""

LOSSES = ("in_batch", "full_softmax", "gbce")
"""``model.loss`` values: in-batch sampled softmax (logQ-corrected), softmax over the catalog, or
gSASRec's generalised binary cross-entropy over uniformly sampled negatives."""

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
    "ITEM_SELECTION_PROTOCOL",
    "PROTOCOLS",
    "REPORT_VARIANTS",
    "SELECTION_PROTOCOL",
    "SELECTION_SPLITS",
    "SPLIT_NAMES",
    "TWO_STAGE_PROTOCOL",
    "TWO_STAGE_VARIANT",
    "STRATEGIES",
    "TUNABLE_SECTIONS",
    "TUNER_ALGORITHMS",
    "UNTUNABLE_FIELDS",
    "VARIANTS",
    "VARIANT_NAMES",
    "variant_uses_text",
]
