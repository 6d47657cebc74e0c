"""The distilled student encoder: it learns a tiny teacher, ignores padding, round-trips, exports.

One module-scoped distillation on a tiny vocabulary serves the learning, save/load and export
tests; the teacher is a fixed nonlinear function of the token bag, which a bag-of-embeddings
student can approximate but a random one does not.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfrec_llm.config import ExperimentConfig
from tfrec_llm.errors import ConfigError
from tfrec_llm.export.exporter import export_item_encoder
from tfrec_llm.text.distillation import distill
from tfrec_llm.text.student import (
    StudentEncoder,
    StudentTextEncoder,
    load_student,
    load_student_text_encoder,
    tokenize_for_student,
)

VOCAB = 60
DIM = 12
ROWS = 400
WIDTH = 10


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _tiny_corpus(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-padded token rows (ids 5.. are words, 0 padding), their masks, and teacher vectors."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, WIDTH + 1, ROWS)
    ids = np.zeros((ROWS, WIDTH), np.int32)
    mask = np.zeros((ROWS, WIDTH), np.int32)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(5, VOCAB, length)
        mask[row, :length] = 1
    table = rng.normal(size=(VOCAB, DIM))
    mixing = rng.normal(size=(DIM, DIM))
    bag = np.stack([table[ids[r, : lengths[r]]].mean(axis=0) for r in range(ROWS)])
    return ids, mask, _unit(np.tanh(bag) @ mixing).astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(student, out_dir, ids, mask, teacher, cosine before training)."""
    ids, mask, teacher = _tiny_corpus()
    student = StudentEncoder(vocab_size=VOCAB, output_dim=DIM, embedding_dim=16, max_length=16)
    before = np.sum(student.encode_tokens(ids, mask).numpy() * teacher, axis=1).mean()
    out_dir = str(tmp_path_factory.mktemp("student"))
    result = distill(
        student, ids, mask, teacher, out_dir, epochs=25, batch_size=64, learning_rate=0.03, verbose=0
    )
    return student, out_dir, ids, mask, teacher, before, result


def test_the_student_learns_to_match_a_tiny_teacher(trained):
    student, _, ids, mask, teacher, before, result = trained
    cosine = np.sum(student.encode_tokens(ids, mask).numpy() * teacher, axis=1)
    assert before < 0.3
    assert cosine.mean() > 0.85, cosine.mean()
    assert result["mean_cosine"] == pytest.approx(cosine.mean(), abs=1e-5)


def test_distill_writes_logs_backup_free_result_and_loads_back(trained):
    student, out_dir, ids, mask, _, _, result = trained
    assert os.listdir(os.path.join(out_dir, "logs"))
    with open(os.path.join(out_dir, "result.json"), encoding="utf-8") as handle:
        assert json.load(handle)["epochs"] == result["epochs"] == 25
    loaded, metadata = load_student(out_dir)
    assert metadata["layer"]["vocab_size"] == VOCAB
    np.testing.assert_allclose(
        loaded.encode_tokens(ids, mask).numpy(), student.encode_tokens(ids, mask).numpy(), atol=1e-6
    )


def test_embedding_bag_equals_the_numpy_mean_and_ignores_padding():
    student = StudentEncoder(vocab_size=VOCAB, output_dim=DIM, embedding_dim=8)
    ids = np.array([[7, 9, 9, 0, 0], [11, 0, 0, 0, 0]], np.int32)
    mask = (ids > 0).astype(np.int32)
    out = student.encode_tokens(ids, mask).numpy()
    table = student.tokens.embeddings.numpy()
    kernel, bias = (w.numpy() for w in student.projection.weights)
    bag = np.stack([table[[7, 9, 9]].mean(axis=0), table[[11]].mean(axis=0)])
    np.testing.assert_allclose(out, _unit(bag @ kernel + bias), atol=1e-5)
    garbage = np.where(mask > 0, ids, np.array([[3, 4, 5, 6, 8]] * 2)).astype(np.int32)
    wider = np.pad(garbage, [(0, 0), (0, 4)], constant_values=13)
    np.testing.assert_allclose(
        student.encode_tokens(wider, np.pad(mask, [(0, 0), (0, 4)])).numpy(), out, atol=1e-6
    )


def test_transformer_student_ignores_padding_but_not_tokens():
    student = StudentEncoder(vocab_size=VOCAB, output_dim=DIM, embedding_dim=8, num_layers=2, max_length=16)
    ids = np.array([[7, 9, 12, 0], [11, 20, 0, 0]], np.int32)
    mask = (ids > 0).astype(np.int32)
    out = student.encode_tokens(ids, mask).numpy()
    padded = np.pad(np.where(mask > 0, ids, 30), [(0, 0), (0, 3)], constant_values=31).astype(np.int32)
    np.testing.assert_allclose(
        student.encode_tokens(padded, np.pad(mask, [(0, 0), (0, 3)])).numpy(), out, atol=1e-5
    )
    swapped = ids.copy()
    swapped[0, 1] = 40
    assert not np.allclose(student.encode_tokens(swapped, mask).numpy()[0], out[0], atol=1e-4)


def test_config_round_trip_rebuilds_the_same_function():
    student = StudentEncoder(vocab_size=VOCAB, output_dim=DIM, embedding_dim=8, num_layers=1, max_length=16)
    ids = np.array([[7, 9, 12, 0]], np.int32)
    mask = (ids > 0).astype(np.int32)
    expected = student.encode_tokens(ids, mask).numpy()
    clone = StudentEncoder.from_config(student.get_config())
    clone.encode_tokens(ids, mask)
    clone.set_weights(student.get_weights())
    assert clone.get_config() == student.get_config()
    np.testing.assert_allclose(clone.encode_tokens(ids, mask).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"num_layers": 3}, "num_layers=3 is invalid: expected 0 (embedding bag), 1 or 2."),
        ({"embedding_dim": 0}, "embedding_dim=0 is invalid: expected a positive int."),
        ({"vocab_size": True}, "vocab_size=True is invalid: expected a positive int."),
    ],
)
def test_bad_student_arguments_name_the_field(arguments, message):
    with pytest.raises(ConfigError) as caught:
        StudentEncoder(**{"vocab_size": VOCAB, "output_dim": DIM, **arguments})
    assert str(caught.value) == message


def test_distill_refuses_mismatched_rows(tmp_path):
    ids, mask, teacher = _tiny_corpus()
    with pytest.raises(ConfigError) as caught:
        distill(StudentEncoder(VOCAB, DIM), ids, mask, teacher[:-1], str(tmp_path), epochs=1)
    assert str(caught.value).startswith("distill needs one teacher vector per text: 400 token rows")


def test_student_export_equals_the_python_student_and_says_student(tiny_bert_dir, tiny_vocab, tmp_path):
    texts = ["toy story", "space rocket adventure", "", "the spy film about toys"]
    student = StudentEncoder(vocab_size=len(tiny_vocab), output_dim=DIM, embedding_dim=8, max_length=16)
    ids, mask = tokenize_for_student(tiny_bert_dir, texts, max_length=16)
    rng = np.random.default_rng(1)
    out_dir = str(tmp_path / "student")
    distill(
        student, ids, mask, _unit(rng.normal(size=(4, DIM))).astype(np.float32), out_dir, epochs=1, verbose=0
    )
    encoder = load_student_text_encoder(out_dir, tiny_bert_dir)
    assert isinstance(encoder, StudentTextEncoder)
    expected = student.encode_tokens(ids, mask).numpy()
    np.testing.assert_allclose(encoder(tf.constant(texts)).numpy(), expected, atol=1e-5)

    # export_item_encoder runs the op scan (check_servable) before it publishes the folder
    folder = export_item_encoder(
        ExperimentConfig(), tiny_bert_dir, texts, str(tmp_path / "exports"), 1, encoder
    )
    served = tf.saved_model.load(folder).signatures["serving_default"](text=tf.constant(texts))["embedding"]
    np.testing.assert_allclose(served.numpy(), expected, atol=1e-5)
    with open(os.path.join(folder, "assets.extra", "item_encoder.json"), encoding="utf-8") as handle:
        metadata = json.load(handle)
    assert metadata["encoder"] == "student"
    assert metadata["output_dim"] == DIM


def test_load_student_without_a_trained_student_names_distill(tmp_path):
    with pytest.raises(ConfigError, match="No trained student in .*Train it with `tfrec-llm distill`"):
        load_student(str(tmp_path))


def test_export_item_encoder_must_be_teacher_or_student():
    from tfrec_llm.config import load_config

    with pytest.raises(ConfigError, match="export.item_encoder='bert'; expected teacher or student"):
        load_config(None, ["export.item_encoder=bert"])


def test_distill_student_reuses_and_refuses_other_settings(tiny_bert_dir, tmp_path):
    import types

    from tfrec_llm.config import replace
    from tfrec_llm.experiments.distill import StudentSettings, distill_student

    cfg = replace(ExperimentConfig(), text__model_path=tiny_bert_dir, text__max_length=16)
    texts = ("toy story", "space rocket adventure", "the spy film about toys")
    vectors = _unit(np.random.default_rng(2).normal(size=(3, DIM))).astype(np.float32)
    prepared = types.SimpleNamespace(item_texts=texts, text_embeddings=vectors)
    settings = StudentSettings(embedding_dim=8, epochs=2)
    out_dir = str(tmp_path / "student")
    first, info = distill_student(cfg, settings, prepared, out_dir, verbose=0)  # type: ignore[arg-type]
    assert info["result"]["epochs"] == 2
    again, metadata = distill_student(cfg, settings, prepared, out_dir, verbose=0)  # type: ignore[arg-type]
    assert "result" not in metadata  # loaded, not trained again
    for a, b in zip(first.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="holds a student made with other settings.*--retrain"):
        distill_student(cfg, StudentSettings(embedding_dim=8, epochs=3), prepared, out_dir, verbose=0)  # type: ignore[arg-type]
