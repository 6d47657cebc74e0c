"""Runs pipelines/train_movielens.py (public API only) end to end on the tiny CSV data set."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "pipelines", "train_movielens.py")


def test_training_script_trains_evaluates_exports_and_recommends(tiny_csv_config):
    config, tmp = tiny_csv_config
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--config", config, "--variant", "id", "--users", "1,stranger"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "best epoch" in out
    assert "| TwoTower-ID |" in out and "| MostPop |" in out  # the table, baselines beside
    versions = os.listdir(tmp / "exports" / "retrieval")
    assert len(versions) == 1 and f"exported {tmp / 'exports' / 'retrieval' / versions[0]}" in out
    assert os.path.exists(tmp / "exports" / "retrieval" / versions[0] / "saved_model.pb")
    assert os.path.exists(tmp / "runs" / "loo" / "id" / "model.weights.h5")
    lines = [line for line in out.splitlines() if line.startswith("user ")]
    assert [line.split(":")[0] for line in lines] == ["user 1", "user stranger"]
    assert all(line.count("'") == 10 for line in lines)  # five item ids each


def test_training_script_uses_only_the_public_api():
    with open(SCRIPT, encoding="utf-8") as f:
        source = f.read()
    imports = [line.strip() for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert [line for line in imports if "tfrec_llm" in line] == ["import tfrec_llm"]
    for name in ("load_config", "Experiment"):
        assert f"tfrec_llm.{name}" in source and name in __import__("tfrec_llm").__all__
