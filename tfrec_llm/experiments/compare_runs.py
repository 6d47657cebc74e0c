"""Compare two finished runs (or a run and a baseline) on the same users: ``tfrec-llm compare``.

A run folder (``experiments.runs``) holds ``config.yaml``, ``result.json`` and
``model.weights.h5``; its model is rebuilt from that config and loaded, never trained here.
Both models are scored on the same task of the same protocol split, which is checked: the
two configs must give the same catalog, users and targets.

Example:
    >>> result, written = compare_runs("runs/loo/id", "runs/loo/bert", out_dir="reports/ab")
    >>> print(result.metrics[0].difference, result.metrics[0].ci)
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from tfrec_llm.atomic_io import write_text
from tfrec_llm.config import ExperimentConfig, load_config
from tfrec_llm.config.choices import SPLIT_NAMES, VARIANT_NAMES, variant_uses_text
from tfrec_llm.errors import ConfigError, DataError
from tfrec_llm.evaluation.baselines import MostPopScorer, RandomScorer
from tfrec_llm.evaluation.compare import ComparisonResult, compare_scorers
from tfrec_llm.evaluation.protocols import Scorer
from tfrec_llm.experiments.prepare import Prepared, prepare
from tfrec_llm.experiments.runs import (
    CONFIG,
    RESULT,
    WEIGHTS,
    _check_not_stale,
    build_model,
    training_fingerprint,
    variant_config,
)
from tfrec_llm.models.scorer import TwoTowerScorer

BASELINES = ("MostPop", "Random")
"""Names accepted in place of a run folder."""

REPORT = "compare.md"
PLOT = "differences.png"


def run_info(directory: str, protocol: str | None = None) -> tuple[ExperimentConfig, str, str]:
    """(config, variant, protocol) of a finished run folder.

    The variant is the one ``result.json`` records (else the folder name); the protocol is
    the parent folder's name when it is a protocol (``protocol``, when given, must equal it),
    else ``protocol``, else the config's ``eval.protocol``.

    Raises:
        ConfigError: If the folder lacks ``config.yaml`` or ``model.weights.h5``, or was trained
            under another protocol than ``protocol``.
    """
    missing = [name for name in (CONFIG, WEIGHTS) if not os.path.exists(os.path.join(directory, name))]
    if missing:
        raise ConfigError(
            f"{directory} is not a finished run folder (missing {', '.join(missing)}); pass a folder "
            f"made by 'tfrec-llm train' (<model_dir>/<protocol>/<variant>) or one of {BASELINES}."
        )
    cfg = load_config(os.path.join(directory, CONFIG))
    variant = os.path.basename(os.path.normpath(directory))
    result_path = os.path.join(directory, RESULT)
    if os.path.exists(result_path):
        with open(result_path, encoding="utf-8") as f:
            variant = str(json.load(f).get("variant", variant))
    if variant not in VARIANT_NAMES:
        raise ConfigError(
            f"{directory}: unknown variant {variant!r}; expected one of {sorted(VARIANT_NAMES)}."
        )
    parent = os.path.basename(os.path.dirname(os.path.normpath(directory)))
    if parent in SPLIT_NAMES and protocol not in (None, parent):
        raise ConfigError(
            f"{directory} was trained under protocol {parent!r}; scoring it under {protocol!r} would "
            "rank a split it was not trained for (its TEST items may be in its training data). "
            f"Compare runs of <model_dir>/{protocol}/ instead."
        )
    if protocol is None:
        protocol = parent if parent in SPLIT_NAMES else cfg.eval.protocol
    return cfg, variant, protocol


def load_run_scorer(directory: str, prepared: Prepared, cfg: ExperimentConfig, variant: str) -> Scorer:
    """The trained model of a run folder as a scorer on ``prepared`` (checked not stale).

    Raises:
        StaleRunError: If the folder's model was trained with other settings or data.
    """
    _check_not_stale(directory, training_fingerprint(variant_config(cfg, variant), prepared))
    model = build_model(cfg, prepared, variant)
    model.load_weights(os.path.join(directory, WEIGHTS))
    return TwoTowerScorer(model, prepared.catalog, name=VARIANT_NAMES[variant])


def _same_task(first: Prepared, second: Prepared, split: str) -> None:
    """Raises DataError unless both prepared splits rank the same users, targets and catalog."""
    a, b = getattr(first.split, split), getattr(second.split, split)
    same = (
        np.array_equal(first.split.item_ids, second.split.item_ids)
        and np.array_equal(a.user_ids, b.user_ids)
        and all(np.array_equal(x, y) for x, y in zip(a.targets, b.targets))
    )
    if not same:
        raise DataError(
            f"the two runs were made on different data or splits ({split} users, targets or catalog "
            "differ); an A/B comparison needs the same users and protocol for both."
        )


def _baseline(name: str, prepared: Prepared, seed: int) -> Scorer:
    return MostPopScorer(prepared.split) if name == "MostPop" else RandomScorer(prepared.split, seed=seed)


def compare_runs(
    run_a: str,
    run_b: str,
    protocol: str | None = None,
    split: str = "test",
    metric: str = "ndcg",
    k: int = 10,
    n_bootstrap: int = 10000,
    seed: int = 0,
    out_dir: str | None = None,
) -> tuple[ComparisonResult, list[str]]:
    """Scores two runs on the same task and compares them user by user.

    Args:
        run_a: Run folder of model A, or a baseline name (``MostPop``, ``Random``).
        run_b: Run folder of model B, or a baseline name.
        protocol: The protocol (default: see `run_info`; both runs must agree).
        split: ``test`` or ``valid``.
        metric: Headline metric: ``ndcg``, ``recall`` or ``hr``.
        k: Cut-off, also the interleaved list length.
        n_bootstrap: Bootstrap resamples.
        seed: Seed of the bootstrap and the interleaving coin flips.
        out_dir: Where ``compare.md`` and ``differences.png`` go (nothing written when None).

    Returns:
        (the comparison, the paths written).

    Raises:
        ConfigError: If a folder is not a finished run, both are baselines, or the protocols differ.
        DataError: If the two runs do not share users, targets and catalog.
        StaleRunError: If a folder's model does not match its config and data.
    """
    if split not in ("test", "valid"):
        raise ConfigError(f"split={split!r}; expected 'test' or 'valid'.")
    runs: list[Any] = []
    for run in (run_a, run_b):
        runs.append(None if run in BASELINES else run_info(run, protocol))
    if runs[0] is None and runs[1] is None:
        raise ConfigError("both RUN_A and RUN_B are baselines; at least one must be a run folder.")
    protocols = {info[2] for info in runs if info is not None}
    if len(protocols) > 1:
        raise ConfigError(
            f"the runs are under different protocols {sorted(protocols)}; pass --protocol to score "
            "both under one."
        )
    (protocol,) = protocols
    prepared: list[Prepared | None] = []
    for info in runs:
        if info is None:
            prepared.append(None)
            continue
        cfg, variant, _ = info
        prepared.append(prepare(cfg, protocol, with_text=variant_uses_text(variant)))
    reference = next(p for p in prepared if p is not None)
    scorers: list[Scorer] = []
    for run, info, ready in zip((run_a, run_b), runs, prepared):
        if info is None or ready is None:
            scorers.append(_baseline(run, reference, seed))
            continue
        _same_task(reference, ready, split)
        scorers.append(load_run_scorer(run, ready, info[0], info[1]))
    if scorers[0].name == scorers[1].name:
        for scorer, tag in zip(scorers, "AB"):
            scorer.name = f"{scorer.name} [{tag}]"
    result = compare_scorers(
        scorers[0],
        scorers[1],
        getattr(reference.split, split),
        reference.split.item_ids,
        metric=metric,
        k=k,
        n_resamples=n_bootstrap,
        seed=seed,
        label=f"protocol {protocol}, {split.upper()}",
    )
    written: list[str] = []
    if out_dir:
        report_path = os.path.join(out_dir, REPORT)
        write_text(report_path, result.to_markdown() + f"\n\n![per-user differences]({PLOT})\n")
        written += [report_path, result.plot(os.path.join(out_dir, PLOT))]
    return result, written
