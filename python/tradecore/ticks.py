"""Columnar tick batches: the one shape market data has between a feed, the wire and the store.

A :class:`TickBatch` holds the ticks of one (venue, symbol) as numpy columns (no per-tick
Python objects). :func:`pack` turns it into one compact binary message (a small header and the
raw little-endian columns) and :func:`unpack` back, without copying the columns more than once.

Prices are integers in units of 1/``PRICE_SCALE`` dollars (LOBSTER's dollars x 10000); times
are int64 nanoseconds since the Unix epoch (UTC). Tick types follow LOBSTER (1 add, 2 partial
cancel, 3 delete, 4 execution, 5 hidden execution, 6 cross trade, 7 halt) plus ``QUOTE`` (10:
``price``/``size`` the bid, ``ask_price``/``ask_size`` the ask) and ``TRADE_PRINT`` (11: a trade
reported by an external feed). ``side`` is +1 buy, -1 sell, 0 unknown.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

PRICE_SCALE = 10_000
ADD, REDUCE, DELETE, EXECUTE, EXECUTE_HIDDEN, CROSS, HALT = 1, 2, 3, 4, 5, 6, 7
QUOTE, TRADE_PRINT = 10, 11
TRADE_TYPES: tuple[int, ...] = (EXECUTE, EXECUTE_HIDDEN, TRADE_PRINT)

COLUMNS: tuple[tuple[str, np.dtype[Any]], ...] = (
    ("seq", np.dtype("<u8")),
    ("ts", np.dtype("<i8")),
    ("recv_ts", np.dtype("<i8")),
    ("order_id", np.dtype("<u8")),
    ("type", np.dtype("u1")),
    ("side", np.dtype("i1")),
    ("price", np.dtype("<i8")),
    ("size", np.dtype("<i8")),
    ("ask_price", np.dtype("<i8")),
    ("ask_size", np.dtype("<i8")),
)
BYTES_PER_TICK = sum(dt.itemsize for _, dt in COLUMNS)
_MAGIC = b"TCK1"
_HEAD = struct.Struct("<4sIHHH")  # magic, rows, len(venue), len(symbol), len(feed)


@dataclass(slots=True)
class TickBatch:
    """Ticks of one (venue, symbol), in sequence order, as columns of equal length."""

    venue: str
    symbol: str
    feed: str
    seq: npt.NDArray[np.uint64]
    ts: npt.NDArray[np.int64]
    recv_ts: npt.NDArray[np.int64]
    order_id: npt.NDArray[np.uint64]
    type: npt.NDArray[np.uint8]
    side: npt.NDArray[np.int8]
    price: npt.NDArray[np.int64]
    size: npt.NDArray[np.int64]
    ask_price: npt.NDArray[np.int64]
    ask_size: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.seq)

    def column(self, name: str) -> npt.NDArray[Any]:
        value: npt.NDArray[Any] = getattr(self, name)
        return value

    def take(self, index: npt.NDArray[Any] | slice) -> TickBatch:
        """The rows selected by a slice, boolean mask or index array."""
        cols = {name: self.column(name)[index] for name, _ in COLUMNS}
        return TickBatch(self.venue, self.symbol, self.feed, **cols)

    @property
    def first_seq(self) -> int:
        return int(self.seq[0]) if len(self.seq) else 0

    @property
    def last_seq(self) -> int:
        return int(self.seq[-1]) if len(self.seq) else 0


def make_batch(
    venue: str,
    symbol: str,
    feed: str,
    *,
    seq: npt.ArrayLike,
    ts: npt.ArrayLike,
    type: npt.ArrayLike,
    price: npt.ArrayLike,
    size: npt.ArrayLike,
    order_id: npt.ArrayLike | None = None,
    side: npt.ArrayLike | None = None,
    recv_ts: npt.ArrayLike | int = 0,
    ask_price: npt.ArrayLike | None = None,
    ask_size: npt.ArrayLike | None = None,
) -> TickBatch:
    """A batch from array-likes (missing columns are zeros; a scalar ``recv_ts`` broadcasts)."""
    seq_a = np.ascontiguousarray(seq, dtype=np.uint64)
    n = len(seq_a)

    def col(value: npt.ArrayLike | None, dtype: np.dtype[Any], name: str) -> npt.NDArray[Any]:
        if value is None:
            return np.zeros(n, dtype=dtype)
        arr = np.asarray(value, dtype=dtype)
        if arr.ndim == 0:
            return np.full(n, arr, dtype=dtype)
        if arr.shape != (n,):
            raise ValueError(f"{name} has {arr.shape} elements, not ({n},) like seq")
        return np.ascontiguousarray(arr)

    dtypes = dict(COLUMNS)
    return TickBatch(
        venue,
        symbol,
        feed,
        seq=seq_a,
        ts=col(ts, dtypes["ts"], "ts"),
        recv_ts=col(recv_ts, dtypes["recv_ts"], "recv_ts"),
        order_id=col(order_id, dtypes["order_id"], "order_id"),
        type=col(type, dtypes["type"], "type"),
        side=col(side, dtypes["side"], "side"),
        price=col(price, dtypes["price"], "price"),
        size=col(size, dtypes["size"], "size"),
        ask_price=col(ask_price, dtypes["ask_price"], "ask_price"),
        ask_size=col(ask_size, dtypes["ask_size"], "ask_size"),
    )


def concat(batches: list[TickBatch]) -> TickBatch:
    """One batch from several of the same (venue, symbol, feed)."""
    if not batches:
        raise ValueError("batches must not be empty")
    first = batches[0]
    if len(batches) == 1:
        return first
    cols = {name: np.concatenate([b.column(name) for b in batches]) for name, _ in COLUMNS}
    return TickBatch(first.venue, first.symbol, first.feed, **cols)


def pack(batch: TickBatch) -> bytes:
    """The batch as one binary message: header, names, then each column's raw bytes."""
    names = [batch.venue.encode(), batch.symbol.encode(), batch.feed.encode()]
    head = _HEAD.pack(_MAGIC, len(batch), *(len(x) for x in names))
    parts = [head, *names]
    for name, dtype in COLUMNS:
        parts.append(np.ascontiguousarray(batch.column(name), dtype=dtype).tobytes())
    return b"".join(parts)


def unpack(data: bytes | bytearray | memoryview) -> TickBatch:
    """Inverse of :func:`pack`; ``ValueError`` when the bytes are not a tick batch."""
    buf = memoryview(data)
    if len(buf) < _HEAD.size:
        raise ValueError(f"tick batch: {len(buf)} bytes is shorter than the header")
    magic, n, lv, ls, lf = _HEAD.unpack_from(buf)
    if magic != _MAGIC:
        raise ValueError(f"tick batch: bad magic {bytes(magic)!r}")
    off = _HEAD.size
    expected = off + lv + ls + lf + n * BYTES_PER_TICK
    if len(buf) != expected:
        raise ValueError(f"tick batch: {len(buf)} bytes, expected {expected} for {n} ticks")
    venue = bytes(buf[off : off + lv]).decode()
    symbol = bytes(buf[off + lv : off + lv + ls]).decode()
    feed = bytes(buf[off + lv + ls : off + lv + ls + lf]).decode()
    off += lv + ls + lf
    cols: dict[str, npt.NDArray[Any]] = {}
    for name, dtype in COLUMNS:
        size = n * dtype.itemsize
        cols[name] = np.frombuffer(buf[off : off + size], dtype=dtype)
        off += size
    return TickBatch(venue, symbol, feed, **cols)


__all__ = [
    "ADD",
    "BYTES_PER_TICK",
    "COLUMNS",
    "CROSS",
    "DELETE",
    "EXECUTE",
    "EXECUTE_HIDDEN",
    "HALT",
    "PRICE_SCALE",
    "QUOTE",
    "REDUCE",
    "TRADE_PRINT",
    "TRADE_TYPES",
    "TickBatch",
    "concat",
    "make_batch",
    "pack",
    "unpack",
]
