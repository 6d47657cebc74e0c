"""Options shared by the ``tfrec-llm`` commands, and the choices derived from the one list of each.

Protocols and variants come from ``tfrec_llm.config.choices``; nothing here repeats them.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from tfrec_llm.config import ExperimentConfig, load_config, replace
from tfrec_llm.config.choices import PROTOCOLS, STRATEGIES, VARIANTS

VARIANT_HELP = (
    "model variant: id (item ids only), text (text + categories, no ids), bert (ids + text + "
    "categories; the config's model), sasrec (attention over item ids only: the SASRec-style "
    "peer), mean (the original mean-pooling two-tower)"
)
PROTOCOL_HELP = "loo (A, warm users) | cold-items (B) | cold-users (C), see docs/evaluation.md"


def add_common(p: argparse.ArgumentParser) -> None:
    """``--config``, ``--set``, ``--model-dir``, ``-v`` and ``--quiet``."""
    p.add_argument(
        "--config",
        default=None,
        help="YAML experiment config (see pipelines/movielens_100k.yaml); "
        "default: built-in MovieLens-100K + MiniLM",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one config field, e.g. --set train.epochs=5 (repeatable)",
    )
    p.add_argument(
        "--model-dir", default=None, help="where models, checkpoints and logs go (default: train.model_dir)"
    )
    add_verbosity(p)
    p.add_argument("--quiet", action="store_true", help="no Keras progress bars")


def add_verbosity(p: argparse.ArgumentParser) -> None:
    """``-v`` / ``-vv``: more logging."""
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")


def add_strategy(p: argparse.ArgumentParser) -> None:
    """``--strategy`` (``train.strategy``; docs/scaling.md)."""
    p.add_argument(
        "--strategy",
        default=None,
        choices=STRATEGIES,
        help="tf.distribute strategy (default: train.strategy): default (one device), mirrored (every "
        "GPU, or 2 logical CPU devices), multi_worker (hosts in TF_CONFIG), tpu; see docs/scaling.md",
    )


def add_variant(p: argparse.ArgumentParser, help_text: str = VARIANT_HELP) -> None:
    """``--variant`` (default ``bert``)."""
    p.add_argument("--variant", default="bert", choices=sorted(VARIANTS), help=help_text)


def add_protocol(p: argparse.ArgumentParser, default_help: str = "eval.protocol") -> None:
    """``--protocol`` (one protocol; default from the config)."""
    p.add_argument(
        "--protocol", default=None, choices=PROTOCOLS, help=f"{PROTOCOL_HELP} (default: {default_help})"
    )


def _names(value: str, known: Sequence[str], what: str) -> list[str]:
    out = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in out if v not in known]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"unknown {what}(s) {bad}; expected {list(known)}")
    return out


def protocol_list(value: str) -> list[str]:
    """Comma-separated protocols (an argparse ``type``)."""
    return _names(value, PROTOCOLS, "protocol")


def variant_list(value: str) -> list[str]:
    """Comma-separated variants (an argparse ``type``)."""
    return _names(value, sorted(VARIANTS), "variant")


def comma_list(value: str) -> list[str]:
    """Comma-separated ids (an argparse ``type``): surrounding spaces dropped, none empty."""
    ids = [part.strip() for part in value.split(",")]
    if not all(ids):
        raise argparse.ArgumentTypeError(f"{value!r}: empty id in the comma-separated list")
    return ids


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The config of ``--config`` with the ``--set`` overrides, ``--model-dir`` and ``--strategy``.

    For a command with ``--strategy`` (the ones that train), a strategy other than ``default``
    is created here, before any TensorFlow op: logical CPU devices and multi-worker collectives
    can only be set up then (`tfrec_llm.training.distribute`).
    """
    cfg = load_config(args.config, args.overrides)
    if getattr(args, "model_dir", None):
        cfg = replace(cfg, train__model_dir=args.model_dir)
    if getattr(args, "strategy", None):
        cfg = replace(cfg, train__strategy=args.strategy)
    if hasattr(args, "strategy") and cfg.train.strategy != "default":
        from tfrec_llm.training.distribute import make_strategy

        make_strategy(cfg.train.strategy)
    return cfg


def keras_verbosity(args: argparse.Namespace) -> int:
    """Keras ``verbose``: 0 with ``--quiet``, else progress bars."""
    return 0 if getattr(args, "quiet", False) else 1


def setup_logging(verbosity: int) -> None:
    """WARNING by default (tfrec_llm's own INFO lines too), INFO with -v, DEBUG with -vv."""
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbosity:  # a second call (a benchmark script's own -v) raises the level again
        logging.getLogger().setLevel(level)
    logging.getLogger("tfrec_llm").setLevel(logging.INFO if verbosity == 0 else level)
