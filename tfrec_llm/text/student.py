"""A small student item encoder distilled from the BERT teacher's item embeddings.

The student reads the teacher's WordPiece ids (same vocabulary and tokenizer as the bundled
MiniLM, so the exported model tokenizes in-graph with the same classic TF Text ops), averages
its own token embeddings over the valid positions (an embedding bag, optionally after one or
two narrow Transformer blocks), projects to the teacher's width and L2-normalises. It is
trained (`tfrec_llm.text.distillation`) on item texts to reproduce the teacher's
(precomputed) vectors, optionally with a retrieval term read from a frozen trained two-tower.

Example:
    >>> student = StudentEncoder(vocab_size=30522, output_dim=384)
    >>> ids, mask = tokenize_for_student(model_path, texts, max_length=64)
    >>> distill(student, ids, mask, teacher_vectors, "runs/x/student", epochs=30)  # .distillation
    >>> StudentTextEncoder(student, model_path, max_length=64)(tf.constant(texts)).shape
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError
from tfrec_llm.text.pooling import masked_mean
from tfrec_llm.text.tokenizer import load_tokenizer, validate_max_length

STUDENT_CONFIG = "student_config.json"
STUDENT_WEIGHTS = "student.weights.h5"
STUDENT_RESULT = "result.json"


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} is invalid: expected a positive int.")


@keras.utils.register_keras_serializable(package="tfrec_llm")
class StudentEncoder(keras.layers.Layer):  # type: ignore[misc]
    """Token ids -> embedding bag (optionally after narrow Transformer blocks) -> projection -> L2.

    Padding never changes the output: the bag averages only where ``attention_mask`` is 1, and
    the Transformer blocks attend only to valid positions.

    Args:
        vocab_size: Rows of the token table (the teacher's vocabulary size, 30522 for MiniLM).
        output_dim: Width of the output (the teacher's hidden size, 384 for MiniLM).
        embedding_dim: Width of the token table and of the Transformer blocks.
        num_layers: Transformer blocks before pooling: 0 (a plain embedding bag), 1 or 2.
        num_heads: Attention heads per block.
        max_length: Positions of the position table (used only when ``num_layers`` > 0).
        normalize: L2-normalise the output rows.
        **kwargs: Base Layer arguments (``name``, ``trainable``, ``dtype``).
    """

    def __init__(
        self,
        vocab_size: int,
        output_dim: int,
        embedding_dim: int = 128,
        num_layers: int = 0,
        num_heads: int = 2,
        max_length: int = 64,
        normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (
            ("vocab_size", vocab_size),
            ("output_dim", output_dim),
            ("embedding_dim", embedding_dim),
            ("num_heads", num_heads),
        ):
            _positive(name, value)
        validate_max_length(max_length)
        if num_layers not in (0, 1, 2):
            raise ConfigError(f"num_layers={num_layers!r} is invalid: expected 0 (embedding bag), 1 or 2.")
        self.vocab_size = vocab_size
        self.output_dim = output_dim
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.max_length = max_length
        self.normalize = bool(normalize)
        self.tokens = keras.layers.Embedding(vocab_size, embedding_dim, name="tokens")
        self.projection = keras.layers.Dense(output_dim, name="projection")
        self.blocks: list[dict[str, keras.layers.Layer]] = []
        if num_layers:
            self.positions = keras.layers.Embedding(max_length, embedding_dim, name="positions")
        for index in range(num_layers):
            self.blocks.append(
                {
                    "attention": keras.layers.MultiHeadAttention(
                        num_heads, max(embedding_dim // num_heads, 1), name=f"attention_{index}"
                    ),
                    "norm_1": keras.layers.LayerNormalization(name=f"norm_{index}_1"),
                    "hidden": keras.layers.Dense(2 * embedding_dim, activation="gelu", name=f"ffn_{index}_1"),
                    "out": keras.layers.Dense(embedding_dim, name=f"ffn_{index}_2"),
                    "norm_2": keras.layers.LayerNormalization(name=f"norm_{index}_2"),
                }
            )
        for index, block in enumerate(self.blocks):  # track the sublayers' weights
            for key, layer in block.items():
                setattr(self, f"_block_{index}_{key}", layer)

    def encode_tokens(
        self, input_ids: tf.Tensor, attention_mask: tf.Tensor, training: bool | None = None
    ) -> tf.Tensor:
        """float32 ``[batch, output_dim]`` of int ``[batch, seq]`` ids and 0/1 mask."""
        input_ids = tf.cast(input_ids, tf.int32)
        mask = tf.cast(attention_mask, tf.int32)
        hidden = self.tokens(input_ids)
        if self.blocks:
            width = tf.shape(input_ids)[1]
            hidden = hidden + self.positions(tf.range(width))[tf.newaxis]
            valid = tf.cast(mask, tf.bool)
            attend = tf.logical_and(valid[:, :, tf.newaxis], valid[:, tf.newaxis, :])
            for block in self.blocks:
                attended = block["attention"](hidden, hidden, attention_mask=attend, training=training)
                hidden = block["norm_1"](hidden + attended)
                hidden = block["norm_2"](hidden + block["out"](block["hidden"](hidden)))
        pooled = self.projection(masked_mean(hidden, mask))
        if self.normalize:
            pooled = tf.math.l2_normalize(pooled, axis=-1)
        return tf.cast(pooled, tf.float32)

    def call(self, inputs: dict[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """Encodes ``{"input_ids", "attention_mask"}`` (int ``[batch, seq]`` each)."""
        return self.encode_tokens(inputs["input_ids"], inputs["attention_mask"], training)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "output_dim": self.output_dim,
                "embedding_dim": self.embedding_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "max_length": self.max_length,
                "normalize": self.normalize,
            }
        )
        return config


class StudentTextEncoder(keras.layers.Layer):  # type: ignore[misc]
    """Raw strings -> the teacher's in-graph (classic TF Text) tokenizer -> ``StudentEncoder``.

    The servable form of a student, the counterpart of ``TextEncoder`` for ``ItemEncoderModule``.

    Args:
        student: The trained student.
        model_path: The teacher's BERT folder (for ``vocab.txt``).
        max_length: Tokens per text, special tokens included.
        **kwargs: Base Layer arguments.
    """

    kind = "student"

    def __init__(self, student: StudentEncoder, model_path: str, max_length: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.student = student
        self.model_path = model_path
        self.max_length = validate_max_length(max_length)
        self.tokenizer = load_tokenizer(model_path, max_length=max_length)

    @property
    def hidden_size(self) -> int:
        """Width of the output embedding."""
        return int(self.student.output_dim)

    def call(self, texts: tf.Tensor) -> tf.Tensor:
        """float32 ``[batch, output_dim]`` of ``tf.string [batch]`` (a [batch, 1] column is flattened)."""
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        if texts.shape.rank == 2 and texts.shape[-1] == 1:
            texts = tf.reshape(texts, [-1])
        tokens = self.tokenizer(texts)
        return self.student.encode_tokens(tokens["input_ids"], tokens["attention_mask"], training=False)


def tokenize_for_student(
    model_path: str, texts: list[str], max_length: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(token_ids, attention_mask), int32 ``[len(texts), max_length]``, as the exported graph tokenizes.

    Uses ``experiments``-free code: the in-graph tokenizer itself, so the ids are exactly those
    the served ``StudentTextEncoder`` computes.
    """
    tokenizer = load_tokenizer(model_path, max_length=max_length)
    ids = np.full((len(texts), max_length), int(tokenizer.pad_token_id), np.int32)
    mask = np.zeros((len(texts), max_length), np.int32)
    for start in range(0, len(texts), 1024):
        batch = tokenizer(tf.constant(texts[start : start + 1024]))
        rows = batch["input_ids"].numpy()
        valid = batch["attention_mask"].numpy()
        ids[start : start + len(rows), : rows.shape[1]] = np.where(valid > 0, rows, ids[0, 0])
        mask[start : start + len(rows), : rows.shape[1]] = valid
    return ids, mask


def student_model(student: StudentEncoder) -> keras.Model:
    """A functional model over ``student`` (inputs ``input_ids``, ``attention_mask``): its weights file."""
    ids_in = keras.Input([None], dtype=tf.int32, name="input_ids")
    mask_in = keras.Input([None], dtype=tf.int32, name="attention_mask")
    return keras.Model(
        {"input_ids": ids_in, "attention_mask": mask_in},
        student({"input_ids": ids_in, "attention_mask": mask_in}),
    )


def is_trained(out_dir: str) -> bool:
    """True when ``out_dir`` holds a finished student (config, weights and result)."""
    return all(
        os.path.isfile(os.path.join(out_dir, n)) for n in (STUDENT_CONFIG, STUDENT_WEIGHTS, STUDENT_RESULT)
    )


def load_student(out_dir: str) -> tuple[StudentEncoder, dict[str, Any]]:
    """The trained student of ``out_dir`` and its metadata (``student_config.json``).

    Raises:
        ConfigError: ``out_dir`` holds no finished student (names ``tfrec-llm distill``).
    """
    if not is_trained(out_dir):
        raise ConfigError(
            f"No trained student in {out_dir!r} (it needs {STUDENT_CONFIG}, {STUDENT_WEIGHTS} and "
            f"{STUDENT_RESULT}). Train it with `tfrec-llm distill` (same --config/--set)."
        )
    with open(os.path.join(out_dir, STUDENT_CONFIG), encoding="utf-8") as handle:
        metadata = json.load(handle)
    student = StudentEncoder.from_config(metadata["layer"])
    student_model(student).load_weights(os.path.join(out_dir, STUDENT_WEIGHTS))
    return student, metadata


def load_student_text_encoder(out_dir: str, model_path: str) -> StudentTextEncoder:
    """The servable student of ``out_dir`` (raw strings in), tokenizing with ``model_path``'s vocabulary.

    Raises:
        ConfigError: No trained student in ``out_dir``.
    """
    student, metadata = load_student(out_dir)
    max_length = int(metadata.get("max_length", metadata["layer"]["max_length"]))
    return StudentTextEncoder(student, model_path, max_length=max_length)
