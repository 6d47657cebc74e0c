"""The one retry rule of the TF Serving clients: retry only ``UNAVAILABLE``, with backoff.

``UNAVAILABLE`` (HTTP 503, a refused connection) means the server is down or restarting, so
the same request may succeed a moment later. Every other status is an answer about the request
itself and is raised at once. The wait before retry ``i`` (0-based) is ``backoff_s * 2**i``; the
``sleep`` function is injectable, so tests need no clock.

Example:
    >>> sleeps = []
    >>> call_with_retry(lambda attempt: attempt, max_retries=3, backoff_s=0.1, sleep=sleeps.append)
    1
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tfrec_llm.serving.errors import ServingStatusError

__all__ = ["RETRYABLE_CODE", "call_with_retry"]

#: The only gRPC status that is retried.
RETRYABLE_CODE = "UNAVAILABLE"

T = TypeVar("T")


def call_with_retry(
    attempt: Callable[[int], T],
    *,
    max_retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Calls ``attempt(1)``, ``attempt(2)``, ... until one returns or raises a final error.

    Args:
        attempt: Sends the request once; gets the attempt number (1-based, for messages) and
            raises a :class:`~tfrec_llm.serving.errors.ServingStatusError` on failure.
        max_retries: Retries after an ``UNAVAILABLE`` error (at most ``1 + max_retries`` calls).
        backoff_s: The first wait; it doubles after every retry.
        sleep: The sleep function.

    Returns:
        What the first successful ``attempt`` returned.

    Raises:
        ServingStatusError: The error of the last attempt: any code but ``UNAVAILABLE`` at once,
            ``UNAVAILABLE`` once the retries are used up.
    """
    delay = backoff_s
    number = 0
    while True:
        number += 1
        try:
            return attempt(number)
        except ServingStatusError as exc:
            if exc.code != RETRYABLE_CODE or number > max_retries:
                raise
        sleep(delay)
        delay *= 2
