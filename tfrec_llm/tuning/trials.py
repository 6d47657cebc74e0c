"""``run_trial`` of the two-tower model: the part every tuner algorithm shares.

:class:`TwoTowerTrials` is mixed into KerasTuner's tuners (:mod:`tfrec_llm.tuning.tuner` holds
the concrete classes and :func:`~tfrec_llm.tuning.tuner.build_tuner`). It never hands KerasTuner
a model (KerasTuner 1.4.8 binds to Keras 3, docs/stack.md): ``run_trial`` trains the two-tower model
with :func:`tfrec_llm.experiments.runs.train_variant` and returns its VALID metrics as a dict;
the search directory's layout is described in :mod:`tfrec_llm.tuning.tuner`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import keras_tuner
import numpy as np
import tf_keras as keras

from tfrec_llm.config import ExperimentConfig
from tfrec_llm.config.choices import VARIANTS, variant_uses_text
from tfrec_llm.errors import ConfigError
from tfrec_llm.experiments.prepare import Prepared
from tfrec_llm.experiments.runs import train_variant
from tfrec_llm.tuning import directory as directory_module
from tfrec_llm.tuning import oracles
from tfrec_llm.tuning.distributed import is_distributed_chief, is_distributed_worker, serve_oracle
from tfrec_llm.tuning.results import BEST_EPOCH, EPOCHS_RUN, SECONDS
from tfrec_llm.tuning.search_space import (
    OBJECTIVE_PREFIX,
    TUNER_PREFIX,
    build_hyperparameters,
    objective_name,
    trial_config,
)
from tfrec_llm.tuning.summary import SearchSummary, write_search_results

TrialSetup = Callable[[ExperimentConfig], None]
"""Called with each training's config just before it starts (the CLI seeds Keras there)."""


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class TwoTowerTrials:
    """``run_trial`` for the two-tower model, mixed into KerasTuner's tuners.

    Use a concrete class of :mod:`tfrec_llm.tuning.tuner` (``TwoTowerRandomSearch``,
    ``TwoTowerHyperband``, ``TwoTowerBayesianOptimization``) or its ``build_tuner``.

    Args:
        cfg: The base config; ``cfg.tune`` holds the space, the objective and the algorithm
            settings. Trials change only the fields named in ``cfg.tune.space``.
        directory: The search directory (``DIR``); trial ``<id>`` trains in ``DIR/trial_<id>``.
        variant: Model variant of every trial (``id``, ``text``, ``bert``).
        overwrite: Delete ``DIR`` and start over (only a folder holding a search); False
            resumes the search found there.
        trial_setup: Called with each training's config just before it trains (seeding).
        oracle_address: ``ip:port`` the chief serves its oracle on (chief/worker mode).

    Raises:
        ConfigError: Unknown variant, ``DIR`` holds a search of another config, or
            ``overwrite`` of a folder that is not a search / on a worker.
    """

    # Set by keras_tuner.engine.base_tuner.BaseTuner.
    oracle: Any
    tuner_id: str
    # Set by each concrete class: KerasTuner's oracle of the algorithm and its arguments.
    oracle_class: type[keras_tuner.Oracle]

    @staticmethod
    def oracle_arguments(cfg: ExperimentConfig) -> dict[str, Any]:
        """Arguments of ``oracle_class`` beyond the shared ones; each algorithm overrides this."""
        return {}

    def __init__(
        self,
        cfg: ExperimentConfig,
        directory: str,
        variant: str = "bert",
        *,
        overwrite: bool = False,
        trial_setup: TrialSetup | None = None,
        oracle_address: str | None = None,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"variant={variant!r}; expected one of {sorted(VARIANTS)}")
        # The variant's overrides are applied to every trial, after its drawn values.
        fixed = sorted({spec.name for spec in cfg.tune.space} & set(VARIANTS[variant]))
        if fixed:
            raise ConfigError(
                f"variant {variant!r} fixes {', '.join(fixed)}, so a search over "
                f"them would train the same value in every trial; "
                "remove it from tune.space or tune another variant (e.g. bert)"
            )
        self.base_config = cfg
        self.variant = variant
        # Kept relative when given relative, so best.yaml stays valid where DIR is mounted.
        self.search_dir = os.path.normpath(directory)
        if os.path.basename(self.search_dir) in (".", ".."):
            self.search_dir = os.path.abspath(self.search_dir)
        self.trial_setup = trial_setup
        self.oracle_address = oracle_address
        self.verbose = 1
        self._last_metrics: dict[str, dict[str, float]] = {}
        worker = is_distributed_worker()
        directory_module.check_search_directory(
            self.search_dir, cfg, variant, overwrite=overwrite, worker=worker
        )
        had_oracle = not overwrite and os.path.exists(os.path.join(self.search_dir, "oracle.json"))
        # The KerasTuner class's own __init__ only builds its oracle and calls Tuner.__init__;
        # build the same oracle, with atomic state files (tfrec_llm.tuning.oracles), instead.
        oracle = self.oracle_class(
            objective=keras_tuner.Objective(objective_name(cfg), direction="max"),
            hyperparameters=build_hyperparameters(cfg),
            seed=cfg.train.seed,
            **self.oracle_arguments(cfg),
        )
        self.seed = cfg.train.seed
        keras_tuner.Tuner.__init__(
            self,  # type: ignore[arg-type]
            oracle=oracle,
            directory=os.path.dirname(self.search_dir),
            project_name=os.path.basename(self.search_dir),
            overwrite=overwrite,
        )
        resumed = not overwrite and os.path.exists(self._get_tuner_fname())  # type: ignore[attr-defined]
        if had_oracle and not resumed and not worker:
            # Killed after the oracle saved a trial but before the tuner saved its own file:
            # KerasTuner would silently start over, so reload the oracle ourselves.
            self.oracle.reload()
            resumed = True
        if not worker:
            directory_module.write_search_config(self.search_dir, cfg, variant)
        if worker:
            print(
                f"[{self.tuner_id}] worker of the search in {self.search_dir}: trials come from "
                "the chief oracle"
            )
        elif resumed:
            self._repair_after_kill()
            self._print_resume()

    def _repair_after_kill(self) -> None:
        """Mends the two states that a kill inside KerasTuner's own bookkeeping leaves behind.

        KerasTuner writes ``trial_<id>/trial.json`` first and ``oracle.json`` second, both when a
        trial starts (``create_trial``) and when it ends (``end_trial``). Its ``reload`` reads the
        trial files, then queues every trial that ``oracle.json`` lists as ongoing for a retry
        (KerasTuner 1.4's ``Oracle._retry_queue``). A kill between the two writes leaves:

        - an ended trial still ongoing in ``oracle.json``: it would be trained again. Its
          ``trial.json`` knows better, so it comes off the retry queue and is recorded as ended;
        - a started trial (``trial.json`` RUNNING) that ``oracle.json`` does not know: it would
          count against ``max_trials`` and never run. It goes on the retry queue.
        """
        oracle = self.oracle
        queue = oracle._retry_queue
        ended = [i for i in queue if oracle.trials[i].status in ("COMPLETED", "FAILED")]
        for trial_id in ended:
            queue.remove(trial_id)
            if trial_id not in oracle.end_order:
                oracle.end_order.append(trial_id)
        orphans = [
            trial_id
            for trial_id, trial in sorted(oracle.trials.items())
            if trial.status == "RUNNING" and trial_id not in queue
        ]
        for trial_id in orphans:
            queue.append(trial_id)
            if trial_id not in oracle.start_order:
                oracle.start_order.append(trial_id)
        if ended or orphans:
            oracle.save()

    def _print_resume(self) -> None:
        trials = list(self.oracle.trials.values())
        done = sum(t.status == "COMPLETED" for t in trials)
        interrupted = [t.trial_id for t in trials if t.status == "RUNNING"]
        remaining = self.oracle.remaining_trials()
        left = f", {remaining} new trial(s) to go" if remaining is not None else ""
        again = f", interrupted trial(s) {interrupted} resume from their checkpoints" if interrupted else ""
        print(f"resuming the search in {self.search_dir}: {done} finished trial(s) kept{again}{left}")

    def save(self) -> None:
        """Saves the oracle (unless a worker) and this tuner's state file, each atomically."""
        if not self._is_worker():  # type: ignore[attr-defined]
            self.oracle.save()
        oracles.save_json_atomically(self._get_tuner_fname(), self.get_state())  # type: ignore[attr-defined]

    # ------------------------------------------------------------------------------------------

    def search(self, prepared: Prepared | None = None, verbose: int = 1) -> None:  # type: ignore[override]
        """Runs trials until the algorithm's budget is spent.

        Args:
            prepared: The data set made ready for ``cfg.tune.protocol`` (with text embeddings
                unless the variant is ``id``). Not needed by a distributed chief.
            verbose: 0 silent, 1 a progress table per trial, 2 also one line per epoch.
        """
        self.verbose = verbose
        if is_distributed_chief():
            self.oracle.verbose = verbose
            self.save()  # type: ignore[attr-defined]
            if self.oracle_address is None:
                from tfrec_llm.tuning.keras_tuner_private import oracle_chief

                oracle_chief.start_server(self.oracle)
            else:
                serve_oracle(self.oracle, self.oracle_address)
            return
        if prepared is None:
            raise ConfigError(
                "search() needs the prepared data set: tfrec_llm.experiments.prepare(cfg, protocol)"
            )
        protocol = self.base_config.tune.protocol
        if prepared.split.protocol != protocol:
            raise ConfigError(
                f"prepared.split.protocol={prepared.split.protocol!r} but tune.protocol={protocol!r}"
            )
        if variant_uses_text(self.variant) and prepared.text_embeddings is None:
            raise ConfigError(f"variant {self.variant!r} needs text embeddings; prepare(..., with_text=True)")
        super().search(prepared, verbose=verbose)  # type: ignore[misc]

    def run_trial(self, trial: Any, prepared: Prepared, verbose: int = 1) -> dict[str, float]:
        """Trains the trial's config ``tune.executions`` times; returns the mean VALID metrics.

        Returns:
            ``{"valid/ndcg@10": ..., "valid/hr@10": ..., "seconds": ..., "epochs_run": ...,
            "best_epoch": ...}`` (floats; best VALID epoch of each execution).
        """
        values = dict(trial.hyperparameters.values)
        epochs = values.get(TUNER_PREFIX + "epochs")
        trial_dir = self.get_trial_dir(trial.trial_id)  # type: ignore[attr-defined]
        if verbose:
            shown = ", ".join(
                f"{k}={_format(v)}" for k, v in values.items() if not k.startswith(TUNER_PREFIX)
            )
            budget = f" [{int(epochs)} epochs]" if epochs else ""
            print(f"[{self.tuner_id}] trial {trial.trial_id}{budget}: {shown}", flush=True)
        start = time.perf_counter()
        runs = []
        for execution in range(self.base_config.tune.executions):
            cfg = trial_config(self.base_config, values, execution, epochs)
            model_dir = trial_dir if execution == 0 else os.path.join(trial_dir, f"execution_{execution}")
            directory_module.claim_model_dir(model_dir, cfg)
            keras.backend.clear_session()
            if self.trial_setup is not None:
                self.trial_setup(cfg)
            runs.append(
                train_variant(cfg, prepared, self.variant, model_dir, verbose=2 if verbose >= 2 else 0)
            )
        metrics = {
            OBJECTIVE_PREFIX + key: float(np.mean([run.valid_metrics[key] for run in runs]))
            for key in runs[0].valid_metrics
            if key != "users"
        }
        metrics[SECONDS] = time.perf_counter() - start
        metrics[EPOCHS_RUN] = float(np.mean([run.epochs_run for run in runs]))
        metrics[BEST_EPOCH] = float(runs[0].best_epoch)
        self._last_metrics[trial.trial_id] = metrics
        return metrics

    def on_trial_end(self, trial: Any) -> None:
        """Reports the trial to the oracle, prints one line and rewrites the results files."""
        super().on_trial_end(trial)  # type: ignore[misc]
        metrics = self._last_metrics.pop(trial.trial_id, None)
        if trial.status != "COMPLETED":
            reason = (trial.message or "").strip().splitlines()[-1:] or ["no message"]
            print(f"[{self.tuner_id}] trial {trial.trial_id} {trial.status}: {reason[0]}", flush=True)
        elif self.verbose and metrics is not None:
            name = objective_name(self.base_config)
            print(
                f"[{self.tuner_id}] trial {trial.trial_id} done: {name} = {metrics[name]:.4f} "
                f"(best epoch {int(metrics[BEST_EPOCH]) + 1} of {int(metrics[EPOCHS_RUN])}, "
                f"{metrics[SECONDS]:.0f} s)",
                flush=True,
            )
        if not is_distributed_worker():
            self.write_results()

    # ------------------------------------------------------------------------------------------

    def write_results(self) -> SearchSummary:
        """Writes ``results.csv``, ``results.md`` and (once a trial completed) ``best.yaml``.

        Only where the oracle lives: a single process, or the chief of a distributed search.
        """
        if is_distributed_worker():
            raise ConfigError(
                "write_results() runs where the oracle is (the chief); this process is a worker"
            )
        return write_search_results(
            self.base_config, self.search_dir, self.variant, self.oracle.trials.values()
        )
