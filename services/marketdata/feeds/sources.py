"""Feed sources: what each kind of feed produces, chunk by chunk, for the runner to publish.

A source yields :class:`Chunk` s of one (venue, symbol): the ticks as columns (sequence numbers
1, 2, ... per symbol for the replayed and synthetic feeds, within the batch's session: the
trading day of a LOBSTER file, the seed and start time of a synthetic flow), the quotes and
trades to publish on core NATS, and the book after the chunk. ``resume`` maps a symbol to the
last sequence the stream already holds, so a restarted feed continues after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from tradecore import lobster
from tradecore.errors import quote
from tradecore.synthetic import SyntheticFlow
from tradecore.ticks import PRICE_SCALE, QUOTE, TRADE_PRINT, TRADE_TYPES, TickBatch, make_batch
from tradecore_api.events.v1 import common_pb2, market_pb2
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb

from ..books import Levels
from .base import EventFeed

MAX_CHUNK = 32768  # ticks per chunk when unpaced (one JetStream message each, as a rule)
PACED_WINDOW_S = 0.005  # wall time one paced chunk covers
BOOK_DEPTH = 50
_SYMBOL = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SIDE = {common_pb2.BUY: 1, common_pb2.SELL: -1}
# Synthetic spec bounds: the flow's exchange times are int64 nanoseconds from the start time,
# so its expected span (count / rate seconds) must stay far inside that range (≈ 236 years
# from now): a span of at most 1e8 s (≈ 3.2 years) cannot overflow but with a probability
# far below 1e-30. Above 1e9 operations per second the gaps are under a nanosecond.
MIN_SYNTHETIC_RATE = 1e-3
MAX_SYNTHETIC_RATE = 1e9
MAX_SYNTHETIC_SPAN_S = 1e8
MAX_PATH_BYTES = 4096  # PATH_MAX on Linux


def check_symbol(symbol: str, field_name: str) -> str:
    if not _SYMBOL.match(symbol):
        raise ValueError(
            f"{field_name} must be 1-32 letters, digits, '_' or '-' (got {quote(symbol)})"
        )
    return symbol


@dataclass(slots=True)
class Chunk:
    batch: TickBatch
    quotes: list[market_pb2.Quote] = field(default_factory=list)
    trades: list[market_pb2.Trade] = field(default_factory=list)
    book: Levels | None = None
    # True: every quote and trade goes out as its own message (paced replays, live feeds);
    # False (unpaced replays): only the chunk's last quote, and the trades as one packed batch.
    per_event: bool = True


class Source(Protocol):
    venue: str
    symbols: list[str]
    total: int  # ticks the source will produce (0: unknown)
    speed: float  # 0: as fast as possible

    def chunks(self, resume: Mapping[str, int]) -> AsyncIterator[Chunk]: ...

    async def close(self) -> None: ...


def _aggressor(resting_side: int) -> common_pb2.Side:
    """The taker's side of an execution whose resting order has ``resting_side`` (+1 buy)."""
    if resting_side > 0:
        return common_pb2.SELL
    if resting_side < 0:
        return common_pb2.BUY
    return common_pb2.SIDE_UNSPECIFIED


def _trades(venue: str, symbol: str, b: TickBatch) -> list[market_pb2.Trade]:
    idx = np.flatnonzero(np.isin(b.type, TRADE_TYPES))
    if not len(idx):
        return []
    cols = zip(
        b.ts[idx].tolist(),
        b.price[idx].tolist(),
        b.size[idx].tolist(),
        b.side[idx].tolist(),
        b.order_id[idx].tolist(),
        b.seq[idx].tolist(),
        strict=True,
    )
    # Executions carry the resting order's side: the aggressor is the other one.
    return [
        market_pb2.Trade(
            venue=venue,
            symbol=symbol,
            exchange_time_ns=t,
            price=p / PRICE_SCALE,
            size=s,
            aggressor=_aggressor(d),
            maker_order_id=o,
            sequence=q,
        )
        for t, p, s, d, o, q in cols
    ]


def _windows(ts: npt.NDArray[np.int64], start: int, speed: float) -> list[tuple[int, int]]:
    """Chunk bounds from ``start``: MAX_CHUNK rows, and when paced at most one window of
    feed time each."""
    n = len(ts)
    bounds: list[tuple[int, int]] = []
    i = start
    span = int(PACED_WINDOW_S * speed * 1e9) if speed > 0 else 0
    while i < n:
        j = min(n, i + MAX_CHUNK)
        if span:
            j = min(j, max(i + 1, int(np.searchsorted(ts, ts[i] + span, side="left"))))
        bounds.append((i, j))
        i = j
    return bounds


class LobsterSource:
    """Replays a LOBSTER message file; the book is the orderbook file's row after each chunk."""

    venue = "lobster"

    def __init__(self, spec: pb.LobsterFeedSpec) -> None:
        self.symbol = check_symbol(spec.symbol, "lobster.symbol")
        if not np.isfinite(spec.speed) or spec.speed < 0:
            raise ValueError(f"lobster.speed must be finite and >= 0 (got {spec.speed!r})")
        for name in ("messages_path", "book_path"):
            path = getattr(spec, name)
            if not path:
                raise ValueError(f"lobster.{name} is required")
            if len(path.encode()) > MAX_PATH_BYTES:
                raise ValueError(
                    f"lobster.{name} is {len(path.encode())} bytes long, more than a path "
                    f"can be ({MAX_PATH_BYTES})"
                )
            if not Path(path).is_absolute():
                raise ValueError(f"lobster.{name} must be an absolute path (got {path!r})")
        self.spec = spec
        self.symbols = [self.symbol]
        self.speed = float(spec.speed)
        self.total = 0
        self._cols: dict[str, npt.NDArray[np.int64]] = {}
        self._rows: npt.NDArray[np.int64] | None = None
        self._levels = 0
        self.session = ""  # the trading day (YYYY-MM-DD), known once loaded

    def load(self) -> None:
        """Parse and check both files (blocking; ValueError names the file and line)."""
        try:
            msgs = lobster.parse_messages(self.spec.messages_path)
        except ValueError as exc:
            raise ValueError(f"lobster.messages_path: {exc}") from None
        if msgs.date is None:
            raise ValueError(
                "lobster.messages_path: the file name has no trading day (_YYYY-MM-DD_), "
                f"which LOBSTER times need: {self.spec.messages_path}"
            )
        try:
            levels = lobster.book_depth(self.spec.book_path)
            rows = lobster.parse_book(self.spec.book_path, levels)
        except ValueError as exc:
            raise ValueError(f"lobster.book_path: {exc}") from None
        if len(rows) != len(msgs):
            raise ValueError(
                f"lobster.book_path has {len(rows)} rows but lobster.messages_path "
                f"{len(msgs)}: not the same day and symbol"
            )
        oid = msgs.order_id.copy()
        oid[oid < 0] = 0
        self._cols = {
            "ts": msgs.time_ns + lobster.midnight_utc_ns(msgs.date),
            "type": msgs.type.astype(np.int64),
            "order_id": oid,
            "size": msgs.size,
            "price": msgs.price,
            "side": msgs.direction.astype(np.int64),
        }
        self._rows = rows
        self._levels = levels
        self.session = msgs.date.isoformat()
        self.total = len(msgs)

    def _book(self, row: int, seq: int, ts: int) -> Levels:
        assert self._rows is not None
        r = self._rows[row].reshape(self._levels, 4)
        ask_p, ask_s, bid_p, bid_s = r[:, 0], r[:, 1], r[:, 2], r[:, 3]
        na = int(np.count_nonzero(ask_p != lobster.EMPTY_ASK))
        nb = int(np.count_nonzero(bid_p != lobster.EMPTY_BID))
        return Levels(bid_p.copy(), bid_s.copy(), ask_p.copy(), ask_s.copy(), nb, na, seq, ts)

    async def chunks(self, resume: Mapping[str, int]) -> AsyncIterator[Chunk]:
        if self._rows is None:
            await asyncio.get_running_loop().run_in_executor(None, self.load)
        assert self._rows is not None
        c = self._cols
        n = self.total
        seq = np.arange(1, n + 1, dtype=np.uint64)
        # Level 1 after each message, and where it changed (a quote).
        l1 = self._rows[:, :4].copy()
        l1[l1[:, 0] == lobster.EMPTY_ASK, 0:2] = 0
        l1[l1[:, 2] == lobster.EMPTY_BID, 2:4] = 0
        changed = np.ones(n, dtype=bool)
        changed[1:] = (l1[1:] != l1[:-1]).any(axis=1)
        start = min(int(resume.get(self.symbol, 0)), n)
        per_event = self.speed > 0
        for i, j in _windows(c["ts"], start, self.speed):
            b = make_batch(
                self.venue,
                self.symbol,
                "",
                seq=seq[i:j],
                ts=c["ts"][i:j],
                type=c["type"][i:j],
                order_id=c["order_id"][i:j],
                side=c["side"][i:j],
                price=c["price"][i:j],
                size=c["size"][i:j],
                session=self.session,
            )
            qi = np.flatnonzero(changed[i:j]) + i
            if not per_event:
                qi = qi[-1:]
            quotes = [
                market_pb2.Quote(
                    venue=self.venue,
                    symbol=self.symbol,
                    exchange_time_ns=t,
                    ask_price=ap / PRICE_SCALE,
                    ask_size=asz,
                    bid_price=bp / PRICE_SCALE,
                    bid_size=bsz,
                    sequence=q,
                )
                for t, (ap, asz, bp, bsz), q in zip(
                    c["ts"][qi].tolist(), l1[qi].tolist(), (qi + 1).tolist(), strict=True
                )
            ]
            yield Chunk(
                b,
                quotes,
                _trades(self.venue, self.symbol, b) if per_event else [],
                self._book(j - 1, j, int(c["ts"][j - 1])),
                per_event,
            )

    async def close(self) -> None:
        return None


# ---------------------------------------------------------------- synthetic generation
GEN_AHEAD = 4  # generation calls queued ahead of the one being published

FlowOut = tuple[
    tuple[npt.NDArray[Any], ...],  # ts, type, order_id, side, price, size
    tuple[npt.NDArray[np.int64], ...],  # bid_price, bid_size, ask_price, ask_size
    int,  # bid levels
    int,  # ask levels
]


class FlowThread:
    """The thread that generates synthetic order flow (tradecore.synthetic: C++, ≈ 0.13 s of
    CPU per million messages, the GIL released), beside the service's event loop, its
    consumer and its store inserts. It keeps the flows of every running synthetic feed (keyed
    by the source's token and the symbol) and is shared by all of them; calls run in
    submission order, which keeps each flow deterministic. Owned by the service's app object,
    which closes it after the feeds have stopped."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="synthetic-gen")
        self._flows: dict[tuple[str, str], SyntheticFlow] = {}

    def next(
        self, token: str, symbol: str, seed: int, rate: float, start_ns: int, ops: int
    ) -> FlowOut:
        """On the generator thread: the next messages of one flow and its book afterwards."""
        flow = self._flows.get((token, symbol))
        if flow is None:
            flow = self._flows[(token, symbol)] = SyntheticFlow(
                symbol, seed=seed, rate=rate, start_ns=start_ns
            )
        m = flow.next(ops)
        snap = flow.book.snapshot(BOOK_DEPTH)
        cols = (m.ts, m.type, m.order_id, m.side, m.price, m.size)
        book = (snap.bid_price, snap.bid_size, snap.ask_price, snap.ask_size)
        return cols, book, snap.bid_levels, snap.ask_levels

    def drop(self, token: str) -> None:
        """On the generator thread: forget the flows of a source."""
        for key in [k for k in self._flows if k[0] == token]:
            del self._flows[key]

    def close(self) -> None:
        """Wait for the calls queued and end the thread."""
        self.pool.shutdown(wait=True)
        self._flows.clear()


class SyntheticSource:
    """Order flow for several symbols (:class:`tradecore.synthetic.SyntheticFlow`), ``count``
    ticks per symbol; the same seed and start time give the same ticks. Generated on the
    generator thread, up to ``GEN_AHEAD`` chunks ahead of publishing."""

    venue = "synthetic"

    def __init__(self, spec: pb.SyntheticFeedSpec, start_ns: int, generator: FlowThread) -> None:
        if not spec.symbols:
            raise ValueError("synthetic.symbols must name at least one symbol")
        for i, s in enumerate(spec.symbols):
            check_symbol(s, f"synthetic.symbols[{i}]")
        if len(set(spec.symbols)) != len(spec.symbols):
            raise ValueError("synthetic.symbols must not repeat a symbol")
        if not np.isfinite(spec.rate) or spec.rate <= 0:
            raise ValueError(f"synthetic.rate must be finite and > 0 (got {spec.rate!r})")
        if not MIN_SYNTHETIC_RATE <= spec.rate <= MAX_SYNTHETIC_RATE:
            raise ValueError(
                f"synthetic.rate must be between {MIN_SYNTHETIC_RATE:g} and "
                f"{MAX_SYNTHETIC_RATE:g} operations per second (got {spec.rate!r})"
            )
        if spec.count <= 0:
            raise ValueError(f"synthetic.count must be > 0 (got {spec.count})")
        if spec.count / spec.rate > MAX_SYNTHETIC_SPAN_S:
            raise ValueError(
                f"synthetic.count / synthetic.rate is {spec.count / spec.rate:.3g} s of exchange "
                f"time, more than {MAX_SYNTHETIC_SPAN_S:g} s (≈ 3 years): lower synthetic.count "
                "or raise synthetic.rate"
            )
        if not np.isfinite(spec.speed) or spec.speed < 0:
            raise ValueError(f"synthetic.speed must be finite and >= 0 (got {spec.speed!r})")
        self.spec = spec
        self.symbols = list(spec.symbols)
        self.total = int(spec.count) * len(self.symbols)
        self.speed = float(spec.speed)
        self.start_ns = start_ns
        # The same seed and start time give the same ticks: that is the flow's identity.
        self.session = f"{int(spec.seed)}@{start_ns}"
        self.generator = generator
        self._token = uuid.uuid4().hex

    async def chunks(self, resume: Mapping[str, int]) -> AsyncIterator[Chunk]:
        count = int(self.spec.count)
        # An operation makes ≈ 1.15 messages: 3/4 of MAX_CHUNK operations stay under MAX_CHUNK
        # ticks, one JetStream message (a larger chunk is split, into a second small one).
        ops = MAX_CHUNK * 3 // 4
        if self.speed > 0:
            ops = int(min(ops, max(1.0, self.spec.rate * self.speed * PACED_WINDOW_S)))
        gen = self.generator
        loop = asyncio.get_running_loop()
        args = (int(self.spec.seed), float(self.spec.rate), self.start_ns, ops)
        # Calls are made round robin over the symbols that are not done; a symbol is asked
        # for more while its generated total (known once its calls return) is below count, so
        # a call made ahead may turn out not to be needed: its messages are dropped.
        sent = dict.fromkeys(self.symbols, 0)  # messages generated so far per symbol
        queued: deque[tuple[str, asyncio.Future[FlowOut]]] = deque()
        rr = 0

        def submit() -> None:
            nonlocal rr
            open_ = [s for s in self.symbols if sent[s] < count]
            if not open_:
                return
            s = open_[rr % len(open_)]
            rr += 1
            fut = loop.run_in_executor(gen.pool, gen.next, self._token, s, *args)
            queued.append((s, fut))

        last_l1: dict[str, tuple[int, int, int, int]] = {}
        try:
            for _ in range(GEN_AHEAD):
                submit()
            while queued:
                s, fut = queued.popleft()
                cols, book, nb, na = await fut
                if sent[s] >= count:
                    submit()
                    continue
                ts, typ, oid, side, price, size = cols
                take = min(len(ts), count - sent[s])
                seq = np.arange(sent[s] + 1, sent[s] + take + 1, dtype=np.uint64)
                sent[s] += take
                submit()
                if not take:
                    continue
                keep = seq > resume.get(s, 0)
                if not keep.any():
                    continue
                b = make_batch(
                    self.venue,
                    s,
                    "",
                    seq=seq[keep],
                    ts=ts[:take][keep],
                    type=typ[:take][keep],
                    order_id=oid[:take][keep],
                    side=side[:take][keep],
                    price=price[:take][keep],
                    size=size[:take][keep],
                    session=self.session,
                )
                bp, bs, ap, as_ = book
                levels = Levels(bp, bs, ap, as_, nb, na, b.last_seq, int(b.ts[-1]))
                l1 = (int(book[0][0]), int(book[1][0]), int(book[2][0]), int(book[3][0]))
                quotes = []
                if last_l1.get(s) != l1:
                    last_l1[s] = l1
                    quotes.append(
                        market_pb2.Quote(
                            venue=self.venue,
                            symbol=s,
                            exchange_time_ns=int(b.ts[-1]),
                            bid_price=l1[0] / PRICE_SCALE,
                            bid_size=l1[1],
                            ask_price=l1[2] / PRICE_SCALE,
                            ask_size=l1[3],
                            sequence=b.last_seq,
                        )
                    )
                per_event = self.speed > 0
                trades = _trades(self.venue, s, b) if per_event else []
                yield Chunk(b, quotes, trades, levels, per_event)
        finally:
            for _, fut in queued:
                fut.cancel()
            with contextlib.suppress(Exception):
                gen.pool.submit(gen.drop, self._token)

    async def close(self) -> None:
        return None


class EventFeedSource:
    """Any :class:`~services.marketdata.feeds.base.EventFeed` (Alpaca, ...): its quotes and
    trades become ticks (QUOTE / TRADE_PRINT) and are republished as they came; the book is
    the last quote (level 1)."""

    def __init__(self, feed: EventFeed, symbols: list[str]) -> None:
        self.feed = feed
        self.venue = feed.venue
        self.symbols = symbols
        self.total = 0
        self.speed = 0.0

    async def chunks(self, resume: Mapping[str, int]) -> AsyncIterator[Chunk]:
        async for events in self.feed.events():
            by_symbol: dict[str, list[market_pb2.Quote | market_pb2.Trade]] = {}
            for e in events:
                # After a restart, what the stream already holds is not published again
                # (a history feed re-fetches its range with the same sequences).
                if e.sequence > resume.get(e.symbol, 0):
                    by_symbol.setdefault(e.symbol, []).append(e)
            for symbol, evs in by_symbol.items():
                yield _event_chunk(self.venue, symbol, evs)

    async def close(self) -> None:
        await self.feed.close()


def _check_event(venue: str, e: market_pb2.Quote | market_pb2.Trade) -> None:
    """An adapter's event is usable: trades at a finite price > 0 for a size > 0, quotes
    with finite prices and sizes >= 0 (0: that side is empty), an exchange time > 0.
    ``ValueError`` names the event and the field (the feed fails with it)."""
    where = f"{venue}/{e.symbol} sequence {e.sequence}"
    if e.exchange_time_ns <= 0:
        raise ValueError(f"{where}: field 'exchange_time_ns' {e.exchange_time_ns} is not > 0")
    if isinstance(e, market_pb2.Trade):
        if not (math.isfinite(e.price) and e.price > 0):
            raise ValueError(f"{where}: trade field 'price' {e.price!r} is not finite and > 0")
        if e.size <= 0:
            raise ValueError(f"{where}: trade field 'size' {e.size} is not > 0")
        return
    for name in ("bid_price", "ask_price"):
        v = getattr(e, name)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{where}: quote field {name!r} {v!r} is not finite and >= 0")
    for name in ("bid_size", "ask_size"):
        if getattr(e, name) < 0:
            raise ValueError(f"{where}: quote field {name!r} {getattr(e, name)} is negative")


def _event_chunk(
    venue: str, symbol: str, events: list[market_pb2.Quote | market_pb2.Trade]
) -> Chunk:
    for e in events:
        _check_event(venue, e)
    n = len(events)
    cols = {
        k: np.zeros(n, dtype=np.int64)
        for k in ("seq", "ts", "recv", "type", "side", "oid", "px", "sz", "apx", "asz")
    }
    quotes: list[market_pb2.Quote] = []
    trades: list[market_pb2.Trade] = []
    for i, e in enumerate(events):
        cols["seq"][i] = e.sequence
        cols["ts"][i] = e.exchange_time_ns
        cols["recv"][i] = e.receive_time_ns
        if isinstance(e, market_pb2.Quote):
            quotes.append(e)
            cols["type"][i] = QUOTE
            cols["px"][i] = round(e.bid_price * PRICE_SCALE)
            cols["sz"][i] = e.bid_size
            cols["apx"][i] = round(e.ask_price * PRICE_SCALE)
            cols["asz"][i] = e.ask_size
        else:
            trades.append(e)
            cols["type"][i] = TRADE_PRINT
            cols["side"][i] = _SIDE.get(e.aggressor, 0)
            cols["oid"][i] = e.maker_order_id
            cols["px"][i] = round(e.price * PRICE_SCALE)
            cols["sz"][i] = e.size
    b = make_batch(
        venue,
        symbol,
        "",
        seq=cols["seq"],
        ts=cols["ts"],
        recv_ts=cols["recv"],
        type=cols["type"],
        side=cols["side"],
        order_id=cols["oid"],
        price=cols["px"],
        size=cols["sz"],
        ask_price=cols["apx"],
        ask_size=cols["asz"],
    )
    book = None
    if quotes:
        q = quotes[-1]
        book = Levels(
            np.array([round(q.bid_price * PRICE_SCALE)], dtype=np.int64),
            np.array([q.bid_size], dtype=np.int64),
            np.array([round(q.ask_price * PRICE_SCALE)], dtype=np.int64),
            np.array([q.ask_size], dtype=np.int64),
            int(q.bid_size > 0),
            int(q.ask_size > 0),
            q.sequence,
            q.exchange_time_ns,
        )
    return Chunk(b, quotes, trades, book)
