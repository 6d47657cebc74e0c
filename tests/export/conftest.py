"""Fixtures for export tests: the SavedModel of tests/serving/retrieval_fixture.py."""

from __future__ import annotations

import pytest

import tfrec_llm  # noqa: F401  (Keras 2 before TensorFlow)


@pytest.fixture(scope="session")
def retrieval_v1(retrieval_templates):
    """Path of the version-1 fixture SavedModel (shared with tests/serving when both run)."""
    return retrieval_templates[1]
