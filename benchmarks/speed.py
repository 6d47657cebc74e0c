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
(d) The same latency for each history encoder of the query tower (``mean`` pooling, causal
    ``attention``, ``gru``, ``lstm``, ``cnn``) at the default sizes, with recent items in every
    request; untrained models again. ``--only encoder-latency`` runs (d) alone and writes
    ``latency.json`` and ``latency.md`` instead of speed.json/.md.

Modules: this script (options, the run, speed.md), ``speed_encoding.py`` (a), ``speed_training.py``
(b) and (c), ``speed_history.py`` (d), ``common.py`` and ``machine.py`` (shared with the other
benchmarks).

Usage:
    python benchmarks/speed.py --out benchmarks/results     # ~20 min on 2 cores
    python benchmarks/speed.py --only encoder-latency --out benchmarks/results
    python benchmarks/speed.py --quick --out /tmp/s --model-dir /tmp/s/runs
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common

common.setup_environment()  # before anything imports TensorFlow

from machine import describe_machine, load_line, machine_line, provenance  # noqa: E402
from speed_encoding import bench_encoding, matmul_gflops  # noqa: E402
from speed_history import bench_history_encoders, render_history_section  # noqa: E402
from speed_training import bench_latency, bench_training  # noqa: E402

from tfrec_llm.atomic_io import write_json, write_text  # noqa: E402

SCRIPT = "benchmarks/speed.py"
QUICK_OVERRIDES = ("train.batch_size=64", "model.history_length=10")
"""Config overrides of ``--quick`` (applied before the user's ``--set``)."""
ONLY = ("encoder-latency",)
"""Values of ``--only``: the sections that can run alone (each writes its own files)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of this benchmark (shared by the script and ``tfrec-llm benchmark``)."""
    common.add_config_arguments(
        parser,
        out_help="folder for speed.json/.md",
        model_dir_help="train.model_dir (its text_cache is reused)",
        set_help="override one config field (repeatable)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds per section (default 3 for (a) and (b), 200 for (c) and (d))",
    )
    parser.add_argument(
        "--only",
        choices=ONLY,
        default=None,
        help="run one section alone: encoder-latency = (d), written to latency.json/.md",
    )
    parser.add_argument("--encode-batch-size", type=int, default=128, help="texts per forward pass in (a)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 96 texts, 2 rounds, few steps (CI)")


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
        "train: TwoTowerModel precomputed / minimal BERT in-graph": train[tnames[0]] / train[tnames[2]],
    }


def render_markdown(report: dict[str, Any]) -> str:
    """speed.md: the tables of the four sections and the ratios."""
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
    if "encoder_latency" in report:  # reports written before (d) existed have none
        lines += ["", *render_history_section(report["encoder_latency"])]
    lines += ["", "## Ratios", ""] + [f"- {k}: **{v:.2f}x**" for k, v in report["ratios"].items()]
    return "\n".join(lines) + "\n"


def render_latency_markdown(report: dict[str, Any]) -> str:
    """latency.md: section (d) alone, with the machine and the command."""
    lines = [
        "# Speed benchmark: history encoders in the exported retrieval model",
        "",
        f"- Machine: {machine_line(report['machine'])}; "
        f"{load_line(report['machine']['load_average'], report['load_end'])}",
        f"- Command: `{report['command']}` ({report['seconds']:.0f} s wall, {report['date']}).",
        "",
        *render_history_section(report["encoder_latency"]),
    ]
    return "\n".join(lines) + "\n"


def _write(out: Path, stem: str, report: dict[str, Any], markdown: str) -> None:
    write_json(out / f"{stem}.json", report, indent=1, allow_nan=False)
    write_text(out / f"{stem}.md", markdown)
    print(markdown)


def run_encoder_latency(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """``--only encoder-latency``: section (d) alone; writes latency.json and latency.md."""
    from tfrec_llm.experiments import prepare
    from tfrec_llm.experiments.runs import seed_everything

    started = time.perf_counter()
    machine = describe_machine()
    log = common.elapsed_logger(started)
    cfg = common.build_config(args, QUICK_OVERRIDES)
    seed_everything(cfg)
    prepared = prepare(cfg, "loo", dataset=common.load_data(cfg, args.quick))
    log(f"data: {prepared.catalog.num_items} items, {prepared.catalog.num_users} users")
    section = bench_history_encoders(cfg, prepared, args.rounds or (3 if args.quick else 200))
    log("encoder latency done")
    report: dict[str, Any] = {
        **provenance(SCRIPT, argv, machine),
        "quick": args.quick,
        "encoder_latency": section,
    }
    report["seconds"] = time.perf_counter() - started
    _write(Path(args.out), "latency", report, render_latency_markdown(report))
    log(f"wrote {Path(args.out) / 'latency.json'} and {Path(args.out) / 'latency.md'}")
    return 0


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Runs the four sections; prints the tables and writes speed.json and speed.md.

    With ``--only encoder-latency`` it runs `run_encoder_latency` instead.
    """
    if args.only == "encoder-latency":
        return run_encoder_latency(args, argv)
    from tfrec_llm.experiments import prepare
    from tfrec_llm.experiments.prepare import text_model_path
    from tfrec_llm.experiments.runs import seed_everything
    from tfrec_llm.text.encoder import TextEncoder

    started = time.perf_counter()
    machine = describe_machine()
    log = common.elapsed_logger(started)
    quick = args.quick
    cfg = common.build_config(args, QUICK_OVERRIDES)
    seed_everything(cfg)
    dataset = common.load_data(cfg, quick)
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
    encoder_latency = bench_history_encoders(cfg, prepared, args.rounds or (3 if quick else 200))
    log("encoder latency done")
    matmul_end = matmul_gflops(enc_rounds * 3)
    report: dict[str, Any] = {
        **provenance(SCRIPT, argv, machine),
        "quick": quick,
        "matmul": matmul,
        "matmul_end": matmul_end,
        "encoding": encoding,
        "training": training,
        "latency": latency,
        "encoder_latency": encoder_latency,
    }
    report["ratios"] = ratios(report)
    report["seconds"] = time.perf_counter() - started
    out = Path(args.out)
    _write(out, "speed", report, render_markdown(report))
    log(f"wrote {out / 'speed.json'} and {out / 'speed.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python benchmarks/speed.py [options]``."""
    return common.script_main(SCRIPT, __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
