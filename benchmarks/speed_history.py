"""Speed benchmark, section (d): exported retrieval latency for each history encoder.

The default model (variant ``bert``: ids, text, categories and profile; ``embedding_dim`` 64,
``history_length`` 50) is built once per ``model.history_encoder``: ``mean`` (the original
mean-pooling tower) and the causal ``attention``, ``gru``, ``lstm`` and ``cnn`` encoders at the
config's sizes (``encoder_width`` 64; attention: ``encoder_blocks`` 2, ``encoder_heads`` 2). Each
is published with ``export_retrieval`` into a temporary folder and loaded with
``tf.saved_model.load``; the ``serving_default`` signature is called in process with known users
(their stored history) plus ``RECENT_ITEMS`` recent items each, k = 10, at batch 1 and 256.
Every (encoder, batch) pair is one contender of ``common.time_calls`` (interleaved rounds, the
starting one rotating), so a busy neighbour slows them alike; p50 is the median call.

The models are built, not trained: the latency does not depend on the weight values, only on
the graph and the sizes, which are the defaults.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import common
from speed_training import percentile

ENCODERS = ("mean", "attention", "gru", "lstm", "cnn")
"""``model.history_encoder`` values measured, the mean-pooling baseline first."""
RECENT_ITEMS = 5
"""Recent item ids sent with every user of a request (``recent_item_ids``)."""
K = 10


def _folder_megabytes(folder: str) -> float:
    """Total size of the files under ``folder`` in MB (10^6 bytes)."""
    total = sum(
        os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(folder) for name in names
    )
    return total / 1e6


def bench_history_encoders(
    cfg: Any,
    prepared: Any,
    rounds: int,
    batches: Sequence[int] = (1, 256),
    encoders: Sequence[str] = ENCODERS,
) -> dict[str, Any]:
    """Section (d): p50/p95 of the exported retrieval signature for each history encoder.

    Args:
        cfg: Experiment config (its model section gives the sizes; ``history_encoder`` is set
            per contender).
        prepared: ``experiments.prepare`` output (catalog, split, text embeddings).
        rounds: Interleaved rounds (calls per contender).
        batches: Users per request.
        encoders: ``model.history_encoder`` values, ``mean`` first for the ratios.

    Returns:
        ``{"catalog_items", "k", "sizes", "recent_items", "trained", "models", "rows"}``:
        ``models`` maps each encoder to its export seconds, SavedModel size and parameter
        counts; ``rows`` has one entry per (encoder, batch) with p50/p95 ms, ms per query,
        queries/s and p50 relative to ``mean`` at the same batch (when measured).
    """
    import numpy as np
    import tensorflow as tf

    from tfrec_llm.config import replace
    from tfrec_llm.experiments import variant_config
    from tfrec_llm.experiments.builders import build_two_tower
    from tfrec_llm.experiments.prepare import user_histories
    from tfrec_llm.export.exporter import export_retrieval

    catalog = prepared.catalog
    histories = user_histories(prepared.split.train_valid)
    users = np.asarray(sorted(histories), dtype=object).astype(str)
    items = np.asarray(catalog.item_ids, dtype=object).astype(str)
    rng = np.random.default_rng(0)
    requests = {
        b: [
            (tf.constant(rng.choice(users, size=b)), tf.constant(rng.choice(items, size=(b, RECENT_ITEMS))))
            for _ in range(8)
        ]
        for b in batches
    }
    none = tf.zeros([0, 0], tf.string)
    k = tf.constant(K, tf.int32)
    models: dict[str, dict[str, Any]] = {}
    serves: dict[str, Any] = {}
    vcfg = variant_config(cfg, "bert")
    with tempfile.TemporaryDirectory(prefix="tfrec_speed_history_") as folder:
        for name in encoders:
            ecfg = replace(vcfg, model__history_encoder=name)
            model = build_two_tower(ecfg.model, catalog, prepared.text_embeddings)
            start = time.perf_counter()
            version_dir = export_retrieval(ecfg, model, catalog, histories, os.path.join(folder, name), 1)
            encoder = model.query_tower.encoder
            models[name] = {
                "export_seconds": time.perf_counter() - start,
                "saved_model_mb": _folder_megabytes(version_dir),
                "encoder_parameters": 0 if encoder is None else int(encoder.count_params()),
                "query_tower_parameters": int(model.query_tower.count_params()),
            }
            serves[name] = tf.saved_model.load(version_dir).signatures["serving_default"]
    counter = [0]

    def call(name: str, b: int) -> None:
        user_id, recent = requests[b][counter[0] % 8]
        out = serves[name](user_id=user_id, recent_item_ids=recent, exclude_item_ids=none, k=k)
        out["item_ids"].numpy()
        counter[0] += 1

    for name in encoders:
        for b in batches:
            for _ in range(5):
                call(name, b)
    times = common.time_calls(
        {f"{name} batch {b}": (lambda n=name, b=b: call(n, b)) for name in encoders for b in batches}, rounds
    )
    rows = []
    for name in encoders:
        for b in batches:
            ms = [1000 * s for s in times[f"{name} batch {b}"]]
            p50 = percentile(ms, 50)
            rows.append(
                {
                    "encoder": name,
                    "batch": b,
                    "p50_ms": p50,
                    "p95_ms": percentile(ms, 95),
                    "p50_ms_per_query": p50 / b,
                    "queries_per_second": 1000 * b / p50,
                    "calls": len(ms),
                }
            )
    base = {r["batch"]: r["p50_ms"] for r in rows if r["encoder"] == "mean"}
    for r in rows:
        r["p50_vs_mean"] = r["p50_ms"] / base[r["batch"]] if r["batch"] in base else None
    m = vcfg.model
    return {
        "catalog_items": catalog.num_items,
        "k": K,
        "sizes": {
            "embedding_dim": m.embedding_dim,
            "history_length": m.history_length,
            "encoder_width": m.encoder_width,
            "encoder_blocks": m.encoder_blocks,
            "encoder_heads": m.encoder_heads,
        },
        "recent_items": RECENT_ITEMS,
        "trained": False,
        "models": models,
        "rows": rows,
    }


def render_history_section(section: dict[str, Any]) -> list[str]:
    """The markdown lines of section (d): the setting, then one row per encoder."""
    s = section["sizes"]
    batches = sorted({r["batch"] for r in section["rows"]})
    calls = sorted({r["calls"] for r in section["rows"]})
    by_key = {(r["encoder"], r["batch"]): r for r in section["rows"]}
    lines = [
        f"## (d) History encoders in the exported retrieval SavedModel, top-{section['k']} of "
        f"{section['catalog_items']} items (`serving_default` signature, in process)",
        "",
        "Untrained models: the latency does not depend on the weight values, only on the graph "
        f"and the sizes: embedding_dim {s['embedding_dim']}, "
        f"history_length {s['history_length']}, encoder width {s['encoder_width']} (attention: "
        f"{s['encoder_blocks']} blocks, {s['encoder_heads']} heads). Each request: known users "
        f"(their stored history) plus {section['recent_items']} recent item ids each; the "
        "query tower, the exclusions and the top-k run inside the SavedModel. p50 = median of "
        f"{'/'.join(map(str, calls))} interleaved calls per (encoder, batch); x mean = p50 / "
        "the mean-pooling p50 at the same batch.",
        "",
    ]
    header = ["encoder", "encoder params", "SavedModel MB"]
    for b in batches:
        header += [f"b{b} p50 ms", f"b{b} p95 ms", f"b{b} x mean"]
    header += [f"b{batches[-1]} queries/s"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, info in section["models"].items():
        cells = [name, f"{info['encoder_parameters']:,}", f"{info['saved_model_mb']:.1f}"]
        for b in batches:
            r = by_key[(name, b)]
            ratio = "-" if r["p50_vs_mean"] is None else f"{r['p50_vs_mean']:.2f}x"
            cells += [f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", ratio]
        cells += [f"{by_key[(name, batches[-1])]['queries_per_second']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
