"""Reader for any CSV / TSV / Parquet / JSONL interaction log, with optional item/user files.

Every reader in ``tfrec_llm.data.readers`` works in three steps:

1. load each file as a table of strings (`table.RawTable`), remembering each row's line number
   (text files) or 1-based row number (Parquet); lines with the wrong number of fields are
   ``malformed_row`` (`delimited`, `jsonl`, `parquet`);
2. check and convert the canonical columns (`canonical.build_dataset`): empty ids, unparsable
   timestamps and ratings, duplicate item/user rows, interactions naming unknown items;
3. with ``strict=True`` raise :class:`~tfrec_llm.errors.DataError` at the first problem of a file
   (naming file, line/row and column); with ``strict=False`` drop the offending rows, count them
   per reason in ``RecDataset.report`` and log one warning (`issues.IssueLog`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from tfrec_llm.data.readers.canonical import build_dataset
from tfrec_llm.data.readers.delimited import read_csv_table
from tfrec_llm.data.readers.issues import IssueLog
from tfrec_llm.data.readers.jsonl import read_jsonl_table
from tfrec_llm.data.readers.parquet import read_parquet_table
from tfrec_llm.data.readers.table import RawTable, apply_mapping
from tfrec_llm.data.schema import RecDataset
from tfrec_llm.errors import DataError

logger = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "parquet", "jsonl")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def format_of(path: str | os.PathLike[str], default: str | None = None) -> str:
    """The format of a file from its extension, else ``default``.

    Raises:
        DataError: If the extension is unknown and there is no ``default``.
    """
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix in _EXTENSIONS:
        if default not in (None, _EXTENSIONS[suffix]):
            logger.warning(
                "%s: reading it as %s, from its extension, although the default format "
                "(data.source) is %s; rename the file to read it as %s",
                os.fspath(path),
                _EXTENSIONS[suffix],
                default,
                default,
            )
        return _EXTENSIONS[suffix]
    if default is None:
        raise DataError(
            f"cannot tell the format of {os.fspath(path)} from its extension {suffix!r}; pass "
            f"file_format= one of {FORMATS} (known extensions: {sorted(_EXTENSIONS)})."
        )
    return default


def load_table(
    path: str | os.PathLike[str],
    file_format: str,
    log: IssueLog,
    encoding: str,
    default_format: str | None = None,
) -> RawTable:
    """Loads one file of any supported format (``"auto"``: `format_of` the file)."""
    path = os.fspath(path)
    if file_format == "auto":
        file_format = format_of(path, default_format)
    if file_format not in FORMATS:
        raise DataError(f"file_format={file_format!r} is not supported; use 'auto' or one of {FORMATS}.")
    if not os.path.isfile(path):
        raise DataError(f"file not found: {path}.")
    if file_format == "parquet":
        return read_parquet_table(path)
    if file_format == "jsonl":
        return read_jsonl_table(path, log, encoding)
    return read_csv_table(path, "," if file_format == "csv" else "\t", log, encoding)


def read_tabular(
    interactions_path: str | os.PathLike[str],
    items_path: str | os.PathLike[str] | None = None,
    users_path: str | os.PathLike[str] | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    item_text_fields: Sequence[str] = (),
    item_categorical_fields: Sequence[str] = (),
    user_profile_fields: Sequence[str] = (),
    user_text_field: str | None = None,
    file_format: str = "auto",
    default_format: str | None = None,
    timestamp_unit: str = "s",
    strict: bool = True,
    name: str = "custom",
    encoding: str = "utf-8",
) -> RecDataset:
    """Reads an interaction log (and optional item/user files) in CSV, TSV, Parquet or JSONL.

    Args:
        interactions_path: File with user, item and timestamp columns (optional rating, event,
            scenario).
        items_path: File with one row per item (``item_id`` + fields). ``None``: the catalog is
            the interacted items, with empty text fields (counted as ``empty_text`` when
            ``item_text_fields`` are given).
        users_path: File with one row per user. ``None``: users frame holds only ids.
        columns: Canonical name -> column name in the files, e.g. ``{"item_id": "movieId"}``;
            applied to every file that has the source column.
        item_text_fields: Canonical item columns holding text.
        item_categorical_fields: Canonical item columns that are categorical (``"|"``-joined
            when multi-valued).
        user_profile_fields: Canonical user columns usable as features.
        user_text_field: Canonical user column with free text.
        file_format: ``"auto"`` (from each file's extension, so a JSONL log may come with a
            CSV items file) or one of ``FORMATS`` (every file).
        default_format: With ``"auto"``, the format of a file whose extension is not one of
            ``.csv .tsv .parquet .pq .jsonl .ndjson`` (None: such a file is an error).
        timestamp_unit: Unit of numeric timestamps (``"s"``, ``"ms"``, ``"us"``, ``"ns"``);
            ISO-8601 strings (UTC when they carry no offset) are accepted too. Stored as int64
            unix seconds (floored).
        strict: ``True`` raises at the first problem; ``False`` drops and counts bad rows.
        name: ``RecDataset.name``.
        encoding: Text encoding of CSV/TSV/JSONL files.

    Returns:
        The canonical data set; ``report`` lists what was dropped or noticed.

    Raises:
        DataError: Naming the file, line (text) or 1-based row (Parquet) and column: missing
            required column, column in ``columns`` that no file has, malformed row, empty id,
            unparsable timestamp or rating, duplicate item/user row, unknown item id (the last
            five only when ``strict=True``).

    Example:
        >>> ds = read_tabular("ratings.csv", "movies.csv",
        ...                   columns={"user_id": "userId", "item_id": "movieId"},
        ...                   item_text_fields=("title",))  # doctest: +SKIP
    """
    log = IssueLog(strict)
    if default_format is not None and default_format not in FORMATS:
        raise DataError(f"default_format={default_format!r} is not supported; use one of {FORMATS}.")

    def load(path: str | os.PathLike[str]) -> RawTable:
        return load_table(path, file_format, log, encoding, default_format)

    inter = load(interactions_path)
    items = None if items_path is None else load(items_path)
    users = None if users_path is None else load(users_path)
    mapping = dict(columns or {})
    apply_mapping({"interactions": inter, "items": items, "users": users}, mapping)
    return build_dataset(
        name,
        inter,
        items,
        users,
        log=log,
        mapping=mapping,
        item_text_fields=item_text_fields,
        item_categorical_fields=item_categorical_fields,
        user_profile_fields=user_profile_fields,
        user_text_field=user_text_field,
        timestamp_unit=timestamp_unit,
    )
