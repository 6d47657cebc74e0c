"""Retrieval losses beside ``tfrs.tasks.Retrieval``'s in-batch softmax: the full softmax and gBCE.

Both return one loss per query; `tfrec_llm.models.retrieval.TwoTowerModel` averages them over
the global batch (`tfrec_llm.models.replicas`).

- **Full softmax**: cross-entropy over the whole catalog, optionally restricted to the items
  that may be negatives (those with training interactions).
- **gBCE** (Petrov & Macdonald, "gSASRec", RecSys 2023): binary cross-entropy of the target
  against ``k`` uniformly sampled negatives, the target's probability raised to ``beta``:

      loss = -(beta * log sigmoid(s+) + sum_j log sigmoid(-s_j)) / (k + 1)
      beta = alpha * (t * (1 - 1/alpha) + 1/alpha),   alpha = k / (N - 1)

  with ``N`` the items negatives are drawn from. ``t = 0`` is plain BCE (``beta = 1``), ``t = 1``
  fully calibrated (``beta = alpha``); it corrects BCE's overconfidence from few negatives, and
  costs ``k`` item-tower rows a step instead of the catalog.

Example:
    >>> round(float(gbce_beta(negatives=256, num_items=1683, t=0.75)), 3)
    0.364
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def catalog_softmax_losses(
    query: tf.Tensor, catalog: tf.Tensor, target: tf.Tensor, temperature: float, allowed: tf.Tensor | None
) -> tf.Tensor:
    """[n] cross-entropies of [n, dim] queries over [num_items, dim] ``catalog`` against [n] targets.

    ``allowed``: optional bool [num_items]; the other items get no probability mass.
    """
    logits = tf.matmul(query, catalog, transpose_b=True) / temperature
    if allowed is not None:
        logits = tf.where(allowed[tf.newaxis, :], logits, logits.dtype.min)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)


def gbce_beta(negatives: int, num_items: int | tf.Tensor, t: float) -> tf.Tensor:
    """gSASRec's exponent of the target's probability: ``alpha * (t * (1 - 1/alpha) + 1/alpha)``."""
    alpha = tf.cast(negatives, tf.float32) / (tf.cast(num_items, tf.float32) - 1.0)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def gbce_losses(
    positive_logits: tf.Tensor, negative_logits: tf.Tensor, beta: tf.Tensor, hits: tf.Tensor | None = None
) -> tf.Tensor:
    """[n] gBCE losses of [n] target logits and [n, k] negative logits (module docstring).

    ``hits``: optional bool [n, k], a negative that is the query's own target (left out).
    """
    # log sigmoid(x) = -softplus(-x) and log(1 - sigmoid(x)) = -softplus(x), both stable.
    negative = tf.nn.softplus(negative_logits)
    if hits is not None:
        negative = tf.where(hits, tf.zeros_like(negative), negative)
    count = tf.cast(tf.shape(negative_logits)[1] + 1, tf.float32)
    return (beta * tf.nn.softplus(-positive_logits) + tf.reduce_sum(negative, axis=1)) / count


def sample_negatives(count: int, num_items: int, allowed: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
    """(``count`` item indices drawn uniformly with replacement, the size of the pool drawn from).

    The pool is the catalog, or the items where ``allowed`` (bool [num_items]) is true.
    """
    if allowed is None:
        return tf.random.uniform([count], 0, num_items, dtype=tf.int32), tf.constant(num_items)
    pool = tf.cast(tf.where(allowed)[:, 0], tf.int32)
    size = tf.shape(pool)[0]
    return tf.gather(pool, tf.random.uniform([count], 0, size, dtype=tf.int32)), size


def gbce_step_losses(
    query: tf.Tensor,
    target: tf.Tensor,
    target_embedding: tf.Tensor,
    embed_items: Callable[[tf.Tensor], tf.Tensor],
    settings: tuple[int, float, float],
    num_items: int,
    allowed: tf.Tensor | None,
) -> tf.Tensor:
    """[n] gBCE losses of one step: [n, dim] queries, their targets and one shared negative draw.

    Args:
        query: [n, dim] queries.
        target: [n] target items; target_embedding: their [n, dim] embeddings.
        embed_items: [k] item indices -> [k, dim] (the item tower, in training mode).
        settings: (negatives k, calibration t, temperature).
        num_items: Catalog size.
        allowed: Optional bool [num_items]: the items negatives may be drawn from.
    """
    negatives_count, t, temperature = settings
    negatives, pool = sample_negatives(negatives_count, num_items, allowed)
    negative_logits = tf.matmul(query, embed_items(negatives), transpose_b=True) / temperature
    positive_logits = tf.reduce_sum(query * target_embedding, axis=-1) / temperature
    hits = tf.equal(tf.cast(target, tf.int32)[:, tf.newaxis], negatives[tf.newaxis, :])
    return gbce_losses(positive_logits, negative_logits, gbce_beta(negatives_count, pool, t), hits)
