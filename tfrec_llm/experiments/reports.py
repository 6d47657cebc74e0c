"""Reports: score baselines and trained models under the protocols, as records and tables.

A record is one number (``evaluation.report.RECORD_KEYS``) as built by
``evaluation.protocols.evaluate_all``; the records made here add the timing fields
``eval_seconds`` (that scorer on that task) and, for trained models, ``fit_seconds``.

Example:
    >>> records, prepared = evaluate_protocols(cfg, ["loo", "cold-items"], ["id", "bert"])
    >>> print(test_table(records))
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from tfrec_llm.config import ExperimentConfig
from tfrec_llm.config.choices import TWO_STAGE_PROTOCOL, TWO_STAGE_VARIANT, VARIANT_NAMES, variant_uses_text
from tfrec_llm.data.splits import Split
from tfrec_llm.evaluation.baselines import MostPopScorer, RandomScorer
from tfrec_llm.evaluation.protocols import TASK_NAMES, Scorer, evaluate_all
from tfrec_llm.evaluation.report import records_to_table
from tfrec_llm.evaluation.two_stage_scorer import TwoStageScorer
from tfrec_llm.experiments.prepare import Prepared, load_dataset, prepare
from tfrec_llm.experiments.ranking_run import RANKING_VARIANT, load_or_train_ranking
from tfrec_llm.experiments.runs import load_or_train, require_trained
from tfrec_llm.models.scorer import TwoTowerScorer


def baseline_scorers(cfg: ExperimentConfig, split: Split) -> list[Scorer]:
    """The baselines named in ``eval.baselines`` (Random, MostPop), fitted on ``split``."""
    scorers: list[Scorer] = []
    if "Random" in cfg.eval.baselines:
        scorers.append(RandomScorer(split, seed=cfg.train.seed))
    if "MostPop" in cfg.eval.baselines:
        scorers.append(MostPopScorer(split))
    return scorers


def timed_records(
    scorers: Sequence[Scorer],
    split: Split,
    ks: Sequence[int],
    fit_seconds: Mapping[str, float] | None = None,
    tasks: Sequence[str] = TASK_NAMES,
) -> list[dict[str, Any]]:
    """``evaluate_all`` records of each scorer and task, with ``eval_seconds`` (and ``fit_seconds``).

    Args:
        scorers: Models built for ``split``; distinct names.
        split: The split whose tasks are scored.
        ks: Cut-offs.
        fit_seconds: Training time per scorer name, added to that scorer's records.
        tasks: Task names, from ``("valid", "test")``.

    Returns:
        Records in the order scorer, task, k, metric.
    """
    records: list[dict[str, Any]] = []
    for scorer in scorers:
        for task in tasks:
            start = time.perf_counter()
            batch = evaluate_all([scorer], split, tasks=(task,), ks=ks)
            seconds = round(time.perf_counter() - start, 3)
            users = len(getattr(split, task).user_ids)
            for record in batch:
                record["users"] = users
                record["eval_seconds"] = seconds
                if fit_seconds and record["model"] in fit_seconds:
                    record["fit_seconds"] = float(fit_seconds[record["model"]])
            records += batch
    return records


def evaluate_protocols(
    cfg: ExperimentConfig,
    protocols: Sequence[str],
    variants: Sequence[str],
    verbose: int = 1,
    if_missing: str = "train",
) -> tuple[list[dict[str, Any]], dict[str, Prepared]]:
    """Baselines and model variants (trained first where needed) under each protocol.

    Args:
        cfg: Experiment config.
        protocols: Protocols to evaluate under.
        variants: Model variants, beside the baselines of ``eval.baselines``. With ``bert``
            among them, under each of `two_stage_protocols`, the ``bert`` model followed by that
            protocol's ranking model is scored too, as "<bert's name> two-stage" (its fit
            seconds: both trainings).
        verbose: Keras progress bars while training.
        if_missing: A model not trained yet: ``train`` it, or ``error`` (`MissingRunError`,
            checked before any data is read; see ``experiments.runs.load_or_train``).

    Returns:
        (records, the prepared data per protocol).
    """
    staged = [p for p in two_stage_protocols(cfg) if p in protocols] if TWO_STAGE_VARIANT in variants else []
    if if_missing == "error":
        extra = [(p, RANKING_VARIANT) for p in staged]
        require_trained(cfg, [(p, v) for p in protocols for v in variants] + extra, "evaluate")
    dataset = load_dataset(cfg.data)
    records: list[dict[str, Any]] = []
    prepared_by_protocol: dict[str, Prepared] = {}
    for protocol in protocols:
        prepared = prepare(cfg, protocol, with_text=any(map(variant_uses_text, variants)), dataset=dataset)
        prepared_by_protocol[protocol] = prepared
        scorers = baseline_scorers(cfg, prepared.split)
        fit_seconds: dict[str, float] = {}
        for variant in variants:
            model, info = load_or_train(cfg, prepared, variant, if_missing=if_missing, verbose=verbose)
            name = VARIANT_NAMES[variant]
            scorers.append(TwoTowerScorer(model, prepared.catalog, name=name))
            fit_seconds[name] = float(info["train_seconds"])
            if protocol in staged and variant == TWO_STAGE_VARIANT:
                ranking, ranking_info = load_or_train_ranking(
                    cfg,
                    prepared,
                    if_missing=if_missing,
                    verbose=verbose,
                    variant=variant,
                    retrieval_model=model,
                )
                first = scorers[-1]
                # under cold-items the ranker scores every candidate, as the `score` signature does
                n = (
                    cfg.ranking.num_candidates
                    if protocol == TWO_STAGE_PROTOCOL
                    else prepared.catalog.num_items
                )
                scorers.append(TwoStageScorer(first, ranking, prepared.catalog, n, name=f"{name} two-stage"))
                fit_seconds[f"{name} two-stage"] = fit_seconds[name] + float(ranking_info["train_seconds"])
        records += timed_records(scorers, prepared.split, cfg.eval.ks, fit_seconds)
    return records, prepared_by_protocol


def two_stage_protocols(cfg: ExperimentConfig) -> tuple[str, ...]:
    """The protocols whose two-stage row ``evaluate`` adds: none without ``eval.two_stage``; ``loo``
    (the top ``ranking.num_candidates`` re-ranked); and ``cold-items`` with
    ``ranking.cold_item_neighbours`` (every candidate ranked, new items by their neighbours)."""
    if not cfg.eval.two_stage:
        return ()
    return (TWO_STAGE_PROTOCOL, *(("cold-items",) if cfg.ranking.cold_item_neighbours else ()))


def test_table(records: Sequence[Mapping[str, Any]]) -> str:
    """The markdown table of the TEST records, one row per model."""
    return records_to_table([r for r in records if r["split"] == "test"])
