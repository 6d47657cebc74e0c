"""Tests for tfrec_llm.atomic_io: a reader sees the old file or the new one, never half of one."""

import json
import os
import stat

import pytest

from tfrec_llm import atomic_io


def test_write_text_creates_folders_and_replaces_the_file(tmp_path):
    path = tmp_path / "a" / "b" / "out.txt"
    atomic_io.write_text(path, "first")
    atomic_io.write_text(path, "second")
    assert path.read_text() == "second"
    assert os.listdir(path.parent) == ["out.txt"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # readable results, not mkstemp's 0600


def test_write_json_and_bytes(tmp_path):
    atomic_io.write_json(tmp_path / "v.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "v.json").read_text()) == {"k": [1, 2]}
    assert (tmp_path / "v.json").read_text().endswith("\n")
    atomic_io.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    atomic_io.write_json(path, {"epoch": 1})
    with pytest.raises(ValueError, match="Out of range float values"):
        atomic_io.write_json(path, {"epoch": float("nan")}, allow_nan=False)
    assert json.loads(path.read_text()) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_atomic_path_keeps_the_file_name_as_suffix_and_publishes_on_success(tmp_path):
    target = tmp_path / "model.weights.h5"
    with atomic_io.atomic_path(target) as tmp:
        assert tmp.endswith("-model.weights.h5") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "wb") as f:
            f.write(b"weights")
        assert not target.exists()  # not visible before the block ends
    assert target.read_bytes() == b"weights"
    assert os.listdir(tmp_path) == ["model.weights.h5"]


def test_atomic_open_rejects_read_modes(tmp_path):
    with pytest.raises(ValueError, match=r"atomic_open mode='r'; expected 'w' or 'wb'"):
        with atomic_io.atomic_open(tmp_path / "x", "r"):
            pass
