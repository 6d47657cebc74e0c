"""Tests of benchmarks/common.py (config, data slice, model cache) and benchmarks/machine.py."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfrec_llm.data.schema import ITEM_ID, TIMESTAMP, USER_ID, RecDataset


def _args(**values) -> argparse.Namespace:
    defaults = {"config": None, "overrides": [], "model_dir": "m", "quick": False}
    return argparse.Namespace(**{**defaults, **values})


def _dataset(users: list[str], items: list[str]) -> RecDataset:
    """One interaction per (user, item) pair in order, timestamps 1, 2, ..."""
    pairs = [(u, i) for u in users for i in items]
    interactions = pd.DataFrame(
        {
            USER_ID: [u for u, _ in pairs],
            ITEM_ID: [i for _, i in pairs],
            TIMESTAMP: np.arange(1, len(pairs) + 1, dtype=np.int64),
        }
    )
    return RecDataset(
        name="toy",
        interactions=interactions,
        items=pd.DataFrame({ITEM_ID: items}),
        users=pd.DataFrame({USER_ID: users}),
    )


def test_add_config_arguments_gives_the_shared_options(bench) -> None:
    common = bench("common")
    parser = argparse.ArgumentParser()
    common.add_config_arguments(parser, "folder", "models", "override")
    args = parser.parse_args(["--set", "a.b=1", "--set", "c.d=2"])
    assert (args.out, args.config, args.model_dir) == (
        os.path.join("benchmarks", "results"),
        None,
        os.path.join("runs", "bench"),
    )
    assert args.overrides == ["a.b=1", "c.d=2"]


def test_build_config_applies_quick_then_set_then_model_dir(bench) -> None:
    from tfrec_llm.config import load_config

    common = bench("common")
    quick = ("train.epochs=1", "train.batch_size=256")
    cfg = common.build_config(_args(quick=True, overrides=["train.epochs=3"]), quick)
    # --set comes after the quick overrides, so it wins; the other quick override stays.
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.model_dir) == (3, 256, "m")
    plain = common.build_config(_args(overrides=["train.epochs=3"]), quick)
    default = load_config(None).train.batch_size
    assert default != 256  # else the line above would not show the quick override
    assert (plain.train.epochs, plain.train.batch_size, plain.train.model_dir) == (3, default, "m")


def test_quick_subset_keeps_small_integer_ids_only(bench) -> None:
    common = bench("common")
    dataset = _dataset(["1", "120", "121", "u7"], ["2", "250", "251"])
    small = common.quick_subset(dataset)
    assert small.name == "toy-quick"
    assert sorted(small.users[USER_ID]) == ["1", "120"]
    assert sorted(small.items[ITEM_ID]) == ["2", "250"]
    # 2 users x 2 items of the 4 x 3 pairs.
    assert len(small.interactions) == 4
    assert set(small.interactions[USER_ID]) == {"1", "120"}
    assert common.data_tag(small) == "toy-quick:4:2:2"
    assert common.data_tag(dataset) == "toy:12:3:4"


def test_config_hash_names_the_settings_not_the_paths(bench) -> None:
    common = bench("common")
    cfg = common.build_config(_args())
    key = common.config_hash(cfg, "bert", "toy:12:3:4")
    assert re.fullmatch(r"[0-9a-f]{8}", key)
    moved = common.build_config(_args(model_dir="elsewhere", overrides=["text.cache_dir=/tmp/x"]))
    assert common.config_hash(moved, "bert", "toy:12:3:4") == key
    other = common.build_config(_args(overrides=["train.epochs=7"]))
    assert common.config_hash(other, "bert", "toy:12:3:4") != key
    # sections that do not shape the trained model leave the key alone
    reported = common.build_config(
        _args(overrides=["eval.ks=[10,20]", "tune.max_trials=3", "export.max_k=50"])
    )
    assert common.config_hash(reported, "bert", "toy:12:3:4") == key
    assert common.config_hash(cfg, "id", "toy:12:3:4") != key
    assert common.config_hash(cfg, "bert", "toy:13:3:4") != key
    assert common.cached_run_dir(cfg, "loo", "bert", "toy:12:3:4") == os.path.join("m", "loo", f"bert-{key}")


def test_run_state_tells_missing_finished_and_other_settings(bench, tmp_path: Path) -> None:
    from tfrec_llm.experiments import runs

    common = bench("common")
    cfg = common.build_config(_args())
    prepared = types.SimpleNamespace(dataset=_dataset(["1", "2"], ["5", "6"]))
    folder = tmp_path / "run"
    assert common.run_state(str(folder), cfg, prepared, "bert") == "missing"
    folder.mkdir()
    (folder / runs.WEIGHTS).write_bytes(b"")
    assert common.run_state(str(folder), cfg, prepared, "bert") == "missing"  # no result.json
    (folder / runs.RESULT).write_text("{}", encoding="utf-8")
    # Finished but without a record of its settings: load_or_train would refuse it.
    assert common.run_state(str(folder), cfg, prepared, "bert") == "other-settings"
    fingerprint = runs.training_fingerprint(runs.variant_config(cfg, "bert"), prepared)
    (folder / runs.FINGERPRINT).write_text(json.dumps(fingerprint), encoding="utf-8")
    assert common.run_state(str(folder), cfg, prepared, "bert") == "finished"
    assert common.run_state(str(folder), cfg, prepared, "id") == "other-settings"
    changed = types.SimpleNamespace(dataset=_dataset(["1", "2"], ["5", "7"]))
    assert common.run_state(str(folder), cfg, changed, "bert") == "other-settings"


def test_interleave_rotates_and_logs_each_round(bench) -> None:
    common = bench("common")
    calls: list[tuple[str, int]] = []
    lines: list[str] = []

    def contender(name: str):
        return lambda r: calls.append((name, r)) or f"{name}{r}"

    out = common.interleave({n: contender(n) for n in "ab"}, 3, lines.append)
    assert calls == [("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 2), ("b", 2)]
    assert out == {"a": ["a0", "a1", "a2"], "b": ["b0", "b1", "b2"]}
    assert lines == ["round 1/3 done", "round 2/3 done", "round 3/3 done"]


def test_child_environment_keeps_the_environment_and_quiets_tensorflow(
    bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = bench("common")
    monkeypatch.setenv("TFREC_TEST_MARKER", "x")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    env = common.child_environment()
    assert env["TFREC_TEST_MARKER"] == "x" and env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert common.child_environment()["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_provenance_names_the_machine_command_and_date(bench) -> None:
    machine = bench("machine")
    start = {**machine.describe_machine(), "load_average": [0.5, 0.4, 0.3]}
    out = machine.provenance("benchmarks/speed.py", ["--quick", "--out", "a b"], start)
    assert list(out) == ["machine", "load_end", "command", "date"]
    assert out["command"] == "python benchmarks/speed.py --quick --out 'a b'"
    assert out["machine"]["load_average"] == [0.5, 0.4, 0.3]
    assert out["machine"]["cpu"] == start["cpu"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", out["date"])
    assert machine.load_line([1.0, 0.5, 0.25], [2.0, 1.0, 0.5]) == (
        "load average (1/5/15 min) at start 1/0.5/0.25, at end 2/1/0.5"
    )


def test_popularity_prior_off_keeps_the_cache_keys_and_old_runs_finished(bench, tmp_path: Path) -> None:
    from tfrec_llm.experiments import runs

    common = bench("common")
    cfg = common.build_config(_args())
    key = common.config_hash(cfg, "bert", "toy:12:3:4")
    # the key of the same settings before the field existed: config_hash's recipe without it
    from tfrec_llm.config import config_to_dict

    values = config_to_dict(runs.variant_config(cfg, "bert"))
    assert values["model"].pop("popularity_prior") == 0.0
    for section, field in (("train", "model_dir"), ("text", "cache_dir"), ("text", "batch_size")):
        values[section].pop(field, None)
    before = {s: values[s] for s in ("data", "text", "model", "train")} | {"data_tag": "toy:12:3:4"}
    digest = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:8]
    assert key == digest
    on = common.build_config(_args(overrides=["model.popularity_prior=0.5"]))
    assert common.config_hash(on, "bert", "toy:12:3:4") != key
    # a run recorded before the field: still finished under the default (0.0), not under 0.5
    prepared = types.SimpleNamespace(dataset=_dataset(["1", "2"], ["5", "6"]))
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / runs.WEIGHTS).write_bytes(b"")
    (folder / runs.RESULT).write_text("{}", encoding="utf-8")
    old = runs.training_fingerprint(runs.variant_config(cfg, "bert"), prepared)
    del old["model"]["popularity_prior"]
    (folder / runs.FINGERPRINT).write_text(json.dumps(old), encoding="utf-8")
    assert common.run_state(str(folder), cfg, prepared, "bert") == "finished"
    assert common.run_state(str(folder), on, prepared, "bert") == "other-settings"


def test_matching_run_dir_finds_a_run_recorded_under_an_older_key(bench, tmp_path: Path) -> None:
    from tfrec_llm.experiments import runs

    common = bench("common")
    cfg = common.build_config(_args(model_dir=str(tmp_path)))
    prepared = types.SimpleNamespace(
        dataset=_dataset(["1", "2"], ["5", "6"]), split=types.SimpleNamespace(protocol="loo")
    )
    own = common.cached_run_dir(cfg, "loo", "bert", "toy:4:2:2")
    assert common.matching_run_dir(cfg, prepared, "bert", "toy:4:2:2") == own  # nothing there yet
    old = runs.training_fingerprint(runs.variant_config(cfg, "bert"), prepared)
    del old["model"]["popularity_prior"]  # recorded before the field existed
    other = runs.training_fingerprint(runs.variant_config(cfg, "bert"), prepared)
    other["model"]["embedding_dim"] = 3
    for name, fingerprint in (("bert-00000000", other), ("bert-11111111", old), ("id-22222222", old)):
        folder = tmp_path / "loo" / name
        folder.mkdir(parents=True)
        (folder / runs.WEIGHTS).write_bytes(b"")
        (folder / runs.RESULT).write_text("{}", encoding="utf-8")
        (folder / runs.FINGERPRINT).write_text(json.dumps(fingerprint), encoding="utf-8")
    found = common.matching_run_dir(cfg, prepared, "bert", "toy:4:2:2")
    assert found == str(tmp_path / "loo" / "bert-11111111")
    on = common.build_config(_args(model_dir=str(tmp_path), overrides=["model.popularity_prior=0.5"]))
    assert common.matching_run_dir(on, prepared, "bert", "toy:4:2:2") == common.cached_run_dir(
        on, "loo", "bert", "toy:4:2:2"
    )
