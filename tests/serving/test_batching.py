"""Request batching of the local server (``--enable_batching``): merging, splitting, errors, timeout.

The scheduler tests use a fake clock and a gate (threading.Event) inside the model call, so
whether requests merge is decided by the test's events, never by sleeping. Waits on futures
have a generous bound only so a bug fails the test instead of hanging it.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tfrec_llm.errors import ConfigError
from tfrec_llm.serving.local.batching import (
    BatchingParameters,
    BatchRefused,
    BatchScheduler,
    batch_key,
    read_batching_parameters,
)

WAIT_S = 60.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A model call: doubles ``x``, adds the shared ``bias``; records each call's rows; can be held."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, arrays):
        self.calls.append(len(arrays["x"]))
        self.entered.set()
        assert self.gate.wait(WAIT_S)
        if np.any(arrays["x"] < 0):
            raise ValueError("negative input in the batch")
        return {"y": 2 * arrays["x"] + arrays["bias"], "rows": np.arange(len(arrays["x"]))}


def _submit(scheduler, call, x, bias=1.0):
    arrays = {"x": np.asarray(x, np.float32), "bias": np.float32(bias)}
    spec = batch_key(arrays, {"x": True, "bias": True})
    return scheduler.submit(("model", spec.key), call, arrays, spec)


def test_read_batching_parameters_of_the_compose_file(tmp_path):
    import pathlib

    repo = pathlib.Path(__file__).resolve().parents[2]
    params = read_batching_parameters(repo / "serving" / "batching.config")
    assert params == BatchingParameters(
        max_batch_size=256, batch_timeout_micros=2000, num_batch_threads=2, max_enqueued_batches=100
    )
    bad = tmp_path / "bad.config"
    bad.write_text("max_batch_size { value: 8 }\nmax_batch_sise { value: 2 }\n")
    with pytest.raises(ConfigError, match="max_batch_sise"):
        read_batching_parameters(bad)
    bad.write_text("max_batch_size { value: 0 }\n")
    with pytest.raises(ConfigError, match="max_batch_size=0"):
        read_batching_parameters(bad)


def test_batch_key_roles():
    one = {"x": np.zeros((2, 3), np.float32), "k": np.int32(5), "d": np.zeros((0, 0), object)}
    sent = {"x": True, "k": True, "d": False}
    spec = batch_key(one, sent)
    assert spec.rows == 2 and spec.batched == {"x"}
    other_rows = batch_key({**one, "x": np.ones((7, 3), np.float32)}, sent)
    assert other_rows.key == spec.key  # the row count does not split queues
    assert batch_key({**one, "x": np.ones((2, 4), np.float32)}, sent).key != spec.key  # non-batch dim
    assert batch_key({**one, "k": np.int32(6)}, sent).key != spec.key  # a shared scalar differs
    ragged = {"x": np.zeros((2, 3), np.float32), "z": np.zeros((3,), np.float32)}
    assert batch_key(ragged, {"x": True, "z": True}) is None  # unequal row counts: runs alone


def test_timeout_flushes_a_partial_batch_with_exact_split():
    clock, call = FakeClock(), Recorder()
    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=16, batch_timeout_micros=1000, num_batch_threads=1), clock
    )
    try:
        inputs = [[1.0], [2.0, 3.0], [4.0, 5.0, 6.0]]
        pending = [_submit(scheduler, call, x) for x in inputs]
        scheduler.wake()
        assert not any(f.done() for f in pending)  # the fake clock has not reached the timeout
        assert call.calls == []
        clock.now = 0.001
        scheduler.wake()
        results = [f.result(WAIT_S) for f in pending]
        assert call.calls == [6]  # one merged call of 1 + 2 + 3 rows, below max_batch_size
        for x, out in zip(inputs, results, strict=True):
            np.testing.assert_array_equal(out["y"], 2 * np.asarray(x, np.float32) + 1)  # unbatched answer
        np.testing.assert_array_equal(results[2]["rows"], [3, 4, 5])  # the rows of the merged call
    finally:
        scheduler.close()


def test_full_batch_runs_without_waiting_for_the_timeout():
    clock, call = FakeClock(), Recorder()
    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=4, batch_timeout_micros=10**9, num_batch_threads=1), clock
    )
    try:
        pending = [_submit(scheduler, call, [float(i), float(i)]) for i in range(3)]
        # the clock never moves: only "full" can close a batch. 2 + 2 rows close the first;
        # the third request opens a second batch that waits.
        assert pending[0].result(WAIT_S)["y"].tolist() == [1.0, 1.0]
        assert pending[1].result(WAIT_S)["y"].tolist() == [3.0, 3.0]
        assert call.calls == [4]
        assert not pending[2].done()
    finally:
        scheduler.close()
    with pytest.raises(BatchRefused, match="shutting down"):
        pending[2].result(WAIT_S)


def test_different_shapes_and_shared_values_are_not_merged():
    clock, call = FakeClock(), Recorder()
    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=64, batch_timeout_micros=0, num_batch_threads=1), clock
    )
    try:
        call.gate.clear()  # hold the thread in a first call so the next requests queue up
        first = _submit(scheduler, call, [0.0])
        assert call.entered.wait(WAIT_S)
        a = _submit(scheduler, call, [1.0], bias=1.0)
        b = _submit(scheduler, call, [2.0], bias=5.0)  # other shared value
        c = _submit(scheduler, call, [[3.0, 3.0]], bias=1.0)  # other non-batch shape
        d = _submit(scheduler, call, [4.0, 5.0], bias=1.0)  # merges with a
        call.gate.set()
        outs = [f.result(WAIT_S)["y"].tolist() for f in (first, a, b, c, d)]
        assert outs == [[1.0], [3.0], [9.0], [[7.0, 7.0]], [9.0, 11.0]]
        assert sorted(call.calls) == [1, 1, 1, 3]  # first, b, c alone; a + d merged
    finally:
        scheduler.close()


def test_an_error_of_the_merged_call_reaches_every_caller():
    clock, call = FakeClock(), Recorder()
    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=3, batch_timeout_micros=10**9, num_batch_threads=1), clock
    )
    try:
        pending = [_submit(scheduler, call, x) for x in ([1.0], [-1.0], [2.0])]
        for future in pending:
            with pytest.raises(ValueError, match="negative input"):
                future.result(WAIT_S)
        assert call.calls == [3]
    finally:
        scheduler.close()


def test_full_queue_is_refused_like_tf_serving():
    clock, call = FakeClock(), Recorder()
    scheduler = BatchScheduler(
        BatchingParameters(
            max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=1
        ),
        clock,
    )
    try:
        call.gate.clear()
        running = _submit(scheduler, call, [1.0])
        assert call.entered.wait(WAIT_S)
        queued = _submit(scheduler, call, [2.0])
        with pytest.raises(BatchRefused, match="queue to which this task was submitted is full"):
            _submit(scheduler, call, [3.0])
        call.gate.set()
        assert running.result(WAIT_S)["y"].tolist() == [3.0]
        assert queued.result(WAIT_S)["y"].tolist() == [5.0]
    finally:
        scheduler.close()


# ------------------------------------------------------------- through the server, over gRPC
@pytest.fixture()
def batching_server(model_base):
    from tfrec_llm.serving.local import LocalModelServer

    params = BatchingParameters(max_batch_size=64, batch_timeout_micros=0, num_batch_threads=1)
    srv = LocalModelServer(
        model_name="retrieval",
        model_base_path=str(model_base),
        port=0,
        rest_port=None,
        batching_parameters=params,
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


def _hold_model_calls(server):
    """Wraps the servable's function: the first call blocks on a gate; records the rows of each."""
    servable = server.resolve(_spec())
    function = servable.functions["serving_default"]
    rows: list[int] = []
    gate, entered = threading.Event(), threading.Event()

    def held(**inputs):
        rows.append(int(inputs["user_id"].shape[0]))
        entered.set()
        assert gate.wait(WAIT_S)
        return function(**inputs)

    servable.functions["serving_default"] = held  # type: ignore[index]
    return rows, gate, entered


def _wait_queued(server, n):
    """Blocks until ``n`` requests wait in the batch queues (a condition, not a duration)."""
    woke = threading.Event()
    for _ in range(int(WAIT_S / 0.01)):
        if server._batcher.queued_requests() >= n:
            return
        woke.wait(0.01)
    raise AssertionError(f"{n} requests never reached the batch queues")


def _spec():
    from tensorflow_serving.apis import model_pb2

    return model_pb2.ModelSpec(name="retrieval")


def test_concurrent_grpc_requests_merge_and_match_unbatched_answers(batching_server, retrieval_fixture):
    from concurrent import futures

    from tfrec_llm.serving.grpc_client import GrpcClient

    rows, gate, entered = _hold_model_calls(batching_server)
    users = [["1"], ["2", "9"], ["3"], ["1", "2", "3"]]
    with GrpcClient(port=batching_server.grpc_port, max_retries=0, timeout_s=WAIT_S) as client:
        with futures.ThreadPoolExecutor(len(users) + 2) as pool:
            gate.clear()
            first = pool.submit(client.predict, {"user_id": np.array([b"2"], object), "k": np.int32(2)})
            assert entered.wait(WAIT_S)  # the batch thread is held in the first call
            pending = [
                pool.submit(client.predict, {"user_id": np.array(u, object), "k": np.int32(4)}) for u in users
            ]
            odd_k = pool.submit(client.predict, {"user_id": np.array(["3"], object), "k": np.int32(3)})
            _wait_queued(batching_server, 5)
            gate.set()
            answers = [f.result(WAIT_S) for f in pending]
            odd = odd_k.result(WAIT_S)
            first.result(WAIT_S)
    assert sorted(rows) == [1, 1, 7]  # held call, k=3 alone, the four k=4 requests merged
    for u, out in zip(users, answers, strict=True):
        ids, scores = retrieval_fixture.reference_recommend(u, version=1, k=4)
        np.testing.assert_array_equal(out["item_ids"].astype(str), ids.astype(str))
        np.testing.assert_allclose(out["scores"], scores, rtol=1e-6)
    ids, _ = retrieval_fixture.reference_recommend(["3"], version=1, k=3)
    np.testing.assert_array_equal(odd["item_ids"].astype(str), ids.astype(str))


def test_error_in_a_merged_grpc_call_reaches_every_request(batching_server):
    from concurrent import futures

    from tfrec_llm.errors import ServingError
    from tfrec_llm.serving.grpc_client import GrpcClient

    rows, gate, entered = _hold_model_calls(batching_server)
    with GrpcClient(port=batching_server.grpc_port, max_retries=0, timeout_s=WAIT_S) as client:
        with futures.ThreadPoolExecutor(4) as pool:
            gate.clear()
            first = pool.submit(client.predict, {"user_id": np.array([b"1"], object)})
            assert entered.wait(WAIT_S)
            bad = [
                pool.submit(client.predict, {"user_id": np.array([u], object), "k": np.int32(0)})
                for u in "123"
            ]
            _wait_queued(batching_server, 3)
            gate.set()
            first.result(WAIT_S)
            for future in bad:
                with pytest.raises(ServingError, match="k must be >= 1") as info:
                    future.result(WAIT_S)
                assert info.value.code == "INVALID_ARGUMENT"
    assert sorted(rows) == [1, 3]


def test_serve_command_line_reads_the_batching_file():
    import pathlib

    from tfrec_llm.cli.main import build_parser
    from tfrec_llm.cli.serving_commands import _batching

    config = pathlib.Path(__file__).resolve().parents[2] / "serving" / "batching.config"
    parser = build_parser()
    on = parser.parse_args(
        ["serve", "--model-base-path", "x", "--enable_batching", "--batching_parameters_file", str(config)]
    )
    assert _batching(on) == BatchingParameters(256, 2000, 2, 100)
    assert (
        _batching(parser.parse_args(["serve", "--model-base-path", "x", "--enable_batching"]))
        == BatchingParameters()
    )
    assert _batching(parser.parse_args(["serve", "--model-base-path", "x"])) is None
    file_only = parser.parse_args(
        ["serve", "--model-base-path", "x", "--batching_parameters_file", str(config)]
    )
    with pytest.raises(ConfigError, match="needs --enable_batching"):
        _batching(file_only)


def test_close_fails_running_and_queued_requests_at_once():
    clock, call = FakeClock(), Recorder()
    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1), clock
    )
    call.gate.clear()
    running = _submit(scheduler, call, [1.0])
    assert call.entered.wait(WAIT_S)
    queued = _submit(scheduler, call, [2.0])
    scheduler.close()  # the call is still held: close must not wait for it
    for future in (running, queued):
        with pytest.raises(BatchRefused, match="shutting down"):
            future.result(WAIT_S)
    with pytest.raises(BatchRefused, match="shutting down"):
        _submit(scheduler, call, [3.0])
    call.gate.set()  # the abandoned call ends; its answer is dropped
    assert call.calls == [1]
