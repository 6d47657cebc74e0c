"""Inputs, training and scoring of `tfrec_llm.models.scenarios.ScenarioRetrievalModel`.

`index_dataset` numbers users, items, scenarios and item-text words of a canonical data set;
`build_features` makes ``(user, scenario, history[, item])`` arrays from a training frame (each
user's history is their training items, newest last, of every scenario or only the example's);
`fit_scenario_model` trains with one scenario per batch; `scenario_scores` scores a scenario's
catalog; `rank_metrics` gives each test row's Recall@k and NDCG@k (training items excluded).

Example:
    >>> index = index_dataset(dataset)
    >>> feats = build_features(index, train, train)
    >>> model = ScenarioRetrievalModel(len(index.user_ids), index.catalogs, index.item_words,
    ...                                index.num_words)
    >>> seconds = fit_scenario_model(model, feats, epochs=3)
"""

from __future__ import annotations

import dataclasses
import re
import time

import numpy as np
import pandas as pd
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.data.schema import ITEM_ID, SCENARIO, TIMESTAMP, USER_ID, RecDataset, scenario_values
from tfrec_llm.errors import DataError
from tfrec_llm.models.scenarios import ScenarioRetrievalModel

_WORD = re.compile(r"[a-z0-9]+")


@dataclasses.dataclass(frozen=True)
class ScenarioIndex:
    """Row numbers of a multi-scenario data set.

    Attributes:
        user_ids: Users, in row order.
        item_ids: Items, in row order.
        scenarios: Scenario names; a scenario's index is its position.
        item_scenario: ``[num_items]`` scenario index of each item.
        catalogs: Per scenario, its item rows.
        item_words: ``[num_items, max_words]`` word ids (1-based, 0 = padding).
        num_words: Number of distinct words.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    scenarios: tuple[str, ...]
    item_scenario: np.ndarray
    catalogs: tuple[np.ndarray, ...]
    item_words: np.ndarray
    num_words: int

    def rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(user rows, item rows, scenario indices)`` of an interactions frame."""
        users = pd.Index(self.user_ids).get_indexer(frame[USER_ID])
        items = pd.Index(self.item_ids).get_indexer(frame[ITEM_ID])
        scen = pd.Index(self.scenarios).get_indexer(scenario_values(frame))
        if (users < 0).any() or (items < 0).any() or (scen < 0).any():
            raise DataError("interactions name a user, item or scenario the index does not know.")
        return users.astype(np.int32), items.astype(np.int32), scen.astype(np.int32)


def index_dataset(dataset: RecDataset, text_field: str = "text") -> ScenarioIndex:
    """Numbers a data set's users, items, scenarios and item-text words.

    Items without a ``scenario`` column belong to the scenario of their interactions (the
    single default scenario when interactions have none either).

    Args:
        dataset: Canonical frames; ``items`` may have ``scenario`` and ``text_field``.
        text_field: Item column whose lower-cased words feed the item tower ('' = none).

    Returns:
        The index.
    """
    items = dataset.items
    if SCENARIO in items.columns:
        item_scen = items[SCENARIO].to_numpy(dtype=object)
    else:
        first = dataset.interactions.assign(**{SCENARIO: scenario_values(dataset.interactions)})
        per_item = first.drop_duplicates(ITEM_ID).set_index(ITEM_ID)[SCENARIO]
        item_scen = items[ITEM_ID].map(per_item).fillna("default").to_numpy(dtype=object)
    scenarios = tuple(dict.fromkeys(item_scen))
    scen_index = pd.Index(scenarios).get_indexer(item_scen).astype(np.int32)
    texts = items[text_field] if text_field in items.columns else pd.Series([""] * len(items))
    tokens = [_WORD.findall(str(t).lower()) for t in texts]
    vocab = {w: i + 1 for i, w in enumerate(sorted({w for ws in tokens for w in ws}))}
    width = max([1, *(len(ws) for ws in tokens)])
    words = np.zeros((len(items), width), dtype=np.int32)
    for row, ws in enumerate(tokens):
        words[row, : len(ws)] = [vocab[w] for w in ws]
    return ScenarioIndex(
        user_ids=dataset.users[USER_ID].to_numpy(dtype=object),
        item_ids=items[ITEM_ID].to_numpy(dtype=object),
        scenarios=scenarios,
        item_scenario=scen_index,
        catalogs=tuple(np.flatnonzero(scen_index == s) for s in range(len(scenarios))),
        item_words=words,
        num_words=len(vocab),
    )


def build_features(
    index: ScenarioIndex,
    train: pd.DataFrame,
    rows: pd.DataFrame,
    history_length: int = 50,
    same_scenario_history: bool = False,
    with_item: bool = True,
) -> dict[str, np.ndarray]:
    """Model features of ``rows``, with histories taken from ``train``.

    Args:
        index: The data set's index.
        train: Training interactions (the histories).
        rows: The examples: ``train`` itself to train, or test rows to score.
        history_length: Most recent training items kept per history.
        same_scenario_history: Histories hold only the example's scenario's items (a
            per-scenario model) instead of every scenario's.
        with_item: Add ``item`` (the row's item, the positive in training).

    Returns:
        ``{"user", "scenario", "history"[, "item"]}`` int32 arrays.
    """
    num_scen = len(index.scenarios)
    t_users, t_items, t_scen = index.rows(train.sort_values(TIMESTAMP, kind="stable"))
    keys = t_users * num_scen + t_scen if same_scenario_history else t_users
    table = np.full(
        (len(index.user_ids) * (num_scen if same_scenario_history else 1), history_length), -1, np.int32
    )
    frame = pd.DataFrame({"key": keys, "item": t_items})
    for key, group in frame.groupby("key", sort=False)["item"]:
        recent = group.to_numpy()[-history_length:]
        table[key, history_length - len(recent) :] = recent
    users, items, scen = index.rows(rows)
    lookup = users * num_scen + scen if same_scenario_history else users
    out = {"user": users, "scenario": scen, "history": table[lookup]}
    if with_item:
        out["item"] = items
    return out


def fit_scenario_model(
    model: ScenarioRetrievalModel,
    features: dict[str, np.ndarray],
    epochs: int,
    batch_size: int = 256,
    learning_rate: float = 0.01,
    seed: int = 0,
) -> float:
    """Trains with shuffled batches of one scenario each; returns the fit's seconds.

    Args:
        model: The model.
        features: `build_features` output with ``item``.
        epochs: Passes over the examples.
        batch_size: Examples per batch (a scenario's last batch may be smaller).
        learning_rate: Adam's learning rate.
        seed: Seed of the batch order and of TensorFlow's random ops.
    """
    tf.random.set_seed(seed)
    rng = np.random.default_rng(seed)
    by_scenario = [np.flatnonzero(features["scenario"] == s) for s in np.unique(features["scenario"])]

    def batches():
        chunks = []
        for rows in by_scenario:
            rows = rng.permutation(rows)
            chunks.extend(rows[i : i + batch_size] for i in range(0, len(rows), batch_size))
        for k in rng.permutation(len(chunks)):
            yield {name: value[chunks[k]] for name, value in features.items()}

    length = features["history"].shape[1]
    signature = {
        name: tf.TensorSpec((None, length) if name == "history" else (None,), tf.int32) for name in features
    }
    data = tf.data.Dataset.from_generator(batches, output_signature=signature)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    start = time.perf_counter()
    model.fit(data.prefetch(2), epochs=epochs, verbose=0)
    return time.perf_counter() - start


def scenario_scores(
    model: ScenarioRetrievalModel, features: dict[str, np.ndarray], catalog: np.ndarray
) -> np.ndarray:
    """Cosine scores ``[n, len(catalog)]`` of queries over a catalog's item rows."""
    query = {k: tf.constant(v) for k, v in features.items() if k != "item"}
    q = model.query_embeddings(query).numpy()
    items = model.candidate_embeddings(tf.constant(catalog, tf.int32)).numpy()
    return q @ items.T


def rank_metrics(
    index: ScenarioIndex,
    train: pd.DataFrame,
    test: pd.DataFrame,
    scenario: int,
    scores: np.ndarray,
    k: int = 10,
) -> dict[str, np.ndarray]:
    """Per test row Recall@k and NDCG@k of its held-out item among the scenario's catalog.

    Items the user has in ``train`` are excluded from the ranking; ties count against the
    target (a constant score ranks it last among equals).

    Args:
        index: The index.
        train: Training interactions (the seen items).
        test: Test rows, all of this scenario, one per user.
        scenario: Scenario index.
        scores: ``[len(test), catalog size]``.
        k: Cut-off.

    Returns:
        ``{"recall", "ndcg"}``, float arrays ``[len(test)]``.
    """
    catalog = index.catalogs[scenario]
    position = np.full(len(index.item_ids), -1)
    position[catalog] = np.arange(len(catalog))
    users, items, _ = index.rows(test)
    target = position[items]
    tr_users, tr_items, _ = index.rows(train)
    test_row = pd.Index(users).get_indexer(tr_users)
    keep = (test_row >= 0) & (position[tr_items] >= 0)
    scores = np.array(scores, dtype=np.float64, copy=True)
    scores[test_row[keep], position[tr_items[keep]]] = -np.inf
    target_score = scores[np.arange(len(test)), target]
    rank = (scores >= target_score[:, None]).sum(axis=1) - 1  # 0-based, ties against
    hit = rank < k
    return {"recall": hit.astype(float), "ndcg": np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)}
