"""Checks of the sequence-model fields of ``model``: the history encoder, the objective, the loss."""

from __future__ import annotations

from typing import Any

from tfrec_llm.config.check_messages import Check, at_least, check
from tfrec_llm.config.choices import HISTORY_ENCODERS, LOSSES, OBJECTIVES


def sequence_checks(model: Any) -> list[Check]:
    """The history encoder, the objective and the loss."""
    return [
        check(
            model.history_encoder in HISTORY_ENCODERS,
            "model.history_encoder",
            model.history_encoder,
            f"one of {HISTORY_ENCODERS}",
            "attention is the SASRec encoder; mean is the original pooling.",
        ),
        check(
            model.objective in OBJECTIVES,
            "model.objective",
            model.objective,
            f"one of {OBJECTIVES}",
            "See docs/sequence_models.md.",
        ),
        check(
            model.loss in LOSSES, "model.loss", model.loss, f"one of {LOSSES}", "See docs/sequence_models.md."
        ),
        at_least("model.gbce_negatives", model.gbce_negatives, 1, "gSASRec uses 256."),
        check(
            0.0 <= model.gbce_t <= 1.0,
            "model.gbce_t",
            model.gbce_t,
            "in [0, 1]",
            "0 = plain binary cross-entropy, 1 = fully calibrated; gSASRec uses 0.75.",
        ),
        at_least("model.encoder_width", model.encoder_width, 1, "e.g. 64."),
        at_least("model.encoder_blocks", model.encoder_blocks, 1, "e.g. 2."),
        at_least("model.encoder_heads", model.encoder_heads, 1, "e.g. 2."),
        check(
            model.encoder_width % max(model.encoder_heads, 1) == 0,
            "model.encoder_width",
            model.encoder_width,
            f"a multiple of model.encoder_heads={model.encoder_heads}",
            "Each head gets encoder_width / encoder_heads dimensions.",
        ),
        check(
            0.0 <= model.encoder_dropout < 1.0,
            "model.encoder_dropout",
            model.encoder_dropout,
            "in [0, 1)",
            "e.g. 0.2.",
        ),
        check(
            0.0 <= model.user_dropout < 1.0,
            "model.user_dropout",
            model.user_dropout,
            "in [0, 1)",
            "It is the probability of treating a training user as unknown.",
        ),
        check(
            0.0 <= model.user_text_dropout < 1.0,
            "model.user_text_dropout",
            model.user_text_dropout,
            "in [0, 1)",
            "It is the probability of hiding a training row's user text; 1 would never train the text.",
        ),
        check(
            0.0 <= model.user_text_history_dropout < 1.0,
            "model.user_text_history_dropout",
            model.user_text_history_dropout,
            "in [0, 1)",
            "It is the probability that a row with text loses its history.",
        ),
        at_least("model.future_window", model.future_window, 1, "1 = the next item (SASRec)."),
        check(
            0.0 <= model.future_weight <= 1.0,
            "model.future_weight",
            model.future_weight,
            "in [0, 1]",
            "The loss is (1 - w) x next-item + w x future-window; 1 = the future one alone.",
        ),
        at_least("model.future_context", model.future_context, 0, "0 = every position."),
        check(
            model.future_window == 1 or model.objective == "next_item",
            "model.future_window",
            model.future_window,
            "1 unless model.objective is next_item",
            "Only next_item windows have later items to draw targets from.",
        ),
        check(
            model.objective == "interaction" or model.use_history,
            "model.objective",
            model.objective,
            "interaction when model.use_history is false",
            "next_item trains the history encoder; it needs model.use_history=true.",
        ),
    ]
