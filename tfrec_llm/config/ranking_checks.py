"""Checks of the ``ranking`` section, run when a `RankingConfig` is built.

Each message names the field, the value received, what was expected and the fix, like the
other sections' checks (`tfrec_llm.config.checks`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tfrec_llm.errors import ConfigError

if TYPE_CHECKING:
    from tfrec_llm.config.sections import RankingConfig

RANKING_OBJECTIVES = ("rating", "ctr", "listwise")
"""What the ranking model predicts: a rating (MSE/RMSE), a click (log loss/AUC), or which of a
list of candidates the user chose (softmax over the list)."""

RANKING_EXAMPLES = ("train", "valid_lists")
"""What the ranking model is trained on: the objective's examples on TRAIN, or serving-like
lists (the retrieval model's top N for the TRAIN history, the VALID target as the positive)."""

CROSS_STRUCTURES = ("stacked", "parallel")
"""DCN-v2 layouts: cross layers then the deep MLP, or both side by side on the input."""


def check_ranking(cfg: RankingConfig) -> None:
    """Raises at the first invalid field of the ranking section.

    Raises:
        ConfigError: ``ranking.<field>=<value>; expected <what>. <fix>``.
    """
    checks = [
        (cfg.objective in RANKING_OBJECTIVES, "objective", cfg.objective, f"one of {RANKING_OBJECTIVES}"),
        (
            cfg.cross_structure in CROSS_STRUCTURES,
            "cross_structure",
            cfg.cross_structure,
            f"one of {CROSS_STRUCTURES}",
        ),
        (cfg.cross_layers >= 0, "cross_layers", cfg.cross_layers, "an integer >= 0"),
        (cfg.projection_dim >= 0, "projection_dim", cfg.projection_dim, "an integer >= 0 (0 = full rank)"),
        (
            all(width >= 1 for width in cfg.deep_layers),
            "deep_layers",
            cfg.deep_layers,
            "positive layer widths",
        ),
        (
            cfg.cross_layers > 0 or bool(cfg.deep_layers),
            "cross_layers",
            cfg.cross_layers,
            "at least one cross layer when deep_layers is empty",
        ),
        (0.0 <= cfg.dropout < 1.0, "dropout", cfg.dropout, "a rate in [0, 1)"),
        (cfg.negatives >= 1, "negatives", cfg.negatives, "an integer >= 1"),
        (cfg.list_size >= 2, "list_size", cfg.list_size, "an integer >= 2 (one positive + negatives)"),
        (cfg.retrieval_weight >= 0.0, "retrieval_weight", cfg.retrieval_weight, "a weight >= 0"),
        (cfg.ranking_weight >= 0.0, "ranking_weight", cfg.ranking_weight, "a weight >= 0"),
        (cfg.num_candidates >= 1, "num_candidates", cfg.num_candidates, "an integer >= 1 (e.g. 100)"),
        (cfg.examples in RANKING_EXAMPLES, "examples", cfg.examples, f"one of {RANKING_EXAMPLES}"),
        (
            cfg.examples != "valid_lists" or cfg.objective == "listwise",
            "examples",
            cfg.examples,
            "'train' unless ranking.objective=listwise (valid_lists are lists of candidates)",
        ),
        (
            not cfg.residual or cfg.examples == "valid_lists",
            "residual",
            cfg.residual,
            "false unless ranking.examples=valid_lists (the only examples carrying retrieval scores)",
        ),
        (0.0 < cfg.holdout < 1.0, "holdout", cfg.holdout, "a fraction in (0, 1), e.g. 0.2"),
        (
            math.isfinite(cfg.item_item_l2) and cfg.item_item_l2 >= 0.0,
            "item_item_l2",
            cfg.item_item_l2,
            "a ridge strength >= 0 (0 = off; e.g. 100)",
        ),
        (
            not cfg.item_item_l2 or cfg.residual,
            "item_item_l2",
            cfg.item_item_l2,
            "0 unless ranking.residual=true (its weight is fitted against the retrieval scores)",
        ),
        (
            cfg.cold_item_neighbours >= 0,
            "cold_item_neighbours",
            cfg.cold_item_neighbours,
            "an integer >= 0 (0 = off; e.g. 100)",
        ),
        (
            not cfg.cold_item_neighbours or cfg.item_item_l2 > 0.0,
            "cold_item_neighbours",
            cfg.cold_item_neighbours,
            "0 unless ranking.item_item_l2 > 0 (new items borrow the item-item table's rows and columns)",
        ),
        (
            math.isfinite(cfg.cold_item_power) and cfg.cold_item_power >= 0.0,
            "cold_item_power",
            cfg.cold_item_power,
            "an exponent >= 0 (e.g. 8)",
        ),
        (
            cfg.retrieval_weight + cfg.ranking_weight > 0.0,
            "ranking_weight",
            cfg.ranking_weight,
            "a positive weight when retrieval_weight is 0",
        ),
    ]
    for ok, field, value, expected in checks:
        if not ok:
            raise ConfigError(
                f"ranking.{field}={value!r}; expected {expected}. Fix it in the config's "
                f"ranking section or with --set ranking.{field}=..."
            )
