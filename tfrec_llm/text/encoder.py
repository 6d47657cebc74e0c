"""TextEncoder: raw strings -> in-graph tokenization -> BERT -> pooling -> L2, as one Keras layer.

``TextEncoder`` is the servable path (``call`` takes ``tf.string``); ``encode_texts`` is the fast
offline path that tokenizes once in Python, sorts texts by length and pads each batch only to
its longest text, in batches that pad almost nothing (``fast_encode``; docs/stack.md).
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfrec_llm.errors import ConfigError, DataError
from tfrec_llm.text.bert_loader import load_bert
from tfrec_llm.text.fast_encode import encode_token_ids
from tfrec_llm.text.lora import install_lora, lora_weights
from tfrec_llm.text.pooling import masked_mean
from tfrec_llm.text.tokenizer import load_tokenizer, validate_max_length

POOLINGS = ("mean", "cls")
_TOKENIZE_CHUNK = 1024


def _check_trainable_layers(trainable_layers: int, num_layers: int | None) -> None:
    """Raises ConfigError unless ``trainable_layers`` is -1 or in [0, num_layers]."""
    upper = "num_layers" if num_layers is None else str(num_layers)
    if (
        isinstance(trainable_layers, bool)
        or not isinstance(trainable_layers, int)
        or trainable_layers < -1
        or (num_layers is not None and trainable_layers > num_layers)
    ):
        raise ConfigError(
            f"trainable_layers={trainable_layers!r} is invalid: expected an int in "
            f"[-1, {upper}] (0 = frozen BERT, -1 = train all, N = train the top N layers)."
        )


class _GraphTokenEncoder:
    """Holds the traced ``tf.function`` of ``encode_tokens`` for ``encode_texts``.

    Tracing MiniLM takes seconds, so the function is built once per encoder. It lives in this
    plain (non-trackable) object so that saving the encoder does not export it.
    """

    def __init__(self, encoder: TextEncoder) -> None:
        spec = tf.TensorSpec([None, None], tf.int32)

        def encode(input_ids: tf.Tensor, attention_mask: tf.Tensor) -> tf.Tensor:
            return encoder.encode_tokens(input_ids, attention_mask, training=False)

        self.function = tf.function(encode, input_signature=[spec, spec])


@tf_keras.utils.register_keras_serializable(package="tfrec_llm")
class TextEncoder(tf_keras.layers.Layer):  # type: ignore[misc]
    """Embeds raw text with a pretrained BERT: tokenize in-graph, encode, pool, L2-normalise.

    The defaults (mean pooling over the attention mask, then L2) reproduce the
    sentence-transformers embedding of models such as all-MiniLM-L6-v2. The layer is configured
    by what rebuilds it (the model folder, ``max_length``, pooling), never by its weights.

    Args:
        model_path: Local BERT folder (see ``bert_loader.load_bert``), e.g.
            ``default_model_path()``.
        max_length: Tokens per text including [CLS] and [SEP], in [2, 512]; longer texts are
            truncated.
        pooling: "mean" (masked mean over tokens) or "cls" (the [CLS] hidden state).
        normalize: L2-normalise the output rows.
        trainable_layers: How many of the top transformer layers to fine-tune (the pooler,
            which this layer does not use, follows them). 0 freezes the whole BERT, -1 trains
            all of it, N in [1, num_layers] trains the top N with embeddings and lower layers
            frozen.
        lora_rank: > 0: LoRA adapters of this rank on the query/value projections
            (``text.lora_rank``); they train, and BERT's own weights follow ``trainable_layers``.
        lora_alpha: LoRA scale numerator (the update is scaled by ``lora_alpha / lora_rank``).
        lora_layers: 0 = adapters in every transformer layer; N = in the top N only.
        **kwargs: Base Layer arguments (``name``, ``trainable``, ``dtype``).

    Example:
        >>> encoder = TextEncoder(default_model_path(), max_length=64)
        >>> encoder(tf.constant(["Toy Story (1995). Genres: Animation"])).shape
        TensorShape([1, 384])
    """

    def __init__(
        self,
        model_path: str,
        max_length: int = 64,
        pooling: str = "mean",
        normalize: bool = True,
        trainable_layers: int = 0,
        lora_rank: int = 0,
        lora_alpha: float = 8.0,
        lora_layers: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        validate_max_length(max_length)
        if pooling not in POOLINGS:
            raise ConfigError(
                f"pooling={pooling!r} is invalid: expected one of {POOLINGS} ('mean' "
                "reproduces sentence-transformers embeddings)."
            )
        if not isinstance(normalize, bool):
            raise ConfigError(f"normalize={normalize!r} is invalid: expected True or False.")
        _check_trainable_layers(trainable_layers, None)
        self.model_path = model_path
        self.max_length = max_length
        self.pooling = pooling
        self.normalize = normalize
        self.trainable_layers = trainable_layers
        self.tokenizer = load_tokenizer(model_path, max_length=max_length)
        self.bert = load_bert(model_path)
        positions = int(self.bert.config.max_position_embeddings)
        if max_length > positions:
            raise ConfigError(
                f"max_length={max_length} exceeds the {positions} positions of the model in "
                f"{model_path!r}; use max_length <= {positions}."
            )
        num_layers = int(self.bert.config.num_hidden_layers)
        _check_trainable_layers(trainable_layers, num_layers)
        self._set_trainable_layers(trainable_layers, num_layers)
        self.lora_rank, self.lora_alpha, self.lora_layers = lora_rank, lora_alpha, lora_layers
        if lora_rank:
            install_lora(self.bert, lora_rank, lora_alpha, lora_layers)
        self._graph_token_encoder: _GraphTokenEncoder | None = None

    def _set_trainable_layers(self, trainable_layers: int, num_layers: int) -> None:
        """Freezes the embeddings and all but the top ``trainable_layers`` transformer layers."""
        main = self.bert.bert
        if trainable_layers == 0:
            self.bert.trainable = False
            return
        self.bert.trainable = True
        if trainable_layers == -1:
            return
        main.embeddings.trainable = False
        for layer in main.encoder.layer[: num_layers - trainable_layers]:
            layer.trainable = False

    def _policy_trainable_refs(self) -> set[Any]:
        """References of the BERT weights that ``trainable_layers`` makes trainable."""
        main = self.bert.bert
        if self.trainable_layers == 0:
            return set()
        if self.trainable_layers == -1:
            return {weight.ref() for weight in self.bert.weights}
        num_layers = len(main.encoder.layer)
        top = list(main.encoder.layer[num_layers - self.trainable_layers :])
        if main.pooler is not None:
            top.append(main.pooler)
        return {weight.ref() for layer in top for weight in layer.weights}

    @property
    def trainable_weights(self) -> list[tf.Variable]:
        """The weights ``trainable_layers`` selects; [] when this layer is frozen.

        Keras propagates ``trainable = True`` set on an enclosing model to every sublayer, which
        would unfreeze all of BERT; deciding here keeps ``trainable_layers`` in force.
        """
        if not self.trainable:
            return []
        chosen = self._policy_trainable_refs() | {w.ref() for w in lora_weights(self.bert)}
        return [weight for weight in self.bert.weights if weight.ref() in chosen]

    @property
    def non_trainable_weights(self) -> list[tf.Variable]:
        """Every weight of the layer that ``trainable_weights`` leaves out."""
        trainable = {weight.ref() for weight in self.trainable_weights}
        weights = self.tokenizer.weights + self.bert.weights
        return [weight for weight in weights if weight.ref() not in trainable]

    @property
    def hidden_size(self) -> int:
        """Width of the output embedding (BERT's hidden size, 384 for MiniLM)."""
        return int(self.bert.config.hidden_size)

    def encode_tokens(
        self, input_ids: tf.Tensor, attention_mask: tf.Tensor, training: bool | None = None
    ) -> tf.Tensor:
        """Encodes already-tokenized texts.

        Args:
            input_ids: int ``[batch, seq]`` token ids, starting with [CLS].
            attention_mask: int ``[batch, seq]``, 1 for real tokens, 0 for padding.
            training: Enables BERT's dropout when fine-tuning.

        Returns:
            float32 ``[batch, hidden_size]``.
        """
        input_ids = tf.cast(input_ids, tf.int32)
        attention_mask = tf.cast(attention_mask, tf.int32)
        outputs = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=tf.zeros_like(input_ids),
            training=training,
        )
        hidden = outputs.last_hidden_state
        if self.pooling == "mean":
            pooled = masked_mean(hidden, attention_mask)
        else:
            pooled = hidden[:, 0, :]
        if self.normalize:
            pooled = tf.math.l2_normalize(pooled, axis=-1)
        return tf.cast(pooled, tf.float32)

    def graph_encode_tokens(self, input_ids: tf.Tensor, attention_mask: tf.Tensor) -> tf.Tensor:
        """``encode_tokens`` (inference mode) as a ``tf.function`` over int32 ``[None, None]``.

        The function is traced on the first use and reused, so repeated ``encode_texts``
        calls pay the tracing cost once.
        """
        if self._graph_token_encoder is None:
            self._graph_token_encoder = _GraphTokenEncoder(self)
        return self._graph_token_encoder.function(input_ids, attention_mask)

    def call(self, texts: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Embeds raw strings.

        Args:
            texts: ``tf.string [batch]`` (a ``[batch, 1]`` column is flattened).
            training: Enables BERT's dropout when fine-tuning.

        Returns:
            float32 ``[batch, hidden_size]``.
        """
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        if texts.shape.rank == 2 and texts.shape[-1] == 1:
            texts = tf.reshape(texts, [-1])
        tokens = self.tokenizer(texts)
        return self.encode_tokens(tokens["input_ids"], tokens["attention_mask"], training)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape([tf.TensorShape(input_shape)[0], self.hidden_size])

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "model_path": self.model_path,
                "max_length": self.max_length,
                "pooling": self.pooling,
                "normalize": self.normalize,
                "trainable_layers": self.trainable_layers,
            }
        )
        if self.lora_rank:  # only when on, so configs without LoRA stay as they were
            config.update(lora_rank=self.lora_rank, lora_alpha=self.lora_alpha, lora_layers=self.lora_layers)
        return config


def _like_in_graph(text: str, lower_case: bool) -> str:
    """Normalises ``text`` the way the in-graph tokenizer does before the Hugging Face one sees it.

    TF Text's ``case_fold_utf8`` is ICU NFKC_Casefold, and TF Text splits words at control
    characters; the Hugging Face tokenizer only lower-cases and deletes control characters. The
    two agree on ordinary text, but not on compatibility characters ("ﬁ", "²", full-width
    letters), "ß", or control characters. Applying NFKC + casefold (uncased models) and turning
    control characters into spaces first makes the offline ids equal the served ones.
    """
    if lower_case:
        text = unicodedata.normalize("NFKC", text).casefold()
    if text.isprintable():
        return text
    return "".join(" " if unicodedata.category(char) == "Cc" else char for char in text)


def _tokenize(encoder: TextEncoder, texts: list[str]) -> list[list[int]]:
    """Token ids per text, truncated to ``encoder.max_length``, special tokens included."""
    tokenizer_json = os.path.join(encoder.model_path, "tokenizer.json")
    if os.path.isfile(tokenizer_json):
        from tokenizers import Tokenizer

        fast = Tokenizer.from_file(tokenizer_json)
        fast.no_padding()
        fast.enable_truncation(max_length=encoder.max_length)
        lower_case = bool(encoder.tokenizer.do_lower_case)
        normalized = [_like_in_graph(text, lower_case) for text in texts]
        return [encoding.ids for encoding in fast.encode_batch(normalized)]
    ids: list[list[int]] = []
    for start in range(0, len(texts), _TOKENIZE_CHUNK):
        batch = encoder.tokenizer(tf.constant(texts[start : start + _TOKENIZE_CHUNK]))
        lengths = tf.reduce_sum(batch["attention_mask"], axis=1).numpy()
        rows = batch["input_ids"].numpy()
        ids.extend(row[:length].tolist() for row, length in zip(rows, lengths, strict=True))
    return ids


def encode_texts(
    encoder: TextEncoder,
    texts: Sequence[str],
    batch_size: int = 128,
    show_progress: bool = False,
) -> np.ndarray:
    """Embeds many texts fast, outside the serving graph, with the encoder's weights.

    Tokenizes once in Python (the folder's ``tokenizer.json`` with the ``tokenizers`` library
    when present, after the normalisation the in-graph tokenizer applies, else the encoder's
    in-graph tokenizer), sorts the texts by token count, cuts them into passes that pad almost
    nothing (``fast_encode.plan_batches``), runs ``encoder.graph_encode_tokens`` (one traced
    ``tf.function``) on each and restores the input order. The result equals ``encoder(texts)`` up to
    float rounding; the ids can still differ for U+2028/U+2029, U+FFFD and private-use
    characters, which the two tokenizers treat differently.

    Args:
        encoder: The layer whose weights and settings to use.
        texts: Strings to embed; empty strings are allowed.
        batch_size: Most texts per forward pass (128 is fastest for MiniLM on CPU).
        show_progress: Show a tqdm progress bar over batches.

    Returns:
        float32 ``[len(texts), encoder.hidden_size]``, row i embedding ``texts[i]``.

    Raises:
        ConfigError: ``batch_size`` is not a positive int.
        DataError: An element of ``texts`` is not a str.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is invalid: expected a positive int.")
    texts = list(texts)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(
                f"texts[{position}] is {type(text).__name__} {text!r}, expected str. Render "
                "item fields to strings first (text.templates.render_texts)."
            )
    if not texts:
        return np.zeros((0, encoder.hidden_size), dtype=np.float32)
    ids = _tokenize(encoder, texts)
    return encode_token_ids(
        encoder.graph_encode_tokens,
        ids,
        encoder.hidden_size,
        pad_id=int(encoder.tokenizer.pad_token_id),
        max_rows=batch_size,
        show_progress=show_progress,
    )
