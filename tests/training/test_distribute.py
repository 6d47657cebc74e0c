"""tf.distribute strategies (tfrec_llm.training.distribute): mirrored on 2 logical CPU devices,
multi-worker on loopback (killed mid-run and restarted), and TPU without a TPU.

Strategies need fresh processes (logical devices and collectives are set up before TensorFlow
initialises its devices), so training runs in ``distribute_run.py`` subprocesses: one for the
single-process references (default and mirrored), two workers for multi_worker, twice (killed,
then restarted). The reference starts first and shares the cores with the first two workers.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tfrec_llm.errors import DistributeError
from tfrec_llm.training import distribute

RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distribute_run.py")

# Nothing differs between the runs but the order in which float32 sums are taken: same initial
# weights, same global batches (no shuffling, no dropout), the in-batch candidates gathered from
# every replica, gradients summed across replicas. So the tolerance is float rounding, far
# below what one user changes in a metric (1/60 of recall@10).
METRIC_TOLERANCE = 1e-4
LOSS_RELATIVE_TOLERANCE = 1e-4
TIMEOUT_S = 300  # a hung collective fails the test instead of hanging CI


def _run(out_json, model_dir, *strategies, env=None):
    return subprocess.Popen([sys.executable, RUN, str(out_json), str(model_dir), *strategies], env=env)


def _wait(*procs):
    try:
        return [proc.wait(timeout=TIMEOUT_S) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def _assert_same_training(got, want):
    """Same epochs, the same loss and VALID metrics at each (within the tolerances)."""
    assert [h["epoch"] for h in got["history"]] == [h["epoch"] for h in want["history"]]
    for g, w in zip(got["history"], want["history"]):
        np.testing.assert_allclose(g["loss"], w["loss"], rtol=LOSS_RELATIVE_TOLERANCE)
        for key in ("ndcg@10", "recall@10", "ndcg@50"):
            assert abs(g["metrics"][key] - w["metrics"][key]) <= METRIC_TOLERANCE, (key, g, w)
    assert got["valid_metrics"].keys() == want["valid_metrics"].keys()


class _SingleProcess:
    """default and mirrored, trained in one process that starts at once; read on first use."""

    def __init__(self, folder):
        self.out = folder / "results.json"
        self.proc = _run(self.out, folder, "mirrored", "default")
        self.results = None

    def __getitem__(self, strategy):
        if self.results is None:
            assert _wait(self.proc) == [0]
            self.results = json.loads(self.out.read_text())
        return self.results[strategy]


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    reference = _SingleProcess(tmp_path_factory.mktemp("single"))
    yield reference
    _wait(reference.proc)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _workers(out, model_dir, **env):
    """Runs 2 workers on loopback, each with its TF_CONFIG; their exit codes."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(_run(out, model_dir, "multi_worker", env={**os.environ, "TF_CONFIG": tf_config, **env}))
    return _wait(*procs)


def test_multi_worker_killed_and_restarted_resumes_and_matches_single_process(single_process, tmp_path):
    model_dir, out = tmp_path / "run", tmp_path / "results.json"
    # Both workers end themselves after epoch 0: MultiWorkerMirroredStrategy recovers by
    # restarting the cluster (a lone survivor would wait in its next all-reduce).
    assert _workers(out, model_dir, TFREC_TEST_EXIT_AFTER_EPOCH="0") == [3, 3]
    assert not out.exists()  # killed before writing its results
    assert (model_dir / "backup" / "chief").is_dir()  # BackupAndRestore's checkpoint of epoch 0
    assert [h["epoch"] for h in json.loads((model_dir / "validation.json").read_text())] == [0]

    assert _workers(out, model_dir) == [0, 0]  # the same cluster restarted (fresh ports)
    chief = json.loads(out.read_text())["multi_worker"]  # only the chief writes it
    assert chief["replicas"] == 2
    assert (chief["epochs_run"], chief["epochs_this_run"]) == (2, 1)  # resumed after epoch 0
    # The chief wrote the run's files; the other worker's are gone, and so is the backup.
    assert (model_dir / "best.weights.h5").is_file()
    assert [p.name for p in model_dir.iterdir() if p.name.startswith(".")] == []
    assert not (model_dir / "backup" / "chief").exists()
    _assert_same_training(chief, single_process["default"])


def test_mirrored_on_two_logical_cpus_matches_default(single_process):
    mirrored, default = single_process["mirrored"], single_process["default"]
    assert (mirrored["replicas"], default["replicas"]) == (2, 1)
    _assert_same_training(mirrored, default)
    first, last = (h["metrics"]["ndcg@10"] for h in default["history"])
    assert last > first  # it trains: the comparison is not between two untouched models


def test_tpu_without_a_tpu_fails_with_one_sentence():
    with pytest.raises(DistributeError) as error:
        distribute.make_strategy("tpu")
    message = str(error.value)
    assert message.startswith("train.strategy='tpu' found no TPU (TPUClusterResolver: ")
    assert message.endswith(
        "); on Colab choose Runtime > Change runtime type > TPU, elsewhere set TPU_NAME, or use "
        "train.strategy=mirrored or default."
    )
    assert ". " not in message and "\n" not in message  # one sentence


def test_multi_worker_without_tf_config_names_it(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(DistributeError) as error:
        distribute.make_strategy("multi_worker")
    assert str(error.value).startswith(
        "train.strategy='multi_worker' needs the TF_CONFIG environment variable"
    )


def test_mirrored_after_tensorflow_started_says_so():
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # the devices of this process are initialised
    assert len(tf.config.list_logical_devices("CPU")) < distribute.CPU_REPLICAS
    with pytest.raises(DistributeError) as error:
        distribute._split_cpu(distribute.CPU_REPLICAS)
    assert str(error.value).startswith(
        "train.strategy='mirrored' on a host without a GPU needs 2 logical CPU devices, "
        "but TensorFlow had already initialised its devices in this process"
    )


def test_unknown_strategy_is_a_config_error():
    from tfrec_llm.config import ExperimentConfig, replace
    from tfrec_llm.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.strategy='gpu'; expected one of \('default', "):
        replace(ExperimentConfig(), train__strategy="gpu")


def test_cli_strategy_option_sets_the_config_and_creates_the_strategy_first(monkeypatch):
    from tfrec_llm.cli.main import build_parser
    from tfrec_llm.cli.options import config_from_args

    parser = build_parser()
    assert config_from_args(parser.parse_args(["train", "--strategy", "default"])).train.strategy == "default"
    args = parser.parse_args(["run", "--set", "train.strategy=tpu", "--strategy", "default"])
    assert config_from_args(args).train.strategy == "default"  # the option wins over --set
    # The strategy is created while the config is read (before any TensorFlow op of the run).
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(DistributeError, match="needs the TF_CONFIG environment variable"):
        config_from_args(parser.parse_args(["train", "--strategy", "multi_worker"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--strategy", "mirrored"])  # read-only commands do not train
