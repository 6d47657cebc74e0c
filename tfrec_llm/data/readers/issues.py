"""The issue log of a reader call: per-reason counts of dropped or noted rows, with examples.

With ``strict=True`` the first dropping problem of a file is raised as a
:class:`~tfrec_llm.errors.DataError` naming file, line/row and column; with ``strict=False`` the
rows are dropped and counted per reason in ``RecDataset.report``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfrec_llm.data import schema
from tfrec_llm.data.readers.table import LOC, RawTable
from tfrec_llm.errors import DataError

MAX_EXAMPLES = 5
"""Example messages kept per reason in the report."""

LAX_HINT = (
    "fix them, or drop such rows and count them in the report with --set data.strict=false "
    "(config: data.strict: false; Python: strict=False)"
)
"""How to make a reader drop bad rows, in the spelling of the CLI, a config and the API."""


@dataclasses.dataclass
class _Issue:
    reason: str
    path: str
    unit: str
    column_label: str
    locs: np.ndarray
    values: np.ndarray
    template: str

    def message(self, i: int) -> str:
        value = self.values[i]
        text = self.template.replace("{value!r}", repr(value)).replace("{value}", str(value))
        return f"{self.path}, {self.unit} {int(self.locs[i])}{self.column_label}: {text}"


class IssueLog:
    """Collects problems of one reader call; raises the first one per file when strict."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self._issues: list[_Issue] = []
        self._notes: list[tuple[str, int, list[str]]] = []

    def note(self, reason: str, count: int, messages: Sequence[str]) -> None:
        """Records ``count`` kept rows of a note-only ``reason`` with example messages."""
        self._notes.append((reason, count, list(messages[:MAX_EXAMPLES])))

    def add(
        self,
        reason: str,
        table: RawTable,
        column: str | None,
        rows: pd.DataFrame,
        values: Any,
        template: str,
    ) -> None:
        """Records ``rows`` (a slice of ``table.frame``) as problems of kind ``reason``."""
        if len(rows) == 0:
            return
        self._issues.append(
            _Issue(
                reason,
                table.path,
                table.unit,
                table.label(column),
                rows[LOC].to_numpy(dtype=np.int64),
                np.asarray(values, dtype=object),
                template,
            )
        )

    def raise_first(self, path: str) -> None:
        """In strict mode, raises the earliest dropping problem recorded for ``path``."""
        if not self.strict:
            return
        found = [i for i in self._issues if i.path == path and i.reason not in schema.NOTE_REASONS]
        if not found:
            return
        issue, pos = min(
            ((i, int(np.argmin(i.locs))) for i in found),
            key=lambda pair: int(pair[0].locs[pair[1]]),
        )
        total = sum(len(i.locs) for i in found)
        raise DataError(f"{issue.message(pos)}. ({total} problem(s) in this file; {LAX_HINT})")

    def dropped(self, path: str) -> int:
        """Rows of ``path`` recorded so far with a dropping reason (notes not counted)."""
        return sum(
            len(i.locs) for i in self._issues if i.path == path and i.reason not in schema.NOTE_REASONS
        )

    def report(self) -> schema.ValidationReport:
        issues = [
            (i.reason, len(i.locs), [i.message(k) for k in range(min(len(i.locs), MAX_EXAMPLES))])
            for i in self._issues
        ]
        return schema.ValidationReport.from_problems([*issues, *self._notes])
