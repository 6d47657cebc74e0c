"""Canonical columns, the ``RecDataset`` container and frame validation.

Every reader turns its source into the same three pandas frames (interactions, items, users)
with the column names below; every later stage checks them with :func:`validate_frame`.
All ids are ``str``. "Natural order" of ids is numeric order when every id is a decimal integer
string, else lexicographic order (:func:`sort_ids`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from tfrec_llm.errors import DataError

USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
RATING = "rating"
EVENT = "event"
SCENARIO = "scenario"
MULTI_VALUE_SEP = "|"
#: The scenario of every row of a frame without a ``scenario`` column (one scenario).
DEFAULT_SCENARIO = "default"

#: Columns an interactions frame must have, and the optional ones with their dtype kind.
INTERACTION_REQUIRED = (USER_ID, ITEM_ID, TIMESTAMP)
INTERACTION_OPTIONAL = (RATING, EVENT, SCENARIO)

#: Report reasons for rows a reader dropped (strict=False) or refused (strict=True).
DROP_REASONS = (
    "malformed_row",
    "empty_id",
    "bad_timestamp",
    "bad_rating",
    "unknown_item",
    "duplicate_interaction",
    "duplicate_item",
    "duplicate_user",
)
#: Report reasons that are only counted: the rows are kept.
NOTE_REASONS = ("empty_text", "missing_user_profile")

FrameKind = Literal["interactions", "items", "users"]

_DECIMAL = re.compile(r"[0-9]+")
_MAX_EXAMPLES = 5


@dataclasses.dataclass(frozen=True)
class ValidationReport:
    """What a reader dropped or noticed: counts per reason and up to 5 example messages each.

    Attributes:
        counts: Reason -> number of rows (``DROP_REASONS`` are dropped rows, ``NOTE_REASONS``
            are kept rows, e.g. items with empty text).
        examples: Reason -> up to 5 messages naming file, line/row and column.

    Example:
        >>> report = ValidationReport(counts={"bad_rating": 1},
        ...                           examples={"bad_rating": ("r.csv, line 3, ...",)})
        >>> report.num_dropped
        1
    """

    counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    examples: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_problems(cls, problems: Iterable[tuple[str, int, Sequence[str]]]) -> ValidationReport:
        """Builds a report from ``(reason, count, example_messages)`` triples (merged by reason)."""
        counts: dict[str, int] = {}
        examples: dict[str, list[str]] = {}
        for reason, count, messages in problems:
            if count <= 0:
                continue
            counts[reason] = counts.get(reason, 0) + int(count)
            kept = examples.setdefault(reason, [])
            kept.extend(messages[: _MAX_EXAMPLES - len(kept)])
        return cls(counts=counts, examples={k: tuple(v) for k, v in examples.items()})

    @property
    def num_dropped(self) -> int:
        """Number of rows dropped (all reasons except the note-only ones)."""
        return sum(n for reason, n in self.counts.items() if reason not in NOTE_REASONS)

    def __bool__(self) -> bool:
        return any(n > 0 for n in self.counts.values())

    def summary(self) -> str:
        """A human-readable multi-line summary (``"no problems"`` when empty)."""
        if not self:
            return "no problems"
        dropped = [(r, n) for r, n in self.counts.items() if r not in NOTE_REASONS]
        noted = [(r, n) for r, n in self.counts.items() if r in NOTE_REASONS]
        lines = []
        if dropped:
            parts = ", ".join(f"{r}={n}" for r, n in dropped)
            lines.append(f"dropped {self.num_dropped} rows ({parts})")
        if noted:
            lines.append("kept with notes: " + ", ".join(f"{r}={n}" for r, n in noted))
        for reason, messages in self.examples.items():
            for message in messages:
                lines.append(f"  [{reason}] {message}")
        return "\n".join(lines)


def sort_ids(ids: Iterable[str] | np.ndarray | pd.Series | pd.Index) -> np.ndarray:
    """Unique ids in natural order.

    Natural order is numeric when every id is a decimal integer string (``"2" < "10"``), else
    lexicographic. Ids with equal numeric value (``"01"``, ``"1"``) are ordered lexicographically.

    Args:
        ids: Any iterable of ``str`` ids (duplicates allowed).

    Returns:
        ``[n_unique]`` object array of ``str``.
    """
    if isinstance(ids, (pd.Series, pd.Index)):
        values = ids.unique()
    else:
        values = pd.unique(
            np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=object).ravel()
        )
    uniq = np.sort(np.asarray(values, dtype=object))
    if len(uniq) == 0:
        return uniq
    if all(isinstance(v, str) and _DECIMAL.fullmatch(v) for v in uniq):
        stripped = [v.lstrip("0") for v in uniq]
        order = sorted(range(len(uniq)), key=lambda i: (len(stripped[i]), stripped[i], uniq[i]))
        uniq = uniq[np.asarray(order, dtype=np.int64)]
    return uniq


def id_positions(ids: np.ndarray | pd.Series, ordered_ids: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` in ``ordered_ids`` (``-1`` where absent), as ``int64 [n]``."""
    codes, uniques = pd.factorize(np.asarray(ids, dtype=object) if isinstance(ids, np.ndarray) else ids)
    index = pd.Index(np.asarray(ordered_ids, dtype=object), dtype=object)
    found = index.get_indexer(np.asarray(uniques, dtype=object))
    return np.asarray(np.append(found, -1)[codes], dtype=np.int64)


def _is_str_column(series: pd.Series) -> bool:
    if not pd.api.types.is_string_dtype(series.dtype):
        return False
    return not bool(series.isna().any())


def _fail(source: str, kind: str, message: str) -> DataError:
    return DataError(f"{source}: {kind} frame {message}")


def validate_frame(frame: pd.DataFrame, kind: FrameKind, source: str) -> None:
    """Checks that a frame follows the canonical schema of its kind.

    interactions: ``user_id``/``item_id`` non-empty ``str``, ``timestamp`` ``int64``, optional
    ``rating`` ``float64``, ``event``/``scenario`` ``str``. items: unique non-empty ``item_id``,
    every other column ``str`` without missing values. users: the same with ``user_id``.

    Args:
        frame: The frame to check.
        kind: ``"interactions"``, ``"items"`` or ``"users"``.
        source: Where the frame came from (file or stage name), quoted in every error.

    Raises:
        DataError: Naming the source and the missing or bad column, and the fix.
    """
    if kind not in ("interactions", "items", "users"):
        raise DataError(
            f"validate_frame(kind={kind!r}) for {source}: expected 'interactions', 'items' or 'users'."
        )
    if not isinstance(frame, pd.DataFrame):
        raise _fail(source, kind, f"must be a pandas DataFrame, got {type(frame).__name__}.")
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise _fail(source, kind, f"has duplicate column names: {columns}.")
    if kind == "interactions":
        required: tuple[str, ...] = INTERACTION_REQUIRED
        id_columns: tuple[str, ...] = (USER_ID, ITEM_ID)
    else:
        required = id_columns = (ITEM_ID,) if kind == "items" else (USER_ID,)
    for column in required:
        if column not in frame.columns:
            raise _fail(
                source,
                kind,
                f"is missing required column {column!r}; available columns: {columns}. "
                "Rename the source column (readers take a `columns` mapping).",
            )
    for column in frame.columns:
        series = frame[column]
        if column == TIMESTAMP and kind == "interactions":
            if series.dtype != np.int64:
                raise _fail(
                    source,
                    kind,
                    f"column {column!r} must be int64 unix seconds, got dtype {series.dtype}. "
                    "Convert with .astype('int64').",
                )
        elif column == RATING and kind == "interactions":
            if series.dtype != np.float64:
                raise _fail(
                    source,
                    kind,
                    f"column {column!r} must be float64, got dtype {series.dtype}. "
                    "Convert with .astype('float64').",
                )
        elif (
            column in id_columns or kind != "interactions" or column in INTERACTION_OPTIONAL
        ) and not _is_str_column(series):
            raise _fail(
                source,
                kind,
                f"column {column!r} must hold str values without missing values, got "
                f"dtype {series.dtype}. Convert with .fillna('').astype(str).",
            )
    if SCENARIO in frame.columns and not bool(frame[SCENARIO].map(type).eq(str).all()):
        raise _fail(
            source,
            kind,
            f"column {SCENARIO!r} must hold str values without missing values, got "
            f"{frame[SCENARIO].map(type).ne(str).sum()} others. Convert with .astype(str).",
        )
    for column in (*id_columns, *([SCENARIO] if SCENARIO in frame.columns else [])):
        empty = frame[column].str.len() == 0
        if bool(empty.any()):
            raise _fail(
                source,
                kind,
                f"column {column!r} has {int(empty.sum())} empty "
                f"{'ids' if column in id_columns else 'values'} (first at index "
                f"{frame.index[np.argmax(empty.to_numpy())]!r}). Drop or fill those rows.",
            )
    if kind != "interactions":
        key = id_columns[0]
        dup = frame[key].duplicated()
        if bool(dup.any()):
            first = frame[key][dup].iloc[0]
            raise _fail(
                source,
                kind,
                f"column {key!r} must be unique; {int(dup.sum())} duplicates, e.g. {first!r}. "
                "Drop duplicate rows.",
            )


def scenario_values(frame: pd.DataFrame) -> pd.Series:
    """The scenario of each row: the ``scenario`` column, or `DEFAULT_SCENARIO` when absent.

    Args:
        frame: A canonical interactions or items frame.

    Returns:
        A ``str`` series aligned with ``frame``'s index.
    """
    if SCENARIO in frame.columns:
        return frame[SCENARIO]
    return pd.Series(DEFAULT_SCENARIO, index=frame.index, dtype=object, name=SCENARIO)


def _check_item_scenarios(interactions: pd.DataFrame, items: pd.DataFrame, source: str) -> None:
    """Each interaction's scenario must be its item's when both frames name scenarios."""
    if SCENARIO not in interactions.columns or SCENARIO not in items.columns:
        return
    item_scenario = interactions[ITEM_ID].map(items.set_index(ITEM_ID)[SCENARIO])
    wrong = item_scenario.notna() & (item_scenario != interactions[SCENARIO])
    if bool(wrong.any()):
        row = interactions[wrong].iloc[0]
        raise DataError(
            f"{source}: {int(wrong.sum())} interactions have a scenario that is not their "
            f"item's, e.g. item {row[ITEM_ID]!r} in scenario {row[SCENARIO]!r} (the items frame "
            f"says {item_scenario[wrong].iloc[0]!r}). Give each scenario its own item ids."
        )


@dataclasses.dataclass(frozen=True)
class RecDataset:
    """A recommendation data set in canonical form.

    Attributes:
        name: Short name, e.g. ``"ml-100k"``.
        interactions: ``user_id`` str, ``item_id`` str, ``timestamp`` int64 unix seconds
            [, ``rating`` float64, ``event`` str, ``scenario`` str].
        items: ``item_id`` (unique; the catalog) + text and categorical fields (str, ``""`` if
            missing) [, ``scenario`` str: the scenario whose catalog holds the item]. Every
            interaction item is in it, in the interaction's scenario when both frames have one.
            Without a ``scenario`` column everything is one scenario, `DEFAULT_SCENARIO`.
        users: ``user_id`` (unique) + profile fields (str). Every interaction user is in it.
        item_text_fields: Item columns that hold text, e.g. ``("title", "year", "genres")``.
        item_categorical_fields: Item columns that are categorical; multi-valued ones are
            ``"|"``-joined, e.g. ``("genres",)``.
        user_profile_fields: User columns usable as features, e.g. ``("age", "gender")``.
        user_text_field: User column holding free text, if any.
        report: What the reader dropped or noticed.

    Example:
        >>> ds = RecDataset(
        ...     name="toy",
        ...     interactions=pd.DataFrame({"user_id": ["1"], "item_id": ["7"],
        ...                                "timestamp": np.array([5], dtype=np.int64)}),
        ...     items=pd.DataFrame({"item_id": ["7"]}),
        ...     users=pd.DataFrame({"user_id": ["1"]}),
        ... )
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    item_text_fields: tuple[str, ...] = ()
    item_categorical_fields: tuple[str, ...] = ()
    user_profile_fields: tuple[str, ...] = ()
    user_text_field: str | None = None
    report: ValidationReport = dataclasses.field(default_factory=ValidationReport)

    def __post_init__(self) -> None:
        source = f"RecDataset {self.name!r}"
        validate_frame(self.interactions, "interactions", source)
        validate_frame(self.items, "items", source)
        validate_frame(self.users, "users", source)
        for attr, frame, fields in (
            ("item_text_fields", self.items, self.item_text_fields),
            ("item_categorical_fields", self.items, self.item_categorical_fields),
            ("user_profile_fields", self.users, self.user_profile_fields),
            (
                "user_text_field",
                self.users,
                () if self.user_text_field is None else (self.user_text_field,),
            ),
        ):
            missing = [f for f in fields if f not in frame.columns]
            if missing:
                raise DataError(
                    f"{source}: {attr} names columns {missing} that are not in the frame; "
                    f"available: {[str(c) for c in frame.columns]}."
                )
        for key, frame, kind in ((ITEM_ID, self.items, "items"), (USER_ID, self.users, "users")):
            unknown = ~self.interactions[key].isin(frame[key])
            if bool(unknown.any()):
                example = self.interactions[key][unknown].iloc[0]
                raise DataError(
                    f"{source}: {int(unknown.sum())} interactions have a {key} that is not in "
                    f"the {kind} frame, e.g. {example!r}. Add the missing rows to {kind} "
                    "(empty fields are allowed) or drop those interactions."
                )
        _check_item_scenarios(self.interactions, self.items, source)
