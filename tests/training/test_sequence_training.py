"""A next-item model learns an order that popularity cannot see.

Each user walks a fixed cycle of the catalog (item i is followed by item i + 1 mod N) from a
random start, so every item is about as popular as any other but the next item is given by the
last one. A SASRec-style model (attention history encoder, next_item objective, full softmax)
trained through the config -> builder -> trainer route must rank the held-out TEST item far
above where MostPop does.
"""

import numpy as np
import pandas as pd
import pytest
import tf_keras as keras

from tfrec_llm.config import ExperimentConfig, replace
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.schema import RecDataset
from tfrec_llm.data.splits import make_split
from tfrec_llm.evaluation.baselines import MostPopScorer
from tfrec_llm.evaluation.protocols import evaluate
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.models.scorer import TwoTowerScorer
from tfrec_llm.training.trainer import train_two_tower

NUM_ITEMS = 50  # more than the 15 steps of a walk: the TEST item is never in the history
NUM_USERS = 60
STEPS = 15


def cycle_dataset(seed: int = 0) -> RecDataset:
    """Users walking the cycle 1 -> 2 -> ... -> NUM_ITEMS -> 1 from random starts."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, NUM_USERS + 1):
        start = int(rng.integers(NUM_ITEMS))
        for t in range(STEPS):
            rows.append((str(u), str((start + t) % NUM_ITEMS + 1), 1_000_000 + 1000 * u + t))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    interactions["timestamp"] = interactions["timestamp"].astype(np.int64)
    return RecDataset(
        name="cycle",
        interactions=interactions,
        items=pd.DataFrame({"item_id": [str(i) for i in range(1, NUM_ITEMS + 1)]}),
        users=pd.DataFrame({"user_id": [str(u) for u in range(1, NUM_USERS + 1)]}),
    )


@pytest.mark.parametrize("loss", ["full_softmax", "gbce"])
def test_next_item_attention_model_learns_the_cycle_that_popularity_misses(tmp_path, loss):
    keras.utils.set_random_seed(0)
    dataset = cycle_dataset()
    split = make_split(dataset, "loo")
    catalog = build_catalog(dataset, split)
    counts = catalog.popularity
    assert counts.max() <= 3 * max(counts.mean(), 1), "popularity must be about flat"
    cfg = replace(
        ExperimentConfig(),
        model__use_text=False,
        model__use_categories=False,
        model__use_user_ids=False,
        model__embedding_dim=16,
        model__history_length=4,
        model__history_encoder="attention",
        model__encoder_width=16,
        model__encoder_blocks=1,
        model__encoder_heads=2,
        model__encoder_dropout=0.0,
        model__objective="next_item",
        model__loss=loss,
        model__gbce_negatives=16,  # of the cycle's 50 items (full_softmax ignores it)
        train__batch_size=16,
        train__learning_rate=0.02,
        train__epochs=12 if loss == "full_softmax" else 24,  # 16 negatives teach more slowly
    )
    result = train_two_tower(
        cfg, split, catalog, lambda: build_two_tower(cfg.model, catalog), str(tmp_path), verbose=0
    )
    model = result.model
    assert model.objective == "next_item" and model.query_tower.encoder is not None
    assert model.query_tower.id_embedding is None  # use_user_ids=false

    scorer = TwoTowerScorer(model, catalog)
    trained = evaluate(scorer, split.test, split.item_ids)
    most_pop = evaluate(MostPopScorer(split), split.test, split.item_ids)
    assert trained["users"] == NUM_USERS
    assert trained["hr@10"] >= most_pop["hr@10"] + 0.4, (trained, most_pop)
    assert trained["hr@10"] >= 0.8 and trained["ndcg@10"] >= 0.6, trained

    # Without user ids (and no profile), hiding the users changes nothing.
    hidden = TwoTowerScorer(model, catalog, hide_user_ids=True)
    users, histories = split.test.user_ids, split.test.histories
    np.testing.assert_allclose(hidden.score(users, histories), scorer.score(users, histories), atol=1e-6)
    assert evaluate(hidden, split.test, split.item_ids) == trained


def test_full_softmax_leaves_out_the_items_training_never_saw(tmp_path):
    """Under cold-items, the held-out items are never a negative of the training softmax."""
    dataset = cycle_dataset()
    split = make_split(dataset, "cold-items")
    catalog = build_catalog(dataset, split)
    cfg = replace(
        ExperimentConfig(),
        model__use_text=False,
        model__use_categories=False,
        model__embedding_dim=8,
        model__history_length=4,
        model__encoder_width=8,
        train__epochs=1,
    )
    result = train_two_tower(
        cfg, split, catalog, lambda: build_two_tower(cfg.model, catalog), str(tmp_path), verbose=0
    )
    kept = np.flatnonzero(result.model.softmax_items.numpy())
    trained = np.unique(catalog.item_index(split.train["item_id"].to_numpy()))
    cold = catalog.item_index(sorted(set(catalog.item_ids) - set(split.train["item_id"])))
    assert len(cold) >= 5  # 20% of 50 items are cold
    np.testing.assert_array_equal(kept, trained)
    assert not np.isin(cold, kept).any()
