"""Tests for tfrec_llm.training: early stopping on full-ranking VALID, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import tf_keras as keras

from tfrec_llm.config import ExperimentConfig, replace
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split
from tfrec_llm.evaluation.baselines import MostPopScorer
from tfrec_llm.evaluation.protocols import evaluate
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.models.scorer import TwoTowerScorer
from tfrec_llm.training.callbacks import FullRankingValidation
from tfrec_llm.training.trainer import train_two_tower

_TINY = dict(
    model__embedding_dim=16, model__history_length=5, train__batch_size=32, train__learning_rate=0.01
)


def _tiny_cfg(**changes):
    return replace(
        ExperimentConfig(), model__use_text=False, model__use_categories=False, **{**_TINY, **changes}
    )


def _train(cfg, split, catalog, model_dir, **kwargs):
    """train_two_tower with the ID-only model of ``cfg`` and full-ranking VALID NDCG."""

    def valid(model):
        return evaluate(TwoTowerScorer(model, catalog), split.valid, split.item_ids)

    return train_two_tower(
        cfg,
        split,
        catalog,
        lambda: build_two_tower(cfg.model, catalog),
        model_dir,
        validation_metric=valid,
        verbose=0,
        **kwargs,
    )


def test_trained_model_beats_most_popular(dataset_factory, tmp_path):
    keras.utils.set_random_seed(0)
    dataset = dataset_factory(num_users=60, num_items=30, per_user=14)
    split = make_split(dataset, "loo")
    catalog = build_catalog(dataset, split)
    cfg = _tiny_cfg(train__epochs=15, train__patience=15)
    result = _train(cfg, split, catalog, str(tmp_path))
    most_pop = evaluate(MostPopScorer(split), split.valid, split.item_ids)
    assert result.valid_metrics["ndcg@10"] > most_pop["ndcg@10"] + 0.05
    # the returned weights are the best epoch's
    again = evaluate(TwoTowerScorer(result.model, catalog), split.valid, split.item_ids)
    assert np.isclose(again["ndcg@10"], result.valid_metrics["ndcg@10"])
    history = json.load(open(tmp_path / "validation.json"))
    assert max(h["metrics"]["ndcg@10"] for h in history) == result.valid_metrics["ndcg@10"]
    assert os.listdir(tmp_path / "logs")  # TensorBoard event files


class _Toy(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)


def test_validation_callback_stops_after_patience_and_keeps_best_weights(tmp_path):
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.29, 0.9])
    snapshots = []
    model = _Toy()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = np.ones((8, 2), np.float32), np.zeros((8, 1), np.float32)
    model(x)

    def evaluate_fn():
        snapshots.append([w.copy() for w in model.get_weights()])
        return {"ndcg@10": next(scores)}

    cb = FullRankingValidation(evaluate_fn, str(tmp_path), "ndcg@10", patience=3)
    model.fit(x, y, epochs=10, verbose=0, callbacks=[cb])
    # best at epoch 1; epochs 2, 3, 4 do not improve -> stop after epoch 4 (the 0.9 is never seen)
    assert [h["epoch"] for h in cb.history] == [0, 1, 2, 3, 4]
    assert cb.best["epoch"] == 1
    model.load_weights(cb.weights_path)
    for got, want in zip(model.get_weights(), snapshots[1]):
        np.testing.assert_allclose(got, want)


_KILLED_AFTER_EPOCH = 2  # 0-based: epochs 0, 1 and 2 finish, then the process kills itself

_KILLABLE = textwrap.dedent(
    """
    import os
    import signal
    import sys
    import tfrec_llm
    import tf_keras as keras
    sys.path.insert(0, sys.argv[2])
    from training.test_trainer import _tiny_cfg, _train
    from conftest import make_clustered_dataset
    from tfrec_llm.data.catalog import build_catalog
    from tfrec_llm.data.splits import make_split

    class KillAfterEpoch(keras.callbacks.Callback):
        # Runs after the trainer's own callbacks, so the epoch is validated and checkpointed.
        def on_epoch_end(self, epoch, logs=None):
            if epoch == int(sys.argv[3]):
                os.kill(os.getpid(), signal.SIGKILL)

    keras.utils.set_random_seed(0)
    ds = make_clustered_dataset(num_users=60, num_items=30, per_user=14)
    split = make_split(ds, "loo")
    cfg = _tiny_cfg(train__batch_size=8, train__epochs=6, train__patience=100)
    _train(cfg, split, build_catalog(ds, split), sys.argv[1], callbacks=[KillAfterEpoch()])
    """
)


def test_killed_run_resumes_from_the_last_finished_epoch(dataset_factory, tmp_path):
    model_dir = str(tmp_path / "run")
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", _KILLABLE, model_dir, tests_dir, str(_KILLED_AFTER_EPOCH)],
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL  # it died by the kill, not by finishing
    history_path = os.path.join(model_dir, "validation.json")
    done_before = len(json.load(open(history_path)))
    assert done_before == _KILLED_AFTER_EPOCH + 1
    assert os.path.isdir(os.path.join(model_dir, "backup"))

    keras.utils.set_random_seed(0)
    dataset = dataset_factory(num_users=60, num_items=30, per_user=14)
    split = make_split(dataset, "loo")
    cfg = _tiny_cfg(train__batch_size=8, train__epochs=6, train__patience=100)
    result = _train(cfg, split, build_catalog(dataset, split), model_dir)
    history = json.load(open(history_path))
    assert [h["epoch"] for h in history] == [0, 1, 2, 3, 4, 5]  # each epoch validated once
    assert result.epochs_run == 6
    assert result.epochs_this_run == 6 - done_before  # resumed after the last finished epoch
    assert not os.path.exists(os.path.join(model_dir, "backup", "chief"))  # cleaned after success
