"""The ``tf.distribute`` strategy named by ``train.strategy`` (docs/scaling.md).

- ``default``: TensorFlow's default strategy (one device; a GPU if there is one).
- ``mirrored``: ``MirroredStrategy`` over every GPU of this host; on a host without a GPU the
  CPU is split into 2 logical devices, so the replica code path (per-replica batches,
  all-reduce, all-gather) runs and is tested on any machine.
- ``multi_worker``: ``MultiWorkerMirroredStrategy``; the cluster and this process's task come
  from the ``TF_CONFIG`` environment variable.
- ``tpu``: ``TPUStrategy`` over the TPU that ``TPUClusterResolver`` finds (Colab's, or the
  one named by ``TPU_NAME``).

Logical devices and the collective ops of ``multi_worker`` can only be set up before
TensorFlow initialises its devices (the first op run in the process), so call `make_strategy`
at the start of the program: strategies are cached per name, and the trainer's own call then
returns the same one.

Example:
    >>> strategy = make_strategy("mirrored")  # first thing in the process
    >>> strategy.num_replicas_in_sync
    2
"""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from tfrec_llm.config.choices import STRATEGIES
from tfrec_llm.errors import ConfigError, DistributeError

logger = logging.getLogger(__name__)

CPU_REPLICAS = 2
"""Logical CPU devices ``mirrored`` splits a host without a GPU into."""

_STRATEGIES: dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy of ``train.strategy=name``, created once per process.

    Args:
        name: One of ``default``, ``mirrored``, ``multi_worker``, ``tpu``.

    Returns:
        The strategy (the same object on every call with the same name).

    Raises:
        ConfigError: ``name`` is not a strategy.
        DistributeError: The machine cannot give it: no TPU, no ``TF_CONFIG``, or TensorFlow's
            devices were initialised before the logical CPU devices could be made.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"train.strategy={name!r}; expected one of {STRATEGIES}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in _STRATEGIES:
        build = {"mirrored": _mirrored, "multi_worker": _multi_worker, "tpu": _tpu}[name]
        _STRATEGIES[name] = build()
        logger.info("train.strategy=%s: %d replicas", name, _STRATEGIES[name].num_replicas_in_sync)
    return _STRATEGIES[name]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (always, except a non-chief multi-worker task)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type or isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def task_name(strategy: tf.distribute.Strategy) -> str:
    """``<task_type>-<task_id>`` of this process in a multi-worker cluster, else ``local``."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "local"
    return f"{resolver.task_type}-{resolver.task_id}"


def _split_cpu(count: int) -> None:
    """Makes ``count`` logical devices of the (first) physical CPU, or says why it cannot."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) >= count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
        raise DistributeError(
            f"train.strategy='mirrored' on a host without a GPU needs {count} logical CPU devices, "
            "but TensorFlow had already initialised its devices in this process, so call "
            "tfrec_llm.training.distribute.make_strategy('mirrored') before any TensorFlow "
            f"op (the tfrec-llm commands do) or start a fresh process ({error})."
        ) from None


def _mirrored() -> tf.distribute.Strategy:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy()  # every visible GPU
    _split_cpu(CPU_REPLICAS)
    devices = [device.name for device in tf.config.list_logical_devices("CPU")[:CPU_REPLICAS]]
    return tf.distribute.MirroredStrategy(devices)


def _multi_worker() -> tf.distribute.Strategy:
    raw = os.environ.get("TF_CONFIG", "")
    try:
        task = json.loads(raw)["task"] if raw else None
    except (ValueError, KeyError, TypeError):
        task = None
    if task is None:
        raise DistributeError(
            "train.strategy='multi_worker' needs the TF_CONFIG environment variable (JSON with "
            '"cluster": {"worker": ["host:port", ...]} and this process\'s "task": {"type": '
            f'"worker", "index": i}}, docs/scaling.md); got {raw[:200]!r}.'
        )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        raise DistributeError(
            "train.strategy='multi_worker' must be set up before any TensorFlow op runs in the "
            "process, so call tfrec_llm.training.distribute.make_strategy('multi_worker') first "
            f"(the tfrec-llm commands do) ({error})."
        ) from None


def _tpu() -> tf.distribute.Strategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DistributeError(
            f"train.strategy='tpu' found no TPU (TPUClusterResolver: {reason}); on Colab choose "
            "Runtime > Change runtime type > TPU, elsewhere set TPU_NAME, or use "
            "train.strategy=mirrored or default."
        ) from None
    return tf.distribute.TPUStrategy(resolver)
