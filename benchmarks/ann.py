"""ANN index vs brute force over large catalogs: recall@10, latency, build time, size on disk.

For each catalog size (random float32 items x 64 dims, standard normal) the script measures:

- **brute force in TensorFlow**, the retrieval SavedModel's default path (one ``matmul`` of the
  query with every candidate, then ``top_k``), per single query (batch 1);
- **exact faiss** (``IndexFlatIP``), also per single query; its top-10 of 1,000 queries is the
  ground truth of recall@10;
- the **ANN indexes** of ``tfrec_llm.export.ann_index`` (built by its ``build_index``):
  ``ivf_flat`` at several ``nprobe``, and ``hnsw`` up to ``--hnsw-max-items`` (its build is
  163 s for 100k items in the recorded run); build seconds and index size on disk.

Random Gaussian vectors are the hardest case for an ANN index: no cluster structure, and the
inner products of the top items barely stand out from the rest, so the recall here is a floor.
``--clustered`` adds the same measurements on clustered items (queries near cluster centres),
closer to trained embeddings. Latencies are medians/p99 of one process on a shared machine.

Usage::

    python benchmarks/ann.py --queries 300                    # 100k, 1M, 5M
    python benchmarks/ann.py --sizes 20000 --queries 200      # a quick check
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import common

common.setup_environment()  # before anything imports TensorFlow

import numpy as np  # noqa: E402
from machine import describe_machine, load_line, machine_line, provenance  # noqa: E402

from tfrec_llm.atomic_io import write_json, write_text  # noqa: E402

SCRIPT = "benchmarks/ann.py"
DIMS, K = 64, 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The script's options."""
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--queries", type=int, default=1000, help="queries for recall and ANN latency")
    parser.add_argument("--nprobes", type=int, nargs="+", default=[8, 32, 128, 512])
    parser.add_argument("--hnsw-max-items", type=int, default=100_000)
    parser.add_argument(
        "--clustered", type=int, nargs="*", default=[100_000], help="sizes of the clustered variant"
    )
    parser.add_argument("--out", default=common.DEFAULT_OUT)


def _data(n: int, queries: int, clustered: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if not clustered:
        return (
            rng.standard_normal((n, DIMS), dtype=np.float32),
            rng.standard_normal((queries, DIMS), dtype=np.float32),
        )
    centres = rng.standard_normal((1000, DIMS), dtype=np.float32)
    items = centres[rng.integers(0, len(centres), n)]
    items += 0.3 * rng.standard_normal((n, DIMS), dtype=np.float32)
    q = centres[rng.integers(0, len(centres), queries)] + 0.3 * rng.standard_normal(
        (queries, DIMS), dtype=np.float32
    )
    return items, q.astype(np.float32)


def _latency(
    search: Callable[[np.ndarray], Any], queries: np.ndarray, budget_s: float = 10.0
) -> dict[str, Any]:
    """p50/p99 ms of ``search`` on one query at a time (stops after ``budget_s``, >= 20 queries)."""
    search(queries[:1])  # warm up
    times = []
    started = time.perf_counter()
    for i in range(len(queries)):
        t0 = time.perf_counter()
        search(queries[i : i + 1])
        times.append((time.perf_counter() - t0) * 1000)
        if i >= 19 and time.perf_counter() - started > budget_s:
            break
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p99_ms": round(float(np.percentile(times, 99)), 3),
        "timed_queries": len(times),
    }


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def _size_mb(index: Any) -> float:
    import faiss

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "index.faiss")
        faiss.write_index(index, path)
        return round(os.path.getsize(path) / 2**20, 1)


def _tf_brute_force(items: np.ndarray) -> Callable[[np.ndarray], Any]:
    import tensorflow as tf

    candidates = tf.constant(items)

    @tf.function(input_signature=[tf.TensorSpec([None, DIMS], tf.float32)])
    def top(query: tf.Tensor) -> tf.Tensor:
        return tf.math.top_k(tf.matmul(query, candidates, transpose_b=True), k=K).indices

    return lambda q: top(q).numpy()


def _measure_size(
    n: int, args: argparse.Namespace, clustered: bool, log: Callable[[str], None]
) -> list[dict]:
    import faiss

    from tfrec_llm.export.ann_index import build_index

    items, queries = _data(n, args.queries, clustered, seed=n % 9973)
    kind = "clustered" if clustered else "random"
    rows: list[dict[str, Any]] = []
    base = {"items": n, "data": kind, "dims": DIMS}

    started = time.perf_counter()
    flat = faiss.IndexFlatIP(DIMS)
    flat.add(items)
    truth = flat.search(queries, K)[1]
    log(f"{kind} {n:,}: exact top-{K} of {len(queries)} queries in {time.perf_counter() - started:.1f} s")
    lat = _latency(lambda q: flat.search(q, K), queries, budget_s=10)
    rows.append(
        {
            **base,
            "method": "brute force, faiss IndexFlatIP",
            "recall_at_10": 1.0,
            **lat,
            "build_s": 0.0,
            "size_mb": round(items.nbytes / 2**20, 1),
        }
    )
    if not clustered:
        search = _tf_brute_force(items)
        got = np.stack([search(queries[i : i + 1])[0] for i in range(min(50, len(queries)))])
        lat = _latency(search, queries, budget_s=10)
        rows.append(
            {
                **base,
                "method": "brute force, TF matmul + top_k (SavedModel)",
                "recall_at_10": round(_recall(got, truth[: len(got)]), 4),
                **lat,
                "build_s": 0.0,
                "size_mb": round(items.nbytes / 2**20, 1),
            }
        )
        del search
    flat.reset()

    ann = build_index(items, np.arange(n).astype(str), model_version=1, index_type="ivf_flat")
    size = _size_mb(ann.index)
    log(f"{kind} {n:,}: ivf_flat {ann.meta['params']} built in {ann.meta['build_seconds']} s, {size} MB")
    for nprobe in args.nprobes:
        ann.index.nprobe = nprobe
        found = ann.index.search(queries, K)[1]
        lat = _latency(lambda q: ann.index.search(q, K), queries)
        rows.append(
            {
                **base,
                "method": f"ivf_flat nlist={ann.meta['params']['nlist']} nprobe={nprobe}",
                "recall_at_10": round(_recall(found, truth), 4),
                **lat,
                "build_s": ann.meta["build_seconds"],
                "size_mb": size,
            }
        )
        log(f"  nprobe={nprobe}: recall@10 {rows[-1]['recall_at_10']}, p50 {lat['p50_ms']} ms")
    del ann
    if n <= args.hnsw_max_items:
        ann = build_index(items, np.arange(n).astype(str), model_version=1, index_type="hnsw")
        size = _size_mb(ann.index)
        for ef in (64, 256):
            ann.index.hnsw.efSearch = ef
            found = ann.index.search(queries, K)[1]
            lat = _latency(lambda q: ann.index.search(q, K), queries)
            rows.append(
                {
                    **base,
                    "method": f"hnsw M=32 efSearch={ef}",
                    "recall_at_10": round(_recall(found, truth), 4),
                    **lat,
                    "build_s": ann.meta["build_seconds"],
                    "size_mb": size,
                }
            )
        log(f"{kind} {n:,}: hnsw built in {ann.meta['build_seconds']} s")
        del ann
    return rows


def _markdown(rows: list[dict], meta: dict[str, Any], start_load: Any) -> str:
    lines = [
        "# ANN index vs brute force (`benchmarks/ann.py`)",
        "",
        f"Machine: {machine_line(meta['machine'])}. {load_line(start_load, meta['load_end'])}. The machine is "
        "shared with other jobs, so the latencies are pessimistic. One run, "
        f"{meta['date']}, `{meta['command']}`, faiss {meta['faiss']}.",
        "",
        f"Items are float32 x {DIMS} dims; recall@10 is against exact inner-product search (faiss "
        f"IndexFlatIP) on {meta['queries']} queries; latency is one query at a time (batch 1), p50/p99 "
        "over up to that many queries (fewer for the slow brute force). Size = index file on disk "
        "(brute force: the embedding matrix).",
        "",
        "**Random Gaussian vectors are the hardest case for an ANN index** (no structure to exploit); "
        "the `clustered` rows (1,000 Gaussian clusters, queries near the centres) are closer to trained "
        "embeddings.",
        "",
        *(
            [f"**Not measured (the run was stopped before them): {', '.join(meta['not_measured'])}.**", ""]
            if meta["not_measured"]
            else []
        ),
        "| data | items | method | recall@10 | p50 ms | p99 ms | build s | size MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['items']:,} | {r['method']} | {r['recall_at_10']:.3f} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['build_s']:.1f} | {r['size_mb']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Measures every size and writes ``ann.json`` and ``ann.md`` to ``--out``."""
    import faiss

    machine = describe_machine()
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", flush=True)

    log(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, load {machine['load_average']}")
    jobs = sorted([(n, False) for n in args.sizes] + [(n, True) for n in args.clustered or []])
    rows: list[dict[str, Any]] = []
    os.makedirs(args.out, exist_ok=True)
    for done, (n, clustered) in enumerate(jobs, start=1):
        rows += _measure_size(n, args, clustered=clustered, log=log)
        # written after every size, so a run stopped early still reports what it measured
        meta = {**provenance(SCRIPT, argv, machine), "faiss": faiss.__version__, "queries": args.queries}
        meta["not_measured"] = [f"{'clustered' if c else 'random'} {m:,}" for m, c in jobs[done:]]
        write_json(os.path.join(args.out, "ann.json"), {**meta, "rows": rows})
        write_text(os.path.join(args.out, "ann.md"), _markdown(rows, meta, machine["load_average"]))
        log(f"wrote {args.out}/ann.json and ann.md ({done} of {len(jobs)} sizes)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python benchmarks/ann.py [options]``."""
    return common.script_main(SCRIPT, __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
