"""The shared plumbing of the classic peers (``evaluation.peers``): catalog columns, the binary
user x item fit matrix of ``split.train`` or ``split.train_valid``, and history vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tfrec_llm.data.schema import ITEM_ID, USER_ID
from tfrec_llm.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tfrec_llm.data.splits import Split

FIT_ON = ("train", "train_valid")


class CatalogScorer:
    """Shared plumbing of the peers: catalog columns, the binary fit matrix, history vectors."""

    label = "peer"

    def __init__(self, split: Split, fit_on: str, params: dict[str, Any]) -> None:
        if fit_on not in FIT_ON:
            raise ConfigError(
                f"fit_on={fit_on!r} is not one of {FIT_ON}; use 'train' for tuning "
                "and 'train_valid' for the TEST refit."
            )
        self.fit_on = fit_on
        self.params = dict(params)
        self.name = self.label if fit_on == "train" else f"{self.label} (refit on train_valid)"
        self.item_ids = np.asarray(split.item_ids)
        self._item_index = pd.Index(self.item_ids)
        frame = split.train if fit_on == "train" else split.train_valid
        missing = [c for c in (USER_ID, ITEM_ID) if c not in frame.columns]
        if missing or len(frame) == 0:
            raise DataError(
                f"split.{fit_on} has {len(frame)} rows and columns "
                f"{list(frame.columns)}; a {self.label} scorer needs at least one "
                f"interaction with {USER_ID!r} and {ITEM_ID!r} to fit on."
            )
        users, user_rows = np.unique(frame[USER_ID].to_numpy(), return_inverse=True)
        self._fit_user_index = pd.Index(users)
        cols = self._columns(frame[ITEM_ID].to_numpy(), f"split.{fit_on}")
        self._fit_matrix = self._binary(user_rows, cols, len(users))
        self.fit_seconds = 0.0

    def _columns(self, item_ids: np.ndarray, where: str) -> np.ndarray:
        cols = np.asarray(self._item_index.get_indexer(item_ids), dtype=np.int64)
        if (cols < 0).any():
            unknown = pd.unique(item_ids[cols < 0])[:5].tolist()
            raise DataError(
                f"{where} holds item ids not in split.item_ids, e.g. {unknown}; "
                "every scored item must be in the catalog."
            )
        return cols

    def _binary(self, rows: np.ndarray, cols: np.ndarray, n_rows: int) -> sp.csr_matrix:
        data = np.ones(len(rows), dtype=np.float64)
        matrix = sp.csr_matrix((data, (rows, cols)), shape=(n_rows, len(self.item_ids)))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def _history_matrix(self, histories: Sequence[np.ndarray]) -> sp.csr_matrix:
        lengths = [len(h) for h in histories]
        flat = np.concatenate([np.empty(0, object)] + [np.asarray(h, object) for h in histories])
        rows = np.repeat(np.arange(len(histories)), lengths)
        return self._binary(rows, self._columns(flat, "histories"), len(histories))

    @staticmethod
    def _check_batch(user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> None:
        if len(user_ids) != len(histories):
            raise DataError(
                f"score got {len(user_ids)} user_ids but {len(histories)} histories; "
                "pass one history (possibly empty) per user."
            )
