"""The request signatures' inputs, shared by the ``retrieval`` and ``ranking`` graphs.

`HISTORY_INPUTS` (``user_id``, ``recent_item_ids``, ``exclude_item_ids``) start every request;
`REQUEST_INPUTS` add ``k`` for a top-K answer; `USER_TEXT_INPUT` is the optional ``user_text``
of a model trained with ``model.user_text``. Optional inputs are the ``tf.function``'s default
arguments, which TensorFlow records in ``SignatureDef.defaults`` and TF Serving fills in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

_NO_IDS = tf.zeros([0, 0], tf.string)
_NO_TEXT = tf.zeros([0], tf.string)

HISTORY_INPUTS = (
    tf.TensorSpec([None], tf.string, name="user_id"),
    tf.TensorSpec([None, None], tf.string, name="recent_item_ids"),
    tf.TensorSpec([None, None], tf.string, name="exclude_item_ids"),
)
"""The inputs every request signature starts with (``query_embedding`` has these alone)."""
REQUEST_INPUTS = (*HISTORY_INPUTS, tf.TensorSpec([], tf.int32, name="k"))
"""The inputs of a top-K signature (retrieval ``serving_default``, two-stage ``recommend``)."""
USER_TEXT_INPUT = tf.TensorSpec([None], tf.string, name="user_text")
"""The optional input that a model trained with ``model.user_text`` adds to its signatures."""


def top_k_function(handler: Callable[..., dict[str, tf.Tensor]], default_k: int, user_text: bool) -> Any:
    """The ``tf.function`` of a top-K signature: `REQUEST_INPUTS` (plus `USER_TEXT_INPUT`).

    Optional inputs are the function's default arguments (``recent_item_ids`` and
    ``exclude_item_ids`` empty, ``k`` = ``default_k``, ``user_text`` empty), which TensorFlow
    records in ``SignatureDef.defaults``. ``handler(user_id, recent_item_ids, exclude_item_ids,
    k[, user_text])`` builds the outputs; ``user_text`` is passed only when ``user_text``.
    """
    default_k_tensor = tf.constant(default_k, tf.int32)
    if not user_text:

        @tf.function(input_signature=list(REQUEST_INPUTS))
        def serve(
            user_id: tf.Tensor,
            recent_item_ids: tf.Tensor = _NO_IDS,
            exclude_item_ids: tf.Tensor = _NO_IDS,
            k: tf.Tensor = default_k_tensor,
        ) -> dict[str, tf.Tensor]:
            return handler(user_id, recent_item_ids, exclude_item_ids, k)

        return serve

    @tf.function(input_signature=[*REQUEST_INPUTS, USER_TEXT_INPUT])
    def serve_with_text(
        user_id: tf.Tensor,
        recent_item_ids: tf.Tensor = _NO_IDS,
        exclude_item_ids: tf.Tensor = _NO_IDS,
        k: tf.Tensor = default_k_tensor,
        user_text: tf.Tensor = _NO_TEXT,
    ) -> dict[str, tf.Tensor]:
        return handler(user_id, recent_item_ids, exclude_item_ids, k, user_text)

    return serve_with_text
