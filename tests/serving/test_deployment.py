"""Consistency checks of the deployment folder serving/ (compose file, batching.config, README)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

SERVING = Path(__file__).resolve().parents[2] / "serving"
BATCHING_FIELDS = {
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
    "thread_pool_name",
    "allowed_batch_sizes",
    "pad_variable_length_inputs",
}


def _batching_config():
    fields = {}
    for line in (SERVING / "batching.config").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"(\w+)\s*(?:\{\s*value:\s*(\S+)\s*\}|:\s*(\S+))", line)
        assert match, line
        fields[match.group(1)] = match.group(2) or match.group(3)
    return fields


def test_batching_config_fields_and_values():
    fields = _batching_config()
    assert set(fields) <= BATCHING_FIELDS
    assert fields == {
        "max_batch_size": "256",
        "batch_timeout_micros": "2000",
        "num_batch_threads": "2",
        "max_enqueued_batches": "100",
        "pad_variable_length_inputs": "true",
    }


def test_readme_documents_every_batching_field_and_the_scalar_trap():
    readme = (SERVING / "README.md").read_text()
    for field in _batching_config():
        assert f"| `{field}` |" in readme
    assert "Batching Run() input tensors must have at least one" in readme
    assert "local PredictionService" in readme and "tensorflow/serving" in readme


def test_compose_runs_tensorflow_serving_with_the_documented_flags():
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())
    service = compose["services"]["tfserving"]
    assert service["image"].startswith("tensorflow/serving:")
    assert service["ports"] == ["8500:8500", "8501:8501"]
    flags = dict(f.lstrip("-").split("=", 1) for f in service["command"])
    assert flags["model_config_file"] == "/models/models.config"
    assert flags["model_config_file_poll_wait_seconds"] == "60"
    assert flags["file_system_poll_wait_seconds"] == "1"
    # batching only per model (retrieval's scalar k cannot be batched)
    assert flags["enable_batching"] == "true" and flags["enable_per_model_batching_parameters"] == "true"
    mounts = {v.rsplit(":", 2)[1]: v for v in service["volumes"]}  # SOURCE:TARGET:ro
    assert (
        flags["batching_parameters_file"] == "/config/batching.config" and "/config/batching.config" in mounts
    )
    assert "/models" in mounts
    readme = (SERVING / "README.md").read_text()
    for name, value in flags.items():
        assert f"--{name}={value}" in readme  # the docker run line matches the compose file
