"""Synthetic multi-scenario data with known ground truth (issue 11, scenarios).

No public multi-scenario data set is bundled, so this generator makes one whose truth is known:

* every user has one latent interest vector ``u`` (a Dirichlet draw over ``latent_dim`` topics,
  so most users care about a few topics), shared by all scenarios;
* each scenario has its own catalog: item ``i`` has a dominant topic ``t`` and a latent vector
  ``v = onehot(t) + noise * N(0, I)`` (the noise is the scenario's own), a popularity, and a
  short text naming its scenario and its dominant topic's word (e.g. ``"video: cooking"``);
* a user picks items of a scenario without replacement with probabilities
  ``softmax(affinity * u . v + log popularity)`` over that scenario's catalog (Gumbel top-k);
* each scenario has its own number of interactions per user; a scenario may be sparse for a
  fraction of the users (``sparse_interactions`` for them instead of ``interactions``).

Everything is deterministic given ``seed``. `true_logits` scores a catalog with the true
vectors (the oracle a learned model can at best approach).

Example:
    >>> data = generate_scenarios(num_users=200, seed=0)
    >>> sorted(data.dataset.interactions["scenario"].unique())
    ['news', 'shop', 'video']
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from tfrec_llm.data.schema import (
    ITEM_ID,
    SCENARIO,
    TIMESTAMP,
    USER_ID,
    RecDataset,
    scenario_values,
)
from tfrec_llm.errors import DataError

TOPIC_WORDS = (
    "adventure", "cooking", "science", "music", "sports", "travel", "history", "fashion",
    "gaming", "finance", "nature", "comedy", "health", "art", "cars", "pets",
)  # fmt: skip
"""The word of each topic in item texts (topics beyond 16 are ``topic<k>``)."""


@dataclasses.dataclass(frozen=True)
class ScenarioSpec:
    """One scenario of the synthetic data.

    Attributes:
        name: Scenario name (``scenario`` column value, prefix of its item ids).
        num_items: Catalog size.
        interactions: Interactions per user (dense users).
        sparse_interactions: Interactions per user for the sparse users.
        sparse_fraction: Fraction of users that are sparse in this scenario.
        noise: Standard deviation of this scenario's item-vector noise.
    """

    name: str
    num_items: int
    interactions: int
    sparse_interactions: int = 0
    sparse_fraction: float = 0.0
    noise: float = 0.3


DEFAULT_SCENARIOS = (
    ScenarioSpec("shop", num_items=300, interactions=20, noise=0.3),
    ScenarioSpec("video", num_items=200, interactions=15, noise=0.4),
    ScenarioSpec("news", 150, interactions=15, sparse_interactions=2, sparse_fraction=0.7),
)
"""Two dense scenarios and one (``news``) where 70% of the users have only 2 interactions."""


@dataclasses.dataclass(frozen=True)
class SyntheticScenarios:
    """The generated data set and its ground truth.

    Attributes:
        dataset: Canonical frames: interactions (with ``scenario``), items (``item_id``,
            ``scenario``, ``text``; ``text`` is the item text field), users.
        user_vectors: ``[num_users, latent_dim]``, rows in ``dataset.users`` order.
        item_vectors: ``[num_items, latent_dim]``, rows in ``dataset.items`` order.
        item_log_popularity: ``[num_items]`` log popularity (the softmax's bias).
        item_topics: ``[num_items]`` dominant topic (argmax of the item vector).
        affinity: The weight of ``u . v`` in the logits.
        sparse_users: Scenario name -> ids of the users sparse in it.
        specs: The scenarios.
        seed: The seed.
    """

    dataset: RecDataset
    user_vectors: np.ndarray
    item_vectors: np.ndarray
    item_log_popularity: np.ndarray
    item_topics: np.ndarray
    affinity: float
    sparse_users: dict[str, np.ndarray]
    specs: tuple[ScenarioSpec, ...]
    seed: int

    def true_logits(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        """The true choice logits ``affinity * u . v + log popularity``.

        Args:
            user_rows: ``[n]`` row positions in ``dataset.users``.
            item_rows: ``[m]`` row positions in ``dataset.items``.

        Returns:
            ``[n, m]`` float64.
        """
        dots = self.user_vectors[user_rows] @ self.item_vectors[item_rows].T
        return self.affinity * dots + self.item_log_popularity[item_rows][None, :]


def _topic_word(topic: int) -> str:
    return TOPIC_WORDS[topic] if topic < len(TOPIC_WORDS) else f"topic{topic}"


def generate_scenarios(
    num_users: int = 1000,
    specs: tuple[ScenarioSpec, ...] = DEFAULT_SCENARIOS,
    latent_dim: int = 8,
    concentration: float = 0.3,
    affinity: float = 6.0,
    popularity_sigma: float = 0.5,
    seed: int = 0,
) -> SyntheticScenarios:
    """Generates users, per-scenario catalogs and interactions (see the module docstring).

    Args:
        num_users: Users (ids ``u0``, ``u1``, ...), each active in every scenario.
        specs: The scenarios; names must be unique.
        latent_dim: Topics (K).
        concentration: Dirichlet concentration of user interests (small = few topics each).
        affinity: Weight of ``u . v`` in the choice logits (larger = less noisy choices).
        popularity_sigma: Standard deviation of the log-normal item popularity.
        seed: Seed of everything.

    Returns:
        The data set and its ground truth.

    Raises:
        DataError: On an impossible setting (no users, a catalog smaller than the
            interactions asked of it, duplicate scenario names).
    """
    names = [s.name for s in specs]
    if num_users < 1 or latent_dim < 1 or not specs or len(set(names)) != len(names):
        raise DataError(
            f"generate_scenarios: num_users={num_users}, latent_dim={latent_dim}, scenarios "
            f"{names}; expected >= 1 user, >= 1 latent dim and unique scenario names."
        )
    for spec in specs:
        most = max(spec.interactions, spec.sparse_interactions)
        if spec.num_items < most or spec.interactions < 1 or not 0 <= spec.sparse_fraction <= 1:
            raise DataError(
                f"generate_scenarios: scenario {spec.name!r} asks {most} interactions of a "
                f"{spec.num_items}-item catalog (sparse fraction {spec.sparse_fraction}); "
                "expected 1 <= interactions <= num_items and a fraction in [0, 1]."
            )
    rng = np.random.default_rng(seed)
    user_ids = np.asarray([f"u{j}" for j in range(num_users)], dtype=object)
    users = rng.dirichlet(np.full(latent_dim, concentration), size=num_users)
    item_parts, vectors, log_pops, rows = [], [], [], []
    sparse_users: dict[str, np.ndarray] = {}
    offset = 0
    for spec in specs:
        topics = rng.integers(0, latent_dim, size=spec.num_items)
        vec = np.eye(latent_dim)[topics] + spec.noise * rng.standard_normal((spec.num_items, latent_dim))
        log_pop = popularity_sigma * rng.standard_normal(spec.num_items)
        dominant = vec.argmax(axis=1)
        ids = np.asarray([f"{spec.name}-{i}" for i in range(spec.num_items)], dtype=object)
        texts = [f"{spec.name}: {_topic_word(int(t))}" for t in dominant]
        item_parts.append(pd.DataFrame({ITEM_ID: ids, SCENARIO: spec.name, "text": texts}))
        vectors.append(vec)
        log_pops.append(log_pop)
        counts = np.full(num_users, spec.interactions)
        sparse = rng.random(num_users) < spec.sparse_fraction
        counts[sparse] = spec.sparse_interactions
        sparse_users[spec.name] = user_ids[sparse]
        logits = affinity * users @ vec.T + log_pop[None, :]
        keys = logits + rng.gumbel(size=logits.shape)
        order = np.argsort(-keys, axis=1)
        for j in range(num_users):
            chosen = order[j, : counts[j]]
            rows.append((np.full(len(chosen), j), chosen + offset, np.full(len(chosen), spec.name)))
        offset += spec.num_items
    items = pd.concat(item_parts, ignore_index=True)
    user_col = np.concatenate([r[0] for r in rows])
    item_col = np.concatenate([r[1] for r in rows])
    scen_col = np.concatenate([r[2] for r in rows])
    timestamps = rng.permutation(len(user_col)).astype(np.int64) + 1_600_000_000
    interactions = pd.DataFrame(
        {
            USER_ID: pd.Series(user_ids[user_col], dtype=object),
            ITEM_ID: pd.Series(items[ITEM_ID].to_numpy()[item_col], dtype=object),
            TIMESTAMP: timestamps,
            SCENARIO: pd.Series(scen_col.astype(object), dtype=object),
        }
    )
    interactions = interactions.sort_values([USER_ID, TIMESTAMP], kind="stable")
    dataset = RecDataset(
        name=f"synthetic-scenarios-{seed}",
        interactions=interactions.reset_index(drop=True),
        items=items.astype({SCENARIO: object, "text": object}),
        users=pd.DataFrame({USER_ID: pd.Series(user_ids, dtype=object)}),
        item_text_fields=("text",),
    )
    item_vectors = np.concatenate(vectors)
    return SyntheticScenarios(
        dataset=dataset,
        user_vectors=users,
        item_vectors=item_vectors,
        item_log_popularity=np.concatenate(log_pops),
        item_topics=item_vectors.argmax(axis=1),
        affinity=float(affinity),
        sparse_users=sparse_users,
        specs=tuple(specs),
        seed=seed,
    )


def leave_last_out(interactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits off each user's last interaction of each scenario (by timestamp) as the test.

    Only (user, scenario) pairs with at least 2 interactions give a test row, so every test
    user keeps at least one training interaction in that scenario.

    Args:
        interactions: Canonical interactions (a frame without ``scenario`` is one scenario).

    Returns:
        ``(train, test)`` frames, each sorted by user and timestamp.
    """
    frame = interactions.copy()
    if SCENARIO not in frame.columns:
        frame[SCENARIO] = scenario_values(frame)
    frame = frame.sort_values([USER_ID, SCENARIO, TIMESTAMP], kind="stable")
    group = frame.groupby([USER_ID, SCENARIO], sort=False)[TIMESTAMP]
    size = group.transform("size").to_numpy()
    position = group.cumcount().to_numpy()
    is_test = (position == size - 1) & (size >= 2)
    train = frame[~is_test].sort_values([USER_ID, TIMESTAMP], kind="stable")
    test = frame[is_test].sort_values([USER_ID, TIMESTAMP], kind="stable")
    return train.reset_index(drop=True), test.reset_index(drop=True)
