"""Fixtures for export tests: the SavedModel of tests/serving/retrieval_fixture.py."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

import tfrec_llm  # noqa: F401  (Keras 2 before TensorFlow)


def _retrieval_fixture_module():
    if "retrieval_fixture" in sys.modules:
        return sys.modules["retrieval_fixture"]
    path = Path(__file__).resolve().parents[1] / "serving" / "retrieval_fixture.py"
    spec = importlib.util.spec_from_file_location("retrieval_fixture", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["retrieval_fixture"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def retrieval_fixture():
    """The tests/serving/retrieval_fixture.py module (constants, reference, save function)."""
    return _retrieval_fixture_module()


@pytest.fixture(scope="session")
def retrieval_v1(tmp_path_factory, retrieval_fixture):
    """Path of the version-1 fixture SavedModel (shared with tests/serving when both run)."""
    path = tmp_path_factory.getbasetemp() / "retrieval_templates" / "1"
    if not os.path.isfile(path / "saved_model.pb"):
        retrieval_fixture.save_retrieval_fixture(str(path), 1)
    return str(path)
