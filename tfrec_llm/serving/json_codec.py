"""TF Serving's JSON encoding of tensors, used by the REST client and the local REST server.

TF Serving's REST API writes a tensor as a nested JSON list. Strings are UTF-8 text; bytes that
are not valid UTF-8 travel as ``{"b64": "<base64>"}``. float32 values are written with the
shortest repr that reads back to the same float32 (``10.9``, not ``10.899999618530273``).

Three functions, numpy only:

* :func:`encode_array`: numpy array -> JSON value (both sides).
* :func:`decode_request_value`: JSON value -> numpy array of a signature's dtype, strict: every
  leaf must have the dtype's JSON kind and lists must not be ragged (the server reading inputs).
* :func:`decode_response_value`: JSON value -> numpy array, lenient (the client reading outputs).

Dtypes are given as ``"string"``, a numpy dtype (or its name, e.g. ``"float32"``), or ``None``
(unknown: strings become bytes, numbers stay as JSON gave them).

Example:
    >>> encode_array(np.array([b"a", b"\\xff"], dtype=object))
    ['a', {'b64': '/w=='}]
    >>> decode_request_value([[1, 2]], "int32").dtype
    dtype('int32')
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

__all__ = ["STRING", "decode_request_value", "decode_response_value", "encode_array"]

#: The dtype name of TF string tensors (numpy object arrays of ``bytes``).
STRING = "string"

DType = str | np.dtype[Any] | None


def _encode_leaf(node: Any) -> Any:
    if isinstance(node, list):
        return [_encode_leaf(x) for x in node]
    if isinstance(node, bytes):
        try:
            return node.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(node).decode("ascii")}
    return node


def encode_array(array: np.ndarray) -> Any:
    """A numpy array as TF Serving's JSON value (nested lists; bytes as text or ``{"b64"}``).

    Args:
        array: Any numpy array; object arrays of ``bytes`` for strings.

    Returns:
        A value ``json.dumps`` can write.
    """
    if array.dtype == np.float32:  # shortest repr that round-trips (10.9, not 10.899999618...)
        flat = [float(str(v)) for v in array.ravel()]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    return _encode_leaf(array.tolist())


def _string_leaf(node: Any) -> Any:
    """``{"b64": ...}`` -> bytes, ``str`` -> UTF-8 bytes, anything else unchanged."""
    if isinstance(node, dict) and set(node) == {"b64"}:
        return base64.b64decode(node["b64"])
    return node.encode("utf-8") if isinstance(node, str) else node


def _numpy_dtype(dtype: DType) -> np.dtype[Any] | None:
    """The numpy dtype of a non-string ``dtype``; ``None`` when numpy has no such name."""
    if dtype is None or isinstance(dtype, np.dtype):
        return dtype
    try:
        return np.dtype(dtype)
    except TypeError:  # bfloat16, resource, variant by name
        return None


def _strict_leaf(value: Any, dtype: DType) -> Any:
    if dtype is None:
        return value.encode("utf-8") if isinstance(value, str) else value
    if isinstance(dtype, str) and dtype == STRING:
        if isinstance(value, str) or (isinstance(value, dict) and set(value) == {"b64"}):
            return _string_leaf(value)
        raise TypeError(f"expected a string, got {value!r}")
    kind = np.dtype(dtype).kind
    if kind == "b":
        if not isinstance(value, bool):
            raise TypeError(f"expected true/false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    if kind in "iu" and not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def decode_request_value(value: Any, dtype: DType) -> np.ndarray:
    """Reads a JSON tensor strictly, as the server does with request inputs.

    Args:
        value: A JSON scalar or nested list.
        dtype: ``"string"``, a numpy dtype or dtype name, or ``None`` (unknown).

    Returns:
        The array: ``dtype``, or an object array for strings and an unknown dtype.

    Raises:
        ValueError: On ragged lists or lists nested to different depths.
        TypeError: On a leaf of the wrong JSON kind (a number for a string, a float for an
            integer, a number for a bool, ...).
    """
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat: list[Any] = []

    def walk(node: Any, depth: int) -> None:
        if depth == len(shape):
            if isinstance(node, list):
                raise ValueError("nested lists of different depths")
            flat.append(node)
            return
        if not isinstance(node, list) or len(node) != shape[depth]:
            raise ValueError(f"ragged list: every row must have {shape[depth]} values")
        for child in node:
            walk(child, depth + 1)

    walk(value, 0)
    if dtype is not None and not (isinstance(dtype, str) and dtype == STRING):
        dtype = np.dtype(dtype)
    converted = [_strict_leaf(v, dtype) for v in flat]
    if dtype is None or isinstance(dtype, str):
        array = np.array(converted, dtype=object)
    else:
        array = np.array(converted, dtype=dtype)
    return array.reshape(shape)


def decode_response_value(value: Any, dtype: DType) -> np.ndarray:
    """Reads a JSON tensor leniently, as the client does with the server's outputs.

    Args:
        value: A JSON scalar or nested list.
        dtype: ``"string"`` (object array of bytes), a numpy dtype or name (converted when
            numpy knows it), or ``None`` (numpy's own guess).

    Returns:
        The array.
    """

    def strings(node: Any) -> Any:
        return [strings(x) for x in node] if isinstance(node, list) else _string_leaf(node)

    if isinstance(dtype, str) and dtype == STRING:
        return np.array(strings(value), dtype=object)
    target = _numpy_dtype(dtype)
    if target is not None:
        try:
            return np.asarray(value, dtype=target)
        except TypeError:
            pass
    return np.asarray(value)
