"""Fixtures of the benchmark tests: the modules of benchmarks/, imported as the scripts do."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import tfrec_llm  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"


@pytest.fixture(scope="session")
def bench() -> Callable[[str], ModuleType]:
    """``bench("common")``: a module of benchmarks/ by its plain name.

    The folder joins ``sys.path`` the way ``python benchmarks/<script>.py`` and
    ``tfrec_llm.cli.benchmark_commands.load_benchmark`` put it there, so the modules import
    their siblings exactly as they do in a run.
    """
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module
