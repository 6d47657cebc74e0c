"""The ranking trainer: click examples with sampled negatives, early stopping on VALID AUC, resume.

One module fixture trains a tiny CTR model on the clustered data twice into the same folder:
the first run is interrupted after its second epoch (after the epoch's checkpoint), the second
resumes it. The tests read what that left: the per-epoch VALID history, the best weights, the
TensorBoard logs, and the held-out AUC, recomputed in numpy as the share of (click, non-click)
pairs ranked in the right order.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.conftest import make_clustered_dataset
from tfrec_llm.config import config_from_dict
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.ranking_examples import click_examples, list_examples, random_split
from tfrec_llm.data.splits import make_split
from tfrec_llm.training.ranking_trainer import (
    build_ranking_model,
    evaluate_ranking,
    ranking_examples,
    train_ranking,
)

EPOCHS = 4
INTERRUPTED_AFTER = 1  # 0-based: epochs 0 and 1 finish, then the run is interrupted


class Interrupted(Exception):
    pass


class InterruptAfterEpoch(keras.callbacks.Callback):
    """Runs after the trainer's callbacks, so the epoch is validated and checkpointed first."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == INTERRUPTED_AFTER:
            raise Interrupted()


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(score of a click > score of a non-click), ties counted half."""
    positive, negative = scores[labels == 1], scores[labels == 0]
    greater = (positive[:, None] > negative[None, :]).mean()
    return float(greater + 0.5 * (positive[:, None] == negative[None, :]).mean())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    dataset = make_clustered_dataset(num_users=60, per_user=12)
    catalog = build_catalog(dataset, make_split(dataset, "loo"))
    frame = dataset.interactions
    rest, test = random_split(frame, 0.2, seed=0)
    train, valid = random_split(rest, 0.125, seed=1)
    cfg = config_from_dict(
        {
            "model": {"embedding_dim": 8, "history_length": 5, "use_text": False, "history_encoder": "mean"},
            "ranking": {"objective": "ctr", "negatives": 2, "deep_layers": [16]},
            "train": {"batch_size": 64, "learning_rate": 0.01, "epochs": EPOCHS, "patience": 10},
        }
    )
    examples = ranking_examples(cfg, train, catalog, history=train, known=frame)
    valid_examples = ranking_examples(cfg, valid, catalog, history=train, seed=1, known=frame)
    model_dir = str(tmp_path_factory.mktemp("ranking") / "run")

    def build():
        return build_ranking_model(cfg, catalog)

    tf.keras.utils.set_random_seed(0)
    with pytest.raises(Interrupted):
        train_ranking(
            cfg, examples, valid_examples, build, model_dir, verbose=0, callbacks=[InterruptAfterEpoch()]
        )
    with open(os.path.join(model_dir, "validation.json")) as f:
        before = json.load(f)
    result = train_ranking(cfg, examples, valid_examples, build, model_dir, verbose=0)
    test_examples = click_examples(test, catalog, 5, history=train, negatives=2, seed=2, known=frame)
    return result, before, model_dir, valid_examples, test_examples


def test_click_examples_pair_each_click_with_unseen_negatives():
    dataset = make_clustered_dataset(num_users=6, per_user=12)
    catalog = build_catalog(dataset, make_split(dataset, "loo"))
    frame = dataset.interactions
    examples = click_examples(frame, catalog, 4, history=frame, negatives=3, seed=0)
    assert examples["label"].tolist()[:8] == [1, 0, 0, 0, 1, 0, 0, 0]
    seen = set(zip(catalog.user_index(frame["user_id"]), catalog.item_index(frame["item_id"])))
    negatives = examples["label"] == 0
    pairs = zip(examples["user"][negatives], examples["item"][negatives])
    assert not any((int(u), int(i)) in seen for u, i in pairs)
    # The history of a row holds only that user's items strictly before its timestamp.
    first = frame.sort_values("timestamp").groupby("user_id").head(1).index[0]
    assert (examples["history"][4 * frame.index.get_loc(first)] == -1).all()
    lists = list_examples(frame, catalog, 4, history=frame, list_size=5, seed=0)
    assert lists["item"].shape == (len(frame), 5) and (lists["label"].sum(axis=1) == 1).all()
    chosen = lists["item"][lists["label"] == 1]
    np.testing.assert_array_equal(chosen, catalog.item_index(frame["item_id"]))


def test_interrupted_run_resumes_after_its_last_finished_epoch(run):
    result, before, model_dir, _, _ = run
    assert [h["epoch"] for h in before] == list(range(INTERRUPTED_AFTER + 1))
    with open(os.path.join(model_dir, "validation.json")) as f:
        history = json.load(f)
    assert [h["epoch"] for h in history] == list(range(EPOCHS))
    assert result.epochs_run == EPOCHS
    assert result.epochs_this_run == EPOCHS - INTERRUPTED_AFTER - 1


def test_best_valid_epoch_is_kept_and_logged(run):
    result, _, model_dir, valid_examples, _ = run
    with open(os.path.join(model_dir, "validation.json")) as f:
        history = json.load(f)
    aucs = [h["metrics"]["auc"] for h in history]
    assert result.best_epoch == int(np.argmax(aucs))
    assert result.valid_metrics["auc"] == max(aucs)
    # The returned model holds the best epoch's weights: VALID scores as recorded then.
    again = evaluate_ranking(result.model, valid_examples)
    assert again["auc"] == pytest.approx(max(aucs), abs=1e-4)
    assert os.path.exists(os.path.join(model_dir, "best.weights.h5"))
    assert any(
        name.startswith("events")
        for _, _, names in os.walk(os.path.join(model_dir, "logs"))
        for name in names
    )


def test_trained_click_model_ranks_held_out_clicks_above_negatives(run):
    result, _, _, _, test = run
    scores = result.model(test).numpy()
    auc = _auc(scores, test["label"])
    assert auc > 0.75, auc  # chance is 0.5
    assert evaluate_ranking(result.model, test)["auc"] == pytest.approx(auc, abs=0.01)
