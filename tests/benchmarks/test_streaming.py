"""benchmarks/streaming.py on a tiny log: every figure of a row, the data deleted, the report."""

import os


def test_one_size_measures_every_figure_and_deletes_its_data(bench, tmp_path):
    streaming = bench("streaming")
    workdir = tmp_path / "work"
    row = streaming.measure(20_000, str(workdir), warmup=1, steps=2, num_items=500)
    assert abs(row["interactions"] - 20_000) < 600 and row["users"] == 1000
    # users of 1 + Poisson(19) interactions, windows of 21: one or two windows per user
    assert 1000 <= row["examples"] <= 2000
    assert row["log_bytes"] > 0 and row["example_bytes"] > 0
    assert row["pipeline_examples_per_s"] > 0 and row["train_examples_per_s"] > 0
    assert row["peak_rss_mib"] > 100  # TensorFlow alone takes more
    assert not os.path.exists(workdir)
    bigger = {**row, "interactions": 2 * row["interactions"], "peak_rss_mib": 1.6 * row["peak_rss_mib"]}
    machine = {
        "cpu": "cpu",
        "usable_cores": 2,
        "logical_cores": 2,
        "os": "os",
        "python": "3",
        "load_average": [1.0],
    }
    report = streaming._report([row, bigger], machine, [1.0], "")
    assert "Peak RSS, largest / smallest size: 1.60x (NOT within the 1.5x bound)." in report
    assert f"| {row['interactions']:,} |" in report
