"""Fast ``TensorProto`` <-> numpy conversion for the gRPC path (local server and GrpcClient).

``tf.make_tensor_proto`` and ``tf.make_ndarray`` handle every case but cost 50 to 150 us per
tensor in Python checks; a batch-1 Predict converts four to six tensors. These functions
handle the common layouts directly (numbers in ``tensor_content`` or a typed ``*_val`` field,
strings in ``string_val``) and hand everything else to TensorFlow's functions, so the result
is always what ``tf.make_ndarray`` gives.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

__all__ = ["to_ndarray", "to_tensor_proto"]

_NUMPY_BY_ENUM: dict[int, np.dtype] = {
    types_pb2.DT_FLOAT: np.dtype(np.float32),
    types_pb2.DT_DOUBLE: np.dtype(np.float64),
    types_pb2.DT_INT32: np.dtype(np.int32),
    types_pb2.DT_INT64: np.dtype(np.int64),
    types_pb2.DT_BOOL: np.dtype(np.bool_),
}
_FIELD_BY_ENUM = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_BOOL: "bool_val",
}
_ENUM_BY_NUMPY = {v: k for k, v in _NUMPY_BY_ENUM.items()}


def to_ndarray(proto: Any) -> np.ndarray:
    """The numpy array of a ``TensorProto``, as ``tf.make_ndarray`` returns it.

    Raises:
        Exception: Whatever ``tf.make_ndarray`` raises for a malformed proto.
    """
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    size = math.prod(shape)
    dtype = proto.dtype
    if dtype == types_pb2.DT_STRING and not proto.tensor_content and min(shape, default=0) >= 0:
        values = proto.string_val
        if len(values) == size:
            array = np.empty(size, dtype=object)
            array[:] = list(values)
            return array.reshape(shape)
    elif dtype in _NUMPY_BY_ENUM and min(shape, default=0) >= 0:
        np_dtype = _NUMPY_BY_ENUM[dtype]
        if proto.tensor_content:
            if len(proto.tensor_content) == size * np_dtype.itemsize:
                return np.frombuffer(proto.tensor_content, np_dtype).reshape(shape).copy()
        else:
            values = getattr(proto, _FIELD_BY_ENUM[dtype])
            if len(values) == size:
                return np.asarray(values, np_dtype).reshape(shape)
    return tf.make_ndarray(proto)


def to_tensor_proto(array: np.ndarray) -> Any:
    """A ``TensorProto`` of a numpy array (numbers in ``tensor_content``, as TF clients send).

    Strings (``bytes`` objects or ``S`` arrays) go to ``string_val``; other dtypes go through
    ``tf.make_tensor_proto``.
    """
    array = np.asarray(array)
    enum = _ENUM_BY_NUMPY.get(array.dtype)
    if enum is None and array.dtype.kind not in "OS":
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto()
    dims = proto.tensor_shape.dim
    for size in array.shape:
        dims.add(size=size)
    if enum is not None:
        proto.dtype = enum
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
        return proto
    values = array.ravel().tolist()
    if not all(isinstance(v, bytes) for v in values):
        return tf.make_tensor_proto(array)
    proto.dtype = types_pb2.DT_STRING
    proto.string_val.extend(values)
    return proto
