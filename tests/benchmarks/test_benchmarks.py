"""Smoke tests of benchmarks/quality.py and benchmarks/speed.py in --quick mode, and their helpers.

Each script runs in a subprocess, the way the README runs it, on a small slice of MovieLens-100K;
the tests check that the outputs exist and parse, never the speed or quality numbers themselves
(docs/evaluation.md: no wall-clock assertions in tests).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tfrec_llm  # noqa: F401
from tfrec_llm.evaluation.report import RECORD_KEYS, read_json

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS_DIR = REPO / "benchmarks"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODELS = (
    "Random",
    "MostPop",
    "ItemKNN",
    "EASE",
    "ALS",
    "BPR",
    "MiniLM item-kNN",
    "TF-IDF profile",
    "TwoTower-ID",
    "TwoTower-TextOnly",
    "TwoTower-BERT",
    "SASRec-style (ids)",
    "TwoTower-BERT-MeanPool",
)
TWO_TOWER = MODELS[8:]
PROTOCOLS = ("loo", "cold-items", "cold-users")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model/text-cache folder for both scripts (speed reuses quality's text embeddings)."""
    return tmp_path_factory.mktemp("bench_runs")


def _run_script(script: str, out: Path, runs: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [
            sys.executable,
            f"benchmarks/{script}",
            "--quick",
            "--out",
            str(out),
            "--model-dir",
            str(runs),
        ]
        + (["--quiet"] if script == "quality.py" else [])
        + list(extra),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def test_quality_quick_writes_json_markdown_and_png(tmp_path: Path, runs_dir: Path) -> None:
    result = _run_script("quality.py", tmp_path, runs_dir, "--encoders", "gru")

    raw = json.loads((tmp_path / "quality.json").read_text(encoding="utf-8"))
    assert isinstance(raw, list) and raw
    for record in raw:
        assert set(RECORD_KEYS) | {"users", "eval_seconds", "fit_seconds"} <= set(record)
        assert math.isfinite(record["value"]) and 0.0 <= record["value"] <= 1.0
    assert len(read_json(tmp_path / "quality.json")) == len(raw)  # the evaluate --json format
    cells = {(r["model"], r["protocol"]) for r in raw if r["split"] == "test" and r["metric"] == "ndcg"}
    a_and_c = ("loo", "cold-users")
    gru = "TwoTower-BERT/gru"
    hidden = {(f"{model} (hidden ids)", p) for model in (*TWO_TOWER, gru) for p in a_and_c}
    assert cells == {(m, p) for m in MODELS for p in PROTOCOLS} | {(gru, p) for p in a_and_c} | hidden
    assert {r["k"] for r in raw} == {10, 50}
    _check_encoder_and_hidden_rows(raw)

    markdown = (tmp_path / "quality.md").read_text(encoding="utf-8")
    assert (
        "| model | A ndcg@10 | A recall@10 | B ndcg@10 | B recall@10 | C ndcg@10 | C recall@10 |" in markdown
    )
    assert "|---|" in markdown and "Machine:" in markdown and "cores" in markdown
    assert all(f"| {model} |" in markdown for model in MODELS)
    summary = next(line for line in markdown.splitlines() if line.startswith(f"| {gru} | "))
    cells = summary.split(" | ")  # model, A ndcg, A recall, B ndcg, B recall, C ..., fit s, eval s
    assert cells[3:5] == ["-", "-"] and re.fullmatch(r"\d+\.\d/-/\d+\.\d", cells[7])  # no B row
    assert "## Known vs hidden user ids (TEST NDCG@10)" in markdown
    assert "| model | encoder | A known | A hidden | A hidden vs known | C known | C hidden |" in markdown
    assert f"| {gru} | gru | " in markdown and "| SASRec-style (ids) | attention | " in markdown
    assert (tmp_path / "quality.png").read_bytes()[:8] == PNG_MAGIC
    assert "TwoTower-BERT" in result.stdout


def _check_encoder_and_hidden_rows(raw: list[dict]) -> None:
    """The gru row and the hidden-id twins: fields, fit seconds, sasrec unchanged by hiding."""
    by_cell = {(r["model"], r["protocol"], r["split"], r["metric"], r["k"]): r for r in raw}
    gru = [r for r in raw if r["model"] == "TwoTower-BERT/gru"]
    assert {(r["variant"], r["history_encoder"], r["row"], r["user_ids"]) for r in gru} == {
        ("bert", "gru", "encoder", "known")
    }
    assert all(r["fit_seconds"] > 0 for r in gru)
    twins = [r for r in raw if r.get("user_ids") == "hidden"]
    assert twins and all(r["model"].endswith(" (hidden ids)") for r in twins)
    for twin in twins:
        known = by_cell[
            (
                twin["model"].removesuffix(" (hidden ids)"),
                *[twin[f] for f in ("protocol", "split", "metric", "k")],
            )
        ]
        assert known["user_ids"] == "known" and known["fit_seconds"] == twin["fit_seconds"] > 0
        assert (twin["variant"], twin["history_encoder"]) == (known["variant"], known["history_encoder"])
        if known["model"] == "SASRec-style (ids)":  # no user ids, no profile: hiding changes nothing
            assert twin["value"] == known["value"]
    sasrec = [r for r in twins if r["model"] == "SASRec-style (ids) (hidden ids)"]
    assert len(sasrec) == 2 * 2 * 3 * 2  # protocols A, C x splits x metrics x ks


def test_speed_quick_writes_json_with_every_section(tmp_path: Path, runs_dir: Path) -> None:
    result = _run_script("speed.py", tmp_path, runs_dir)

    report = json.loads((tmp_path / "speed.json").read_text(encoding="utf-8"))
    assert {"machine", "matmul", "encoding", "training", "latency", "ratios", "command"} <= set(report)
    assert report["machine"]["cpu"] and report["machine"]["usable_cores"] >= 1
    assert report["matmul"]["gflops"] > 0 and report["matmul"]["flops_per_call"] == 2 * 2048**3
    encoding = report["encoding"]["rows"]
    assert len(encoding) == 3 and all(r["texts_per_second"] > 0 for r in encoding)
    # Same weights and pooling: every contender computes the same embeddings.
    assert all(r["max_abs_diff_vs_ours"] < 1e-3 for r in encoding)
    # Fixed padding to 64 executes at least as many token positions as padding to the longest.
    assert encoding[2]["padded_tokens"] >= encoding[1]["padded_tokens"] >= encoding[0]["real_tokens"]
    assert len(report["training"]["rows"]) == 3
    assert all(r["examples_per_second"] > 0 for r in report["training"]["rows"])
    latency = {r["batch"]: r for r in report["latency"]["rows"]}
    assert set(latency) == {1, 256}
    assert all(0 < r["p50_ms"] <= r["p95_ms"] for r in latency.values())
    assert len(report["ratios"]) == 5 and all(v > 0 for v in report["ratios"].values())
    _check_encoder_latency(report["encoder_latency"])
    markdown = (tmp_path / "speed.md").read_text(encoding="utf-8")
    assert "| contender | texts/s |" in markdown and "## Ratios" in markdown
    assert "## (d) History encoders" in markdown
    assert "## Ratios" in result.stdout
    assert not (tmp_path / "latency.json").exists()  # (d) alone writes latency.*, not a full run


def _check_encoder_latency(section: dict) -> None:
    """Section (d): every encoder at batch 1 and 256, the quick sizes, mean as the baseline."""
    encoders = ["mean", "attention", "gru", "lstm", "cnn"]
    assert list(section["models"]) == encoders
    assert [(r["encoder"], r["batch"]) for r in section["rows"]] == [
        (e, b) for e in encoders for b in (1, 256)
    ]
    assert all(0 < r["p50_ms"] <= r["p95_ms"] for r in section["rows"])
    assert all(r["p50_vs_mean"] == 1.0 for r in section["rows"] if r["encoder"] == "mean")
    # the quick run keeps the default sizes except history_length (QUICK_OVERRIDES)
    assert section["sizes"] == {
        "embedding_dim": 64,
        "history_length": 10,
        "encoder_width": 64,
        "encoder_blocks": 2,
        "encoder_heads": 2,
    }
    assert section["trained"] is False and section["catalog_items"] > 0
    params = {name: m["encoder_parameters"] for name, m in section["models"].items()}
    assert params["mean"] == 0 and all(params[e] > 0 for e in encoders[1:])
    # GRU 64 -> 64: 3 gates x (64*64 input + 64*64 recurrent + 2*64 biases, reset_after) = 24960
    assert params["gru"] == 3 * (64 * 64 + 64 * 64 + 2 * 64)
    assert params["lstm"] == 4 * (64 * 64 + 64 * 64 + 64)


def test_speed_only_encoder_latency_writes_latency_files(tmp_path: Path, runs_dir: Path) -> None:
    result = _run_script("speed.py", tmp_path, runs_dir, "--only", "encoder-latency")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["latency.json", "latency.md"]
    report = json.loads((tmp_path / "latency.json").read_text(encoding="utf-8"))
    assert {"machine", "command", "date", "load_end", "seconds", "encoder_latency"} <= set(report)
    assert report["machine"]["cpu"] and "--only encoder-latency" in report["command"]
    _check_encoder_latency(report["encoder_latency"])
    markdown = (tmp_path / "latency.md").read_text(encoding="utf-8")
    assert "Machine:" in markdown and "Untrained models" in markdown
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| encoder | encoder params | SavedModel MB | b1 p50 ms |")
    assert [line.split(" | ")[0] for line in table[1:]] == [
        "| mean",
        "| attention",
        "| gru",
        "| lstm",
        "| cnn",
    ]
    assert "## (d) History encoders" in result.stdout


# ------------------------------------------------------------------ helpers, no subprocess


def test_bert_flops_matches_the_hand_count(bench) -> None:
    encoding = bench("speed_encoding")
    config = type("C", (), {"hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 2})()
    # P = 2 * (4*4^2 + 2*4*8) = 256; L = 3: 2*256*3 + 4*2*3^2*4 = 1536 + 288 = 1824.
    assert encoding.bert_flops([3], config) == 1824.0
    assert encoding.bert_flops([3, 3], config) == 2 * 1824.0


def test_ours_widths_sorts_then_rounds_each_batch_up_to_eight(bench) -> None:
    encoding = bench("speed_encoding")
    # Sorted lengths 3, 9 | 10, 17 -> longest 9 -> 16, longest 17 -> 24.
    assert encoding.ours_widths([3, 10, 17, 9], 2, 64) == [(2, 16), (2, 24)]
    # Never wider than max(longest, max_length): 13 rounded up would be 16 > max_length 14.
    assert encoding.ours_widths([13], 8, 14) == [(1, 14)]


def test_history_section_renders_one_row_per_encoder(bench) -> None:
    history = bench("speed_history")
    rows = [
        {"encoder": e, "batch": b, "p50_ms": p50, "p95_ms": p50 + 1, "queries_per_second": 1000 * b / p50,
         "p50_vs_mean": ratio, "calls": 7}
        for e, b, p50, ratio in [("mean", 1, 2.0, 1.0), ("mean", 8, 4.0, 1.0), ("gru", 1, 3.0, 1.5),
                                 ("gru", 8, 10.0, 2.5)]
    ]  # fmt: skip
    models = {
        "mean": {"encoder_parameters": 0, "saved_model_mb": 1.04},
        "gru": {"encoder_parameters": 24960, "saved_model_mb": 2.5},
    }
    sizes = {
        "embedding_dim": 64,
        "history_length": 50,
        "encoder_width": 64,
        "encoder_blocks": 2,
        "encoder_heads": 2,
    }
    section = {
        "k": 10,
        "catalog_items": 1682,
        "recent_items": 5,
        "sizes": sizes,
        "models": models,
        "rows": rows,
    }
    lines = history.render_history_section(section)
    assert "top-10 of 1682 items" in lines[0] and "median of 7 interleaved calls" in lines[2]
    assert lines[-3:] == [
        "|---|---|---|---|---|---|---|---|---|---|",
        "| mean | 0 | 1.0 | 2.00 | 3.00 | 1.00x | 4.00 | 5.00 | 1.00x | 2000 |",
        "| gru | 24,960 | 2.5 | 3.00 | 4.00 | 1.50x | 10.00 | 11.00 | 2.50x | 800 |",
    ]


def test_time_calls_rotates_the_starting_contender(bench) -> None:
    common = bench("common")
    calls: list[str] = []
    times = common.time_calls({n: (lambda n=n: calls.append(n)) for n in "abc"}, 3)
    assert calls == list("abcbcacab")
    assert {n: len(t) for n, t in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(s >= 0.0 for t in times.values() for s in t)
    assert common.median([3.0, 1.0, 2.0, 10.0]) == 2.5
    assert common.median([3.0, 1.0, 2.0]) == 2.0


def test_the_scripts_are_under_500_lines_and_load_through_the_cli() -> None:
    from tfrec_llm.cli.benchmark_commands import BENCHMARKS, load_benchmark

    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in BENCHMARKS_DIR.glob("*.py")}
    assert {name for name, n in sizes.items() if n > 500} == set()
    for name in BENCHMARKS:
        module = load_benchmark(name, BENCHMARKS_DIR)
        assert callable(module.add_arguments) and callable(module.run) and callable(module.main)


def test_seeds_quick_reports_each_seed_and_reuses_cached_models(tmp_path: Path, runs_dir: Path) -> None:
    args = ("--seeds", "1,2", "--setting", "model.history_length=5", "--quiet")
    _run_script("seeds.py", tmp_path, runs_dir, *args)
    first = json.loads((tmp_path / "seeds.json").read_text(encoding="utf-8"))["runs"]
    assert [(r["setting"], r["seed"], r["cached"]) for r in first] == [
        ("model.history_length=5", 1, False),
        ("model.history_length=5", 2, False),
    ]
    assert all(0.0 <= r[s][m] <= 1.0 for r in first for s in ("valid", "test") for m in ("ndcg", "hr"))
    assert first[0]["model_dir"] != first[1]["model_dir"]  # one cached run per seed
    row = next(
        line for line in (tmp_path / "seeds.md").read_text().splitlines() if line.startswith("| model.")
    )
    test = [r["test"]["ndcg"] for r in first]
    assert f"{test[0]:.4f} / {test[1]:.4f}" in row and f"{sum(test) / 2:.4f}" in row
    again = _run_script("seeds.py", tmp_path, runs_dir, *args)  # nothing trains the second time
    second = json.loads((tmp_path / "seeds.json").read_text(encoding="utf-8"))["runs"]
    assert [r["cached"] for r in second] == [True, True] and "seed 2" in again.stdout
    assert [r["test"] for r in second] == [r["test"] for r in first]


def test_seed_summary_is_the_mean_and_its_standard_error(bench) -> None:
    seeds = bench("seeds")
    assert seeds.summarize([0.1]) == (0.1, 0.0)
    mean, se = seeds.summarize([0.10, 0.12, 0.14])
    assert mean == pytest.approx(0.12) and se == pytest.approx(0.02 / math.sqrt(3))


def test_seeds_table_says_what_to_choose_by_under_each_protocol(bench) -> None:
    seeds = bench("seeds")
    run = {"setting": "", "seed": 1, "fit_seconds": 3.0}
    run |= {split: {"ndcg": 0.1, "hr": 0.2, "recall": 0.2} for split in ("valid", "test")}
    meta = {"variant": "bert", "date": "d", "command": "c", "machine": "m", "load": "l", "settings": [""]}
    loo = seeds.render_markdown([run], {**meta, "protocol": "loo"})
    select = seeds.render_markdown([run], {**meta, "protocol": "cold-users-select"})
    assert "Choose by VALID." in loo and "stand-in cold users" not in loo
    assert "Choose by VALID." not in select
    assert "choose a cold-user setting by its TEST columns, then report it under cold-users" in select
    items = seeds.render_markdown([run], {**meta, "protocol": "cold-items-select"})
    assert "TEST is the stand-in cold items (20% of protocol cold-items's warm items" in items
    assert "choose a cold-item setting by its TEST columns, then report it under cold-items" in items
