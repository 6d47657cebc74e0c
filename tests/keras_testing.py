"""Round-trip checks shared by the tests of every serializable Keras class of tfrec_llm.

Two checks, as in keras-rs ``keras_rs/src/testing/test_case.py``:

* ``assert_config_round_trip``: the class is registered as ``tfrec_llm>ClassName``; its config
  is plain JSON holding the constructor arguments and the base fields (``name`` included), and
  ``from_config`` of it (also after a JSON round trip) rebuilds an object with the same config.
* ``save_case`` + ``outputs_in_fresh_process``: the config (JSON), the weights (a
  ``tf.train.Checkpoint``) and the inputs (``.npz``) go to a folder; a new Python process that
  imports nothing from the tests rebuilds the object from the registered name and the config,
  calls it once (building every weight), reads the checkpoint (every saved value must be
  consumed), calls it again and writes the outputs to ``.npy``. Before saving, every float
  weight is moved by seeded noise, so the new process can only match by loading the weights;
  it also reports whether its outputs before loading already matched (they must not, for an
  object with float weights).

Pytest runs with ``--import-mode=importlib``, so tests get this module from the
``keras_testing`` fixture of ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# isort: off
import tfrec_llm  # noqa: F401  (selects Keras 2 before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

# isort: on

ATOL = 1e-6
_REPO_ROOT = Path(__file__).resolve().parents[1]
_FRESH_PROCESS_TIMEOUT_S = 600

# Runs in a new interpreter: argv = folders written by save_case.
_FRESH_PROCESS = r"""
import importlib
import json
import sys

import numpy as np

import tfrec_llm  # noqa: F401  (Keras 2 before TensorFlow)
import tensorflow as tf
import tf_keras as keras


def read_inputs(folder, spec):
    arrays = np.load(folder + "/inputs.npz", allow_pickle=False)
    args = []
    for i, arg in enumerate(spec):
        if arg["kind"] == "dict":
            args.append({key: tf.constant(arrays[f"{i}.{key}"]) for key in arg["keys"]})
        else:
            args.append(tf.constant(arrays[str(i)]))
    return args


for folder in sys.argv[1:]:
    with open(folder + "/case.json", encoding="utf-8") as handle:
        case = json.load(handle)
    importlib.import_module(case["module"])  # registers the class, as loading code would
    cls = keras.utils.get_registered_object(case["registered_name"])
    if cls is None:
        raise SystemExit(f"{case['registered_name']} is not registered after importing {case['module']}")
    obj = cls.from_config(case["config"])
    if obj.get_config() != case["config"]:
        raise SystemExit(f"{case['registered_name']}: config changed in the fresh process")
    args = read_inputs(folder, case["args"])
    before = np.asarray(obj(*args))
    tf.train.Checkpoint(obj=obj).read(folder + "/weights").assert_consumed()
    np.save(folder + "/before_load.npy", before)
    np.save(folder + "/outputs.npy", np.asarray(obj(*args)))
"""

Arg = np.ndarray | Mapping[str, np.ndarray]


def _plain_json(config: Mapping[str, Any]) -> Any:
    """``config`` through a JSON round trip (fails on anything JSON cannot hold)."""
    return json.loads(json.dumps(config, allow_nan=False))


def assert_config_round_trip(
    obj: keras.layers.Layer, arguments: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Checks the registration and the config round trip of ``obj``; returns its config.

    Args:
        obj: A constructed instance of a tfrec_llm Keras class.
        arguments: The constructor arguments ``obj`` was built with; each must appear in the
            config with the value passed (tuples compare as lists).

    Returns:
        ``obj.get_config()``.
    """
    cls = type(obj)
    assert keras.utils.get_registered_name(cls) == f"tfrec_llm>{cls.__name__}"
    assert keras.utils.get_registered_object(f"tfrec_llm>{cls.__name__}") is cls
    config = obj.get_config()
    assert type(config) is dict
    assert _plain_json(config) == config, "get_config must return plain JSON data"
    base = {"name": obj.name, "trainable": obj.trainable, "dtype": obj.dtype_policy.name}
    assert {key: config.get(key) for key in base} == base
    if arguments is not None:
        passed = _plain_json(dict(arguments))
        assert {key: config.get(key) for key in passed} == passed
    assert cls.from_config(dict(config)).get_config() == config
    assert cls.from_config(_plain_json(config)).get_config() == config
    return config


def perturb_weights(obj: keras.layers.Layer, seed: int = 0, scale: float = 0.05) -> None:
    """Adds seeded normal noise to every float variable of ``obj`` (tables included)."""
    rng = np.random.default_rng(seed)
    for weight in obj.weights:
        if weight.dtype.is_floating:
            noise = rng.normal(0.0, scale, tuple(weight.shape)).astype(weight.dtype.as_numpy_dtype)
            weight.assign_add(noise)


def _arg_spec(args: Sequence[Arg]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    spec: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for i, arg in enumerate(args):
        if isinstance(arg, Mapping):
            spec.append({"kind": "dict", "keys": sorted(arg)})
            arrays.update({f"{i}.{key}": np.asarray(value) for key, value in arg.items()})
        else:
            spec.append({"kind": "array"})
            arrays[str(i)] = np.asarray(arg)
    return spec, arrays


def _call(obj: keras.layers.Layer, args: Sequence[Arg]) -> np.ndarray:
    tensors = [
        {key: tf.constant(value) for key, value in arg.items()}
        if isinstance(arg, Mapping)
        else tf.constant(arg)
        for arg in args
    ]
    return np.asarray(obj(*tensors))


def save_case(obj: keras.layers.Layer, args: Sequence[Arg], folder: Path, seed: int = 0) -> np.ndarray:
    """Perturbs ``obj``'s float weights, saves config/weights/inputs to ``folder``.

    Args:
        obj: The object, with its lookup tables set (they are weights and are saved too).
        args: Positional call arguments: numpy arrays or dicts of numpy arrays.
        folder: Where to write ``case.json``, ``weights.*`` and ``inputs.npz`` (created).
        seed: Seed of the weight noise.

    Returns:
        The outputs of ``obj(*args)`` in this process, after the perturbation.
    """
    folder.mkdir(parents=True, exist_ok=True)
    _call(obj, args)  # builds every weight before the perturbation and the checkpoint
    perturb_weights(obj, seed)
    spec, arrays = _arg_spec(args)
    case = {
        "module": type(obj).__module__,
        "registered_name": keras.utils.get_registered_name(type(obj)),
        "config": _plain_json(obj.get_config()),
        "args": spec,
        "float_weights": sum(int(w.dtype.is_floating) for w in obj.weights),
    }
    (folder / "case.json").write_text(json.dumps(case, indent=1), encoding="utf-8")
    np.savez(folder / "inputs.npz", **arrays)
    tf.train.Checkpoint(obj=obj).write(str(folder / "weights"))
    return _call(obj, args)


def outputs_in_fresh_process(folders: Sequence[Path]) -> None:
    """Runs the rebuild-load-call script over ``folders`` in one new Python process.

    Each folder gets ``outputs.npy`` and ``before_load.npy``. Raises AssertionError with the
    process's output when it fails.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, *map(str, folders)],
        cwd=_REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=_FRESH_PROCESS_TIMEOUT_S,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-5000:]


def assert_fresh_process_outputs(folder: Path, expected: np.ndarray, atol: float = ATOL) -> None:
    """Compares the fresh process's outputs in ``folder`` with ``expected`` (from ``save_case``)."""
    case = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    outputs = np.load(folder / "outputs.npy")
    assert outputs.shape == expected.shape and outputs.dtype == expected.dtype
    np.testing.assert_allclose(outputs, expected, rtol=0, atol=atol)
    if case["float_weights"]:
        before = np.load(folder / "before_load.npy")
        assert np.abs(before - expected).max() > 100 * atol, "outputs matched before loading"


def assert_save_load_same_outputs(
    obj: keras.layers.Layer, args: Sequence[Arg], folder: Path, atol: float = ATOL
) -> None:
    """``save_case`` + one fresh process + ``assert_fresh_process_outputs`` for one object."""
    expected = save_case(obj, args, folder)
    outputs_in_fresh_process([folder])
    assert_fresh_process_outputs(folder, expected, atol)
