"""Seed benchmark: one two-tower variant under several settings and seeds, mean and spread.

A single training run says little when two settings differ by less than one standard error of
the TEST metric (about 0.006 NDCG@10 on ML-100K). This script trains the variant (default
``bert``, the config's own model) once per (setting, ``train.seed``), with early stopping on
VALID, and reports per setting the VALID and TEST metrics of every seed, their mean and the
standard error of the mean over seeds. A setting is a list of ``section.field=value``
overrides (``--setting``, repeatable; none = the config as it is):

    python benchmarks/seeds.py --protocol loo --seeds 42,1 \\
        --setting model.history_length=50 --setting model.history_length=100

Pick settings by their VALID column; TEST is shown so the choice can be checked, not made.
Models are cached like ``quality.py`` (``<model-dir>/<protocol>/<variant>-<config hash>``), so
a rerun with one more seed trains only that seed. Outputs in ``--out``: ``seeds.json`` (the
records of every run) and ``seeds.md`` (the table, the machine and the command).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common
from machine import command_line, describe_machine, load_line, machine_line

METRICS = ("ndcg", "hr", "recall")
QUICK_OVERRIDES = ("train.epochs=2", "model.history_length=10", "model.embedding_dim=16")
"""``--quick`` (CI): short training of a small model on the quick data subset."""


def _ints(value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The seed benchmark's options."""
    common.add_config_arguments(
        parser,
        out_help="folder for seeds.json and seeds.md",
        model_dir_help="cached run folders",
        set_help="override a config field for every setting (repeatable)",
    )
    parser.add_argument(
        "--protocol",
        default="loo",
        help="loo | cold-items | cold-users, or a selection split: cold-users-select (protocol C "
        "rebuilt inside its warm users) or cold-items-select (B rebuilt inside its warm items), to "
        "choose cold-user / cold-item settings without reading C's or B's TEST (default loo)",
    )
    parser.add_argument("--variant", default="bert", help="model variant (default bert)")
    parser.add_argument("--seeds", type=_ints, default=[42, 1], help="train.seed values (default 42,1)")
    parser.add_argument(
        "--setting",
        dest="settings",
        action="append",
        default=[],
        metavar="F=V[,F=V...]",
        help="one setting: comma-separated overrides (repeatable; default: the config as it is)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny data subset (CI)")
    parser.add_argument("--quiet", action="store_true", help="no Keras progress lines")


def summarize(values: Sequence[float]) -> tuple[float, float]:
    """(mean, standard error of the mean over seeds; 0 for a single seed)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


def _choose_by(protocol: str) -> str:
    from tfrec_llm.config.choices import SELECTION_SPLITS

    reported = SELECTION_SPLITS.get(protocol)
    if reported is not None:
        kind = reported.split("-")[1][:-1]  # "user" / "item"
        return (
            f"Under {protocol}, TEST is the stand-in cold {kind}s (20% of protocol {reported}'s "
            f"warm {kind}s, never its own): choose a cold-{kind} setting by its TEST columns, then "
            f"report it under {reported}."
        )
    return "Choose by VALID."


def render_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The table: one line per setting with per-seed and mean (SE) VALID/TEST NDCG@10 and HR@10."""
    lines = [
        f"# Seeds: {meta['variant']} under protocol {meta['protocol']} ({meta['date']})",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['machine']}; {meta['load']}.",
        "",
        "Per setting: each seed's VALID / TEST NDCG@10, then the mean over seeds with its "
        "standard error (Recall@10 is protocol B's and C's target; under A it equals HR@10); fit "
        "seconds per seed. " + _choose_by(meta["protocol"]),
        "",
        "| setting | seeds | VALID NDCG@10 per seed | TEST NDCG@10 per seed | VALID NDCG@10 mean (SE) "
        "| TEST NDCG@10 mean (SE) | TEST HR@10 mean (SE) | TEST Recall@10 mean (SE) | fit s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for setting in meta["settings"]:
        runs = [r for r in rows if r["setting"] == setting]
        cells = [setting or "(config)", ",".join(str(r["seed"]) for r in runs)]
        for split in ("valid", "test"):
            cells.append(" / ".join(f"{r[split]['ndcg']:.4f}" for r in runs))
        for split, metric in (("valid", "ndcg"), ("test", "ndcg"), ("test", "hr"), ("test", "recall")):
            mean, se = summarize([r[split][metric] for r in runs])
            cells.append(f"{mean:.4f} ({se:.4f})")
        cells.append(" / ".join(f"{r['fit_seconds']:.0f}" for r in runs))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Trains (or loads) every (setting, seed) and writes seeds.json / seeds.md."""
    common.setup_environment()
    from tfrec_llm.evaluation.protocols import evaluate
    from tfrec_llm.experiments import prepare
    from tfrec_llm.models.scorer import TwoTowerScorer

    start_load = describe_machine().get("load_average")
    settings = args.settings or [""]
    base = common.build_config(args, QUICK_OVERRIDES)
    dataset = common.load_data(base, args.quick)
    tag = common.data_tag(dataset)
    prepared = prepare(base, args.protocol, with_text=True, dataset=dataset)
    rows = []
    for setting in settings:
        overrides = [o for o in setting.split(",") if o.strip()]
        for seed in args.seeds:
            more = [*args.overrides, *overrides, f"train.seed={seed}"]
            cfg = common.build_config(
                argparse.Namespace(**{**vars(args), "overrides": more}), QUICK_OVERRIDES
            )
            if (cfg.data, cfg.text) != (base.data, base.text):
                raise SystemExit(f"--setting {setting!r}: settings may change model and train fields only")
            started = time.perf_counter()
            model, info = common.load_or_train_cached(
                cfg, prepared, args.variant, tag, verbose=0 if args.quiet else 2
            )
            scorer = TwoTowerScorer(model, prepared.catalog)
            row = {"setting": setting, "seed": seed, "fit_seconds": info.get("train_seconds", 0.0)}
            for split in ("valid", "test"):
                metrics = evaluate(scorer, getattr(prepared.split, split), prepared.split.item_ids, ks=(10,))
                row[split] = {m: float(metrics[f"{m}@10"]) for m in METRICS}
            row.update(
                cached=info["cached"], model_dir=info["model_dir"], seconds=time.perf_counter() - started
            )
            rows.append(row)
            print(f"[seeds] {setting or '(config)'} seed {seed}: VALID {row['valid']['ndcg']:.4f} "
                  f"TEST {row['test']['ndcg']:.4f}", flush=True)  # fmt: skip
    info_machine = describe_machine()
    meta = {
        "variant": args.variant,
        "protocol": args.protocol,
        "settings": settings,
        "date": time.strftime("%Y-%m-%d"),
        "command": command_line("benchmarks/seeds.py", list(sys.argv[1:] if argv is None else argv)),
        "machine": machine_line(info_machine),
        "load": load_line(start_load, info_machine.get("load_average")),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1), encoding="utf-8")
    (out / "seeds.md").write_text(render_markdown(rows, meta), encoding="utf-8")
    print(render_markdown(rows, meta))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return common.script_main("benchmarks/seeds.py", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
