"""Tests of tfrec_llm.serving.json_codec (TF Serving's JSON form of tensors)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from tfrec_llm.serving.json_codec import decode_request_value, decode_response_value, encode_array


def test_encode_writes_text_b64_and_short_float32():
    strings = np.array([[b"caf\xc3\xa9", b"\xff\x00"]], dtype=object)
    # b"\xff\x00" is not UTF-8: base64 by hand is "/wA="
    assert encode_array(strings) == [["café", {"b64": "/wA="}]]
    assert encode_array(np.array([10.9, 0.1], np.float32)) == [10.9, 0.1]
    assert encode_array(np.array(3, np.int32)) == 3
    assert encode_array(np.array([True, False])) == [True, False]


def test_json_round_trip_keeps_values_and_dtypes():
    floats = np.array([[10.9, -1.5e-7], [3.0, 1e30]], np.float32)
    back = decode_request_value(json.loads(json.dumps(encode_array(floats))), np.dtype(np.float32))
    assert back.dtype == np.float32 and np.array_equal(back, floats)  # bit-identical float32
    raw = np.array([b"\x80abc", "ü".encode()], dtype=object)
    for decode in (decode_request_value, decode_response_value):
        got = decode(json.loads(json.dumps(encode_array(raw))), "string")
        assert got.dtype == object and got.tolist() == raw.tolist()


def test_request_decoding_is_strict():
    assert decode_request_value([[1, 2], [3, 4]], "int32").tolist() == [[1, 2], [3, 4]]
    assert decode_request_value([], "string").shape == (0,)
    assert decode_request_value({"b64": base64.b64encode(b"x").decode()}, "string") == b"x"
    with pytest.raises(ValueError, match="ragged list"):
        decode_request_value([[1, 2], [3]], "int32")
    with pytest.raises(ValueError, match="different depths"):
        decode_request_value([1, [2]], "int32")
    with pytest.raises(TypeError, match="expected an integer"):
        decode_request_value([1.5], "int32")
    with pytest.raises(TypeError, match="expected a number"):
        decode_request_value([True], "float32")
    with pytest.raises(TypeError, match="expected true/false"):
        decode_request_value([1], "bool")
    with pytest.raises(TypeError, match="expected a string"):
        decode_request_value([1], "string")


def test_response_decoding_is_lenient():
    assert decode_response_value([1.0, 2.0], "int32").dtype == np.int32
    assert decode_response_value([1, 2], None).tolist() == [1, 2]
    assert decode_response_value([1.0], "bfloat16_not_numpy").tolist() == [1.0]
