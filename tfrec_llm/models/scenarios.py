"""One retrieval model for several scenarios: a scenario embedding and per-scenario heads.

The query tower reads ``(user, scenario, history)``: a user-id embedding, the mean of the
item-tower vectors of the user's history (every scenario's items, so interest shown in one
scenario reaches another) and a scenario embedding. Their concatenation goes through

* ``shared_bottom``: one shared ReLU layer, then one linear output layer per scenario; or
* ``mmoe``: Multi-gate Mixture-of-Experts (Ma et al., KDD 2018): ``num_experts`` ReLU experts
  mixed by one softmax gate per scenario, then one linear output layer per scenario;

and the row of the example's scenario is the query vector. The item tower is an item-id
embedding plus the mean of the item text's word embeddings. Both are L2-normalised and scored by
cosine over ``temperature``.

Training uses ``tfrs.tasks.Retrieval``; each batch holds one scenario's examples, and its
candidates are the batch's positives and the scenario's whole catalog (mixed negatives;
accidental hits removed), so a query is only ever contrasted with items of its own scenario.
The model scores only the scenario's catalog (`tfrec_llm.models.scenario_inputs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from tfrec_llm.errors import ConfigError

HEADS = ("shared_bottom", "mmoe")


class MMoE(keras.layers.Layer):
    """Multi-gate Mixture-of-Experts: ``num_tasks`` softmax gates over shared ReLU experts.

    ``experts[b, e] = relu(x[b] @ W_e + c_e)``, ``gates[b, t] = softmax(x[b] @ G_t + h_t)``,
    ``mixture[b, t] = sum_e gates[b, t, e] * experts[b, e]``.

    Args:
        num_experts: Experts.
        units: Width of each expert.
        num_tasks: Gates (one per scenario).
    """

    def __init__(self, num_experts: int, units: int, num_tasks: int, **kwargs):
        super().__init__(**kwargs)
        self.num_experts, self.units, self.num_tasks = num_experts, units, num_tasks

    def build(self, input_shape):
        width = int(input_shape[-1])
        init = keras.initializers.GlorotUniform(seed=1)
        self.expert_kernel = self.add_weight(
            name="expert_kernel", shape=(width, self.num_experts, self.units), initializer=init
        )
        self.expert_bias = self.add_weight(
            name="expert_bias", shape=(self.num_experts, self.units), initializer="zeros"
        )
        self.gate_kernel = self.add_weight(
            name="gate_kernel", shape=(self.num_tasks, width, self.num_experts), initializer=init
        )
        self.gate_bias = self.add_weight(
            name="gate_bias", shape=(self.num_tasks, self.num_experts), initializer="zeros"
        )
        super().build(input_shape)

    def call(self, inputs):
        """Returns ``(mixture [batch, tasks, units], gates [batch, tasks, experts])``."""
        experts = tf.nn.relu(tf.einsum("bd,deu->beu", inputs, self.expert_kernel) + self.expert_bias)
        gates = tf.nn.softmax(tf.einsum("bd,tde->bte", inputs, self.gate_kernel) + self.gate_bias)
        return tf.einsum("bte,beu->btu", gates, experts), gates

    def get_config(self):
        """Keras config (the constructor's arguments)."""
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "units": self.units,
            "num_tasks": self.num_tasks,
        }


class ScenarioRetrievalModel(tfrs.Model):
    """Two-tower retrieval over several scenarios (see the module docstring).

    Features: ``user`` int [batch] (row in the users frame), ``scenario`` int [batch],
    ``history`` int [batch, length] (item rows, -1 = padding) and, in training, ``item`` int
    [batch] (the positive; it is masked out of the history).

    Args:
        num_users: Users.
        catalogs: Per scenario, the item rows of its catalog (the scenario's order = index).
        item_words: ``[num_items, words]`` word ids of each item's text, 0 = padding.
        num_words: Largest word id.
        embedding_dim: Size of both towers' outputs.
        head: ``shared_bottom`` or ``mmoe``.
        num_experts: MMoE experts.
        expert_units: Width of the shared bottom or of each expert.
        scenario_embedding_dim: Size of the scenario embedding.
        temperature: Softmax temperature of the cosine scores.
    """

    def __init__(
        self,
        num_users: int,
        catalogs: Sequence[np.ndarray],
        item_words: np.ndarray,
        num_words: int,
        embedding_dim: int = 32,
        head: str = "shared_bottom",
        num_experts: int = 4,
        expert_units: int = 64,
        scenario_embedding_dim: int = 8,
        temperature: float = 0.1,
    ):
        super().__init__()
        if head not in HEADS:
            raise ConfigError(f"scenarios.head={head!r}; expected one of {list(HEADS)}.")
        self.head, self.num_scenarios = head, len(catalogs)
        lengths = [len(c) for c in catalogs]
        self._catalog_flat = tf.constant(np.concatenate(catalogs).astype(np.int32))
        self._catalog_splits = tf.constant(np.cumsum([0, *lengths]).astype(np.int32))
        self._item_words = tf.constant(np.asarray(item_words, dtype=np.int32))
        num_items = int(item_words.shape[0])
        uniform = keras.initializers.RandomUniform(-0.05, 0.05, seed=0)
        self.item_embedding = keras.layers.Embedding(num_items, embedding_dim, uniform)
        self.word_embedding = keras.layers.Embedding(num_words + 1, embedding_dim, uniform)
        self.user_embedding = keras.layers.Embedding(num_users, embedding_dim, uniform)
        self.scenario_embedding = keras.layers.Embedding(self.num_scenarios, scenario_embedding_dim, uniform)
        if head == "mmoe":
            self.mixer = MMoE(num_experts, expert_units, self.num_scenarios)
        else:
            self.mixer = keras.layers.Dense(
                expert_units, "relu", kernel_initializer=keras.initializers.GlorotUniform(seed=1)
            )
        self.out_kernel = self.add_weight(
            name="out_kernel",
            shape=(self.num_scenarios, expert_units, embedding_dim),
            initializer=keras.initializers.GlorotUniform(seed=2),
        )
        self.out_bias = self.add_weight(
            name="out_bias", shape=(self.num_scenarios, embedding_dim), initializer="zeros"
        )
        self.task = tfrs.tasks.Retrieval(temperature=temperature, remove_accidental_hits=True)

    def item_vectors(self, rows: tf.Tensor) -> tf.Tensor:
        """Unnormalised item-tower vectors of item rows (any shape; -1 rows are zero)."""
        rows = tf.convert_to_tensor(rows, tf.int32)
        safe = tf.maximum(rows, 0)
        words = tf.gather(self._item_words, safe)
        word_mask = tf.cast(words > 0, tf.float32)[..., None]
        word_vec = tf.reduce_sum(self.word_embedding(words) * word_mask, axis=-2)
        word_vec /= tf.maximum(tf.reduce_sum(word_mask, axis=-2), 1.0)
        vec = self.item_embedding(safe) + word_vec
        return vec * tf.cast(rows >= 0, tf.float32)[..., None]

    def candidate_embeddings(self, rows: tf.Tensor) -> tf.Tensor:
        """L2-normalised item-tower outputs of item rows."""
        return tf.math.l2_normalize(self.item_vectors(rows), axis=-1)

    def head_inputs(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """The concatenated user, history and scenario vectors fed to the heads."""
        history = tf.convert_to_tensor(features["history"], tf.int32)
        if "item" in features:  # never let the positive sit in its own history
            target = tf.convert_to_tensor(features["item"], tf.int32)[:, None]
            history = tf.where(history == target, -1, history)
        mask = tf.cast(history >= 0, tf.float32)[..., None]
        history_vec = tf.reduce_sum(self.item_vectors(history) * mask, axis=1)
        history_vec /= tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        return tf.concat(
            [
                self.user_embedding(tf.convert_to_tensor(features["user"], tf.int32)),
                history_vec,
                self.scenario_embedding(tf.convert_to_tensor(features["scenario"], tf.int32)),
            ],
            axis=-1,
        )

    def gates(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """MMoE gate weights ``[batch, scenarios, experts]`` (rows sum to 1)."""
        if self.head != "mmoe":
            raise ConfigError(f"gates() needs scenarios.head='mmoe', not {self.head!r}.")
        return self.mixer(self.head_inputs(features))[1]

    def query_embeddings(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """L2-normalised query vectors ``[batch, embedding_dim]`` of each example's scenario."""
        x = self.head_inputs(features)
        if self.head == "mmoe":
            mixed = self.mixer(x)[0]
        else:
            bottom = self.mixer(x)
            mixed = tf.tile(bottom[:, None, :], [1, self.num_scenarios, 1])
        out = tf.einsum("btu,tud->btd", mixed, self.out_kernel) + self.out_bias
        scenario = tf.convert_to_tensor(features["scenario"], tf.int32)
        return tf.math.l2_normalize(tf.gather(out, scenario, batch_dims=1), axis=-1)

    def catalog(self, scenario: tf.Tensor) -> tf.Tensor:
        """Item rows of one scenario's catalog."""
        start = self._catalog_splits[scenario]
        return self._catalog_flat[start : self._catalog_splits[scenario + 1]]

    def call(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """Query vectors (so Keras can build the model by calling it)."""
        return self.query_embeddings(features)

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Softmax over the batch's positives and its scenario's catalog (one scenario a batch)."""
        query = self.query_embeddings(features)
        positives = tf.convert_to_tensor(features["item"], tf.int32)
        catalog = self.catalog(tf.convert_to_tensor(features["scenario"], tf.int32)[0])
        candidate_ids = tf.concat([positives, catalog], axis=0)
        return self.task(
            query,
            self.candidate_embeddings(candidate_ids),
            candidate_ids=candidate_ids,
            compute_metrics=False,
        )
