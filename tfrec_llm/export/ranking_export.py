"""Exports the ``ranking`` SavedModel: the two-stage ``recommend`` signature and ``score``.

The folder is ``<export_dir>/ranking/<version>/``, published like ``retrieval``'s: saved to a
temporary folder, op-scanned against the ``tensorflow/serving`` release of
``export.tf_serving_version``, given ``assets.extra/tf_serving_warmup_requests`` (requests of
the ``recommend`` signature: known users, an unknown user, a k), then renamed into place.
Signatures: ``recommend`` (also ``serving_default``) and ``score``, see
`tfrec_llm.export.two_stage_module`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tfrec_llm.config import ExperimentConfig
from tfrec_llm.data.catalog import Catalog
from tfrec_llm.export.op_scan import check_servable
from tfrec_llm.export.saved_model import write_saved_model
from tfrec_llm.export.serving_module import user_text_encoder
from tfrec_llm.export.two_stage_module import TwoStageModule
from tfrec_llm.export.warmup import write_warmup_requests
from tfrec_llm.models.ranking import RankingModel
from tfrec_llm.models.retrieval import TwoTowerModel

RANKING = "ranking"
RECOMMEND_SIGNATURE = "recommend"


def num_candidates(cfg: ExperimentConfig) -> int:
    """N of the two-stage graph: ``ranking.num_candidates`` (default 100)."""
    return int(cfg.ranking.num_candidates)


def two_stage_module(
    cfg: ExperimentConfig,
    model: TwoTowerModel,
    ranking_model: RankingModel,
    catalog: Catalog,
    histories: Mapping[str, Sequence[str]],
) -> TwoStageModule:
    """The `TwoStageModule` of ``cfg`` (``export.default_k``, ``export.max_k``, N; the item
    texts' encoder when the model reads user text)."""
    export = cfg.export
    return TwoStageModule(
        model,
        ranking_model,
        catalog,
        histories,
        export.default_k,
        export.max_k,
        num_candidates(cfg),
        text_encoder=user_text_encoder(cfg.text) if model.user_text_dim else None,
    )


def export_ranking(
    cfg: ExperimentConfig,
    model: TwoTowerModel,
    ranking_model: RankingModel,
    catalog: Catalog,
    histories: Mapping[str, Sequence[str]],
    export_dir: str,
    version: int | None = None,
) -> str:
    """Publishes ``<export_dir>/ranking/<version>/`` (op-scanned, with warmup); returns the folder.

    Args:
        cfg: Experiment config (export and ranking sections).
        model: The trained retrieval model (first stage).
        ranking_model: The trained ranking model (second stage).
        catalog: The catalog both were trained on.
        histories: user id -> chronological item ids (stored histories, excluded items).
        export_dir: Base folder holding one folder per model.
        version: Version number; default the next free one.
    """
    module = two_stage_module(cfg, model, ranking_model, catalog, histories)
    users = np.asarray([str(u) for u in list(histories)[:4]] or ["unknown-user"], dtype=object).astype(bytes)
    warmup = [
        {"user_id": users},
        {"user_id": np.array([b"unknown-user"]), "k": np.array(5, np.int32)},
    ]
    if model.user_text_dim:  # BERT's first call is in a warmup request, not a user's
        warmup.append({"user_id": np.array([b"unknown-user"]), "user_text": np.array([b"animated films"])})

    def check(tmp_dir: str) -> None:
        check_servable(tmp_dir, tf_serving_version=cfg.export.tf_serving_version)
        write_warmup_requests(tmp_dir, RANKING, warmup, signature_name=RECOMMEND_SIGNATURE)

    signatures = {
        "serving_default": module.recommend,
        RECOMMEND_SIGNATURE: module.recommend,
        "score": module.score,
    }
    return write_saved_model(module, signatures, export_dir, RANKING, version, check)
