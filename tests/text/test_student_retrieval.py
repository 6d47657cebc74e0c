"""The student's retrieval term: its loss against numpy, the cold-item tower path, the TRAIN
pairs it reads from a frozen two-tower, that it teaches what the teacher term cannot, and that
a student made with another frozen model is never reused."""

from __future__ import annotations

import os
import types

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError
from tfrec_llm.text.distillation import RetrievalTerm, distill, retrieval_loss
from tfrec_llm.text.student import StudentEncoder, is_trained


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def test_retrieval_loss_equals_numpy_softmax_over_the_distinct_items():
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(4, 3)).astype(np.float32)
    items = np.array([5, 2, 5, 7], np.int32)  # item 5 twice: one column, never its own negative
    table = rng.normal(size=(8, 3)).astype(np.float32)
    got = retrieval_loss(queries, items, lambda rows: tf.gather(table, rows), 0.5).numpy()
    columns = [5, 2, 7]
    logits = queries @ table[columns].T / 0.5
    labels = [0, 1, 0, 2]
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert got == pytest.approx(-np.mean(log_softmax[np.arange(4), labels]), rel=1e-5)


def test_embed_text_vectors_is_the_tower_on_an_item_whose_id_is_unknown(tiny_dataset, small_two_tower):
    small = small_two_tower(tiny_dataset)
    tower = small.model.item_tower
    item = 3
    id_index = tower.id_index.numpy()
    assert id_index[item] != 0  # a warm item: its id has a row
    vector = tf.constant(small.text_embeddings[item : item + 1])
    with tf.GradientTape() as tape:
        tape.watch(vector)
        cold = tower.embed_text_vectors(tf.constant([item]), vector)
        score = tf.reduce_sum(cold * tf.constant(np.ones([1, cold.shape[1]], np.float32)))
    assert np.abs(tape.gradient(score, vector).numpy()).sum() > 0  # the student's gradient path
    warm = tower(tf.constant([item])).numpy()
    assert not np.allclose(cold.numpy(), warm, atol=1e-4)
    tower.id_index.assign(np.where(np.arange(len(id_index)) == item, 0, id_index))
    np.testing.assert_allclose(cold.numpy(), tower(tf.constant([item])).numpy(), atol=1e-5)


def test_embed_text_vectors_needs_a_text_table(tiny_dataset, small_two_tower):
    tower = small_two_tower(tiny_dataset, use_text=False).model.item_tower
    with pytest.raises(ConfigError, match="needs use_text with a frozen text table"):
        tower.embed_text_vectors(tf.constant([0]), tf.zeros([1, 6]))


def _token_rows(rows: int, width: int, vocab: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.zeros((rows, width), np.int32)
    mask = np.zeros((rows, width), np.int32)
    for row in range(rows):
        length = rng.integers(2, width + 1)
        ids[row, :length] = rng.integers(5, vocab, length)
        mask[row, :length] = 1
    return ids, mask


def _bag(ids: np.ndarray, mask: np.ndarray, table: np.ndarray) -> np.ndarray:
    return np.stack([table[r[m > 0]].mean(axis=0) for r, m in zip(ids, mask)])


def test_the_retrieval_term_teaches_what_the_teacher_term_cannot(tmp_path):
    """Queries want a token function the teacher does not carry: only the term can learn it."""
    rows, width, vocab, dim, query_dim = 120, 8, 40, 12, 6
    ids, mask = _token_rows(rows, width, vocab, seed=1)
    rng = np.random.default_rng(2)
    teacher = _unit(np.tanh(_bag(ids, mask, rng.normal(size=(vocab, dim)))) @ rng.normal(size=(dim, dim)))
    wanted = _unit(_bag(ids, mask, rng.normal(size=(vocab, query_dim))))  # what users look for
    projection = tf.constant(rng.normal(size=(dim, query_dim)).astype(np.float32))

    def candidate(rows_: tf.Tensor, vectors: tf.Tensor) -> tf.Tensor:  # the frozen "tower"
        return tf.math.l2_normalize(tf.matmul(vectors, projection), axis=-1)

    pairs = np.repeat(np.arange(rows), 4).astype(np.int32)
    queries = wanted[pairs].astype(np.float32)

    def top1(weight: float) -> float:
        student = StudentEncoder(vocab_size=vocab, output_dim=dim, embedding_dim=16, max_length=width)
        term = RetrievalTerm(queries, pairs, candidate, weight=1.0, temperature=0.1) if weight else None
        result = distill(
            student, ids, mask, teacher, str(tmp_path / f"w{weight}"), epochs=30, batch_size=32,
            learning_rate=0.03, token_dropout=0.0, retrieval=term, verbose=0,
        )  # fmt: skip
        assert result["retrieval_pairs"] == (len(pairs) if weight else 0)
        items = candidate(None, student.encode_tokens(ids, mask)).numpy()
        return float(np.mean(np.argmax(wanted @ items.T, axis=1) == np.arange(rows)))

    without, with_term = top1(0.0), top1(1.0)
    assert without < 0.25, without
    assert with_term > without + 0.4, (without, with_term)


def test_retrieval_term_reads_train_pairs_and_the_frozen_model_queries(tiny_dataset, small_two_tower):
    from tfrec_llm.experiments.distill import retrieval_term
    from tfrec_llm.experiments.prepare import user_histories
    from tfrec_llm.models.scorer import TwoTowerScorer

    small = small_two_tower(tiny_dataset)
    prepared = types.SimpleNamespace(split=small.split, catalog=small.catalog)
    histories = user_histories(small.split.train)
    total = sum(len(h) - 1 for h in histories.values())
    term = retrieval_term(small.model, prepared, weight=0.5, max_pairs=10**6, seed=0)
    assert len(term.items) == total and term.weight == 0.5
    assert term.temperature == pytest.approx(small.model.temperature)
    first_user = next(iter(histories))
    history = histories[first_user]
    expected = TwoTowerScorer(small.model, small.catalog).query_embeddings(
        np.array([first_user, first_user], dtype=object), [history[:1], history[:2]]
    )
    np.testing.assert_allclose(term.queries[:2], expected, atol=1e-5)  # pairs keep TRAIN order
    np.testing.assert_array_equal(
        term.items[:2], small.catalog.item_index(np.array(history[1:3], dtype=object))
    )
    few = retrieval_term(small.model, prepared, weight=0.5, max_pairs=25, seed=3)
    again = retrieval_term(small.model, prepared, weight=0.5, max_pairs=25, seed=3)
    assert len(few.items) == 25
    np.testing.assert_array_equal(few.items, again.items)


def test_distill_student_with_a_retrieval_term_needs_and_fingerprints_the_frozen_model(
    tiny_dataset, small_two_tower, tiny_bert_dir, tmp_path
):
    from tfrec_llm.config import ExperimentConfig, replace
    from tfrec_llm.experiments.distill import StudentSettings, distill_student
    from tfrec_llm.experiments.prepare import item_texts

    cfg = replace(ExperimentConfig(), text__model_path=tiny_bert_dir, text__max_length=16)
    small = small_two_tower(tiny_dataset)
    texts = tuple(item_texts(tiny_dataset, small.split.item_ids, cfg.text.template))
    prepared = types.SimpleNamespace(
        split=small.split, catalog=small.catalog, item_texts=texts, text_embeddings=small.text_embeddings
    )
    settings = StudentSettings(embedding_dim=8, epochs=2, retrieval_weight=0.5, retrieval_pairs=200)
    out_dir = str(tmp_path / "student")
    with pytest.raises(ConfigError, match="retrieval_weight > 0 needs the trained two-tower"):
        distill_student(cfg, settings, prepared, out_dir, verbose=0)  # type: ignore[arg-type]
    _, info = distill_student(cfg, settings, prepared, out_dir, verbose=0, frozen=small.model)  # type: ignore[arg-type]
    assert info["result"]["retrieval_pairs"] == 200 and info["retrieval_sha256"]
    _, again = distill_student(cfg, settings, prepared, out_dir, verbose=0, frozen=small.model)  # type: ignore[arg-type]
    assert "result" not in again  # same frozen model and pairs: reused
    other = small_two_tower(tiny_dataset, text_seed=7).model  # another frozen model
    with pytest.raises(ConfigError, match="holds a student made with other retrieval_sha256"):
        distill_student(cfg, settings, prepared, out_dir, verbose=0, frozen=other)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="other retrieval_sha256"):
        distill_student(cfg, StudentSettings(embedding_dim=8, epochs=2), prepared, out_dir, verbose=0)  # type: ignore[arg-type]


class _Interrupted(Exception):
    pass


class _InterruptAfterEpoch(keras.callbacks.Callback):  # type: ignore[misc]
    """Runs after distill's own callbacks, so the epoch is checkpointed before it stops the run."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Interrupted


class _Epochs(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def test_an_interrupted_distillation_with_a_retrieval_term_resumes_after_the_last_epoch(tmp_path):
    ids, mask = _token_rows(60, 6, 30, seed=4)
    rng = np.random.default_rng(5)
    teacher = _unit(rng.normal(size=(60, 8))).astype(np.float32)
    pairs = np.arange(60, dtype=np.int32)
    term = RetrievalTerm(_unit(rng.normal(size=(60, 8))).astype(np.float32), pairs, _identity, batch_size=16)
    out_dir = str(tmp_path / "student")

    def student() -> StudentEncoder:
        return StudentEncoder(vocab_size=30, output_dim=8, embedding_dim=8, max_length=6)

    with pytest.raises(_Interrupted):
        distill(student(), ids, mask, teacher, out_dir, epochs=4, retrieval=term, verbose=0,
                callbacks=[_InterruptAfterEpoch(1)])  # fmt: skip
    assert os.listdir(os.path.join(out_dir, "backup")) and not is_trained(out_dir)
    epochs = _Epochs()
    result = distill(
        student(), ids, mask, teacher, out_dir, epochs=4, retrieval=term, verbose=0, callbacks=[epochs]
    )
    assert epochs.seen == [2, 3]  # epochs 0 and 1 came from the backup
    assert result["epochs"] == 4 and is_trained(out_dir)
    assert not os.path.exists(os.path.join(out_dir, "backup", "chief"))


def _identity(rows: tf.Tensor, vectors: tf.Tensor) -> tf.Tensor:
    return tf.math.l2_normalize(vectors, axis=-1)
