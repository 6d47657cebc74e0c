"""The evidence behind one recommendation: plain data, no model.

An `Explanation` says why ``item`` was recommended to ``user``: the history items that
contributed most (``source`` ``"attention"``: the attention encoder's weights of the user's
query; ``"similarity"``: the cosine between each history item's candidate embedding and the
recommended item), and what they share with it: categories (genres) and title terms (words
minus stop words). Generators (``tfrec_llm.content.generators``) render text from it, and the
faithfulness check (``tfrec_llm.content.faithfulness``) accepts only text whose claims it holds.

Example:
    >>> alien = ItemFacts("1", "Alien", "1979", ("Horror", "Sci-Fi"))
    >>> title_terms("The Return of the Jedi")
    ('return', 'jedi')
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

STOP_WORDS = frozenset(
    """a an and are as at be but by for from has have he her his i in into is it its la le les
    me my no not of on or our she so than that the their them then there these they this to too
    up was we were what when where which who why will with you your de der die das el los il
    du des et""".split()
)
"""Words that never count as a shared title term (English plus common title articles)."""

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def title_terms(text: str) -> tuple[str, ...]:
    """Lower-cased words of ``text`` in order, once each, without stop words, numbers or 1-letter words."""
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        if len(word) > 1 and not word.isdigit() and word not in STOP_WORDS and word not in out:
            out.append(word)
    return tuple(out)


def _ordered_common(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    """Values of ``first`` that are in ``second``, in ``first``'s order."""
    other = set(second)
    return tuple(value for value in first if value in other)


@dataclasses.dataclass(frozen=True)
class ItemFacts:
    """What may be said about an item.

    Attributes:
        item_id: Catalog id.
        title: Display title (without the year when the data set has a year field).
        year: Release year as text, or ``""``.
        categories: Category values (e.g. genres), without the field name.
    """

    item_id: str
    title: str
    year: str = ""
    categories: tuple[str, ...] = ()

    @property
    def terms(self) -> tuple[str, ...]:
        """`title_terms` of the title."""
        return title_terms(self.title)


@dataclasses.dataclass(frozen=True)
class HistoryEvidence:
    """One history item behind a recommendation.

    Attributes:
        item: The history item.
        weight: Its contribution (attention weight, or cosine similarity to the recommended item).
        shared_categories: Its categories that the recommended item also has.
        shared_terms: Its title terms that the recommended item's title also has.
    """

    item: ItemFacts
    weight: float
    shared_categories: tuple[str, ...] = ()
    shared_terms: tuple[str, ...] = ()

    @classmethod
    def between(cls, item: ItemFacts, recommended: ItemFacts, weight: float) -> HistoryEvidence:
        """The evidence of history ``item`` for ``recommended``, with what they share."""
        return cls(
            item,
            float(weight),
            _ordered_common(item.categories, recommended.categories),
            _ordered_common(item.terms, recommended.terms),
        )


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Why ``item`` was recommended to ``user_id``.

    Attributes:
        user_id: The user.
        item: The recommended item.
        source: ``"attention"`` or ``"similarity"`` (what ``weight`` means), or ``"none"``
            when the user has no known history.
        evidence: The top history items, largest weight first.
        score: The recommendation's score, when known.
    """

    user_id: str
    item: ItemFacts
    source: str
    evidence: tuple[HistoryEvidence, ...]
    score: float | None = None

    @property
    def shared_categories(self) -> tuple[str, ...]:
        """Categories of the item shared with at least one evidence item (item order)."""
        shared = {c for e in self.evidence for c in e.shared_categories}
        return tuple(c for c in self.item.categories if c in shared)

    @property
    def shared_terms(self) -> tuple[str, ...]:
        """Title terms of the item shared with at least one evidence item (title order)."""
        shared = {t for e in self.evidence for t in e.shared_terms}
        return tuple(t for t in self.item.terms if t in shared)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """One line: ``because: A (0.41), B (0.22); shared genres: Sci-Fi; shared terms: star``."""
        if not self.evidence:
            return "because: no known history (popular item)"
        parts = ["because: " + ", ".join(f"{e.item.title} ({e.weight:.2f})" for e in self.evidence)]
        if self.shared_categories:
            parts.append("shared categories: " + ", ".join(self.shared_categories))
        if self.shared_terms:
            parts.append("shared terms: " + ", ".join(self.shared_terms))
        return "; ".join(parts) + f" [{self.source}]"
