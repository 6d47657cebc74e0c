"""The files a search leaves in ``DIR`` and the :class:`SearchSummary` of them.

:func:`write_search_results` turns KerasTuner's trials (the oracle's state) into
``results.csv``, ``results.md`` and, once a trial has completed, ``best.yaml``
(:mod:`tfrec_llm.tuning.results` formats each file). :meth:`TwoTowerTrials.write_results
<tfrec_llm.tuning.trials.TwoTowerTrials.write_results>` calls it after every trial.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from typing import Any

from tfrec_llm.config import ExperimentConfig
from tfrec_llm.tuning.results import (
    TrialRecord,
    best_config,
    best_record,
    trial_records,
    write_best_config,
    write_csv,
    write_markdown,
)
from tfrec_llm.tuning.search_space import objective_name, space_names


@dataclasses.dataclass(frozen=True)
class SearchSummary:
    """What :func:`write_search_results` wrote.

    Attributes:
        directory: The search directory.
        objective: Objective metric name (``valid/ndcg@10``).
        records: One record per trial, by trial id.
        best: The best completed trial, or None.
        best_config_path: ``DIR/best.yaml``, or None while no trial has completed.
    """

    directory: str
    objective: str
    records: list[TrialRecord]
    best: TrialRecord | None
    best_config_path: str | None


def write_search_results(
    cfg: ExperimentConfig, search_dir: str, variant: str, trials: Iterable[Any]
) -> SearchSummary:
    """Writes ``results.csv``, ``results.md`` and (once a trial completed) ``best.yaml``.

    Args:
        cfg: The base config of the search (``cfg.tune`` names the objective and the space).
        search_dir: The search directory (``DIR``); the files are written there, atomically.
        variant: Model variant of every trial (named in ``results.md`` and ``best.yaml``).
        trials: KerasTuner's trials, e.g. ``tuner.oracle.trials.values()``.

    Returns:
        What was written.
    """
    objective = objective_name(cfg)
    names = space_names(cfg)
    records = trial_records(trials, objective)
    write_csv(records, names, objective, os.path.join(search_dir, "results.csv"))
    tune = cfg.tune
    title = f"Search {os.path.basename(search_dir)}: {tune.algorithm}, variant {variant}"
    write_markdown(records, names, objective, os.path.join(search_dir, "results.md"), title)
    best = best_record(records)
    path = None
    if best is not None:
        path = os.path.join(search_dir, "best.yaml")
        header = [
            f"best trial {best.trial_id} of the search in {search_dir}: {objective} = {best.score:.6g}",
            f"retrain: tfrec-llm train --config {path} --variant {variant} --protocol {tune.protocol}",
        ]
        write_best_config(best_config(cfg, best, search_dir), path, header)
    return SearchSummary(search_dir, objective, records, best, path)
