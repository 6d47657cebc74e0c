"""What a split protocol returns: the train frames of one protocol and its evaluation tasks.

:mod:`tfrec_llm.data.splits` builds these; the trainer, the evaluator and the baselines read
them. Both classes are plain frozen dataclasses of numpy arrays and pandas frames.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from tfrec_llm.config.choices import ITEM_SELECTION_PROTOCOL, SELECTION_PROTOCOL
from tfrec_llm.data.schema import USER_ID, RecDataset
from tfrec_llm.errors import DataError


@dataclasses.dataclass(frozen=True)
class EvalTask:
    """One ranking task: per user a history, the items to exclude, and the targets.

    Attributes:
        name: ``"valid"`` or ``"test"``.
        user_ids: ``[n]`` str user ids, natural order.
        histories: Per user, chronological item ids the model may condition on.
        exclude: Per user, item ids removed from the ranking (the history, de-duplicated).
        targets: Per user, target item ids (non-empty, de-duplicated, none in ``exclude``).
        candidate_ids: ``None`` ranks the whole catalog; cold-items: the cold item ids.
    """

    name: str
    user_ids: np.ndarray
    histories: tuple[np.ndarray, ...]
    exclude: tuple[np.ndarray, ...]
    targets: tuple[np.ndarray, ...]
    candidate_ids: np.ndarray | None


@dataclasses.dataclass(frozen=True)
class Split:
    """Train frames and evaluation tasks of one protocol.

    Attributes:
        protocol: One of ``PROTOCOLS``.
        item_ids: The whole catalog in natural order (= score column order of a Scorer).
        train: Interactions to fit on, plus float ``tie_key``; sorted by (user natural order,
            timestamp, tie_key).
        train_valid: ``train`` plus the VALID targets (refit, test histories); same layout.
        valid: Validation task (early stopping, tuning).
        test: Test task.
        cold_item_ids: Cold items in natural order (empty unless ``cold-items``).
        cold_user_ids: Cold users in natural order (empty unless ``cold-users``).
    """

    protocol: str
    item_ids: np.ndarray
    train: pd.DataFrame
    train_valid: pd.DataFrame
    valid: EvalTask
    test: EvalTask
    cold_item_ids: np.ndarray
    cold_user_ids: np.ndarray


_NEEDS = {
    "loo": "users with at least 3 interactions",
    "cold-items": "users with interactions of warm items, and items enough to hold 20% out",
    "cold-users": "warm users with at least 2 interactions, and users enough to hold 20% out",
    SELECTION_PROTOCOL: "warm users with at least 2 interactions, and users enough to hold 20% out twice",
    ITEM_SELECTION_PROTOCOL: "users with interactions of warm items, and items enough to hold 20% out twice",
}


def check_usable(dataset: RecDataset, split: Split) -> None:
    """Raises one clear DataError when ``split`` leaves nothing to train on or to evaluate.

    Called before training (``experiments.prepare``); `make_split` itself returns such splits.

    Raises:
        DataError: If TRAIN, VALID or TEST is empty, naming the sizes and what the protocol needs.
    """
    sizes = {"TRAIN": len(split.train), "VALID": len(split.valid.user_ids), "TEST": len(split.test.user_ids)}
    empty = [name for name, n in sizes.items() if n == 0]
    if empty:
        inter = dataset.interactions
        raise DataError(
            f"too few interactions to split under protocol {split.protocol!r}: "
            f"{len(inter)} interactions of {inter[USER_ID].nunique()} users leave "
            f"{sizes['TRAIN']} TRAIN interactions, {sizes['VALID']} VALID and {sizes['TEST']} TEST "
            f"users ({' and '.join(empty)} empty). It needs {_NEEDS[split.protocol]}."
        )
