"""Fixtures: a model base path holding the retrieval fixture (tests/conftest.py), and a server over it."""

from __future__ import annotations

import shutil

import pytest

import tfrec_llm  # noqa: F401  (Keras 2 before TensorFlow)


@pytest.fixture()
def model_base(tmp_path, retrieval_templates):
    """A fresh base path holding version 1 only."""
    base = tmp_path / "retrieval"
    base.mkdir()
    shutil.copytree(retrieval_templates[1], base / "1")
    return base


@pytest.fixture()
def server(model_base):
    """A LocalModelServer on free loopback ports over ``model_base`` (poll every 0.2 s)."""
    from tfrec_llm.serving.local import LocalModelServer

    srv = LocalModelServer(
        model_name="retrieval",
        model_base_path=str(model_base),
        port=0,
        rest_port=0,
        poll_interval_s=0.2,
    ).start()
    try:
        yield srv
    finally:
        srv.stop()
