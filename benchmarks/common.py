"""What the benchmark scripts share: setup, options, config, data, the model cache, timing.

The scripts (``quality.py``, ``speed.py``, ``serving_load.py``) run as ``python
benchmarks/<name>.py`` (this folder is then ``sys.path[0]``) or through ``tfrec-llm benchmark
<name>`` (``tfrec_llm.cli.benchmark_commands.load_benchmark`` puts this folder on ``sys.path``),
so they import this module and their other siblings by their plain names. Nothing here
re-implements a step of the package: data, splits, training, seeding and evaluation go through
``tfrec_llm.experiments``; result files are written with ``tfrec_llm.atomic_io``. What a report
says about the machine and the command lives in the sibling ``machine.py``.

Trained two-tower models are cached in ``<model-dir>/<protocol>/<variant>-<config hash>``
(`cached_run_dir`): a changed config (e.g. new defaults) or another data set gets a new folder,
and ``load_or_train`` refuses a folder whose recorded settings or data differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

DEFAULT_MODEL_DIR = os.path.join("runs", "bench")
DEFAULT_OUT = os.path.join("benchmarks", "results")

QUICK_MAX_USER = 120
QUICK_MAX_ITEM = 250
"""``--quick`` keeps the users and items whose (integer) id is at most these (`quick_subset`)."""

T = TypeVar("T")


def setup_environment() -> None:
    """Quiets TensorFlow's C++ logging and selects Keras 2; call before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tfrec_llm  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)


def child_environment() -> dict[str, str]:
    """The environment of a process a benchmark starts: this one, with TF's C++ logging quiet."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}


# ----------------------------------------------------------------------------- options


def add_config_arguments(
    parser: argparse.ArgumentParser, out_help: str, model_dir_help: str, set_help: str
) -> None:
    """Adds ``--out``, ``--config``, ``--set`` (dest ``overrides``) and ``--model-dir``."""
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"{out_help} (default {DEFAULT_OUT})")
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
        help=set_help,
    )
    parser.add_argument(
        "--model-dir",
        default=DEFAULT_MODEL_DIR,
        help=f"{model_dir_help} (default {DEFAULT_MODEL_DIR})",
    )


def script_main(
    prog: str,
    description: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace, Sequence[str] | None], int],
    argv: Sequence[str] | None = None,
) -> int:
    """The ``main(argv)`` of a script: parse its options, then ``run(args, argv)``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, argv)


# ----------------------------------------------------------------------------- config and data


def build_config(args: argparse.Namespace, quick_overrides: Sequence[str] = ()) -> Any:
    """The experiment config: ``--config`` (or the defaults), ``quick_overrides`` when
    ``args.quick``, then every ``--set``; ``train.model_dir`` is ``--model-dir``."""
    from tfrec_llm.config import load_config, replace

    overrides = (list(quick_overrides) if args.quick else []) + list(args.overrides)
    return replace(load_config(args.config, overrides), train__model_dir=args.model_dir)


def quick_subset(dataset: Any) -> Any:
    """The ``--quick`` slice of a data set: small integer user and item ids only."""
    import dataclasses

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


def load_data(cfg: Any, quick: bool) -> Any:
    """The data set of ``cfg.data`` (``experiments.load_dataset``), `quick_subset` if ``quick``."""
    from tfrec_llm.experiments import load_dataset

    dataset = load_dataset(cfg.data)
    return quick_subset(dataset) if quick else dataset


def data_tag(dataset: Any) -> str:
    """``name:interactions:items:users``, the data part of the model cache key."""
    sizes = (len(dataset.interactions), len(dataset.items), len(dataset.users))
    return ":".join(map(str, (dataset.name, *sizes)))


# ----------------------------------------------------------------------------- model cache


def config_hash(cfg: Any, variant: str, tag: str) -> str:
    """Eight hex characters of everything that changes a trained variant (not paths).

    Args:
        cfg: Experiment config.
        variant: ``id``, ``text`` or ``bert`` (``tfrec_llm.config.choices.VARIANTS``).
        tag: `data_tag` of the data set.
    """
    from tfrec_llm.config import config_to_dict
    from tfrec_llm.experiments import variant_config

    values = config_to_dict(variant_config(cfg, variant))
    values["train"].pop("model_dir", None)
    values["text"].pop("cache_dir", None)
    values["text"].pop("batch_size", None)
    if values["model"].get("popularity_prior") == 0.0:  # added later: off keeps the old keys
        values["model"].pop("popularity_prior")
    # Only what shapes a trained model, as runs.training_fingerprint: the eval, export and tune
    # sections (and the name) do not, so a new default search space keeps every cached model.
    values = {section: values[section] for section in ("data", "text", "model", "train")}
    values["data_tag"] = tag
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]


def cached_run_dir(cfg: Any, protocol: str, variant: str, tag: str) -> str:
    """``<train.model_dir>/<protocol>/<variant>-<config hash>``: the run folder of a variant."""
    return os.path.join(cfg.train.model_dir, protocol, f"{variant}-{config_hash(cfg, variant, tag)}")


def matching_run_dir(cfg: Any, prepared: Any, variant: str, tag: str) -> str:
    """The `cached_run_dir` of these settings, or else a finished folder of the same variant whose
    recorded fingerprint matches them (`run_state`): a run trained before a config field was
    added sits under another key, and is the same model when the field takes its default.
    """
    directory = cached_run_dir(cfg, prepared.split.protocol, variant, tag)
    parent = os.path.dirname(directory)
    if os.path.exists(directory) or not os.path.isdir(parent):
        return directory
    for name in sorted(os.listdir(parent)):
        other = os.path.join(parent, name)
        if name.startswith(f"{variant}-") and run_state(other, cfg, prepared, variant) == "finished":
            return other
    return directory


def run_state(directory: str, cfg: Any, prepared: Any, variant: str) -> str:
    """What ``experiments.load_or_train`` would do with ``directory``, without doing it.

    Returns:
        ``"finished"`` (a model trained with these settings and data: it loads),
        ``"other-settings"`` (a model without a record of, or with other, settings or data:
        ``load_or_train`` refuses it unless told to retrain) or ``"missing"`` (it trains).
    """
    from tfrec_llm.experiments import runs
    from tfrec_llm.experiments.fingerprint import with_new_fields

    if not all(os.path.exists(os.path.join(directory, f)) for f in (runs.WEIGHTS, runs.RESULT)):
        return "missing"
    marker = os.path.join(directory, runs.FINGERPRINT)
    if not os.path.exists(marker):
        return "other-settings"
    with open(marker, encoding="utf-8") as handle:
        recorded = with_new_fields(json.load(handle))  # fields added later take their defaults
    expected = runs.training_fingerprint(runs.variant_config(cfg, variant), prepared)
    return "finished" if recorded == expected else "other-settings"


def load_or_train_cached(
    cfg: Any,
    prepared: Any,
    variant: str,
    tag: str,
    *,
    retrain: bool = False,
    if_stale: str = "error",
    verbose: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """The finished model of ``variant`` in its `matching_run_dir`, trained first if needed.

    ``experiments.load_or_train`` seeds, trains (early stopping on VALID), and refuses a
    folder trained with other settings or data (``if_stale``).

    Returns:
        (model, info) with load_or_train's info plus ``model_dir`` and ``cached`` (the model
        was loaded, not trained now).
    """
    from tfrec_llm.experiments import load_or_train

    directory = matching_run_dir(cfg, prepared, variant, tag)
    cached = not retrain and run_state(directory, cfg, prepared, variant) == "finished"
    model, info = load_or_train(
        cfg, prepared, variant, directory, retrain=retrain, if_stale=if_stale, verbose=verbose
    )
    return model, {**info, "model_dir": directory, "cached": cached}


# ----------------------------------------------------------------------------- statistics


def paired(base: Any, other: Any) -> dict[str, float]:
    """Means, standard errors and the paired difference (``other - base``) of per-user values.

    The keys name the two-stage comparison they were written for: ``retrieval`` (base),
    ``two_stage`` (other), each with ``_se``, and ``difference`` with ``difference_se``.
    """
    import numpy as np

    base, other = np.asarray(base, np.float64), np.asarray(other, np.float64)
    diff = other - base
    root = np.sqrt(diff.size)
    return {
        "retrieval": float(base.mean()),
        "retrieval_se": float(base.std(ddof=1) / root),
        "two_stage": float(other.mean()),
        "two_stage_se": float(other.std(ddof=1) / root),
        "difference": float(diff.mean()),
        "difference_se": float(diff.std(ddof=1) / root),
    }


# ----------------------------------------------------------------------------- timing


def elapsed_logger(started: float) -> Callable[[str], None]:
    """``log(message)`` printing the seconds since ``started`` (``time.perf_counter()``) first."""

    def log(message: str) -> None:
        print(f"{time.perf_counter() - started:7.1f}s {message}", flush=True)

    return log


def interleave(
    contenders: Mapping[str, Callable[[int], T]],
    rounds: int,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[T]]:
    """Calls every contender once per round, in turn, the starting one rotating.

    Round r starts with contender ``r % len(contenders)``, so a busy neighbour on a shared
    machine slows every contender alike.

    Args:
        contenders: name -> function of the round index.
        rounds: Number of rounds.
        log: Told after each round, if given.

    Returns:
        name -> the contender's return values, one per round.
    """
    names = list(contenders)
    out: dict[str, list[T]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            out[name].append(contenders[name](r))
        if log is not None:
            log(f"round {r + 1}/{rounds} done")
    return out


def time_calls(contenders: Mapping[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """`interleave` of argument-free calls; returns the seconds of each call (``perf_counter``)."""

    def timed(function: Callable[[], Any]) -> Callable[[int], float]:
        def call(_: int) -> float:
            start = time.perf_counter()
            function()
            return time.perf_counter() - start

        return call

    return interleave({name: timed(f) for name, f in contenders.items()}, rounds)


def median(values: Sequence[float]) -> float:
    """The median (mean of the two middle values for an even count)."""
    ordered = sorted(values)
    n = len(ordered)
    return float(ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2)


def run_meta(script: str, argv: Sequence[str] | None, started: float, load_start: str) -> dict[str, Any]:
    """The header fields every report records: machine, load, command line, date, wall seconds.

    Args:
        script: The script's path as typed, e.g. ``benchmarks/cold_users_prior.py``.
        argv: The arguments given to ``run`` (None: ``sys.argv[1:]``).
        started: ``time.perf_counter()`` at the start of the run.
        load_start: `load_now` at the start of the run.
    """
    import sys

    from machine import command_line, describe_machine, machine_line

    return {
        "machine": machine_line(describe_machine()),
        "load_start": load_start,
        "load_end": load_now(),
        "command": command_line(script, list(sys.argv[1:] if argv is None else argv)),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_seconds": time.perf_counter() - started,
    }


def load_now() -> str:
    """The 1/5/15-minute load averages, ``a/b/c``."""
    return "/".join(f"{x:.2f}" for x in os.getloadavg())
