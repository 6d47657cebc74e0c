"""Interaction frames as sharded TFRecord files of ``tf.train.Example`` (one per row).

``write_interaction_shards`` writes ``<prefix>-00000-of-00004.tfrecord`` ... and a JSON schema
``<prefix>.schema.json`` beside them; ``read_interaction_shards`` derives the parsing spec from
that schema. Each file is written under a temporary name and renamed when complete, so a
reader never sees half a shard. Column types: ``str`` -> bytes feature, integers -> int64
feature, ``float64`` -> int64 feature holding the IEEE bits (exact round trip; a float feature
would round to float32).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import tensorflow as tf

from tfrec_llm.data.schema import validate_frame
from tfrec_llm.errors import DataError

SCHEMA_SUFFIX = ".schema.json"
SCHEMA_FORMAT = "tfrec_llm.interactions"
SCHEMA_VERSION = 1
_PARSE_TYPES = {"string": tf.string, "int64": tf.int64, "float64": tf.int64}


def _column_kind(name: str, series: pd.Series) -> str:
    if pd.api.types.is_string_dtype(series.dtype):
        return "string"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "int64"
    if series.dtype == np.float64:
        return "float64"
    raise DataError(
        f"write_interaction_shards: column {name!r} has dtype {series.dtype}; supported are str, "
        "integer and float64 columns. Convert or drop it."
    )


def _atomic_write(path: str, write: Callable[[str], None]) -> None:
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
    try:
        write(tmp)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)


def _examples(frame: pd.DataFrame, kinds: dict[str, str], rows: np.ndarray) -> Iterator[bytes]:
    values: dict[str, list[object]] = {}
    for name, kind in kinds.items():
        column = frame[name].to_numpy()[rows]
        if kind == "string":
            values[name] = [str(v).encode("utf-8") for v in column]
        elif kind == "int64":
            values[name] = column.astype(np.int64).tolist()
        else:
            values[name] = column.astype(np.float64).view(np.int64).tolist()
    example = tf.train.Example()  # one message, refilled per row (10x faster than building)
    slots = []
    for name, kind in kinds.items():
        feature = example.features.feature[name]
        slot = feature.bytes_list.value if kind == "string" else feature.int64_list.value
        slot.append(b"" if kind == "string" else 0)
        slots.append((slot, values[name]))
    for i in range(len(rows)):
        for slot, column in slots:
            slot[0] = column[i]
        yield example.SerializeToString()


def write_interaction_shards(
    frame: pd.DataFrame, directory: str, num_shards: int, prefix: str = "interactions"
) -> list[str]:
    """Writes every row as a ``tf.train.Example`` into ``num_shards`` contiguous shards.

    Args:
        frame: Canonical interactions (any extra str/integer/float64 columns are kept,
            e.g. ``tie_key``).
        directory: Output folder (created if missing).
        num_shards: Number of files (>= 1); rows are split into contiguous, near-equal runs,
            so reading the shards in name order restores the row order.
        prefix: File name prefix.

    Returns:
        The shard paths, in order.

    Raises:
        DataError: If the frame is not canonical, a column type is unsupported or
            ``num_shards`` < 1.
    """
    validate_frame(frame, "interactions", "write_interaction_shards")
    if num_shards < 1:
        raise DataError(f"write_interaction_shards: num_shards={num_shards!r} must be >= 1.")
    kinds = {str(name): _column_kind(str(name), frame[name]) for name in frame.columns}
    tf.io.gfile.makedirs(directory)
    paths = []
    for k, rows in enumerate(np.array_split(np.arange(len(frame)), num_shards)):
        path = os.path.join(directory, f"{prefix}-{k:05d}-of-{num_shards:05d}.tfrecord")

        def write(tmp: str, rows: np.ndarray = rows) -> None:
            with tf.io.TFRecordWriter(tmp) as writer:
                for record in _examples(frame, kinds, rows):
                    writer.write(record)

        _atomic_write(path, write)
        paths.append(path)
    schema = {
        "format": SCHEMA_FORMAT,
        "version": SCHEMA_VERSION,
        "num_rows": len(frame),
        "columns": [{"name": n, "dtype": k, "pandas_dtype": str(frame[n].dtype)} for n, k in kinds.items()],
        "shards": [os.path.basename(p) for p in paths],
    }

    def write_schema(tmp: str) -> None:
        with tf.io.gfile.GFile(tmp, "w") as handle:
            handle.write(json.dumps(schema, indent=2))

    _atomic_write(os.path.join(directory, prefix + SCHEMA_SUFFIX), write_schema)
    return paths


def _load_schema(pattern: str) -> tuple[list[str], dict[str, object]]:
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise DataError(f"no TFRecord shards match {pattern!r}.")
    directory = os.path.dirname(files[0])
    names = {os.path.basename(f) for f in files}
    for candidate in sorted(tf.io.gfile.glob(os.path.join(directory, "*" + SCHEMA_SUFFIX))):
        with tf.io.gfile.GFile(candidate, "r") as handle:
            schema = json.loads(handle.read())
        listed = set(schema.get("shards", []))
        if schema.get("format") == SCHEMA_FORMAT and names & listed:
            stale = sorted(names - listed)
            if stale or any(os.path.dirname(f) != directory for f in files):
                raise DataError(
                    f"{pattern!r} matches shards that {candidate} does not list: {stale}. "
                    "Remove stale shards or narrow the pattern."
                )
            return files, schema
    raise DataError(
        f"no {SCHEMA_SUFFIX} file beside the shards matching {pattern!r} lists them; write the "
        "shards with write_interaction_shards()."
    )


def read_interaction_shards(pattern: str, batch_size: int | None = None) -> tf.data.Dataset:
    """Reads shards written by :func:`write_interaction_shards`, in file-name order.

    Args:
        pattern: Glob matching the shard files, e.g. ``"/data/interactions-*.tfrecord"``.
        batch_size: ``None`` yields one dict of scalars per row; an int yields dicts of
            ``[batch]`` tensors (parsed per batch, faster).

    Returns:
        ``tf.data.Dataset`` of ``{column: tf.string | tf.int64 | tf.float64}``, column order as
        written.

    Raises:
        DataError: If nothing matches or no schema file lists the matched shards.
    """
    files, schema = _load_schema(pattern)
    columns = [(c["name"], c["dtype"]) for c in schema["columns"]]  # type: ignore[attr-defined]
    spec = {name: tf.io.FixedLenFeature([], _PARSE_TYPES[kind]) for name, kind in columns}

    def decode(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        parse = tf.io.parse_single_example if batch_size is None else tf.io.parse_example
        parsed = parse(serialized, spec)
        return {
            name: tf.bitcast(parsed[name], tf.float64) if kind == "float64" else parsed[name]
            for name, kind in columns
        }

    dataset = tf.data.TFRecordDataset(files)
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    return dataset.map(decode)


def frame_from_shards(pattern: str) -> pd.DataFrame:
    """Reads shards back into the pandas frame that was written (same columns, dtypes, order)."""
    _, schema = _load_schema(pattern)
    parts: dict[str, list[np.ndarray]] = {}
    for batch in read_interaction_shards(pattern, batch_size=8192).as_numpy_iterator():
        for name, values in batch.items():
            parts.setdefault(name, []).append(values)
    data = {}
    for column in schema["columns"]:  # type: ignore[attr-defined]
        name, kind = column["name"], column["dtype"]
        values = np.concatenate(parts[name]) if name in parts else np.zeros(0, dtype=object)
        if kind == "string":
            data[name] = pd.Series([v.decode("utf-8") for v in values.tolist()], dtype="str")
        else:
            data[name] = pd.Series(values.astype(column["pandas_dtype"]))
    return pd.DataFrame(data)
