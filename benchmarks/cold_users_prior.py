"""Protocol C (cold users) with a popularity prior in the score, beta chosen on VALID.

``model.popularity_prior`` = beta scores ``cosine / temperature + beta * log(1 + TRAIN count)``
(`tfrec_llm.models.scorer.prior_bias`). This script takes trained models from the benchmark
cache (``<model-dir>/<protocol>/<variant>-<hash>``, the folders ``quality.py`` and
``cold_users_text.py`` use; a missing protocol-C model is trained only with ``--train``, a
missing protocol-A model is never trained here), scores each VALID and TEST user once with
beta = 0, and adds the prior for every beta of the grid (the same arithmetic as the scorer;
the script checks one beta against ``TwoTowerScorer(popularity_prior=beta)``).

beta is chosen per model on VALID, never on TEST. Protocol C has no cold VALID users (its
VALID is the last item of each warm user), so the choice is made on a cold-like VALID task
built from the same VALID users: the history is each user's first 5 TRAIN interactions, the
target is the user's held-out VALID item, and all their TRAIN items are excluded from the
ranking (they are known, not candidates). The standard VALID task (whole history -> last
item) is shown beside it. Protocol A (``loo``, the default model) is scored with the beta
chosen for the default model under C, to show what the prior does to warm users.

Usage::

    python benchmarks/cold_users_prior.py                 # the recorded run
    python benchmarks/cold_users_prior.py --train         # train missing protocol-C models
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Any

import common

common.setup_environment()  # before anything imports TensorFlow

import numpy as np  # noqa: E402

from tfrec_llm.atomic_io import write_json, write_text  # noqa: E402

SCRIPT = "benchmarks/cold_users_prior.py"
NAME = "cold_users_prior"
VARIANT = "bert"
BETAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
FIRST = 5
TARGET_RECALL, TARGET_NDCG = 0.092, 0.46
DEFAULT = "TwoTower-BERT (gru, default)"
MODELS = {  # row name -> config overrides (the `bert` variant); the first is the default config
    DEFAULT: (),
    "TwoTower-BERT/lstm": ("model.history_encoder=lstm",),
    "TwoTower-BERT+user text": ("model.user_text=true", "model.use_profile=true"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The script's options."""
    common.add_config_arguments(
        parser, "folder of cold_users_prior.md/.json", "cache of trained models", "config override"
    )
    parser.add_argument("--train", action="store_true", help="train missing protocol-C models")


class MatrixScorer:
    """A `Scorer` over precomputed beta = 0 scores: ``(S + prior_bias) / temperature``."""

    def __init__(self, name: str, users: np.ndarray, scores: np.ndarray, bias: Any, temperature: float):
        self.name = name
        self.rows = {u: i for i, u in enumerate(np.asarray(users).tolist())}
        self.scores, self.bias, self.temperature = scores, bias, np.float32(temperature)

    def score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Rows of the stored scores, with the prior added."""
        rows = self.scores[[self.rows[u] for u in np.asarray(user_ids).tolist()]]
        return rows if self.bias is None else (rows + self.bias) / self.temperature


def cold_like_valid(split: Any) -> Any:
    """VALID users as cold users: first 5 TRAIN items -> the VALID item; all TRAIN items excluded."""
    from tfrec_llm.data.schema import ITEM_ID, USER_ID

    items = split.train.groupby(USER_ID, sort=False)[ITEM_ID].apply(lambda s: s.to_numpy(dtype=object))
    keep = [i for i, u in enumerate(split.valid.user_ids.tolist()) if len(items.get(u, ())) > FIRST]
    users = split.valid.user_ids[keep]
    return dataclasses.replace(
        split.valid,
        name="valid (cold-like)",
        user_ids=users,
        histories=tuple(items[u][:FIRST] for u in users.tolist()),
        exclude=tuple(np.unique(items[u]) for u in users.tolist()),
        targets=tuple(split.valid.targets[i] for i in keep),
    )


def per_user(scorer: Any, task: Any, item_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user Recall@10 and NDCG@10 (`tfrec_llm.evaluation.compare.user_evaluation`)."""
    from tfrec_llm.evaluation.compare import user_evaluation

    values = user_evaluation(scorer, task, item_ids, ks=(10,)).values
    return {key: values[key] for key in ("recall@10", "ndcg@10")}


def summary(values: dict[str, np.ndarray], base: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Means and standard errors over users (and of the paired difference to ``base``)."""
    out: dict[str, float] = {}
    for key, v in values.items():
        out[key] = float(v.mean())
        out[f"{key} se"] = float(v.std(ddof=1) / np.sqrt(v.size))
        if base is not None:
            d = v - base[key]
            out[f"{key} diff"] = float(d.mean())
            out[f"{key} diff se"] = float(d.std(ddof=1) / np.sqrt(d.size))
    return out


def model_scores(model: Any, catalog: Any, tasks: dict[str, Any]) -> dict[str, np.ndarray]:
    """beta = 0 scores of every user of each task."""
    from tfrec_llm.models.scorer import TwoTowerScorer

    scorer = TwoTowerScorer(model, catalog, popularity_prior=0.0)
    return {name: scorer.score(t.user_ids, t.histories) for name, t in tasks.items()}


def check_arithmetic(model: Any, prepared: Any, task: Any, scores: np.ndarray, beta: float) -> float:
    """Largest |difference| between `MatrixScorer` and ``TwoTowerScorer(popularity_prior=beta)``."""
    from tfrec_llm.models.scorer import TwoTowerScorer, prior_bias

    real = TwoTowerScorer(model, prepared.catalog, popularity_prior=beta)
    bias = prior_bias(prepared.catalog, beta, model.temperature)
    mine = MatrixScorer("m", task.user_ids, scores, bias, model.temperature)
    users = task.user_ids[:50]
    return float(np.abs(real.score(users, task.histories[:50]) - mine.score(users, None)).max())


def sweep(model: Any, prepared: Any, tasks: dict[str, Any], scores: dict[str, np.ndarray]) -> dict:
    """VALID (both tasks) means for every beta of the grid."""
    from tfrec_llm.evaluation.protocols import evaluate
    from tfrec_llm.models.scorer import prior_bias

    out: dict[str, list[dict[str, float]]] = {}
    for name in ("valid (cold-like)", "valid"):
        task = tasks[name]
        out[name] = []
        for beta in BETAS:
            bias = prior_bias(prepared.catalog, beta, model.temperature)
            scorer = MatrixScorer("m", task.user_ids, scores[name], bias, model.temperature)
            result = evaluate(scorer, task, prepared.split.item_ids, ks=(10,))
            out[name].append({"beta": beta, "recall@10": result["recall@10"], "ndcg@10": result["ndcg@10"]})
    return out


def choose(curve: list[dict[str, float]]) -> float:
    """The beta of the best NDCG@10 (the smaller beta on a tie)."""
    return max(curve, key=lambda r: (r["ndcg@10"], -r["beta"]))["beta"]


def test_rows(model: Any, prepared: Any, task: Any, scores: np.ndarray, beta: float) -> dict[str, Any]:
    """TEST per-user metrics at beta = 0 and at ``beta``: means, SEs, paired difference."""
    from tfrec_llm.models.scorer import prior_bias

    t = model.temperature
    plain = per_user(MatrixScorer("m", task.user_ids, scores, None, t), task, prepared.split.item_ids)
    bias = prior_bias(prepared.catalog, beta, t)
    prior = per_user(MatrixScorer("m", task.user_ids, scores, bias, t), task, prepared.split.item_ids)
    return {"beta 0": summary(plain), "chosen": summary(prior, plain)}


def load_model(args: argparse.Namespace, overrides: Sequence[str], prepared: Any, tag: str, train: bool):
    """(model, info) of the cached run of these overrides, or (None, reason) when absent."""
    from tfrec_llm.config import load_config, replace

    cfg = replace(load_config(args.config, [*overrides, *args.overrides]), train__model_dir=args.model_dir)
    directory = common.matching_run_dir(cfg, prepared, VARIANT, tag)
    state = common.run_state(directory, cfg, prepared, VARIANT)
    if state != "finished" and not train:
        return None, f"no finished run in {os.path.relpath(directory)} ({state}); not trained here"
    model, info = common.load_or_train_cached(cfg, prepared, VARIANT, tag, verbose=2)
    return model, {k: info[k] for k in ("best_epoch", "train_seconds", "cached") if k in info}


def evaluate_model(model: Any, prepared: Any, name: str, beta: float | None = None) -> dict[str, Any]:
    """VALID curves, the chosen beta (or ``beta`` given), TEST at 0 and at the chosen beta."""
    split = prepared.split
    tasks = {"valid": split.valid, "test": split.test}
    if split.protocol == "cold-users":
        tasks["valid (cold-like)"] = cold_like_valid(split)
    else:  # loo: the cold-like task is the standard VALID (only its curve is shown)
        tasks["valid (cold-like)"] = split.valid
    scores = model_scores(model, prepared.catalog, tasks)
    curves = sweep(model, prepared, tasks, scores)
    chosen = choose(curves["valid (cold-like)"]) if beta is None else beta
    record = {
        "model": name,
        "protocol": split.protocol,
        "users": {k: len(t.user_ids) for k, t in tasks.items()},
        "curves": curves,
        "beta": chosen,
        "beta_valid_standard": choose(curves["valid"]),
        "arithmetic_max_abs_diff": check_arithmetic(model, prepared, split.test, scores["test"], 0.5),
        "test": test_rows(model, prepared, split.test, scores["test"], chosen),
    }
    print(f"{split.protocol} {name}: beta {chosen} TEST {record['test']}", flush=True)
    return record


def mostpop(prepared: Any) -> dict[str, float]:
    """MostPop's TEST means and SEs (per user)."""
    from tfrec_llm.evaluation.baselines import MostPopScorer

    split = prepared.split
    return summary(per_user(MostPopScorer(split), split.test, split.item_ids))


def default_verdict(records: list[dict[str, Any]]) -> list[str]:
    """Whether the prior should be on by default: it must win on the cold-like VALID task for the
    default config and not lower protocol A's VALID NDCG@10 at that beta."""
    c = next((r for r in records if r["model"] == DEFAULT and r["protocol"] == "cold-users"), None)
    a = next((r for r in records if r["protocol"] == "loo"), None)
    if c is None or a is None:
        return ["- Default: not decided (a default-config run is missing)."]
    beta = c["beta"]
    a_valid = {p["beta"]: p["ndcg@10"] for p in a["curves"]["valid"]}
    wins = beta > 0 and a_valid[beta] >= a_valid[0.0]
    return [
        f"- Default: {'on' if wins else 'off'}. The cold-like VALID chooses beta {beta} for the "
        f"default config (VALID NDCG@10 {valid_at(c, beta):.4f} vs {valid_at(c, 0.0):.4f} at 0); "
        f"protocol A's VALID NDCG@10 at that beta is {a_valid[beta]:.4f} vs {a_valid[0.0]:.4f} at 0. "
        "Rule: on only if beta > 0 and A's VALID does not drop."
    ]


def valid_at(record: dict[str, Any], beta: float) -> float:
    """Cold-like VALID NDCG@10 of a record at ``beta``."""
    return next(p["ndcg@10"] for p in record["curves"]["valid (cold-like)"] if p["beta"] == beta)


def verdict(value: float, target: float) -> str:
    """``reached`` or ``missed by d``."""
    return "reached" if value >= target else f"missed by {target - value:.4f}"


def fmt(row: dict[str, float], key: str) -> str:
    """``mean ± se``."""
    return f"{row[key]:.4f} ± {row[f'{key} se']:.4f}"


def diff(row: dict[str, float], key: str) -> str:
    """``+d ± se`` of the paired difference."""
    return f"{row[f'{key} diff']:+.4f} ± {row[f'{key} diff se']:.4f}"


def render(meta: dict[str, Any], records: list[dict[str, Any]], pop: dict[str, float]) -> str:
    """The markdown report."""
    cold = [r for r in records if r["protocol"] == "cold-users"]
    best = max(cold, key=lambda r: valid_at(r, r["beta"]), default=None)
    lines = [
        f"# Cold users (protocol C) with a popularity prior: {meta['data']}",
        "",
        f"- Machine: {meta['machine']}; load average (1/5/15 min) at start {meta['load_start']}, "
        f"at end {meta['load_end']}. Shared with ~6 other jobs, so seconds are pessimistic; the "
        "quality numbers do not depend on load.",
        f"- Command: `{meta['command']}`, one run, {meta['wall_seconds']:.0f} s wall ({meta['date']}).",
        "- Score with the prior: `cosine / temperature + beta * log(1 + TRAIN count)` "
        "(`model.popularity_prior`; temperature 0.1, so the cosine part spans +-10). The models "
        "were trained without it (beta = 0); the prior is added at scoring time.",
        "- beta is chosen per model on VALID (NDCG@10, grid "
        f"{list(BETAS)}), never on TEST: on the cold-like VALID task (the VALID users' first "
        f"{FIRST} TRAIN items as history, their held-out VALID item as target, all their TRAIN "
        "items excluded). 'beta (std VALID)' is what the standard VALID task (whole history) "
        "would choose, for comparison.",
        f"- TEST: {meta['test_users']} cold users (first {FIRST} interactions as history, the rest "
        "targets, full ranking). ± is the standard error over users; 'vs beta 0' is the paired "
        "difference per user with its standard error. With this few users the SE is large "
        f"(MostPop: {pop['recall@10 se']:.4f} on Recall@10, {pop['ndcg@10 se']:.4f} on NDCG@10): "
        "differences between rows of that size are noise; the paired differences are tighter.",
        f"- Targets: Recall@10 >= {TARGET_RECALL}, NDCG@10 >= {TARGET_NDCG}.",
        "- Protocol B (cold items) is unchanged by construction: its candidates are the cold "
        "items, none has a TRAIN interaction, so each gets the same bonus (0) and the ranking "
        "is that of beta = 0 (tests/models/test_popularity_prior.py checks it).",
        "",
        "## Protocol C TEST",
        "",
        "| model | beta | beta (std VALID) | recall@10 | vs beta 0 | ndcg@10 | vs beta 0 | recall@10 (beta 0) "
        "| ndcg@10 (beta 0) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| MostPop | - | - | {fmt(pop, 'recall@10')} | | {fmt(pop, 'ndcg@10')} | | | |",
    ]
    for r in records:
        if r["protocol"] != "cold-users":
            continue
        c, z = r["test"]["chosen"], r["test"]["beta 0"]
        lines.append(
            f"| {r['model']} | {r['beta']} | {r['beta_valid_standard']} | {fmt(c, 'recall@10')} | "
            f"{diff(c, 'recall@10')} | {fmt(c, 'ndcg@10')} | {diff(c, 'ndcg@10')} | "
            f"{fmt(z, 'recall@10')} | {fmt(z, 'ndcg@10')} |"
        )
    if best is not None:
        c = best["test"]["chosen"]
        lines += [
            "",
            f"The model chosen on VALID (best cold-like VALID NDCG@10 at its beta): {best['model']} "
            f"at beta {best['beta']}: TEST Recall@10 {c['recall@10']:.4f} "
            f"({verdict(c['recall@10'], TARGET_RECALL)}), NDCG@10 {c['ndcg@10']:.4f} "
            f"({verdict(c['ndcg@10'], TARGET_NDCG)}).",
        ]
    lines += ["", "## Protocol A (loo, warm users) with the default model", ""]
    warm = [r for r in records if r["protocol"] == "loo"]
    for r in warm:
        c, z = r["test"]["chosen"], r["test"]["beta 0"]
        lines.append(
            f"- {r['model']} at the beta chosen for it under C ({r['beta']}): TEST NDCG@10 "
            f"{fmt(c, 'ndcg@10')} vs {fmt(z, 'ndcg@10')} at beta 0 (paired {diff(c, 'ndcg@10')}); "
            f"Recall@10 {fmt(c, 'recall@10')} vs {fmt(z, 'recall@10')} ({diff(c, 'recall@10')}). "
            f"Its own VALID would choose beta {r['beta_valid_standard']}."
        )
    lines += default_verdict(records)
    lines += [f"- {line}" for line in meta["skipped"]]
    if not warm and not meta["skipped"]:
        lines.append("- not measured")
    lines += ["", "## VALID curves (NDCG@10 / Recall@10 per beta; the choice is made here)", ""]
    head = " | ".join(str(b) for b in BETAS)
    lines += [f"| model | task | {head} |", "|---|---|" + "---|" * len(BETAS)]
    for r in records:
        for task, curve in r["curves"].items():
            if r["protocol"] == "loo" and task != "valid":
                continue
            cells = " | ".join(f"{p['ndcg@10']:.4f} / {p['recall@10']:.4f}" for p in curve)
            lines.append(f"| {r['model']} ({r['protocol']}) | {task} | {cells} |")
    lines += ["", "## Runs", ""]
    for r in records:
        lines.append(
            f"- {r['model']} ({r['protocol']}): {r['info']}; users {r['users']}; max |score "
            f"difference| between this script's arithmetic and TwoTowerScorer(popularity_prior=0.5): "
            f"{r['arithmetic_max_abs_diff']:.2e}"
        )
    return "\n".join(lines) + "\n"


def setup(args: argparse.Namespace) -> tuple[Any, Any, str, Any]:
    """(config, dataset, `common.data_tag`, protocol-C prepared data) of a cold-user run."""
    from tfrec_llm.config import load_config
    from tfrec_llm.experiments import prepare

    base = load_config(args.config, list(args.overrides))
    dataset = common.load_data(base, False)
    prepared = prepare(base, "cold-users", with_text=True, dataset=dataset)
    return base, dataset, common.data_tag(dataset), prepared


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Loads (or trains) the models, sweeps beta on VALID, evaluates TEST, writes the report."""
    from tfrec_llm.experiments import prepare

    started = time.perf_counter()
    load_start = common.load_now()
    base, dataset, tag, prepared = setup(args)
    records, skipped = [], []
    for name, overrides in MODELS.items():
        model, info = load_model(args, overrides, prepared, tag, args.train)
        if model is None:
            skipped.append(f"{name} (cold-users): {info}")
            continue
        records.append({**evaluate_model(model, prepared, name), "info": info})
    pop = mostpop(prepared)
    default_beta = next((r["beta"] for r in records if r["model"] == DEFAULT), None)
    warm = prepare(base, "loo", with_text=True, dataset=dataset)
    model, info = load_model(args, (), warm, tag, False)
    if model is None or default_beta is None:
        skipped.append(f"{DEFAULT} (loo): {info if model is None else 'no beta chosen under C'}")
    else:
        records.append({**evaluate_model(model, warm, DEFAULT, default_beta), "info": info})
    meta = {
        "data": dataset.name,
        **common.run_meta(SCRIPT, argv, started, load_start),
        "test_users": len(prepared.split.test.user_ids),
        "skipped": skipped,
    }
    os.makedirs(args.out, exist_ok=True)
    saved = {"meta": meta, "records": records, "mostpop": pop}
    write_json(os.path.join(args.out, f"{NAME}.json"), saved)
    write_text(os.path.join(args.out, f"{NAME}.md"), render(meta, records, pop))
    print(render(meta, records, pop))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    return common.script_main(NAME, __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
