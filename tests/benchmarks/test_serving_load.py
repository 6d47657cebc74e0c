"""Smoke test of benchmarks/serving_load.py in --quick mode, plus its pure helpers.

The script runs in a subprocess, the way the README runs it: a tiny untrained two-tower on a
synthetic data set, exported, served by LocalModelServer on a free loopback port and loaded by
client threads and client processes for 1 s per level. The test checks that the outputs exist
and parse, never the speed numbers themselves (no wall-clock assertions in tests).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LATENCY_KEYS = ("p50_ms", "p95_ms", "p99_ms")


@pytest.fixture(scope="module")
def report(bench):
    """benchmarks/serving_load_report.py: statistics and the GIL verdict."""
    return bench("serving_load_report")


@pytest.fixture(scope="module")
def script(bench):
    """benchmarks/serving_load.py imported as a module (options, interleaving, --concurrency)."""
    return bench("serving_load")


def test_quick_run_writes_json_and_markdown(tmp_path: Path) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "benchmarks/serving_load.py", "--quick", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"

    report = json.loads((tmp_path / "serving_load.json").read_text(encoding="utf-8"))
    assert report["quick"] is True and report["k"] == 10 and report["batch_size"] == 256
    assert report["machine"]["cpu"] and report["machine"]["usable_cores"] >= 1
    assert report["seconds_per_level"] == 1.0 and report["concurrency"] == [1, 4]
    assert report["rounds"] == 1
    assert report["model"]["known_users"] > 0 and report["model"]["catalog_items"] == 80

    rows = report["grpc"]
    assert [(r["path"], r["clients"], r["concurrency"]) for r in rows] == [
        (path, kind, c)
        for path in ("gRPC", "gRPC+batching")
        for kind in ("threads", "processes")
        for c in (1, 4)
    ]
    for row in [*rows, report["in_process"]]:
        assert row["errors"] == 0, row["first_error"]
        assert row["requests"] >= 1 and row["qps"] > 0 and row["cpu_cores"] >= 0
        p50, p95, p99 = (row[k] for k in LATENCY_KEYS)
        assert 0 < p50 <= p95 <= p99 and all(math.isfinite(v) for v in (p50, p95, p99))
    assert report["in_process"]["path"] == "in-process signature"
    assert set(report["overhead"]) == {
        f"{p}, {k}" for p in ("gRPC", "gRPC+batching") for k in ("threads", "processes")
    }
    assert report["server"]["batching"]["gRPC"] is None
    assert report["server"]["batching"]["gRPC+batching"]["batch_timeout_micros"] == 0  # the default override
    assert report["server"]["batching"]["gRPC+batching"]["max_batch_size"] == 256  # serving/batching.config
    by_target = {(t["target"], t["path"], t["clients"]): t for t in report["targets"]}
    assert len(by_target) == 8
    for (target, path, kind), t in by_target.items():
        first = next(r for r in rows if (r["path"], r["clients"], r["concurrency"]) == (path, kind, 1))
        if target == "overhead":
            assert t["value"] == pytest.approx(first["p50_ms"] / report["in_process"]["p50_ms"])
            assert t["met"] == (t["value"] <= 1.5)
        else:
            last = next(r for r in rows if (r["path"], r["clients"], r["concurrency"]) == (path, kind, 4))
            assert t["value"] == pytest.approx(last["qps"] / first["qps"]) and t["met"] == (t["value"] >= 4)
    assert all(v > 0 for v in report["overhead"].values())
    assert [b["path"] for b in report["batch"]] == ["gRPC", "in-process signature"]
    assert all(b["batch"] == 256 and b["calls"] >= 1 for b in report["batch"])
    assert all(b["users_per_second"] > 0 for b in report["batch"])
    assert report["gil"]["concurrency"] == 4 and report["gil"]["text"]

    markdown = (tmp_path / "serving_load.md").read_text(encoding="utf-8")
    header = "| path | clients | concurrency | requests | errors | QPS | p50 ms | p95 ms | p99 ms |"
    assert header in markdown and "Machine:" in markdown and "cores" in markdown
    assert markdown.count("| gRPC | threads |") == 2 and markdown.count("| gRPC | processes |") == 2
    assert markdown.count("| gRPC+batching | threads |") == 2 and "## Targets (issue 13)" in markdown
    assert "| in-process signature | - | 1 |" in markdown
    assert "| batch of 256 | calls | users/s |" in markdown
    assert header in result.stdout  # the table is printed too


def test_summarize_uses_linear_percentiles(report) -> None:
    # 1..100 ms: linear interpolation at rank q/100 * 99 -> p50 = 50.5, p95 = 95.05, p99 = 99.01.
    stats = report.summarize([float(v) for v in range(100, 0, -1)])
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p95_ms"] == pytest.approx(95.05)
    assert stats["p99_ms"] == pytest.approx(99.01)
    assert stats["mean_ms"] == pytest.approx(50.5)
    assert report.summarize([]) == dict.fromkeys(("p50_ms", "p95_ms", "p99_ms", "mean_ms"))


def test_rows_pool_the_rounds_over_the_wall_time(report) -> None:
    clients = [
        {"latencies_ms": [1.0, 3.0], "errors": 0, "first_error": "", "end": 12.0},
        {"latencies_ms": [2.0], "errors": 1, "first_error": "X: boom", "end": 14.0},
    ]
    first = report.one_round(clients, start_at=10.0, cpu_s=6.0)  # 14 - 10 = 4 s of wall
    assert first["wall_s"] == 4.0 and first["latencies_ms"] == [1.0, 3.0, 2.0]
    second = {"latencies_ms": [5.0], "errors": 0, "first_error": "", "wall_s": 1.0, "cpu_s": 0.0}
    row = report.level_row("gRPC", "threads", 2, [first, second])
    # 4 answers in 4 + 1 = 5 s; 6 CPU seconds over 5 s = 1.2 cores; median of 1, 2, 3, 5 = 2.5.
    assert row["qps"] == pytest.approx(0.8) and row["cpu_cores"] == pytest.approx(1.2)
    assert (row["requests"], row["errors"], row["first_error"]) == (4, 1, "X: boom")
    assert row["rounds"] == 2 and row["p50_ms"] == pytest.approx(2.5)
    batch = report.batch_row("gRPC", 256, [first, second])
    assert batch["calls"] == 4 and batch["users_per_second"] == pytest.approx(256 * 4 / 5)


def test_interleave_rotates_the_starting_contender(script) -> None:
    calls = []

    def contender(name):
        def run(seconds, index):
            calls.append((name, seconds, index))
            return {"name": name}

        return run

    out = script.interleave({n: contender(n) for n in "abc"}, rounds=3, seconds=6.0)
    assert [c[0] for c in calls] == list("abcbcacab")
    assert {c[1] for c in calls} == {2.0}  # 6 s split into 3 rounds
    assert [c[2] for c in calls] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert {n: len(r) for n, r in out.items()} == {"a": 3, "b": 3, "c": 3}


@pytest.mark.parametrize(
    ("threads_qps", "processes_qps", "expected"),
    [(100.0, 200.0, "GIL-bound"), (100.0, 105.0, "within 15%"), (100.0, 50.0, "only 0.50x")],
)
def test_gil_verdict_compares_the_highest_shared_concurrency(
    report, threads_qps, processes_qps, expected
) -> None:
    rows = [
        {"clients": "threads", "concurrency": 1, "qps": 1.0},
        {"clients": "threads", "concurrency": 4, "qps": threads_qps},
        {"clients": "processes", "concurrency": 4, "qps": processes_qps},
    ]
    verdict = report.gil_verdict(rows)
    assert verdict["concurrency"] == 4
    assert verdict["ratio"] == pytest.approx(processes_qps / threads_qps)
    assert expected in verdict["text"]


def test_bad_concurrency_is_rejected(script) -> None:
    from tfrec_llm.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--concurrency '1,x': give comma-separated counts"):
        script._levels("1,x")
    with pytest.raises(ConfigError, match="counts >= 1"):
        script._levels("0")


def test_bad_seconds_are_rejected_before_any_work(script) -> None:
    import argparse

    from tfrec_llm.errors import ConfigError

    parser = argparse.ArgumentParser()
    script.add_arguments(parser)
    with pytest.raises(ConfigError, match=r"--seconds=0.0, --rounds=5, --k=10 and --batch-size="):
        script.run(parser.parse_args(["--seconds", "0"]))


def test_find_version_dir_accepts_the_three_layouts(bench, tmp_path: Path) -> None:
    from tfrec_llm.errors import ConfigError

    model = bench("serving_load_model")
    with pytest.raises(ConfigError, match="holds no retrieval SavedModel"):
        model.find_version_dir(str(tmp_path))
    for version in ("3", "12", "tmp-99"):  # 12 is the newest; tmp-99 is not a version
        (tmp_path / "retrieval" / version).mkdir(parents=True)
        (tmp_path / "retrieval" / version / "saved_model.pb").write_bytes(b"")
    newest = str(tmp_path / "retrieval" / "12")
    assert model.find_version_dir(str(tmp_path)) == newest
    assert model.find_version_dir(str(tmp_path / "retrieval")) == newest
    assert model.find_version_dir(newest) == newest
