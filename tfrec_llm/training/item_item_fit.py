"""Fits the ranker's item-item term (``ranking.item_item_l2``) on serving-like lists.

The residual ranker scores a candidate ``c`` of a user with history ``h`` as
``retrieval_score / T + w * s(h, c) + f(x)``, where ``s(h, c) = sum_{i in h} B[i, c]`` is the
EASE score (`tfrec_llm.models.item_item`). ``B`` is fitted on TRAIN in closed form. ``w`` is
fitted here, with ``f = 0``, on the fit lists of `tfrec_llm.training.serving_lists`: the
listwise softmax cross-entropy of ``a + w * s`` is convex in ``w`` (its second derivative is
the variance of ``s`` under the softmax), so a bounded scalar search finds the minimum
exactly. A gradient step of the usual learning rate would need thousands of steps to move
``w`` to its scale, and the fit lists give about twenty batches per epoch.

Example:
    >>> table = ease_weights(interaction_matrix(users, items, n_users, n_items), l2=100.0)
    >>> weight = fit_item_item_weight(fit_lists, table, temperature=0.1)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

from tfrec_llm.errors import DataError

WEIGHT_BOUND = 100.0
"""``w`` is searched in [-WEIGHT_BOUND, WEIGHT_BOUND]."""


def list_item_item_scores(table: np.ndarray, history: np.ndarray, items: np.ndarray) -> np.ndarray:
    """[m, N] ``sum_{h >= 0} table[h, c]`` of [m, L] histories (-1 padded) and [m, N] candidates.

    The numpy twin of `tfrec_llm.models.ranking.RankingModel.item_item_scores`.
    """
    history = np.asarray(history, np.int64)
    items = np.maximum(np.asarray(items, np.int64), 0)
    pairs = table[np.maximum(history, 0)[:, :, None], items[:, None, :]]  # [m, L, N]
    return (pairs * (history >= 0)[:, :, None]).sum(axis=1, dtype=np.float64)


def listwise_loss(base: np.ndarray, feature: np.ndarray, labels: np.ndarray, weight: float) -> float:
    """Mean softmax cross-entropy of logits ``base + weight * feature`` against ``labels`` (rows normalised)."""
    logits = base + weight * feature
    target = labels / labels.sum(axis=1, keepdims=True)
    return float(np.mean(logsumexp(logits, axis=1) - (target * logits).sum(axis=1)))


def fit_item_item_weight(
    lists: Mapping[str, np.ndarray], table: np.ndarray, temperature: float
) -> tuple[float, float, float]:
    """``w`` minimising the listwise loss of ``retrieval_score / temperature + w * s`` on ``lists``.

    Args:
        lists: `serving_lists` output (``history``, ``item``, ``retrieval_score``, ``label``).
        table: [num_items, num_items] item-item weights.
        temperature: ``model.temperature`` (the residual ranker's divisor).

    Returns:
        (w, loss at w, loss at w = 0).

    Raises:
        DataError: No list has a positive label.
    """
    labels = np.asarray(lists["label"], np.float64)
    keep = labels.sum(axis=1) > 0
    if not keep.any():
        raise DataError("fit_item_item_weight: no list has a positive label to fit on")
    base = np.asarray(lists["retrieval_score"], np.float64)[keep] / temperature
    feature = list_item_item_scores(
        table, np.asarray(lists["history"])[keep], np.asarray(lists["item"])[keep]
    )
    labels = labels[keep]
    result = minimize_scalar(
        lambda w: listwise_loss(base, feature, labels, w),
        bounds=(-WEIGHT_BOUND, WEIGHT_BOUND),
        method="bounded",
        options={"xatol": 1e-4},
    )
    weight = float(result.x)
    return weight, listwise_loss(base, feature, labels, weight), listwise_loss(base, feature, labels, 0.0)
