"""Id vocabularies: natural-order id lists and a numpy lookup with the StringLookup layout."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable

import numpy as np
import pandas as pd

from tfrec_llm.data.schema import id_positions, sort_ids
from tfrec_llm.errors import DataError


def build_vocabulary(ids: Iterable[str] | np.ndarray | pd.Series, min_count: int = 1) -> np.ndarray:
    """Ids seen at least ``min_count`` times, in natural order.

    The result is meant for ``tf.keras.layers.StringLookup(vocabulary=..., num_oov_indices=k)``
    or :class:`Vocabulary`.

    Args:
        ids: Id occurrences (e.g. ``split.train["item_id"]``); duplicates are counted.
        min_count: Minimum number of occurrences (>= 1).

    Returns:
        ``[n]`` object array of ``str``.

    Raises:
        DataError: If ``min_count`` < 1.
    """
    if min_count < 1:
        raise DataError(f"min_count={min_count!r} must be >= 1.")
    series = pd.Series(np.asarray(ids, dtype=object) if not isinstance(ids, pd.Series) else ids)
    if min_count > 1:
        counts = series.value_counts(sort=False)
        series = pd.Series(counts.index[counts.to_numpy() >= min_count])
    return sort_ids(series)


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Maps ids to integer indices, laid out like Keras ``StringLookup``.

    Indices ``0 .. num_oov_buckets - 1`` are out-of-vocabulary buckets (an unknown id goes to
    ``zlib.crc32(id) % num_oov_buckets``); known id ``ids[j]`` maps to ``num_oov_buckets + j``.
    For known ids this is exactly the index of
    ``tf.keras.layers.StringLookup(vocabulary=ids, num_oov_indices=num_oov_buckets)``
    (no mask token); with one bucket unknown ids match too (all 0). With several buckets Keras
    hashes with FarmHash, so the bucket of an unknown id differs.

    Attributes:
        ids: ``[n]`` unique ids (usually from :func:`build_vocabulary`).
        num_oov_buckets: Number of OOV buckets (>= 0; 0 makes unknown ids an error).

    Example:
        >>> vocab = Vocabulary(np.array(["1", "2", "10"], dtype=object), num_oov_buckets=1)
        >>> vocab.lookup(["10", "7"]).tolist()
        [3, 0]
    """

    ids: np.ndarray
    num_oov_buckets: int = 1

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=object)
        if self.num_oov_buckets < 0:
            raise DataError(f"num_oov_buckets={self.num_oov_buckets!r} must be >= 0.")
        if not all(isinstance(i, str) for i in ids):
            raise DataError("Vocabulary ids must all be str; convert with .astype(str).")
        if len(pd.unique(ids)) != len(ids):
            raise DataError("Vocabulary ids must be unique; build them with build_vocabulary().")
        object.__setattr__(self, "ids", ids)

    @property
    def size(self) -> int:
        """Number of indices (OOV buckets + known ids), e.g. an embedding's input_dim."""
        return self.num_oov_buckets + len(self.ids)

    def lookup(self, ids: Iterable[str] | np.ndarray | pd.Series) -> np.ndarray:
        """Indices of ``ids`` as ``int64 [n]``.

        Raises:
            DataError: If an id is unknown and ``num_oov_buckets`` is 0.
        """
        values = np.asarray(ids if isinstance(ids, (np.ndarray, pd.Series)) else list(ids), dtype=object)
        positions = id_positions(values, self.ids)
        out = positions + self.num_oov_buckets
        unknown = np.flatnonzero(positions < 0)
        if len(unknown):
            if self.num_oov_buckets == 0:
                raise DataError(
                    f"{len(unknown)} ids are not in the vocabulary, e.g. {values[unknown[0]]!r}, "
                    "and num_oov_buckets=0. Use num_oov_buckets >= 1 or extend the vocabulary."
                )
            out[unknown] = [
                zlib.crc32(str(values[i]).encode("utf-8")) % self.num_oov_buckets for i in unknown
            ]
        return out.astype(np.int64)
