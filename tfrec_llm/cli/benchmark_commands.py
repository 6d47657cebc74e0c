"""``tfrec-llm benchmark quality | speed``: the benchmark scripts of a source checkout.

The benchmarks live in ``benchmarks/quality.py`` and ``benchmarks/speed.py`` next to the
package in a source checkout (they are scripts with tables and charts, not library code, so
they are not installed with the package). ``tfrec_llm.cli.main.build_parser`` calls
:func:`add_subcommands`, which loads each script and lets it declare its own options, so
``tfrec-llm benchmark quality --help`` and ``python benchmarks/quality.py --help`` agree.

Examples:
    tfrec-llm benchmark quality --out benchmarks/results
    tfrec-llm benchmark speed --quick --out /tmp/speed
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tfrec_llm.errors import ConfigError

__all__ = ["BENCHMARKS", "add_subcommands", "benchmarks_dir", "load_benchmark", "main_argv"]

BENCHMARKS = {
    "quality": "protocols A/B/C on MovieLens-100K: Random, MostPop, ItemKNN, EASE, ALS, BPR and "
    "the two-tower variants; writes quality.json, quality.md and quality.png",
    "speed": "text encoding, two-tower training and exported top-K latency, as interleaved "
    "medians and ratios; writes speed.json and speed.md",
}


def benchmarks_dir() -> Path:
    """The ``benchmarks/`` folder of the checkout this package was imported from.

    Returns:
        The folder (it may not exist for an installed, non-editable package).
    """
    import tfrec_llm

    return Path(tfrec_llm.__file__).resolve().parent.parent / "benchmarks"


def load_benchmark(name: str, folder: Path | None = None) -> ModuleType:
    """Imports ``<folder>/<name>.py`` as a module (the folder joins ``sys.path`` for its helpers).

    Args:
        name: ``quality`` or ``speed``.
        folder: The benchmarks folder; default `benchmarks_dir`.

    Returns:
        The module, exposing ``add_arguments(parser)`` and ``run(args)``.

    Raises:
        ConfigError: If ``name`` is unknown or the script is not there.
    """
    if name not in BENCHMARKS:
        raise ConfigError(f"benchmark {name!r} is unknown; expected one of {sorted(BENCHMARKS)}.")
    folder = benchmarks_dir() if folder is None else folder
    script = folder / f"{name}.py"
    if not script.is_file():
        raise ConfigError(
            f"tfrec-llm benchmark {name} runs {script}, which does not exist: the benchmarks ship "
            "with the source checkout, not with the installed package. Run it from a checkout "
            "(pip install -e .) or call python benchmarks/{name}.py there."
        )
    module_name = f"tfrec_llm_benchmark_{name}"
    loaded = sys.modules.get(module_name)
    if loaded is not None and Path(str(getattr(loaded, "__file__", ""))) == script:
        return loaded
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # the scripts import their sibling helper `machine`
    spec = importlib.util.spec_from_file_location(module_name, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _run(args: argparse.Namespace) -> int:
    module = load_benchmark(args.benchmark)
    return int(module.run(args, main_argv(sys.argv)) or 0)


def _unavailable(message: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        raise ConfigError(message)

    return handler


def add_subcommands(subparsers: Any) -> None:
    """Registers ``benchmark`` with one sub-subcommand per script on an argparse subparsers object.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers()``.
    """
    parser = subparsers.add_parser(
        "benchmark",
        help="run the quality or speed benchmark of a source checkout (benchmarks/*.py)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, help_text in BENCHMARKS.items():
        p = which.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)"
        )
        try:
            module = load_benchmark(name)
        except ConfigError as err:
            p.set_defaults(handler=_unavailable(str(err)))
            continue
        except Exception as err:  # a broken script must not break the other commands
            p.set_defaults(handler=_unavailable(f"could not load benchmarks/{name}.py: {err!r}"))
            continue
        module.add_arguments(p)
        p.set_defaults(handler=_run)


def main_argv(argv: list[str]) -> list[str]:
    """The options after ``benchmark <name>`` in a command line (recorded in the reports)."""
    return list(argv[argv.index("benchmark") + 2 :]) if "benchmark" in argv else []
