"""``distill``: train the student item encoder on the item texts, into ``<train.model_dir>/student``.

The student (`tfrec_llm.text.student`) learns to reproduce the teacher's item vectors (the
BERT of ``text.model_path``, precomputed and cached by ``prepare``) from the item TEXTS alone.
No interaction is read: distilling on the text of items that protocol B holds out as cold is
legitimate, because that protocol hides only their interactions, never their text (the
exported item_encoder sees the text of every new item too).

Nothing here trains unless asked: `distill_student` reuses a finished student made with the same
settings and texts, resumes a killed one (``student/backup``) and refuses, without deleting
anything, one made with other settings (``retrain=True`` moves it aside).

Example:
    >>> student, info = distill_student(load_config(), epochs=40)
    >>> info["mean_cosine"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from tfrec_llm.config import ExperimentConfig
from tfrec_llm.errors import ConfigError
from tfrec_llm.experiments.prepare import Prepared, prepare, text_model_path, user_histories
from tfrec_llm.text.distillation import RetrievalTerm, distill
from tfrec_llm.text.student import (
    STUDENT_CONFIG,
    StudentEncoder,
    is_trained,
    load_student,
    tokenize_for_student,
)

if TYPE_CHECKING:
    from tfrec_llm.models.retrieval import TwoTowerModel

logger = logging.getLogger(__name__)

STUDENT_DIR = "student"
_COMPARED = ("settings", "teacher", "max_length", "pooling", "texts_sha256", "retrieval_sha256")


@dataclasses.dataclass(frozen=True)
class StudentSettings:
    """How the student is built and trained (`tfrec_llm.text.student.distill`)."""

    embedding_dim: int = 128
    num_layers: int = 0
    num_heads: int = 2
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    contrastive_weight: float = 0.0
    token_dropout: float = 0.1
    retrieval_weight: float = 0.0
    retrieval_pairs: int = 50_000


def student_dir(cfg: ExperimentConfig) -> str:
    """``<train.model_dir>/student``: where ``tfrec-llm distill`` writes the student."""
    return os.path.join(cfg.train.model_dir, STUDENT_DIR)


def _texts_hash(texts: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def retrieval_term(
    model: TwoTowerModel, prepared: Prepared, weight: float, max_pairs: int = 50_000, seed: int = 42
) -> RetrievalTerm:
    """The student's retrieval term from a frozen two-tower trained on ``prepared``'s TRAIN split.

    Pairs are (each user's TRAIN history up to position t, the item at t), at most
    ``max_pairs`` of them drawn uniformly (seeded); their query vectors come from the frozen
    model (the user's id, the history before t, no user text). Only TRAIN is read, so a
    protocol's held-out interactions (protocol B's cold items, C's cold users) never reach the
    student. Its item vectors go through the model's item tower as cold items (no id).

    Raises:
        ConfigError: The model's item tower has no frozen text table, or TRAIN has no pairs.
    """
    from tfrec_llm.models.scorer import TwoTowerScorer

    tower = model.item_tower
    if not tower.use_text or tower.text_encoder is not None:
        raise ConfigError(
            "the student's retrieval term needs a two-tower with a frozen text table (use_text)"
        )
    users, cuts = [], []
    histories = user_histories(prepared.split.train)
    for user, items in histories.items():
        users += [user] * (len(items) - 1)
        cuts += range(1, len(items))
    if not cuts:
        raise ConfigError("the student's retrieval term found no (history, next item) pair in TRAIN")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(cuts), size=min(max_pairs, len(cuts)), replace=False))
    pair_users = np.asarray(users, dtype=object)[chosen]
    pair_histories = [histories[u][: cuts[i]] for u, i in zip(pair_users, chosen)]
    targets = [histories[u][cuts[i]] for u, i in zip(pair_users, chosen)]
    queries = TwoTowerScorer(model, prepared.catalog).query_embeddings(pair_users, pair_histories)
    return RetrievalTerm(
        queries=queries.astype(np.float32),
        items=prepared.catalog.item_index(np.asarray(targets, dtype=object)).astype(np.int32),
        candidate=tower.embed_text_vectors,
        weight=weight,
        temperature=float(model.temperature),
    )


def _settings_record(settings: StudentSettings) -> dict[str, Any]:
    """The settings as recorded; without the retrieval fields when the term is off (as before it existed)."""
    record = dataclasses.asdict(settings)
    if not settings.retrieval_weight > 0:
        del record["retrieval_weight"], record["retrieval_pairs"]
    return record


def _fingerprint(term: RetrievalTerm | None) -> str | None:
    """Hash of a retrieval term's pairs and query vectors (a changed frozen model changes it)."""
    if term is None:
        return None
    digest = hashlib.sha256(np.ascontiguousarray(term.items).tobytes())
    digest.update(np.round(term.queries, 4).astype(np.float32).tobytes())
    return digest.hexdigest()[:16]


def distill_student(
    cfg: ExperimentConfig,
    settings: StudentSettings | None = None,
    prepared: Prepared | None = None,
    out_dir: str | None = None,
    retrain: bool = False,
    verbose: int = 1,
    frozen: TwoTowerModel | None = None,
) -> tuple[StudentEncoder, dict[str, Any]]:
    """The student of ``cfg``: reused when finished with the same settings, else trained now.

    Args:
        cfg: Experiment config (its text section names the teacher and the item template).
        settings: Student size and training (default `StudentSettings`).
        prepared: Already prepared data (any protocol: every protocol has the whole catalog's
            texts); default ``prepare(cfg)``.
        out_dir: Default `student_dir`.
        retrain: Move a finished or differing student aside (``<dir>.bak-<time>``) and train.
        verbose: Keras progress bar (1), one line per epoch (2) or silent (0).
        frozen: The trained two-tower of ``prepared``'s protocol, needed when
            ``settings.retrieval_weight > 0`` (`retrieval_term`).

    Returns:
        (student, metadata) where metadata holds the settings, the teacher and the result.

    Raises:
        ConfigError: ``out_dir`` holds a student made with other settings or texts (and not
            ``retrain``).
    """
    settings = settings or StudentSettings()
    out_dir = out_dir or student_dir(cfg)
    prepared = prepared or prepare(cfg)
    if prepared.text_embeddings is None:
        raise ConfigError("distill needs the teacher's text vectors; call prepare(..., with_text=True)")
    model_path = text_model_path(cfg.text)
    term = None
    if settings.retrieval_weight > 0:
        if frozen is None:
            raise ConfigError(
                "retrieval_weight > 0 needs the trained two-tower (frozen=...); "
                "`tfrec-llm distill --retrieval-weight` uses the config's trained bert model"
            )
        term = retrieval_term(
            frozen, prepared, settings.retrieval_weight, settings.retrieval_pairs, cfg.train.seed
        )
    wanted = {
        "settings": _settings_record(settings),
        "teacher": os.path.basename(os.path.normpath(model_path)),
        "max_length": cfg.text.max_length,
        "pooling": cfg.text.pooling,
        "texts_sha256": _texts_hash(prepared.item_texts),
        **({"retrieval_sha256": _fingerprint(term)} if term is not None else {}),
    }
    config_path = os.path.join(out_dir, STUDENT_CONFIG)
    if os.path.exists(config_path) and not retrain:
        with open(config_path, encoding="utf-8") as handle:
            old = json.load(handle)
        changed = sorted(
            key for key in {**old, **wanted} if key in _COMPARED and old.get(key) != wanted.get(key)
        )
        if changed:
            raise ConfigError(
                f"{out_dir!r} holds a student made with other {', '.join(changed)}. Run "
                "`tfrec-llm distill --retrain` (moves it aside) or use another --model-dir."
            )
    if is_trained(out_dir) and not retrain:
        return load_student(out_dir)
    if retrain and os.path.exists(out_dir):
        moved = f"{out_dir}.bak-{time.strftime('%Y%m%d-%H%M%S')}"
        os.rename(out_dir, moved)
        logger.warning("--retrain: moved the old student %s to %s", out_dir, moved)
    ids, mask = tokenize_for_student(model_path, list(prepared.item_texts), cfg.text.max_length)
    student = StudentEncoder(
        vocab_size=_vocab_size(model_path),
        output_dim=int(prepared.text_embeddings.shape[1]),
        embedding_dim=settings.embedding_dim,
        num_layers=settings.num_layers,
        num_heads=settings.num_heads,
        max_length=cfg.text.max_length,
        name="student",
    )
    result = distill(
        student,
        ids,
        mask,
        prepared.text_embeddings,
        out_dir,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        contrastive_weight=settings.contrastive_weight,
        token_dropout=settings.token_dropout,
        retrieval=term,
        seed=cfg.train.seed,
        verbose=verbose,
        extra_metadata=wanted,
    )
    return student, {"layer": student.get_config(), **wanted, "result": result}


def _vocab_size(model_path: str) -> int:
    """Lines of the teacher's ``vocab.txt`` (the student's token table rows)."""
    with open(os.path.join(model_path, "vocab.txt"), encoding="utf-8") as handle:
        return sum(1 for _ in handle)
