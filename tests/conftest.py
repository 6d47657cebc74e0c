"""Shared fixtures: a tiny synthetic data set with a structure a model can learn.

Two taste clusters: users 1..N/2 interact mostly with "space" items, the others mostly with
"cooking" items, in a fixed order within each cluster, so a trained model must beat
popularity and text is informative (each item's title names its cluster).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tfrec_llm  # noqa: F401  (Keras 2 before TensorFlow)
from tfrec_llm.data.schema import RecDataset


def make_clustered_dataset(num_users: int = 40, num_items: int = 30, per_user: int = 12, seed: int = 0) -> RecDataset:
    """A two-cluster data set (synthetic, deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    half = num_items // 2
    rows = []
    for u in range(1, num_users + 1):
        cluster = 0 if u <= num_users // 2 else 1
        own = np.arange(half) + cluster * half
        other = np.arange(half) + (1 - cluster) * half
        picks = list(rng.choice(own, size=per_user - 2, replace=False)) + list(rng.choice(other, size=2, replace=False))
        rng.shuffle(picks)
        for t, item in enumerate(picks):
            rows.append((str(u), str(item + 1), 1_000_000 + 100 * u + t))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    interactions["timestamp"] = interactions["timestamp"].astype(np.int64)
    kinds = ["space rocket adventure", "kitchen cooking recipe"]
    items = pd.DataFrame(
        {
            "item_id": [str(i + 1) for i in range(num_items)],
            "title": [f"{kinds[i // half]} story number {i + 1}" for i in range(num_items)],
            "year": ["1995"] * num_items,
            "genres": ["Sci-Fi|Action" if i < half else "Comedy|Drama" for i in range(num_items)],
        }
    )
    users = pd.DataFrame(
        {
            "user_id": [str(u) for u in range(1, num_users + 1)],
            "age": [str(20 + u % 3) for u in range(1, num_users + 1)],
            "gender": ["M" if u % 2 else "F" for u in range(1, num_users + 1)],
            "occupation": ["engineer" if u <= num_users // 2 else "chef" for u in range(1, num_users + 1)],
        }
    )
    return RecDataset(
        name="tiny-clusters",
        interactions=interactions,
        items=items,
        users=users,
        item_text_fields=("title", "year", "genres"),
        item_categorical_fields=("genres",),
        user_profile_fields=("age", "gender", "occupation"),
    )


@pytest.fixture()
def tiny_dataset() -> RecDataset:
    return make_clustered_dataset()


@pytest.fixture()
def dataset_factory():
    """The ``make_clustered_dataset`` function, for tests that need other sizes."""
    return make_clustered_dataset
