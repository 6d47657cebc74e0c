"""tfrec_llm: text-aware recommenders on TensorFlow Recommenders, served by TensorFlow Serving.

Importing the package selects Keras 2 (``tf_keras``) for TensorFlow, because TFRS and the
``transformers`` TF classes are Keras-2 code. The switch must happen before TensorFlow is first
imported, so import ``tfrec_llm`` before ``tensorflow``.

The public API (stable import paths; each name is loaded when first used, so ``import
tfrec_llm`` itself does not import TensorFlow):

    >>> import tfrec_llm
    >>> cfg = tfrec_llm.load_config("pipelines/movielens_100k.yaml", ["train.epochs=3"])
    >>> exp = tfrec_llm.Experiment(cfg)
    >>> model, info = exp.train("bert")
    >>> print(exp.evaluate(["loo"], ["bert"]).table)
    >>> exp.export("bert", "exports")
"""

import importlib
import os
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
if os.environ["TF_USE_LEGACY_KERAS"] not in ("1", "true", "True"):
    raise ImportError(
        "tfrec_llm needs Keras 2 (tf_keras), but TF_USE_LEGACY_KERAS="
        f"{os.environ['TF_USE_LEGACY_KERAS']!r} selects Keras 3. Unset it or set "
        "TF_USE_LEGACY_KERAS=1 before starting Python."
    )

__version__ = "0.1.0"

_PUBLIC = {
    # config
    "ExperimentConfig": "tfrec_llm.config",
    "load_config": "tfrec_llm.config",
    "dump_config": "tfrec_llm.config",
    # the experiment layer
    "Experiment": "tfrec_llm.experiments",
    "Evaluation": "tfrec_llm.experiments",
    "Prepared": "tfrec_llm.experiments",
    "prepare": "tfrec_llm.experiments",
    "load_or_train": "tfrec_llm.experiments",
    "export_variant": "tfrec_llm.experiments",
    "build_two_tower": "tfrec_llm.experiments.builders",
    # Keras layers and models
    "TwoTowerModel": "tfrec_llm.models.retrieval",
    "ItemTower": "tfrec_llm.models.towers",
    "QueryTower": "tfrec_llm.models.query_tower",
    "MaskedMeanPooling": "tfrec_llm.text.pooling",
    "TextEncoder": "tfrec_llm.text.encoder",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    """Loads a public name from its module on first use (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'tfrec_llm' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
