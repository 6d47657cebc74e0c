"""Helpers of benchmarks/encoder_speed.py and speed_encoding.py's encoder-speed part, no model."""

from __future__ import annotations

import pytest


def _row(name: str, wall: float, cpu: float, padded: int, **extra) -> dict:
    return {
        "contender": name,
        "texts": 100,
        "median_wall_seconds": wall,
        "median_cpu_seconds": cpu,
        "texts_per_second": 100 / wall,
        "texts_per_cpu_second": 100 / cpu,
        "cores_used": cpu / wall,
        "passes": 3,
        "distinct_shapes": 2,
        "padded_tokens": padded,
        "real_tokens": 1000,
        "useful_gflops": 1.0,
        "useful_fraction_of_matmul": 0.5,
        "useful_fraction_of_matmul_cpu": 0.6,
        "first_call_seconds": 2.0,
        "max_abs_diff_vs_plain": 1e-7,
        "rounds": [[wall, cpu]] * 3,
        **extra,
    }


@pytest.fixture(scope="module")
def section(bench) -> dict:
    encoding = bench("speed_encoding")
    return {
        "batch_size": 128,
        # 1e9 FLOPs a text: 800 texts/s need 800 GFLOP/s, 8x a 100 GFLOP/s matmul.
        "matmul": {"n": 2048, "calls_per_round": 3, "gflops_wall": 100.0, "gflops_per_cpu_second": 60.0},
        "mean_tokens": 10.0,
        "max_tokens": 20,
        "useful_flops_per_text": 1e9,
        "tokenize_seconds": 0.05,
        "rows": [
            _row(encoding.FAST, wall=0.5, cpu=0.8, padded=1010),  # 200 texts/s
            _row(encoding.BEFORE, wall=1.0, cpu=1.6, padded=1300),  # 100 texts/s
            _row(encoding.PLAIN, wall=2.0, cpu=3.2, padded=1500),
            _row(encoding.BEFORE_XLA, wall=0.8, cpu=1.28, padded=1300),
        ],
    }


def test_findings_compute_the_gap_the_ratios_and_the_padding(bench, section) -> None:
    lines = bench("encoder_speed").findings(section, cores=2)
    assert "missed by 600 texts/s" in lines[0]  # 800 - 200
    assert "It needs 800 useful GFLOP/s" in lines[0] and "8.0x the fp32 matmul" in lines[0]
    # Ceilings: 100 GFLOP/s / 1 GFLOP = 100 texts/s; 2 cores x 60 per CPU-second = 120.
    assert "ceiling at that matmul rate is 100 texts/s" in lines[0] and "120 with all 2 cores" in lines[0]
    assert "2.00x texts/s, 2.00x texts per CPU-second" in lines[1]
    assert "(+1.0% vs +30.0% over the 1000 real tokens)" in lines[1] and "4.00x texts/s" in lines[1]
    assert "got 1.60 of the 2 cores" in lines[2]
    assert "took 0.05 s (10.0% of encode_texts)" in lines[2]
    assert "1.25x the texts per CPU-second" in lines[3]  # 1.6 / 1.28
    assert "never pays for its compilation" in lines[3]  # XLA 0.8 s > encode_texts 0.5 s


def test_findings_give_the_texts_from_which_xla_pays(bench, section) -> None:
    # Compiling: first call 2.0 s - warm 0.3 s = 1.7 s; saves (0.5 - 0.3) / 100 s a text.
    xla = dict(section["rows"][3], median_wall_seconds=0.3)
    lines = bench("encoder_speed").findings({**section, "rows": [*section["rows"][:3], xla]}, 2)
    assert "from about 850 texts on" in lines[3]


def test_findings_say_reached_when_the_target_is_met(bench, section) -> None:
    fast = dict(section["rows"][0], texts_per_second=812.0)
    lines = bench("encoder_speed").findings({**section, "rows": [fast, *section["rows"][1:]]}, 2)
    assert "Target 800 texts/s: reached." in lines[0]


def test_markdown_has_one_table_row_per_contender(bench, section) -> None:
    report = {
        "machine": {
            "cpu": "CPU",
            "usable_cores": 2,
            "memory_gib": 1.0,
            "os": "Linux",
            "python": "3.11",
            "tensorflow": "2.21.0",
            "load_average": [1.0, 1.0, 1.0],
            "logical_cores": 2,
        },
        "load_end": [2.0, 2.0, 2.0],
        "command": "python benchmarks/encoder_speed.py",
        "date": "2026-11-30 18:00 UTC",
        "seconds": 60.0,
        "encoder_speed": section,
    }
    markdown = bench("encoder_speed").render_markdown(report)
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 4 and table[1].startswith("| encode_texts (fast_encode")
    assert "| 200 | 125 | 3 | 1010 |" in table[1]  # texts/s, texts per CPU-s, passes, padded
    assert "load average (1/5/15 min) at start 1/1/1" in markdown


def test_fast_widths_are_the_plan_of_encode_texts(bench) -> None:
    encoding = bench("speed_encoding")
    # Sorted 3, 3, 9, 10 with at most 2 a pass: [3, 3] and [9, 10] (cost 6 + 20 + 2 * 32) beat
    # [3, 3], [9], [10] (6 + 9 + 10 + 3 * 32) since one pass costs 32 padded tokens.
    assert encoding.fast_widths([10, 3, 9, 3], 2) == [(2, 3), (2, 10)]
