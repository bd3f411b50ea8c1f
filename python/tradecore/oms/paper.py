"""A paper venue: our orders worked against a market replayed into the C++ order book.

One :class:`PaperVenue` serves any number of symbols; each symbol has its own
:class:`~tradecore.orderbook.OrderBook` that mirrors the market exactly as the feed describes it.
Our orders never enter that book (the feed's book state is never changed by us); they live in
per-level FIFOs beside it, each with its place in the market's queue.

Feeding it (all prices in integer ticks, ``PaperConfig.price_scale`` ticks per currency unit;
times are int64 nanoseconds of market time and never go backwards):

- :meth:`PaperVenue.on_l3` — order-by-order messages with order ids, LOBSTER's codes
  (:class:`L3`: add, partial cancel, delete, visible execution, hidden execution, cross, halt);
  :meth:`PaperVenue.feed_lobster` replays a parsed LOBSTER day, re-synchronising the visible levels
  with the orderbook file as the C++ replay does.
- :meth:`PaperVenue.on_level` (a level's new total) and :meth:`PaperVenue.on_trade` — L2 feeds
  without order ids.
- :meth:`PaperVenue.advance` — move the clock without market data (latencies, deliveries).

Queue models. With L3 data (the symbol has received an :meth:`on_l3` message) an order that rests
records the market orders at its level at that moment (the book's :meth:`level_queue`): those,
and the quantity of unknown orders (which the book keeps at the front), are ahead of it; anything
that arrives later is behind. Cancels of orders ahead advance it, cancels behind do not. An
execution of a market order that is behind ours means the aggressor passed through our order: our
orders ahead of it fill, FIFO, up to the executed quantity (the feed's order still trades: see
*market impact*). Quantity that leaves a level without a known id (unknown orders; the orderbook
file's resync) uses up the unknown quantity ahead of us first; an execution of it reaches us only
when nothing known is ahead either. Otherwise the book takes it as it does (unknown quantity
first, then the newest orders), and what is ahead of us is never more than the level still holds.

Without order ids (L2) the queue ahead is a quantity. Trades at our price eat it first and then
fill us. A level decrease not explained by a preceding :meth:`on_trade` is cancellation; the
cancelled units are drawn uniformly at random (without replacement, seeded RNG) from the market
quantity at the level, so an order advances by the cancelled units that fall ahead of it — on
average in proportion to the share of the level ahead of it. Increases join behind us.

Both models: an execution (visible or hidden) at a price worse for the aggressor than ours, on
our side, trades through us and fills us first (best price first, then FIFO); a new market order
(L3 add, or an L2 level increase) that crosses our resting order fills it up to its size, at our
price. Our fills as the resting side are MAKER fills at our limit price. Cross (auction) trades
and halts leave our orders alone. Several of our orders at one price share one FIFO: they keep
their arrival order among themselves and against the market.

Marketable orders walk the opposite side of the book, best price first, taking the displayed
size at each level (TAKER fills at the level's price). Our orders never match each other.

Market impact: the feed's book is never changed by our trades. Liquidity we take is remembered
per level as *depleted* until the feed's next message for that level, so two of our orders cannot
take the same displayed quantity twice; the next update of the level replaces it with the feed's
own size. Our fills as a maker do not remove the feed's orders either ("no market impact").

Order handling: ``LIMIT`` and ``MARKET`` (which takes what it can and cancels the rest); time in
force ``DAY``/``GTC`` rest, ``IOC`` cancels its remainder, ``FOK`` fills completely or is
canceled without a fill. ``display_quantity`` makes an iceberg: only that much is in the queue;
when it is filled the next slice joins the back of the queue (priority lost). A replace that
raises the quantity or changes the price loses priority (and may take liquidity at the new
price); a pure decrease keeps it. ``quantity`` in a replace is the new total order quantity
(filled included). ``STOP``/``STOP_LIMIT`` orders wait off the book until a market trade prints
at or through the stop price (buy: at or above, sell: at or below) and are then worked as a
market / limit order.

Multi-leg orders (``VenueOrder.legs``: symbol, side, ratio per unit of the order) are filled
atomically by legging into each leg's book: a unit of the order is ``ratio`` of every leg, and
units fill only whole, every leg at once, never one leg without the others. The limit price is
the net price per unit (the sum over the legs of ratio x price, bought legs positive, sold legs
negative; a SELL order sells the package, i.e. every leg on its opposite side, and receives at
least the limit). The venue fills the most units whose last unit still meets the limit, each
leg walking its book best price first as a marketable order does (TAKER fills at each level's
price, one FILL event per leg and level, carrying the leg's symbol), so the net price per unit
worsens with size. What cannot fill waits (``DAY``/``GTC``, re-tried on every market message
of one of its legs) or is canceled (``IOC``, ``MARKET``); ``FOK`` fills all its units or none. A
multi-leg order never rests in a leg's queue (an exchange's complex order book is not in the
feed), and it takes only displayed liquidity. Multi-leg orders are LIMIT or MARKET, without
display quantity or stop; a replace changes quantity and net limit and tries again.

Latency: a request (submit, cancel, replace) reaches the venue ``entry_latency_ns`` of market
time after it is made; an order is live only from then. Every event carries the venue time at
which it happened (``time_ns``) and is delivered to the listener ``response_latency_ns`` later.
A cancel therefore races the fills that happen while it travels: the order may fill first
(fill, then CANCEL_REJECTED) or partly fill (fill, then CANCELED of the rest).

Fees: ``maker_fee`` and ``taker_fee`` are per share (unit); ``VenueEvent.fee`` = quantity x rate.
Positive fees are paid by us, negative ones are rebates paid to us.

Everything is deterministic for a given input, configuration and seed.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from tradecore.lobster import EMPTY_ASK, EMPTY_BID, Messages
from tradecore.oms.types import (
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    VenueEvent,
    VenueEventKind,
    VenueOrder,
)
from tradecore.oms.venue import (
    Listener,
    VenueFill,
    VenueOrderState,
    VenuePosition,
    VenueSnapshot,
)
from tradecore.orderbook import OrderBook

BUY, SELL = 1, -1


class L3(IntEnum):
    """Order-by-order message kinds (LOBSTER's event codes)."""

    ADD = 1
    CANCEL = 2  # partial cancel: size is the quantity removed
    DELETE = 3
    EXECUTE = 4  # visible execution of a resting order
    EXECUTE_HIDDEN = 5
    CROSS = 6
    HALT = 7


_L3_KINDS = frozenset(int(k) for k in L3)


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """Settings of a :class:`PaperVenue` (see the module docstring)."""

    #: Ticks per currency unit: book price = limit_price x price_scale (LOBSTER: 10_000).
    price_scale: int = 10_000
    entry_latency_ns: int = 0
    response_latency_ns: int = 0
    #: Per share; positive: we pay, negative: a rebate to us.
    maker_fee: float = 0.0
    taker_fee: float = 0.0
    #: Seed of the L2 queue model's random draws.
    seed: int = 0
    #: Put into every venue order id (``P<prefix><n>``) and fill id (``PAPER-<prefix><n>``):
    #: give each venue instance whose orders share one journal its own (ids count from 1 in
    #: each instance, and an OMS ignores a fill id it has seen).
    id_prefix: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id_prefix, str):
            raise ValueError(f"id_prefix must be a string, got {self.id_prefix!r}")
        if isinstance(self.price_scale, bool) or not isinstance(self.price_scale, int):
            raise ValueError(f"price_scale must be an integer, got {self.price_scale!r}")
        if self.price_scale < 1:
            raise ValueError(f"price_scale must be >= 1, got {self.price_scale}")
        for name in ("entry_latency_ns", "response_latency_ns"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        for name in ("maker_fee", "taker_fee"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")


@dataclass(slots=True, eq=False)
class _Order:
    order: VenueOrder
    venue_order_id: str
    side: int
    price: int | None  # ticks; None for market orders
    quantity: int
    display: int | None
    filled: int = 0
    status: OrderStatus = OrderStatus.ACCEPTED
    #: Resting: the quantity in the queue now (an iceberg's visible slice).
    shown: int = 0
    resting: bool = False
    # L3 queue: unknown-order quantity and known market orders (id -> size) ahead of us.
    ahead_anon: int = 0
    ahead_ids: dict[int, int] | None = None
    # L2 queue: market quantity ahead of us.
    ahead: int = 0
    #: STOP / STOP_LIMIT not yet triggered: the stop price in ticks (None once triggered).
    stop: int | None = None

    @property
    def leaves(self) -> int:
        return self.quantity - self.filled

    def queue_ahead(self) -> int:
        if self.ahead_ids is not None:
            return self.ahead_anon + sum(self.ahead_ids.values())
        return self.ahead


@dataclass(slots=True)
class _Symbol:
    book: OrderBook
    l3: bool = False
    #: Our resting orders per (side, price), in queue order.
    levels: dict[tuple[int, int], list[_Order]] = field(default_factory=dict)
    #: Displayed quantity we took per (side, price), until the feed's next message for it.
    taken: dict[tuple[int, int], int] = field(default_factory=dict)
    #: L2: traded quantity per (side, price) that the next level decrease accounts for.
    traded: dict[tuple[int, int], int] = field(default_factory=dict)
    #: Our untriggered stop orders, in arrival order.
    stops: list[_Order] = field(default_factory=list)


class _Cost:
    """The cost of taking the first q units of a book side's levels (best first)."""

    __slots__ = ("cum_cost", "cum_qty", "levels", "total")

    def __init__(self, levels: list[tuple[int, int]]) -> None:
        self.levels = levels
        self.cum_qty = list(itertools.accumulate(q for _, q in levels))
        self.cum_cost = list(itertools.accumulate(p * q for p, q in levels))
        self.total = self.cum_qty[-1] if levels else 0

    def of(self, q: int) -> int:
        """Ticks x units paid for the first ``q`` units (q <= total)."""
        if q <= 0:
            return 0
        i = bisect.bisect_left(self.cum_qty, q)
        before_q = self.cum_qty[i - 1] if i else 0
        before_c = self.cum_cost[i - 1] if i else 0
        return before_c + (q - before_q) * self.levels[i][0]

    def take(self, q: int) -> list[tuple[int, int]]:
        """(price, units) per level for the first ``q`` units."""
        out = []
        for p, n in self.levels:
            if q <= 0:
                break
            k = min(n, q)
            out.append((p, k))
            q -= k
        return out


def _leg_side(order: VenueOrder, symbol: str) -> Side:
    """The side ``symbol``'s leg trades on: its own when the order buys, else the opposite."""
    for leg_symbol, side, _ in order.legs:
        if leg_symbol == symbol:
            return side if order.side is Side.BUY else (Side.SELL if side is Side.BUY else Side.BUY)
    raise ValueError(f"order {order.order_id!r} has no leg {symbol!r}")


def _whole(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _better(side: int, a: int, b: int) -> bool:
    """Price a is strictly better than b for a resting order on ``side``."""
    return a > b if side == BUY else a < b


class PaperVenue:
    """A simulated venue (see the module docstring for the models)."""

    name = "PAPER"
    #: Runs inside the OMS's process: nothing it does is seen outside before the OMS stores the
    #: call (see :meth:`retain`), so the OMS needs no journal barrier before its requests.
    in_process = True

    def __init__(self, config: PaperConfig | None = None) -> None:
        self.config = config if config is not None else PaperConfig()
        self._rng = np.random.default_rng(self.config.seed)
        self._symbols: dict[str, _Symbol] = {}
        self._orders: dict[str, _Order] = {}
        self._last: dict[str, VenueEvent] = {}
        self._listener: Listener | None = None
        self._now = 0
        self._seq = 0
        self._fills = 0
        #: Every fill event and its order, in order (the record :meth:`snapshot` reports).
        self._fill_log: list[tuple[VenueEvent, _Order]] = []
        #: Working multi-leg orders, in arrival order.
        self._combos: list[_Order] = []
        self._venue_ids = 0
        # (due, seq, action, args) requests on their way to the venue
        self._actions: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        # (deliver at, seq, event) answers on their way to the listener
        self._outbox: list[tuple[int, int, VenueEvent]] = []
        self._running = False

    # ------------------------------------------------------------------ Venue protocol
    def set_listener(self, listener: Listener) -> None:
        self._listener = listener

    def submit(self, order: VenueOrder) -> None:
        self._request(self._arrive_submit, (order,))

    def cancel(self, order_id: str) -> None:
        self._request(self._arrive_cancel, (order_id,))

    def replace(self, order_id: str, quantity: int, limit_price: float | None) -> None:
        self._request(self._arrive_replace, (order_id, quantity, limit_price))

    def lookup(self, order_id: str) -> VenueEvent | None:
        """The venue's latest event of the order; None before the order has reached the venue."""
        return self._last.get(order_id)

    def snapshot(self) -> VenueSnapshot:
        """The venue's record (see :class:`~tradecore.oms.venue.Reconcilable`): every order it
        has received (a submit still on its way as SUBMITTED; a rejected one is not kept), every
        fill, and the net positions from those fills. A new venue (e.g. after a restart) has an
        empty record."""
        orders = [
            VenueOrderState(
                o.order.order_id,
                o.venue_order_id,
                o.order.account,
                o.order.symbol,
                o.order.side,
                o.order.type,
                o.order.time_in_force,
                o.quantity,
                o.filled,
                o.status,
                self._px(o.price),
                o.order.stop_price,
            )
            for o in self._orders.values()
        ]
        for _, _, action, args in sorted(self._actions, key=lambda a: (a[0], a[1])):
            if action == self._arrive_submit and args[0].order_id not in self._orders:
                v: VenueOrder = args[0]
                orders.append(
                    VenueOrderState(
                        v.order_id,
                        "",
                        v.account,
                        v.symbol,
                        v.side,
                        v.type,
                        v.time_in_force,
                        v.quantity,
                        0,
                        OrderStatus.SUBMITTED,
                        v.limit_price,
                        v.stop_price,
                    )
                )
        fills = tuple(
            VenueFill(
                ev.fill_id,
                o.order.order_id,
                o.order.account,
                ev.symbol or o.order.symbol,
                _leg_side(o.order, ev.symbol) if ev.symbol else o.order.side,
                ev.fill_quantity,
                ev.fill_price,
                ev.time_ns,
                ev.venue_order_id,
                ev.liquidity,
                ev.fee,
            )
            for ev, o in self._fill_log
        )
        net: dict[tuple[str, str], int] = {}
        for f in fills:
            key = (f.account, f.symbol)
            net[key] = net.get(key, 0) + f.side.sign * f.quantity
        positions = tuple(VenuePosition(a, sym, q) for (a, sym), q in net.items())
        return VenueSnapshot(self.name, self._now, tuple(orders), fills, positions)

    def retain(self, order_ids: Collection[str]) -> list[str]:
        """Forget every order not in ``order_ids`` (the orders an OMS rebuilt from its journal
        knows): taken off the book, its requests and answers still on their way dropped, its
        fills out of the record. What an OMS decided but could not store never reached the
        outside world, so the venue drops it too. Returns the forgotten ids."""
        keep = set(order_ids)
        gone = {oid for oid in self._orders if oid not in keep}
        for oid in gone:
            self._withdraw(self._orders.pop(oid))

        def order_of(args: tuple[Any, ...]) -> str:  # a request's order: a submit's or the id
            return args[0].order_id if isinstance(args[0], VenueOrder) else str(args[0])

        gone |= {order_of(a[3]) for a in self._actions if order_of(a[3]) not in keep}
        self._actions = [a for a in self._actions if order_of(a[3]) in keep]
        heapq.heapify(self._actions)
        self._outbox = [e for e in self._outbox if e[2].order_id in keep]
        heapq.heapify(self._outbox)
        for oid in [k for k in self._last if k not in keep]:
            del self._last[oid]
        self._fill_log = [(ev, o) for ev, o in self._fill_log if o.order.order_id in keep]
        return sorted(gone)

    # ------------------------------------------------------------------ market data
    @property
    def now(self) -> int:
        """The venue's clock: the latest market time seen (ns)."""
        return self._now

    def book(self, symbol: str) -> OrderBook:
        """The market's book of ``symbol`` as the feed describes it (our orders are not in it)."""
        return self._symbol(symbol).book

    def queue_ahead(self, order_id: str) -> int | None:
        """Market quantity ahead of a resting order of ours (None when it is not resting)."""
        o = self._orders.get(order_id)
        return o.queue_ahead() if o is not None and o.resting else None

    def advance(self, ts: int) -> None:
        """Move the clock to ``ts``: requests and answers due by then are handled."""
        self._check_ts(ts)
        self._run(ts)
        self._now = ts

    def on_l3(
        self, symbol: str, kind: int, order_id: int, side: int, price: int, size: int, ts: int
    ) -> None:
        """One order-by-order message (``side``: the resting order's side, +1 buy / -1 sell)."""
        self._check_ts(ts)
        if kind not in _L3_KINDS:
            raise ValueError(f"kind must be one of 1..7 (L3), got {kind!r}")
        if side not in (BUY, SELL):
            raise ValueError(f"side must be +1 or -1, got {side!r}")
        if size < 0 or (size == 0 and L3.ADD <= kind <= L3.EXECUTE):
            raise ValueError(f"size must be > 0 (>= 0 for kinds 5-7), got {size!r}")
        s = self._symbol(symbol)
        self._run(ts)
        self._now = ts
        s.l3 = True
        self._apply_l3(symbol, s, int(kind), int(order_id), int(side), int(price), int(size), ts)
        if self._combos:
            self._combos_of(symbol, ts)
        self._run(ts)

    def on_level(self, symbol: str, side: int, price: int, size: int, ts: int) -> None:
        """A level's new total displayed size (L2; 0 removes the level)."""
        self._check_ts(ts)
        if side not in (BUY, SELL):
            raise ValueError(f"side must be +1 or -1, got {side!r}")
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        s = self._symbol(symbol)
        self._run(ts)
        self._now = ts
        self._set_level(symbol, s, side, price, size, ts, traded_first=True)
        if self._combos:
            self._combos_of(symbol, ts)
        self._run(ts)

    def on_trade(self, symbol: str, price: int, size: int, resting_side: int, ts: int) -> None:
        """A trade of ``size`` at ``price`` against resting liquidity on ``resting_side`` (L2:
        the level's decrease that follows is the trade, not cancellation)."""
        self._check_ts(ts)
        if resting_side not in (BUY, SELL):
            raise ValueError(f"resting_side must be +1 or -1, got {resting_side!r}")
        if size <= 0:
            raise ValueError(f"size must be > 0, got {size}")
        s = self._symbol(symbol)
        self._run(ts)
        self._now = ts
        key = (resting_side, price)
        s.traded[key] = s.traded.get(key, 0) + size
        left = self._trade_through(symbol, s, resting_side, price, size, ts)
        fifo = s.levels.get(key)
        if fifo and left > 0:
            self._l2_trade_at_level(symbol, s, fifo, left, ts)
        if s.stops:
            self._trade_printed(symbol, s, price, ts)
        self._run(ts)

    def feed_lobster(
        self,
        symbol: str,
        messages: Messages,
        book_rows: npt.NDArray[np.int64] | None = None,
        levels: int = 1,
        start: int = 0,
        stop: int | None = None,
    ) -> None:
        """Replay LOBSTER messages ``start:stop``. With the orderbook rows, the book is first
        loaded from row 0 with message 0 undone (``start == 0``), and after every message the
        visible ``levels`` are re-synchronised with the file (a level that enters from beyond
        the recorded depth is only in the file)."""
        end = len(messages) if stop is None else stop
        if not 0 <= start <= end <= len(messages):
            raise ValueError(f"start/stop out of range: {start}:{end} of {len(messages)}")
        if book_rows is not None and (book_rows.ndim != 2 or book_rows.shape[1] != 4 * levels):
            raise ValueError(f"book_rows must have shape (n, {4 * levels}), got {book_rows.shape}")
        s = self._symbol(symbol)
        s.l3 = True
        if book_rows is not None and start == 0 and end > 0:
            self._load_first(
                s,
                book_rows[0].tolist(),
                levels,
                int(messages.type[0]),
                int(messages.direction[0]),
                int(messages.price[0]),
                int(messages.size[0]),
            )
        t = messages.time_ns[start:end].tolist()
        k = messages.type[start:end].tolist()
        oid = messages.order_id[start:end].tolist()
        sz = messages.size[start:end].tolist()
        px = messages.price[start:end].tolist()
        d = messages.direction[start:end].tolist()
        rows = book_rows[start:end].tolist() if book_rows is not None else None
        for i in range(end - start):
            ts = t[i]
            self._check_ts(ts)
            self._run(ts)
            self._now = ts
            self._apply_l3(symbol, s, k[i], oid[i], d[i], px[i], sz[i], ts)
            if rows is not None:
                self._sync(symbol, s, rows[i], levels, ts)
            if self._combos:
                self._combos_of(symbol, ts)
            if self._actions or self._outbox:
                self._run(ts)

    def end_of_day(self, ts: int) -> None:
        """Expire every working DAY order at ``ts``."""
        self._check_ts(ts)
        self._run(ts)
        self._now = ts
        for o in list(self._orders.values()):
            working = o.resting or o.stop is not None or (o.order.legs and o in self._combos)
            if working and o.order.time_in_force is TimeInForce.DAY:
                self._withdraw(o)
                o.status = OrderStatus.EXPIRED
                self._emit(o, VenueEventKind.EXPIRED, ts, reason="end of day")
        self._run(ts)

    # ------------------------------------------------------------------ clock and delivery
    def _check_ts(self, ts: int) -> None:
        if ts < self._now:
            raise ValueError(f"ts {ts} is before the venue clock {self._now}")

    def _request(self, action: Callable[..., None], args: tuple[Any, ...]) -> None:
        self._seq += 1
        heapq.heappush(
            self._actions, (self._now + self.config.entry_latency_ns, self._seq, action, args)
        )
        self._run(self._now)

    def _run(self, until: int) -> None:
        """Handle requests and deliver answers due by ``until``, in time order (answers first
        on a tie); a listener may make new requests while this runs."""
        if self._running:
            return
        self._running = True
        try:
            while True:
                a = self._actions[0][0] if self._actions else None
                b = self._outbox[0][0] if self._outbox else None
                if b is not None and b <= until and (a is None or b <= a):
                    when, _, ev = heapq.heappop(self._outbox)
                    self._now = max(self._now, when)
                    if self._listener is not None:
                        self._listener(ev)
                elif a is not None and a <= until:
                    when, _, action, args = heapq.heappop(self._actions)
                    self._now = max(self._now, when)
                    action(*args)
                else:
                    break
        finally:
            self._running = False

    def _emit(self, o: _Order, kind: VenueEventKind, ts: int, **kw: Any) -> VenueEvent:
        ev = VenueEvent(
            kind=kind,
            order_id=o.order.order_id,
            time_ns=ts,
            venue_order_id=o.venue_order_id,
            leaves_quantity=o.leaves if not o.status.done else 0,
            **kw,
        )
        self._last[o.order.order_id] = ev
        self._seq += 1
        heapq.heappush(self._outbox, (ts + self.config.response_latency_ns, self._seq, ev))
        return ev

    # ------------------------------------------------------------------ requests at the venue
    def _symbol(self, symbol: str) -> _Symbol:
        s = self._symbols.get(symbol)
        if s is None:
            if not isinstance(symbol, str) or not symbol:
                raise ValueError(f"symbol must be a non-empty string, got {symbol!r}")
            s = self._symbols[symbol] = _Symbol(OrderBook())
        return s

    def _ticks(self, price: float) -> int | None:
        """The tick price of a currency price, None when it is not on the tick grid."""
        x = price * self.config.price_scale
        t = round(x)
        return int(t) if abs(x - t) <= 1e-6 * max(1.0, abs(x)) else None

    def _why_invalid(self, order: VenueOrder) -> str:
        if order.order_id in self._orders:
            return f"duplicate order_id {order.order_id!r}"
        if not _whole(order.quantity) or order.quantity <= 0:
            return f"quantity must be a positive integer, got {order.quantity!r}"
        if order.legs:
            return self._why_invalid_legs(order)
        display = order.display_quantity
        if display is not None and not (_whole(display) and 0 < display <= order.quantity):
            return f"display_quantity must be an integer in 1..quantity, got {display!r}"
        needs = {
            "limit_price": order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT),
            "stop_price": order.type in (OrderType.STOP, OrderType.STOP_LIMIT),
        }
        for name, needed in needs.items():
            p = getattr(order, name)
            if not needed:
                continue
            if p is None or not math.isfinite(p) or p <= 0:
                return f"{name} must be a positive number, got {p!r}"
            if self._ticks(p) is None:
                return f"{name} {p} is not on the tick grid (1/{self.config.price_scale})"
        if not order.symbol:
            return "symbol is empty"
        return ""

    def _why_invalid_legs(self, order: VenueOrder) -> str:
        if len(order.legs) < 2:
            return f"a multi-leg order has at least 2 legs, got {len(order.legs)}"
        symbols = [leg[0] for leg in order.legs]
        if len(set(symbols)) != len(symbols):
            return f"legs name a symbol twice: {symbols}"
        for i, (symbol, _side, ratio) in enumerate(order.legs):
            if not isinstance(symbol, str) or not symbol:
                return f"legs[{i}]: symbol is empty"
            if not _whole(ratio) or ratio < 1:
                return f"legs[{i}]: ratio must be a positive integer, got {ratio!r}"
        if order.type not in (OrderType.LIMIT, OrderType.MARKET):
            return f"a multi-leg order is LIMIT or MARKET, got {order.type}"
        if order.display_quantity is not None:
            return "a multi-leg order has no display_quantity"
        if order.type is OrderType.LIMIT:
            p = order.limit_price
            if p is None or not math.isfinite(p):
                return f"limit_price (net per unit) must be a finite number, got {p!r}"
            if self._ticks(p) is None:
                return f"limit_price {p} is not on the tick grid (1/{self.config.price_scale})"
        return ""

    def _arrive_submit(self, order: VenueOrder) -> None:
        ts = self._now
        why = self._why_invalid(order)
        if why:
            self._reject_event(order, ts, why)
            return
        self._venue_ids += 1
        limited = order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        price = self._ticks(order.limit_price or 0.0) if limited else None
        o = _Order(
            order,
            f"P{self.config.id_prefix}{self._venue_ids}",
            order.side.sign,
            price,
            order.quantity,
            order.display_quantity,
        )
        self._orders[order.order_id] = o
        if order.legs:
            self._emit(o, VenueEventKind.ACCEPTED, ts)
            self._combos.append(o)
            self._work_combo(o, ts)
            return
        s = self._symbol(order.symbol)
        self._emit(o, VenueEventKind.ACCEPTED, ts)
        if order.type in (OrderType.STOP, OrderType.STOP_LIMIT):
            o.stop = self._ticks(order.stop_price or 0.0)
            s.stops.append(o)  # waits for a market trade at or through the stop price
            return
        self._work(order.symbol, s, o, ts)

    def _reject_event(self, order: VenueOrder, ts: int, reason: str) -> None:
        """REJECTED for an order the venue will not work (a duplicate id leaves the first
        order's record alone)."""
        ev = VenueEvent(VenueEventKind.REJECTED, order.order_id, ts, reason=reason)
        if order.order_id not in self._orders:
            self._last[order.order_id] = ev
        self._seq += 1
        heapq.heappush(self._outbox, (ts + self.config.response_latency_ns, self._seq, ev))

    def _work(self, symbol: str, s: _Symbol, o: _Order, ts: int) -> None:
        """Take what the order can, then rest, cancel or expire the remainder."""
        tif = o.order.time_in_force
        if tif is TimeInForce.FOK and self._available(s, o) < o.leaves:
            o.status = OrderStatus.CANCELED
            self._emit(o, VenueEventKind.CANCELED, ts, reason="FOK: not fillable in full")
            return
        self._take(symbol, s, o, ts)
        if o.leaves == 0:
            return
        if o.price is None or tif in (TimeInForce.IOC, TimeInForce.FOK):
            o.status = OrderStatus.CANCELED
            why = "market order: no more liquidity" if o.price is None else "IOC remainder"
            self._emit(o, VenueEventKind.CANCELED, ts, reason=why)
            return
        self._rest(s, o)

    def _arrive_cancel(self, order_id: str) -> None:
        ts = self._now
        o = self._orders.get(order_id)
        if o is None:
            ev = VenueEvent(VenueEventKind.CANCEL_REJECTED, order_id, ts, reason="unknown order")
            self._seq += 1
            heapq.heappush(self._outbox, (ts + self.config.response_latency_ns, self._seq, ev))
            return
        if o.status.done:
            self._emit_keep(o, VenueEventKind.CANCEL_REJECTED, ts, f"order is {o.status}")
            return
        self._withdraw(o)
        o.status = OrderStatus.CANCELED
        self._emit(o, VenueEventKind.CANCELED, ts)

    def _emit_keep(self, o: _Order, kind: VenueEventKind, ts: int, reason: str) -> None:
        """A rejection of a request about a finished order: reported, while ``lookup`` keeps
        answering with the order's own state."""
        before = self._last.get(o.order.order_id)
        self._emit(o, kind, ts, reason=reason)
        if before is not None:
            self._last[o.order.order_id] = before

    def _arrive_replace(self, order_id: str, quantity: int, limit_price: float | None) -> None:
        ts = self._now
        o = self._orders.get(order_id)
        if o is None:
            ev = VenueEvent(VenueEventKind.REPLACE_REJECTED, order_id, ts, reason="unknown order")
            self._seq += 1
            heapq.heappush(self._outbox, (ts + self.config.response_latency_ns, self._seq, ev))
            return
        if o.status.done:
            self._emit_keep(o, VenueEventKind.REPLACE_REJECTED, ts, f"order is {o.status}")
            return
        why = ""
        new_price = o.price
        if not _whole(quantity) or quantity <= o.filled:
            why = f"quantity must be an integer above the filled {o.filled}, got {quantity!r}"
        elif limit_price is not None:
            if o.price is None:
                why = "limit_price cannot be set on a market order"
            elif not math.isfinite(limit_price) or (limit_price <= 0 and not o.order.legs):
                why = f"limit_price must be a positive number, got {limit_price!r}"
            else:
                new_price = self._ticks(limit_price)
                if new_price is None:
                    why = f"limit_price {limit_price} is not on the tick grid"
        if why:
            self._emit_keep(o, VenueEventKind.REPLACE_REJECTED, ts, why)
            return
        if o.order.legs:
            o.quantity, o.price = quantity, new_price
            self._emit(
                o,
                VenueEventKind.REPLACED,
                ts,
                new_quantity=quantity,
                new_limit_price=self._px(new_price),
            )
            self._work_combo(o, ts)
            return
        s = self._symbol(o.order.symbol)
        new_leaves = quantity - o.filled
        # an untriggered stop has no place in a queue to keep or lose
        keeps = o.stop is not None or (new_price == o.price and new_leaves <= o.leaves)
        o.quantity = quantity
        if keeps:
            o.price = new_price
            if o.resting:
                o.shown = min(o.shown, new_leaves)
            self._emit(
                o,
                VenueEventKind.REPLACED,
                ts,
                new_quantity=quantity,
                new_limit_price=self._px(new_price),
            )
            return
        self._unrest(o)
        o.price = new_price
        self._emit(
            o,
            VenueEventKind.REPLACED,
            ts,
            new_quantity=quantity,
            new_limit_price=self._px(new_price),
        )
        self._work(o.order.symbol, s, o, ts)

    def _px(self, ticks: int | None) -> float | None:
        return None if ticks is None else ticks / self.config.price_scale

    # ------------------------------------------------------------------ taking liquidity
    def _opposite(self, s: _Symbol, o: _Order, depth: int) -> list[tuple[int, int]]:
        """(price, size left for us) of the opposite side within the limit, best first."""
        opp = -o.side
        px, sz = s.book.levels(opp, depth)
        out = []
        for p, q in zip(px.tolist(), sz.tolist(), strict=True):
            if o.price is not None and (p > o.price if o.side == BUY else p < o.price):
                break
            q -= s.taken.get((opp, p), 0)
            if q > 0:
                out.append((p, q))
        return out

    def _available(self, s: _Symbol, o: _Order) -> int:
        return sum(q for _, q in self._opposite(s, o, s.book.core.level_count(-o.side)))

    def _take(self, symbol: str, s: _Symbol, o: _Order, ts: int) -> None:
        opp = -o.side
        depth = 16
        while o.leaves > 0:
            levels = self._opposite(s, o, depth)
            for p, q in levels:
                n = min(q, o.leaves)
                key = (opp, p)
                s.taken[key] = s.taken.get(key, 0) + n
                self._fill(o, n, p, Liquidity.TAKER, ts)
                if o.leaves == 0:
                    return
            if depth >= s.book.core.level_count(opp):
                return
            depth = s.book.core.level_count(opp)

    # ------------------------------------------------------------------ multi-leg orders
    def _combos_of(self, symbol: str, ts: int) -> None:
        """Try the working multi-leg orders with a leg in ``symbol`` (its book changed)."""
        for o in list(self._combos):
            if any(leg[0] == symbol for leg in o.order.legs):
                self._work_combo(o, ts)

    def _work_combo(self, o: _Order, ts: int) -> None:
        """Fill the most whole units the legs' books allow within the net limit; then cancel
        or keep the remainder by the order's type and time in force."""
        legs = []
        for symbol, leg_side, ratio in o.order.legs:
            side = leg_side.sign if o.side == BUY else -leg_side.sign
            s = self._symbol(symbol)
            opp = -side
            px, sz = s.book.levels(opp, s.book.core.level_count(opp))
            levels = []
            for p, q in zip(px.tolist(), sz.tolist(), strict=True):
                q -= s.taken.get((opp, p), 0)
                if q > 0:
                    levels.append((p, q))
            legs.append((symbol, side, ratio, s, _Cost(levels)))
        most = min(leg[4].total // leg[2] for leg in legs)
        most = min(most, o.leaves)

        def meets(k: int) -> bool:  # the k-th unit's net price is within the limit
            if o.price is None:
                return True
            net = sum(
                side * (cost.of(k * ratio) - cost.of((k - 1) * ratio))
                for _, side, ratio, _, cost in legs
            )
            return net <= o.price if o.side == BUY else -net >= o.price

        lo, hi = 0, most  # the units that meet the limit are a prefix: find its length
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if meets(mid):
                lo = mid
            else:
                hi = mid - 1
        units = lo
        tif = o.order.time_in_force
        if tif is TimeInForce.FOK and units < o.leaves:
            self._withdraw(o)
            o.status = OrderStatus.CANCELED
            self._emit(o, VenueEventKind.CANCELED, ts, reason="FOK: not fillable in full")
            return
        if units > 0:
            o.filled += units
            o.status = OrderStatus.FILLED if o.leaves == 0 else OrderStatus.PARTIALLY_FILLED
            for symbol, side, ratio, s, cost in legs:
                opp = -side
                for p, q in cost.take(units * ratio):
                    key = (opp, p)
                    s.taken[key] = s.taken.get(key, 0) + q
                    self._fills += 1
                    ev = self._emit(
                        o,
                        VenueEventKind.FILL,
                        ts,
                        fill_id=f"{self.name}-{self.config.id_prefix}{self._fills}",
                        fill_quantity=q,
                        fill_price=p / self.config.price_scale,
                        symbol=symbol,
                        liquidity=Liquidity.TAKER,
                        fee=q * self.config.taker_fee,
                    )
                    self._fill_log.append((ev, o))
        if o.leaves == 0:
            self._withdraw(o)
        elif o.price is None or tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._withdraw(o)
            o.status = OrderStatus.CANCELED
            why = "market order: no more liquidity" if o.price is None else "IOC remainder"
            self._emit(o, VenueEventKind.CANCELED, ts, reason=why)

    # ------------------------------------------------------------------ resting
    def _rest(self, s: _Symbol, o: _Order) -> None:
        assert o.price is not None
        key = (o.side, o.price)
        o.shown = o.leaves if o.display is None else min(o.display, o.leaves)
        o.resting = True
        if s.l3:
            anon, ids, sizes = s.book.level_queue(o.side, o.price)
            o.ahead_anon = anon
            o.ahead_ids = dict(zip(ids.tolist(), sizes.tolist(), strict=True))
        else:
            o.ahead_ids = None
            # the level's size still holds a trade reported by on_trade until its update
            o.ahead = s.book.level_size(o.side, o.price) - s.traded.get(key, 0)
        s.levels.setdefault(key, []).append(o)

    def _unrest(self, o: _Order) -> None:
        if not o.resting:
            return
        assert o.price is not None
        s = self._symbols[o.order.symbol]
        key = (o.side, o.price)
        fifo = s.levels[key]
        fifo.remove(o)
        if not fifo:
            del s.levels[key]
        o.resting = False

    def _withdraw(self, o: _Order) -> None:
        """Take a working order off the venue (its queue, the untriggered stops, or the working
        multi-leg orders)."""
        if o.order.legs:
            if o in self._combos:
                self._combos.remove(o)
            return
        if o.stop is not None:
            self._symbols[o.order.symbol].stops.remove(o)
            o.stop = None
        self._unrest(o)

    def _trade_printed(self, symbol: str, s: _Symbol, price: int, ts: int) -> None:
        """A market trade at ``price``: buy stops at or below it and sell stops at or above it
        trigger, in arrival order, and are worked as market (STOP) or limit (STOP_LIMIT)."""
        hit = [
            o
            for o in s.stops
            if o.stop is not None and (price >= o.stop if o.side == BUY else price <= o.stop)
        ]
        for o in hit:
            s.stops.remove(o)
            o.stop = None
            self._work(symbol, s, o, ts)

    def _fill(self, o: _Order, qty: int, price: int, liq: Liquidity, ts: int) -> None:
        o.filled += qty
        o.status = OrderStatus.FILLED if o.leaves == 0 else OrderStatus.PARTIALLY_FILLED
        rate = self.config.maker_fee if liq is Liquidity.MAKER else self.config.taker_fee
        self._fills += 1
        ev = self._emit(
            o,
            VenueEventKind.FILL,
            ts,
            fill_id=f"{self.name}-{self.config.id_prefix}{self._fills}",
            fill_quantity=qty,
            fill_price=price / self.config.price_scale,
            liquidity=liq,
            fee=qty * rate,
        )
        self._fill_log.append((ev, o))

    def _maker_fill(self, symbol: str, o: _Order, qty: int, ts: int) -> None:
        """Fill a resting order (at most its visible slice); an iceberg whose slice is used up
        shows the next one at the back of the queue."""
        assert o.price is not None
        o.shown -= qty
        self._fill(o, qty, o.price, Liquidity.MAKER, ts)
        if o.shown > 0:
            return
        self._unrest(o)
        if o.leaves > 0:
            self._rest(self._symbols[symbol], o)

    def _fill_queue(self, symbol: str, fifo: list[_Order], qty: int, ts: int) -> int:
        """Fill ``fifo``'s orders front first with up to ``qty``; returns what is left."""
        for o in list(fifo):
            if qty == 0:
                break
            if not o.resting:
                continue
            n = min(o.shown, qty)
            qty -= n
            o.ahead_anon, o.ahead = 0, 0
            if o.ahead_ids:
                o.ahead_ids.clear()
            self._maker_fill(symbol, o, n, ts)
        return qty

    def _trade_through(
        self, symbol: str, s: _Symbol, side: int, price: int, qty: int, ts: int
    ) -> int:
        """An execution at ``price`` against ``side`` passes our orders at better prices first;
        returns the quantity left."""
        # a plain scan of our levels (this runs on every execution message while we rest)
        if side == BUY:
            better = [p for (sd, p) in s.levels if sd == BUY and p > price]
        else:
            better = [p for (sd, p) in s.levels if sd == SELL and p < price]
        if not better:
            return qty
        better.sort(reverse=side == BUY)
        for p in better:
            if qty == 0:
                break
            qty = self._fill_queue(symbol, s.levels.get((side, p), []), qty, ts)
        return qty

    def _crossed_by(self, symbol: str, s: _Symbol, side: int, price: int, qty: int, ts: int) -> int:
        """A new market order on ``side`` at ``price`` trades with our opposite resting orders it
        crosses; returns the quantity left."""
        opp = -side
        # a plain scan of our levels (this runs on every market add while we rest)
        if side == BUY:
            crossed = [p for (sd, p) in s.levels if sd == opp and price >= p]
        else:
            crossed = [p for (sd, p) in s.levels if sd == opp and price <= p]
        if not crossed:
            return qty
        crossed.sort(reverse=opp == BUY)
        for p in crossed:
            if qty == 0:
                break
            qty = self._fill_queue(symbol, s.levels.get((opp, p), []), qty, ts)
        return qty

    # ------------------------------------------------------------------ L3
    def _apply_l3(
        self, symbol: str, s: _Symbol, kind: int, oid: int, side: int, p: int, q: int, ts: int
    ) -> None:
        book = s.book
        key = (side, p)
        if kind == L3.ADD:
            s.taken.pop(key, None)
            if not book.core.insert(oid, side, p, q, ts) and book.core.find(oid) is not None:
                book.core.add_level_size(side, p, q, ts)  # a reused id: keep the quantity
            if s.levels:
                self._crossed_by(symbol, s, side, p, q, ts)
            return
        if kind == L3.EXECUTE_HIDDEN:
            if s.levels:
                self._trade_through(symbol, s, side, p, q, ts)
            if s.stops:
                self._trade_printed(symbol, s, p, ts)
            return
        if kind not in (L3.CANCEL, L3.DELETE, L3.EXECUTE):
            return  # crosses and halts leave the book and our orders alone
        s.taken.pop(key, None)
        found = book.core.find(oid)
        known = found is not None and found[1] == p and found[0] == side
        # the feed's book first (as the C++ LOBSTER replay does), then our queue positions
        if known:
            assert found is not None
            removed = found[2] if kind == L3.DELETE else min(q, found[2])
            book.core.execute(oid, removed, ts)
            # the message's size is what left the level: reconcile a miscounted order
            if q > removed:
                book.core.remove_level_size(side, p, q - removed, ts)
            elif q < removed:
                book.core.add_level_size(side, p, removed - q, ts)
        else:
            removed = q
            book.core.remove_level_size(side, p, q, ts)
        if s.levels:
            left = q
            if kind == L3.EXECUTE:
                left = self._trade_through(symbol, s, side, p, q, ts)
            fifo = s.levels.get(key)
            if fifo and kind == L3.EXECUTE:
                self._l3_execute_at_level(symbol, fifo, oid if known else None, removed, left, ts)
            elif fifo:
                for o in fifo:
                    self._l3_advance(o, oid if known else None, removed)
            if fifo := s.levels.get(key):
                # what is ahead of us is at most what the feed's level still holds
                self._l3_reconcile(s, key, fifo)
        if kind == L3.EXECUTE and s.stops:
            self._trade_printed(symbol, s, p, ts)

    @staticmethod
    def _l3_advance(o: _Order, oid: int | None, qty: int) -> None:
        """Quantity ``qty`` of market order ``oid`` (None: unknown orders) left the level."""
        if o.ahead_ids is None:
            return
        if oid is None:
            o.ahead_anon -= min(o.ahead_anon, qty)
            return
        have = o.ahead_ids.get(oid)
        if have is not None:
            if have <= qty:
                del o.ahead_ids[oid]
            else:
                o.ahead_ids[oid] = have - qty
        return

    def _l3_execute_at_level(
        self, symbol: str, fifo: list[_Order], oid: int | None, qty: int, left: int, ts: int
    ) -> None:
        """Market order ``oid`` (None: an unknown order) executed ``qty``: it advances the
        orders it was behind; our orders it was behind of in the queue (the aggressor passed
        through them) fill, FIFO, with up to ``left`` (``qty`` less what our better-priced
        orders took). An unknown order is ahead of us while unknown quantity is; past that it
        reaches us only when nothing known is ahead either."""
        passed: list[_Order] = []
        reach = left
        for o in fifo:
            if o.ahead_ids is None:  # rested before the feed carried ids: no L3 position
                continue
            if oid is None:
                if o.ahead_anon >= qty or any(o.ahead_ids.values()):
                    # unknown orders ahead of us, or (past them) an unknown order among the
                    # known ones: the book's removal decides (see _l3_reconcile)
                    o.ahead_anon -= min(o.ahead_anon, qty)
                else:  # nothing is ahead any more: the execution went through us
                    reach = min(reach, qty - o.ahead_anon)
                    o.ahead_anon = 0
                    passed.append(o)
            elif oid in o.ahead_ids:
                self._l3_advance(o, oid, qty)
            else:
                passed.append(o)
        if passed and reach > 0:
            self._fill_queue(symbol, passed, reach, ts)

    # ------------------------------------------------------------------ L2
    def _set_level(
        self, symbol: str, s: _Symbol, side: int, p: int, size: int, ts: int, traded_first: bool
    ) -> None:
        key = (side, p)
        s.taken.pop(key, None)
        have = s.book.level_size(side, p)
        if size > have:
            add = size - have
            if s.levels:
                self._crossed_by(symbol, s, side, p, add, ts)
            # a level that would cross the opposite side: the opposite side is stale; drop it
            opp = s.book.best_ask() if side == BUY else s.book.best_bid()
            while opp is not None and (opp[0] <= p if side == BUY else opp[0] >= p):
                self._set_level(symbol, s, -side, opp[0], 0, ts, traded_first=False)
                opp = s.book.best_ask() if side == BUY else s.book.best_bid()
            s.book.core.add_level_size(side, p, add, ts)
            return
        if size == have:
            return
        gone = have - size
        traded = min(gone, s.traded.pop(key, 0)) if traded_first else 0
        cancelled = gone - traded
        fifo = s.levels.get(key)
        s.book.core.remove_level_size(side, p, gone, ts)
        if fifo and cancelled > 0:
            if s.l3:
                self._l3_reconcile(s, key, fifo)
            else:
                self._l2_cancel(fifo, have - traded, cancelled)

    @staticmethod
    def _l3_reconcile(s: _Symbol, key: tuple[int, int], fifo: list[_Order]) -> None:
        """Quantity left a level without an order id (the book takes unknown quantity first,
        then the newest orders): what is ahead of us is at most what is still there."""
        anon, ids, sizes = s.book.level_queue(*key)
        now = dict(zip(ids.tolist(), sizes.tolist(), strict=True))
        for o in fifo:
            if o.ahead_ids is None:
                continue
            o.ahead_anon = min(o.ahead_anon, anon)
            for x, q in list(o.ahead_ids.items()):
                left = now.get(x, 0)
                if left == 0:
                    del o.ahead_ids[x]
                elif left < q:
                    o.ahead_ids[x] = left

    def _l2_cancel(self, fifo: list[_Order], market: int, cancelled: int) -> None:
        """``cancelled`` of the level's ``market`` units went, drawn uniformly without
        replacement: each order advances by the draws that fell ahead of it."""
        l2 = [o for o in fifo if o.ahead_ids is None]
        if not l2 or market <= 0:
            return
        bounds = [min(o.ahead, market) for o in l2]
        segments = [bounds[0]] + [max(0, b - a) for a, b in itertools.pairwise(bounds)]
        segments.append(max(0, market - sum(segments)))
        draws = self._rng.multivariate_hypergeometric(
            np.asarray(segments, dtype=np.int64), min(cancelled, sum(segments))
        ).tolist()
        gone = 0
        for o, d in zip(l2, draws, strict=False):
            gone += d
            o.ahead = max(0, o.ahead - gone)

    def _l2_trade_at_level(
        self, symbol: str, s: _Symbol, fifo: list[_Order], qty: int, ts: int
    ) -> None:
        """A trade at our level: market quantity ahead of an order trades first, then it."""
        eaten = 0  # market quantity consumed at the front so far
        for o in list(fifo):
            if o.ahead_ids is not None or not o.resting:
                continue
            o.ahead = max(0, o.ahead - eaten)
            if qty == 0:
                continue
            n = min(o.ahead, qty)
            o.ahead -= n
            eaten += n
            qty -= n
            if qty == 0:
                continue
            f = min(o.shown, qty)
            qty -= f
            self._maker_fill(symbol, o, f, ts)

    # ------------------------------------------------------------------ LOBSTER rows
    def _load_first(
        self, s: _Symbol, row: list[int], levels: int, k0: int, d0: int, p0: int, q0: int
    ) -> None:
        """The book before message 0: row 0 with message 0 undone."""
        s.book.clear()
        for lvl in range(levels):
            for off, side in ((0, SELL), (2, BUY)):
                p, q = row[4 * lvl + off], row[4 * lvl + off + 1]
                if q > 0 and p not in (EMPTY_ASK, EMPTY_BID):
                    s.book.core.add_level_size(side, p, q, 0)
        if k0 == L3.ADD:
            s.book.core.remove_level_size(d0, p0, q0, 0)
        elif k0 <= L3.EXECUTE:
            s.book.core.add_level_size(d0, p0, q0, 0)

    def _sync(self, symbol: str, s: _Symbol, row: list[int], levels: int, ts: int) -> None:
        """Make the book's top ``levels`` equal to the file's row (changes act as unknown-order
        quantity: decreases as cancels, increases behind everyone)."""
        core = s.book.core
        for off, side in ((0, SELL), (2, BUY)):
            if levels == 1:  # the common case, without building arrays
                p, q = row[off], row[off + 1]
                real = q > 0 and p != EMPTY_ASK and p != EMPTY_BID
                if core.best(side) == ((p, q) if real else None):
                    continue
            want: list[tuple[int, int]] = []
            for k in range(levels):  # the file's real levels, up to the first empty one
                p, q = row[4 * k + off], row[4 * k + off + 1]
                if q <= 0 or p in (EMPTY_ASK, EMPTY_BID):
                    break
                want.append((p, q))
            px, sz = s.book.levels(side, levels)
            if list(zip(px.tolist(), sz.tolist(), strict=True)) == want:
                continue
            wanted = {p for p, _ in want}
            bounded = len(want) == levels
            while True:  # drop the book's visible levels the file does not have
                gone = [
                    p
                    for p in s.book.levels(side, levels)[0].tolist()
                    if p not in wanted and (not bounded or not _better(side, want[-1][0], p))
                ]
                if not gone:
                    break
                self._set_level(symbol, s, side, gone[0], 0, ts, traded_first=False)
            for p, q in want:
                self._set_level(symbol, s, side, p, q, ts, traded_first=False)


__all__ = ["L3", "PaperConfig", "PaperVenue"]
