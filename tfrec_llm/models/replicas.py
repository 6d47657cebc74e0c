"""The retrieval loss under a ``tf.distribute`` replica context (docs/scaling.md).

Under ``mirrored``, ``multi_worker`` or ``tpu`` each replica computes the loss of its share of
the global batch, and the gradients are summed across replicas. Two things keep that loss the
loss of the whole batch:

- the in-batch softmax gathers the candidates (embeddings, ids, sampling probabilities) of
  every replica, so each query still scores against the positives of the whole global batch,
  not only the ``batch / replicas`` of its own replica;
- the full softmax divides its summed cross-entropy by the number of queries of the whole
  batch, not of the replica.

With one replica (the default strategy) both are the identity.
"""

from __future__ import annotations

import tensorflow as tf


def _context() -> tf.distribute.ReplicaContext | None:
    """The replica context when there are several replicas, else None."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def gather_candidates(
    embeddings: tf.Tensor, ids: tf.Tensor, probabilities: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The in-batch candidates of every replica, this replica's rows first.

    ``tfrs.tasks.Retrieval`` takes the i-th candidate as the positive of the i-th query, so
    this replica's own candidates must come first: the gathered rows are rolled until they do
    (the softmax does not depend on the order of the others). The gather is differentiable:
    each replica gets back the gradient that every replica's queries sent to its candidates.

    Args:
        embeddings: [n, dim] candidate embeddings of this replica (n may differ per replica).
        ids: [n] int candidate ids (catalog indices).
        probabilities: [n] sampling probabilities (logQ correction).

    Returns:
        ``(embeddings, ids, probabilities)`` over all replicas, [N, dim], [N], [N].
    """
    context = _context()
    if context is None:
        return embeddings, ids, probabilities
    all_embeddings = context.all_gather(embeddings, axis=0)
    # Not differentiated: the ids and probabilities are data (float64 holds any catalog index).
    all_ids, all_probabilities = context.all_gather(
        [tf.cast(ids, tf.float64), tf.cast(probabilities, tf.float64)], axis=0
    )
    sizes = context.all_gather(tf.cast(tf.shape(ids)[:1], tf.float64), axis=0)
    offset = tf.cast(tf.reduce_sum(sizes[: context.replica_id_in_sync_group]), tf.int32)
    return (
        tf.roll(all_embeddings, -offset, axis=0),
        tf.cast(tf.roll(all_ids, -offset, axis=0), ids.dtype),
        tf.cast(tf.roll(all_probabilities, -offset, axis=0), probabilities.dtype),
    )


def batch_mean(losses: tf.Tensor) -> tf.Tensor:
    """Sum of this replica's [n] losses over the number of losses in the whole global batch."""
    context = _context()
    if context is None:
        return tf.reduce_mean(losses)
    count = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(tf.size(losses), losses.dtype))
    return tf.reduce_sum(losses) / tf.maximum(count, 1.0)
