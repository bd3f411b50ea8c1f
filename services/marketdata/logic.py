"""MarketDataService request checks and conversions between protos and columns."""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import duration_pb2, timestamp_pb2
from tradecore.ticks import PRICE_SCALE
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb

from .feeds.sources import check_symbol
from .store import Bars

MAX_DEPTH = 1000
MAX_BARS = 1_000_000
DEFAULT_TICK_BATCH = 10_000
MAX_TICK_BATCH = 100_000
_MIN_INTERVAL_NS = 1_000
_MAX_NS = 2**63 - 1  # times and intervals are int64 nanoseconds (up to 2262-04-11)
_MIN_NS = -(2**63)
# A QueryTicks message is at most this large (a tick takes ≈ 50 bytes, at most 96), far under
# gRPC's default 4 MiB receive limit, whatever batch_size asks for.
MAX_TICKS_MESSAGE_BYTES = 1 << 20


def symbol_of(request: Any) -> str:
    if not request.symbol:
        raise ValueError("symbol is required")
    check_symbol(request.symbol, "symbol")
    if request.venue:
        check_symbol(request.venue, "venue")
    return str(request.symbol)


def depth_of(depth: int) -> int:
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be in 1..{MAX_DEPTH} (got {depth})")
    return depth


def _ns(ts: timestamp_pb2.Timestamp, name: str) -> int:
    if not 0 <= ts.nanos < 1_000_000_000:
        raise ValueError(f"{name}.nanos must be in 0..999999999 (got {ts.nanos})")
    return int(ts.ToNanoseconds())


def time_range(request: Any) -> tuple[int, int]:
    """[start, end) in nanoseconds; both required, start < end. Times beyond what int64
    nanoseconds hold (before 1677-09-21 or after 2262-04-11, where no tick can be) are
    clamped to that range."""
    for name in ("start", "end"):
        if not request.HasField(name):
            raise ValueError(f"{name} is required (an RFC 3339 time, e.g. 2012-06-21T13:30:00Z)")
    start, end = _ns(request.start, "start"), _ns(request.end, "end")
    if start >= end:
        raise ValueError(
            f"start must be before end (got start={request.start.ToJsonString()}, "
            f"end={request.end.ToJsonString()})"
        )
    return min(max(start, _MIN_NS), _MAX_NS), min(max(end, _MIN_NS), _MAX_NS)


def interval_ns(request: pb.GetBarsRequest, start: int, end: int) -> int:
    if not request.HasField("interval"):
        raise ValueError("interval is required (a duration such as 60s)")
    d: duration_pb2.Duration = request.interval
    if d.seconds < 0 or d.nanos < 0 or (d.seconds == 0 and d.nanos == 0):
        raise ValueError(f"interval must be > 0 (got {d.ToJsonString()})")
    ns = int(d.ToNanoseconds())
    if ns < _MIN_INTERVAL_NS:
        raise ValueError(f"interval must be at least 1 microsecond (got {d.ToJsonString()})")
    if ns > _MAX_NS:
        raise ValueError(
            f"interval must be at most {_MAX_NS} ns (≈ 292 years, int64 nanoseconds; "
            f"got {d.ToJsonString()})"
        )
    if (end - start) // ns > MAX_BARS:
        raise ValueError(
            f"interval {d.ToJsonString()} gives more than {MAX_BARS} bars over the range; "
            "use a longer interval or a shorter range"
        )
    return ns


def tick_batch_size(n: int) -> int:
    if n == 0:
        return DEFAULT_TICK_BATCH
    if not 1 <= n <= MAX_TICK_BATCH:
        raise ValueError(f"batch_size must be in 1..{MAX_TICK_BATCH} (got {n})")
    return n


def bars_response(symbol: str, interval: int, bars: Bars) -> pb.GetBarsResponse:
    resp = pb.GetBarsResponse(symbol=symbol)
    resp.interval.FromNanoseconds(interval)
    s = float(PRICE_SCALE)
    vol = bars.volume
    vwap = np.divide(bars.notional, vol, out=np.zeros(len(vol)), where=vol > 0) / s
    out = resp.bars
    for t, o, h, lo, c, v, n, w in zip(
        bars.start_ns.tolist(),
        (bars.open / s).tolist(),
        (bars.high / s).tolist(),
        (bars.low / s).tolist(),
        (bars.close / s).tolist(),
        vol.tolist(),
        bars.trades.tolist(),
        vwap.tolist(),
        strict=True,
    ):
        bar = out.add(open=o, high=h, low=lo, close=c, volume=v, trades=n, vwap=w)
        bar.start.FromNanoseconds(t)
    return resp


def _tick_batch(venue: str, symbol: str, cols: dict[str, Any], sel: Any) -> pb.TickBatch:
    s = float(PRICE_SCALE)
    return pb.TickBatch(
        venue=venue,
        symbol=symbol,
        sequence=cols["seq"][sel].tolist(),
        exchange_time_ns=cols["ts"][sel].tolist(),
        receive_time_ns=cols["recv_ts"][sel].tolist(),
        order_id=cols["order_id"][sel].tolist(),
        type=cols["type"][sel].tolist(),
        side=cols["side"][sel].tolist(),
        price=(cols["price"][sel] / s).tolist(),
        size=cols["size"][sel].tolist(),
        ask_price=(cols["ask_price"][sel] / s).tolist(),
        ask_size=cols["ask_size"][sel].tolist(),
    )


_SAMPLE_ROWS = 1024


def _bounded(venue: str, symbol: str, cols: dict[str, Any], rows: Any) -> list[pb.TickBatch]:
    """The rows (an index array) as TickBatch protos of at most MAX_TICKS_MESSAGE_BYTES each.
    The bytes per tick are measured on the first rows (a small message) to cut the rows into
    equal parts of ≈ 3/4 of the limit; a part that still serializes larger is cut again."""
    if len(rows) > _SAMPLE_ROWS:
        per_row = _tick_batch(venue, symbol, cols, rows[:_SAMPLE_ROWS]).ByteSize() / _SAMPLE_ROWS
        parts = int(len(rows) * per_row / (0.75 * MAX_TICKS_MESSAGE_BYTES)) + 1
        if parts > 1:
            return [
                m for part in np.array_split(rows, parts) for m in _fit(venue, symbol, cols, part)
            ]
    return _fit(venue, symbol, cols, rows)


def _fit(venue: str, symbol: str, cols: dict[str, Any], rows: Any) -> list[pb.TickBatch]:
    msg = _tick_batch(venue, symbol, cols, rows)
    size = msg.ByteSize()
    if size <= MAX_TICKS_MESSAGE_BYTES or len(rows) < 2:
        return [msg]
    parts = min(len(rows), -(-size // MAX_TICKS_MESSAGE_BYTES) + 1)
    return [m for part in np.array_split(rows, parts) for m in _fit(venue, symbol, cols, part)]


def tick_batches(symbol: str, cols: dict[str, Any]) -> list[pb.TickBatch]:
    """TickBatch protos of a column dict from the store: one per venue, cut into more where
    one would exceed MAX_TICKS_MESSAGE_BYTES."""
    out = []
    venues = cols["venue"]
    for venue in sorted({str(v) for v in venues.tolist()}) if len(venues) else []:
        out += _bounded(venue, symbol, cols, np.flatnonzero(venues == venue))
    return out


MAX_FEED_WAIT_S = 30.0


def feed_wait_s(request: pb.GetFeedRequest) -> float:
    """GetFeed's long-poll wait in seconds (0: answer at once)."""
    if not request.HasField("wait"):
        return 0.0
    d: duration_pb2.Duration = request.wait
    s = float(d.ToNanoseconds()) / 1e9
    if d.seconds < 0 or d.nanos < 0 or s > MAX_FEED_WAIT_S:
        raise ValueError(
            f"wait must be between 0s and {MAX_FEED_WAIT_S:g}s (got {d.ToJsonString()})"
        )
    return s
