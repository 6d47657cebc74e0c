"""Speed benchmark, sections (b) and (c): two-tower training examples/s and exported top-K latency.

(b) One custom ``tf.GradientTape`` loop for all: the real ``TwoTowerModel`` (variant bert,
precomputed text embeddings); a minimal two-tower reading precomputed embeddings; the same with
a frozen ``TextEncoder`` inside the candidate tower. (c) p50/p95 latency of the exported
retrieval SavedModel's ``serving_default`` signature, in process.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import common


def percentile(values: Sequence[float], q: float) -> float:
    """numpy's (linear) ``q``-th percentile of ``values``."""
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


# ----------------------------------------------------------------------------- (b) training


def _minimal_two_tower(num_users: int, candidate: Callable[[Any], Any], dim: int = 64) -> tuple[Any, Any]:
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
    """Section (b): training examples/s, precomputed text vs BERT in the candidate tower.

    Measured on the ``mean`` variant (one example per interaction, in-batch softmax), whose
    batches the minimal loops below share; the next-item models train on windows instead.
    """
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    from tfrec_llm.data.tfdata import make_dataset, training_examples
    from tfrec_llm.experiments import variant_config
    from tfrec_llm.experiments.builders import build_two_tower

    vcfg = variant_config(cfg, "mean")
    catalog = prepared.catalog
    examples = training_examples(prepared.split.train, catalog, vcfg.model.history_length)
    batch_size = vcfg.train.batch_size
    dataset = make_dataset(examples, batch_size, cfg.train.shuffle_buffer, seed=cfg.train.seed)
    batches = list(dataset.take(max(steps.values()) * (rounds + 1) + 1))
    batches = [b for b in batches if int(b["item"].shape[0]) == batch_size] or batches

    model = build_two_tower(vcfg.model, catalog, prepared.text_embeddings)
    real = _train_loop(
        lambda: model.trainable_variables,
        lambda b: model.compute_loss(b, training=True) + tf.add_n(model.losses or [0.0]),
        batches,
        vcfg.train.learning_rate,
    )

    table = tf.constant(prepared.text_embeddings, tf.float32)
    project_pre = keras.layers.Dense(64)
    users_pre, loss_pre = _minimal_two_tower(catalog.num_users, lambda i: project_pre(tf.gather(table, i)))
    pre = _train_loop(
        lambda: users_pre.trainable_variables + project_pre.trainable_variables,
        loss_pre,
        batches,
        vcfg.train.learning_rate,
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
        vcfg.train.learning_rate,
    )

    contenders = {
        "TwoTowerModel (bert variant), precomputed text": (real, steps["real"]),
        "minimal two-tower, precomputed text": (pre, steps["pre"]),
        "minimal two-tower, BERT in-graph (frozen MiniLM)": (in_graph, steps["bert"]),
    }
    for run, _ in contenders.values():
        run(1)  # trace + first step
    times = common.time_calls(
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
                "examples_per_second": common.median(rates),
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


def bench_latency(cfg: Any, prepared: Any, rounds: int, batches: Sequence[int] = (1, 256)) -> dict[str, Any]:
    """Section (c): p50/p95 latency of the exported retrieval signature."""
    import numpy as np
    import tensorflow as tf

    from tfrec_llm.experiments import variant_config
    from tfrec_llm.experiments.builders import build_two_tower
    from tfrec_llm.experiments.prepare import user_histories
    from tfrec_llm.export.exporter import export_retrieval

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
        times = common.time_calls({f"batch {b}": (lambda b=b: call(b)) for b in batches}, rounds)
    rows = []
    for b in batches:
        ms = [1000 * s for s in times[f"batch {b}"]]
        rows.append(
            {
                "batch": b,
                "p50_ms": percentile(ms, 50),
                "p95_ms": percentile(ms, 95),
                "p50_ms_per_query": percentile(ms, 50) / b,
                "queries_per_second": 1000 * b / percentile(ms, 50),
                "calls": len(ms),
            }
        )
    return {
        "catalog_items": prepared.catalog.num_items,
        "k": 10,
        "export_seconds": export_seconds,
        "rows": rows,
    }
