"""``tfrec-llm benchmark NAME``: the benchmark scripts of a checkout (`BENCHMARKS` lists them).

The benchmarks live in ``benchmarks/*.py`` next to the package in a source checkout (they are
scripts with tables and charts, not library code, so they are not installed with the package).
Building the parser does not touch them: a script is loaded only when its command runs, and
then declares its own options, so ``tfrec-llm benchmark quality --help`` and
``python benchmarks/quality.py --help`` agree.

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

from tfrec_llm.cli.options import setup_logging
from tfrec_llm.errors import ConfigError

__all__ = [
    "BENCHMARKS",
    "add_subcommands",
    "benchmark_parser",
    "benchmarks_dir",
    "load_benchmark",
]

BENCHMARKS = {
    "quality": "protocols A/B/C on MovieLens-100K: Random, MostPop, ItemKNN, EASE, ALS, BPR and "
    "the two-tower variants; writes quality.json, quality.md and quality.png",
    "speed": "text encoding, two-tower training and exported top-K latency, as interleaved "
    "medians and ratios; writes speed.json and speed.md",
    "serving_load": "load test of the exported retrieval model in the local TF Serving-compatible "
    "server over gRPC/REST vs in process; writes serving_load.json and serving_load.md",
    "seeds": "one config trained with several seeds: the spread of VALID/TEST NDCG@10; writes "
    "seeds_<protocol>_<date>.json/.md",
    "encoder_speed": "item-text encoding (encode_texts vs a plain TFBertModel loop vs the fp32 "
    "matmul ceiling), wall and CPU seconds; writes encoder_speed.json/.md",
    "ann": "ANN index (faiss) vs exact search: recall@10, latency, build seconds and size at "
    "100k-5M random items; writes ann.json/.md",
    "cold_items_adaptors": "protocol B with the text adaptors (whitening, MoE, alignment) beside "
    "the content peers; writes cold_items_adaptors.json/.md",
    "cold_items_transfer": "protocol B with new items scored through their text neighbours' item-item "
    "rows, the setting chosen on cold-items-select; writes cold_items_transfer.json/.md",
    "cold_users_text": "protocol C with each kind of cold-user evidence (profile, first items, "
    "their titles as text); writes cold_users_text.json/.md",
    "cold_users_prior": "protocol C with the popularity prior (model.popularity_prior), beta "
    "chosen on VALID; writes cold_users_prior.json/.md",
    "cold_users_future": "protocol C with model.future_window (targets from the next N items) vs "
    "the next item, paired per seed, and protocol A's cost; writes cold_users_future.json/.md",
    "lora": "frozen vs LoRA rank 4/8 vs top-1 fine-tuning of the text tower, seconds per epoch "
    "and protocols A/B; writes lora.json/.md",
    "two_stage_seeds": "the main command's two-stage pipeline vs retrieval alone per retrieval "
    "seed, with and without the item-item term; writes two_stage_seeds.json/.md",
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


def benchmark_parser(name: str, folder: Path | None = None) -> argparse.ArgumentParser:
    """The parser of one benchmark script: ``tfrec-llm benchmark NAME`` plus the script's options.

    Raises:
        ConfigError: If the script is unknown, missing or fails to load.
    """
    try:
        module = load_benchmark(name, folder)
    except ConfigError:
        raise
    except Exception as err:
        raise ConfigError(f"could not load benchmarks/{name}.py: {err!r}") from err
    parser = argparse.ArgumentParser(prog=f"tfrec-llm benchmark {name}", description=BENCHMARKS[name])
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)"
    )
    module.add_arguments(parser)
    parser.set_defaults(benchmark=name, run=module.run)
    return parser


def _run(args: argparse.Namespace) -> int:
    script_args = benchmark_parser(args.benchmark).parse_args(args.script_args)
    if script_args.verbose:  # the script's own -v, parsed only now
        setup_logging(script_args.verbose)
    return int(script_args.run(script_args, list(args.script_args)) or 0)


def add_subcommands(subparsers: Any) -> None:
    """Registers ``benchmark NAME [OPTIONS...]`` on an argparse subparsers object.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers()``.
    """
    parser = subparsers.add_parser(
        "benchmark",
        help="run a benchmark of a source checkout (benchmarks/*.py): " + ", ".join(BENCHMARKS),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, help_text in BENCHMARKS.items():
        p = which.add_parser(
            name,
            help=help_text,
            description=help_text + f". Options: tfrec-llm benchmark {name} --help.",
            add_help=False,
            prefix_chars="\0",  # no options here: REMAINDER alone drops a leading --option
        )
        p.add_argument(
            "script_args",
            nargs=argparse.REMAINDER,
            help="the script's own options (loaded when the command runs)",
        )
        p.set_defaults(handler=_run, verbose=0)
