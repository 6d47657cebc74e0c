"""Protocol C (cold users) with each kind of evidence a new user can give.

A cold user of protocol C has a profile and their first ``COLD_USER_HISTORY`` interactions
(the history of ``split.test``; they are excluded from the ranking whatever the model reads).
Each kind of evidence keeps part of that:

- ``profile``: the profile fields only (the history is hidden);
- ``items``: the first items (and the profile), protocol C as it always was;
- ``text``: the titles of the first items written as one text (and the profile), as a user
  who types "I liked Star Wars; Fargo; ..." would;
- ``items+text``: both.

Example:
    >>> texts = history_titles(split.test, titles)  # doctest: +SKIP
    >>> task = evidence_task(split.test, "text")  # doctest: +SKIP
    >>> evaluate(TwoTowerScorer(model, catalog, user_texts=vectors_of(texts)), task, ...)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from tfrec_llm.data.split_types import EvalTask
from tfrec_llm.errors import ConfigError

EVIDENCE_KINDS = ("profile", "items", "text", "items+text")
"""What a cold user tells the model, from least to most."""

TITLE_SEPARATOR = "; "


def _check_kind(kind: str) -> None:
    if kind not in EVIDENCE_KINDS:
        raise ConfigError(f"evidence kind {kind!r} is unknown; use one of {EVIDENCE_KINDS}.")


def uses_items(kind: str) -> bool:
    """Whether the model may read the history under evidence ``kind``."""
    _check_kind(kind)
    return kind in ("items", "items+text")


def uses_text(kind: str) -> bool:
    """Whether the model gets the user's text under evidence ``kind``."""
    _check_kind(kind)
    return kind in ("text", "items+text")


def evidence_task(task: EvalTask, kind: str) -> EvalTask:
    """``task`` with the histories emptied unless ``kind`` reads items; exclusions and targets kept.

    Raises:
        ConfigError: If ``kind`` is not one of ``EVIDENCE_KINDS``.
    """
    if uses_items(kind):
        return task
    empty = tuple(np.asarray([], dtype=object) for _ in task.histories)
    return dataclasses.replace(task, histories=empty)


def history_titles(
    task: EvalTask, titles: Mapping[str, str], separator: str = TITLE_SEPARATOR
) -> dict[str, str]:
    """user id -> the titles of the user's history items, in order, joined by ``separator``.

    Users with an empty history get no entry (they gave no text).

    Raises:
        ConfigError: If a history item has no title in ``titles``.
    """
    out: dict[str, str] = {}
    for user, history in zip(np.asarray(task.user_ids).tolist(), task.histories, strict=True):
        missing = [item for item in np.asarray(history).tolist() if item not in titles]
        if missing:
            raise ConfigError(f"history_titles: item {missing[0]!r} of user {user!r} has no title.")
        if len(history):
            out[str(user)] = separator.join(titles[item] for item in np.asarray(history).tolist())
    return out
