"""Quality benchmark: tfrec_llm's two-tower variants against classic peers, protocols A/B/C.

One run, one data set (MovieLens-100K by default), the one split module and the one evaluator
for every model (EVALUATION.md):

* baselines: Random, MostPop;
* peers (``tfrec_llm.evaluation.peers``): ItemKNN, EASE (lambda tuned on VALID), implicit ALS
  and BPR (small grids on VALID), each picked by VALID NDCG@10;
* ours: the two-tower variants ``id`` (ids only), ``text`` (text + categories, no ids) and
  ``bert`` (ids + text + categories), trained with the config's defaults and early stopping on
  VALID NDCG@10 (``training.experiment.load_or_train``), scored with ``TwoTowerScorer``.

Every model is fit on TRAIN and evaluated on TEST with TRAIN+VALID histories (no refit on
TRAIN+VALID, for anyone); ``--refit`` refits the peers on TRAIN+VALID with the chosen
hyperparameters and sets ``train.refit_on_train_valid=true`` for the two-tower. Every model
gets a row under every protocol: ID-only models cannot know cold items (B) and show it.

Outputs in ``--out``: ``quality.json`` (the records of ``tfrec-llm evaluate --json``, plus
``fit_seconds`` and, for peers, the chosen ``params``), ``quality.md`` (tables with fit and eval
seconds, the machine and the command) and ``quality.png`` (bar chart).

Trained two-tower models are cached in ``<model-dir>/<protocol>/<variant>-<config hash>``; a
changed config (e.g. new defaults) gets a new folder, so no stale model is reused.

Usage:
    python benchmarks/quality.py --out benchmarks/results            # full run (~1 h on 2 cores)
    python benchmarks/quality.py --quick --out /tmp/q --model-dir /tmp/q/runs   # ~2 min smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import sys
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
    write_bytes_atomic,
    write_text_atomic,
)

PROTOCOLS = ("loo", "cold-items", "cold-users")
VARIANTS = ("id", "text", "bert")
PEERS = ("ItemKNN", "EASE", "ALS", "BPR")
DEFAULT_MODEL_DIR = os.path.join("runs", "bench")
DEFAULT_OUT = os.path.join("benchmarks", "results")

QUICK_OVERRIDES = (
    "train.epochs=1",
    "train.batch_size=256",
    "train.patience=1",
    "model.history_length=10",
)
"""Config overrides of ``--quick`` (applied before the user's ``--set``)."""

QUICK_MAX_USER = 120
QUICK_MAX_ITEM = 250
"""``--quick`` keeps users and items whose (integer) id is at most these."""

QUICK_PEER_OVERRIDES = {"ALS": {"iterations": 3}, "BPR": {"iterations": 10}}

FAMILY = {"Random": "baseline", "MostPop": "baseline"}
FAMILY.update({name: "peer" for name in PEERS})
FAMILY.update(
    {"TwoTower-ID": "tfrec_llm", "TwoTower-TextOnly": "tfrec_llm", "TwoTower-BERT": "tfrec_llm"}
)
CONTENT_AWARE = {"TwoTower-TextOnly", "TwoTower-BERT"}
"""Models that see item text (only these can rank cold items, protocol B)."""


def _csv(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        out = [v.strip() for v in value.split(",") if v.strip()]
        bad = [v for v in out if v not in choices]
        if bad or not out:
            raise argparse.ArgumentTypeError(
                f"unknown value(s) {bad or [value]}; expected a "
                f"comma-separated subset of {list(choices)}"
            )
        return out

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of this benchmark (shared by the script and ``tfrec-llm benchmark``)."""
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"folder for quality.json/.md/.png (default {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="YAML experiment config (default: built-in MovieLens-100K + MiniLM)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one config field, e.g. --set train.epochs=5 (repeatable)",
    )
    parser.add_argument(
        "--model-dir",
        default=DEFAULT_MODEL_DIR,
        help=f"cache of trained two-tower models (default {DEFAULT_MODEL_DIR})",
    )
    parser.add_argument(
        "--protocols",
        type=_csv(PROTOCOLS),
        default=list(PROTOCOLS),
        help="comma-separated protocols (default: loo,cold-items,cold-users)",
    )
    parser.add_argument(
        "--variants",
        type=_csv(VARIANTS),
        default=list(VARIANTS),
        help="two-tower variants (default: id,text,bert)",
    )
    parser.add_argument(
        "--peers",
        type=_csv(PEERS),
        default=list(PEERS),
        help="peers (default: ItemKNN,EASE,ALS,BPR)",
    )
    parser.add_argument(
        "--refit",
        action="store_true",
        help="refit every model on TRAIN+VALID before TEST (default: fit on TRAIN)",
    )
    parser.add_argument(
        "--retrain", action="store_true", help="train the two-tower models again even if cached"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: users<={QUICK_MAX_USER}, items<={QUICK_MAX_ITEM}, 1 epoch, "
        "one grid point per peer (CI)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch training lines")
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        default=None,
        help="do not run: combine the outputs of earlier runs over disjoint protocols into --out",
    )


def build_config(args: argparse.Namespace) -> Any:
    """The experiment config: file/defaults, then ``--quick`` overrides, then ``--set``."""
    from tfrec_llm.config import load_config, replace

    overrides = (list(QUICK_OVERRIDES) if args.quick else []) + list(args.overrides)
    cfg = load_config(args.config, overrides)
    if args.refit:
        cfg = replace(cfg, train__refit_on_train_valid=True)
    return replace(cfg, train__model_dir=args.model_dir)


def quick_subset(dataset: Any) -> Any:
    """The ``--quick`` slice of a data set: small integer user and item ids only."""
    from tfrec_llm.data.schema import ITEM_ID, USER_ID

    def small(ids: Any, limit: int) -> Any:
        return ids.map(lambda v: v.isdigit() and int(v) <= limit)

    inter = dataset.interactions
    keep = small(inter[USER_ID], QUICK_MAX_USER) & small(inter[ITEM_ID], QUICK_MAX_ITEM)
    items = dataset.items[small(dataset.items[ITEM_ID], QUICK_MAX_ITEM)]
    users = dataset.users[small(dataset.users[USER_ID], QUICK_MAX_USER)]
    return dataclasses.replace(
        dataset,
        name=f"{dataset.name}-quick",
        interactions=inter[keep].reset_index(drop=True),
        items=items.reset_index(drop=True),
        users=users.reset_index(drop=True),
    )


def config_hash(cfg: Any, variant: str, data_tag: str) -> str:
    """Eight hex characters of everything that changes a trained variant (not paths)."""
    from tfrec_llm.config import config_to_dict
    from tfrec_llm.training.experiment import variant_config

    values = config_to_dict(variant_config(cfg, variant))
    values["train"].pop("model_dir", None)
    values["text"].pop("cache_dir", None)
    values["text"].pop("batch_size", None)
    for section in ("export", "name"):
        values.pop(section, None)
    values["data_tag"] = data_tag
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]


# ----------------------------------------------------------------------------- evaluation


def evaluate_scorer(
    scorer: Any, split: Any, ks: Sequence[int], extra: dict[str, Any]
) -> list[dict[str, Any]]:
    """VALID and TEST records of one scorer, in the format of ``tfrec-llm evaluate --json``."""
    from tfrec_llm.evaluation.protocols import evaluate

    records: list[dict[str, Any]] = []
    for task in (split.valid, split.test):
        start = time.perf_counter()
        metrics = evaluate(scorer, task, split.item_ids, ks=tuple(ks))
        seconds = time.perf_counter() - start
        for key, value in metrics.items():
            if "@" not in key:
                continue
            metric, k = key.split("@")
            records.append(
                {
                    "model": scorer.name,
                    "protocol": split.protocol,
                    "split": task.name,
                    "metric": metric,
                    "k": int(k),
                    "value": float(value),
                    "users": int(metrics["users"]),
                    "eval_seconds": round(seconds, 3),
                    **extra,
                }
            )
    return records


def peer_grid(name: str, quick: bool) -> list[dict[str, Any]]:
    """The VALID grid of a peer (its ``default_grid``; one shortened point with ``quick``)."""
    from tfrec_llm.evaluation import peers

    grid = getattr(peers, f"{name}Scorer").default_grid()
    if quick:
        grid = [{**grid[0], **QUICK_PEER_OVERRIDES.get(name, {})}]
    return grid


def tuned_peer(name: str, split: Any, quick: bool, refit: bool) -> tuple[Any, dict[str, Any]]:
    """Tunes a peer on VALID (``tune_on_valid``); returns (TEST scorer, info)."""
    from tfrec_llm.evaluation import peers

    cls = getattr(peers, f"{name}Scorer")
    start = time.perf_counter()
    best, scorer, rows = peers.tune_on_valid(
        lambda p: cls(split, **p), peer_grid(name, quick), split
    )
    tune_seconds = time.perf_counter() - start
    if refit:
        scorer = cls(split, **best, fit_on="train_valid")
        scorer.name = name
    info = {
        "fit_seconds": round(float(scorer.fit_seconds), 3),
        "tune_seconds": round(tune_seconds, 2),
        "params": best,
        "grid": [{"params": r["params"], "valid_ndcg@10": r.get("valid/ndcg@10")} for r in rows],
    }
    return scorer, info


def two_tower(
    cfg: Any,
    prepared: Any,
    variant: str,
    model_root: str,
    data_tag: str,
    retrain: bool,
    verbose: int,
) -> tuple[Any, dict[str, Any]]:
    """Loads or trains one two-tower variant; returns (scorer, info)."""
    import tf_keras as keras

    from tfrec_llm.models.scorer import TwoTowerScorer
    from tfrec_llm.training.experiment import VARIANT_NAMES, load_or_train

    directory = os.path.join(
        model_root, prepared.split.protocol, f"{variant}-{config_hash(cfg, variant, data_tag)}"
    )
    cached = os.path.exists(os.path.join(directory, "result.json")) and not retrain
    keras.utils.set_random_seed(cfg.train.seed)  # same start whatever ran before
    model, info = load_or_train(cfg, prepared, variant, directory, retrain=retrain, verbose=verbose)
    scorer = TwoTowerScorer(model, prepared.catalog, name=VARIANT_NAMES[variant])
    return scorer, {
        "fit_seconds": float(info["train_seconds"]),
        "model_dir": directory,  # type: ignore[arg-type]
        "cached": cached,
        "best_epoch": info["best_epoch"],
        "epochs_run": info["epochs_run"],
    }


def run_protocol(
    cfg: Any,
    dataset: Any,
    protocol: str,
    args: argparse.Namespace,
    data_tag: str,
    log: Callable[[str], None],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every model under one protocol; returns (records, details for the report)."""
    from tfrec_llm.evaluation.baselines import MostPopScorer, RandomScorer
    from tfrec_llm.training.experiment import prepare

    ks = cfg.eval.ks
    start = time.perf_counter()
    prepared = prepare(
        cfg, protocol, with_text=any(v != "id" for v in args.variants), dataset=dataset
    )
    split = prepared.split
    log(
        f"[{protocol}] split ready in {time.perf_counter() - start:.1f} s: "
        f"{len(split.train)} TRAIN "
        f"interactions, {len(split.valid.user_ids)} VALID / {len(split.test.user_ids)} TEST users"
    )
    details: dict[str, Any] = {
        "valid_users": len(split.valid.user_ids),
        "test_users": len(split.test.user_ids),
        "train_interactions": len(split.train),
        "models": {},
    }
    records: list[dict[str, Any]] = []

    def add(scorer: Any, family: str, info: dict[str, Any]) -> None:
        extra = {"fit_seconds": info["fit_seconds"], "family": family}
        if "params" in info:
            extra.update(params=info["params"], tune_seconds=info["tune_seconds"])
        new = evaluate_scorer(scorer, split, ks, extra)
        records.extend(new)
        test10 = {r["metric"]: r["value"] for r in new if r["split"] == "test" and r["k"] == 10}
        details["models"][scorer.name] = {
            **info,
            "eval_seconds": sum(
                r["eval_seconds"] for r in new if r["metric"] == "ndcg" and r["k"] == ks[0]
            ),
        }
        log(
            f"[{protocol}] {scorer.name:18s} TEST ndcg@10 {test10.get('ndcg', float('nan')):.4f} "
            f"recall@10 {test10.get('recall', float('nan')):.4f} (fit {info['fit_seconds']:.1f} s)"
        )

    add(RandomScorer(split, seed=cfg.train.seed), "baseline", {"fit_seconds": 0.0})
    t = time.perf_counter()
    most_pop = MostPopScorer(split, fit_on="train_valid" if args.refit else "train")
    most_pop.name = "MostPop"
    add(most_pop, "baseline", {"fit_seconds": round(time.perf_counter() - t, 3)})
    for name in args.peers:
        scorer, info = tuned_peer(name, split, args.quick, args.refit)
        add(scorer, "peer", info)
    verbose = 0 if args.quiet else 2
    for variant in args.variants:
        scorer, info = two_tower(
            cfg, prepared, variant, cfg.train.model_dir, data_tag, args.retrain, verbose
        )
        add(scorer, "tfrec_llm", info)
    return records, details


# ----------------------------------------------------------------------------- outputs


def _cell(
    records: Sequence[dict[str, Any]], model: str, protocol: str, metric: str, k: int
) -> float | None:
    for r in records:
        if (r["model"], r["protocol"], r["split"], r["metric"], r["k"]) == (
            model,
            protocol,
            "test",
            metric,
            k,
        ):
            return float(r["value"])
    return None


def _models(records: Sequence[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for r in records:
        if r["model"] not in out:
            out.append(r["model"])
    return out


def summary_table(
    records: Sequence[dict[str, Any]], protocols: Sequence[str], details: dict[str, Any]
) -> str:
    """TEST NDCG@10 / Recall@10 per protocol, best per column in bold, with fit/eval seconds."""
    from tfrec_llm.evaluation.report import PROTOCOL_LETTERS

    letters = [PROTOCOL_LETTERS[p] for p in protocols]
    header = ["model"] + [f"{L} {m}@10" for L in letters for m in ("ndcg", "recall")]
    header += [f"fit s ({'/'.join(letters)})", f"eval s ({'/'.join(letters)})"]
    best = {
        (p, m): max((_cell(records, mod, p, m, 10) or 0.0) for mod in _models(records))
        for p in protocols
        for m in ("ndcg", "recall")
    }
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in _models(records):
        row = [model]
        for p in protocols:
            for m in ("ndcg", "recall"):
                value = _cell(records, model, p, m, 10)
                text = "-" if value is None else f"{value:.4f}"
                row.append(f"**{text}**" if value is not None and value == best[(p, m)] else text)
        fits, evals = [], []
        for p in protocols:
            info = details[p]["models"].get(model, {})
            fits.append(f"{info['fit_seconds']:.1f}" if "fit_seconds" in info else "-")
            evals.append(f"{info['eval_seconds']:.1f}" if "eval_seconds" in info else "-")
        row += ["/".join(fits), "/".join(evals)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def best_of(
    records: Sequence[dict[str, Any]], family: str, protocol: str, metric: str
) -> tuple[str, float] | None:
    """(model, value) of the best TEST ``metric``@10 among one family's models."""
    rows = [
        (r["model"], r["value"])
        for r in records
        if r.get("family") == family
        and r["protocol"] == protocol
        and r["split"] == "test"
        and r["metric"] == metric
        and r["k"] == 10
    ]
    return max(rows, key=lambda x: x[1]) if rows else None


def headline(records: Sequence[dict[str, Any]], protocols: Sequence[str]) -> list[str]:
    """'Best tfrec_llm model vs best peer' lines (A NDCG@10, B Recall@10, C NDCG@10)."""
    lines = []
    for protocol, metric, label in (
        ("loo", "ndcg", "A NDCG@10"),
        ("cold-items", "recall", "B Recall@10"),
        ("cold-users", "ndcg", "C NDCG@10"),
    ):
        if protocol not in protocols:
            continue
        ours = best_of(records, "tfrec_llm", protocol, metric)
        peer = best_of(records, "peer", protocol, metric)
        if ours is None or peer is None:
            continue
        ratio = ours[1] / peer[1] if peer[1] > 0 else float("inf")
        lines.append(
            f"- {label}: best tfrec_llm {ours[0]} {ours[1]:.4f} vs best peer {peer[0]} "
            f"{peer[1]:.4f} ({ratio:.2f}x)"
        )
    return lines


def render_markdown(
    records: list[dict[str, Any]], details: dict[str, Any], meta: dict[str, Any]
) -> str:
    """The whole quality.md."""
    from tfrec_llm.evaluation.report import records_to_table

    protocols = meta["protocols"]
    machine = meta["machine"]
    policy = (
        "refit on TRAIN+VALID with the chosen hyperparameters / best epoch count"
        if meta["refit"]
        else "fit on TRAIN only (no refit on TRAIN+VALID)"
    )
    out = [
        f"# Quality benchmark: {meta['dataset']} (protocols "
        f"{', '.join(records_to_table_letters(protocols))})",
        "",
        f"- Machine: {machine_line(machine)}; "
        f"{load_line(machine['load_average'], meta['load_end'])}",
        f"- Command: `{meta['command']}` ({meta['seconds']:.0f} s wall, {meta['date']})"
        + "".join(f"\n  - merged from: `{c}`" for c in meta.get("merged_commands", [])),
        f"- Every model: {policy}; hyperparameters (peers: grid on VALID NDCG@10) and early "
        "stopping (two-tower: VALID NDCG@10, config defaults) on VALID; TEST histories are "
        "TRAIN+VALID (A, B) or each cold user's first 5 interactions (C), history items "
        "excluded, ties broken by the fixed "
        "item priority (EVALUATION.md).",
        "- fit s: wall seconds of the final fit (two-tower: the whole training run including its "
        "per-epoch VALID evaluation; peers: the chosen grid point; the grid search itself is in "
        "quality.json as tune_seconds). eval s: VALID + TEST evaluation.",
    ]
    if "cold-items" in protocols:
        out += [
            "- B: the ID-only models (MostPop, the peers, TwoTower-ID) have learned nothing "
            "about cold items; where they give every cold item the same score their row is the "
            "evaluator's fixed tie order over the cold items, i.e. chance level like Random "
            "(another draw of chance). Only "
            "the text-aware variants can rank cold items.",
        ]
    out += [
        "",
        "## TEST, K = 10 (best per column in bold)",
        "",
        summary_table(records, protocols, details),
        "",
    ]
    lines = headline(records, protocols)
    if lines:
        out += ["Best tfrec_llm model vs best peer:", "", *lines, ""]
    out += [
        "## All TEST metrics",
        "",
        records_to_table([r for r in records if r["split"] == "test"]),
        "",
        "## VALID",
        "",
        records_to_table([r for r in records if r["split"] == "valid"]),
        "",
        "## Users and chosen settings",
        "",
    ]
    for protocol in protocols:
        d = details[protocol]
        out.append(
            f"- {protocol}: {d['train_interactions']} TRAIN interactions, "
            f"{d['valid_users']} VALID users, {d['test_users']} TEST users."
        )
        for model, info in d["models"].items():
            if "params" in info:
                out.append(
                    f"  - {model}: {json.dumps(info['params'])} (grid of {len(info['grid'])}, "
                    f"{info['tune_seconds']:.1f} s)"
                )
            elif "best_epoch" in info:
                cached = ", cached" if info["cached"] else ""
                out.append(
                    f"  - {model}: best epoch {info['best_epoch']} of {info['epochs_run']}{cached}"
                )
    return "\n".join(out) + "\n"


def records_to_table_letters(protocols: Sequence[str]) -> list[str]:
    from tfrec_llm.evaluation.report import PROTOCOL_LETTERS

    return [f"{PROTOCOL_LETTERS[p]} {p}" for p in protocols]


def render_png(records: list[dict[str, Any]], protocols: Sequence[str], title: str) -> bytes:
    """Grouped horizontal bars: TEST NDCG@10 and Recall@10 per protocol, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from tfrec_llm.evaluation.report import PROTOCOL_LETTERS

    models = _models(records)
    colors = {"baseline": "#9e9e9e", "peer": "#4c72b0", "tfrec_llm": "#dd8452"}
    family = {r["model"]: r.get("family", "peer") for r in records}
    fig, axes = plt.subplots(
        2,
        len(protocols),
        figsize=(4.2 * len(protocols), 0.45 * len(models) * 2 + 2),
        squeeze=False,
        sharey=True,
    )
    for col, protocol in enumerate(protocols):
        for row, metric in enumerate(("ndcg", "recall")):
            ax = axes[row][col]
            values = [_cell(records, m, protocol, metric, 10) or 0.0 for m in models]
            ax.barh(range(len(models)), values, color=[colors[family[m]] for m in models])
            ax.set_yticks(range(len(models)), models)
            ax.invert_yaxis()
            ax.set_title(f"{PROTOCOL_LETTERS[protocol]} ({protocol}) {metric}@10", fontsize=10)
            for i, v in enumerate(values):
                ax.text(v, i, f" {v:.3f}", va="center", fontsize=7)
            ax.set_xlim(0, max(values + [1e-3]) * 1.3)
            ax.xaxis.set_major_locator(MaxNLocator(4))
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    fig.legend(handles, list(colors), loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark and writes the three outputs; returns the exit code."""
    from datetime import UTC, datetime

    from tfrec_llm.training.experiment import load_dataset

    if args.merge:
        return merge(args.merge, Path(args.out))
    started = time.perf_counter()
    machine = describe_machine()

    def log(message: str) -> None:
        print(f"{time.perf_counter() - started:7.1f}s {message}", flush=True)

    cfg = build_config(args)
    dataset = load_dataset(cfg.data)
    if args.quick:
        dataset = quick_subset(dataset)
    data_tag = (
        f"{dataset.name}:{len(dataset.interactions)}:{len(dataset.items)}:{len(dataset.users)}"
    )
    log(
        f"data {dataset.name}: {len(dataset.interactions)} interactions, "
        f"{len(dataset.items)} items, "
        f"{len(dataset.users)} users; models in {cfg.train.model_dir}"
    )
    records: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    for protocol in args.protocols:
        new, details[protocol] = run_protocol(cfg, dataset, protocol, args, data_tag, log)
        records.extend(new)

    machine = {**machine, **{k: v for k, v in describe_machine().items() if k == "tensorflow"}}
    meta = {
        "dataset": dataset.name,
        "protocols": list(args.protocols),
        "refit": args.refit,
        "machine": machine,
        "load_end": describe_machine()["load_average"],
        "command": command_line(
            "benchmarks/quality.py", list(argv if argv is not None else sys.argv[1:])
        ),
        "seconds": time.perf_counter() - started,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    write_outputs(Path(args.out), records, details, meta)
    log(f"wrote quality.json, quality.md and quality.png in {args.out}")
    return 0


def write_outputs(
    out: Path, records: list[dict[str, Any]], details: dict[str, Any], meta: dict[str, Any]
) -> None:
    """Writes quality.json, quality.md, quality.png and quality_meta.json; prints the table."""
    protocols = list(meta["protocols"])
    machine = meta["machine"]
    write_text_atomic(out / "quality.json", json.dumps(records, indent=1, allow_nan=False) + "\n")
    write_text_atomic(out / "quality.md", render_markdown(records, details, meta))
    title = f"{meta['dataset']}, TEST, {machine['cpu']}, {machine['usable_cores']} cores"
    write_bytes_atomic(out / "quality.png", render_png(records, protocols, title))
    write_text_atomic(
        out / "quality_meta.json",
        json.dumps({**meta, "details": details}, indent=1, default=str) + "\n",
    )
    print(summary_table(records, protocols, details))
    print("\n".join(headline(records, protocols)))


def merge(folders: Sequence[str], out: Path) -> int:
    """Combines the outputs of runs over disjoint protocols (e.g. run side by side) into one.

    Each folder holds the quality.json and quality_meta.json of one run; the merged report
    lists every run's command and the longest wall time.
    """
    records: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    metas = []
    for folder in folders:
        meta = json.loads((Path(folder) / "quality_meta.json").read_text(encoding="utf-8"))
        overlap = sorted(set(meta["details"]) & set(details))
        if overlap:
            raise SystemExit(
                f"--merge: protocols {overlap} appear in more than one run; "
                "merge runs over disjoint protocols."
            )
        details.update(meta.pop("details"))
        metas.append(meta)
        records += json.loads((Path(folder) / "quality.json").read_text(encoding="utf-8"))
    protocols = [p for p in PROTOCOLS if p in details]
    records.sort(key=lambda r: protocols.index(r["protocol"]))
    first = metas[0]
    loads = [m["machine"]["load_average"] for m in metas if m["machine"].get("load_average")]
    meta = {
        **first,
        "protocols": protocols,
        "refit": any(m["refit"] for m in metas),
        "machine": {**first["machine"], "load_average": loads[0] if loads else None},
        "load_end": metas[-1]["load_end"],
        "command": command_line("benchmarks/quality.py", ["--merge", *folders, "--out", str(out)]),
        "merged_commands": [m["command"] for m in metas],
        "seconds": max(m["seconds"] for m in metas),
    }
    write_outputs(out, records, details, meta)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python benchmarks/quality.py [options]``."""
    parser = argparse.ArgumentParser(
        prog="benchmarks/quality.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, argv)


if __name__ == "__main__":
    sys.exit(main())
