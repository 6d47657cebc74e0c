"""The packages of tfrec_llm import one way only (docs in README "Layout").

Order, lowest first: the top-level helpers (errors, atomic_io, types) -> config -> data, text
-> models -> training, evaluation (siblings) -> export -> serving -> experiments -> tuning -> cli.
A module may import its own package and packages of a lower rank; siblings of the same rank
other than itself may not import each other. Every import counts, function-level ones too.
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tfrec_llm"

RANKS = {
    "": 0,  # tfrec_llm/__init__.py (it loads its public names lazily, by importlib)
    "errors": 0,
    "atomic_io": 0,
    "types": 0,
    "config": 1,
    "data": 2,
    "text": 2,
    "content": 2,
    "models": 3,
    "training": 4,
    "evaluation": 4,
    "export": 5,
    "serving": 6,
    "experiments": 7,
    "tuning": 8,
    "cli": 9,
}


def _unit(module: str) -> str:
    """``tfrec_llm.data.splits`` -> ``data``; ``tfrec_llm`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, imported tfrec_llm module) for every import statement in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "tfrec_llm"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "tfrec_llm":
                if target == "tfrec_llm":  # from tfrec_llm import x: x may be a package
                    out += [(node.lineno, f"tfrec_llm.{a.name}") for a in node.names]
                else:
                    out.append((node.lineno, target))
    return out


def _edges() -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, where) for every import across units."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source_unit = _unit(_module_name(path))
        for line, target in _imports(path):
            target_unit = _unit(target)
            if target_unit != source_unit and not (source_unit == "" and target_unit in RANKS):
                edges.append((source_unit, target_unit, f"{path.relative_to(PACKAGE.parent)}:{line}"))
    return edges


def test_every_unit_has_a_rank():
    units = {_unit(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units <= set(RANKS), f"add {sorted(units - set(RANKS))} to RANKS (and to the README layout)"


def test_imports_follow_the_package_order():
    against = [
        f"{where}: {src or 'tfrec_llm'} (rank {RANKS[src]}) imports {dst} (rank {RANKS[dst]})"
        for src, dst, where in _edges()
        if RANKS.get(dst, 99) >= RANKS[src]
    ]
    assert not against, "imports against the package order:\n" + "\n".join(against)


def test_no_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for src, dst, _ in _edges():
        graph.setdefault(src, set()).add(dst)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(unit for unit in graph if reaches(unit, unit, {unit}))
    assert not cycles, f"packages in an import cycle: {cycles}"


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    path = PACKAGE / "models" / "_probe_for_test.py"
    assert not path.exists()
    try:
        path.write_text("def f():\n    from ..cli import main\n    import tfrec_llm.experiments\n")
        found = [target for _, target in _imports(path)]
        assert found == ["tfrec_llm.cli", "tfrec_llm.experiments"]
    finally:
        path.unlink()
