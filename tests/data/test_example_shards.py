"""Example shards: written chunk by chunk, streamed back as exactly make_dataset's elements."""

import glob
import os
import shutil

import numpy as np
import pytest
import tf_keras as keras

from tests.conftest import make_clustered_dataset
from tfrec_llm.config import ExperimentConfig, ModelConfig, TrainConfig, replace
from tfrec_llm.data.example_shards import ExampleShardWriter, streaming_dataset
from tfrec_llm.data.tfdata import make_dataset, next_item_windows, training_examples
from tfrec_llm.errors import DataError
from tfrec_llm.experiments.prepare import example_shards_dir, prepare, write_training_shards
from tfrec_llm.experiments.runs import load_or_train


@pytest.fixture(scope="module")
def prepared():
    cfg = ExperimentConfig(model=ModelConfig(history_length=4))
    return prepare(cfg, "loo", with_text=False, dataset=make_clustered_dataset(num_users=30, per_user=12))


def _config(tmp_path, objective="next_item", **train):
    return ExperimentConfig(
        model=ModelConfig(history_length=4, objective=objective),
        train=TrainConfig(model_dir=str(tmp_path), batch_size=16, **train),
    )


def _in_memory(cfg, prepared):
    build = next_item_windows if cfg.model.objective == "next_item" else training_examples
    return build(prepared.split.train, prepared.catalog, cfg.model.history_length)


def _collect(ds):
    batches = list(ds.as_numpy_iterator())
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


def _rows(arrays):
    """Each example as one float row (all columns side by side), sorted: an order-free view."""
    columns = [a.reshape(len(a), -1).astype(np.float64) for _, a in sorted(arrays.items())]
    table = np.concatenate(columns, axis=1)
    return table[np.lexsort(table.T[::-1])]


@pytest.mark.parametrize("objective", ["next_item", "interaction"])
def test_round_trip_equals_the_in_memory_examples(prepared, tmp_path, objective):
    cfg = _config(tmp_path, objective)
    # small chunks and shards, so users are cut into several chunks and files
    pattern = write_training_shards(cfg, prepared, chunk_rows=50, examples_per_shard=20)
    assert len(glob.glob(pattern)) > 2
    expected = _collect(make_dataset(_in_memory(cfg, prepared), 16, shuffle=False))
    ordered = _collect(streaming_dataset(pattern, 16, shuffle=False, cycle_length=1))
    assert ordered.keys() == expected.keys()
    for key, values in expected.items():  # one file at a time: exactly make_dataset's order
        assert ordered[key].dtype == values.dtype
        np.testing.assert_array_equal(ordered[key], values, err_msg=key)
    interleaved = _collect(
        streaming_dataset(pattern, 16, shuffle=False, objective=objective, history_length=4)
    )
    np.testing.assert_array_equal(_rows(interleaved), _rows(expected))


def test_shuffled_batches_match_make_dataset_exactly(prepared, tmp_path):
    cfg = _config(tmp_path)
    pattern = write_training_shards(cfg, prepared)  # one shard: same order, same seeded shuffle
    examples = _in_memory(cfg, prepared)
    memory = make_dataset(examples, 16, shuffle_buffer=50, seed=3)
    streamed = streaming_dataset(pattern, 16, shuffle_buffer=50, seed=3)
    assert streamed.element_spec == memory.element_spec  # static batch size too (drop_remainder)
    for _ in range(2):  # two epochs: reshuffled alike
        pairs = list(zip(memory.as_numpy_iterator(), streamed.as_numpy_iterator(), strict=True))
        assert len(pairs) == len(examples["user"]) // 16
        for a, b in pairs:
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])


def test_streamed_training_equals_in_memory_training(prepared, tmp_path):
    """Same examples in the same order (one shard) -> the same model, to float round-off (1e-6)."""
    cfg = replace(
        _config(tmp_path, epochs=2, patience=5), model__embedding_dim=8, model__history_encoder="mean"
    )
    results = {}
    for streaming in (False, True):
        run_cfg = replace(cfg, train__streaming=streaming)
        keras.utils.set_random_seed(0)
        model, info = load_or_train(run_cfg, prepared, "id", str(tmp_path / f"run-{streaming}"), verbose=0)
        results[streaming] = ([w.numpy() for w in model.weights], info["valid_metrics"])
    assert os.path.isdir(example_shards_dir(cfg, prepared))  # written on first use
    for a, b in zip(results[False][0], results[True][0], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for key, value in results[False][1].items():
        assert results[True][1][key] == pytest.approx(value, abs=1e-6)


def _shards(prepared, tmp_path, objective="next_item", history_length=4):
    cfg = replace(_config(tmp_path, objective), model__history_length=history_length)
    return write_training_shards(cfg, prepared, examples_per_shard=40)


def test_no_shards_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no example shards match"):
        streaming_dataset(str(tmp_path / "examples-*.tfrecord"), 8)


def test_a_missing_shard_is_a_data_error(prepared, tmp_path):
    pattern = _shards(prepared, tmp_path)
    os.remove(sorted(glob.glob(pattern))[1])
    with pytest.raises(DataError, match=r"are incomplete: missing \['examples-00001-of-"):
        streaming_dataset(pattern, 8)


def test_a_stale_shard_is_a_data_error(prepared, tmp_path):
    pattern = _shards(prepared, tmp_path)
    shutil.copy(sorted(glob.glob(pattern))[0], os.path.join(os.path.dirname(pattern), "examples-9.tfrecord"))
    with pytest.raises(DataError, match=r"not listed \['examples-9.tfrecord'\]"):
        streaming_dataset(pattern, 8)


def test_shards_of_other_settings_are_a_data_error(prepared, tmp_path):
    pattern = _shards(prepared, tmp_path)
    with pytest.raises(DataError, match="were written for history_length=4, but the model needs 6"):
        streaming_dataset(pattern, 8, objective="next_item", history_length=6)
    with pytest.raises(DataError, match="were written for objective='next_item', but the model needs"):
        streaming_dataset(pattern, 8, objective="interaction")


def test_records_that_do_not_fit_the_schema_are_a_data_error(prepared, tmp_path):
    pattern = _shards(prepared, tmp_path / "a")
    other = sorted(glob.glob(_shards(prepared, tmp_path / "b", history_length=6)))
    shutil.copy(other[0], sorted(glob.glob(pattern))[0])  # a shard of L=6 under the L=4 schema
    with pytest.raises(DataError, match="holds records with features .* but its schema says"):
        streaming_dataset(pattern, 8)


def test_writer_refuses_bad_input_and_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(DataError, match="item indices must lie in"):
        with ExampleShardWriter(str(tmp_path), "next_item", 3, num_items=5) as writer:
            writer.add(np.array([0, 0]), np.array([1, 2]))
            writer.add(np.array([1, 1]), np.array([4, 5]))
    assert os.listdir(tmp_path) == []  # the first chunk's temporary shard is removed
    with pytest.raises(DataError, match="no training examples to write"):
        with ExampleShardWriter(str(tmp_path), "next_item", 3, num_items=5) as writer:
            writer.add(np.array([0]), np.array([1]))  # one interaction: no window
    assert os.listdir(tmp_path) == []
    with pytest.raises(DataError, match="objective='pairwise'"):
        ExampleShardWriter(str(tmp_path), "pairwise", 3, num_items=5)
