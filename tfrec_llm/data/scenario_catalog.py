"""The catalog of one scenario: which items ``tfrec-llm recommend --scenario NAME`` may return.

A data set names its scenarios in the optional ``scenario`` column (`tfrec_llm.data.schema`):
of the items table when it has one (each item belongs to one scenario's catalog), else of the
interactions (an item belongs to every scenario it was interacted with in). A data set without
the column is one scenario and has no names to choose from.

Example:
    >>> scenario_item_ids(dataset, "news")[:3]
    array(['news0', 'news1', 'news2'], dtype=object)
"""

from __future__ import annotations

import numpy as np

from tfrec_llm.data.schema import ITEM_ID, SCENARIO, RecDataset
from tfrec_llm.errors import ConfigError


def scenario_names(dataset: RecDataset) -> list[str]:
    """The sorted scenario names of ``dataset`` (items table first, else interactions); [] if none."""
    for frame in (dataset.items, dataset.interactions):
        if SCENARIO in frame.columns and len(frame):
            return sorted(str(name) for name in frame[SCENARIO].dropna().unique())
    return []


def scenario_item_ids(dataset: RecDataset, scenario: str) -> np.ndarray:
    """The item ids of ``scenario``'s catalog, in first-seen order.

    Args:
        dataset: Canonical frames.
        scenario: A value of the ``scenario`` column.

    Returns:
        ``[n]`` object array of item ids.

    Raises:
        ConfigError: The data set has no ``scenario`` column, or ``scenario`` is not one of its
            values.
    """
    names = scenario_names(dataset)
    if not names:
        raise ConfigError(
            f"--scenario {scenario!r}: the data set has no scenario column, so its model serves "
            "one scenario; leave out --scenario (or add a 'scenario' column to the interactions "
            "or items file)."
        )
    if scenario not in names:
        raise ConfigError(
            f"--scenario {scenario!r} is not a scenario of the data set; expected one of {names}."
        )
    items = dataset.items
    frame = items if SCENARIO in items.columns and len(items) else dataset.interactions
    chosen = frame.loc[frame[SCENARIO] == scenario, ITEM_ID].drop_duplicates()
    return chosen.to_numpy(dtype=object)
