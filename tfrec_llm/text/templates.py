"""Render item (or user) rows into the text a text encoder embeds.

A template is a ``str.format`` string over the frame's columns, e.g.
``"{title} ({year}). Genres: {genres}"``. Multi-valued fields (``"|"``-joined in the canonical
frames) are rendered as ``"Animation, Children's, Comedy"``; missing values as ``""``.

Example:
    >>> frame = pd.DataFrame({"title": ["Toy Story"], "year": ["1995"],
    ...                       "genres": ["Animation|Children's|Comedy"]})
    >>> render_texts(frame, DEFAULT_ITEM_TEMPLATE)
    ["Toy Story (1995). Genres: Animation, Children's, Comedy"]
"""

from __future__ import annotations

import math
import re
import string
from typing import Any

import pandas as pd

from tfrec_llm.errors import ConfigError

DEFAULT_ITEM_TEMPLATE = "{title} ({year}). Genres: {genres}"

_SPACES = re.compile(r" {2,}")


def template_fields(template: str) -> list[str]:
    """Column names a template refers to, in order of first use.

    Args:
        template: A ``str.format`` template with named fields.

    Returns:
        The distinct field names.

    Raises:
        ConfigError: The template is not a str, is malformed, or uses positional, attribute or
            index fields.
    """
    if not isinstance(template, str):
        raise ConfigError(f"template={template!r} is invalid: expected a str.format string.")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ConfigError(f"template={template!r} is malformed: {err}.") from err
    fields: list[str] = []
    for _, field, _, _ in parsed:
        if field is None:
            continue
        if not field or field.isdigit():
            raise ConfigError(
                f"template={template!r} uses a positional field {{{field}}}; name a column "
                "instead, e.g. '{title}'."
            )
        if "." in field or "[" in field:
            raise ConfigError(
                f"template={template!r} uses {{{field}}}; fields are plain column names "
                "(values are rendered as text, without attribute or index access)."
            )
        if field not in fields:
            fields.append(field)
    return fields


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _render_value(value: Any, multi_value_sep: str) -> str:
    """One cell as text: missing -> "", integral floats without ".0", multi-values joined."""
    if _is_missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    if multi_value_sep and multi_value_sep in text:
        parts = [part.strip() for part in text.split(multi_value_sep)]
        text = ", ".join(part for part in parts if part)
    return text


def render_texts(frame: pd.DataFrame, template: str, multi_value_sep: str = "|") -> list[str]:
    """Renders one text per row of ``frame`` with ``template.format_map``.

    Args:
        frame: Rows to render; the template's fields must be columns of it.
        template: ``str.format`` string with named fields, e.g. ``DEFAULT_ITEM_TEMPLATE``.
        multi_value_sep: Separator of multi-valued fields, rendered as ``", "``; "" disables.

    Returns:
        One str per row, in row order, with runs of spaces collapsed and ends stripped.

    Raises:
        ConfigError: The template is malformed or names a column the frame lacks.
    """
    fields = template_fields(template)
    unknown = [field for field in fields if field not in frame.columns]
    if unknown:
        raise ConfigError(
            f"template={template!r} uses unknown field {unknown[0]!r}; the frame's columns "
            f"are {[str(column) for column in frame.columns]}. Use one of them or rename the "
            "column."
        )
    columns = {
        field: [_render_value(value, multi_value_sep) for value in frame[field].tolist()] for field in fields
    }
    texts = []
    for row in range(len(frame)):
        values = {field: columns[field][row] for field in fields}
        texts.append(_SPACES.sub(" ", template.format_map(values)).strip())
    return texts
