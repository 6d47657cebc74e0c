"""docs/errors.md stays true: every test it names exists and asserts the message of its row.

Each table row is ``| bad input | message | `tests/x.py::test_name` |``. Every backticked span
of the message column, cut at ``…`` (the varying parts), must appear in the named test's source
(its decorators included, with regex backslashes removed), so rewording a message without its
test, or naming a test that checks something else, fails here.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "errors.md"
_CELL = re.compile(r"(?<!\\)\|")
_TEST = re.compile(r"^`(tests/[\w/]+\.py)::(test_\w+)`$")


def _rows() -> list[tuple[str, str, str, str]]:
    """(section, bad input, message cell, test cell) of every table row of docs/errors.md."""
    rows, section = [], ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        if not line.startswith("|") or set(line) <= {"|", "-", " "}:
            continue
        cells = [c.strip() for c in _CELL.split(line.strip())[1:-1]]
        if cells == ["Bad input", "Message", "Test"]:
            continue
        assert len(cells) == 3, line
        rows.append((section, *cells))
    return rows


def _test_source(path: str, name: str) -> str | None:
    """The source of test ``name`` in ``path`` (decorators included), or None.

    The function's string literals follow the source, each whole (adjacent literals joined, as
    Python joins them), so a message split over two lines is found too.
    """
    file = ROOT / path
    if not file.is_file():
        return None
    text = file.read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            strings = [
                n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            ]
            return "\n".join([*text.splitlines()[start - 1 : node.end_lineno], *strings])
    return None


def test_the_table_has_rows_for_each_section():
    sections = {section for section, *_ in _rows()}
    assert {"Config and command line", "Input data", "Trained models (run folders)"} <= sections
    assert len(_rows()) >= 40


@pytest.mark.parametrize(("section", "bad_input", "message", "test"), _rows(), ids=lambda v: v[:40])
def test_each_row_names_a_test_that_checks_its_message(section, bad_input, message, test):
    match = _TEST.match(test)
    assert match, f"{bad_input!r}: the test cell must be `tests/<file>.py::<test>`, got {test!r}"
    source = _test_source(*match.groups())
    assert source is not None, f"{bad_input!r}: {test} does not exist"
    plain = source.replace("\\", "")
    spans = [s.replace("\\|", "|") for s in re.findall(r"`([^`]+)`", message)]
    assert spans, f"{bad_input!r}: no message in backticks"
    for span in spans:
        for piece in (p.strip() for p in span.split("…")):
            assert not piece or piece in plain, f"{bad_input!r}: {piece!r} is not asserted by {test}"


def test_the_checker_catches_a_missing_test_and_a_reworded_message():
    assert _test_source("tests/test_errors_doc.py", "test_that_does_not_exist") is None
    source = _test_source("tests/cli/test_bad_input.py", "test_a_folder_as_config")
    assert source is not None and "is a directory; expected a YAML file" in source
    assert "is a folder; expected a YAML file" not in source
