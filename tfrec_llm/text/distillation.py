"""Training the student item encoder: the teacher's vectors, plus an optional retrieval term.

`distill` trains a `StudentEncoder` on item texts with

- a **teacher term**: mean ``1 - cosine`` to the teacher BERT's (precomputed) vector of each
  text, plus an optional in-batch contrastive part (each student vector must pick its own
  teacher vector among the batch's);
- an optional **retrieval term** (`RetrievalTerm`): a frozen, trained two-tower model's query
  vectors of (user, next item) pairs must pick their item among the batch's items, each item
  embedded by the frozen item tower from the *student's* text vector, with its id replaced by
  the unknown row, as for a cold item. So the student learns what in the text predicts who
  watches an item, not only what the teacher said of it.

The teacher term reads no interaction. The retrieval term reads the frozen model's TRAIN
pairs only: built on a protocol's TRAIN split, it never sees the interactions that protocol
holds out (`tfrec_llm.experiments.distill.retrieval_term`).

Example:
    >>> ids, mask = tokenize_for_student(model_path, texts, max_length=64)
    >>> distill(student, ids, mask, teacher_vectors, "runs/x/student", epochs=30)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.atomic_io import write_json
from tfrec_llm.errors import ConfigError
from tfrec_llm.text.student import (
    STUDENT_CONFIG,
    STUDENT_RESULT,
    STUDENT_WEIGHTS,
    StudentEncoder,
    student_model,
)


@dataclasses.dataclass(frozen=True)
class RetrievalTerm:
    """The frozen recommender half of the student's loss.

    Attributes:
        queries: float32 ``[pairs, dim]`` query vectors of the frozen model (one per pair).
        items: int ``[pairs]`` row of each pair's next item in the student's token tables.
        candidate: ``(items [n] int32, text_vectors [n, text_dim]) -> [n, dim]``: the frozen
            item tower on the student's text vectors (e.g. ``ItemTower.embed_text_vectors``).
        weight: Weight of the term beside the teacher term.
        temperature: Logit divisor (the frozen model's).
        batch_size: Pairs per step (the softmax runs over their distinct items).
    """

    queries: np.ndarray
    items: np.ndarray
    candidate: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    weight: float = 1.0
    temperature: float = 0.1
    batch_size: int = 256

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.items) or len(self.items) == 0:
            raise ConfigError(
                f"RetrievalTerm needs one query per item: {len(self.queries)} queries, "
                f"{len(self.items)} items (and at least one)."
            )
        if not self.weight > 0 or not self.temperature > 0:
            raise ConfigError(
                f"RetrievalTerm: weight={self.weight!r} and temperature={self.temperature!r} must be > 0."
            )
        _positive("retrieval batch_size", self.batch_size)


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} is invalid: expected a positive int.")


def distillation_loss(contrastive_weight: float = 0.0, temperature: float = 0.05):  # type: ignore[no-untyped-def]
    """Keras loss ``(teacher, student) -> mean(1 - cosine) + w * in-batch softmax CE``.

    The contrastive term scores each student vector against every teacher vector of the batch
    and asks for its own (the ranking the retrieval model needs); ``w = 0`` leaves cosine only.
    """

    def loss(teacher: tf.Tensor, student: tf.Tensor) -> tf.Tensor:
        teacher = tf.math.l2_normalize(tf.cast(teacher, tf.float32), axis=-1)
        student = tf.math.l2_normalize(student, axis=-1)
        value = tf.reduce_mean(1.0 - tf.reduce_sum(teacher * student, axis=-1))
        if contrastive_weight:
            logits = tf.matmul(student, teacher, transpose_b=True) / temperature
            labels = tf.range(tf.shape(logits)[0])
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            value += contrastive_weight * tf.reduce_mean(ce)
        return value

    return loss


def retrieval_loss(
    queries: tf.Tensor, items: tf.Tensor, embed: Callable[[tf.Tensor], tf.Tensor], temperature: float
) -> tf.Tensor:
    """Mean softmax cross-entropy of each query over the batch's distinct items, its own the label.

    Args:
        queries: ``[b, dim]`` query vectors.
        items: ``[b]`` item rows (duplicates share one column, so a repeat is never a negative).
        embed: ``[n]`` distinct item rows -> ``[n, dim]`` candidate vectors.
        temperature: Logit divisor.
    """
    unique, label = tf.unique(tf.cast(items, tf.int32))
    logits = tf.matmul(tf.cast(queries, tf.float32), embed(unique), transpose_b=True) / temperature
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label, logits=logits)
    return tf.reduce_mean(ce)


class _Distiller(keras.Model):  # type: ignore[misc]
    """Fits ``student`` on (text batch, teacher vectors) and, with a retrieval term, pair batches."""

    def __init__(
        self,
        student: StudentEncoder,
        teacher_loss: Any,
        token_ids: np.ndarray,
        attention_mask: np.ndarray,
        retrieval: RetrievalTerm | None,
    ) -> None:
        super().__init__(name="distiller")
        self.student = student
        self.teacher_loss = teacher_loss
        self.token_ids = tf.constant(token_ids, tf.int32)
        self.attention_mask = tf.constant(attention_mask, tf.int32)
        self._retrieval = (retrieval,)  # a tuple: Keras must not track the frozen tower's weights

    def call(self, inputs: dict[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        return self.student(inputs, training=training)

    def _embed_items(self, rows: tf.Tensor) -> tf.Tensor:
        retrieval = self._retrieval[0]
        assert retrieval is not None
        vectors = self.student.encode_tokens(
            tf.gather(self.token_ids, rows), tf.gather(self.attention_mask, rows), training=True
        )
        return retrieval.candidate(rows, vectors)

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        retrieval = self._retrieval[0]
        (features, teacher), pairs = (data, None) if retrieval is None else data
        with tf.GradientTape() as tape:
            teacher_part = self.teacher_loss(teacher, self.student(features, training=True))
            loss = teacher_part
            logs = {"teacher_loss": teacher_part}
            if retrieval is not None:
                queries, items = pairs
                part = retrieval_loss(queries, items, self._embed_items, retrieval.temperature)
                loss = loss + retrieval.weight * part
                logs["retrieval_loss"] = part
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return {"loss": loss, **logs}


def _token_dropout(rate: float, seed: int):  # type: ignore[no-untyped-def]
    """tf.data map: drops each valid token (not the first) with probability ``rate``."""

    def drop(features: dict[str, tf.Tensor], target: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        mask = features["attention_mask"]
        keep = tf.random.uniform(tf.shape(mask), seed=seed) >= rate
        keep = tf.logical_or(keep, tf.range(tf.shape(mask)[-1]) == 0)
        return {**features, "attention_mask": mask * tf.cast(keep, mask.dtype)}, target

    return drop


def _training_data(
    features: dict[str, np.ndarray],
    teacher: np.ndarray,
    batch_size: int,
    token_dropout: float,
    retrieval: RetrievalTerm | None,
    seed: int,
) -> tf.data.Dataset:
    """One epoch = one pass over the texts; with a retrieval term, each step adds a pair batch."""
    rows = len(teacher)
    data = tf.data.Dataset.from_tensor_slices((features, teacher))
    data = data.shuffle(rows, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if token_dropout:
        data = data.map(_token_dropout(token_dropout, seed))
    if retrieval is not None:
        pairs = tf.data.Dataset.from_tensor_slices(
            (np.asarray(retrieval.queries, np.float32), np.asarray(retrieval.items, np.int32))
        )
        pairs = pairs.shuffle(len(retrieval.items), seed=seed + 1, reshuffle_each_iteration=True)
        data = tf.data.Dataset.zip((data, pairs.repeat().batch(retrieval.batch_size, drop_remainder=True)))
    return data.prefetch(2)


def distill(
    student: StudentEncoder,
    token_ids: np.ndarray,
    attention_mask: np.ndarray,
    teacher_vectors: np.ndarray,
    out_dir: str,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    contrastive_weight: float = 0.0,
    token_dropout: float = 0.1,
    retrieval: RetrievalTerm | None = None,
    seed: int = 42,
    verbose: int = 1,
    extra_metadata: dict[str, Any] | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> dict[str, Any]:
    """Trains ``student`` to reproduce ``teacher_vectors`` (and ``retrieval``) and saves it in ``out_dir``.

    Resumable (``BackupAndRestore`` in ``out_dir/backup``), with TensorBoard logs in
    ``out_dir/logs`` and Keras' progress bar (``verbose=1``). Writes ``student_config.json``
    (the layer config and ``extra_metadata``), ``student.weights.h5`` and ``result.json``.

    Args:
        retrieval: Optional frozen-recommender term; its ``items`` index rows of ``token_ids``.
        callbacks: More Keras callbacks (after the backup and TensorBoard ones).

    Returns:
        The result: epochs, final losses, mean cosine to the teacher, seconds.

    Raises:
        ConfigError: Rows of the inputs disagree, or a setting is out of range.
    """
    rows = len(token_ids)
    if not (rows == len(attention_mask) == len(teacher_vectors)) or rows == 0:
        raise ConfigError(
            f"distill needs one teacher vector per text: {len(token_ids)} token rows, "
            f"{len(attention_mask)} masks, {len(teacher_vectors)} teacher vectors (and at least one)."
        )
    if not 0.0 <= token_dropout < 1.0:
        raise ConfigError(f"token_dropout={token_dropout!r} is invalid: expected a float in [0, 1).")
    _positive("epochs", epochs)
    _positive("batch_size", batch_size)
    if retrieval is not None and not np.all((retrieval.items >= 0) & (retrieval.items < rows)):
        raise ConfigError(f"RetrievalTerm.items must be rows of the {rows} texts (0..{rows - 1}).")
    keras.utils.set_random_seed(seed)
    features = {"input_ids": token_ids.astype(np.int32), "attention_mask": attention_mask.astype(np.int32)}
    teacher = np.asarray(teacher_vectors, np.float32)
    model = _Distiller(
        student,
        distillation_loss(contrastive_weight),
        features["input_ids"],
        features["attention_mask"],
        retrieval,
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    model({name: values[:1] for name, values in features.items()})  # built: BackupAndRestore needs it
    data = _training_data(features, teacher, batch_size, token_dropout, retrieval, seed)
    os.makedirs(out_dir, exist_ok=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(out_dir, "backup")),
        keras.callbacks.TensorBoard(os.path.join(out_dir, "logs"), write_graph=False),
        *(callbacks or []),
    ]
    start = time.perf_counter()
    history = model.fit(data, epochs=epochs, callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - start
    vectors = student.encode_tokens(features["input_ids"], features["attention_mask"]).numpy()
    unit = teacher / np.maximum(np.linalg.norm(teacher, axis=1, keepdims=True), 1e-12)
    last = {key: float(values[-1]) for key, values in history.history.items() if values}
    result = {
        "epochs": epochs,
        "loss": last.get("loss"),
        "teacher_loss": last.get("teacher_loss"),
        "retrieval_loss": last.get("retrieval_loss"),
        "mean_cosine": float(np.mean(np.sum(vectors * unit, axis=1))),
        "seconds": round(seconds, 2),
        "texts": rows,
        "contrastive_weight": contrastive_weight,
        "token_dropout": token_dropout,
        "retrieval_weight": retrieval.weight if retrieval is not None else 0.0,
        "retrieval_pairs": len(retrieval.items) if retrieval is not None else 0,
    }
    student_model(student).save_weights(os.path.join(out_dir, STUDENT_WEIGHTS))
    write_json(
        os.path.join(out_dir, STUDENT_CONFIG), {"layer": student.get_config(), **(extra_metadata or {})}
    )
    write_json(os.path.join(out_dir, STUDENT_RESULT), result)
    return result
