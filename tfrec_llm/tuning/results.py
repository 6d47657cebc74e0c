"""What a search leaves: one record per trial, ``results.csv``, ``results.md``, ``best.yaml``.

The records are read from KerasTuner's trials (the oracle's state), so a resumed search, or the
chief of a distributed one, writes every trial exactly once whoever ran it.

Example:
    >>> records = trial_records(tuner.oracle.trials.values(), "valid/ndcg@10")
    >>> write_csv(records, ["model.embedding_dim"], "valid/ndcg@10", "runs/tune/results.csv")
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

from tfrec_llm.atomic_io import write_text
from tfrec_llm.config import ExperimentConfig, dump_config, replace
from tfrec_llm.tuning.search_space import trial_config

# Extra metrics every trial reports beside the VALID ones (see tuner.TwoTowerTrials.run_trial).
SECONDS = "seconds"
EPOCHS_RUN = "epochs_run"
BEST_EPOCH = "best_epoch"
BUDGET = "tuner/epochs"


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial, as it appears in the results table.

    Attributes:
        trial_id: KerasTuner's trial id (``DIR/trial_<id>/``).
        status: ``COMPLETED``, ``RUNNING`` (unfinished), ``FAILED`` or ``INVALID``.
        values: The searched hyperparameters (``tuner/...`` keys excluded).
        budget: Hyperband's epoch budget of the trial, None for the other algorithms.
        score: The objective (mean over executions), None unless completed.
        seconds: Training + validation time of the trial.
        best_epoch: Epoch of the best VALID score, counted from 1.
        epochs_run: Epochs trained before early stopping or the budget ended it.
    """

    trial_id: str
    status: str
    values: dict[str, Any]
    budget: int | None
    score: float | None
    seconds: float | None
    best_epoch: int | None
    epochs_run: int | None


def _metric(trial: Any, name: str) -> float | None:
    if not trial.metrics.exists(name):
        return None
    value = trial.metrics.get_best_value(name)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def trial_records(trials: Iterable[Any], objective: str) -> list[TrialRecord]:
    """Records of KerasTuner ``Trial`` objects, sorted by trial id.

    Args:
        trials: ``oracle.trials.values()``.
        objective: Name of the objective metric (``valid/ndcg@10``).
    """
    records = []
    for trial in trials:
        values = dict(trial.hyperparameters.values)
        budget = values.pop(BUDGET, None)
        values = {k: v for k, v in values.items() if not k.startswith("tuner/")}
        completed = trial.status == "COMPLETED"
        best_epoch, epochs_run = _metric(trial, BEST_EPOCH), _metric(trial, EPOCHS_RUN)
        records.append(
            TrialRecord(
                trial_id=str(trial.trial_id),
                status=str(trial.status),
                values=values,
                budget=None if budget is None else int(budget),
                score=_metric(trial, objective) if completed else None,
                seconds=_metric(trial, SECONDS),
                best_epoch=None if best_epoch is None else int(best_epoch) + 1,
                epochs_run=None if epochs_run is None else int(epochs_run),
            )
        )
    return sorted(records, key=lambda r: r.trial_id)


def best_record(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The completed trial with the highest score (the earliest on ties), or None."""
    done = sorted((r for r in records if r.score is not None), key=lambda r: r.trial_id)
    return max(done, key=lambda r: r.score) if done else None  # max() keeps the first of equals


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _columns(records: Sequence[TrialRecord], names: Sequence[str], objective: str) -> list[str]:
    hyperband = any(r.budget is not None for r in records)
    return [
        "trial",
        "status",
        *names,
        *(["budget_epochs"] if hyperband else []),
        objective,
        "seconds",
        "best_epoch",
        "epochs_run",
    ]


def _row(record: TrialRecord, names: Sequence[str], hyperband: bool) -> list[Any]:
    return [
        record.trial_id,
        record.status,
        *(record.values.get(n) for n in names),
        *([record.budget] if hyperband else []),
        record.score,
        None if record.seconds is None else round(record.seconds, 2),
        record.best_epoch,
        record.epochs_run,
    ]


def write_csv(
    records: Sequence[TrialRecord],
    names: Sequence[str],
    objective: str,
    path: str | os.PathLike[str],
) -> None:
    """Writes one row per trial: id, status, hyperparameters, objective, seconds, epochs."""
    hyperband = any(r.budget is not None for r in records)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_columns(records, names, objective))
    for record in records:
        writer.writerow(["" if v is None else v for v in _row(record, names, hyperband)])
    write_text(path, out.getvalue())


def markdown_table(records: Sequence[TrialRecord], names: Sequence[str], objective: str) -> str:
    """The results as a GitHub markdown table; the best trial's id is marked with ``*``."""
    hyperband = any(r.budget is not None for r in records)
    best = best_record(records)
    lines = ["| " + " | ".join(_columns(records, names, objective)) + " |"]
    lines.append("|" + "---|" * len(_columns(records, names, objective)))
    for record in records:
        cells = [_format(v) for v in _row(record, names, hyperband)]
        if best is not None and record.trial_id == best.trial_id:
            cells[0] += " *"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(
    records: Sequence[TrialRecord],
    names: Sequence[str],
    objective: str,
    path: str | os.PathLike[str],
    title: str,
) -> None:
    """Writes ``title``, the table and a line naming the best trial."""
    best = best_record(records)
    done = sum(r.status == "COMPLETED" for r in records)
    footer = (
        f"Best: trial {best.trial_id}, {objective} = {best.score:.6g} (marked *). "
        f"{done} of {len(records)} trials completed."
        if best is not None
        else f"No completed trial yet ({len(records)} started)."
    )
    write_text(path, f"# {title}\n\n{markdown_table(records, names, objective)}\n\n{footer}\n")


def write_best_config(cfg: ExperimentConfig, path: str | os.PathLike[str], header: Sequence[str]) -> None:
    """Writes ``cfg`` as YAML under ``header`` lines as comments (``load_config`` reads it)."""
    comments = "".join(f"# {line}\n" for line in header)
    write_text(path, comments + dump_config(cfg))


def best_config(cfg: ExperimentConfig, record: TrialRecord, directory: str) -> ExperimentConfig:
    """The config written to ``DIR/best.yaml`` for the trial of ``record``.

    It is the trial's config with ``train.model_dir = DIR/best/trial_<id>`` (so ``tfrec-llm
    train`` never picks up the model of another run or of an earlier best), the base config's
    refit setting, and the text-embedding cache of the base config (no re-encoding).
    """
    trial = trial_config(cfg, record.values, epochs=record.budget)
    cache = cfg.text.cache_dir or os.path.join(cfg.train.model_dir, "text_cache")
    return replace(
        trial,
        train__model_dir=os.path.join(directory, "best", f"trial_{record.trial_id}"),
        train__refit_on_train_valid=cfg.train.refit_on_train_valid,
        text__cache_dir=cache,
    )
