"""``explain(user, item)``: the evidence behind a recommendation, from the user's own history.

The weights come from ``tfrec_llm.models.evidence`` (attention of the query tower, else the
cosine of candidate embeddings); the item facts (title, year, categories) from the data set's
item table, so every evidence item is a real item of the user's history and every shared
category or term is true of both items.

Example:
    >>> explainer = Explainer(model, prepared, known_histories(prepared))
    >>> print(explainer.explain("1", "50").summary())
    because: Return of the Jedi (0.31), Empire Strikes Back, The (0.22); shared categories: ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from tfrec_llm.content.evidence import Explanation, HistoryEvidence, ItemFacts
from tfrec_llm.data.schema import ITEM_ID
from tfrec_llm.errors import ConfigError
from tfrec_llm.experiments.prepare import Prepared
from tfrec_llm.models.evidence import history_contributions, uses_attention
from tfrec_llm.models.retrieval import TwoTowerModel

TITLE_FIELD = "title"
YEAR_FIELD = "year"


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def item_facts(prepared: Prepared) -> dict[str, ItemFacts]:
    """item id -> `ItemFacts` for every catalog item.

    The title is the item table's ``title`` field (else the rendered item text); the year its
    ``year`` field (else ``""``); the categories the values of the categorical fields
    (``Catalog.categories``), without the field name.
    """
    catalog = prepared.catalog
    items = prepared.dataset.items
    frame = items.set_index(ITEM_ID).reindex(catalog.item_ids) if len(items) else pd.DataFrame()
    titles = frame[TITLE_FIELD].tolist() if TITLE_FIELD in frame else list(prepared.item_texts)
    years = frame[YEAR_FIELD].tolist() if YEAR_FIELD in frame else [""] * catalog.num_items
    names = [name.split("=", 1)[-1] for name in catalog.category_names]
    out: dict[str, ItemFacts] = {}
    for row, item_id in enumerate(catalog.item_ids.tolist()):
        values = tuple(names[c] for c in np.flatnonzero(catalog.categories[row] > 0))
        title = _text(titles[row]) or _text(prepared.item_texts[row] if prepared.item_texts else item_id)
        out[str(item_id)] = ItemFacts(str(item_id), title, _text(years[row]), values)
    return out


class Explainer:
    """Explains the recommendations of one trained model.

    Args:
        model: The trained two-tower model.
        prepared: The data it was trained on (catalog, item table).
        histories: user id -> chronological item ids the model reads (``known_histories``).
        top: How many history items to give as evidence.
    """

    def __init__(
        self,
        model: TwoTowerModel,
        prepared: Prepared,
        histories: Mapping[str, Sequence[str]],
        top: int = 3,
    ) -> None:
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ConfigError(f"top must be a positive integer, got {top!r}.")
        self.model = model
        self.prepared = prepared
        self.histories = histories
        self.top = top
        self.facts = item_facts(prepared)
        self.source = "attention" if uses_attention(model) else "similarity"
        self._candidates = None if uses_attention(model) else model.all_candidate_embeddings()

    def explain(self, user: str, item: str, score: float | None = None) -> Explanation:
        """The evidence for recommending ``item`` to ``user``.

        Args:
            user: User id (an unknown user has no history, hence no evidence).
            item: Recommended item id.
            score: The recommendation's score, kept in the result.

        Raises:
            DataError: If ``item`` is not in the catalog.
        """
        user, item = str(user), str(item)
        history = [str(i) for i in self.histories.get(user, ())]
        indices, weights, source = history_contributions(
            self.model, self.prepared.catalog, user, history, item, self._candidates
        )
        recommended = self.facts[item]
        ids = self.prepared.catalog.item_ids
        evidence = tuple(
            HistoryEvidence.between(self.facts[str(ids[i])], recommended, w)
            for i, w in zip(indices[: self.top].tolist(), weights[: self.top].tolist())
        )
        return Explanation(user, recommended, source if evidence else "none", evidence, score)

    def explain_all(
        self, users: Sequence[str], answers: Sequence[Sequence[tuple[str, float]]]
    ) -> list[list[Explanation]]:
        """Explanations of ``recommend``'s answers: one list per user, in answer order."""
        return [
            [self.explain(user, item, score) for item, score in answer]
            for user, answer in zip(users, answers)
        ]
