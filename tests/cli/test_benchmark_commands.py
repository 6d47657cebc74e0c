"""Tests of tfrec_llm.cli.benchmark_commands: parsing, script loading and its errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import tfrec_llm  # noqa: F401
from tfrec_llm.cli import benchmark_commands
from tfrec_llm.cli.benchmark_commands import (
    add_subcommands,
    benchmarks_dir,
    load_benchmark,
    main_argv,
)
from tfrec_llm.cli.main import build_parser
from tfrec_llm.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfrec-llm")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_benchmarks_dir_is_the_checkout_folder() -> None:
    assert benchmarks_dir() == REPO / "benchmarks"


def test_quality_options_parse_with_defaults_and_overrides() -> None:
    args = _parser().parse_args(["benchmark", "quality"])
    assert (args.command, args.benchmark) == ("benchmark", "quality")
    assert args.protocols == ["loo", "cold-items", "cold-users"] and args.variants == [
        "id",
        "text",
        "bert",
    ]
    assert args.peers == ["ItemKNN", "EASE", "ALS", "BPR"]
    assert (args.out, args.model_dir, args.quick, args.refit) == (
        "benchmarks/results",
        "runs/bench",
        False,
        False,
    )
    args = _parser().parse_args(
        [
            "benchmark",
            "quality",
            "--quick",
            "--protocols",
            "loo",
            "--variants",
            "id,bert",
            "--set",
            "train.epochs=2",
            "--out",
            "o",
            "--model-dir",
            "m",
        ]
    )
    assert (args.quick, args.protocols, args.variants, args.overrides) == (
        True,
        ["loo"],
        ["id", "bert"],
        ["train.epochs=2"],
    )
    assert callable(args.handler) and (args.out, args.model_dir) == ("o", "m")


def test_speed_options_parse() -> None:
    args = _parser().parse_args(["benchmark", "speed", "--quick", "--rounds", "4"])
    assert (args.benchmark, args.quick, args.rounds, args.encode_batch_size) == (
        "speed",
        True,
        4,
        128,
    )


def test_unknown_protocol_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["benchmark", "quality", "--protocols", "loo,bogus"])
    assert "unknown value(s) ['bogus']" in capsys.readouterr().err


def test_main_parser_lists_the_benchmark_command() -> None:
    args = build_parser().parse_args(["benchmark", "speed"])
    assert args.benchmark == "speed" and args.verbose == 0


def test_load_benchmark_rejects_an_unknown_name() -> None:
    with pytest.raises(
        ConfigError, match=r"benchmark 'nope' is unknown; expected one of \['quality', 'speed'\]"
    ):
        load_benchmark("nope")


def test_load_benchmark_explains_a_missing_checkout(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"quality.py, which does not exist: the benchmarks ship with the source"
    ):
        load_benchmark("quality", tmp_path)


def test_without_scripts_the_command_parses_and_fails_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(benchmark_commands, "benchmarks_dir", lambda: tmp_path)
    args = _parser().parse_args(["benchmark", "speed"])
    with pytest.raises(ConfigError, match=r"speed.py, which does not exist"):
        args.handler(args)


def test_a_broken_script_does_not_break_the_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "quality.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    monkeypatch.setattr(benchmark_commands, "benchmarks_dir", lambda: tmp_path)
    args = _parser().parse_args(["benchmark", "quality"])
    with pytest.raises(
        ConfigError, match=r"could not load benchmarks/quality.py: RuntimeError\('boom'\)"
    ):
        args.handler(args)
    assert load_benchmark("quality", REPO / "benchmarks").__file__ == str(
        REPO / "benchmarks" / "quality.py"
    )


def test_main_argv_keeps_the_options_after_the_benchmark_name() -> None:
    assert main_argv(["tfrec-llm", "benchmark", "quality", "--quick", "--out", "x"]) == [
        "--quick",
        "--out",
        "x",
    ]
    assert main_argv(["tfrec-llm", "train"]) == []
