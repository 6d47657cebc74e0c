"""Item-text encoder speed: ``encode_texts`` against the batching it replaced, XLA, a plain loop.

One process, one run, interleaved rounds (``speed_encoding.bench_encoder_speed``): every round
runs ``encode_texts`` (``tfrec_llm.text.fast_encode``), the batching it had until 2026-11-30
(128 sorted texts a pass, padded to the longest rounded up to 8), those batches through an
XLA-compiled function, a plain ``TFBertModel`` loop (Hugging Face tokenizer, input order, pad to
the longest of each batch) and a 2048x2048 fp32 matmul, over MiniLM (the config's text model)
and the data set's item texts. Each figure is a median over rounds, in wall seconds and in CPU
seconds of this process (``time.process_time``); on a shared machine the CPU figures move less
with the load. FLOP counts: ``speed.py``'s docstring; "useful" counts real tokens only.

Usage:
    python benchmarks/encoder_speed.py --out benchmarks/results        # ~3 min on 2 cores
    python benchmarks/encoder_speed.py --quick --out /tmp/e             # 96 texts, 2 rounds
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
from speed_encoding import BEFORE, FAST, PLAIN, bench_encoder_speed  # noqa: E402

from tfrec_llm.atomic_io import write_json, write_text  # noqa: E402

SCRIPT = "benchmarks/encoder_speed.py"
TARGET_TEXTS_PER_SECOND = 800
"""The goal of issue 10 part 5 for MiniLM on the item texts."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of this benchmark."""
    common.add_config_arguments(
        parser,
        out_help="folder for encoder_speed.json/.md",
        model_dir_help="train.model_dir (unused here but part of the config)",
        set_help="override one config field (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    parser.add_argument("--batch-size", type=int, default=128, help="most texts per forward pass")
    parser.add_argument("--no-xla", action="store_true", help="leave out the XLA contender")
    parser.add_argument("--quick", action="store_true", help="smoke run: 96 texts, 2 rounds")


def _row(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(row for row in rows if row["contender"] == name)


def findings(section: dict[str, Any], cores: int) -> list[str]:
    """The sentences of the report that follow from the numbers (target, padding, load)."""
    rows, matmul = section["rows"], section["matmul"]
    fast, before, plain = _row(rows, FAST), _row(rows, BEFORE), _row(rows, PLAIN)
    per_text = section["useful_flops_per_text"]
    needed = TARGET_TEXTS_PER_SECOND * per_text / 1e9
    ceiling_wall = matmul["gflops_wall"] * 1e9 / per_text
    ceiling_cpu = cores * matmul["gflops_per_cpu_second"] * 1e9 / per_text
    gap = TARGET_TEXTS_PER_SECOND - fast["texts_per_second"]
    verdict = f"missed by {gap:.0f} texts/s" if gap > 0 else "reached"
    lines = [
        f"- **Target {TARGET_TEXTS_PER_SECOND} texts/s: {verdict}.** It needs {needed:.0f} useful "
        f"GFLOP/s ({per_text / 1e6:.0f} MFLOP a text), {needed / matmul['gflops_wall']:.1f}x the "
        f"fp32 matmul measured here in the same run ({matmul['gflops_wall']:.1f} GFLOP/s wall, "
        f"{matmul['gflops_per_cpu_second']:.1f} per CPU-second). The no-padding ceiling at that "
        f"matmul rate is {ceiling_wall:.0f} texts/s under this run's load, {ceiling_cpu:.0f} with "
        f"all {cores} cores to this process; encode_texts reached {fast['texts_per_second']:.0f} texts/s, "
        f"{fast['useful_fraction_of_matmul']:.0%} of the matmul rate (wall) and "
        f"{fast['useful_fraction_of_matmul_cpu']:.0%} per CPU-second.",
        f"- Against the batching it replaced: {fast['texts_per_second'] / before['texts_per_second']:.2f}x "
        f"texts/s, {fast['texts_per_cpu_second'] / before['texts_per_cpu_second']:.2f}x texts per "
        f"CPU-second; padded tokens {fast['padded_tokens']} vs {before['padded_tokens']} "
        f"({fast['padded_tokens'] / fast['real_tokens'] - 1:+.1%} vs "
        f"{before['padded_tokens'] / before['real_tokens'] - 1:+.1%} over the "
        f"{fast['real_tokens']} real tokens). Against the plain loop: "
        f"{fast['texts_per_second'] / plain['texts_per_second']:.2f}x texts/s.",
        f"- The process got {fast['cores_used']:.2f} of the {cores} cores on average during encode_texts "
        "(CPU seconds / wall seconds): the rest went to the other jobs on the machine. Python "
        f"tokenization of all texts took {section['tokenize_seconds']:.2f} s "
        f"({section['tokenize_seconds'] / fast['median_wall_seconds']:.1%} of encode_texts).",
    ]
    xla = [row for row in rows if row["contender"] not in (FAST, BEFORE, PLAIN)]
    for row in xla:
        compile_seconds = row["first_call_seconds"] - row["median_wall_seconds"]
        saved = (fast["median_wall_seconds"] - row["median_wall_seconds"]) / row["texts"]
        pays = (
            f"it would pay for its compilation from about {compile_seconds / saved:,.0f} texts on"
            if saved > 0
            else "it is not faster than encode_texts wall-clock here, so it never pays for its compilation"
        )
        lines.append(
            f"- XLA over the old batches: {row['texts_per_cpu_second'] / before['texts_per_cpu_second']:.2f}x "
            f"the texts per CPU-second of the same batches without XLA, after "
            f"a first call of {row['first_call_seconds']:.0f} s ({row['distinct_shapes']} shape(s) "
            f"compiled; encode_texts' first call, which also traces the [None, None] function "
            f"the old batching shares, took {fast['first_call_seconds']:.0f} s), while a warm "
            f"encode_texts of all {row['texts']} texts takes {fast['median_wall_seconds']:.0f} s; "
            f"{pays}."
        )
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """encoder_speed.md: the machine, the table, the findings."""
    section = report["encoder_speed"]
    matmul, rows = section["matmul"], section["rows"]
    lines = [
        "# Item-text encoder speed (MiniLM)",
        "",
        f"- Machine: {machine_line(report['machine'])}; "
        f"{load_line(report['machine']['load_average'], report['load_end'])}. The machine is "
        "shared with other jobs, so every wall-clock figure is pessimistic; the per-CPU-second "
        "columns are disturbed less.",
        f"- Command: `{report['command']}` ({report['seconds']:.0f} s wall, {report['date']}); "
        f"medians over {len(rows[0]['rounds'])} interleaved rounds, batch size "
        f"{section['batch_size']}.",
        f"- {rows[0]['texts']} item texts, mean {section['mean_tokens']:.1f} tokens, max "
        f"{section['max_tokens']}; fp32 matmul {matmul['n']}x{matmul['n']} interleaved: "
        f"**{matmul['gflops_wall']:.1f} GFLOP/s** wall, "
        f"**{matmul['gflops_per_cpu_second']:.1f} GFLOP per CPU-second**.",
        "",
        "| contender | texts/s | texts per CPU-s | passes | padded tokens | useful GFLOP/s "
        "| % of matmul (wall) | % of matmul (CPU-s) | first call s | max abs diff vs plain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['contender']} | {r['texts_per_second']:.0f} | {r['texts_per_cpu_second']:.0f} "
            f"| {r['passes']} | {r['padded_tokens']} | {r['useful_gflops']:.1f} "
            f"| {r['useful_fraction_of_matmul']:.0%} | {r['useful_fraction_of_matmul_cpu']:.0%} "
            f"| {r['first_call_seconds']:.1f} | {r['max_abs_diff_vs_plain']:.1e} |"
        )
    cores = int(report["machine"]["usable_cores"]) or 1
    lines += ["", "## Findings", "", *findings(section, cores)]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Measures, prints the table and writes encoder_speed.json and encoder_speed.md."""
    import numpy as np

    from tfrec_llm.data.schema import ITEM_ID
    from tfrec_llm.experiments.prepare import item_texts, text_model_path
    from tfrec_llm.text.encoder import TextEncoder

    started = time.perf_counter()
    machine = describe_machine()
    log = common.elapsed_logger(started)
    cfg = common.build_config(args)
    dataset = common.load_data(cfg, args.quick)
    texts = item_texts(dataset, np.asarray(dataset.items[ITEM_ID]), cfg.text.template)
    texts = texts[: 96 if args.quick else None]
    rounds = args.rounds or (2 if args.quick else 5)
    log(f"data {dataset.name}: {len(texts)} item texts; {rounds} rounds")
    encoder = TextEncoder(text_model_path(cfg.text), max_length=cfg.text.max_length, pooling=cfg.text.pooling)
    section = bench_encoder_speed(encoder, texts, rounds, args.batch_size, xla=not args.no_xla)
    report: dict[str, Any] = {
        **provenance(SCRIPT, argv, machine),
        "quick": args.quick,
        "encoder_speed": section,
    }
    report["seconds"] = time.perf_counter() - started
    out = Path(args.out)
    markdown = render_markdown(report)
    write_json(out / "encoder_speed.json", report, indent=1, allow_nan=False)
    write_text(out / "encoder_speed.md", markdown)
    print(markdown)
    log(f"wrote {out / 'encoder_speed.json'} and {out / 'encoder_speed.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python benchmarks/encoder_speed.py [options]``."""
    return common.script_main(SCRIPT, __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
