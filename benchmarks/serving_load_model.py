"""The model of the serving load test: built, loaded from quality.py's cache or an existing export.

By default the MovieLens-100K BERT two-tower is prepared (``tfrec_llm.experiments.prepare``)
and the finished model that ``benchmarks/quality.py`` left in its cache folder
(``common.cached_run_dir``, same config = same folder) is loaded, or the one in
``--trained-dir``; without one the untrained model is served (top-K latency does not depend on
the weight values). ``--quick`` builds a tiny model on `synthetic_dataset`. The model is
exported with ``tfrec_llm.export.exporter.export_retrieval``, with every interaction known per
user (``tfrec_llm.experiments.known_histories``, as ``tfrec-llm export``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import common
from serving_load_clients import MODEL_NAME


def synthetic_dataset(num_users: int = 60, num_items: int = 80, per_user: int = 10) -> Any:
    """A small random data set (fixed seed) for ``--quick``: ids "1".., ML-100K-like columns."""
    import numpy as np
    import pandas as pd

    from tfrec_llm.data.schema import ITEM_ID, TIMESTAMP, USER_ID, RecDataset

    rng = np.random.default_rng(0)
    rows = [
        (str(u), str(int(item) + 1), 1_000_000 + 100 * u + t)
        for u in range(1, num_users + 1)
        for t, item in enumerate(rng.choice(num_items, size=per_user, replace=False))
    ]
    interactions = pd.DataFrame(rows, columns=[USER_ID, ITEM_ID, TIMESTAMP])
    interactions[TIMESTAMP] = interactions[TIMESTAMP].astype(np.int64)
    genres = ["Drama", "Comedy|Drama", "Action|Sci-Fi"]
    items = pd.DataFrame(
        {
            ITEM_ID: [str(i) for i in range(1, num_items + 1)],
            "title": [f"Movie {i}" for i in range(1, num_items + 1)],
            "year": ["1995"] * num_items,
            "genres": [genres[i % 3] for i in range(num_items)],
        }
    )
    users = pd.DataFrame(
        {
            USER_ID: [str(u) for u in range(1, num_users + 1)],
            "age": [str(20 + u % 5) for u in range(1, num_users + 1)],
            "gender": ["M" if u % 2 else "F" for u in range(1, num_users + 1)],
            "occupation": ["engineer" if u % 3 else "artist" for u in range(1, num_users + 1)],
        }
    )
    return RecDataset(
        name="synthetic-load",
        interactions=interactions,
        items=items,
        users=users,
        item_text_fields=("title", "year", "genres"),
        item_categorical_fields=("genres",),
        user_profile_fields=("age", "gender", "occupation"),
    )


def export_model(
    cfg: Any, args: argparse.Namespace, folder: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """Builds (or loads/trains) the model and exports its retrieval SavedModel into ``folder``.

    Returns:
        ``{"source", "dataset", "version_dir", "export_seconds", "catalog_items",
        "candidates"}`` (candidates: the users with a history in the model).

    Raises:
        ConfigError: ``--trained-dir`` holds no model finished with these settings and data.
    """
    import numpy as np

    from tfrec_llm.errors import ConfigError
    from tfrec_llm.experiments import known_histories, load_or_train, prepare, variant_config
    from tfrec_llm.experiments.runs import build_model, seed_everything
    from tfrec_llm.export.exporter import export_retrieval

    vcfg = variant_config(cfg, "bert")
    seed_everything(cfg)
    if args.quick:
        dataset = synthetic_dataset()
        prepared = prepare(cfg, "loo", with_text=False, dataset=dataset)
        text = np.random.default_rng(1).normal(size=(prepared.catalog.num_items, 8))
        prepared = dataclasses.replace(prepared, text_embeddings=text.astype(np.float32))
        model = build_model(cfg, prepared, "bert")
        source = "untrained two-tower (ids + synthetic 8-d text vectors) on a synthetic data set"
    else:
        dataset = common.load_data(cfg, quick=False)
        prepared = prepare(cfg, "loo", dataset=dataset)
        directory = args.trained_dir or common.cached_run_dir(cfg, "loo", "bert", common.data_tag(dataset))
        state = common.run_state(directory, cfg, prepared, "bert")
        if args.trained_dir and state != "finished":
            raise ConfigError(
                f"--trained-dir {directory!r} holds no model finished with these settings and "
                f"data ({state}); pass the --config/--set it was trained with, or leave "
                "--trained-dir out."
            )
        if state == "finished" or args.train:
            log(f"load_or_train {directory} ({state})")
            if_stale = "retrain" if args.train else "error"
            model, info = load_or_train(cfg, prepared, "bert", directory, if_stale=if_stale, verbose=0)
            valid: dict[str, float] = info["valid_metrics"]
            source = (
                f"TwoTower-BERT trained on TRAIN (protocol loo), best epoch "
                f"{info['best_epoch']}, valid ndcg@10 {valid['ndcg@10']:.4f}, from {directory}"
            )
        else:
            model = build_model(cfg, prepared, "bert")
            source = (
                f"TwoTower-BERT with untrained weights ({directory}: {state}; --train trains "
                "it); top-K latency does not depend on the weight values"
            )
    histories = known_histories(prepared)
    start = time.perf_counter()
    version_dir = export_retrieval(vcfg, model, prepared.catalog, histories, folder, version=1)
    known = [str(u) for u in prepared.catalog.user_ids if str(u) in histories]
    return {
        "source": source,
        "dataset": dataset.name,
        "version_dir": version_dir,
        "export_seconds": time.perf_counter() - start,
        "catalog_items": int(prepared.catalog.num_items),
        "candidates": known,
    }


def find_version_dir(export_dir: str) -> str:
    """The newest retrieval version folder of an export, ``retrieval/`` folder or version folder.

    Raises:
        ConfigError: If there is no loadable version folder.
    """
    from tfrec_llm.errors import ConfigError
    from tfrec_llm.serving.local import list_version_folders

    if os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
        return os.path.abspath(export_dir)
    for base in (os.path.join(export_dir, MODEL_NAME), export_dir):
        versions = list_version_folders(base)
        if versions:
            return os.path.abspath(os.path.join(base, str(versions[-1])))
    raise ConfigError(
        f"--export-dir {export_dir!r} holds no retrieval SavedModel: expected "
        f"{export_dir}/{MODEL_NAME}/<version>/saved_model.pb (tfrec-llm export writes it), "
        "<dir>/<version>/saved_model.pb or <dir>/saved_model.pb."
    )


def known_users(serve: Any, candidates: Sequence[str], k: int) -> list[str]:
    """The candidates the model knows: answered without the popularity fallback."""
    import numpy as np
    import tensorflow as tf

    none = tf.zeros([0, 0], tf.string)
    known: list[str] = []
    for start in range(0, len(candidates), 1024):
        batch = list(candidates[start : start + 1024])
        out = serve(
            user_id=tf.constant(batch), recent_item_ids=none, exclude_item_ids=none,
            k=tf.constant(k, tf.int32),
        )  # fmt: skip
        if "used_fallback" not in out:
            return list(candidates)
        known += [u for u, f in zip(batch, np.asarray(out["used_fallback"]), strict=True) if not f]
    return known


def catalog_size(version_dir: str) -> int | None:
    """Items in an export's catalog: rows of its ``candidates`` variable (a tfrec_llm export).

    None when the SavedModel has no such variable (then the report says "?" items).
    """
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError):
        return None
    for name, shape in shapes.items():
        if name.startswith("candidates/") and len(shape) == 2:
            return int(shape[0])
    return None
