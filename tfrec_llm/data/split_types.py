"""What a split protocol returns: the train frames of one protocol and its evaluation tasks.

:mod:`tfrec_llm.data.splits` builds these; the trainer, the evaluator and the baselines read
them. Both classes are plain frozen dataclasses of numpy arrays and pandas frames.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd


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
