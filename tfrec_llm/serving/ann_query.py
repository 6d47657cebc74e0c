"""Top-K over large catalogs: the model server computes the query, a faiss index answers.

The retrieval SavedModel scores every item by brute force. For catalogs past
``export.ann_min_items`` the export also ships ``<export_dir>/retrieval_ann/<version>/`` (see
`tfrec_llm.export.ann_index`) and the SavedModel's ``query_embedding`` signature. A request then
goes:

1. ``query_embedding`` on TF Serving (or the local server), pinned to the version the index
   was built for: the query vector, the catalog rows to leave out (the user's seen items, the
   request's recent and excluded items) and whether the user fell back to popularity;
2. the index: the top ``k + excluded`` rows by inner product, excluded rows dropped, rows
   mapped to item ids;
3. users that fell back to popularity (unknown, no history) are answered by the SavedModel's
   own ``serving_default`` signature, which ranks by popularity.

Example:
    >>> with GrpcClient(port=8500) as client:                        # doctest: +SKIP
    ...     ann = AnnRecommender.from_export(client, "exports")
    ...     ann.recommend(["42"], k=10)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from tfrec_llm.errors import ExportError
from tfrec_llm.export.ann_index import ANN_DIR, AnnIndex, load_index

QUERY_SIGNATURE = "query_embedding"

Recommendations = list[list[tuple[str, float]]]


class PredictClient(Protocol):
    """What :class:`AnnRecommender` needs of a client (``GrpcClient`` and ``RestClient`` fit)."""

    def predict(  # noqa: D102
        self, inputs: Mapping[str, Any], signature_name: str = ..., version: int | None = ...
    ) -> Mapping[str, np.ndarray]: ...


def _pad(rows: Sequence[Sequence[str]] | None, n: int) -> np.ndarray:
    """[n, width] object array of ids padded with "" ([0, 0] when ``rows`` is None)."""
    if rows is None:
        return np.zeros((0, 0), dtype=object)
    if len(rows) != n:
        raise ExportError(f"got {len(rows)} rows of item ids for {n} users; send one row per user.")
    width = max([len(r) for r in rows] + [1])
    return np.array([list(r) + [""] * (width - len(r)) for r in rows], dtype=object).reshape(n, width)


def latest_index_folder(export_dir: str) -> str:
    """The highest version folder of ``<export_dir>/retrieval_ann``.

    Raises:
        ExportError: If there is none.
    """
    base = os.path.join(export_dir, ANN_DIR)
    versions = sorted(int(n) for n in os.listdir(base) if n.isdigit()) if os.path.isdir(base) else []
    if not versions:
        raise ExportError(
            f"no ANN index under '{base}'; export with --set export.ann=on (or a catalog of at least "
            "export.ann_min_items items)."
        )
    return os.path.join(base, str(versions[-1]))


class AnnRecommender:
    """Recommendations from the ``query_embedding`` signature plus an ANN index.

    Args:
        client: A client of the retrieval model (``GrpcClient``, ``RestClient``).
        index: The index of the model version the client should query.
    """

    def __init__(self, client: PredictClient, index: AnnIndex) -> None:
        self.client = client
        self.index = index

    @classmethod
    def from_export(
        cls, client: PredictClient, export_dir: str, version: int | None = None
    ) -> AnnRecommender:
        """Loads the index of ``version`` (default: the newest) from an export folder."""
        folder = (
            latest_index_folder(export_dir)
            if version is None
            else os.path.join(export_dir, ANN_DIR, str(version))
        )
        return cls(client, load_index(folder, model_version=version))

    def recommend(
        self,
        user_ids: Sequence[str],
        k: int = 10,
        recent_item_ids: Sequence[Sequence[str]] | None = None,
        exclude_item_ids: Sequence[Sequence[str]] | None = None,
    ) -> Recommendations:
        """Top-``k`` ``(item_id, score)`` per user, best first (scores are inner products).

        Args:
            user_ids: The users (one request).
            k: Items per user (at most the catalog size).
            recent_item_ids: Per user, recent items (read by the query tower and excluded).
            exclude_item_ids: Per user, more items to leave out.

        Raises:
            ExportError: The query embedding does not fit the index (another model).
            ServingError: The model server failed (e.g. it does not serve the index's version).
        """
        if k < 1:
            raise ExportError(f"k={k}; expected k >= 1 (the number of items to return per user).")
        n = len(user_ids)
        inputs = {
            "user_id": np.asarray(list(user_ids), dtype=object),
            "recent_item_ids": _pad(recent_item_ids, n),
            "exclude_item_ids": _pad(exclude_item_ids, n),
        }
        out = self.client.predict(inputs, signature_name=QUERY_SIGNATURE, version=self.index.model_version)
        query = np.asarray(out["query_embedding"], np.float32)
        excluded = np.asarray(out["excluded_rows"]).reshape(n, -1)
        fallback = np.asarray(out["used_fallback"], bool).reshape(n)
        k = min(int(k), int(self.index.meta["items"]))
        scores, rows = self.index.search(query, k + excluded.shape[1])
        results: Recommendations = []
        for r in range(n):
            leave_out = set(excluded[r][excluded[r] >= 0].tolist())
            keep = [
                (int(i), float(s))
                for i, s in zip(rows[r], scores[r], strict=True)
                if i >= 0 and i not in leave_out
            ]
            results.append([(str(self.index.item_ids[i]), s) for i, s in keep[:k]])
        if fallback.any():
            self._popularity(results, np.flatnonzero(fallback), inputs, k)
        return results

    def _popularity(
        self, results: Recommendations, rows: np.ndarray, inputs: dict[str, np.ndarray], k: int
    ) -> None:
        """Replaces ``results[rows]`` by the SavedModel's own (popularity) answer."""
        sub = {
            name: value[rows] if len(value) else value for name, value in inputs.items() if name != "user_id"
        }
        sub["user_id"] = inputs["user_id"][rows]
        sub["k"] = np.asarray(k, np.int32)
        out = self.client.predict(sub, signature_name="serving_default", version=self.index.model_version)
        for j, r in enumerate(rows):
            ids = [i.decode() if isinstance(i, bytes) else str(i) for i in out["item_ids"][j]]
            results[r] = list(zip(ids, (float(s) for s in out["scores"][j]), strict=True))
