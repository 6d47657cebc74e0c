"""Fixtures: the retrieval fixture SavedModel (see retrieval_fixture.py) and a server over it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

import tfrec_llm  # noqa: F401  (Keras 2 before TensorFlow)


def _load_retrieval_fixture():
    """Imports retrieval_fixture.py by path (pytest runs with --import-mode=importlib)."""
    if "retrieval_fixture" in sys.modules:
        return sys.modules["retrieval_fixture"]
    spec = importlib.util.spec_from_file_location(
        "retrieval_fixture", Path(__file__).with_name("retrieval_fixture.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["retrieval_fixture"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def retrieval_fixture():
    """The retrieval_fixture module: constants, reference_recommend, publish_version."""
    return _load_retrieval_fixture()


@pytest.fixture(scope="session")
def retrieval_templates(tmp_path_factory, retrieval_fixture):
    """{1: path, 2: path}: fixture SavedModels for versions 1 and 2, saved once per session."""
    root = tmp_path_factory.getbasetemp() / "retrieval_templates"
    paths = {v: str(root / str(v)) for v in (1, 2)}
    for version, path in paths.items():
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            retrieval_fixture.save_retrieval_fixture(path, version)
    return paths


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
