"""Columnar tick batches: the one shape market data has between a feed, the wire and the store.

A :class:`TickBatch` holds the ticks of one (venue, symbol) as numpy columns (no per-tick
Python objects). :func:`pack` turns it into one compact binary message (a small header, then
each column stored whole, as one constant, as an arithmetic range, narrowed to 4 bytes or as
4-byte deltas, whichever is smallest) and :func:`unpack` back.

Prices are integers in units of 1/``PRICE_SCALE`` dollars (LOBSTER's dollars x 10000); times
are int64 nanoseconds since the Unix epoch (UTC). Tick types follow LOBSTER (1 add, 2 partial
cancel, 3 delete, 4 execution, 5 hidden execution, 6 cross trade, 7 halt) plus ``QUOTE`` (10:
``price``/``size`` the bid, ``ask_price``/``ask_size`` the ask) and ``TRADE_PRINT`` (11: a trade
reported by an external feed). ``side`` is +1 buy, -1 sell, 0 unknown. Book updates published
on NATS (never stored) use ``LEVEL`` (20: ``side``, ``price``, ``size`` the level's new total,
0 = gone) and ``LEVEL_SNAPSHOT`` (21: the whole top of the book, replacing what the reader had).
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
LEVEL, LEVEL_SNAPSHOT = 20, 21
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
BYTES_PER_TICK = sum(dt.itemsize for _, dt in COLUMNS)  # a tick with every column whole
_MAGIC = b"TCK2"  # each column preceded by its encoding
_MAGIC_SESSION = b"TCK3"  # TCK2 with the batch's session after the feed
_HEAD = struct.Struct("<4sIHHH")  # magic, rows, len(venue), len(symbol), len(feed)
_SESSION_LEN = struct.Struct("<H")  # TCK3: len(session), after the header
# Column encodings of TCK2 and TCK3 (one byte before each column's bytes):
_RAW = 0  # n values of the column's dtype
_CONST = 1  # one value of the column's dtype, repeated n times
_RANGE = 2  # 8-byte columns: first value, then the step (both 8 bytes; value i = first + i*step)
_NARROW = 3  # 8-byte columns: n values as 4-byte integers of the same signedness
_DELTA = 4  # 8-byte columns: first value (8 bytes), then n-1 differences as <i4
_I4_MIN, _I4_MAX = -(2**31), 2**31 - 1


@dataclass(slots=True)
class TickBatch:
    """Ticks of one (venue, symbol), in sequence order, as columns of equal length.

    ``session`` names the run of sequences the ticks belong to: a tick is identified by
    (venue, symbol, session, seq). A LOBSTER replay's session is its trading day (its
    sequences are the file's rows, 1, 2, ... every day), a synthetic feed's its seed and start
    time; feeds whose sequences are unique on their own (Alpaca's are time-based) leave it
    empty."""

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
    session: str = ""

    def __len__(self) -> int:
        return len(self.seq)

    def column(self, name: str) -> npt.NDArray[Any]:
        value: npt.NDArray[Any] = getattr(self, name)
        return value

    def take(self, index: npt.NDArray[Any] | slice) -> TickBatch:
        """The rows selected by a slice, boolean mask or index array."""
        cols = {name: self.column(name)[index] for name, _ in COLUMNS}
        return TickBatch(self.venue, self.symbol, self.feed, **cols, session=self.session)

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
    session: str = "",
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
        session=session,
    )


def concat(batches: list[TickBatch]) -> TickBatch:
    """One batch from several of the same (venue, symbol, feed, session)."""
    if not batches:
        raise ValueError("batches must not be empty")
    first = batches[0]
    if len(batches) == 1:
        return first
    cols = {name: np.concatenate([b.column(name) for b in batches]) for name, _ in COLUMNS}
    return TickBatch(first.venue, first.symbol, first.feed, **cols, session=first.session)


def _encode(col: npt.NDArray[Any], dtype: np.dtype[Any]) -> tuple[int, bytes]:
    """The smallest of the encodings that reproduce ``col`` exactly."""
    n = len(col)
    if n == 0:
        return _RAW, b""
    if (col == col[0]).all():
        return _CONST, col[:1].tobytes()
    if dtype.itemsize != 8:
        return _RAW, col.tobytes()
    # Differences modulo 2**64 (as int64): exact for unsigned columns too.
    diff = np.diff(col.view("<i8"))
    if (diff == diff[0]).all():
        return _RANGE, col[:1].tobytes() + diff[:1].tobytes()
    if dtype.kind == "u":
        if int(col.max()) <= 2**32 - 1:
            return _NARROW, col.astype("<u4").tobytes()
    elif int(col.min()) >= _I4_MIN and int(col.max()) <= _I4_MAX:
        return _NARROW, col.astype("<i4").tobytes()
    if int(diff.min()) >= _I4_MIN and int(diff.max()) <= _I4_MAX:
        return _DELTA, col[:1].tobytes() + diff.astype("<i4").tobytes()
    return _RAW, col.tobytes()


def pack(batch: TickBatch) -> bytes:
    """The batch as one binary message (``TCK2``): header, names, then for each column one
    encoding byte and that encoding's bytes. A batch with a session is written as ``TCK3``:
    the same with ``<H`` len(session) after the header and the session after the feed."""
    names = [batch.venue.encode(), batch.symbol.encode(), batch.feed.encode()]
    session = batch.session.encode()
    if session:
        head = _HEAD.pack(_MAGIC_SESSION, len(batch), *(len(x) for x in names))
        head += _SESSION_LEN.pack(len(session))
        names.append(session)
    else:
        head = _HEAD.pack(_MAGIC, len(batch), *(len(x) for x in names))
    parts = [head, *names]
    for name, dtype in COLUMNS:
        mode, data = _encode(np.ascontiguousarray(batch.column(name), dtype=dtype), dtype)
        parts += (bytes((mode,)), data)
    return b"".join(parts)


def _decode(
    buf: memoryview, off: int, n: int, name: str, dtype: np.dtype[Any]
) -> tuple[npt.NDArray[Any], int]:
    if off >= len(buf):
        raise ValueError(f"tick batch: {len(buf)} bytes ends before column {name}")
    mode = buf[off]
    off += 1
    wide = dtype.itemsize == 8
    if mode == _RAW:
        size = n * dtype.itemsize
    elif mode == _CONST:
        size = dtype.itemsize if n else 0
    elif mode == _RANGE and wide:
        size = 16
    elif mode == _NARROW and wide:
        size = 4 * n
    elif mode == _DELTA and wide and n:
        size = 8 + 4 * (n - 1)
    else:
        raise ValueError(f"tick batch: column {name} has unknown encoding {mode}")
    if off + size > len(buf):
        raise ValueError(f"tick batch: {len(buf)} bytes, expected at least {off + size}")
    raw = buf[off : off + size]
    col: npt.NDArray[Any]
    if mode == _RAW:
        col = np.frombuffer(raw, dtype=dtype)
    elif mode == _CONST:
        col = np.full(n, np.frombuffer(raw, dtype=dtype)[0] if n else 0, dtype=dtype)
    elif mode == _RANGE:
        first, step = np.frombuffer(raw, dtype="<i8")
        with np.errstate(over="ignore"):
            col = (first + np.arange(n, dtype="<i8") * step).view(dtype)
    elif mode == _NARROW:
        col = np.frombuffer(raw, dtype="<u4" if dtype.kind == "u" else "<i4").astype(dtype)
    else:  # _DELTA
        col = np.empty(n, dtype="<i8")
        col[0] = np.frombuffer(raw[:8], dtype="<i8")[0]
        col[1:] = np.frombuffer(raw[8:], dtype="<i4")
        col = np.cumsum(col, dtype="<i8").view(dtype)
    return col, off + size


def unpack(data: bytes | bytearray | memoryview) -> TickBatch:
    """Inverse of :func:`pack`; ``ValueError`` when the bytes are not a tick batch."""
    buf = memoryview(data).cast("B")
    if len(buf) < _HEAD.size:
        raise ValueError(f"tick batch: {len(buf)} bytes is shorter than the header")
    magic, n, lv, ls, lf = _HEAD.unpack_from(buf)
    if magic not in (_MAGIC, _MAGIC_SESSION):
        raise ValueError(f"tick batch: bad magic {bytes(magic)!r}")
    off = _HEAD.size
    lsess = 0
    if magic == _MAGIC_SESSION:
        if len(buf) < off + _SESSION_LEN.size:
            raise ValueError(f"tick batch: {len(buf)} bytes is shorter than the header")
        (lsess,) = _SESSION_LEN.unpack_from(buf, off)
        off += _SESSION_LEN.size
    names = lv + ls + lf + lsess
    if len(buf) < off + names:
        raise ValueError(f"tick batch: {len(buf)} bytes, expected at least {off + names}")
    venue = bytes(buf[off : off + lv]).decode()
    symbol = bytes(buf[off + lv : off + lv + ls]).decode()
    feed = bytes(buf[off + lv + ls : off + lv + ls + lf]).decode()
    session = bytes(buf[off + lv + ls + lf : off + names]).decode()
    off += names
    cols: dict[str, npt.NDArray[Any]] = {}
    for name, dtype in COLUMNS:
        cols[name], off = _decode(buf, off, n, name, dtype)
    if off != len(buf):
        raise ValueError(f"tick batch: {len(buf)} bytes, expected {off} for {n} ticks")
    return TickBatch(venue, symbol, feed, **cols, session=session)


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


def apply_book_update(bids: dict[int, int], asks: dict[int, int], b: TickBatch) -> None:
    """Apply one ``.book`` message (``LEVEL`` / ``LEVEL_SNAPSHOT`` rows) to a reader's book
    levels, ``price -> size`` per side: a snapshot replaces both sides, a delta sets each
    level's new size (0 removes it). Rows of other types are ignored."""
    if len(b) and int(b.type[0]) == LEVEL_SNAPSHOT:
        bids.clear()
        asks.clear()
    for t, side, price, size in zip(
        b.type.tolist(), b.side.tolist(), b.price.tolist(), b.size.tolist(), strict=True
    ):
        if t not in (LEVEL, LEVEL_SNAPSHOT):
            continue
        levels = bids if side > 0 else asks
        if size > 0:
            levels[price] = size
        else:
            levels.pop(price, None)
