"""Tensor data on the Open Inference Protocol's wire: raw bytes (gRPC and the HTTP binary
extension, Triton's BYTES serialisation) and JSON ``data``."""

from __future__ import annotations

import numpy as np
import pytest
from tradecore.inference import DATATYPES
from tradecore_services.inference import codec
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

MAX = 1 << 20


@pytest.mark.parametrize("name", [n for n in DATATYPES if n != "BYTES"])
def test_raw_round_trip_of_every_numeric_datatype(name: str) -> None:
    arr = (np.arange(12) % 2 == 1) if name == "BOOL" else np.arange(12)
    arr = arr.astype(DATATYPES[name]).reshape(3, 4)
    raw = codec.to_raw(arr)
    assert raw == arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    back = codec.from_raw("input tensor 'x'", name, [3, 4], raw, MAX)
    assert back.dtype == arr.dtype and np.array_equal(back, arr)


def test_bytes_are_length_prefixed_as_tritonclient_serialises_them() -> None:
    arr = np.array([[b"a", b""], [b"\x00\xff", "héllo".encode()]], dtype=np.object_)
    raw = codec.to_raw(arr)
    assert raw == serialize_byte_tensor(arr).item()
    back = codec.from_raw("input tensor 's'", "BYTES", [2, 2], raw, MAX)
    assert back.tolist() == arr.tolist()
    assert deserialize_bytes_tensor(raw).tolist() == arr.reshape(-1).tolist()


@pytest.mark.parametrize(
    ("dtype", "shape", "data", "message"),
    [
        (
            "FP32",
            [2, 2],
            b"\0" * 12,
            r"input tensor 'x': 12 bytes of data, shape \[2, 2\] of FP32 needs 16",
        ),
        ("FP33", [1], b"\0" * 4, r"input tensor 'x': datatype 'FP33' is not one of"),
        ("FP32", [-1, 2], b"", r"input tensor 'x': shape \[-1, 2\] has a negative dimension"),
        ("FP32", [1 << 30, 1 << 30], b"", r"input tensor 'x': shape .* elements, at most"),
        ("BYTES", [2], b"\x01\0\0\0a", r"input tensor 'x': BYTES data ends at element 1 of 2"),
        ("BYTES", [1], b"\x09\0\0\0a", r"input tensor 'x': BYTES element 0 is 9 bytes, past"),
        ("BYTES", [1], b"\x01\0\0\0ab", r"input tensor 'x': 1 bytes of data after the 1 BYTES"),
    ],
)
def test_bad_raw_data_is_a_value_error_naming_the_tensor(
    dtype: str, shape: list[int], data: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        codec.from_raw("input tensor 'x'", dtype, shape, data, MAX)


def test_json_data_flat_or_nested() -> None:
    flat = codec.from_json("t", "FP32", [2, 2], [1, 2, 3.5, 4], MAX)
    nested = codec.from_json("t", "FP32", [2, 2], [[1, 2], [3.5, 4]], MAX)
    assert flat.dtype == np.float32 and np.array_equal(flat, nested)
    assert codec.to_json(flat) == [1.0, 2.0, 3.5, 4.0]
    s = codec.from_json("t", "BYTES", [2], ["a", "b"], MAX)
    assert s.tolist() == [b"a", b"b"] and codec.to_json(s) == ["a", "b"]
    assert codec.from_json("t", "BOOL", [2], [True, False], MAX).tolist() == [True, False]


@pytest.mark.parametrize(
    ("dtype", "shape", "data", "message"),
    [
        ("FP32", [3], [1, 2], r"t: 2 data elements, shape \[3\] needs 3"),
        ("FP32", [1], ["x"], r"t: element 0 is 'x', not a FP32 value"),
        ("INT32", [1], [1.5], r"t: element 0 is 1.5, not an integer"),
        ("INT8", [1], [300], r"t: a value is out of range for INT8"),
        ("BOOL", [1], [1], r"t: element 0 is 1, not a BOOL value"),
        ("BYTES", [1], [1], r"t: BYTES element 0 is 1, not a string"),
        ("FP32", [1], {"a": 1}, r"t: 'data' must be a list"),
    ],
)
def test_bad_json_data_is_a_value_error_naming_the_tensor(
    dtype: str, shape: list[int], data: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        codec.from_json("t", dtype, shape, data, MAX)


def test_json_cannot_carry_nan() -> None:
    with pytest.raises(ValueError, match="NaN or infinity"):
        codec.to_json(np.array([np.nan], dtype=np.float32))
