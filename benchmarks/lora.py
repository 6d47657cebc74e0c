"""LoRA vs top-1-layer fine-tuning vs the frozen text tower, in one reduced, shared setup.

Issue 10 part 4 asks for frozen, LoRA rank 4 / 8 and top-1-layer fine-tuning on protocols A
(``loo``) and B (``cold-items``), with seconds per epoch. Full fine-tuning on the 2-core CPU
takes hours per epoch (docs/fine_tuning.md), so every contender runs the SAME reduced setup:

* the config (default: the built-in MovieLens-100K + MiniLM pipeline) with
  ``model.history_encoder=mean``, the ``bert`` variant (ids + text + categories);
* a WARM START: the frozen model is trained first (``--warm-epochs``, early stopping on VALID
  NDCG@10), and every contender, ``frozen`` included, starts from its tower weights (LoRA's
  B = 0 and the untouched top layer make each start equal to it) and trains ``--epochs`` more
  epochs at ``--batch-size`` (the best VALID epoch is kept);
* the lower BERT layers are frozen for every contender, so their output is computed ONCE per
  catalog item (``lower_hidden_states``) and each step runs only the TOP transformer layer
  over the items it needs (``model.loss=full_softmax`` embeds the whole catalog each step);
* ``ft1`` trains that top layer (``text.fine_tune_layers=1``); ``lora4``/``lora8`` train LoRA
  adapters of rank 4/8 on its query/value (``text.lora_rank``, ``text.lora_layers=1``); BERT's
  weights stay frozen; ``frozen`` uses the precomputed table (the default path).

The top-layer shortcut is checked against the full BERT of the same tower at the start (the
largest difference is reported). Seconds per epoch are training steps only (no validation),
the median over the epochs after the first (which includes tracing). TEST Recall@10 and
NDCG@10 are means over users with their standard error. Outputs: ``lora.json`` and
``lora.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common
import numpy as np
from machine import command_line, describe_machine, load_line, machine_line

CONTENDERS = {
    "frozen": {},
    "lora4": {"text.lora_rank": 4, "text.lora_layers": 1},
    "lora8": {"text.lora_rank": 8, "text.lora_layers": 1},
    "ft1": {"text.fine_tune_layers": 1},
}
BASE_OVERRIDES = ("model.history_encoder=mean",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options."""
    common.add_config_arguments(
        parser,
        out_help="folder for lora.json/.md",
        model_dir_help="text cache and run folders (runs are retrained, never resumed)",
        set_help="override a config field for every contender (repeatable)",
    )
    parser.add_argument(
        "--protocols", default="loo,cold-items", help="comma-separated (default loo,cold-items)"
    )
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per contender (default 2)")
    parser.add_argument(
        "--warm-epochs", type=int, default=20, help="epochs of the frozen warm start (default 20)"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="batch of the contenders (default 128)")
    parser.add_argument("--quick", action="store_true", help="small data slice (smoke test)")
    parser.add_argument("--report-name", default="lora", help="<out>/<name>.md and .json (default lora)")
    parser.add_argument("--rerender", action="store_true", help="only rewrite <name>.md from <name>.json")
    parser.set_defaults()


# ----------------------------------------------------------------------------- top layer only


def lower_hidden_states(encoder: Any, token_ids: np.ndarray, mask: np.ndarray, batch: int = 128) -> Any:
    """The output of every BERT layer but the top one, per catalog item, cut to the longest text.

    Returns:
        (hidden ``[num_items, width, hidden]`` float32, mask ``[num_items, width]`` int32).
    """
    import tensorflow as tf

    main = encoder.bert.bert
    width = int(max(mask.sum(axis=1).max(), 1))
    ids, mask = token_ids[:, :width].astype(np.int32), mask[:, :width].astype(np.int32)

    @tf.function(input_signature=[tf.TensorSpec([None, width], tf.int32)] * 2)
    def lower(ids_batch: Any, mask_batch: Any) -> Any:
        hidden = main.embeddings(input_ids=ids_batch, token_type_ids=tf.zeros_like(ids_batch), training=False)
        extended = (1.0 - tf.cast(mask_batch[:, None, None, :], hidden.dtype)) * -10000.0
        for layer in main.encoder.layer[:-1]:
            hidden = layer(hidden, extended, None, None, None, None, False, training=False)[0]
        return hidden

    parts = [
        lower(tf.constant(ids[s : s + batch]), tf.constant(mask[s : s + batch]))
        for s in range(0, len(ids), batch)
    ]
    return tf.concat(parts, axis=0).numpy(), mask


def use_top_layer_only(tower: Any, hidden: np.ndarray, mask: np.ndarray) -> None:
    """Makes ``tower`` encode item texts by running only BERT's top layer on ``hidden``."""
    import tensorflow as tf

    from tfrec_llm.text.pooling import masked_mean

    encoder = tower.text_encoder
    top = encoder.bert.bert.encoder.layer[-1]
    hidden_table = tf.constant(hidden)
    mask_table = tf.constant(mask)

    def encode(items: Any, training: bool | None) -> Any:
        states = tf.gather(hidden_table, items)
        item_mask = tf.gather(mask_table, items)
        width = tf.maximum(tf.reduce_max(tf.reduce_sum(item_mask, axis=1)), 1)
        states, item_mask = states[:, :width], item_mask[:, :width]
        extended = (1.0 - tf.cast(item_mask[:, None, None, :], states.dtype)) * -10000.0
        out = top(states, extended, None, None, None, None, False, training=bool(training))[0]
        pooled = masked_mean(out, item_mask) if encoder.pooling == "mean" else out[:, 0, :]
        return tf.math.l2_normalize(pooled, axis=-1) if encoder.normalize else pooled

    tower._encode_text = encode


# ----------------------------------------------------------------------------- metrics


def per_user_metrics(scorer: Any, task: Any, item_ids: np.ndarray) -> dict[str, float]:
    """TEST Recall@10 / NDCG@10: mean over users and standard error (per-user evaluation)."""
    from tfrec_llm.evaluation.compare import user_evaluation

    values = user_evaluation(scorer, task, item_ids, ks=(10,)).values
    out: dict[str, float] = {"users": len(task.user_ids)}
    for key in ("recall@10", "ndcg@10"):
        array = np.asarray(values[key])
        out[key] = float(array.mean())
        out[f"{key} se"] = float(array.std(ddof=1) / np.sqrt(array.size))
    return out


# ----------------------------------------------------------------------------- one contender


def _epoch_timer() -> Any:
    import tf_keras as keras

    class EpochTimer(keras.callbacks.Callback):
        """Seconds from each epoch's start to its last training step (validation excluded)."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self.steps: list[int] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = self.last = time.perf_counter()
            self.count = 0

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.last = time.perf_counter()
            self.count += 1

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(self.last - self.start)
            self.steps.append(self.count)

    return EpochTimer()


_TOWER_PARTS = ("id_embedding", "text_projection", "category_projection", "fusion")


def copy_towers(source: Any, target: Any) -> int:
    """Copies the trainable tower weights of ``source`` (frozen text table) into ``target``.

    Returns:
        How many weights were copied; every trainable weight of ``target`` outside BERT is one.
    """
    target.query_tower.set_weights(source.query_tower.get_weights())
    copied = len(source.query_tower.weights)
    for part in _TOWER_PARTS:
        layer = getattr(source.item_tower, part)
        if layer is not None:
            getattr(target.item_tower, part).set_weights(layer.get_weights())
            copied += len(layer.weights)
    encoder = target.item_tower.text_encoder
    bert = {w.ref() for w in encoder.trainable_weights} if encoder is not None else set()
    outside = [w for w in target.trainable_weights if w.ref() not in bert]
    assert len(outside) <= copied, (len(outside), copied)
    return copied


def run_contender(
    cfg: Any, prepared: Any, name: str, epochs: int, run_dir: str, warm: Any = None
) -> dict[str, Any]:
    """Trains one contender (from the ``warm`` model's tower weights, if given) and measures it."""
    import tensorflow as tf

    from tfrec_llm.config import replace
    from tfrec_llm.evaluation.protocols import evaluate
    from tfrec_llm.experiments.builders import build_two_tower
    from tfrec_llm.experiments.prepare import tokenize_item_texts
    from tfrec_llm.models.scorer import TwoTowerScorer
    from tfrec_llm.training.trainer import train_two_tower

    vcfg = replace(cfg, **{k.replace(".", "__"): v for k, v in CONTENDERS[name].items()})
    split, catalog = prepared.split, prepared.catalog
    tokens = tokenize_item_texts(vcfg.text, list(prepared.item_texts)) if vcfg.text.runs_bert else None
    model = build_two_tower(vcfg.model, catalog, prepared.text_embeddings, vcfg.text, tokens)
    row: dict[str, Any] = {"contender": name, "overrides": CONTENDERS[name]}
    if warm is not None:
        row["weights_copied"] = copy_towers(warm, model)
    if tokens is not None:
        tower = model.item_tower
        reference = tower._encode_text(tf.range(catalog.num_items), training=False).numpy()
        started = time.perf_counter()
        hidden, mask = lower_hidden_states(tower.text_encoder, *tokens)
        row["lower_layers_seconds"] = time.perf_counter() - started
        use_top_layer_only(tower, hidden, mask)
        shortcut = tower._encode_text(tf.range(catalog.num_items), training=False).numpy()
        row["shortcut_max_abs_diff"] = float(np.abs(shortcut - reference).max())
        row["trainable_text_weights"] = int(
            sum(np.prod(w.shape) for w in tower.text_encoder.trainable_weights)
        )
    if warm is not None:  # every contender starts from the warm model's item vectors
        start = model.all_candidate_embeddings() - warm.all_candidate_embeddings()
        row["start_max_abs_diff"] = float(np.abs(start).max())
    timer = _epoch_timer()
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    result = train_two_tower(
        vcfg,
        split,
        catalog,
        lambda: model,
        run_dir,
        validation_metric=lambda m: evaluate(
            TwoTowerScorer(m, catalog), split.valid, split.item_ids, ks=(10,)
        ),
        epochs=epochs,
        verbose=0,
        callbacks=[timer],
    )
    row["fit_seconds"] = time.perf_counter() - started
    row["epoch_seconds"] = timer.seconds
    row["steps_per_epoch"] = timer.steps[0] if timer.steps else 0
    later = timer.seconds[1:] or timer.seconds
    row["seconds_per_epoch"] = float(np.median(later))
    row["best_epoch"] = result.best_epoch + 1
    row["valid_ndcg@10"] = float(result.valid_metrics.get("ndcg@10", float("nan")))
    row["test"] = per_user_metrics(TwoTowerScorer(result.model, catalog), split.test, split.item_ids)
    row["model"] = result.model
    return row


# ----------------------------------------------------------------------------- report


def render_markdown(results: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> str:
    """The tables per protocol, the target line and what was not measured."""
    lines = [
        f"# LoRA vs top-1 fine-tuning vs frozen text tower ({meta['date']})",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['machine']}; {meta['load']}. The machine is shared with about six other "
        "jobs, so the seconds are pessimistic and noisy. One run per row (seed "
        f"{meta['seed']}).",
        "",
        "Reduced setup, the same for every row: " + meta["setup"],
        "",
    ]
    for protocol, rows in results.items():
        lines += [
            f"## Protocol {protocol}",
            "",
            "| contender | trainable BERT params | s / epoch (train steps) | 1st epoch s | steps / epoch | "
            "best epoch | VALID NDCG@10 | TEST Recall@10 (± SE) | TEST NDCG@10 (± SE) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            test = row["test"]
            lines.append(
                f"| {row['contender']} | {row.get('trainable_text_weights', 0):,} | "
                f"{row['seconds_per_epoch']:.1f} | {row['epoch_seconds'][0]:.1f} | {row['steps_per_epoch']} | "
                f"{row['best_epoch']} | {row['valid_ndcg@10']:.4f} | "
                f"{test['recall@10']:.4f} ± {test['recall@10 se']:.4f} | "
                f"{test['ndcg@10']:.4f} ± {test['ndcg@10 se']:.4f} |"
            )
        lines += ["", *_target_lines(rows), ""]
        starts = [
            f"{r['contender']} {r['start_max_abs_diff']:.1e}" for r in rows if "start_max_abs_diff" in r
        ]
        if starts:
            lines += [
                "Each row's item vectors before its training vs the warm start's, largest |difference|: "
                f"{', '.join(starts)}.",
                "",
            ]
        diffs = [
            f"{r['contender']} {r['shortcut_max_abs_diff']:.1e}" for r in rows if "shortcut_max_abs_diff" in r
        ]
        if diffs:
            lines += [
                "Top-layer shortcut vs the full BERT of the same tower, largest |difference| of the "
                f"item text vectors at the start: {', '.join(diffs)}.",
                "",
            ]
    if meta["not_measured"]:
        lines += ["Not measured: " + "; ".join(meta["not_measured"]) + ".", ""]
    return "\n".join(lines)


def _target_lines(rows: list[dict[str, Any]]) -> list[str]:
    by_name = {r["contender"]: r for r in rows}
    if "ft1" not in by_name:
        return ["Target not checked: ft1 was not run."]
    ft = by_name["ft1"]
    out = []
    for name in ("lora4", "lora8"):
        if name not in by_name:
            continue
        lora = by_name[name]
        gap = ft["test"]["recall@10"] - lora["test"]["recall@10"]
        se = ft["test"]["recall@10 se"]
        verdict = (
            "within one SE" if abs(gap) <= se else ("ABOVE ft1 by more" if gap < 0 else "BELOW ft1 by more")
        )
        ratio = lora["seconds_per_epoch"] / ft["seconds_per_epoch"]
        out.append(
            f"- {name}: TEST Recall@10 of ft1 minus {name} = {gap:+.4f} (one SE of ft1 = {ft['test']['recall@10 se']:.4f}: "
            f"{verdict}); epoch time {ratio:.2f}× ft1's "
            f"({'meets' if ratio <= 1 / 3 else 'misses'} the ≤ 1/3 target)."
        )
    return out


def run(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Runs the contenders per protocol and writes lora.json/.md."""
    if args.rerender:
        data = json.loads((Path(args.out) / f"{args.report_name}.json").read_text())
        (Path(args.out) / f"{args.report_name}.md").write_text(render_markdown(data["results"], data["meta"]))
        return 0
    common.setup_environment()
    from tfrec_llm.config import replace
    from tfrec_llm.experiments.prepare import prepare
    from tfrec_llm.experiments.runs import variant_config

    args.overrides = list(BASE_OVERRIDES) + list(args.overrides)
    cfg = variant_config(common.build_config(args), "bert")
    args.warm_batch_size = cfg.train.batch_size
    cfg = replace(cfg, train__epochs=args.epochs, train__batch_size=args.batch_size)
    start_load = list(os.getloadavg())
    machine = describe_machine()
    protocols = [p for p in args.protocols.split(",") if p]
    names = [n for n in args.contenders.split(",") if n]
    results: dict[str, list[dict[str, Any]]] = {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = common.load_data(cfg, args.quick)
    for protocol in protocols:
        prepared = prepare(cfg, protocol, with_text=True, dataset=dataset)
        print(f"[lora] {protocol} warm start ...", flush=True)
        warm_cfg = replace(cfg, train__epochs=args.warm_epochs, train__batch_size=args.warm_batch_size)
        warm_dir = os.path.join(cfg.train.model_dir, "lora_bench", protocol, "warm")
        start = run_contender(warm_cfg, prepared, "frozen", args.warm_epochs, warm_dir)
        warm = start.pop("model")
        start["contender"] = "warm start (frozen)"
        results.setdefault(protocol, []).append(start)
        print(f"[lora] {protocol} warm: {json.dumps(start, default=str)}", flush=True)
        for name in names:
            print(f"[lora] {protocol} {name} ...", flush=True)
            run_dir = os.path.join(cfg.train.model_dir, "lora_bench", protocol, name)
            row = run_contender(cfg, prepared, name, args.epochs, run_dir, warm)
            row.pop("model")
            results.setdefault(protocol, []).append(row)
            print(f"[lora] {protocol} {name}: {json.dumps(row, default=str)}", flush=True)
            _write(out, results, cfg, args, argv, machine, start_load, protocols, names)
    _write(out, results, cfg, args, argv, machine, start_load, protocols, names)
    return 0


def _write(
    out: Path,
    results: Any,
    cfg: Any,
    args: Any,
    argv: Any,
    machine: Any,
    start_load: Any,
    protocols: Any,
    names: Any,
) -> None:
    import datetime

    done = {(p, r["contender"]) for p, rows in results.items() for r in rows}
    not_measured = [f"{p} {n}" for p in protocols for n in names if (p, n) not in done]
    not_measured += [f"{p} (not part of this run)" for p in ("loo", "cold-items") if p not in protocols]
    meta = {
        "date": datetime.date.today().isoformat(),
        "command": command_line("benchmarks/lora.py", list(argv if argv is not None else sys.argv[1:])),
        "machine": machine_line(machine),
        "load": load_line(start_load, list(os.getloadavg())),
        "seed": cfg.train.seed,
        "setup": (
            f"ML-100K{' (--quick slice)' if args.quick else ''}, variant bert with "
            f"model.history_encoder={cfg.model.history_encoder}, objective {cfg.model.objective}, "
            f"loss {cfg.model.loss}, learning rate {cfg.train.learning_rate}, MiniLM max_length "
            f"{cfg.text.max_length}. Warm start: the frozen model trained up to {args.warm_epochs} epochs "
            f"at batch {args.warm_batch_size} (early stopping, best VALID NDCG@10 kept; the first row). "
            f"Every other row starts from its tower weights and trains {args.epochs} more epochs at "
            f"batch {cfg.train.batch_size} (best VALID NDCG@10 epoch kept); "
            "LoRA alpha "
            f"{cfg.text.lora_alpha}. Lower 5 BERT layers precomputed once per item (all rows: "
            "they are frozen everywhere); each step runs only the top layer. Seconds per epoch: "
            "median over epochs 2.. of the training steps' wall time (validation excluded)."
        ),
        "not_measured": not_measured,
    }
    (out / f"{args.report_name}.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2, default=str) + "\n"
    )
    (out / f"{args.report_name}.md").write_text(render_markdown(results, meta))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    return common.script_main("lora.py", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
