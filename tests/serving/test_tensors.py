"""The fast TensorProto <-> numpy conversion gives exactly what TensorFlow's functions give."""

from __future__ import annotations

import numpy as np
import pytest

import tfrec_llm  # noqa: F401  (Keras 2 before TensorFlow)

CASES = [
    np.array([b"1", b"22", "é".encode()], dtype=object),
    np.array([[b"a", b""], [b"c", b"d"]], dtype=object),
    np.zeros((0, 0), dtype=object),
    np.int32(7),
    np.arange(6, dtype=np.int64).reshape(2, 3),
    np.array([[0.5, -1.25]], np.float32),
    np.array([1.0, np.inf], np.float64),
    np.array([True, False, True]),
    np.array([1, 2], np.int8),  # not on the fast path: falls back to tf.make_tensor_proto
]


@pytest.mark.parametrize("array", CASES, ids=lambda a: f"{a.dtype}{list(np.shape(a))}")
def test_round_trip_matches_tensorflow(array):
    import tensorflow as tf

    from tfrec_llm.serving.tensors import to_ndarray, to_tensor_proto

    ours = to_tensor_proto(array)
    theirs = tf.make_tensor_proto(array)
    assert ours.dtype == theirs.dtype and ours.tensor_shape == theirs.tensor_shape
    for proto in (ours, theirs):  # each decoder reads each encoder's proto
        expected = tf.make_ndarray(proto)
        got = to_ndarray(proto)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def test_typed_value_fields_and_broadcast_fall_back_correctly():
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2, types_pb2

    from tfrec_llm.serving.tensors import to_ndarray

    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.5, 2.5])
    proto.tensor_shape.dim.add(size=2)
    np.testing.assert_array_equal(to_ndarray(proto), np.array([1.5, 2.5], np.float32))
    filled = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[4])  # one value fills the shape
    filled.tensor_shape.dim.add(size=3)
    np.testing.assert_array_equal(to_ndarray(filled), tf.make_ndarray(filled))
    assert to_ndarray(filled).tolist() == [4, 4, 4]
