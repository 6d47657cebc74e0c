"""Quality benchmark: tfrec_llm's two-tower variants against classic peers, protocols A/B/C.

One run, one data set (MovieLens-100K by default), the one split module and the one evaluator
for every model (docs/evaluation.md):

* baselines: Random, MostPop;
* peers (``tfrec_llm.evaluation.peers``): ItemKNN, EASE (lambda tuned on VALID), implicit ALS
  and BPR (small grids on VALID), each picked by VALID NDCG@10; and, whenever the run encodes
  item text, the content-only peers (``tfrec_llm.evaluation.content_peers``): MiniLM item-kNN
  and the TF-IDF profile, which need no interaction training (the floor for cold items, B);
* ours: the two-tower variants (``tfrec_llm.config.choices.VARIANTS``) ``id`` (ids only),
  ``text`` (text + categories, no ids), ``bert`` (ids + text + categories, the config's history
  encoder), ``sasrec`` (the SASRec-style peer: attention over ids only, no text, so the text's
  contribution shows beside ``bert``) and ``mean`` (the original mean-pooling two-tower), trained
  with early stopping on VALID NDCG@10 (``tfrec_llm.experiments.load_or_train``), scored with
  ``TwoTowerScorer``;
* one row per history encoder (``--encoders``, under protocols A and C only): the ``bert``
  variant with ``model.history_encoder=<encoder>`` and everything else from the config, named
  ``TwoTower-BERT/<encoder>``. A model whose config equals one already trained in this run
  (e.g. the encoder the config itself names, the ``bert`` row) is not trained again: its row
  repeats that model's records and says so in quality.md;
* hidden user ids (A and C): every two-tower model is evaluated a second time with
  ``TwoTowerScorer(..., hide_user_ids=True)``, every user scored as unknown so that the history
  alone makes the query; row ``<model> (hidden ids)``, records with ``user_ids: "hidden"``. No
  extra training.

Every model is fit on TRAIN and evaluated on TEST with TRAIN+VALID histories (no refit on
TRAIN+VALID, for anyone); ``--refit`` refits the peers on TRAIN+VALID with the chosen
hyperparameters and sets ``train.refit_on_train_valid=true`` for the two-tower. Every model but
the encoder rows gets a row under every protocol: ID-only models cannot know cold items (B) and
show it.

Outputs in ``--out``: ``quality.json`` (the records of ``tfrec-llm evaluate --json``, plus
``fit_seconds``, ``family``, for peers the chosen ``params``, for two-tower rows ``variant``,
``history_encoder``, ``row`` (``variant`` or ``encoder``) and ``user_ids`` (``known`` or
``hidden``)), ``quality.md`` (tables with fit and eval seconds, known vs hidden user ids, the
machine and the command, and which differences are real: under each protocol the best
tfrec_llm row against the best peer and the mean-pooling two-tower, paired per user with a
bootstrap 95% CI and a paired test, ``quality_compare.py``; also in quality_meta.json under
``details.<protocol>.comparisons``) and ``quality.png`` (bar chart, known user ids).

Trained two-tower models are cached in ``<model-dir>/<protocol>/<variant>-<config hash>``
(``common.cached_run_dir``); a changed config (e.g. new defaults) gets a new folder, so no stale
model is reused. Baselines and models are evaluated with ``tfrec_llm.experiments.timed_records``.

Modules: this script (options, the run, ``--merge``), ``quality_peers.py`` (peers tuned on
VALID), ``quality_report.py`` (tables, quality.md), ``quality_compare.py`` (the paired
comparisons), ``quality_plot.py`` (quality.png), ``common.py`` and ``machine.py`` (shared with
the other benchmarks).

Usage:
    python benchmarks/quality.py --out benchmarks/results            # full run (hours on 2 cores:
    # 5 variants x 3 protocols + 5 encoders x 2; run --protocols side by side, then --merge)
    python benchmarks/quality.py --quick --out /tmp/q --model-dir /tmp/q/runs   # smoke run
    python benchmarks/quality.py --quick --encoders gru --out /tmp/q --model-dir /tmp/q/runs
    python benchmarks/quality.py --variants bert --encoders none --protocols loo
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import common

common.setup_environment()  # before anything imports TensorFlow

from machine import command_line, describe_machine, provenance  # noqa: E402
from quality_compare import compare_protocol  # noqa: E402
from quality_peers import PEERS, content_peers, tuned_peer  # noqa: E402
from quality_plot import render_png  # noqa: E402
from quality_report import HIDDEN_SUFFIX, headline, render_markdown, summary_table  # noqa: E402

from tfrec_llm.atomic_io import write_bytes, write_json, write_text  # noqa: E402
from tfrec_llm.config.choices import (  # noqa: E402
    HISTORY_ENCODERS,
    PROTOCOLS,
    VARIANT_NAMES,
    VARIANTS,
    variant_uses_text,
)

SCRIPT = "benchmarks/quality.py"

ENCODER_PROTOCOLS = ("loo", "cold-users")
"""Protocols (A, C) with the per-encoder rows and the hidden-user-id rows."""

ENCODER_VARIANT = "bert"
"""The variant the per-encoder rows override ``model.history_encoder`` of."""

QUICK_OVERRIDES = (
    "train.epochs=1",
    "train.batch_size=256",
    "train.patience=1",
    "model.history_length=10",
)
"""Config overrides of ``--quick`` (applied before the user's ``--set``)."""


def _csv(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        out = [v.strip() for v in value.split(",") if v.strip()]
        bad = [v for v in out if v not in choices]
        if bad or not out:
            raise argparse.ArgumentTypeError(
                f"unknown value(s) {bad or [value]}; expected a comma-separated subset of {list(choices)}"
            )
        return out

    return parse


def _encoders(value: str) -> list[str]:
    """``--encoders``: a comma list of ``HISTORY_ENCODERS``, or ``none``."""
    return [] if value.strip() == "none" else _csv(HISTORY_ENCODERS)(value)


def encoder_row_name(encoder: str) -> str:
    """``TwoTower-BERT/<encoder>``: the name of a per-encoder row."""
    return f"{VARIANT_NAMES[ENCODER_VARIANT]}/{encoder}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of this benchmark (shared by the script and ``tfrec-llm benchmark``)."""
    common.add_config_arguments(
        parser,
        out_help="folder for quality.json/.md/.png",
        model_dir_help="cache of trained two-tower models",
        set_help="override one config field, e.g. --set train.epochs=5 (repeatable)",
    )
    parser.add_argument(
        "--protocols",
        type=_csv(PROTOCOLS),
        default=list(PROTOCOLS),
        help=f"comma-separated protocols (default: {','.join(PROTOCOLS)})",
    )
    parser.add_argument(
        "--variants",
        type=_csv(tuple(VARIANTS)),
        default=list(VARIANTS),
        help=f"two-tower variants (default: {','.join(VARIANTS)})",
    )
    parser.add_argument(
        "--encoders",
        type=_encoders,
        default=list(HISTORY_ENCODERS),
        help="history encoders, one extra row each under A and C: the bert variant with "
        f"model.history_encoder=<encoder> ('none' for no such rows; default: {','.join(HISTORY_ENCODERS)})",
    )
    parser.add_argument(
        "--peers",
        type=_csv(PEERS),
        default=list(PEERS),
        help=f"peers (default: {','.join(PEERS)})",
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
        help=f"smoke run: users<={common.QUICK_MAX_USER}, items<={common.QUICK_MAX_ITEM}, 1 epoch, "
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
    from tfrec_llm.config import replace

    cfg = common.build_config(args, QUICK_OVERRIDES)
    # Both ways: the config's own refit setting never makes the two-tower differ from the peers.
    return replace(cfg, train__refit_on_train_valid=args.refit)


def _baselines(cfg: Any, split: Any, refit: bool) -> list[tuple[Any, float]]:
    """(scorer, fit seconds) of ``eval.baselines`` (``experiments.reports.baseline_scorers``).

    Random draws its scores when scoring, so it has no fit; MostPop counts while it is built
    (again on TRAIN+VALID with ``refit``).
    """
    from tfrec_llm.evaluation.baselines import MostPopScorer
    from tfrec_llm.experiments.reports import baseline_scorers

    start = time.perf_counter()
    scorers = baseline_scorers(cfg, split)
    seconds = round(time.perf_counter() - start, 3)
    out = []
    for scorer in scorers:
        fit_seconds = seconds if isinstance(scorer, MostPopScorer) else 0.0
        if refit and isinstance(scorer, MostPopScorer):
            start = time.perf_counter()
            scorer = MostPopScorer(split, fit_on="train_valid")
            fit_seconds = round(time.perf_counter() - start, 3)
        out.append((scorer, fit_seconds))
    return out


def two_tower(
    cfg: Any, prepared: Any, variant: str, name: str, tag: str, retrain: bool, verbose: int
) -> tuple[Any, dict[str, Any]]:
    """Loads or trains one two-tower variant in its cache folder; returns (scorer, info).

    The cache folder is keyed by the hash of ``cfg`` with the variant's overrides
    (``common.cached_run_dir``), so an encoder row's config gets its own folder.
    """
    from tfrec_llm.models.scorer import TwoTowerScorer

    model, info = common.load_or_train_cached(cfg, prepared, variant, tag, retrain=retrain, verbose=verbose)
    scorer = TwoTowerScorer(model, prepared.catalog, name=name)
    return scorer, {
        "fit_seconds": float(info["train_seconds"]),
        "model_dir": info["model_dir"],
        "cached": info["cached"],
        "best_epoch": info["best_epoch"],
        "epochs_run": info["epochs_run"],
    }


def two_tower_rows(cfg: Any, args: argparse.Namespace, protocol: str) -> list[dict[str, Any]]:
    """The two-tower rows under ``protocol``: every ``--variants`` entry, then (A and C only)
    one row per ``--encoders`` entry, the ``bert`` variant with that history encoder.

    Returns:
        One dict per row: ``name``, ``cfg`` (the config to train with, before the variant's
        overrides), ``variant``, ``row`` (``variant`` or ``encoder``) and ``history_encoder``.
    """
    from tfrec_llm.config import replace
    from tfrec_llm.experiments import variant_config

    rows = [{"name": VARIANT_NAMES[v], "cfg": cfg, "variant": v, "row": "variant"} for v in args.variants]
    if protocol in ENCODER_PROTOCOLS:
        rows += [
            {
                "name": encoder_row_name(encoder),
                "cfg": replace(cfg, model__history_encoder=encoder),
                "variant": ENCODER_VARIANT,
                "row": "encoder",
            }
            for encoder in args.encoders
        ]
    for row in rows:
        row["history_encoder"] = variant_config(row["cfg"], row["variant"]).model.history_encoder
    return rows


def run_protocol(
    cfg: Any,
    dataset: Any,
    protocol: str,
    args: argparse.Namespace,
    tag: str,
    log: Callable[[str], None],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every model under one protocol; returns (records, details for the report)."""
    from tfrec_llm.experiments import prepare, timed_records
    from tfrec_llm.models.scorer import TwoTowerScorer

    ks = cfg.eval.ks
    rows = two_tower_rows(cfg, args, protocol)
    with_text = any(variant_uses_text(row["variant"]) for row in rows)
    start = time.perf_counter()
    prepared = prepare(cfg, protocol, with_text=with_text, dataset=dataset)
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
    scorers: dict[str, Any] = {}  # row name -> its scorer (known ids), for the paired comparisons

    def log_row(name: str, new: list[dict[str, Any]], fit_seconds: float, note: str = "") -> None:
        test10 = {r["metric"]: r["value"] for r in new if r["split"] == "test" and r["k"] == 10}
        log(
            f"[{protocol}] {name:18s} TEST ndcg@10 {test10.get('ndcg', float('nan')):.4f} "
            f"recall@10 {test10.get('recall', float('nan')):.4f} (fit {fit_seconds:.1f} s){note}"
        )

    def add(scorer: Any, family: str, info: dict[str, Any], **fields: Any) -> list[dict[str, Any]]:
        new = timed_records([scorer], split, ks, {scorer.name: info["fit_seconds"]})
        for record in new:
            record.update(family=family, **fields)
            if "params" in info:
                record.update(params=info["params"], tune_seconds=info["tune_seconds"])
        records.extend(new)
        scorers[scorer.name] = scorer
        details["models"][scorer.name] = {
            **info,
            "eval_seconds": sum(r["eval_seconds"] for r in new if r["metric"] == "ndcg" and r["k"] == ks[0]),
        }
        log_row(scorer.name, new, info["fit_seconds"])
        return new

    for scorer, fit_seconds in _baselines(cfg, split, args.refit):
        add(scorer, "baseline", {"fit_seconds": fit_seconds})
    for name in args.peers:
        scorer, info = tuned_peer(name, split, args.quick, args.refit)
        add(scorer, "peer", info)
    for scorer in content_peers(prepared) if args.peers else []:
        add(scorer, "peer", {"fit_seconds": round(float(scorer.fit_seconds), 3)})
    verbose = 0 if args.quiet else 2
    done: dict[str, tuple[str, list[dict[str, Any]]]] = {}  # config hash -> (first row, records)
    for row in rows:
        name = row["name"]
        fields = {k: row[k] for k in ("variant", "history_encoder", "row")}
        key = common.config_hash(row["cfg"], row["variant"], tag)
        if key in done:  # the same config as an earlier row: its model, not trained again
            first, earlier = done[key]
            for record in earlier:
                suffix = HIDDEN_SUFFIX if record["user_ids"] == "hidden" else ""
                records.append({**record, **fields, "model": name + suffix})
                info = {**details["models"][record["model"]], "same_model_as": first + suffix}
                details["models"][name + suffix] = {**info, **({"hidden_ids_of": name} if suffix else {})}
            known = [r for r in earlier if r["user_ids"] == "known"]
            scorers[name] = scorers[first]
            log_row(name, known, known[0]["fit_seconds"], f": the model of {first} (same config)")
            continue
        scorer, info = two_tower(row["cfg"], prepared, row["variant"], name, tag, args.retrain, verbose)
        new = add(scorer, "tfrec_llm", info, **fields, user_ids="known")
        if protocol in ENCODER_PROTOCOLS:
            hidden = TwoTowerScorer(
                scorer.model, prepared.catalog, name=name + HIDDEN_SUFFIX, hide_user_ids=True
            )
            info = {"fit_seconds": info["fit_seconds"], "hidden_ids_of": name}
            new = new + add(hidden, "tfrec_llm", info, **fields, user_ids="hidden")
        done[key] = (name, new)
    details["comparisons"] = compare_protocol(records, scorers, split.test, split.item_ids, protocol)
    for c in details["comparisons"]:
        log(
            f"[{protocol}] {c['b']} - {c['a']}: {c['metric']} {c['difference']:+.4f} "
            f"CI [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}], {c['test']} p = {c['p_value']:.3g}"
        )
    return records, details


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark and writes the three outputs; returns the exit code."""
    if args.merge:
        return merge(args.merge, Path(args.out))
    started = time.perf_counter()
    machine = describe_machine()
    log = common.elapsed_logger(started)
    cfg = build_config(args)
    dataset = common.load_data(cfg, args.quick)
    tag = common.data_tag(dataset)
    log(
        f"data {dataset.name}: {len(dataset.interactions)} interactions, "
        f"{len(dataset.items)} items, "
        f"{len(dataset.users)} users; models in {cfg.train.model_dir}"
    )
    records: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    for protocol in args.protocols:
        new, details[protocol] = run_protocol(cfg, dataset, protocol, args, tag, log)
        records.extend(new)

    meta = {
        "dataset": dataset.name,
        "protocols": list(args.protocols),
        "refit": args.refit,
        **provenance(SCRIPT, argv, machine),
        "seconds": time.perf_counter() - started,
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
    write_json(out / "quality.json", records, indent=1, allow_nan=False)
    write_text(out / "quality.md", render_markdown(records, details, meta))
    title = f"{meta['dataset']}, TEST, {machine['cpu']}, {machine['usable_cores']} cores"
    write_bytes(out / "quality.png", render_png(records, protocols, title))
    write_json(out / "quality_meta.json", {**meta, "details": details}, indent=1, default=str)
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
        "command": command_line(SCRIPT, ["--merge", *folders, "--out", str(out)]),
        "merged_commands": [m["command"] for m in metas],
        "seconds": max(m["seconds"] for m in metas),
    }
    write_outputs(out, records, details, meta)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python benchmarks/quality.py [options]``."""
    return common.script_main(SCRIPT, __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
