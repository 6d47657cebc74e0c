"""``tfrec-llm prepare`` and ``tfrec-llm synthesize`` on tiny inputs."""

import glob
import json
import os

import numpy as np
import pandas as pd

from tfrec_llm.cli.main import main
from tfrec_llm.config import load_config
from tfrec_llm.data.example_shards import streaming_dataset
from tfrec_llm.data.tfdata import next_item_windows
from tfrec_llm.experiments.prepare import prepare


def test_prepare_writes_the_training_examples_as_shards(tiny_csv_config, capsys):
    config, tmp = tiny_csv_config
    assert main(["prepare", "--config", config, "--variant", "id"]) == 0
    pattern = capsys.readouterr().out.strip().split("train: ", 1)[1]
    assert pattern.startswith(str(tmp / "runs" / "examples" / "loo" / "train-next_item-L5-"))
    schema_path = os.path.join(os.path.dirname(pattern), "examples.schema.json")
    schema = json.loads(open(schema_path, encoding="utf-8").read())
    assert [f["name"] for f in schema["features"]] == ["user", "sequence"]
    cfg = load_config(config)
    prepared = prepare(cfg, "loo", with_text=False)
    windows = next_item_windows(prepared.split.train, prepared.catalog, 5)
    assert schema["num_examples"] == len(windows["user"])
    streamed = list(streaming_dataset(pattern, 1000, shuffle=False).as_numpy_iterator())[0]
    np.testing.assert_array_equal(streamed["sequence"], windows["sequence"])
    # a second prepare keeps the shards
    mtime = os.path.getmtime(schema_path)
    assert main(["prepare", "--config", config, "--variant", "id"]) == 0
    assert os.path.getmtime(schema_path) == mtime


def test_synthesize_writes_a_log(tmp_path, capsys):
    out = tmp_path / "log"
    argv = ["synthesize", "--out", str(out), "--interactions", "5000", "--items", "30", "--seed", "3"]
    assert main(argv) == 0
    shards = sorted(glob.glob(str(out / "interactions-*.parquet")))
    frame = pd.concat([pd.read_parquet(s) for s in shards])
    assert f"wrote {len(frame):,} interactions of 250 users over 30 items" in capsys.readouterr().out
    assert abs(len(frame) - 5000) < 200 and frame["item_id"].nunique() <= 30
    assert main([*argv[:-1], "0", "--interactions", "0"]) == 2  # a DataError: one line, exit 2
    assert "synthetic log: num_interactions=0" in capsys.readouterr().err
