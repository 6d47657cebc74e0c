"""Tests for tfrec_llm.text.templates: rendering frame rows into encoder text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tfrec_llm.errors import ConfigError
from tfrec_llm.text.templates import DEFAULT_ITEM_TEMPLATE, render_texts, template_fields


def _items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["1", "2", "3"],
            "title": ["Toy Story", "GoldenEye", "Four Rooms"],
            "year": ["1995", "1995", ""],
            "genres": ["Animation|Children's|Comedy", "Action|Adventure|Thriller", "Thriller"],
        }
    )


def test_default_item_template_renders_ml100k_rows():
    assert DEFAULT_ITEM_TEMPLATE == "{title} ({year}). Genres: {genres}"
    assert render_texts(_items(), DEFAULT_ITEM_TEMPLATE) == [
        "Toy Story (1995). Genres: Animation, Children's, Comedy",
        "GoldenEye (1995). Genres: Action, Adventure, Thriller",
        "Four Rooms (). Genres: Thriller",
    ]


def test_missing_values_render_empty_and_spaces_collapse():
    frame = pd.DataFrame({"title": ["Heat", None, np.nan, pd.NA], "tag": ["crime", "x", None, "y"]})
    assert render_texts(frame, "  {title}   {tag} ") == ["Heat crime", "x", "", "y"]


def test_multi_valued_fields_drop_empty_parts_and_trim():
    frame = pd.DataFrame({"genres": ["a| b |", "|", "single"]})
    assert render_texts(frame, "{genres}") == ["a, b", "", "single"]


def test_other_separator_and_disabled_separator():
    frame = pd.DataFrame({"tags": ["x;y", "p|q"]})
    assert render_texts(frame, "{tags}", multi_value_sep=";") == ["x, y", "p|q"]
    assert render_texts(frame, "{tags}", multi_value_sep="") == ["x;y", "p|q"]


def test_numbers_render_without_spurious_decimals():
    frame = pd.DataFrame({"year": [1995.0, np.nan], "score": [4.5, 3.0], "n": [7, 8]})
    assert render_texts(frame, "{year} {score} {n}") == ["1995 4.5 7", "3 8"]


def test_format_specs_conversions_and_escaped_braces_work():
    frame = pd.DataFrame({"title": ["Heat"]})
    assert render_texts(frame, "{{{title!r:_>8}}}") == ["{__'Heat'}"]


def test_render_keeps_row_order_and_handles_an_empty_frame():
    frame = _items().iloc[[2, 0]]
    assert render_texts(frame, "{item_id}") == ["3", "1"]
    assert render_texts(_items().iloc[:0], DEFAULT_ITEM_TEMPLATE) == []


def test_render_does_not_modify_the_frame():
    frame = _items()
    before = frame.copy()
    render_texts(frame, DEFAULT_ITEM_TEMPLATE)
    pd.testing.assert_frame_equal(frame, before)


def test_template_fields_lists_distinct_names_in_order():
    assert template_fields("{b} {a} {b} {{c}}") == ["b", "a"]


def test_unknown_field_names_the_field_and_the_columns():
    with pytest.raises(
        ConfigError,
        match=r"uses unknown field 'plot'; the frame's columns are "
        r"\['item_id', 'title', 'year', 'genres'\]",
    ):
        render_texts(_items(), "{title}: {plot}")


@pytest.mark.parametrize(
    "template,message",
    [
        ("{} ({year})", r"uses a positional field \{\}"),
        ("{0}", r"uses a positional field \{0\}"),
        ("{title.upper}", r"uses \{title\.upper\}; fields are plain column names"),
        ("{genres[0]}", r"uses \{genres\[0\]\}; fields are plain column names"),
        ("{title", r"template='\{title' is malformed"),
        ("title}", r"template='title\}' is malformed"),
        (None, r"template=None is invalid: expected a str\.format string"),
    ],
)
def test_invalid_templates_are_rejected(template, message):
    with pytest.raises(ConfigError, match=message):
        render_texts(_items(), template)
