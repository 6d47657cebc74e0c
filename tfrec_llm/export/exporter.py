"""Exports a trained experiment for TF Serving: retrieval + item_encoder + models.config.

Each version folder is checked before it is published (every op must exist in the
``tensorflow/serving`` release of ``export.tf_serving_version``) and carries ``assets.extra/tf_serving_warmup_requests`` built from
real requests, so the server's first real request does not pay for graph initialisation.
``export_all`` also writes ``serving.env`` (``TF_SERVING_TAG=<export.tf_serving_version>``), the
``--env-file`` of ``serving/docker-compose.yml``, so the image that runs the export is the release
it was checked against. When ``export.ann`` asks for it (``auto``: catalogs of at least
``export.ann_min_items`` items), the retrieval SavedModel also gets the ``query_embedding``
signature and a faiss index of its candidate embeddings is written to
``<export_dir>/retrieval_ann/<version>/`` (`tfrec_llm.export.ann_index`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from tfrec_llm.atomic_io import write_json, write_text
from tfrec_llm.config import ExperimentConfig
from tfrec_llm.data.catalog import Catalog
from tfrec_llm.errors import ConfigError
from tfrec_llm.export.ann_index import build_index, index_folder, save_index, wants_index
from tfrec_llm.export.models_config import write_models_config
from tfrec_llm.export.op_scan import check_servable
from tfrec_llm.export.saved_model import next_version, write_saved_model
from tfrec_llm.export.serving_module import ItemEncoderModule, RetrievalModule, user_text_encoder
from tfrec_llm.export.warmup import write_warmup_requests
from tfrec_llm.models.retrieval import TwoTowerModel

if TYPE_CHECKING:
    from tfrec_llm.text.encoder import TextEncoder
    from tfrec_llm.text.student import StudentTextEncoder

RETRIEVAL = "retrieval"
ITEM_ENCODER = "item_encoder"
ITEM_ENCODER_METADATA = "item_encoder.json"
"""File in the item_encoder's ``assets.extra``: which encoder it serves (teacher or student)."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Published version folders and the TF Serving config that lists them."""

    retrieval: str
    item_encoder: str | None
    models_config: str
    ann_index: str | None = None


SERVING_ENV = "serving.env"
"""File of ``export_all`` with ``TF_SERVING_TAG``, for ``docker compose --env-file``."""


def write_serving_env(export_dir: str, tf_serving_version: str) -> str:
    """Writes ``<export_dir>/serving.env``: the image tag of ``serving/docker-compose.yml``."""
    path = os.path.join(export_dir, SERVING_ENV)
    write_text(
        path,
        "# docker compose --env-file <this file> -f serving/docker-compose.yml up\n"
        f"# written by tfrec-llm export from export.tf_serving_version\nTF_SERVING_TAG={tf_serving_version}\n",
    )
    return path


def _publish_check(model_name: str, requests: list[dict[str, np.ndarray]], tf_serving_version: str):  # type: ignore[no-untyped-def]
    def check(tmp_dir: str) -> None:
        check_servable(tmp_dir, tf_serving_version=tf_serving_version)
        write_warmup_requests(tmp_dir, model_name, requests)

    return check


def export_retrieval(
    cfg: ExperimentConfig,
    model: TwoTowerModel,
    catalog: Catalog,
    histories: Mapping[str, Sequence[str]],
    export_dir: str,
    version: int | None = None,
) -> str:
    """Publishes the retrieval SavedModel; returns its version folder.

    With an ANN index wanted (``export.ann``), the SavedModel gets the ``query_embedding``
    signature too, and the index is built before and written after the SavedModel.

    Raises:
        ConfigError: If an index is wanted for a model with ``model.popularity_prior`` (the
            index searches the inner product alone, without the prior).
    """
    ann_wanted = wants_index(cfg.export.ann, catalog.num_items, cfg.export.ann_min_items)
    if ann_wanted and model.popularity_prior:
        raise ConfigError(
            f"model.popularity_prior={model.popularity_prior} with an ANN index (export.ann="
            f"{cfg.export.ann!r}): the index searches the cosine alone and would drop the prior. "
            "Set export.ann=off (the SavedModel scores the whole catalog with the prior) or "
            "model.popularity_prior=0."
        )
    module = RetrievalModule(
        model,
        catalog,
        histories,
        cfg.export.default_k,
        cfg.export.max_k,
        cfg.export.evidence_items,
        user_text_encoder(cfg.text) if model.user_text_dim else None,
    )
    signatures = {"serving_default": module.serve}
    ann = None
    if ann_wanted:
        model_base = os.path.join(export_dir, RETRIEVAL)
        version = next_version(model_base) if version is None else int(version)
        ann = build_index(
            module.candidates.numpy(),
            catalog.item_ids,
            version,
            cfg.export.ann_index,
            nprobe=cfg.export.ann_nprobe,
            seed=cfg.train.seed,
        )
        signatures["query_embedding"] = module.query_embedding
    users = np.asarray(catalog.user_ids[:4], dtype=object).astype(bytes)
    warmup = [
        {"user_id": users},
        {"user_id": np.array([b"unknown-user"]), "k": np.array(5, np.int32)},
    ]
    if model.user_text_dim:
        warmup.append({"user_id": np.array([b"unknown-user"]), "user_text": np.array([b"animated films"])})
    folder = write_saved_model(
        module,
        signatures,
        export_dir,
        RETRIEVAL,
        version,
        _publish_check(RETRIEVAL, warmup, cfg.export.tf_serving_version),
    )
    if ann is not None:
        save_index(ann, export_dir)
    return folder


def export_item_encoder(
    cfg: ExperimentConfig,
    model_path: str,
    sample_texts: Sequence[str],
    export_dir: str,
    version: int | None = None,
    encoder: TextEncoder | StudentTextEncoder | None = None,
) -> str:
    """Publishes the item-text encoder SavedModel (in-graph tokenization); returns its folder.

    ``encoder`` is the (fine-tuned) TextEncoder, or a `StudentTextEncoder`, to export; None loads
    the pretrained teacher from ``model_path``. ``assets.extra/item_encoder.json`` says which
    (``{"encoder": "teacher" | "student", "output_dim", "max_length"}``). A TextEncoder with LoRA
    adapters is exported with the adapters merged into its kernels (``text.lora.merged_copy``),
    so the SavedModel holds the plain BERT graph.
    """
    if encoder is None:
        from tfrec_llm.text.encoder import TextEncoder

        encoder = TextEncoder(model_path, max_length=cfg.text.max_length, pooling=cfg.text.pooling)
    elif getattr(encoder, "lora_rank", 0):
        from tfrec_llm.text.lora import merged_copy

        encoder = merged_copy(encoder)
    module = ItemEncoderModule(encoder)  # type: ignore[arg-type]
    warmup = [{"text": np.asarray(list(sample_texts)[:8], dtype=object).astype(bytes)}]
    metadata = {
        "encoder": getattr(encoder, "kind", "teacher"),
        "output_dim": int(encoder.hidden_size),
        "max_length": int(encoder.max_length),
    }
    publish = _publish_check(ITEM_ENCODER, warmup, cfg.export.tf_serving_version)

    def check(tmp_dir: str) -> None:
        publish(tmp_dir)
        write_json(os.path.join(tmp_dir, "assets.extra", ITEM_ENCODER_METADATA), metadata)

    return write_saved_model(
        module, {"serving_default": module.serve}, export_dir, ITEM_ENCODER, version, check
    )


def export_all(
    cfg: ExperimentConfig,
    model: TwoTowerModel,
    catalog: Catalog,
    histories: Mapping[str, Sequence[str]],
    export_dir: str,
    text_model_path: str | None,
    sample_texts: Sequence[str] = (),
    version: int | None = None,
    text_encoder: TextEncoder | None = None,
) -> ExportResult:
    """Publishes retrieval (and item_encoder when a text model is given) and models.config.

    Both models get the same version number, so a deployment can be traced to one export.
    Pass the model's fine-tuned encoder (``model.item_tower.text_encoder``) as ``text_encoder``
    so that item_encoder serves the fine-tuned weights.
    """
    if version is None:
        version = max(
            next_version(os.path.join(export_dir, RETRIEVAL)),
            next_version(os.path.join(export_dir, ITEM_ENCODER)),
        )
    retrieval = export_retrieval(cfg, model, catalog, histories, export_dir, version)
    encoder = None
    if text_model_path or text_encoder is not None:
        path = text_model_path or text_encoder.model_path  # type: ignore[union-attr]
        served: TextEncoder | StudentTextEncoder | None = text_encoder
        if cfg.export.item_encoder == "student":  # trained by `tfrec-llm distill`
            from tfrec_llm.text.student import load_student_text_encoder

            served = load_student_text_encoder(os.path.join(cfg.train.model_dir, "student"), path)
        encoder = export_item_encoder(cfg, path, sample_texts, export_dir, version, served)
    names = [RETRIEVAL] + ([ITEM_ENCODER] if encoder else [])
    config = write_models_config(export_dir, names)
    write_serving_env(export_dir, cfg.export.tf_serving_version)
    ann = index_folder(export_dir, version)
    return ExportResult(retrieval, encoder, config, ann if os.path.isdir(ann) else None)
