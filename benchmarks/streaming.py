"""Streaming input at scale: synthetic logs of 1M, 10M and 30M interactions (issue 12).

For each size, in a fresh subprocess (so peak RSS is that size's alone):

1. **generation**: `write_synthetic_log` writes the log (users x 100k items x Zipf(1.0)
   popularity, short item texts) as Parquet shards, a chunk of users at a time: seconds, bytes.
2. **examples**: the same log's chunks go through `ExampleShardWriter` (``next_item`` windows,
   history length 20) into TFRecord shards: seconds, examples, bytes.
3. **input pipeline**: one full pass of `streaming_dataset` (batch 512, shuffle buffer 10,000,
   interleave + AUTOTUNE + prefetch): examples/s.
4. **training**: a small model (item embeddings 32-d, mean of the window's inputs, in-batch
   softmax on the last target) fed by the same streamed pipeline: examples/s over a fixed
   number of steps after warm-up steps.
5. **peak RSS** of the process (``VmHWM`` of /proc/self/status, ru_maxrss otherwise); it must
   stay within 1.5x from the smallest to the largest size.

The generated data is deleted after each size. Results: benchmarks/results/streaming.md/.json.

    python benchmarks/streaming.py                       # 1M, 10M, 30M
    python benchmarks/streaming.py --sizes 1000000,10000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from machine import describe_machine, load_line, machine_line

NUM_ITEMS = 100_000
HISTORY = 20
BATCH = 512
SHUFFLE = 10_000
MEAN_LENGTH = 20.0
SEED = 0
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "streaming")


def peak_rss_mib() -> float:
    """Peak resident memory of this process, in MiB (VmHWM, else ru_maxrss)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _disk_bytes(directory: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(directory) for f in files)


def _train_rate(pattern: str, warmup: int, steps: int, num_items: int = NUM_ITEMS) -> float:
    """Examples/s of ``steps`` training steps of a small model fed by the streamed shards."""
    import tensorflow as tf
    import tf_keras as keras

    from tfrec_llm.data.example_shards import streaming_dataset

    table = keras.layers.Embedding(num_items, 32)
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def step(batch: dict[str, tf.Tensor]) -> tf.Tensor:
        sequence = batch["sequence"]
        inputs, target = sequence[:, :-1], sequence[:, -1]
        with tf.GradientTape() as tape:
            mask = tf.cast(inputs >= 0, tf.float32)[..., None]
            query = tf.reduce_sum(table(tf.maximum(inputs, 0)) * mask, 1) / tf.maximum(
                tf.reduce_sum(mask, 1), 1.0
            )
            logits = tf.matmul(query, table(target), transpose_b=True)
            labels = tf.range(tf.shape(logits)[0])
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, table.trainable_variables)
        optimizer.apply_gradients(zip(grads, table.trainable_variables))
        return loss

    batches = iter(streaming_dataset(pattern, BATCH, SHUFFLE, seed=SEED).repeat())
    for _ in range(warmup):
        step(next(batches))
    start = time.perf_counter()
    for _ in range(steps):
        loss = step(next(batches))
    float(loss)
    return steps * BATCH / (time.perf_counter() - start)


def measure(size: int, workdir: str, warmup: int, steps: int, num_items: int = NUM_ITEMS) -> dict[str, Any]:
    """Every figure of one size (run in its own process)."""
    from tfrec_llm.data.example_shards import ExampleShardWriter, streaming_dataset
    from tfrec_llm.data.synthetic import synthetic_chunks, write_synthetic_log

    log_dir, shard_dir = os.path.join(workdir, "log"), os.path.join(workdir, "examples")
    row: dict[str, Any] = {"target_interactions": size}
    try:
        start = time.perf_counter()
        info = write_synthetic_log(log_dir, size, num_items, SEED, MEAN_LENGTH)
        row.update(interactions=info["interactions"], users=info["users"], log_bytes=info["bytes"])
        row["generation_s"] = round(time.perf_counter() - start, 1)
        shutil.rmtree(log_dir)

        start = time.perf_counter()
        with ExampleShardWriter(shard_dir, "next_item", HISTORY, num_items) as writer:
            for users, items, _ in synthetic_chunks(size, num_items, SEED, MEAN_LENGTH):
                writer.add(users, items)
        row["examples"] = writer.num_examples
        row["examples_write_s"] = round(time.perf_counter() - start, 1)
        row["example_bytes"] = _disk_bytes(shard_dir)
        pattern = os.path.join(shard_dir, "examples-*.tfrecord")

        start = time.perf_counter()
        seen = sum(int(b["user"].shape[0]) for b in streaming_dataset(pattern, BATCH, SHUFFLE, seed=SEED))
        row["pipeline_s"] = round(time.perf_counter() - start, 1)
        row["pipeline_examples_per_s"] = round(seen / (time.perf_counter() - start))
        row["train_examples_per_s"] = round(_train_rate(pattern, warmup, steps, num_items))
        row["train_steps"] = steps
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    row["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return row


def _report(rows: list[dict[str, Any]], machine: dict[str, Any], load_end: list[float], skipped: str) -> str:
    lines = [
        "# Streaming input: synthetic logs, streamed example shards",
        "",
        f"Machine: {machine_line(machine)}; {load_line(machine['load_average'], load_end)}. The machine "
        "is shared with about 6 other jobs, so the rates are pessimistic. One run, `python "
        "benchmarks/streaming.py` (see the script's docstring for what each column measures).",
        "",
        f"Setup: {NUM_ITEMS:,} items, Zipf exponent 1.0, mean {MEAN_LENGTH:g} interactions per user, "
        f"`next_item` windows of history length {HISTORY} (+1 target), batch {BATCH}, shuffle "
        f"buffer {SHUFFLE:,}. An example is one window (up to {HISTORY} trained positions), so the "
        "pipeline column also gives the interactions/s it covers. Training: a fixed number of "
        "steps after warm-up, not a full epoch. Each size runs in a fresh process; the data is "
        "deleted afterwards.",
        "",
        "| interactions | generation s | log MB | examples | examples write s | shards MB "
        "| pipeline examples/s (interactions/s) | training examples/s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['interactions']:,} | {r['generation_s']} | {r['log_bytes'] / 1e6:.1f} | {r['examples']:,} "
            f"| {r['examples_write_s']} | {r['example_bytes'] / 1e6:.1f} | {r['pipeline_examples_per_s']:,} "
            f"({r['pipeline_examples_per_s'] * r['interactions'] // r['examples']:,}) "
            f"| {r['train_examples_per_s']:,} | {r['peak_rss_mib']} |"
        )
    if len(rows) > 1:
        ratio = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
        verdict = "within" if ratio <= 1.5 else "NOT within"
        lines += ["", f"Peak RSS, largest / smallest size: {ratio:.2f}x ({verdict} the 1.5x bound)."]
    if skipped:
        lines += ["", skipped]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Runs every size in a subprocess and writes the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,10000000,30000000", help="comma-separated interactions")
    parser.add_argument("--warmup", type=int, default=20, help="training steps before timing")
    parser.add_argument("--steps", type=int, default=200, help="timed training steps")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", default=OUT, help="report path without extension")
    parser.add_argument("--skipped", default="", help="a sentence on sizes not run, for the report")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        import tfrec_llm  # noqa: F401  (Keras 2 before TensorFlow loads)

        print(json.dumps(measure(args.one, args.workdir, args.warmup, args.steps)))
        return 0
    machine = describe_machine()
    rows: list[dict[str, Any]] = []
    sizes = [int(s) for s in args.sizes.split(",")]
    for size in sizes:
        workdir = tempfile.mkdtemp(prefix=f"streaming-{size}-", dir=args.workdir)
        command = [sys.executable, os.path.abspath(__file__), "--one", str(size), "--workdir", workdir]
        command += ["--warmup", str(args.warmup), "--steps", str(args.steps)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
        pending = [f"{n:,}" for n in sizes[len(rows) :]]
        note = f"Not run (yet): {', '.join(pending)} interactions; the report is rewritten after each size."
        _write(args, argv, machine, rows, " ".join(filter(None, [args.skipped, note if pending else ""])))
    return 0


def _write(
    args: argparse.Namespace,
    argv: list[str] | None,
    machine: dict[str, Any],
    rows: list[dict[str, Any]],
    note: str,
) -> None:
    """Writes the JSON and Markdown reports of the sizes measured so far."""
    load_end = [round(v, 2) for v in os.getloadavg()]
    report = {
        "machine": machine,
        "load_end": load_end,
        "command": ["python", "benchmarks/streaming.py", *(argv or sys.argv[1:])],
        "rows": rows,
        "skipped": note,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    with open(args.out + ".md", "w", encoding="utf-8") as handle:
        handle.write(_report(rows, machine, load_end, note))


if __name__ == "__main__":
    sys.exit(main())
