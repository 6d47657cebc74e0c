"""The batching of ``encode_texts``: texts of equal or near-equal token count, padding only where
it costs less than one more forward pass.

Why (benchmarks/results/encoder_speed.md): on a 2-core CPU, MiniLM's traced forward pass already
runs at about the rate of an fp32 matmul per CPU-second, so what an offline encoder can still
save is the work it does on padding. The older batching (sort by length, 128 texts a batch, pad
to the longest rounded up to a multiple of 8) ran 31% more tokens than the texts hold on the
MovieLens-100K catalog, 26 points of it from the rounding alone, which only an XLA (fixed-shape)
function needs. XLA compiles every shape anew (seconds each for MiniLM), which a
one-off precompute of a few thousand texts does not earn back, so this path keeps the single
``tf.function`` with a ``[None, None]`` signature (traced once) and chooses batches that waste
almost nothing:

- the texts are sorted by token count and cut into consecutive runs (`plan_batches`), each run
  one forward pass padded to its longest text;
- the cut minimises ``padded tokens + call_cost_tokens * passes`` exactly (dynamic programming
  over the sorted lengths), under at most ``max_rows`` texts a pass. Texts of one length fill
  whole passes; a few leftover texts join a neighbouring length when padding them is cheaper
  than a pass of their own.

The vectors are those of the plain model: each row is BERT over its own tokens, mean-pooled over
its attention mask, whatever the batch (padding is masked out), so only float rounding differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfrec_llm.errors import ConfigError

CALL_COST_TOKENS = 32
"""What one more forward pass costs, in padded tokens: an estimate of a call's fixed work (op
dispatch, small tensors). Not critical: on the MovieLens-100K catalog (batch 128) any value from
8 to 128 leaves 0.1-1.6% padding in 24-16 passes."""


def _check_positive_int(name: str, value: Any) -> None:
    """Raises ConfigError unless ``value`` is an int >= 1 (bool excluded)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}={value!r} is invalid: expected a positive int.")


def plan_batches(
    lengths: Sequence[int] | np.ndarray,
    max_rows: int,
    call_cost_tokens: int = CALL_COST_TOKENS,
) -> list[np.ndarray]:
    """Groups texts into forward passes that pad as little as a pass is worth.

    The texts are sorted by length (stable, so ties keep input order) and the sorted list is cut
    into consecutive runs of at most ``max_rows`` texts. Each run is padded to its longest text;
    the cut minimises ``sum(rows * longest) + call_cost_tokens * number_of_runs``, found by
    dynamic programming in ``O(len(lengths) * max_rows)``; among equal cuts it takes the fewest
    passes, then the one whose partial pass comes last.

    Args:
        lengths: Token count of each text (>= 0).
        max_rows: Most texts in one pass (the memory bound, ``batch_size`` of ``encode_texts``).
        call_cost_tokens: Cost of one more pass in padded tokens (>= 0); 0 gives passes of one
            length only, a huge value the fewest passes.

    Returns:
        One int array per pass: positions into ``lengths``, sorted by length ascending; the
        passes come in ascending length and together hold every position exactly once.

    Raises:
        ConfigError: ``max_rows`` is not a positive int or ``call_cost_tokens`` is negative.

    Example:
        >>> [b.tolist() for b in plan_batches([3, 3, 9, 3], max_rows=2, call_cost_tokens=0)]
        [[0, 1], [3], [2]]
    """
    _check_positive_int("max_rows", max_rows)
    if isinstance(call_cost_tokens, bool) or not isinstance(call_cost_tokens, (int, float)):
        raise ConfigError(f"call_cost_tokens={call_cost_tokens!r} is invalid: expected a number.")
    if call_cost_tokens < 0:
        raise ConfigError(f"call_cost_tokens={call_cost_tokens!r} is invalid: expected >= 0.")
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    count = len(lengths)
    if count == 0:
        return []
    order = np.argsort(lengths, kind="stable")
    ordered = lengths[order]
    # best[j]: least cost of the first j sorted texts; start[j]: where the last run of it begins.
    # Each pass also costs 1 / (count + 1): less than one token in all, so among cuts of equal
    # cost the one with the fewest passes wins.
    per_pass = call_cost_tokens + 1.0 / (count + 1)
    best = np.zeros(count + 1, dtype=np.float64)
    start = np.zeros(count + 1, dtype=np.int64)
    for end in range(1, count + 1):
        first = max(0, end - max_rows)
        starts = np.arange(first, end)
        costs = best[first:end] + per_pass + (end - starts) * float(ordered[end - 1])
        pick = len(costs) - 1 - int(np.argmin(costs[::-1]))  # ties: the shortest last run
        best[end] = costs[pick]
        start[end] = first + pick
    runs = []
    end = count
    while end > 0:
        runs.append(order[start[end] : end])
        end = int(start[end])
    return runs[::-1]


def padded_shapes(
    lengths: Sequence[int] | np.ndarray, batches: Sequence[np.ndarray]
) -> list[tuple[int, int]]:
    """``(rows, width)`` of each pass of ``batches`` over texts of the given ``lengths``."""
    lengths = np.asarray(lengths)
    return [(len(rows), int(lengths[rows].max())) for rows in batches]


def _padded(ids: Sequence[Sequence[int]], rows: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 ``input_ids`` and ``attention_mask`` of the texts ``rows``, padded to the longest."""
    lengths = [len(ids[row]) for row in rows]
    width = max(max(lengths), 1)  # an empty token list still gets one (masked) position
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(rows), width), dtype=np.int32)
    for i, (row, length) in enumerate(zip(rows, lengths, strict=True)):
        input_ids[i, :length] = ids[row]
        mask[i, :length] = 1
    return input_ids, mask


def encode_token_ids(
    encode: Any,
    ids: Sequence[Sequence[int]],
    hidden_size: int,
    pad_id: int,
    max_rows: int = 128,
    call_cost_tokens: int = CALL_COST_TOKENS,
    show_progress: bool = False,
) -> np.ndarray:
    """Runs ``encode`` over tokenized texts in the passes of `plan_batches`, in input order.

    Args:
        encode: ``(input_ids, attention_mask) -> [rows, hidden_size]`` on int32 tensors, e.g.
            ``TextEncoder.graph_encode_tokens`` (one ``tf.function`` with a ``[None, None]``
            signature, so no pass retraces).
        ids: Token ids of each text, special tokens included, already truncated.
        hidden_size: Width of ``encode``'s output.
        pad_id: Id of the padding token (masked out, so any valid id gives the same vectors).
        max_rows: Most texts in one pass.
        call_cost_tokens: See `plan_batches`.
        show_progress: Show a tqdm progress bar over passes.

    Returns:
        float32 ``[len(ids), hidden_size]``, row i encoding ``ids[i]``.

    Raises:
        ConfigError: ``max_rows`` or ``call_cost_tokens`` is invalid.
    """
    batches = plan_batches([len(row) for row in ids], max_rows, call_cost_tokens)
    output = np.zeros((len(ids), hidden_size), dtype=np.float32)
    if show_progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="encode_texts", unit="batch")
    for rows in batches:
        input_ids, mask = _padded(ids, rows, pad_id)
        output[rows] = np.asarray(encode(tf.constant(input_ids), tf.constant(mask)))
    return output
