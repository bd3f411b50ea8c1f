"""Tensor data on the wire and back, as the Open Inference Protocol carries it (no gRPC here).

- raw: little-endian, row-major bytes (gRPC ``raw_input_contents``/``raw_output_contents``,
  and the HTTP binary tensor data extension); a BYTES tensor is its elements one after the
  other, each preceded by its length as a 4-byte little-endian unsigned integer (Triton's
  serialisation, the one tritonclient writes and reads).
- JSON: ``data`` as a flat row-major list or nested lists of the tensor's shape; BYTES elements
  as strings.

Every error is a ValueError naming the tensor (``input tensor 'x': ...``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from tradecore.errors import quote
from tradecore.inference import DATATYPES, datatype_of, dtype_of

Array = npt.NDArray[Any]
_LEN = struct.Struct("<I")
# Each fixed-size datatype's little-endian dtype (raw data's byte order), and whether it is the
# machine's own (then the decoded array is a view of the request's bytes, nothing converted).
_RAW: dict[str, tuple[np.dtype[Any], bool]] = {
    name: (dt.newbyteorder("<"), dt.newbyteorder("<") == dt)
    for name, dt in DATATYPES.items()
    if dt.kind != "O"
}


def check_shape(what: str, shape: Sequence[int], max_elements: int) -> int:
    """The element count of ``shape``; ValueError naming ``what`` for a negative dimension or
    more than ``max_elements`` elements (checked before anything is allocated)."""
    for d in shape:
        if d < 0:
            raise ValueError(f"{what}: shape {list(shape)} has a negative dimension")
    count = math.prod(shape)
    if count > max_elements:
        raise ValueError(
            f"{what}: shape {list(shape)} has {count} elements, at most {max_elements}"
        )
    return count


def datatype(what: str, name: str) -> np.dtype[Any]:
    """The numpy dtype of OIP datatype ``name``; ValueError naming ``what`` when unknown."""
    try:
        return dtype_of(name)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def from_raw(
    what: str, dtype_name: str, shape: Sequence[int], data: bytes, max_elements: int
) -> Array:
    """The tensor encoded in ``data`` (raw form)."""
    raw = _RAW.get(dtype_name)
    if raw is None:
        datatype(what, dtype_name)  # BYTES, or a ValueError naming the datatype
        return _bytes_from_raw(what, shape, check_shape(what, shape, max_elements), data)
    little, native = raw
    count = check_shape(what, shape, max_elements)
    need = count * little.itemsize
    if len(data) != need:
        raise ValueError(
            f"{what}: {len(data)} bytes of data, shape {list(shape)} of {dtype_name} needs {need}"
        )
    arr = np.frombuffer(data, dtype=little)
    if not native:
        arr = arr.astype(little.newbyteorder("="))
    return arr.reshape(shape)


def _bytes_from_raw(what: str, shape: Sequence[int], count: int, data: bytes) -> Array:
    out = np.empty(count, dtype=np.object_)
    view = memoryview(data)
    pos, end = 0, len(data)
    for i in range(count):
        if pos + 4 > end:
            raise ValueError(f"{what}: BYTES data ends at element {i} of {count}")
        (n,) = _LEN.unpack_from(view, pos)
        pos += 4
        if pos + n > end:
            raise ValueError(f"{what}: BYTES element {i} is {n} bytes, past the end of the data")
        out[i] = bytes(view[pos : pos + n])
        pos += n
    if pos != end:
        raise ValueError(f"{what}: {end - pos} bytes of data after the {count} BYTES elements")
    return out.reshape(shape)


def to_raw(arr: Array) -> bytes:
    """``arr`` in raw form (BYTES for object, bytes and str arrays)."""
    if arr.dtype.kind in ("O", "S", "U"):
        parts: list[bytes] = []
        for item in arr.reshape(-1):
            b = item.encode() if isinstance(item, str) else bytes(item)
            parts.append(_LEN.pack(len(b)))
            parts.append(b)
        return b"".join(parts)
    a = np.ascontiguousarray(arr)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return a.tobytes()


def from_json(
    what: str, dtype_name: str, shape: Sequence[int], data: object, max_elements: int
) -> Array:
    """The tensor given as JSON ``data`` (flat row-major list or nested lists of ``shape``)."""
    dt = datatype(what, dtype_name)
    count = check_shape(what, shape, max_elements)
    flat = _flatten(what, data, max_elements)
    if len(flat) != count:
        raise ValueError(f"{what}: {len(flat)} data elements, shape {list(shape)} needs {count}")
    if dtype_name == "BYTES":
        out = np.empty(count, dtype=np.object_)
        for i, v in enumerate(flat):
            if not isinstance(v, str):
                raise ValueError(f"{what}: BYTES element {i} is {quote(v)}, not a string")
            out[i] = v.encode()
        return out.reshape(shape)
    for i, v in enumerate(flat):
        ok = (
            isinstance(v, bool)
            if dtype_name == "BOOL"
            else (isinstance(v, int | float) and not isinstance(v, bool))
        )
        if not ok:
            raise ValueError(f"{what}: element {i} is {quote(v)}, not a {dtype_name} value")
        if dt.kind in ("i", "u") and not (isinstance(v, int) or float(v).is_integer()):
            raise ValueError(f"{what}: element {i} is {quote(v)}, not an integer")
    try:
        arr = np.array(flat, dtype=dt)
    except OverflowError:
        raise ValueError(f"{what}: a value is out of range for {dtype_name}") from None
    if (
        dt.kind in ("i", "u")
        and arr.size
        and any(int(a) != int(v) for a, v in zip(arr.tolist(), flat, strict=True))
    ):
        raise ValueError(f"{what}: a value is out of range for {dtype_name}")
    return arr.reshape(shape)


def _flatten(what: str, data: object, max_elements: int) -> list[Any]:
    if not isinstance(data, list):
        raise ValueError(f"{what}: 'data' must be a list")
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
            if len(out) > max_elements:
                raise ValueError(f"{what}: more than {max_elements} data elements")
        else:
            stack.pop()
    return out


def to_json(arr: Array) -> list[Any]:
    """``arr`` as a flat row-major JSON list (BYTES elements as text, invalid UTF-8 replaced)."""
    if arr.dtype.kind in ("O", "S", "U"):
        return [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in arr.reshape(-1)
        ]
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        # JSON has no NaN or infinity: a model output that holds one is reported, not encoded.
        raise ValueError("output contains NaN or infinity, which JSON cannot carry")
    out: list[Any] = arr.reshape(-1).tolist()
    return out


def oip_datatype(arr: Array) -> str:
    """The OIP datatype of an output array (object arrays are BYTES)."""
    return "BYTES" if arr.dtype.kind == "O" else datatype_of(arr.dtype)
