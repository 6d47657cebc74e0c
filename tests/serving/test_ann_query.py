"""End to end: export with an ANN index, serve, and check the index path answers as brute force.

One export (module-scoped) of a tiny two-tower model with ``export.ann=on`` and an exact
(``flat``) index, served by the local TF Serving-compatible server over gRPC. For every user
(known, known with recent and excluded items, unknown with a history, unknown without one: the
popularity fallback), :class:`AnnRecommender` (``query_embedding`` signature, then the index)
must return the same items, in the same order, with the same scores, as the SavedModel's own
brute-force ``serving_default``. The query embedding itself is checked against the in-memory
model's query tower (numpy inner products of the top items).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tfrec_llm.config import ExperimentConfig, ExportConfig, ModelConfig
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split
from tfrec_llm.errors import ExportError
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.experiments.prepare import user_histories
from tfrec_llm.export.ann_index import build_index, load_index
from tfrec_llm.export.exporter import export_all
from tfrec_llm.serving.ann_query import AnnRecommender
from tfrec_llm.serving.grpc_client import GrpcClient
from tfrec_llm.serving.local import LocalModelServer

K, VERSION = 5, 3
_CONFTEST = "tfrec_tests_root_conftest"  # the name tests/export/test_exporter.py loads it under


def _make_dataset():
    """``make_clustered_dataset`` of tests/conftest.py (its fixtures are function-scoped)."""
    if _CONFTEST not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            _CONFTEST, Path(__file__).resolve().parents[1] / "conftest.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[_CONFTEST] = module
        spec.loader.exec_module(module)
    return sys.modules[_CONFTEST].make_clustered_dataset()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    dataset = _make_dataset()
    cfg = ExperimentConfig(
        model=ModelConfig(embedding_dim=8, history_length=4, history_encoder="mean"),
        export=ExportConfig(default_k=3, max_k=10, ann="on", ann_index="flat"),
    )
    split = make_split(dataset, "loo")
    catalog = build_catalog(dataset, split)
    text = np.random.default_rng(1).normal(size=(catalog.num_items, 6)).astype(np.float32)
    model = build_two_tower(cfg.model, catalog, text)
    export_dir = tmp_path_factory.mktemp("ann_export")
    result = export_all(
        cfg, model, catalog, user_histories(split.train_valid), str(export_dir), None, version=VERSION
    )
    server = LocalModelServer(
        model_name="retrieval",
        model_base_path=os.path.join(str(export_dir), "retrieval"),
        port=0,
        rest_port=None,
    ).start()
    client = GrpcClient("127.0.0.1", server.grpc_port, "retrieval", timeout_s=30)
    try:
        yield {"result": result, "dir": str(export_dir), "catalog": catalog, "model": model, "client": client}
    finally:
        client.close()
        server.stop()


def test_the_export_ships_a_versioned_index_of_the_candidates(served):
    result, catalog = served["result"], served["catalog"]
    assert result.ann_index == os.path.join(served["dir"], "retrieval_ann", str(VERSION))
    ann = load_index(result.ann_index, model_version=VERSION, dims=8)
    assert ann.meta["index_type"] == "flat" and ann.meta["items"] == catalog.num_items
    np.testing.assert_array_equal(ann.item_ids, np.asarray(catalog.item_ids).astype(str))
    meta = served["client"].metadata(VERSION)["signatures"]
    assert set(meta) == {"serving_default", "query_embedding"}
    assert set(meta["query_embedding"]["outputs"]) == {"query_embedding", "used_fallback", "excluded_rows"}


def test_index_top_k_equals_the_saved_models_brute_force(served):
    catalog, client = served["catalog"], served["client"]
    ann = AnnRecommender.from_export(client, served["dir"])
    assert ann.index.model_version == VERSION
    items = [str(i) for i in catalog.item_ids]
    users = [str(u) for u in catalog.user_ids[:6]] + ["new-user-with-history", "new-user"]
    recent = [[], [items[0], items[1]], [], [], [], [], [items[2], items[3], items[4]], []]
    exclude = [[items[5]], [], [], [items[6], items[7]], [], [], [], [items[8]]]

    got = ann.recommend(users, k=K, recent_item_ids=recent, exclude_item_ids=exclude)
    want = client.recommend(users, k=K, recent_item_ids=recent, exclude_item_ids=exclude)
    assert len(got) == len(users)
    for mine, theirs in zip(got, want, strict=True):
        assert [i for i, _ in mine] == [i for i, _ in theirs]
        np.testing.assert_allclose([s for _, s in mine], [s for _, s in theirs], rtol=1e-5, atol=1e-6)
    assert items[5] not in [i for i, _ in got[0]] and items[8] not in [i for i, _ in got[7]]

    # the query embedding is the tower's: its inner products with the answer are the scores
    out = client.predict(
        {"user_id": np.array(users[:1], object)}, signature_name="query_embedding", version=VERSION
    )
    candidates = served["model"].all_candidate_embeddings()
    rows = catalog.item_index(np.array([i for i, _ in got[0]], dtype=object))
    expected = candidates[rows] @ out["query_embedding"][0]
    np.testing.assert_allclose([s for _, s in got[0]], expected, rtol=1e-5, atol=1e-6)
    assert not out["used_fallback"][0]
    assert (out["excluded_rows"][0] >= 0).sum() >= 1  # the user's seen items


def test_an_index_of_another_width_or_version_is_refused(served):
    client, catalog = served["client"], served["catalog"]
    wrong_width = build_index(
        np.eye(catalog.num_items, 3, dtype=np.float32), catalog.item_ids, VERSION, "flat"
    )
    with pytest.raises(ExportError, match=r"expects \[batch, 3\]"):
        AnnRecommender(client, wrong_width).recommend([str(catalog.user_ids[0])], k=K)
    with pytest.raises(ExportError, match=f"was built for model version {VERSION}, not 99"):
        AnnRecommender(client, load_index(served["result"].ann_index, model_version=99))
