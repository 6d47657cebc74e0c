"""Tests of tfrec_llm.export.ann_index: recall, atomic versioned folders, metadata checks.

The recall test uses a clustered catalog (20 well-separated clusters of 60 items in 16 dims), the
case an IVF index is built for: with as many lists as clusters and 4 of them probed, a query's
top-10 lies in its own cluster, so recall@10 against an exact numpy ranking must be >= 0.95.
"""

from __future__ import annotations

import json
import os
import re
import sys

import numpy as np
import pytest

from tfrec_llm.errors import ConfigError, ExportError
from tfrec_llm.export import ann_index
from tfrec_llm.export.ann_index import build_index, index_folder, load_index, save_index, wants_index

K = 10


def _clustered(seed: int = 0, clusters: int = 20, per: int = 60, dims: int = 16):
    rng = np.random.default_rng(seed)
    centres = 5.0 * rng.standard_normal((clusters, dims)).astype(np.float32)
    items = np.repeat(centres, per, axis=0) + rng.standard_normal((clusters * per, dims)).astype(np.float32)
    queries = centres[rng.integers(0, clusters, 50)] + 0.5 * rng.standard_normal((50, dims)).astype(
        np.float32
    )
    return items.astype(np.float32), queries.astype(np.float32)


def _exact_top_k(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :k]


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / truth.shape[1] for f, t in zip(found, truth, strict=True)]))


def test_ivf_and_hnsw_recall_on_clustered_items_and_flat_is_exact():
    items, queries = _clustered()
    ids = np.array([f"item{i}" for i in range(len(items))])
    truth = _exact_top_k(items, queries, K)

    flat = build_index(items, ids, model_version=7, index_type="flat")
    scores, rows = flat.search(queries, K)
    np.testing.assert_array_equal(rows, truth)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ items.T, truth, axis=1), rtol=1e-5)

    ivf = build_index(items, ids, model_version=7, index_type="ivf_flat", nlist=20, nprobe=4)
    assert ivf.meta["params"]["nlist"] == 20 and ivf.meta["params"]["nprobe"] == 4
    assert _recall(ivf.search(queries, K)[1], truth) >= 0.95

    hnsw = build_index(items, ids, model_version=7, index_type="hnsw", hnsw_m=16, ef_search=64)
    assert _recall(hnsw.search(queries, K)[1], truth) >= 0.95

    meta = ivf.meta
    assert (meta["dims"], meta["items"], meta["metric"], meta["model_version"]) == (
        16,
        1200,
        "inner_product",
        7,
    )
    assert meta["embeddings_sha256"] == ann_index.embeddings_sha256(items)
    assert meta["embeddings_sha256"] != ann_index.embeddings_sha256(items[::-1])
    assert meta["build_seconds"] >= 0


def test_save_then_load_round_trip(tmp_path):
    items, queries = _clustered(seed=1)
    ids = np.array([str(i) for i in range(len(items))])
    built = build_index(items, ids, model_version=3, index_type="ivf_flat", nlist=20, nprobe=20)
    folder = save_index(built, str(tmp_path))
    assert folder == os.path.join(str(tmp_path), "retrieval_ann", "3")
    assert sorted(os.listdir(folder)) == ["index.faiss", "item_ids.npy", "meta.json"]
    loaded = load_index(folder, model_version=3, dims=16)
    assert loaded.meta == built.meta
    np.testing.assert_array_equal(loaded.item_ids, ids)
    np.testing.assert_array_equal(loaded.search(queries, K)[1], built.search(queries, K)[1])
    # nprobe = nlist probes every list: exact
    np.testing.assert_array_equal(loaded.search(queries, K)[1], _exact_top_k(items, queries, K))


def test_a_failed_build_leaves_the_old_index_and_no_half_folder(tmp_path, monkeypatch):
    import faiss

    items, _ = _clustered(seed=2)
    ids = np.arange(len(items)).astype(str)
    old = save_index(build_index(items, ids, model_version=5, index_type="flat"), str(tmp_path))
    old_meta = json.loads(open(os.path.join(old, "meta.json"), encoding="utf-8").read())

    real_write = faiss.write_index

    def write_half_then_fail(index, path):
        real_write(index, path)
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", write_half_then_fail)
    rebuilt = build_index(items * 2.0, ids, model_version=5, index_type="flat")
    with pytest.raises(ExportError, match="writing the ANN index of version 5 failed: disk full"):
        save_index(rebuilt, str(tmp_path))
    base = os.path.join(str(tmp_path), "retrieval_ann")
    assert os.listdir(base) == ["5"]  # no .tmp- or .old- folder left
    assert load_index(old).meta == old_meta

    monkeypatch.setattr(faiss, "write_index", real_write)
    save_index(rebuilt, str(tmp_path))  # a good rebuild replaces the folder
    assert load_index(old).meta["embeddings_sha256"] == ann_index.embeddings_sha256(items * 2.0)
    assert os.listdir(base) == ["5"]


def test_an_index_built_for_another_model_version_or_width_is_refused(tmp_path):
    items, _ = _clustered(seed=3)
    folder = save_index(build_index(items, np.arange(len(items)).astype(str), 4, "flat"), str(tmp_path))
    with pytest.raises(ExportError, match="was built for model version 4, not 9"):
        load_index(folder, model_version=9)
    with pytest.raises(ExportError, match="holds 16-dim embeddings but the query embedding has 8 dims"):
        load_index(folder, model_version=4, dims=8)
    loaded = load_index(folder, model_version=4)
    with pytest.raises(ExportError, match=r"expects \[batch, 16\]"):
        loaded.search(np.zeros((2, 8), np.float32), K)
    with pytest.raises(ExportError, match="has no readable meta.json"):
        load_index(str(tmp_path / "nowhere"))


def test_when_an_index_is_wanted_and_bad_settings():
    assert not wants_index("auto", 999, 1000)
    assert wants_index("auto", 1000, 1000)
    assert wants_index("on", 5, 1000)
    assert not wants_index("off", 10**7, 1000)
    with pytest.raises(ConfigError, match="export.ann='sometimes'; expected one of auto, off, on"):
        wants_index("sometimes", 5, 1000)
    with pytest.raises(ConfigError, match="export.ann_index='scann'; expected one of flat, ivf_flat, hnsw"):
        build_index(np.ones((4, 2), np.float32), ["a", "b", "c", "d"], 1, "scann")
    with pytest.raises(ExportError, match="the candidate embeddings contain NaN or inf"):
        build_index(np.full((4, 2), np.nan, np.float32), ["a", "b", "c", "d"], 1, "flat")
    assert index_folder("exports", 12) == os.path.join("exports", "retrieval_ann", "12")
    assert ann_index.default_nlist(1_000_000) == 1000 and ann_index.default_nlist(100) == 2


def test_without_faiss_every_index_step_names_the_extra(tmp_path, monkeypatch):
    """faiss is optional (extra ``ann``): without it, building, saving or loading an index is an
    ExportError naming the install command, raised before anything is written."""
    items, _ = _clustered(per=5)
    ann = build_index(items, [str(i) for i in range(len(items))], 3, "flat")
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    wanted = re.escape(
        "the ANN index (export.ann) needs faiss, which is not installed: pip install 'tfrec_llm[ann]'"
    )
    with pytest.raises(ExportError, match=wanted):
        build_index(items, [str(i) for i in range(len(items))], 3, "flat")
    with pytest.raises(ExportError, match=wanted):
        save_index(ann, str(tmp_path))
    assert not os.path.exists(tmp_path / "retrieval_ann")
    with pytest.raises(ExportError, match=wanted):
        load_index(str(tmp_path / "retrieval_ann" / "3"))
