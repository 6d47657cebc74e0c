"""Publish: export a trained variant, with the users' histories, for TF Serving.

Example:
    >>> prepared = prepare(cfg, "loo")
    >>> result = export_variant(cfg, prepared, "bert", "exports")
    >>> result.retrieval, result.item_encoder, result.models_config
"""

from __future__ import annotations

from tfrec_llm.config import ExperimentConfig
from tfrec_llm.config.choices import variant_uses_text
from tfrec_llm.experiments.prepare import Prepared, known_histories, text_model_path
from tfrec_llm.experiments.runs import load_or_train
from tfrec_llm.export.exporter import ExportResult, export_all


def export_variant(
    cfg: ExperimentConfig,
    prepared: Prepared,
    variant: str,
    export_dir: str | None = None,
    version: int | None = None,
    verbose: int = 1,
    if_missing: str = "train",
) -> ExportResult:
    """Exports ``retrieval`` (and ``item_encoder`` for text variants) plus ``models.config``.

    The model is the finished run of ``variant`` under ``prepared``'s protocol (trained first
    if there is none, unless ``if_missing="error"``). Every interaction known per user travels
    inside the SavedModel, so a known user is never recommended an item they already had.

    Args:
        cfg: Experiment config.
        prepared: The data, usually split under ``loo``.
        variant: ``id``, ``text`` or ``bert``.
        export_dir: Base folder; default ``export.export_dir``.
        version: Version number of both models; default: the next free one.
        verbose: Keras progress bar while training, if training is needed.
        if_missing: No finished run: ``train`` one, or ``error`` (`MissingRunError`; see
            ``experiments.runs.load_or_train``).

    Returns:
        The published folders.
    """
    model, _ = load_or_train(cfg, prepared, variant, if_missing=if_missing, verbose=verbose)
    uses_text = variant_uses_text(variant)
    return export_all(
        cfg,
        model,
        prepared.catalog,
        known_histories(prepared),
        export_dir or cfg.export.export_dir,
        text_model_path(cfg.text) if uses_text else None,
        prepared.item_texts,
        version,
        # The fine-tuned TextEncoder (None when BERT is frozen) is what item_encoder must serve.
        text_encoder=model.item_tower.text_encoder if uses_text else None,
    )
