"""Trains the tiny model of tests/training/test_distribute.py in its own process.

A strategy needs a fresh process: logical CPU devices and multi-worker collectives must be set
up before TensorFlow initialises its devices, and the pytest process already has.

    python distribute_run.py OUT_JSON MODEL_DIR STRATEGY [STRATEGY ...]

creates every strategy first, then trains the same tiny model once per strategy (in
``MODEL_DIR/<strategy>``, or ``MODEL_DIR`` itself for ``multi_worker``, where every worker
shares it) and writes ``{strategy: {...}}`` to OUT_JSON (the chief only, for ``multi_worker``).
With ``TFREC_TEST_EXIT_AFTER_EPOCH=N`` the process ends itself (exit code 3) at the end of
epoch N, after the epoch is validated and backed up: a kill at a known point, not a timing.
The examples are not shuffled (``train.shuffle_buffer=1``), so a restarted run sees the same
batches in the same order as an uninterrupted one.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tf_keras as keras  # noqa: E402

from tfrec_llm.training.distribute import is_chief, make_strategy  # noqa: E402

EPOCHS = 2


class ExitAfterEpoch(keras.callbacks.Callback):
    """Ends the process (exit code 3) at the end of one epoch, after the trainer's callbacks."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            os._exit(3)


def main(out_json: str, model_dir: str, strategies: list[str]) -> None:
    for strategy in strategies:  # before any TensorFlow op
        make_strategy(strategy)

    from conftest import make_clustered_dataset
    from training.test_trainer import _tiny_cfg

    from tfrec_llm.data.catalog import build_catalog
    from tfrec_llm.data.splits import make_split
    from tfrec_llm.evaluation.protocols import evaluate
    from tfrec_llm.experiments.builders import build_two_tower
    from tfrec_llm.models.scorer import TwoTowerScorer
    from tfrec_llm.training.trainer import train_two_tower

    dataset = make_clustered_dataset(num_users=60, num_items=30, per_user=14)
    split = make_split(dataset, "loo")
    catalog = build_catalog(dataset, split)

    def valid(model):
        return evaluate(TwoTowerScorer(model, catalog), split.valid, split.item_ids)

    def train(strategy, directory, callbacks):
        keras.utils.set_random_seed(0)
        cfg = _tiny_cfg(
            model__encoder_dropout=0.0,
            train__epochs=EPOCHS,
            train__patience=100,
            train__shuffle_buffer=1,
            train__strategy=strategy,
        )
        build = lambda: build_two_tower(cfg.model, catalog)  # noqa: E731
        return train_two_tower(
            cfg, split, catalog, build, directory, validation_metric=valid, verbose=0, callbacks=callbacks
        )

    exit_after = os.environ.get("TFREC_TEST_EXIT_AFTER_EPOCH")
    results = {}
    for strategy in strategies:
        directory = model_dir if strategy == "multi_worker" else os.path.join(model_dir, strategy)
        result = train(strategy, directory, [ExitAfterEpoch(int(exit_after))] if exit_after else [])
        with open(os.path.join(directory, "validation.json"), encoding="utf-8") as handle:
            history = json.load(handle)
        results[strategy] = {
            "replicas": make_strategy(strategy).num_replicas_in_sync,
            "valid_metrics": result.valid_metrics,
            "epochs_run": result.epochs_run,
            "epochs_this_run": result.epochs_this_run,
            "history": history,
        }
    if all(is_chief(make_strategy(strategy)) for strategy in strategies):
        with open(out_json, "w", encoding="utf-8") as handle:
            json.dump(results, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
