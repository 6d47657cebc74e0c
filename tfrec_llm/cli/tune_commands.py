"""``tfrec-llm tune``: hyperparameter search with KerasTuner (see docs/tuning.md).

``tfrec_llm.cli.main.build_parser`` calls :func:`add_subcommands`; the command stores its
implementation in ``args.handler``, which returns the process exit code. KerasTuner and
TensorFlow are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from tfrec_llm.cli import options
from tfrec_llm.config.choices import variant_uses_text

__all__ = ["add_subcommands", "tune_command"]

_EPILOG = """\
examples:
  tfrec-llm tune --algorithm random --max-trials 8 --directory runs/tune --set train.epochs=8
  tfrec-llm tune --algorithm hyperband --directory runs/hb --variant id --retrain-best
  tfrec-llm train --config runs/tune/best.yaml --variant bert

The search space, objective and algorithm settings are the `tune` section of the config
(pipelines/movielens_100k.yaml). Run the same command again with the same --directory to
resume a killed search. Distributed: set KERASTUNER_TUNER_ID (chief | tuner0 | tuner1 ...),
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT and run the command once per process.
"""

_ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def add_subcommands(subparsers: Any) -> None:
    """Registers ``tune`` on an argparse subparsers object.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers()``.
    """
    p = subparsers.add_parser(
        "tune",
        help="hyperparameter search over the two-tower model (KerasTuner; resumable, distributable)",
        description="Search the `tune.space` of the config with KerasTuner. Each trial trains the "
        "two-tower model with early stopping on the VALID objective (full-ranking NDCG@10 by "
        "default) and keeps its best weights in DIR/trial_<id>/. Writes DIR/results.csv, "
        "DIR/results.md and DIR/best.yaml (a full config for `tfrec-llm train`).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_common(p)
    p.add_argument(
        "--algorithm",
        choices=["random", "hyperband", "bayesian"],
        default=None,
        help="search algorithm (default: tune.algorithm)",
    )
    p.add_argument(
        "--max-trials",
        type=int,
        default=None,
        help="trials to run, random and bayesian (default: tune.max_trials)",
    )
    p.add_argument(
        "--directory",
        default=None,
        help="search directory (default: <train.model_dir>/tune_<algorithm>); reused = resumed",
    )
    options.add_variant(p, "model variant of every trial")
    options.add_protocol(p, default_help="tune.protocol")
    p.add_argument("--overwrite", action="store_true", help="delete the search in --directory and start over")
    p.add_argument(
        "--retrain-best",
        action="store_true",
        help="retrain the best config and report VALID and TEST",
    )
    p.add_argument(
        "--compare-default",
        action="store_true",
        help="with --retrain-best: also train the base config and write DIR/comparison.md "
        "(baselines, default, tuned)",
    )
    p.add_argument(
        "--export-dir",
        default=None,
        help="export the best config's model here (as `tfrec-llm export`)",
    )
    p.set_defaults(handler=tune_command)


def _oracle_address() -> str | None:
    """``ip:port`` of KerasTuner's chief oracle from its environment variables, or None."""
    from tfrec_llm.errors import ConfigError

    present = [name for name in _ENV if os.environ.get(name)]
    if "KERASTUNER_ORACLE_IP" not in present:
        return None
    if len(present) != len(_ENV):
        missing = sorted(set(_ENV) - set(present))
        raise ConfigError(f"distributed tuning needs {list(_ENV)}; {missing} not set (see docs/tuning.md)")
    return f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"


def _print_space(cfg: Any, directory: str, variant: str) -> None:
    from tfrec_llm.tuning.search_space import spec_summary

    tune = cfg.tune
    trials = "budget from train.epochs" if tune.algorithm == "hyperband" else f"{tune.max_trials} trials"
    print(
        f"tune: {tune.algorithm}, {trials}, objective valid/{tune.objective} "
        f"(protocol {tune.protocol}), "
        f"variant {variant}, up to {cfg.train.epochs} epochs per trial, in {directory}"
    )
    for spec in tune.space:
        print(f"  {spec.name}: {spec_summary(spec)}")


def tune_command(args: argparse.Namespace) -> int:
    """``tfrec-llm tune``."""
    from tfrec_llm.config import replace
    from tfrec_llm.experiments import prepare
    from tfrec_llm.experiments.runs import seed_everything
    from tfrec_llm.tuning.tuner import build_tuner, is_distributed_chief, is_distributed_worker

    cfg = options.config_from_args(args)
    changes: dict[str, Any] = {}
    if args.algorithm:
        changes["tune__algorithm"] = args.algorithm
    if args.max_trials is not None:
        changes["tune__max_trials"] = args.max_trials
    if args.protocol:
        changes["tune__protocol"] = args.protocol
    cfg = replace(cfg, **changes)
    directory = args.directory or os.path.join(cfg.train.model_dir, f"tune_{cfg.tune.algorithm}")
    address = _oracle_address()
    verbose = 0 if args.quiet else 2 if args.verbose else 1

    tuner = build_tuner(
        cfg,
        directory,
        args.variant,
        overwrite=args.overwrite,
        trial_setup=seed_everything,
        oracle_address=address,
    )
    prepared = None
    if is_distributed_chief():
        print(
            f"chief: serving the oracle on {address}; start the workers with the same command and directory"
        )
        _print_space(cfg, tuner.search_dir, args.variant)
        tuner.search(verbose=verbose)
    else:
        if not is_distributed_worker():
            _print_space(cfg, tuner.search_dir, args.variant)
        prepared = prepare(cfg, cfg.tune.protocol, with_text=variant_uses_text(args.variant))
        tuner.search(prepared, verbose=verbose)
        if is_distributed_worker():
            print(f"[{tuner.tuner_id}] no trials left; the chief writes the results")
            return 0

    summary = tuner.write_results()
    with open(os.path.join(summary.directory, "results.md"), encoding="utf-8") as f:
        print("\n" + f.read())
    print(
        f"wrote {summary.directory}/results.csv, results.md"
        + (", best.yaml" if summary.best_config_path else "")
    )
    if summary.best is None or summary.best_config_path is None:
        print("tfrec-llm tune: no trial completed; see the messages above")
        return 1
    print(f"best trial {summary.best.trial_id}: {summary.objective} = {summary.best.score:.4f}")
    if args.retrain_best or args.compare_default:
        if prepared is None:
            prepared = prepare(cfg, cfg.tune.protocol, with_text=variant_uses_text(args.variant))
        _retrain_and_compare(cfg, summary, prepared, args.variant, args.compare_default, verbose)
    if args.export_dir:
        from tfrec_llm.config import load_config
        from tfrec_llm.experiments import Experiment

        best = Experiment(load_config(summary.best_config_path), verbose=options.keras_verbosity(args))
        result = best.export(args.variant, args.export_dir)
        print(
            f"exported {result.retrieval}"
            + (f"\nexported {result.item_encoder}" if result.item_encoder else "")
        )
    return 0


def _train(cfg: Any, prepared: Any, variant: str, verbose: int) -> Any:
    """Trains ``cfg`` in ``<train.model_dir>/<protocol>/<variant>``, as ``tfrec-llm train`` does.

    These folders belong to the search, so a run made with other settings is replaced.
    """
    from tfrec_llm.experiments import load_or_train, run_dir

    model, info = load_or_train(cfg, prepared, variant, if_stale="retrain", verbose=1 if verbose >= 2 else 0)
    print(
        f"{variant} model in {run_dir(cfg, prepared.split.protocol, variant)}: best epoch "
        f"{info['best_epoch']}, epochs {info['epochs_run']}"
    )
    return model


def _retrain_and_compare(
    cfg: Any, summary: Any, prepared: Any, variant: str, compare: bool, verbose: int
) -> None:
    """Retrains the best config (and the base config); prints VALID + TEST beside the baselines."""
    from tfrec_llm.config import load_config, replace
    from tfrec_llm.config.choices import VARIANT_NAMES
    from tfrec_llm.evaluation.report import records_to_table, write_json
    from tfrec_llm.experiments.reports import baseline_scorers, timed_records
    from tfrec_llm.models.scorer import TwoTowerScorer

    best_cfg = load_config(summary.best_config_path)
    name = VARIANT_NAMES[variant]
    scorers: list[Any] = []
    if compare:
        scorers += baseline_scorers(cfg, prepared.split)
        default_cfg = replace(cfg, train__model_dir=os.path.join(summary.directory, "default"))
        scorers.append(
            TwoTowerScorer(
                _train(default_cfg, prepared, variant, verbose),
                prepared.catalog,
                name=f"{name} default",
            )
        )
    model = _train(best_cfg, prepared, variant, verbose)
    scorers.append(
        TwoTowerScorer(model, prepared.catalog, name=f"{name} tuned (trial {summary.best.trial_id})")
    )
    ks = tuple(sorted(set(cfg.eval.ks) | set(best_cfg.eval.ks)))
    records = timed_records(scorers, prepared.split, ks)
    table = records_to_table(records)
    print("\n" + table)
    if compare:
        with open(os.path.join(summary.directory, "comparison.md"), "w", encoding="utf-8") as f:
            f.write(table + "\n")
        write_json(records, os.path.join(summary.directory, "comparison.json"))
        print(f"wrote {summary.directory}/comparison.md, comparison.json")
