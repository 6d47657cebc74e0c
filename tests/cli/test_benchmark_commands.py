"""Tests of tfrec_llm.cli.benchmark_commands: lazy script loading, option parsing and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tfrec_llm  # noqa: F401
from tfrec_llm.cli import benchmark_commands
from tfrec_llm.cli.benchmark_commands import BENCHMARKS, benchmark_parser, benchmarks_dir, load_benchmark
from tfrec_llm.cli.main import build_parser, main
from tfrec_llm.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
PREFIX = "tfrec_llm_benchmark_"


@pytest.fixture
def restore_imports() -> Iterator[None]:
    """Undoes what loading scripts from a temporary folder does to sys.path and sys.modules."""
    path = list(sys.path)
    loaded = {name: module for name, module in sys.modules.items() if name.startswith(PREFIX)}
    yield
    sys.path[:] = path
    for name in [n for n in sys.modules if n.startswith(PREFIX)]:
        del sys.modules[name]
    sys.modules.update(loaded)


def test_benchmarks_dir_is_the_checkout_folder() -> None:
    assert benchmarks_dir() == REPO / "benchmarks"


def test_quality_options_parse_with_defaults_and_overrides() -> None:
    parser = benchmark_parser("quality")
    assert parser.prog == "tfrec-llm benchmark quality"
    args = parser.parse_args([])
    assert args.benchmark == "quality" and callable(args.run)
    assert args.protocols == ["loo", "cold-items", "cold-users"]
    assert args.variants == ["id", "text", "bert", "sasrec", "mean"]
    assert args.encoders == ["mean", "cnn", "gru", "lstm", "attention"]
    assert args.peers == ["ItemKNN", "EASE", "ALS", "BPR"]
    assert (args.out, args.model_dir, args.quick, args.refit, args.verbose) == (
        "benchmarks/results",
        "runs/bench",
        False,
        False,
        0,
    )
    args = parser.parse_args(
        [
            "--quick",
            "--protocols",
            "loo",
            "--variants",
            "id,bert",
            "--encoders",
            "none",
            "--set",
            "train.epochs=2",
            "--out",
            "o",
            "--model-dir",
            "m",
            "-v",
        ]
    )
    assert (args.quick, args.protocols, args.variants, args.encoders, args.overrides) == (
        True,
        ["loo"],
        ["id", "bert"],
        [],
        ["train.epochs=2"],
    )
    assert (args.out, args.model_dir, args.verbose) == ("o", "m", 1)


def test_speed_options_parse() -> None:
    args = benchmark_parser("speed").parse_args(["--quick", "--rounds", "4"])
    assert (args.benchmark, args.quick, args.rounds, args.encode_batch_size) == ("speed", True, 4, 128)


def test_serving_load_options_parse() -> None:
    args = benchmark_parser("serving_load").parse_args(["--clients", "threads", "--concurrency", "2,8"])
    assert (args.benchmark, args.clients, args.concurrency) == ("serving_load", "threads", "2,8")
    assert (args.k, args.batch_size, args.server_workers, args.seconds) == (10, 256, 32, None)


def test_unknown_protocol_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        benchmark_parser("quality").parse_args(["--protocols", "loo,bogus"])
    err = capsys.readouterr().err
    assert "unknown value(s) ['bogus']" in err and err.startswith("usage: tfrec-llm benchmark quality")


def test_main_parser_hands_every_later_string_to_the_script() -> None:
    args = build_parser().parse_args(["benchmark", "speed", "--quick"])
    assert (args.command, args.benchmark, args.script_args, args.verbose) == (
        "benchmark",
        "speed",
        ["--quick"],
        0,
    )
    args = build_parser().parse_args(["benchmark", "quality", "--help"])
    assert args.script_args == ["--help"]  # the script's help, not the main parser's
    assert build_parser().parse_args(["benchmark", "serving_load"]).script_args == []


def test_the_command_runs_the_script_with_its_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_imports: None
) -> None:
    (tmp_path / "speed.py").write_text(
        "def add_arguments(parser):\n"
        "    parser.add_argument('--rounds', type=int, default=1)\n"
        "def run(args, argv):\n"
        "    return 3 if (args.rounds, argv) == (4, ['--rounds', '4']) else 1\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(benchmark_commands, "benchmarks_dir", lambda: tmp_path)
    args = build_parser().parse_args(["benchmark", "speed", "--rounds", "4"])
    assert args.handler(args) == 3


def test_load_benchmark_rejects_an_unknown_name() -> None:
    with pytest.raises(
        ConfigError,
        match=r"benchmark 'nope' is unknown; expected one of \['ann', 'cold_items_adaptors', "
        r"'cold_items_transfer', 'cold_users_future', 'cold_users_prior', 'cold_users_text', 'encoder_speed', "
        r"'lora', 'quality', 'seeds', "
        r"'serving_load', 'speed', 'two_stage_seeds'\]",
    ):
        load_benchmark("nope")
    with pytest.raises(ConfigError, match=r"benchmark 'nope' is unknown"):
        benchmark_parser("nope")


def test_a_missing_checkout_is_explained(tmp_path: Path) -> None:
    reason = r"quality.py, which does not exist: the benchmarks ship with the source checkout"
    with pytest.raises(ConfigError, match=reason):
        load_benchmark("quality", tmp_path)
    with pytest.raises(ConfigError, match=reason):
        benchmark_parser("quality", tmp_path)


def test_without_scripts_the_command_parses_and_fails_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(benchmark_commands, "benchmarks_dir", lambda: tmp_path)
    args = build_parser().parse_args(["benchmark", "speed", "--quick"])
    with pytest.raises(ConfigError, match=r"speed.py, which does not exist"):
        args.handler(args)
    assert main(["benchmark", "speed", "--quick"]) == 2
    assert "tfrec-llm benchmark: error: tfrec-llm benchmark speed runs" in capsys.readouterr().err


def test_a_broken_script_is_a_config_error_and_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_imports: None
) -> None:
    (tmp_path / "quality.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"could not load benchmarks/quality.py: RuntimeError\('boom'\)"):
        benchmark_parser("quality", tmp_path)
    assert f"{PREFIX}quality" not in sys.modules
    monkeypatch.setattr(benchmark_commands, "benchmarks_dir", lambda: tmp_path)
    args = build_parser().parse_args(["benchmark", "quality"])  # the parser is not affected
    with pytest.raises(ConfigError, match=r"could not load benchmarks/quality.py"):
        args.handler(args)
    real = load_benchmark("quality", REPO / "benchmarks")
    assert real.__file__ == str(REPO / "benchmarks" / "quality.py")


_FRESH_PROCESS = """
import json, sys
before = list(sys.path)
from tfrec_llm.cli.main import build_parser
args = build_parser().parse_args(["benchmark", "quality", "--quick"])
folder = sys.argv[1]
print(json.dumps({
    "script_args": args.script_args,
    "by_name": sorted(m for m in sys.modules if m.startswith("tfrec_llm_benchmark_")),
    "from_folder": sorted(
        name for name, module in list(sys.modules.items())
        if str(getattr(module, "__file__", None) or "").startswith(folder)
    ),
    "path_unchanged": sys.path == before,
}))
"""


def test_building_the_main_parser_imports_no_benchmark_script() -> None:
    # A fresh interpreter: in this one, other tests have loaded the scripts already.
    folder = str(REPO / "benchmarks") + os.sep
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, folder],
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "script_args": ["--quick"],
        "by_name": [],
        "from_folder": [],
        "path_unchanged": True,
    }


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_registered_script_declares_its_options_and_a_run(name: str) -> None:
    parser = benchmark_parser(name)
    args = parser.parse_args([])  # every option has a default
    assert args.benchmark == name and callable(args.run)
    assert args.run.__code__.co_argcount == 2  # run(args, argv), as _run calls it
