"""Fixture SavedModel implementing the retrieval export contract (helpers, no fixtures).

Until the lead's exporter exists, ``save_retrieval_fixture`` stands in for
``<export>/retrieval/<version>/``:

  inputs:  user_id [None] string; recent_item_ids [None, None] string (default shape [0, 0]);
           exclude_item_ids [None, None] string (default shape [0, 0]); k int32 [] (default 10)
  outputs: item_ids [None, None] string; scores [None, None] float32

Scores (worked out by ``reference_recommend`` in numpy, independently of TensorFlow):
  score[u, i] = BASE_SCORES[u, i] (0 for unknown users) + VERSION_OFFSET * version
              + RECENT_BONUS * (times item i occurs in the user's recent_item_ids row)
  excluded items score -inf; the top min(k, K_MAX) items are returned, ties -> lower index.
"""

from __future__ import annotations

import os
import shutil

import numpy as np

import tfrec_llm  # noqa: F401  (Keras 2 before TensorFlow)

ITEM_IDS = ["10", "20", "30", "40", "50", "60"]
USER_IDS = ["1", "2", "3"]
BASE_SCORES = np.array(
    [
        [0.9, 0.1, 0.5, 0.3, 0.7, 0.2],
        [0.2, 0.8, 0.4, 0.6, 0.1, 0.3],
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.6],
    ],
    dtype=np.float32,
)
K_MAX = 5
RECENT_BONUS = 0.25
VERSION_OFFSET = 10.0


def reference_recommend(user_ids, version, k=10, recent=None, exclude=None):
    """Numpy reference of the fixture model: returns (item_ids [n, k'], scores [n, k'])."""
    n = len(user_ids)
    rows = [BASE_SCORES[USER_IDS.index(u)] if u in USER_IDS else np.zeros(6, np.float32) for u in user_ids]
    scores = np.array(rows, dtype=np.float32) + np.float32(VERSION_OFFSET * version)
    for r in range(n):
        for item in recent[r] if recent is not None else []:
            if item in ITEM_IDS:
                scores[r, ITEM_IDS.index(item)] += np.float32(RECENT_BONUS)
        for item in exclude[r] if exclude is not None else []:
            if item in ITEM_IDS:
                scores[r, ITEM_IDS.index(item)] = -np.inf
    kk = min(k, K_MAX)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
    ids = np.array([[ITEM_IDS[j] for j in row] for row in order], dtype=object).reshape(n, kk)
    return ids, np.take_along_axis(scores, order, axis=1)


def save_retrieval_fixture(version_dir: str, version: int) -> str:
    """Saves the contract-shaped retrieval SavedModel for ``version`` into ``version_dir``."""
    import tensorflow as tf

    class RetrievalFixture(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            init = tf.lookup.KeyValueTensorInitializer(
                tf.constant(USER_IDS), tf.range(len(USER_IDS), dtype=tf.int64)
            )
            self.users = tf.lookup.StaticHashTable(init, default_value=-1)
            table = np.vstack([BASE_SCORES, np.zeros((1, len(ITEM_IDS)), np.float32)])
            self.score_table = tf.constant(table)
            self.items = tf.constant(ITEM_IDS)
            self.version = tf.constant(version, tf.int32)

        def _rows(self, ids, n, name):
            ids = tf.cond(tf.equal(tf.shape(ids)[0], 0), lambda: tf.fill([n, 1], ""), lambda: ids)
            tf.debugging.assert_equal(tf.shape(ids)[0], n, message=f"{name} must have one row per user_id")
            return ids

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="user_id"),
                tf.TensorSpec([None, None], tf.string, name="recent_item_ids"),
                tf.TensorSpec([None, None], tf.string, name="exclude_item_ids"),
                tf.TensorSpec([], tf.int32, name="k"),
            ]
        )
        def serve(
            self,
            user_id,
            recent_item_ids=tf.zeros([0, 0], tf.string),  # noqa: B008 (SignatureDef default)
            exclude_item_ids=tf.zeros([0, 0], tf.string),  # noqa: B008
            k=tf.constant(10, tf.int32),  # noqa: B008
        ):
            n = tf.shape(user_id)[0]
            index = self.users.lookup(user_id)
            index = tf.where(index < 0, tf.cast(len(USER_IDS), tf.int64), index)
            scores = tf.gather(self.score_table, index)
            scores += VERSION_OFFSET * tf.cast(self.version, tf.float32)
            items = self.items[None, None, :]
            recent = self._rows(recent_item_ids, n, "recent_item_ids")
            counts = tf.reduce_sum(tf.cast(tf.equal(recent[:, :, None], items), tf.float32), axis=1)
            scores += RECENT_BONUS * counts
            exclude = self._rows(exclude_item_ids, n, "exclude_item_ids")
            excluded = tf.reduce_any(tf.equal(exclude[:, :, None], items), axis=1)
            scores = tf.where(excluded, tf.fill(tf.shape(scores), -np.inf), scores)
            tf.debugging.assert_positive(k, message="k must be >= 1")
            top = tf.math.top_k(scores, tf.minimum(k, K_MAX))
            return {"item_ids": tf.gather(self.items, top.indices), "scores": top.values}

    module = RetrievalFixture()
    tf.saved_model.save(module, version_dir, signatures={"serving_default": module.serve})
    return version_dir


def publish_version(base, template: str, version: int) -> str:
    """Writes a version like the exporter does: copy to a temp folder, then os.rename."""
    tmp = os.path.join(str(base), f"tmp-{version}-partial")
    shutil.copytree(template, tmp)
    final = os.path.join(str(base), str(version))
    os.rename(tmp, final)
    return final
