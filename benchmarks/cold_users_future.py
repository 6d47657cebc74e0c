"""Protocol C (cold users) with the future-window objective, against the next item.

``model.future_window`` = N trains each position of a ``next_item`` window on a target drawn
anew at every step from its next N items (PinnerFormer's dense all-action loss); N = 1 is
SASRec's next item, the default. A cold user of protocol C gives their first 5 interactions,
and every later one is a target, so the objective that predicts "some item of the next N"
matches the task better than the one that predicts the very next click. ``model.future_weight``
= 0.5 (the "half next-item loss" rows) trains on the mean of both losses.

Each row is a protocol-C model from the benchmark cache (``<model-dir>/cold-users/bert-<hash>``,
as ``quality.py``, ``cold_users_prior.py`` and ``seeds.py`` write them; a missing one is trained
only with ``--train``). It is scored at beta = 0 (plain cosine) and at the popularity-prior beta
chosen on the cold-like VALID task (`cold_users_prior.choose`). The paired per-user difference
is against the row's BASE: the same setting and seed with ``future_window`` 1, at the same beta
rule. Protocol A's cost is measured on cached ``loo`` runs (``seeds.py --protocol loo`` trains
them; never trained here).

Usage::

    python benchmarks/cold_users_future.py            # the recorded run (cached models)
    python benchmarks/cold_users_future.py --train    # train missing protocol-C models
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

import common

common.setup_environment()  # before anything imports TensorFlow

import cold_users_prior as prior  # noqa: E402

from tfrec_llm.atomic_io import write_json, write_text  # noqa: E402

SCRIPT = "benchmarks/cold_users_future.py"
NAME = "cold_users_future"
USER_TEXT = ("model.user_text=true", "model.use_profile=true")
SETTINGS = {  # setting -> (its overrides, overrides only when future_window > 1); the `bert` variant
    "GRU (default)": ((), ()),
    "LSTM": (("model.history_encoder=lstm",), ()),
    "GRU + user text": (USER_TEXT, ()),
    "GRU, half next-item loss": ((), ("model.future_weight=0.5",)),
}
ROWS = (  # (setting, future_window, train.seed); window 1 of the same setting and seed is the base
    *(("GRU (default)", w, 42) for w in (1, 5, 10, 20, 100)),
    ("GRU (default)", 1, 1),
    ("GRU (default)", 10, 1),
    ("LSTM", 1, 42),
    ("LSTM", 10, 42),
    *(("GRU + user text", w, s) for s in (42, 1) for w in (1, 10)),
    ("GRU, half next-item loss", 1, 42),
    ("GRU, half next-item loss", 10, 42),
    ("GRU, half next-item loss", 1, 1),
    ("GRU, half next-item loss", 10, 1),
)
WARM = (
    *(("GRU (default)", w, 42) for w in (1, 10)),
    ("GRU, half next-item loss", 10, 42),
    ("GRU (default)", 1, 1),
    ("GRU, half next-item loss", 10, 1),
)
"""Protocol A (loo) runs: (setting, future_window, seed); each paired with window 1 of its seed."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The script's options."""
    common.add_config_arguments(
        parser, "folder of cold_users_future.md/.json", "cache of trained models", "config override"
    )
    parser.add_argument("--train", action="store_true", help="train missing protocol-C models")


def overrides(setting: str, window: int, seed: int) -> tuple[str, ...]:
    """Config overrides of one row (window 1 and seed 42 add nothing: the cached default keys)."""
    always, future = SETTINGS[setting]
    extra = (f"model.future_window={window}", *future) if window != 1 else ()
    return (*always, *extra, *((f"train.seed={seed}",) if seed != 42 else ()))


def score_model(model: Any, prepared: Any) -> dict[str, Any]:
    """Per-user TEST values at beta 0 and at the beta chosen on the cold-like VALID task."""
    from tfrec_llm.models.scorer import prior_bias

    split = prepared.split
    tasks = {"valid": split.valid, "test": split.test}
    tasks["valid (cold-like)"] = (
        prior.cold_like_valid(split) if split.protocol == "cold-users" else split.valid
    )
    scores = prior.model_scores(model, prepared.catalog, tasks)
    curves = prior.sweep(model, prepared, tasks, scores)
    beta = prior.choose(curves["valid (cold-like)"])
    t = model.temperature
    values = {}
    for name, b in (("beta 0", 0.0), ("chosen", beta)):
        bias = None if b == 0 else prior_bias(prepared.catalog, b, t)
        scorer = prior.MatrixScorer("m", split.test.user_ids, scores["test"], bias, t)
        values[name] = prior.per_user(scorer, split.test, split.item_ids)
    return {
        "beta": beta,
        "valid_cold_like_ndcg@10": prior.valid_at({"curves": curves}, beta),
        "values": values,
    }


def paired_rows(scored: dict[tuple[str, int, int], dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per row: means, SEs, and the paired difference to its window-1 base."""
    records = []
    for (setting, window, seed), row in scored.items():
        base = scored.get((setting, 1, seed))
        record = {"setting": setting, "future_window": window, "seed": seed, "beta": row["beta"]}
        record["valid_cold_like_ndcg@10"] = row["valid_cold_like_ndcg@10"]
        for rule in ("beta 0", "chosen"):
            against = base["values"][rule] if base is not None and window != 1 else None
            record[rule] = prior.summary(row["values"][rule], against)
        record["info"] = row["info"]
        records.append(record)
    return records


def warm_cost(args: argparse.Namespace, warm: Any, tag: str) -> list[dict[str, Any]]:
    """Protocol A TEST NDCG@10 / Recall@10 of the cached loo runs, paired against window 1."""
    from tfrec_llm.evaluation.compare import user_evaluation
    from tfrec_llm.models.scorer import TwoTowerScorer

    values, out = {}, []
    for setting, window, seed in WARM:
        model, info = prior.load_model(args, overrides(setting, window, seed), warm, tag, False)
        if model is None:
            out.append({"setting": setting, "future_window": window, "seed": seed, "skipped": info})
            continue
        scorer = TwoTowerScorer(model, warm.catalog)
        found = user_evaluation(scorer, warm.split.test, warm.split.item_ids, ks=(10,)).values
        values[(setting, window, seed)] = {k: found[k] for k in ("ndcg@10", "recall@10")}
        base = values.get(("GRU (default)", 1, seed)) if window != 1 else None
        out.append(
            {
                "setting": setting,
                "future_window": window,
                "info": info,
                "seed": seed,
                **prior.summary(values[(setting, window, seed)], base),
            }
        )
    return out


def fmt(row: dict[str, float], key: str) -> str:
    """``mean ± se (paired diff ± se)`` where a base exists."""
    text = f"{row[key]:.4f} ± {row[f'{key} se']:.4f}"
    return text + (
        f" ({row[f'{key} diff']:+.4f} ± {row[f'{key} diff se']:.4f})" if f"{key} diff" in row else ""
    )


def render(meta: dict[str, Any], records: list[dict[str, Any]], warm: list[dict[str, Any]], pop: dict) -> str:
    """The markdown report."""
    target = f"Recall@10 >= {prior.TARGET_RECALL}, NDCG@10 >= {prior.TARGET_NDCG}"
    lines = [
        f"# Cold users (protocol C): the future-window objective vs the next item ({meta['data']})",
        "",
        f"- Machine: {meta['machine']}; load average (1/5/15 min) at start {meta['load_start']}, at "
        f"end {meta['load_end']}. Quality does not depend on load.",
        f"- Command: `{meta['command']}`, {meta['wall_seconds']:.0f} s wall ({meta['date']}).",
        "- Each model: the main config's `bert` variant (GRU, next_item windows of 101, full "
        "softmax) with the row's setting, `model.future_window` and `train.seed`, early-stopped "
        "on the standard VALID NDCG@10 (the next item).",
        f"- TEST: {meta['test_users']} cold users (first 5 interactions as history, the rest as "
        "targets, full ranking). Cells: mean ± SE over users, then in brackets the paired "
        "per-user difference to the same setting and seed with future_window 1, at the same "
        "beta rule. 'beta' is the popularity prior chosen on the cold-like VALID task "
        "(benchmarks/cold_users_prior.py); that task has one target per user and separates "
        f"these models only within its noise. Targets (issues 9 and 10): {target}.",
        "",
        "| setting | future_window | seed | Recall@10, beta 0 | NDCG@10, beta 0 | beta | Recall@10, beta | "
        "NDCG@10, beta |",
        "|---|---|---|---|---|---|---|---|",
        f"| MostPop | – | – | {fmt(pop, 'recall@10')} | {fmt(pop, 'ndcg@10')} | – | – | – |",
    ]
    for r in records:
        z, c = r["beta 0"], r["chosen"]
        lines.append(
            f"| {r['setting']} | {r['future_window']} | {r['seed']} | {fmt(z, 'recall@10')} | "
            f"{fmt(z, 'ndcg@10')} | {r['beta']} | {fmt(c, 'recall@10')} | {fmt(c, 'ndcg@10')} |"
        )
    lines += ["", "## Protocol A (loo, warm users): what the objective costs", ""]
    for w in warm:
        if "skipped" in w:
            lines.append(
                f"- {w['setting']}, future_window {w['future_window']}, seed {w['seed']}: {w['skipped']}"
            )
            continue
        lines.append(
            f"- {w['setting']}, future_window {w['future_window']}, seed {w['seed']}: TEST NDCG@10 {fmt(w, 'ndcg@10')}, Recall@10 "
            f"{fmt(w, 'recall@10')} (best epoch {w['info'].get('best_epoch')})."
        )
    lines += ["", "## Runs", ""]
    lines += [
        f"- {r['setting']}, future_window {r['future_window']}, seed {r['seed']}: {r['info']}; "
        f"cold-like VALID NDCG@10 at its beta {r['valid_cold_like_ndcg@10']:.4f}"
        for r in records
    ]
    lines += [f"- skipped: {s}" for s in meta["skipped"]]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Loads (or trains) every row's model, scores TEST, writes the report."""
    from tfrec_llm.experiments import prepare

    started = time.perf_counter()
    load_start = common.load_now()
    base, dataset, tag, prepared = prior.setup(args)
    scored, skipped = {}, []
    for setting, window, seed in ROWS:
        model, info = prior.load_model(args, overrides(setting, window, seed), prepared, tag, args.train)
        if model is None:
            skipped.append(f"{setting}, future_window {window}, seed {seed}: {info}")
            continue
        scored[(setting, window, seed)] = {**score_model(model, prepared), "info": info}
        print(
            f"[{NAME}] {setting} window {window} seed {seed}: beta {scored[(setting, window, seed)]['beta']}"
        )
    records = paired_rows(scored)
    warm = warm_cost(args, prepare(base, "loo", with_text=True, dataset=dataset), tag)
    meta = {
        "data": dataset.name,
        **common.run_meta(SCRIPT, argv, started, load_start),
        "test_users": len(prepared.split.test.user_ids),
        "skipped": skipped,
    }
    pop = prior.mostpop(prepared)
    os.makedirs(args.out, exist_ok=True)
    write_json(
        os.path.join(args.out, f"{NAME}.json"),
        {"meta": meta, "records": records, "warm": warm, "mostpop": pop},
    )
    text = render(meta, records, warm, pop)
    write_text(os.path.join(args.out, f"{NAME}.md"), text)
    print(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    return common.script_main(NAME, __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
