"""Approximate nearest-neighbour index of the exported candidate embeddings (faiss, CPU).

The retrieval SavedModel scores the whole catalog by brute force (one matmul and a top-k per
request): exact, and its cost grows linearly with the catalog. In ``benchmarks/results/ann.md``
(2 shared cores, load 13 to 21, so every figure is pessimistic) one query took a median 22 ms
at 100k items, 210 ms at 1M and 812 ms at 5M, while an ``ivf_flat`` index answered in 1 to 2 ms
at ``nprobe`` 32 (recall@10 on random vectors, the hardest case: 0.37 at 1M, 0.31 at 5M; 0.89
to 0.97 at ``nprobe`` 512; 1.0 on clustered vectors, 100k, from ``nprobe`` 8). Hence the default
``export.ann: auto`` with ``export.ann_min_items`` = 1,000,000: brute force below, and from
there on the exporter also ships a faiss index of the same candidate embeddings beside the
SavedModel, and :mod:`tfrec_llm.serving.ann_query` answers a request
with the SavedModel's ``query_embedding`` signature, then the index. The metric is the inner
product, the model's own score, so an exact (``flat``) index returns the SavedModel's top-k.

Layout, one folder per SavedModel version (TF Serving never reads it)::

    <export_dir>/retrieval_ann/<version>/index.faiss   faiss.write_index
                                        /item_ids.npy  row -> item id (no pickle)
                                        /meta.json     index type, params, dims, items,
                                                       metric, build seconds, model version,
                                                       sha256 of the embeddings

A folder is written aside (``.tmp-<version>-<pid>``) and renamed into place; rebuilding a
version swaps the new folder in by two renames, so a failed build leaves no half index and the
previous one is untouched.

Index types: ``flat`` (exact, ``IndexFlatIP``), ``ivf_flat`` (``IndexIVFFlat``: k-means into
``nlist`` lists, ``nprobe`` of them searched; the default: built in 10 s at 100k, 66 s at 1M and
380 s at 5M items in the benchmark above) and ``hnsw`` (``IndexHNSWFlat``; better recall per
millisecond, but 163 s to build 100k items there, so hours at 5M on 2 cores).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from typing import Any

import numpy as np

from tfrec_llm.atomic_io import write_json
from tfrec_llm.errors import ConfigError, ExportError

ANN_DIR = "retrieval_ann"
FORMAT = "tfrec_llm.ann_index/1"
INDEX_FILE, IDS_FILE, META_FILE = "index.faiss", "item_ids.npy", "meta.json"
MODES = ("auto", "off", "on")
INDEX_TYPES = ("flat", "ivf_flat", "hnsw")
_TRAIN_POINTS_PER_LIST = 64  # k-means sample: nlist * this many points (faiss warns below 39)
INSTALL_HINT = "pip install 'tfrec_llm[ann]' (or faiss-cpu==1.15.*)"


def _faiss() -> Any:
    """The ``faiss`` module, an optional dependency (extra ``ann``).

    Raises:
        ExportError: faiss is not installed, naming the extra that brings it.
    """
    try:
        import faiss
    except ImportError as err:
        raise ExportError(
            f"the ANN index (export.ann) needs faiss, which is not installed: {INSTALL_HINT}; "
            "or set export.ann=off to serve by brute force."
        ) from err
    return faiss


@dataclasses.dataclass
class AnnIndex:
    """A loaded (or freshly built) index: faiss index, row -> item id, metadata."""

    index: Any
    item_ids: np.ndarray
    meta: dict[str, Any]

    @property
    def dims(self) -> int:
        """Embedding width."""
        return int(self.meta["dims"])

    @property
    def model_version(self) -> int:
        """The retrieval SavedModel version the index belongs to."""
        return int(self.meta["model_version"])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows by inner product: (scores [n, k], rows [n, k]); row -1 = none found."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dims:
            raise ExportError(
                f"query embeddings have shape {tuple(queries.shape)}; the ANN index of model "
                f"version {self.model_version} expects [batch, {self.dims}]."
            )
        k = max(1, min(int(k), int(self.meta["items"])))
        return self.index.search(queries, k)  # type: ignore[no-any-return]


def wants_index(mode: str, num_items: int, min_items: int) -> bool:
    """Whether an export ships an ANN index (``export.ann`` / ``export.ann_min_items``).

    Args:
        mode: ``auto`` (only when the catalog has at least ``min_items`` items), ``on`` or ``off``.
        num_items: Catalog size.
        min_items: The ``auto`` threshold.

    Raises:
        ConfigError: If ``mode`` or ``min_items`` is invalid.
    """
    if mode not in MODES:
        raise ConfigError(f"export.ann={mode!r}; expected one of {', '.join(MODES)}.")
    if min_items < 1:
        raise ConfigError(f"export.ann_min_items={min_items}; expected a positive item count.")
    return mode == "on" or (mode == "auto" and num_items >= min_items)


def default_nlist(num_items: int) -> int:
    """IVF lists: sqrt(items), between 1 and 4096, at most items / 39.

    faiss suggests 4 to 16 * sqrt(items); sqrt keeps k-means and the assignment of every item
    (items x nlist inner products) affordable on 2 cores at 5M items, at the price of more
    items scanned per probed list.
    """
    return max(1, min(4096, int(math.sqrt(num_items)), num_items // 39))


def embeddings_sha256(embeddings: np.ndarray) -> str:
    """sha256 of the float32 C-order bytes of the embeddings (and their shape)."""
    array = np.ascontiguousarray(embeddings, dtype=np.float32)
    digest = hashlib.sha256(repr(array.shape).encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def build_index(
    embeddings: np.ndarray,
    item_ids: np.ndarray | list[str],
    model_version: int,
    index_type: str = "ivf_flat",
    nlist: int = 0,
    nprobe: int = 32,
    hnsw_m: int = 32,
    ef_search: int = 64,
    seed: int = 0,
) -> AnnIndex:
    """Builds an inner-product index over ``embeddings`` (rows in catalog order).

    Args:
        embeddings: [items, dims] candidate embeddings.
        item_ids: Item id of each row.
        model_version: Version of the retrieval SavedModel the embeddings come from.
        index_type: ``flat``, ``ivf_flat`` or ``hnsw``.
        nlist: IVF lists; 0 = :func:`default_nlist`.
        nprobe: IVF lists searched per query.
        hnsw_m: HNSW neighbours per node.
        ef_search: HNSW search breadth.
        seed: k-means seed.

    Returns:
        The index, ready to search or save.

    Raises:
        ConfigError: Unknown index type or bad parameters.
        ExportError: Embeddings that are empty, not 2-D, not finite, or that do not match
            ``item_ids``; faiss not installed.
    """
    faiss = _faiss()

    if index_type not in INDEX_TYPES:
        raise ConfigError(f"export.ann_index={index_type!r}; expected one of {', '.join(INDEX_TYPES)}.")
    if nprobe < 1 or nlist < 0 or hnsw_m < 2 or ef_search < 1:
        raise ConfigError(
            f"ANN parameters nprobe={nprobe}, nlist={nlist}, hnsw_m={hnsw_m}, ef_search={ef_search}; "
            "expected nprobe >= 1, nlist >= 0 (0 = automatic), hnsw_m >= 2, ef_search >= 1."
        )
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    ids = np.asarray(item_ids).astype(str)
    if x.ndim != 2 or len(x) == 0 or len(ids) != len(x):
        raise ExportError(
            f"ANN index needs [items, dims] embeddings with one item id per row; got shape "
            f"{tuple(x.shape)} and {len(ids)} item ids."
        )
    if not np.isfinite(x).all():
        raise ExportError("ANN index: the candidate embeddings contain NaN or inf; the model is broken.")
    started = time.perf_counter()
    dims, items = x.shape[1], x.shape[0]
    params: dict[str, Any] = {}
    if index_type == "flat":
        index = faiss.IndexFlatIP(dims)
    elif index_type == "ivf_flat":
        lists = min(nlist or default_nlist(items), items)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dims), dims, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        sample = np.random.default_rng(seed).permutation(items)[: lists * _TRAIN_POINTS_PER_LIST]
        index.train(x[np.sort(sample)])
        index.nprobe = min(nprobe, lists)
        params = {"nlist": lists, "nprobe": int(index.nprobe), "train_points": len(sample)}
    else:
        index = faiss.IndexHNSWFlat(dims, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
        index.hnsw.efSearch = ef_search
        params = {"m": hnsw_m, "ef_construction": 40, "ef_search": ef_search}
    index.add(x)
    meta = {
        "format": FORMAT,
        "index_type": index_type,
        "params": params,
        "dims": dims,
        "items": items,
        "metric": "inner_product",
        "build_seconds": round(time.perf_counter() - started, 3),
        "model_version": int(model_version),
        "embeddings_sha256": embeddings_sha256(x),
        "faiss_version": faiss.__version__,
    }
    return AnnIndex(index, ids, meta)


def index_folder(export_dir: str, version: int) -> str:
    """``<export_dir>/retrieval_ann/<version>``."""
    return os.path.join(export_dir, ANN_DIR, str(int(version)))


def save_index(ann: AnnIndex, export_dir: str) -> str:
    """Writes ``ann`` to :func:`index_folder` atomically; returns the folder.

    The files go to a hidden folder beside the target, which is then renamed into place. An
    existing folder of the same version is replaced only once the new one is complete.

    Raises:
        ExportError: If writing failed (the previous index, if any, is left as it was), or
            faiss is not installed.
    """
    faiss = _faiss()

    final = index_folder(export_dir, ann.model_version)
    base = os.path.dirname(final)
    os.makedirs(base, exist_ok=True)
    tmp = os.path.join(base, f".tmp-{ann.model_version}-{os.getpid()}")
    old = os.path.join(base, f".old-{ann.model_version}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(tmp)
        faiss.write_index(ann.index, os.path.join(tmp, INDEX_FILE))
        np.save(os.path.join(tmp, IDS_FILE), ann.item_ids, allow_pickle=False)
        write_json(os.path.join(tmp, META_FILE), ann.meta)
        if os.path.exists(final):
            os.rename(final, old)
        os.rename(tmp, final)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.exists(old) and not os.path.exists(final):
            os.rename(old, final)
        raise ExportError(f"writing the ANN index of version {ann.model_version} failed: {e}") from e
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_index(folder: str, model_version: int | None = None, dims: int | None = None) -> AnnIndex:
    """Loads an index folder and checks it belongs to the model that will query it.

    Args:
        folder: A folder written by :func:`save_index`.
        model_version: The retrieval SavedModel version the caller queries (None = any).
        dims: The query embedding width (None = not checked).

    Raises:
        ExportError: Missing or foreign files, an index built for another model version or
            embedding width, or faiss not installed.
    """
    faiss = _faiss()

    meta_path = os.path.join(folder, META_FILE)
    try:
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError) as e:
        raise ExportError(f"ANN index folder '{folder}' has no readable {META_FILE} ({e}).") from e
    if meta.get("format") != FORMAT:
        raise ExportError(f"'{meta_path}' has format {meta.get('format')!r}; expected {FORMAT!r}.")
    if model_version is not None and int(meta["model_version"]) != int(model_version):
        raise ExportError(
            f"ANN index '{folder}' was built for model version {meta['model_version']}, not "
            f"{model_version}; rebuild it from that version's embeddings or query version "
            f"{meta['model_version']}."
        )
    if dims is not None and int(meta["dims"]) != int(dims):
        raise ExportError(
            f"ANN index '{folder}' holds {meta['dims']}-dim embeddings but the query embedding "
            f"has {dims} dims; the index belongs to another model."
        )
    index = faiss.read_index(os.path.join(folder, INDEX_FILE))
    ids = np.load(os.path.join(folder, IDS_FILE), allow_pickle=False)
    if index.d != meta["dims"] or index.ntotal != meta["items"] or len(ids) != meta["items"]:
        raise ExportError(
            f"ANN index '{folder}' is inconsistent: {META_FILE} says {meta['items']} items x "
            f"{meta['dims']} dims, the index has {index.ntotal} x {index.d} and {len(ids)} item ids."
        )
    return AnnIndex(index, ids, meta)
