"""Integer views of a dataset for the models: catalog indices, id vocabularies, feature tables.

Models never see string ids during training. Every item of the catalog gets a *catalog index*
(its position in ``split.item_ids``) and every user a *user index* (position in the natural
order of all users, known ones and cold ones). One extra user row, ``num_users``, stands for a
user the model has never heard of. The id-embedding vocabularies are smaller: they hold only
the users and items seen in TRAIN, everything else maps to the OOV bucket 0, so a cold item's
id embedding is never a random untrained row.

Example:
    >>> catalog = build_catalog(dataset, split)
    >>> catalog.item_index(["1", "50"])     # catalog indices, -1 for unknown ids
    array([ 0, 49])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from tfrec_llm.data.schema import ITEM_ID, MULTI_VALUE_SEP, USER_ID, RecDataset, sort_ids
from tfrec_llm.data.splits import Split


@dataclasses.dataclass(frozen=True)
class Catalog:
    """Integer tables shared by training, evaluation and export.

    Attributes:
        item_ids: [num_items] catalog ids in natural order (= ``split.item_ids``).
        user_ids: [num_users] all user ids (train, valid, cold) in natural order.
        item_id_index: [num_items] id-vocabulary index per catalog item; 0 = OOV (not in TRAIN).
        user_id_index: [num_users + 1] id-vocabulary index per user; 0 = OOV; last row = unknown.
        item_vocab_size: Number of item id-embedding rows (OOV bucket included).
        user_vocab_size: Number of user id-embedding rows (OOV bucket included).
        categories: [num_items, num_categories] float32 multi-hot of the categorical fields.
        category_names: Names of the multi-hot columns (``field=value``).
        profile: [num_users + 1, num_profile_fields] int32 index into each field's vocabulary
            (0 = unknown value); the last row (unknown user) is all zeros.
        profile_sizes: Vocabulary size (with the unknown value) of each profile field.
        profile_fields: Names of the profile fields.
        popularity: [num_items] TRAIN interaction counts.
    """

    item_ids: np.ndarray
    user_ids: np.ndarray
    item_id_index: np.ndarray
    user_id_index: np.ndarray
    item_vocab_size: int
    user_vocab_size: int
    categories: np.ndarray
    category_names: tuple[str, ...]
    profile: np.ndarray
    profile_sizes: tuple[int, ...]
    profile_fields: tuple[str, ...]
    popularity: np.ndarray

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    def item_index(self, ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Catalog indices of ``ids``; -1 for ids outside the catalog."""
        return _positions(self.item_ids, ids)

    def user_index(self, ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """User indices of ``ids``; ``num_users`` (the unknown-user row) for unknown ids."""
        idx = _positions(self.user_ids, ids)
        return np.where(idx < 0, self.num_users, idx)

    def pad_histories(self, histories: Sequence[np.ndarray], length: int) -> np.ndarray:
        """[n, length] int32 catalog indices of the last ``length`` items, -1 padded on the left."""
        out = np.full((len(histories), length), -1, dtype=np.int32)
        tails = [np.asarray(hist, dtype=object)[-length:] for hist in histories]
        if not tails:
            return out
        # one lookup for all rows (a lookup per row rebuilt the index every time)
        sizes = np.fromiter((len(t) for t in tails), np.int64, len(tails))
        idx = self.item_index(np.concatenate(tails)) if sizes.sum() else np.zeros(0, np.int64)
        for row, part in enumerate(np.split(idx, np.cumsum(sizes)[:-1])):
            part = part[part >= 0]
            if len(part):
                out[row, -len(part) :] = part
        return out


def _positions(sorted_ids: np.ndarray, ids: Sequence[str] | np.ndarray) -> np.ndarray:
    lookup = pd.Index(sorted_ids)
    return np.asarray(lookup.get_indexer(np.asarray(ids, dtype=object)), dtype=np.int64)


def _vocab_index(all_ids: np.ndarray, known: np.ndarray) -> np.ndarray:
    """1 + rank among ``known`` for ids in ``known``; 0 (OOV) otherwise."""
    known_sorted = sort_ids(known)
    pos = _positions(known_sorted, all_ids)
    return np.where(pos >= 0, pos + 1, 0).astype(np.int32)


def build_catalog(dataset: RecDataset, split: Split) -> Catalog:
    """Builds the integer tables of ``dataset`` for a model trained on ``split.train``.

    Args:
        dataset: The canonical dataset (items, users, profile and categorical fields).
        split: The protocol split; only ``split.train`` decides the id vocabularies.

    Returns:
        The Catalog.
    """
    item_ids = np.asarray(split.item_ids, dtype=object)
    user_ids = sort_ids(
        np.concatenate(
            [
                dataset.users[USER_ID].to_numpy(dtype=object),
                dataset.interactions[USER_ID].to_numpy(dtype=object),
            ]
        )
    )
    train = split.train
    item_id_index = _vocab_index(item_ids, train[ITEM_ID].unique())
    user_id_index = np.append(_vocab_index(user_ids, train[USER_ID].unique()), 0).astype(np.int32)

    items = dataset.items.set_index(ITEM_ID).reindex(item_ids)
    names: list[str] = []
    columns: list[np.ndarray] = []
    for field in dataset.item_categorical_fields:
        values = items[field].fillna("").astype(str)
        tokens = values.map(lambda v: [t for t in v.split(MULTI_VALUE_SEP) if t])
        vocab = sorted({t for row in tokens for t in row})
        col_of = {t: i for i, t in enumerate(vocab)}
        block = np.zeros((len(item_ids), len(vocab)), dtype=np.float32)
        for row, toks in enumerate(tokens):
            for t in toks:
                block[row, col_of[t]] = 1.0
        names.extend(f"{field}={t}" for t in vocab)
        columns.append(block)
    categories = np.concatenate(columns, axis=1) if columns else np.zeros((len(item_ids), 0), np.float32)

    users = dataset.users.set_index(USER_ID).reindex(user_ids)
    profile = np.zeros((len(user_ids) + 1, len(dataset.user_profile_fields)), dtype=np.int32)
    sizes: list[int] = []
    for col, field in enumerate(dataset.user_profile_fields):
        values = users[field].fillna("").astype(str).to_numpy()
        vocab = sorted(set(values) - {""})
        index = {v: i + 1 for i, v in enumerate(vocab)}
        profile[:-1, col] = [index.get(v, 0) for v in values]
        sizes.append(len(vocab) + 1)

    counts = train[ITEM_ID].value_counts()
    popularity = counts.reindex(item_ids).fillna(0).to_numpy(dtype=np.float32)
    return Catalog(
        item_ids=item_ids,
        user_ids=user_ids,
        item_id_index=item_id_index,
        user_id_index=user_id_index,
        item_vocab_size=int(item_id_index.max()) + 1,
        user_vocab_size=int(user_id_index.max()) + 1,
        categories=categories,
        category_names=tuple(names),
        profile=profile,
        profile_sizes=tuple(sizes),
        profile_fields=tuple(dataset.user_profile_fields),
        popularity=popularity,
    )
