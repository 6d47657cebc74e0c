"""The whole tree passes ruff (lint + format, settings in ruff.toml) and keeps modules small."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint_is_clean():
    out = _ruff("check", "--no-cache", ".")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_ruff_format_is_applied():
    out = _ruff("format", "--no-cache", "--check", ".")
    assert out.returncode == 0, "run: ruff format .\n" + out.stdout[-4000:] + out.stderr[-2000:]


def _too_long(folder: str, limit: int) -> list[str]:
    return [
        f"{path.relative_to(REPO)} ({n} lines)"
        for path in sorted((REPO / folder).rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > limit
    ]


def test_no_library_module_over_400_lines():
    assert not _too_long("tfrec_llm", 400), "split by concept (docs/style.md)"


def test_no_benchmark_script_over_500_lines():
    assert not _too_long("benchmarks", 500)
