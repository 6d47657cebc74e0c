"""The faithfulness check: generated text may name only what the evidence holds.

A text about one recommendation may name the recommended item and the evidence items, their
categories (genres) and their years. It is rejected when it names:

- a year (1800-2099) that is not the year of one of those items;
- a known category (of the catalog) that none of those items has;
- a known title (of the catalog, also with a trailing article moved to the front:
  "Empire Strikes Back, The" -> "The Empire Strikes Back") that is not one of those items;
- anything in quotation marks or emphasis (``"..."``, ``*...*``, ``“...”``) that is not the
  title of one of those items (an invented title).

Titles are matched case-sensitively on word boundaries (a title shorter than 3 characters is
not looked for); categories case-insensitively. A rejected text is replaced by the template
(``tfrec_llm.content.generators``).

Example:
    >>> checker = FaithfulnessChecker(known_titles=["Alien", "Heat"], known_categories=["Horror"])
    >>> checker.violations("Because you watched Heat (1995).", explanation)  # doctest: +SKIP
    ['title not in the evidence: Heat']
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tfrec_llm.content.evidence import Explanation, ItemFacts

_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|\*([^*]+)\*|«([^»]+)»")
_ARTICLE = re.compile(r"^(.*), (The|A|An|Les|La|Le|Il|El|Das|Die|Der|L')$")
MIN_TITLE_LENGTH = 3


def title_variants(title: str) -> tuple[str, ...]:
    """``title`` and, for "Name, The", also "The Name"."""
    title = title.strip()
    match = _ARTICLE.match(title)
    if not match:
        return (title,)
    name, article = match.groups()
    joined = f"{article}{name}" if article.endswith("'") else f"{article} {name}"
    return (title, joined)


def _mentions(text: str, phrase: str, ignore_case: bool) -> bool:
    """Whether ``phrase`` occurs in ``text`` on word boundaries."""
    pattern = r"(?<!\w)" + re.escape(phrase) + r"(?!\w)"
    return re.search(pattern, text, re.IGNORECASE if ignore_case else 0) is not None


def evidence_items(explanation: Explanation) -> list[ItemFacts]:
    """The recommended item and the evidence items: what a text may name."""
    return [explanation.item] + [e.item for e in explanation.evidence]


class FaithfulnessChecker:
    """Rejects text that names an item, category or year absent from the evidence.

    Args:
        known_titles: Titles of the catalog (any item that could be named by mistake).
        known_categories: Category values of the catalog (e.g. every genre).
    """

    def __init__(self, known_titles: Iterable[str] = (), known_categories: Iterable[str] = ()) -> None:
        self.known_titles = sorted({t.strip() for t in known_titles if len(t.strip()) >= MIN_TITLE_LENGTH})
        self.known_categories = sorted({c.strip() for c in known_categories if c.strip()})

    @classmethod
    def from_facts(cls, facts: Iterable[ItemFacts]) -> FaithfulnessChecker:
        """A checker knowing the titles and categories of ``facts`` (the whole catalog)."""
        facts = list(facts)
        return cls([f.title for f in facts], [c for f in facts for c in f.categories])

    def violations(self, text: str, explanation: Explanation) -> list[str]:
        """What ``text`` claims that the evidence does not hold (empty: faithful).

        Args:
            text: Generated text.
            explanation: The evidence the text is about.

        Returns:
            One message per violation, e.g. ``"year not in the evidence: 1999"``.
        """
        items = evidence_items(explanation)
        allowed_titles = {v for item in items for v in title_variants(item.title)}
        allowed_years = {item.year for item in items if item.year}
        allowed_categories = {c.lower() for item in items for c in item.categories}
        # Allowed titles are cut out first, so what they contain (a year in "2001: A Space
        # Odyssey", a shorter known title or a category word inside them) is not blamed.
        remaining = text
        for allowed in sorted(allowed_titles, key=len, reverse=True):
            remaining = re.sub(r"(?<!\w)" + re.escape(allowed) + r"(?!\w)", " ", remaining)
        out: list[str] = []
        for year in _YEAR.findall(remaining):
            if year not in allowed_years:
                out.append(f"year not in the evidence: {year}")
        for category in self.known_categories:
            if category.lower() not in allowed_categories and _mentions(
                remaining, category, ignore_case=True
            ):
                out.append(f"category not in the evidence: {category}")
        for title in self.known_titles:
            for variant in title_variants(title):
                if variant not in allowed_titles and _mentions(remaining, variant, ignore_case=False):
                    out.append(f"title not in the evidence: {variant}")
                    break
        for groups in _QUOTED.findall(text):
            quoted = next(g for g in groups if g).strip()
            if quoted and quoted not in allowed_titles and quoted.lower() not in allowed_categories:
                out.append(f"quoted name not in the evidence: {quoted}")
        return out

    def is_faithful(self, text: str, explanation: Explanation) -> bool:
        """Whether `violations` is empty."""
        return not self.violations(text, explanation)
