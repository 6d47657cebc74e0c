"""The ``ranking`` section of an experiment config (kept beside ``sections.py``, which imports it).

Example:
    >>> RankingConfig(objective="ctr", negatives=4).cross_structure
    'stacked'
"""

from __future__ import annotations

import dataclasses

from tfrec_llm.config.ranking_checks import check_ranking


@dataclasses.dataclass(frozen=True)
class RankingConfig:
    """The ranking model (the second stage) and the multitask model's loss weights.

    Attributes:
        objective: ``rating`` (regression: MSE loss, RMSE), ``ctr`` (clicks against sampled
            negatives: log loss, AUC) or ``listwise`` (softmax over a list of candidates,
            one of them the item the user chose).
        cross_structure: ``stacked`` (DCN-v2 cross layers, then the deep MLP on their output)
            or ``parallel`` (cross layers and deep MLP side by side on the input, concatenated).
        cross_layers: DCN-v2 cross layers (0 = the deep MLP alone).
        projection_dim: Low-rank width of each cross layer's matrix; 0 = full rank.
        deep_layers: Widths of the deep MLP's ReLU layers.
        dropout: Dropout after each deep layer (training only).
        use_retrieval_score: Feed the retrieval score of the (user, item) pair as a feature.
        negatives: ``ctr``: sampled negatives per positive (items the user has no TRAIN
            interaction with, uniformly).
        list_size: ``listwise``: candidates per list (the positive + sampled negatives).
        retrieval_weight: Multitask model: weight of the retrieval loss.
        ranking_weight: Multitask model: weight of the ranking loss.
        num_candidates: Two-stage recommendation: N, the retrieved candidates the ranking
            model re-ranks before the top K is returned (``recommend`` signature, CLI).
        examples: What the ranking model is trained on. ``train``: the examples of
            ``objective`` on TRAIN (sampled negatives), early-stopped on the VALID targets'.
            ``valid_lists`` (``listwise`` only): lists that look like serving, one per user
            whose VALID target is in the retrieval model's top ``num_candidates`` for the TRAIN
            history (which the retrieval model never fitted the VALID target on), with the real
            retrieval scores; ``holdout`` of these users early-stop it.
        residual: Score = retrieval score / ``model.temperature`` + the network's output (its
            last layer initialised at zero), so the untrained model ranks as retrieval does;
            a trained one that does not lower the held-out loss is set back to that order.
            Needs ``examples: valid_lists`` (the only examples that carry retrieval scores).
        holdout: ``valid_lists``: fraction of the lists (by user, seeded) kept out of training
            for early stopping on their loss.
        item_item_l2: > 0 (needs ``residual``): add an item-item collaborative score to the
            ranker, ``w * sum over the history of B[h, c]`` with ``B`` the EASE weights of
            TRAIN at this ridge strength and ``w`` fitted on the fit lists (the listwise loss
            is convex in ``w``); 0 = off. Dense [items, items]: catalogs up to 20,000 items.
        cold_item_neighbours: > 0 (needs ``item_item_l2`` and item text): an item without
            TRAIN interactions (a new item) takes the item-item rows and columns of its this
            many nearest warm items by text cosine (`tfrec_llm.models.cold_transfer`), and the
            ranker scores it by the item-item term alone: its retrieval score and ``f`` rank new
            items worse (docs/cold_items.md); 0 = off.
        cold_item_power: The neighbours' weights are ``max(cos, 0) ** power``, normalised.
    """

    objective: str = "rating"
    cross_structure: str = "stacked"
    cross_layers: int = 2
    projection_dim: int = 0
    deep_layers: tuple[int, ...] = (128, 64)
    dropout: float = 0.0
    use_retrieval_score: bool = False
    negatives: int = 4
    list_size: int = 10
    retrieval_weight: float = 1.0
    ranking_weight: float = 1.0
    num_candidates: int = 100
    examples: str = "train"
    residual: bool = False
    holdout: float = 0.2
    item_item_l2: float = 0.0
    cold_item_neighbours: int = 0
    cold_item_power: float = 8.0

    def __post_init__(self) -> None:
        check_ranking(self)
