"""The standard message of a failed config check: ``<field>=<value>; expected <what>. <fix>``."""

from __future__ import annotations

import math
from typing import Any

Check = tuple[bool, str]
"""``(passed, message shown when it did not)``."""


def check(ok: bool, field: str, value: Any, expected: str, fix: str) -> Check:
    """One check with the standard message ``<field>=<value>; expected <what>. <fix>``."""
    return ok, f"{field}={value!r}; expected {expected}. {fix}"


def at_least(field: str, value: int, low: int, fix: str) -> Check:
    return check(value >= low, field, value, f"an integer >= {low}", fix)


def positive(field: str, value: float, fix: str) -> Check:
    return check(math.isfinite(value) and value > 0, field, value, "> 0 (finite)", fix)
