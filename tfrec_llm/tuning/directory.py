"""The search directory: which search it holds, and the folder of each trial.

``DIR/search.yaml`` records the base config and variant of the search; a restart with another
config is refused instead of mixing two searches in one oracle. Each ``DIR/trial_<id>/`` gets
the trial's ``config.yaml``; training state left there by another config is removed before a
trial trains, so a checkpoint is only ever resumed by the config that wrote it.
"""

from __future__ import annotations

import os
import shutil

from tfrec_llm.atomic_io import write_text
from tfrec_llm.config import ExperimentConfig, dump_config, load_config, replace
from tfrec_llm.errors import ConfigError

SEARCH_CONFIG = "search.yaml"
# Files a training leaves in its model_dir (tfrec_llm.training.trainer).
TRAINING_STATE = ("backup", "logs", "validation.json", "best.weights.h5", "best.tmp.weights.h5")


def _header(variant: str) -> str:
    return f"# tfrec-llm tune: variant {variant}\n"


def check_search_directory(
    search_dir: str, cfg: ExperimentConfig, variant: str, *, overwrite: bool, worker: bool
) -> None:
    """Refuses a restart that does not match the search in ``search_dir``, and unsafe overwrites.

    Everything but ``tune.max_trials`` must match, so a finished search may be extended.

    Raises:
        ConfigError: another config or variant; ``overwrite`` of a folder that holds no
            search (it would be deleted); ``overwrite`` on a distributed worker.
    """
    if overwrite and worker:
        raise ConfigError(
            "overwrite on a worker would delete the chief's search; restart the chief with it instead"
        )
    path = os.path.join(search_dir, SEARCH_CONFIG)
    non_empty = os.path.isdir(search_dir) and bool(os.listdir(search_dir))
    is_search = os.path.exists(path) or os.path.exists(os.path.join(search_dir, "oracle.json"))
    if overwrite and non_empty and not is_search:
        raise ConfigError(
            f"overwrite: {search_dir!r} is not empty and holds no search "
            f"({SEARCH_CONFIG}, oracle.json); "
            "refusing to delete it -- pass a new directory"
        )
    if overwrite or not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        header = f.readline()
    try:
        previous = replace(load_config(path), tune__max_trials=1)
    except ConfigError:
        previous = None
    if header != _header(variant) or previous != replace(cfg, tune__max_trials=1):
        raise ConfigError(
            f"{search_dir!r} holds a search started with another config or variant "
            f"(see {path}); resume it "
            "with that config, start over with overwrite (--overwrite), or use another directory"
        )


def write_search_config(search_dir: str, cfg: ExperimentConfig, variant: str) -> None:
    """Writes ``DIR/search.yaml``: the variant as a comment, then the config."""
    write_text(os.path.join(search_dir, SEARCH_CONFIG), _header(variant) + dump_config(cfg))


def claim_model_dir(model_dir: str, cfg: ExperimentConfig) -> None:
    """Writes the trial's ``config.yaml``; drops training state left there by another config.

    A trial folder may hold a checkpoint of the same trial killed mid-way (kept: training
    resumes from it) or, after a kill before KerasTuner saved the trial, one of other values
    under the same trial id (removed: it cannot be restored into this model).
    """
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, "config.yaml")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            same = f.read() == dump_config(cfg)
        if not same:
            for name in os.listdir(model_dir):
                if name in TRAINING_STATE or name.startswith("execution_"):
                    target = os.path.join(model_dir, name)
                    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    dump_config(cfg, path)
