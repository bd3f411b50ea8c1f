"""(oms) Pre-trade check cost per order, and orders per second through the OMS in process.

* ``test_pretrade_check``: one :meth:`PreTradeControls.check` with every control on (message
  rate, trading state, restricted/allowed lists, max quantity, equity price collar, max
  notional, position limit, credit limit, duplicate window, repeated-execution throttle), on an
  order that passes all of them (the full path). Target: <= 20 us per order.
* ``test_pretrade_check_option``: the same for an OCC option whose reference is the
  Black-Scholes value computed from the underlying's quote (``MarketReference``) and whose sell
  is margined by the short-option rule.
* ``test_oms_orders_per_second``: orders through ``OMS.submit`` + the controls + an in-process
  venue that acknowledges and fills each order at once (``ImmediateVenue`` below: no book, no
  queue), every event going through the sink (a list append, standing in for the journal).
  This measures the OMS and the controls, not a matching engine (the paper venue's figure
  belongs with the paper venue, fed a market).

Run: ``python -m pytest bench/test_bench_oms.py -q -s``.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from tradecore.oms.oms import OMS, OmsEvent
from tradecore.oms.order import Order
from tradecore.oms.pretrade import Exposure, Limits, MarketReference, PreTradeControls
from tradecore.oms.types import (
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    VenueEvent,
    VenueEventKind,
    VenueOrder,
)
from tradecore.oms.venue import Listener

T0 = 1_735_689_600_000_000_000
OPT = "AAPL  250620C00150000"
N_ORDERS = 20_000
RESULTS: dict[str, float] = {}

ALL_ON = Limits(
    max_order_quantity=1_000_000,
    max_order_notional=1e12,
    max_position=10_000_000,
    credit_limit=1e15,
    collar=True,
    duplicate_window_ns=1_000_000_000,
    message_rate=1e9,
    message_burst=1_000_000,
    max_executions=1_000_000,
    execution_window_ns=1_000_000_000,
    restricted=frozenset({"GME"}),
    allowed=frozenset({"AAPL", OPT}),
)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> int:
        self.t += 1_000
        return self.t


def _references(clock: Clock) -> MarketReference:
    refs = MarketReference(clock, rate=0.04)
    refs.quote("AAPL", 149.99, 150.01)
    refs.set_volatility("AAPL", 0.30)
    return refs


def _bench_check(benchmark: Any, symbol: str, side: Side, price: float, key: str) -> None:
    clock = Clock()
    controls = PreTradeControls(_references(clock), ALL_ON)
    for i in range(100):
        controls.record_execution("acct", symbol, side, T0 + i)
    exposure = Exposure(net={"AAPL": 500}, open_buy={"AAPL": 100}, credit=1e6)
    qty = itertools.count(1)  # a new quantity each call: never a duplicate

    def one() -> tuple[object, str, float]:
        order = Order(
            "O", "c", "acct", symbol, side, OrderType.LIMIT, TimeInForce.DAY, next(qty), price
        )
        return controls.check(order, exposure, clock())

    result = benchmark(one)
    assert result[0] is None, result
    RESULTS[key] = benchmark.stats.stats.median * 1e6
    benchmark.extra_info["us_per_order"] = RESULTS[key]


def test_pretrade_check(benchmark: Any) -> None:
    _bench_check(benchmark, "AAPL", Side.BUY, 150.0, "check_equity_us")


def test_pretrade_check_option(benchmark: Any) -> None:
    _bench_check(benchmark, OPT, Side.SELL, 12.0, "check_option_us")


class ImmediateVenue:
    """Acknowledges and fills every order at once at its limit price (no book, no queue)."""

    name = "IMMEDIATE"

    def __init__(self) -> None:
        self.listener: Listener | None = None
        self._ids = itertools.count(1)

    def set_listener(self, listener: Listener) -> None:
        self.listener = listener

    def submit(self, order: VenueOrder) -> None:
        assert self.listener is not None
        assert order.limit_price is not None
        n = next(self._ids)
        vid = f"V{n}"
        self.listener(VenueEvent(VenueEventKind.ACCEPTED, order.order_id, n, vid))
        self.listener(
            VenueEvent(
                VenueEventKind.FILL,
                order.order_id,
                n,
                vid,
                fill_id=vid,
                fill_quantity=order.quantity,
                fill_price=order.limit_price,
            )
        )

    def cancel(self, order_id: str) -> None:
        pass

    def replace(self, order_id: str, quantity: int, limit_price: float | None) -> None:
        pass

    def lookup(self, order_id: str) -> VenueEvent | None:
        return None


def test_oms_orders_per_second() -> None:
    venue = ImmediateVenue()
    clock = Clock()
    journal: list[OmsEvent] = []
    oms = OMS(
        {venue.name: venue}, PreTradeControls(_references(clock), ALL_ON), clock, journal.append
    )
    # alternate buys and sells so the position stays small; a distinct (quantity, price) per
    # order so that none is a duplicate within the window
    rounds = 3
    best = 0.0
    for r in range(rounds):
        start = time.perf_counter()
        for i in range(N_ORDERS):
            side = "BUY" if i % 2 == 0 else "SELL"
            oms.submit(
                account="acct",
                client_order_id=f"{r}-{i}",
                symbol="AAPL",
                side=side,
                quantity=1 + i % 7,
                limit_price=150.0 + (r * N_ORDERS + i) * 1e-4,
                venue=venue.name,
            )
        elapsed = time.perf_counter() - start
        best = max(best, N_ORDERS / elapsed)
    statuses = {o.status for o in oms.orders()}
    assert statuses == {OrderStatus.FILLED}, statuses
    RESULTS["orders_per_second_immediate"] = best
    events = len(journal) / (rounds * N_ORDERS)
    print(
        f"\nimmediate venue: {best:,.0f} orders/s (best of {rounds} x {N_ORDERS}), "
        f"{events:.1f} events/order; pre-trade {RESULTS}"
    )
