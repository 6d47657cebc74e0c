"""In-graph BERT tokenization with classic TF Text ops, servable by stock TF Serving.

``transformers.TFBertTokenizer`` defaults to TF Text's ``FastBertTokenizer``, whose
``FastBertNormalize``/``FastWordpiece*`` ops the stock TensorFlow Serving binary does not
register (tensorflow/serving issue 2064). ``load_tokenizer`` always builds the classic variant
(``CaseFoldUTF8``, ``NormalizeUTF8``, ``RegexSplitWithOffsets``, ``WordpieceTokenizeWithOffsets``).

Example:
    >>> tokenizer = load_tokenizer(default_model_path(), max_length=64)
    >>> batch = tokenizer(tf.constant(["Toy Story (1995)"]))
    >>> sorted(batch)
    ['attention_mask', 'input_ids', 'token_type_ids']
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

from tfrec_llm.errors import ConfigError

if TYPE_CHECKING:
    import transformers

MIN_MAX_LENGTH = 2
MAX_MAX_LENGTH = 512


def validate_max_length(max_length: int) -> int:
    """Checks that ``max_length`` leaves room for [CLS] and [SEP] and fits BERT's positions.

    Args:
        max_length: Tokens per text, special tokens included.

    Returns:
        ``max_length`` unchanged.

    Raises:
        ConfigError: Not an int in [2, 512].
    """
    if (
        isinstance(max_length, bool)
        or not isinstance(max_length, int)
        or not MIN_MAX_LENGTH <= max_length <= MAX_MAX_LENGTH
    ):
        raise ConfigError(
            f"max_length={max_length!r} is invalid: expected an int in "
            f"[{MIN_MAX_LENGTH}, {MAX_MAX_LENGTH}] (tokens per text including [CLS] and [SEP]; "
            "BERT has 512 positions). 64 covers typical item titles."
        )
    return max_length


def load_tokenizer(model_path: str, max_length: int = 64) -> transformers.TFBertTokenizer:
    """Builds the in-graph, non-fast ``TFBertTokenizer`` of a local BERT folder.

    The layer maps a ``tf.string [batch]`` tensor to ``input_ids``, ``attention_mask`` and
    ``token_type_ids`` (``int64 [batch, longest]``), truncating each text to ``max_length``
    tokens including [CLS] and [SEP] and padding to the longest text of the batch.

    Args:
        model_path: Folder holding ``vocab.txt`` (and ``tokenizer_config.json`` for casing),
            or a ``tokenizer.json``.
        max_length: Tokens per text, special tokens included, in [2, 512].

    Returns:
        The tokenizer layer.

    Raises:
        ConfigError: Invalid ``max_length``, or the folder has no vocabulary.
    """
    validate_max_length(max_length)
    if not os.path.isdir(model_path):
        raise ConfigError(
            f"model_path={model_path!r} is not a directory. Pass a local BERT folder holding "
            "vocab.txt (e.g. default_model_path())."
        )
    from transformers import BertTokenizer, BertTokenizerFast, TFBertTokenizer

    if os.path.isfile(os.path.join(model_path, "vocab.txt")):
        source = BertTokenizer.from_pretrained(model_path, local_files_only=True)
    elif os.path.isfile(os.path.join(model_path, "tokenizer.json")):
        source = BertTokenizerFast.from_pretrained(model_path, local_files_only=True)
    else:
        raise ConfigError(
            f"model_path={model_path!r} lacks vocab.txt (and tokenizer.json); it holds "
            f"{sorted(os.listdir(model_path))}. Copy the model's vocab.txt into the folder."
        )
    tokenizer = TFBertTokenizer.from_tokenizer(
        source,
        padding="longest",
        truncation=True,
        max_length=max_length,
        use_fast_bert_tokenizer=False,
    )
    return cast("transformers.TFBertTokenizer", tokenizer)
