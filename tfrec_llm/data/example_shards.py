"""Training examples as sharded TFRecord files, written chunk by chunk and streamed back.

`ExampleShardWriter` takes interactions (catalog indices, grouped by user in chronological
order) a chunk of whole users at a time, cuts them into the examples of ``tfdata`` (the very
functions ``causal_histories`` and ``next_item_windows``, so streamed and in-memory examples
cannot drift apart) and writes them as ``tf.train.Example`` records, so no more than one chunk
of examples is ever in memory. `streaming_dataset` reads them back with ``list_files`` +
``interleave`` + shuffle + batch + parse + prefetch into exactly the element structure of
``tfdata.make_dataset``. The schema (feature names, dtypes, file naming) is docs/streaming.md.

Example:
    >>> with ExampleShardWriter("shards/", "next_item", history_length=50, num_items=n) as w:
    ...     for users, items in chunks:      # whole users per chunk
    ...         w.add(users, items)
    >>> ds = streaming_dataset("shards/examples-*.tfrecord", batch_size=512, shuffle_buffer=100_000, seed=42)
"""

from __future__ import annotations

import io
import json
import os
import uuid
from typing import Any, cast

import numpy as np
import pandas as pd
import tensorflow as tf

from tfrec_llm.data.catalog import Catalog
from tfrec_llm.data.schema import ITEM_ID, USER_ID
from tfrec_llm.data.tfdata import causal_histories, next_item_windows
from tfrec_llm.data.tfrecord import _atomic_write
from tfrec_llm.errors import DataError

SCHEMA_FORMAT = "tfrec_llm.examples"
SCHEMA_VERSION = 1
SCHEMA_SUFFIX = ".schema.json"
PROBABILITY_SUFFIX = ".item_probability.npy"
OBJECTIVES = ("interaction", "next_item")
DEFAULT_EXAMPLES_PER_SHARD = 100_000
_PADDED = ("history", "sequence")  # stored as catalog index + 1, 0 = padding


def feature_shapes(objective: str, history_length: int) -> dict[str, int]:
    """Feature name -> int64 values per record (docs/streaming.md).

    ``history`` / ``sequence`` hold catalog index + 1 (0 = padding): a protobuf varint of -1
    takes 10 bytes, of 0 one byte.
    """
    if objective == "next_item":
        return {"user": 1, "sequence": history_length + 1}
    if objective == "interaction":
        return {"user": 1, "item": 1, "history": history_length}
    raise DataError(f"example shards: objective={objective!r}; expected one of {OBJECTIVES}")


class _IndexCatalog:
    """Duck-typed `Catalog` whose ids already are catalog indices (for ``next_item_windows``)."""

    def __init__(self, num_items: int) -> None:
        self.num_items = num_items

    def user_index(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(ids, dtype=np.int64)

    def item_index(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(ids, dtype=np.int64)


def chunk_examples(
    users: np.ndarray, items: np.ndarray, objective: str, history_length: int, num_items: int
) -> dict[str, np.ndarray]:
    """The integer examples of one chunk of whole users (no probability columns).

    Args:
        users: [n] user indices, grouped by user, chronological within a user.
        items: [n] catalog indices in the same order.
        objective: ``interaction`` or ``next_item`` (``model.objective``).
        history_length: ``model.history_length``.
        num_items: Catalog size.

    Returns:
        ``user``, ``item``, ``history`` (interaction) or ``user``, ``sequence`` (next_item),
        as ``tfdata.training_examples`` / ``next_item_windows`` build them.
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int32)
    if objective == "interaction":
        return {
            "user": users.astype(np.int32),
            "item": items,
            "history": causal_histories(users, items, history_length),
        }
    frame = pd.DataFrame({USER_ID: users, ITEM_ID: items})
    windows = next_item_windows(frame, cast(Catalog, _IndexCatalog(num_items)), history_length)
    return {"user": windows["user"], "sequence": windows["sequence"]}


class ExampleShardWriter:
    """Writes training examples chunk by chunk into ``<prefix>-NNNNN-of-MMMMM.tfrecord`` files.

    Each shard holds ``examples_per_shard`` consecutive examples (the last fewer). Shards are
    written under temporary names and renamed on `close`, then the item probability table and,
    last, ``<prefix>.schema.json``: a reader needs the schema, so it never sees a partial set.
    Used as a context manager, an exception removes the temporary files.
    """

    def __init__(
        self,
        directory: str,
        objective: str,
        history_length: int,
        num_items: int,
        examples_per_shard: int = DEFAULT_EXAMPLES_PER_SHARD,
        prefix: str = "examples",
    ) -> None:
        """Opens the writer.

        Args:
            directory: Output folder (created if missing).
            objective: ``interaction`` or ``next_item``.
            history_length: Items of history per example (``model.history_length``).
            num_items: Catalog size (length of the probability table).
            examples_per_shard: Examples per file (>= 1).
            prefix: File name prefix.

        Raises:
            DataError: Unknown objective or ``examples_per_shard`` < 1.
        """
        self.shapes = feature_shapes(objective, history_length)
        if examples_per_shard < 1:
            raise DataError(f"example shards: examples_per_shard={examples_per_shard} must be >= 1")
        self.directory, self.prefix = directory, prefix
        self.objective, self.history_length, self.num_items = objective, history_length, num_items
        self.examples_per_shard = examples_per_shard
        self.counts = np.zeros(num_items, np.int64)
        self.num_examples = 0
        self.num_interactions = 0
        self._tmp: list[str] = []
        self._writer: Any = None
        self._in_shard = 0
        self._token = uuid.uuid4().hex
        tf.io.gfile.makedirs(directory)

    def add(self, users: np.ndarray, items: np.ndarray) -> None:
        """Writes the examples of one chunk: whole users, grouped, chronological.

        Raises:
            DataError: An item index outside ``[0, num_items)``.
        """
        items = np.asarray(items)
        if not len(items):
            return
        if items.min() < 0 or items.max() >= self.num_items:
            raise DataError(f"example shards: item indices must lie in [0, {self.num_items})")
        self.counts += np.bincount(items, minlength=self.num_items)
        self.num_interactions += len(items)
        examples = chunk_examples(users, items, self.objective, self.history_length, self.num_items)
        example = tf.train.Example()  # one message, refilled per record
        slots, columns = [], []
        for name, width in self.shapes.items():
            slot = example.features.feature[name].int64_list.value
            slot.extend([0] * width)
            values = examples[name].astype(np.int64).reshape(len(examples["user"]), width)
            columns.append((values + 1 if name in _PADDED else values).tolist())
            slots.append(slot)
        for row in range(len(columns[0])):
            for slot, column in zip(slots, columns):
                slot[:] = column[row]
            self._write(example.SerializeToString())

    def _write(self, record: bytes) -> None:
        if self._writer is None or self._in_shard >= self.examples_per_shard:
            self._close_shard()
            name = f".{self.prefix}-{len(self._tmp):05d}.tmp-{self._token}"
            self._tmp.append(os.path.join(self.directory, name))
            self._writer = tf.io.TFRecordWriter(self._tmp[-1])
            self._in_shard = 0
        self._writer.write(record)
        self._in_shard += 1
        self.num_examples += 1

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> dict[str, Any]:
        """Renames the shards into place, writes the probability table and the schema.

        Returns:
            The schema (as written to ``<prefix>.schema.json``).

        Raises:
            DataError: If no example was written.
        """
        self._close_shard()
        if not self.num_examples:
            self.abort()
            raise DataError(
                "no training examples to write (with model.objective=next_item a user needs at "
                "least 2 TRAIN interactions). Add interactions to the log."
            )
        total = len(self._tmp)
        names = [f"{self.prefix}-{k:05d}-of-{total:05d}.tfrecord" for k in range(total)]
        for tmp, name in zip(self._tmp, names):
            tf.io.gfile.rename(tmp, os.path.join(self.directory, name), overwrite=True)
        self._tmp = []
        probability = (self.counts / self.counts.sum()).astype(np.float32)

        def write_table(tmp: str) -> None:
            buffer = io.BytesIO()
            np.save(buffer, probability)
            with tf.io.gfile.GFile(tmp, "wb") as handle:
                handle.write(buffer.getvalue())

        _atomic_write(os.path.join(self.directory, self.prefix + PROBABILITY_SUFFIX), write_table)
        schema = {
            "format": SCHEMA_FORMAT,
            "version": SCHEMA_VERSION,
            "objective": self.objective,
            "history_length": self.history_length,
            "num_items": self.num_items,
            "num_examples": self.num_examples,
            "num_interactions": self.num_interactions,
            "features": [{"name": n, "dtype": "int64", "shape": [w]} for n, w in self.shapes.items()],
            "item_probability": self.prefix + PROBABILITY_SUFFIX,
            "shards": names,
        }

        def write_schema(tmp: str) -> None:
            with tf.io.gfile.GFile(tmp, "w") as handle:
                handle.write(json.dumps(schema, indent=2))

        _atomic_write(os.path.join(self.directory, self.prefix + SCHEMA_SUFFIX), write_schema)
        return schema

    def abort(self) -> None:
        """Removes the temporary shard files (nothing is left behind)."""
        self._close_shard()
        for tmp in self._tmp:
            if tf.io.gfile.exists(tmp):
                tf.io.gfile.remove(tmp)
        self._tmp = []

    def __enter__(self) -> ExampleShardWriter:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        self.close() if kind is None else self.abort()


def load_example_schema(pattern: str) -> tuple[list[str], dict[str, Any]]:
    """The shard files matching ``pattern`` and the schema beside them, both checked.

    Raises:
        DataError: Nothing matches, no example schema lists the files, a file the schema
            lists is missing, or a matched file is not listed (a stale shard).
    """
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise DataError(
            f"no example shards match {pattern!r}; write them with `tfrec-llm prepare` "
            "(or ExampleShardWriter)."
        )
    directory = os.path.dirname(files[0])
    names = {os.path.basename(f) for f in files}
    for candidate in sorted(tf.io.gfile.glob(os.path.join(directory, "*" + SCHEMA_SUFFIX))):
        with tf.io.gfile.GFile(candidate, "r") as handle:
            schema = json.loads(handle.read())
        listed = list(schema.get("shards", []))
        if schema.get("format") != SCHEMA_FORMAT or not names & set(listed):
            continue
        if schema.get("version") != SCHEMA_VERSION:
            raise DataError(
                f"{candidate}: example schema version {schema.get('version')!r}; this tfrec_llm "
                f"reads version {SCHEMA_VERSION}. Write the shards again with `tfrec-llm prepare`."
            )
        missing = [n for n in listed if not tf.io.gfile.exists(os.path.join(directory, n))]
        stale = sorted(names - set(listed))
        if missing or stale:
            raise DataError(
                f"example shards of {candidate} are incomplete: missing {missing[:5]}, not "
                f"listed {stale[:5]}. Write them again with `tfrec-llm prepare`."
            )
        return [os.path.join(directory, n) for n in listed], schema
    raise DataError(
        f"no {SCHEMA_SUFFIX} of format {SCHEMA_FORMAT!r} beside the shards matching {pattern!r} "
        "lists them; write them with `tfrec-llm prepare`."
    )


def _check_schema(
    files: list[str], schema: dict[str, Any], objective: str | None, history_length: int | None
) -> dict[str, int]:
    """Feature widths of ``schema``, checked against the expected settings and each file's first record."""
    expected = {
        "objective": objective if objective is not None else schema["objective"],
        "history_length": history_length if history_length is not None else schema["history_length"],
    }
    for key, value in expected.items():
        if schema.get(key) != value:
            raise DataError(
                f"example shards were written for {key}={schema.get(key)!r}, but the model needs "
                f"{value!r}. Write them again with `tfrec-llm prepare` for this config."
            )
    shapes = {f["name"]: int(f["shape"][0]) for f in schema["features"]}
    if shapes != feature_shapes(schema["objective"], schema["history_length"]):
        raise DataError(f"example schema lists features {shapes}, not those of docs/streaming.md")
    for path in files:
        for record in tf.data.TFRecordDataset(path).take(1).as_numpy_iterator():
            feature = tf.train.Example.FromString(record).features.feature
            found = {name: len(feature[name].int64_list.value) for name in feature}
            if found != shapes:
                raise DataError(
                    f"{path} holds records with features {found}, but its schema says {shapes}. "
                    "Write the shards again with `tfrec-llm prepare`."
                )
    return shapes


def streaming_dataset(
    pattern: str,
    batch_size: int,
    shuffle_buffer: int = 100_000,
    seed: int | None = None,
    shuffle: bool = True,
    *,
    objective: str | None = None,
    history_length: int | None = None,
    cycle_length: int = 8,
) -> tf.data.Dataset:
    """Streams example shards as the batches of ``tfdata.make_dataset``.

    Files are listed (shuffled per epoch with ``seed``), read ``cycle_length`` at a time with
    ``interleave(num_parallel_calls=AUTOTUNE)`` (deterministic when ``seed`` is given or
    ``shuffle`` is off), shuffled in a ``shuffle_buffer`` of records, batched (the last
    partial batch dropped as ``make_dataset`` does), parsed and prefetched. With one shard
    (or ``cycle_length=1`` and ``shuffle=False``) the order is exactly ``make_dataset``'s.

    Args:
        pattern: Glob of the shard files, e.g. ``"dir/examples-*.tfrecord"``.
        batch_size: Examples per batch.
        shuffle_buffer: Records in the shuffle buffer (capped at the number of examples).
        seed: Seed of the file order and the shuffle.
        shuffle: Shuffle files and records (False: file order, for evaluation and tests).
        objective: Expected ``model.objective`` (None: whatever the schema says).
        history_length: Expected ``model.history_length`` (None: the schema's).
        cycle_length: Files read at once.

    Returns:
        ``tf.data.Dataset`` of dicts: ``user`` [b] int32, ``item`` [b] int32, ``history`` [b, L]
        int32, ``item_probability`` [b] float32 (interaction); ``user`` [b] int32, ``sequence``
        [b, L+1] int32, ``sequence_probability`` [b, L+1] float32 (next_item).

    Raises:
        DataError: Missing or stale shards, or a schema that does not fit (see
            `load_example_schema`).
    """
    files, schema = load_example_schema(pattern)
    shapes = _check_schema(files, schema, objective, history_length)
    with tf.io.gfile.GFile(os.path.join(os.path.dirname(files[0]), schema["item_probability"]), "rb") as f:
        table = tf.constant(np.load(io.BytesIO(f.read())))
    n = int(schema["num_examples"])
    spec = {name: tf.io.FixedLenFeature([width], tf.int64) for name, width in shapes.items()}
    deterministic = seed is not None or not shuffle

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, spec)
        out = {"user": tf.cast(parsed["user"][:, 0], tf.int32)}
        if "sequence" in parsed:
            sequence = tf.cast(parsed["sequence"], tf.int32) - 1
            out["sequence"] = sequence
            weights = tf.gather(table, tf.maximum(sequence, 0))
            out["sequence_probability"] = tf.where(sequence >= 0, weights, tf.zeros_like(weights))
            return out
        out["item"] = tf.cast(parsed["item"][:, 0], tf.int32)
        out["history"] = tf.cast(parsed["history"], tf.int32) - 1
        out["item_probability"] = tf.gather(table, out["item"])
        return out

    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=max(1, min(cycle_length, len(files))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if shuffle:
        ds = ds.shuffle(min(shuffle_buffer, n), seed=seed, reshuffle_each_iteration=True)
    drop = shuffle and n >= batch_size
    ds = ds.batch(batch_size, drop_remainder=drop)
    # The known number of batches: Keras then runs epochs as it does over make_dataset's.
    ds = ds.apply(tf.data.experimental.assert_cardinality(n // batch_size if drop else -(-n // batch_size)))
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return ds.prefetch(tf.data.AUTOTUNE)
