"""Speed benchmark: text encoding, two-tower training and exported top-K latency, as ratios.

Everything runs on one machine in one process; contenders are interleaved (round r runs every
contender once, in turn) and each figure is the median over rounds, so a noisy neighbour on a
shared machine slows every contender alike. The machine and its load average are recorded.

(a) Item-text encoding, MiniLM, the data set's item texts (1,682 for MovieLens-100K):
    ``tfrec_llm.text.encoder.encode_texts`` (tokenize once, sort by length, pad each batch to
    its longest text rounded up to 8) against a plain loop over a ``TFBertModel`` (Hugging Face
    tokenizer, input order, fixed padding to 64 and, to separate the two effects, padding to
    the longest text of each unsorted batch). Both forward passes are the same ``tf.function``
    (dynamic ``[None, None]`` signature), so the difference is padding and order only. Each is
    also given as a fraction of the machine's measured fp32 matmul rate (2048x2048
    ``tf.function`` matmul, measured in the same run), counting

        FLOPs(text of L tokens) = 2 * P * L + 4 * n_layers * L^2 * hidden

    with P = n_layers * (4 * hidden^2 + 2 * hidden * intermediate) the weights every token is
    multiplied by (Q, K, V, output projection, two feed-forward matrices; embeddings are lookups,
    biases, LayerNorm, softmax and pooling are left out) and the second term QK^T plus
    attention x V. "useful" counts the real tokens, "executed" the padded width the machine ran.
(b) Two-tower training examples/s, one custom ``tf.GradientTape`` loop for all: the real
    ``TwoTowerModel`` (variant bert, precomputed text embeddings, history 50); a minimal two-tower
    (user-id query, projected text candidate) reading precomputed embeddings; the same minimal
    model with ``TextEncoder`` (frozen MiniLM, in-graph tokenization) inside the candidate tower,
    encoding each batch's distinct items every step.
(c) Top-K latency of the exported retrieval SavedModel (``export_retrieval`` into a temporary
    folder, ``tf.saved_model.load``, the ``serving_default`` signature), batch 1 and 256, p50/p95.
    The model is built but not trained: the latency does not depend on the weight values.

Usage:
    python benchmarks/speed.py --out benchmarks/results     # ~15 min on 2 cores
    python benchmarks/speed.py --quick --out /tmp/s --model-dir /tmp/s/runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tfrec_llm  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import (  # noqa: E402
    command_line,
    describe_machine,
    load_line,
    machine_line,
    write_text_atomic,
)

DEFAULT_MODEL_DIR = os.path.join("runs", "bench")
DEFAULT_OUT = os.path.join("benchmarks", "results")
FIXED_LENGTH = 64
MATMUL_N = 2048


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of this benchmark (shared by the script and ``tfrec-llm benchmark``)."""
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"folder for speed.json/.md (default {DEFAULT_OUT})"
    )
    parser.add_argument("--config", default=None, help="YAML experiment config (default: built-in)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one config field (repeatable)",
    )
    parser.add_argument(
        "--model-dir",
        default=DEFAULT_MODEL_DIR,
        help=f"train.model_dir (its text_cache is reused; default {DEFAULT_MODEL_DIR})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds per section (default 3 for (a) and (b), 200 for (c))",
    )
    parser.add_argument(
        "--encode-batch-size", type=int, default=128, help="texts per forward pass in (a)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 96 texts, 2 rounds, few steps (CI)"
    )


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return float(ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2)


def _percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def interleave(contenders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Runs every contender once per round, in turn (start rotates); returns seconds per call."""
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------- matmul


class MatmulProbe:
    """An ``n x n`` fp32 ``tf.function`` matmul (2 n^3 FLOPs per call), run ``calls`` times."""

    def __init__(self, n: int = MATMUL_N, calls: int = 3) -> None:
        import tensorflow as tf

        self.n, self.calls = n, calls
        self.flops = 2 * n**3 * calls
        self.a = tf.random.stateless_normal([n, n], seed=[1, 2])
        self.b = tf.random.stateless_normal([n, n], seed=[3, 4])
        self.function = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
        self.function(self.a, self.b).numpy()  # trace

    def __call__(self) -> None:
        for _ in range(self.calls):
            self.function(self.a, self.b).numpy()


def matmul_gflops(rounds: int, n: int = MATMUL_N) -> dict[str, Any]:
    """Median fp32 GFLOP/s of the matmul probe, measured on its own."""
    probe = MatmulProbe(n, calls=1)
    seconds = interleave({"matmul": probe}, max(rounds, 5))["matmul"]
    median = _median(seconds)
    return {
        "n": n,
        "flops_per_call": 2 * n**3,
        "median_seconds": median,
        "gflops": probe.flops / median / 1e9,
        "calls": len(seconds),
    }


# ----------------------------------------------------------------------------- (a) encoding


def bert_flops(lengths: Sequence[int], config: Any) -> float:
    """Forward FLOPs of BERT over sequences of the given lengths (formula in the module doc)."""
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    params = layers * (4 * hidden * hidden + 2 * hidden * inter)
    return float(sum(2 * params * L + 4 * layers * L * L * hidden for L in lengths))


class PlainBertLoop:
    """The baseline: Hugging Face tokenizer + ``TFBertModel`` in input order, mean pool, L2."""

    def __init__(self, model_path: str, batch_size: int, padding: str, bert: Any = None) -> None:
        import tensorflow as tf
        from transformers import BertTokenizerFast

        from tfrec_llm.text.bert_loader import load_bert

        self.tokenizer = BertTokenizerFast.from_pretrained(model_path, local_files_only=True)
        self.bert = bert if bert is not None else load_bert(model_path)
        self.batch_size = batch_size
        self.padding = padding  # "max_length" (fixed 64) or "longest"
        self.widths: list[tuple[int, int]] = []  # (rows, padded width) per batch of the last call
        spec = tf.TensorSpec([None, None], tf.int32)

        @tf.function(input_signature=[spec, spec])
        def forward(ids: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
            hidden = self.bert(
                input_ids=ids,
                attention_mask=mask,
                token_type_ids=tf.zeros_like(ids),
                training=False,
            ).last_hidden_state
            m = tf.cast(mask, hidden.dtype)[:, :, tf.newaxis]
            pooled = tf.reduce_sum(hidden * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1e-9)
            return tf.math.l2_normalize(pooled, axis=-1)

        self.forward = forward

    def __call__(self, texts: Sequence[str]) -> Any:
        import numpy as np

        out, self.widths = [], []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=self.padding,
                truncation=True,
                max_length=FIXED_LENGTH,
                return_tensors="np",
            )
            ids = batch["input_ids"].astype(np.int32)
            self.widths.append(ids.shape)
            out.append(self.forward(ids, batch["attention_mask"].astype(np.int32)).numpy())
        return np.concatenate(out)


def ours_widths(lengths: Sequence[int], batch_size: int, max_length: int) -> list[tuple[int, int]]:
    """(rows, padded width) per batch of ``encode_texts`` (sorted, rounded up to 8)."""
    import numpy as np

    ordered = np.sort(np.asarray(lengths), kind="stable")
    shapes = []
    for start in range(0, len(ordered), batch_size):
        rows = ordered[start : start + batch_size]
        longest = int(rows.max())
        shapes.append((len(rows), min(-(-longest // 8) * 8, max(longest, max_length))))
    return shapes


def bench_encoding(encoder: Any, texts: list[str], rounds: int, batch_size: int) -> dict[str, Any]:
    """Section (a): texts/s and FLOP fractions of our encoder vs the plain loops.

    The plain loops run the encoder's own ``TFBertModel`` (same weights, same class) in their own
    ``tf.function``, so only tokenization, padding and order differ. The matmul probe runs as one
    more interleaved contender, so the fractions compare rates measured under the same load.
    """
    import numpy as np

    from tfrec_llm.text.encoder import _tokenize, encode_texts

    path = encoder.model_path
    fixed = PlainBertLoop(path, batch_size, "max_length", bert=encoder.bert)
    longest = PlainBertLoop(path, batch_size, "longest", bert=encoder.bert)
    lengths = [len(ids) for ids in _tokenize(encoder, texts)]
    contenders = {
        "tfrec_llm encode_texts (sorted, pad to longest, x8)": lambda: encode_texts(
            encoder, texts, batch_size
        ),
        "plain TFBertModel loop, pad to longest (unsorted)": lambda: longest(texts),
        f"plain TFBertModel loop, fixed padding to {FIXED_LENGTH}": lambda: fixed(texts),
    }
    results = {name: fn() for name, fn in contenders.items()}  # warm-up: traces every batch shape
    ours = results[next(iter(results))]
    max_diff = {name: float(np.abs(vec - ours).max()) for name, vec in results.items()}
    probe = MatmulProbe()
    times = interleave({**contenders, "matmul probe": probe}, rounds)
    matmul_seconds = times.pop("matmul probe")
    matmul = probe.flops / _median(matmul_seconds) / 1e9
    shapes = {
        next(iter(contenders)): ours_widths(lengths, batch_size, encoder.max_length),
        list(contenders)[1]: list(longest.widths),
        list(contenders)[2]: list(fixed.widths),
    }
    useful = bert_flops(lengths, encoder.bert.config)
    rows = []
    for name, seconds in times.items():
        median = _median(seconds)
        executed = sum(bert_flops([w] * n, encoder.bert.config) for n, w in shapes[name])
        padded_tokens = sum(n * w for n, w in shapes[name])
        rows.append(
            {
                "contender": name,
                "texts": len(texts),
                "median_seconds": median,
                "texts_per_second": len(texts) / median,
                "seconds": seconds,
                "padded_tokens": padded_tokens,
                "real_tokens": int(sum(lengths)),
                "useful_gflops": useful / median / 1e9,
                "executed_gflops": executed / median / 1e9,
                "useful_fraction_of_matmul": useful / median / 1e9 / matmul,
                "executed_fraction_of_matmul": executed / median / 1e9 / matmul,
                "max_abs_diff_vs_ours": max_diff[name],
            }
        )
    return {
        "batch_size": batch_size,
        "matmul_gflops_interleaved": matmul,
        "matmul_seconds": matmul_seconds,
        "mean_tokens": float(np.mean(lengths)),
        "max_tokens": int(max(lengths)),
        "flops_useful_total": useful,
        "rows": rows,
    }


# ----------------------------------------------------------------------------- (b) training


def _minimal_two_tower(
    num_users: int, candidate: Callable[[Any], Any], dim: int = 64
) -> tuple[Any, Any]:
    """A minimal two-tower: user-id query, ``candidate(items)`` -> [batch, dim] candidate."""
    import tensorflow_recommenders as tfrs
    import tf_keras as keras

    users = keras.layers.Embedding(num_users + 1, dim)
    task = tfrs.tasks.Retrieval(temperature=0.1, metrics=None)

    def loss_fn(batch: dict[str, Any]) -> Any:
        return task(users(batch["user"]), candidate(batch["item"]), compute_metrics=False)

    return users, loss_fn


def _train_loop(
    variables_fn: Callable[[], list[Any]],
    loss_fn: Callable[[dict[str, Any]], Any],
    batches: list[dict[str, Any]],
    learning_rate: float,
) -> Callable[[int], None]:
    """A ``tf.function`` Adam step over the given batches; returns ``run(steps)``."""
    import tensorflow as tf
    import tf_keras as keras

    optimizer = keras.optimizers.Adam(learning_rate)

    @tf.function(reduce_retracing=True)
    def step(batch: dict[str, Any]) -> Any:
        with tf.GradientTape() as tape:
            loss = loss_fn(batch)
        variables = variables_fn()
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    position = [0]

    def run(steps: int) -> None:
        for _ in range(steps):
            step(batches[position[0] % len(batches)]).numpy()
            position[0] += 1

    return run


def bench_training(
    cfg: Any, prepared: Any, encoder: Any, rounds: int, steps: dict[str, int]
) -> dict[str, Any]:
    """Section (b): training examples/s, precomputed text vs BERT in the candidate tower."""
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    from tfrec_llm.data.tfdata import make_dataset, training_examples
    from tfrec_llm.experiments.builders import build_two_tower
    from tfrec_llm.training.experiment import variant_config

    vcfg = variant_config(cfg, "bert")
    catalog = prepared.catalog
    examples = training_examples(prepared.split.train, catalog, vcfg.model.history_length)
    batch_size = cfg.train.batch_size
    dataset = make_dataset(examples, batch_size, cfg.train.shuffle_buffer, seed=cfg.train.seed)
    batches = list(dataset.take(max(steps.values()) * (rounds + 1) + 1))
    batches = [b for b in batches if int(b["item"].shape[0]) == batch_size] or batches

    model = build_two_tower(vcfg.model, catalog, prepared.text_embeddings)
    real = _train_loop(
        lambda: model.trainable_variables,
        lambda b: model.compute_loss(b, training=True) + tf.add_n(model.losses or [0.0]),
        batches,
        cfg.train.learning_rate,
    )

    table = tf.constant(prepared.text_embeddings, tf.float32)
    project_pre = keras.layers.Dense(64)
    users_pre, loss_pre = _minimal_two_tower(
        catalog.num_users, lambda i: project_pre(tf.gather(table, i))
    )
    pre = _train_loop(
        lambda: users_pre.trainable_variables + project_pre.trainable_variables,
        loss_pre,
        batches,
        cfg.train.learning_rate,
    )

    texts = tf.constant(list(prepared.item_texts))
    project_bert = keras.layers.Dense(64)

    def bert_candidate(items: Any) -> Any:
        unique, position = tf.unique(tf.cast(items, tf.int32))  # encode each distinct item once
        return tf.gather(project_bert(encoder(tf.gather(texts, unique))), position)

    users_bert, loss_bert = _minimal_two_tower(catalog.num_users, bert_candidate)
    in_graph = _train_loop(
        lambda: users_bert.trainable_variables + project_bert.trainable_variables,
        loss_bert,
        batches,
        cfg.train.learning_rate,
    )

    contenders = {
        "TwoTowerModel (bert variant), precomputed text": (real, steps["real"]),
        "minimal two-tower, precomputed text": (pre, steps["pre"]),
        "minimal two-tower, BERT in-graph (frozen MiniLM)": (in_graph, steps["bert"]),
    }
    for run, _ in contenders.values():
        run(1)  # trace + first step
    times = interleave(
        {name: (lambda r=run, s=n: r(s)) for name, (run, n) in contenders.items()}, rounds
    )
    distinct = float(np.mean([len(np.unique(b["item"].numpy())) for b in batches]))
    rows = []
    for name, seconds in times.items():
        n = contenders[name][1]
        rates = [n * batch_size / s for s in seconds]
        rows.append(
            {
                "contender": name,
                "batch_size": batch_size,
                "steps_per_round": n,
                "examples_per_second": _median(rates),
                "rates": rates,
            }
        )
    return {
        "batch_size": batch_size,
        "history_length": vcfg.model.history_length,
        "mean_distinct_items_per_batch": distinct,
        "rows": rows,
    }


# ----------------------------------------------------------------------------- (c) latency


def bench_latency(
    cfg: Any, prepared: Any, rounds: int, batches: Sequence[int] = (1, 256)
) -> dict[str, Any]:
    """Section (c): p50/p95 latency of the exported retrieval signature."""
    import numpy as np
    import tensorflow as tf

    from tfrec_llm.export.exporter import export_retrieval
    from tfrec_llm.experiments.builders import build_two_tower
    from tfrec_llm.training.experiment import user_histories, variant_config

    vcfg = variant_config(cfg, "bert")
    model = build_two_tower(vcfg.model, prepared.catalog, prepared.text_embeddings)
    histories = user_histories(prepared.split.train_valid)
    users = np.asarray(prepared.catalog.user_ids, dtype=object).astype(str)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="tfrec_speed_") as folder:
        start = time.perf_counter()
        version_dir = export_retrieval(vcfg, model, prepared.catalog, histories, folder, version=1)
        export_seconds = time.perf_counter() - start
        serve = tf.saved_model.load(version_dir).signatures["serving_default"]
        none = tf.zeros([0, 0], tf.string)
        k = tf.constant(10, tf.int32)
        requests = {b: [tf.constant(rng.choice(users, size=b)) for _ in range(8)] for b in batches}
        counter = [0]

        def call(b: int) -> None:
            out = serve(
                user_id=requests[b][counter[0] % 8],
                recent_item_ids=none,
                exclude_item_ids=none,
                k=k,
            )
            out["item_ids"].numpy()
            counter[0] += 1

        for b in batches:
            for _ in range(5):
                call(b)
        times = interleave({f"batch {b}": (lambda b=b: call(b)) for b in batches}, rounds)
    rows = []
    for b in batches:
        ms = [1000 * s for s in times[f"batch {b}"]]
        rows.append(
            {
                "batch": b,
                "p50_ms": _percentile(ms, 50),
                "p95_ms": _percentile(ms, 95),
                "p50_ms_per_query": _percentile(ms, 50) / b,
                "queries_per_second": 1000 * b / _percentile(ms, 50),
                "calls": len(ms),
            }
        )
    return {
        "catalog_items": prepared.catalog.num_items,
        "k": 10,
        "export_seconds": export_seconds,
        "rows": rows,
    }


# ----------------------------------------------------------------------------- report


def ratios(report: dict[str, Any]) -> dict[str, float]:
    """The headline ratios (larger = ours/precomputed faster)."""
    enc = {r["contender"]: r for r in report["encoding"]["rows"]}
    names = list(enc)
    train = {r["contender"]: r["examples_per_second"] for r in report["training"]["rows"]}
    tnames = list(train)
    return {
        "encode: ours / plain fixed-64": enc[names[0]]["texts_per_second"]
        / enc[names[2]]["texts_per_second"],
        "encode: plain pad-to-longest / plain fixed-64 (dynamic vs fixed padding)": enc[names[1]][
            "texts_per_second"
        ]
        / enc[names[2]]["texts_per_second"],
        "encode: ours / plain pad-to-longest (sorting)": enc[names[0]]["texts_per_second"]
        / enc[names[1]]["texts_per_second"],
        "train: minimal precomputed / minimal BERT in-graph": train[tnames[1]] / train[tnames[2]],
        "train: TwoTowerModel precomputed / minimal BERT in-graph": train[tnames[0]]
        / train[tnames[2]],
    }


def render_markdown(report: dict[str, Any]) -> str:
    """speed.md: the tables of the three sections and the ratios."""
    m = report["matmul"]
    enc, train, lat = report["encoding"], report["training"], report["latency"]
    lines = [
        "# Speed benchmark",
        "",
        f"- Machine: {machine_line(report['machine'])}; "
        f"{load_line(report['machine']['load_average'], report['load_end'])}",
        f"- Command: `{report['command']}` ({report['seconds']:.0f} s wall, {report['date']}); "
        f"medians over interleaved rounds.",
        f"- fp32 matmul {m['n']}x{m['n']} (`tf.function`): **{m['gflops']:.1f} GFLOP/s** alone "
        f"at the start (median of {m['calls']}), {report['matmul_end']['gflops']:.1f} at the end, "
        f"**{enc['matmul_gflops_interleaved']:.1f}** interleaved with the encoders in (a) (the "
        "rate the % columns divide by).",
        "",
        f"## (a) Item-text encoding, MiniLM, {enc['rows'][0]['texts']} texts, "
        f"batch {enc['batch_size']} "
        f"(mean {enc['mean_tokens']:.1f} tokens, max {enc['max_tokens']})",
        "",
        "FLOPs per text of L tokens = 2 * P * L + 4 * layers * L^2 * hidden, "
        "P = layers * (4 hidden^2 + "
        "2 hidden * intermediate) (attention projections + feed-forward; embeddings, biases, "
        "LayerNorm, softmax and pooling left out); useful = real tokens, executed = padded tokens. "
        "Both loops run the same `TFBertModel` in a `tf.function` with a `[None, None]` signature.",
        "",
        "| contender | texts/s | padded tokens | useful GFLOP/s | % of matmul (useful) "
        "| % of matmul (executed) |",
        "|---|---|---|---|---|---|",
    ]
    for r in enc["rows"]:
        lines.append(
            f"| {r['contender']} | {r['texts_per_second']:.0f} | {r['padded_tokens']} | "
            f"{r['useful_gflops']:.1f} | {100 * r['useful_fraction_of_matmul']:.0f}% | "
            f"{100 * r['executed_fraction_of_matmul']:.0f}% |"
        )
    lines += [
        "",
        f"## (b) Two-tower training, batch {train['batch_size']} (in-batch softmax; "
        f"{train['mean_distinct_items_per_batch']:.0f} distinct items per batch on average)",
        "",
        "| contender | examples/s |",
        "|---|---|",
    ]
    lines += [f"| {r['contender']} | {r['examples_per_second']:.0f} |" for r in train["rows"]]
    lines += [
        "",
        f"## (c) Exported retrieval SavedModel, top-{lat['k']} of {lat['catalog_items']} items "
        "(`serving_default` signature, in process)",
        "",
        "| batch | p50 ms | p95 ms | p50 ms/query | queries/s |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['batch']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p50_ms_per_query']:.3f} | "
        f"{r['queries_per_second']:.0f} |"
        for r in lat["rows"]
    ]
    lines += ["", "## Ratios", ""] + [f"- {k}: **{v:.2f}x**" for k, v in report["ratios"].items()]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Runs the three sections; prints the tables and writes speed.json and speed.md."""
    from datetime import UTC, datetime

    import tf_keras as keras

    from tfrec_llm.config import load_config, replace
    from tfrec_llm.text.encoder import TextEncoder
    from tfrec_llm.training.experiment import load_dataset, prepare, text_model_path

    started = time.perf_counter()
    machine = describe_machine()
    quick = args.quick
    overrides = (["train.batch_size=64", "model.history_length=10"] if quick else []) + list(
        args.overrides
    )
    cfg = replace(load_config(args.config, overrides), train__model_dir=args.model_dir)
    keras.utils.set_random_seed(cfg.train.seed)

    def log(message: str) -> None:
        print(f"{time.perf_counter() - started:7.1f}s {message}", flush=True)

    dataset = load_dataset(cfg.data)
    if quick:
        from quality import quick_subset

        dataset = quick_subset(dataset)
    prepared = prepare(cfg, "loo", dataset=dataset)
    texts = list(prepared.item_texts)[: 96 if quick else None]
    enc_rounds = args.rounds or (2 if quick else 3)
    log(f"data {dataset.name}: {len(texts)} item texts; {enc_rounds} rounds")

    matmul = matmul_gflops(enc_rounds * 3)
    log(f"matmul {matmul['gflops']:.1f} GFLOP/s")
    # One frozen MiniLM for (a) and (b), built as the config's text tower (max_length 64 in it).
    encoder = TextEncoder(
        text_model_path(cfg.text),
        max_length=cfg.text.max_length,
        pooling=cfg.text.pooling,
        trainable_layers=0,
    )
    encoding = bench_encoding(encoder, texts, enc_rounds, args.encode_batch_size)
    log("encoding done")
    steps = {"real": 2, "pre": 2, "bert": 1} if quick else {"real": 20, "pre": 20, "bert": 2}
    training = bench_training(cfg, prepared, encoder, enc_rounds, steps)
    log("training done")
    latency = bench_latency(cfg, prepared, args.rounds or (10 if quick else 200))
    log("latency done")
    matmul_end = matmul_gflops(enc_rounds * 3)
    report: dict[str, Any] = {
        "machine": {**machine, "tensorflow": describe_machine()["tensorflow"]},
        "load_end": describe_machine()["load_average"],
        "command": command_line(
            "benchmarks/speed.py", list(argv if argv is not None else sys.argv[1:])
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "matmul": matmul,
        "matmul_end": matmul_end,
        "encoding": encoding,
        "training": training,
        "latency": latency,
    }
    report["ratios"] = ratios(report)
    report["seconds"] = time.perf_counter() - started
    markdown = render_markdown(report)
    out = Path(args.out)
    write_text_atomic(out / "speed.json", json.dumps(report, indent=1, allow_nan=False) + "\n")
    write_text_atomic(out / "speed.md", markdown)
    print(markdown)
    log(f"wrote {out / 'speed.json'} and {out / 'speed.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python benchmarks/speed.py [options]``."""
    parser = argparse.ArgumentParser(
        prog="benchmarks/speed.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, argv)


if __name__ == "__main__":
    sys.exit(main())
