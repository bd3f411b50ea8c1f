"""The OMS core: submit path, idempotency, replay, venue races, timeouts, kill switch, stops.

Two in-test venues implement the Venue protocol: ScriptedVenue records requests and lets the
test report the venue's events in any order (the races); ImmediateVenue acknowledges and fills
every order at once at its limit price (or the reference for a market order).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import asdict

import pytest
from tradecore.oms.oms import (
    OMS,
    AnomalyKind,
    ExecutionAnomaly,
    LimitsSet,
    OmsEvent,
    OrderCreated,
    OrderFilled,
    OrderNotFound,
    ReplaceDenied,
    TradingStateSet,
    VenueTimeout,
)
from tradecore.oms.order import Leg, Order, OrderStateError
from tradecore.oms.positions import PositionMode
from tradecore.oms.pretrade import DenyReason, Limits, PreTradeControls, TradingMode
from tradecore.oms.types import (
    OrderStatus,
    OrderType,
    Side,
    VenueEvent,
    VenueEventKind,
    VenueOrder,
)
from tradecore.oms.venue import Listener

S = OrderStatus
K = VenueEventKind


class Refs:
    def __init__(self, prices: dict[str, float] | None = None) -> None:
        self.prices = prices or {}

    def reference(self, symbol: str) -> float | None:
        return self.prices.get(symbol)


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        self.t += 1_000
        return self.t


class ScriptedVenue:
    def __init__(self, name: str = "SCRIPT") -> None:
        self.name = name
        self.listener: Listener | None = None
        self.submitted: list[VenueOrder] = []
        self.canceled: list[str] = []
        self.replaced: list[tuple[str, int, float | None]] = []
        self.known: dict[str, VenueEvent] = {}
        #: submit raises TimeoutError this many times; keep_on_timeout: the venue got it anyway
        self.timeouts = 0
        self.keep_on_timeout = False
        self.lookup_fails = False
        self.lookups: list[str] = []

    def set_listener(self, listener: Listener) -> None:
        self.listener = listener

    def submit(self, order: VenueOrder) -> None:
        if self.timeouts:
            self.timeouts -= 1
            if self.keep_on_timeout:
                self.submitted.append(order)
                self.known[order.order_id] = VenueEvent(
                    K.ACCEPTED, order.order_id, 5, "V-" + order.order_id
                )
            raise TimeoutError("venue did not answer")
        self.submitted.append(order)

    def cancel(self, order_id: str) -> None:
        self.canceled.append(order_id)

    def replace(self, order_id: str, quantity: int, limit_price: float | None) -> None:
        self.replaced.append((order_id, quantity, limit_price))

    def lookup(self, order_id: str) -> VenueEvent | None:
        self.lookups.append(order_id)
        if self.lookup_fails:
            raise ConnectionError("venue unreachable")
        return self.known.get(order_id)

    def report(self, kind: VenueEventKind, order_id: str, **kw: object) -> None:
        event = VenueEvent(kind, order_id, 10, **kw)  # type: ignore[arg-type]
        self.known[order_id] = event
        assert self.listener is not None
        self.listener(event)


class ImmediateVenue:
    """Acknowledges and fills every order at once (limit price, else ``market_price``)."""

    def __init__(self, market_price: float = 100.0) -> None:
        self.name = "NOW"
        self.listener: Listener | None = None
        self.market_price = market_price
        self._ids = itertools.count(1)

    def set_listener(self, listener: Listener) -> None:
        self.listener = listener

    def submit(self, order: VenueOrder) -> None:
        assert self.listener is not None
        n = next(self._ids)
        self.listener(VenueEvent(K.ACCEPTED, order.order_id, n, f"V{n}"))
        price = order.limit_price if order.limit_price is not None else self.market_price
        self.listener(
            VenueEvent(
                K.FILL,
                order.order_id,
                n,
                f"V{n}",
                fill_id=f"F{n}",
                fill_quantity=order.quantity,
                fill_price=price,
            )
        )

    def cancel(self, order_id: str) -> None:
        assert self.listener is not None
        self.listener(VenueEvent(K.CANCEL_REJECTED, order_id, 0, reason="filled"))

    def replace(self, order_id: str, quantity: int, limit_price: float | None) -> None:
        assert self.listener is not None
        self.listener(VenueEvent(K.REPLACE_REJECTED, order_id, 0, reason="filled"))

    def lookup(self, order_id: str) -> VenueEvent | None:
        return None


def lim(**kw: object) -> Limits:
    """Limits with no collar (most tests have no reference price) and no duplicate window."""
    return Limits(duplicate_window_ns=None, collar=False, **kw)  # type: ignore[arg-type]


def make_oms(
    venue: object | None = None,
    limits: Limits | None = None,
    refs: dict[str, float] | None = None,
    mode: PositionMode = PositionMode.NETTING,
) -> tuple[OMS, ScriptedVenue, list[OmsEvent]]:
    v = venue if venue is not None else ScriptedVenue()
    log: list[OmsEvent] = []
    controls = PreTradeControls(Refs(refs), limits or lim())
    oms = OMS({v.name: v}, controls, Clock(), log.append, position_mode=mode)  # type: ignore[attr-defined, dict-item]
    return oms, v, log  # type: ignore[return-value]


def buy(oms: OMS, coid: str, qty: int = 10, price: float = 100.0, **kw: object) -> Order:
    args: dict[str, object] = dict(
        account="acct",
        client_order_id=coid,
        symbol="AAPL",
        side="BUY",
        quantity=qty,
        type="LIMIT",
        limit_price=price,
    )
    args.update(kw)
    return oms.submit(**args)  # type: ignore[arg-type]


def rebuilt(log: list[OmsEvent], mode: PositionMode = PositionMode.NETTING) -> OMS:
    fresh = OMS({}, PreTradeControls(Refs(), lim()), Clock(), position_mode=mode)
    fresh.replay(log)
    return fresh


def snapshot(oms: OMS) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    orders = sorted((asdict(o) for o in oms.orders()), key=lambda d: str(d["order_id"]))
    positions = sorted(
        (asdict(p) for p in oms.positions.positions()), key=lambda d: str(d["position_id"])
    )
    return orders, positions


def test_submit_accept_fill_books_the_position() -> None:
    oms, v, log = make_oms()
    order = buy(oms, "c1")
    assert order.status is S.SUBMITTED and [o.order_id for o in v.submitted] == [order.order_id]
    assert [type(e).__name__ for e in log] == ["OrderCreated", "OrderSubmitted"]
    v.report(K.ACCEPTED, order.order_id, venue_order_id="X1")
    v.report(K.FILL, order.order_id, fill_id="f1", fill_quantity=4, fill_price=99.0)
    v.report(K.FILL, order.order_id, fill_id="f2", fill_quantity=6, fill_price=100.0)
    assert (order.status, order.venue_order_id, order.filled_quantity) == (S.FILLED, "X1", 10)
    pos = oms.positions.get("acct", "AAPL")
    assert pos is not None and (pos.quantity, pos.average_cost) == (10, pytest.approx(99.6))
    exp = oms.exposure("acct")
    assert exp.open_buy["AAPL"] == 0 and exp.credit == 0.0
    assert oms.open_orders("acct") == []


def test_denied_order_carries_its_reason_code_and_never_reaches_the_venue() -> None:
    oms, v, _log = make_oms(limits=lim(max_order_quantity=5))
    order = buy(oms, "c1", qty=6)
    assert order.status is S.DENIED and order.reason == DenyReason.MAX_ORDER_QUANTITY
    assert v.submitted == [] and oms.open_orders("acct") == []


def test_repeated_client_order_id_returns_the_existing_order() -> None:
    oms, v, _log = make_oms()
    first = buy(oms, "c1")
    again = buy(oms, "c1", qty=99, price=1.0)  # different content: still the same order
    assert again is first and len(v.submitted) == 1 and len(oms.orders()) == 1
    other = oms.submit(
        account="other",
        client_order_id="c1",
        symbol="AAPL",
        side="BUY",
        quantity=1,
        limit_price=100.0,
    )
    assert other is not first
    # a denied order is returned too, not re-checked
    oms2, v2, _ = make_oms(limits=lim(max_order_quantity=5))
    denied = buy(oms2, "d", qty=6)
    assert buy(oms2, "d", qty=1) is denied and v2.submitted == []


def test_idempotency_index_survives_a_rebuild_from_the_journal() -> None:
    oms, v, log = make_oms()
    first = buy(oms, "c1")
    v.report(K.ACCEPTED, first.order_id)
    venue2 = ScriptedVenue()
    restarted = OMS({venue2.name: venue2}, PreTradeControls(Refs(), lim()), Clock())
    restarted.replay(log)
    again = buy(restarted, "c1")
    assert again.order_id == first.order_id and again.status is S.ACCEPTED
    assert venue2.submitted == []
    # new orders continue the id sequence
    assert buy(restarted, "c2").order_id != first.order_id


def test_invalid_input_is_a_value_error_and_journals_nothing() -> None:
    oms, _v, log = make_oms()
    with pytest.raises(ValueError, match="quantity"):
        buy(oms, "c1", qty=0)
    with pytest.raises(ValueError, match="limit_price"):
        buy(oms, "c1", price=float("nan"))
    with pytest.raises(ValueError, match="venue"):
        buy(oms, "c1", venue="NOPE")
    assert log == [] and oms.find("acct", "c1") is None


def test_fills_are_deduplicated_by_venue_and_fill_id() -> None:
    a, b = ScriptedVenue("A"), ScriptedVenue("B")
    log: list[OmsEvent] = []
    oms = OMS({"A": a, "B": b}, PreTradeControls(Refs(), lim()), Clock(), log.append)
    oa = buy(oms, "c1", venue="A")
    ob = buy(oms, "c2", venue="B")
    for _ in range(3):
        a.report(K.FILL, oa.order_id, fill_id="1", fill_quantity=2, fill_price=100.0)
    b.report(K.FILL, ob.order_id, fill_id="1", fill_quantity=3, fill_price=100.0)
    assert (oa.filled_quantity, ob.filled_quantity) == (2, 3)
    assert oms.positions.net_quantity("acct", "AAPL") == 5
    assert sum(isinstance(e, OrderFilled) for e in log) == 2


def test_timeout_looks_the_order_up_before_any_retry() -> None:
    # the venue got the order: adopt its state, do not send it again
    oms, v, log = make_oms()
    v.timeouts, v.keep_on_timeout = 1, True
    order = buy(oms, "c1")
    assert v.lookups == [order.order_id] and len(v.submitted) == 1
    assert order.status is S.ACCEPTED and order.venue_order_id == "V-" + order.order_id
    assert any(isinstance(e, VenueTimeout) and e.found for e in log)
    # the venue never got it: looked up, then sent again
    oms, v, log = make_oms()
    v.timeouts = 1
    order = buy(oms, "c1")
    assert v.lookups == [order.order_id] and len(v.submitted) == 1
    assert order.status is S.SUBMITTED
    # the lookup fails: no retry (the order may be live), an anomaly instead
    oms, v, log = make_oms()
    v.timeouts, v.lookup_fails = 1, True
    order = buy(oms, "c1")
    assert v.submitted == [] and order.status is S.SUBMITTED
    assert [e.kind for e in log if isinstance(e, ExecutionAnomaly)] == [AnomalyKind.SUBMIT_TIMEOUT]
    # always timing out: lookup before each retry, then an anomaly
    oms, v, log = make_oms()
    v.timeouts = 5
    order = buy(oms, "c1")
    assert len(v.lookups) == 2 and v.submitted == []
    assert isinstance(log[-1], ExecutionAnomaly)


def test_fill_after_cancel_request_race_through_the_oms() -> None:
    oms, v, _log = make_oms()
    order = buy(oms, "c1")
    v.report(K.ACCEPTED, order.order_id)
    oms.cancel(order.order_id)
    assert order.status is S.PENDING_CANCEL and v.canceled == [order.order_id]
    v.report(K.FILL, order.order_id, fill_id="f1", fill_quantity=3, fill_price=100.0)
    assert order.status is S.PARTIALLY_FILLED
    assert oms.exposure("acct").open_buy["AAPL"] == 7
    v.report(K.CANCELED, order.order_id, reason="user")
    assert (order.status, order.filled_quantity, order.leaves) == (S.CANCELED, 3, 0)
    assert oms.exposure("acct").open_buy["AAPL"] == 0
    with pytest.raises(OrderStateError):
        oms.cancel(order.order_id)  # done


def test_cancel_rejected_and_cancel_resent_while_pending() -> None:
    oms, v, _ = make_oms()
    order = buy(oms, "c1")
    v.report(K.ACCEPTED, order.order_id)
    oms.cancel(order.order_id)
    oms.cancel(order.order_id)
    assert v.canceled == [order.order_id] * 2 and order.status is S.PENDING_CANCEL
    v.report(K.CANCEL_REJECTED, order.order_id, reason="venue busy")
    assert order.status is S.ACCEPTED and order.reason == "venue busy"


def test_replace_applied_rejected_and_denied() -> None:
    oms, v, log = make_oms(limits=lim(max_order_quantity=50))
    order = buy(oms, "c1")
    v.report(K.ACCEPTED, order.order_id)
    oms.replace(order.order_id, 20, 101.0)
    assert order.status is S.PENDING_REPLACE and v.replaced == [(order.order_id, 20, 101.0)]
    v.report(K.FILL, order.order_id, fill_id="f1", fill_quantity=5, fill_price=100.0)
    v.report(K.REPLACED, order.order_id, new_quantity=20, new_limit_price=101.0)
    assert (order.status, order.quantity, order.leaves, order.limit_price) == (
        S.PARTIALLY_FILLED,
        20,
        15,
        101.0,
    )
    assert oms.exposure("acct").open_buy["AAPL"] == 15
    oms.replace(order.order_id, 30)
    v.report(K.REPLACE_REJECTED, order.order_id, reason="not applied")
    assert (order.status, order.quantity) == (S.PARTIALLY_FILLED, 20)
    # the amended order goes through the controls: 60 > max_order_quantity
    oms.replace(order.order_id, 65)
    assert isinstance(log[-1], ReplaceDenied) and log[-1].reason is DenyReason.MAX_ORDER_QUANTITY
    assert order.status is S.PARTIALLY_FILLED and len(v.replaced) == 2
    with pytest.raises(ValueError, match="quantity"):
        oms.replace(order.order_id, 5)  # not above the filled quantity
    with pytest.raises(OrderNotFound):
        oms.replace("nope", 5)


def test_overfill_is_an_anomaly_and_the_position_follows_the_venue() -> None:
    oms, v, log = make_oms()
    order = buy(oms, "c1")
    v.report(K.FILL, order.order_id, fill_id="f1", fill_quantity=10, fill_price=100.0)
    v.report(K.FILL, order.order_id, fill_id="f2", fill_quantity=4, fill_price=100.0)
    assert (order.status, order.filled_quantity, order.leaves) == (S.FILLED, 10, 0)
    anomalies = [e for e in log if isinstance(e, ExecutionAnomaly)]
    assert [a.kind for a in anomalies] == [AnomalyKind.OVERFILL]
    assert oms.positions.net_quantity("acct", "AAPL") == 14
    # the same overfill reported again is not booked twice
    v.report(K.FILL, order.order_id, fill_id="f2", fill_quantity=4, fill_price=100.0)
    assert oms.positions.net_quantity("acct", "AAPL") == 14


def test_fok_partial_fill_and_events_for_unknown_orders_are_anomalies() -> None:
    oms, v, log = make_oms()
    order = buy(oms, "c1", time_in_force="FOK")
    v.report(K.FILL, order.order_id, fill_id="f1", fill_quantity=3, fill_price=100.0)
    v.report(K.CANCELED, "ghost")
    kinds = [e.kind for e in log if isinstance(e, ExecutionAnomaly)]
    assert kinds == [AnomalyKind.INVALID_TRANSITION, AnomalyKind.UNKNOWN_ORDER]
    assert order.filled_quantity == 0


def test_ioc_rest_canceled_by_the_venue() -> None:
    oms, v, _ = make_oms()
    order = buy(oms, "c1", time_in_force="IOC")
    v.report(K.FILL, order.order_id, fill_id="f1", fill_quantity=3, fill_price=100.0)
    v.report(K.CANCELED, order.order_id, reason="IOC")
    assert (order.status, order.filled_quantity) == (S.CANCELED, 3)


def test_kill_switch_halts_and_cancels_every_open_order() -> None:
    oms, v, log = make_oms()
    a = buy(oms, "a")
    v.report(K.ACCEPTED, a.order_id)
    b = buy(oms, "b", price=99.0)
    v.report(K.FILL, b.order_id, fill_id="f1", fill_quantity=2, fill_price=99.0)
    c = buy(oms, "c", price=98.0)
    v.report(K.ACCEPTED, c.order_id)
    oms.replace(c.order_id, 12)
    stop = buy(oms, "s", type="STOP", limit_price=None, stop_price=120.0)
    other = oms.submit(
        account="other",
        client_order_id="x",
        symbol="AAPL",
        side="BUY",
        quantity=1,
        limit_price=100.0,
    )
    canceled = oms.kill_switch("acct", "operator")
    assert {o.order_id for o in canceled} == {a.order_id, b.order_id, c.order_id, stop.order_id}
    assert sorted(v.canceled) == sorted([a.order_id, b.order_id, c.order_id])
    assert stop.status is S.CANCELED  # held by the OMS: canceled at once
    assert a.status is S.PENDING_CANCEL and b.status is S.PENDING_CANCEL
    assert other.status is S.SUBMITTED
    assert any(isinstance(e, TradingStateSet) and e.mode is TradingMode.HALTED for e in log)
    for o in (a, b, c):
        v.report(K.CANCELED, o.order_id)
    assert oms.open_orders("acct") == []
    denied = buy(oms, "after")
    assert denied.status is S.DENIED and denied.reason == DenyReason.TRADING_HALTED
    oms.set_trading_state("acct", "ACTIVE")
    assert buy(oms, "again", price=97.0).status is S.SUBMITTED
    with pytest.raises(ValueError, match="mode"):
        oms.set_trading_state("acct", "ENABLED")


def test_stops_are_held_until_the_trade_price_reaches_them() -> None:
    oms, v, _ = make_oms()
    stop = buy(oms, "s", type="STOP", limit_price=None, stop_price=101.0)
    sell_sl = oms.submit(
        account="acct",
        client_order_id="t",
        symbol="AAPL",
        side="SELL",
        quantity=5,
        type="STOP_LIMIT",
        stop_price=95.0,
        limit_price=94.5,
    )
    assert stop.status is S.ACCEPTED and stop.held and v.submitted == []
    assert oms.on_trade("AAPL", 100.99) == [] and oms.on_trade("MSFT", 500.0) == []
    assert oms.on_trade("AAPL", 101.0) == [stop]
    assert stop.status is S.SUBMITTED and v.submitted[-1].type is OrderType.MARKET
    assert oms.on_trade("AAPL", 200.0) == []  # fired once
    assert oms.on_trade("AAPL", 95.0) == [sell_sl]
    assert v.submitted[-1].type is OrderType.LIMIT and v.submitted[-1].limit_price == 94.5


def test_held_stop_replace_and_cancel_stay_in_the_oms() -> None:
    oms, v, _ = make_oms()
    stop = buy(oms, "s", type="STOP_LIMIT", limit_price=102.0, stop_price=101.0)
    oms.replace(stop.order_id, 4, 103.0)
    assert (stop.status, stop.quantity, stop.limit_price, stop.held) == (S.ACCEPTED, 4, 103.0, True)
    assert v.replaced == []
    oms.cancel(stop.order_id)
    assert stop.status is S.CANCELED and v.canceled == []
    assert oms.on_trade("AAPL", 200.0) == []


def test_end_session_expires_day_orders_only() -> None:
    oms, v, log = make_oms()
    day = buy(oms, "d")
    v.report(K.ACCEPTED, day.order_id)
    gtc = buy(oms, "g", price=99.0, time_in_force="GTC")
    v.report(K.ACCEPTED, gtc.order_id)
    held = buy(oms, "s", type="STOP", limit_price=None, stop_price=150.0)
    assert {o.order_id for o in oms.end_session()} == {day.order_id, held.order_id}
    assert (day.status, held.status, gtc.status) == (S.EXPIRED, S.EXPIRED, S.ACCEPTED)
    assert v.canceled == [day.order_id]
    v.report(K.CANCELED, day.order_id)  # the venue's answer: absorbed
    assert day.status is S.EXPIRED
    assert not any(isinstance(e, ExecutionAnomaly) for e in log)


def test_sink_failure_leaves_the_state_unchanged() -> None:
    v = ScriptedVenue()

    def sink(event: OmsEvent) -> None:
        raise OSError("journal unavailable")

    oms = OMS({v.name: v}, PreTradeControls(Refs(), lim()), Clock(), sink)
    with pytest.raises(OSError):
        buy(oms, "c1")
    assert oms.orders() == [] and oms.find("acct", "c1") is None and v.submitted == []


def test_multi_leg_order_books_each_leg() -> None:
    c1, c2 = "SPY   250620C00500000", "SPY   250620C00510000"
    oms, v, _ = make_oms()
    order = oms.submit(
        account="acct",
        client_order_id="spread",
        symbol="SPY-SPREAD",
        side="SELL",
        quantity=2,
        limit_price=3.0,
        legs=(Leg(c1, Side.BUY), Leg(c2, Side.SELL)),
    )
    sent = v.submitted[-1]
    assert sent.legs == ((c1, Side.BUY, 1), (c2, Side.SELL, 1))
    v.report(K.FILL, order.order_id, fill_id="1", fill_quantity=2, fill_price=8.0, symbol=c1)
    v.report(K.FILL, order.order_id, fill_id="2", fill_quantity=2, fill_price=5.0, symbol=c2)
    assert order.status is S.FILLED and order.average_fill_price == pytest.approx(3.0)
    # selling the spread sells leg 1 and buys leg 2
    assert oms.positions.net_quantity("acct", c1) == -2
    assert oms.positions.net_quantity("acct", c2) == 2


def test_replay_of_the_event_log_reproduces_orders_and_positions() -> None:
    for mode in (PositionMode.NETTING, PositionMode.HEDGING):
        oms, v, log = make_oms(mode=mode, refs={"AAPL": 100.0})
        oms.set_limits("acct", lim(max_order_quantity=100))
        orders = [buy(oms, f"c{i}", qty=10 + i, price=100.0 - i) for i in range(6)]
        v.report(K.ACCEPTED, orders[0].order_id, venue_order_id="X")
        v.report(K.FILL, orders[0].order_id, fill_id="a", fill_quantity=4, fill_price=100.0)
        oms.cancel(orders[0].order_id)
        v.report(K.FILL, orders[0].order_id, fill_id="b", fill_quantity=1, fill_price=99.0)
        v.report(K.CANCELED, orders[0].order_id)
        v.report(K.FILL, orders[1].order_id, fill_id="c", fill_quantity=11, fill_price=99.0)
        v.report(K.FILL, orders[1].order_id, fill_id="d", fill_quantity=3, fill_price=99.0)
        v.report(K.ACCEPTED, orders[2].order_id)
        oms.replace(orders[2].order_id, 20, 98.5)
        v.report(K.REPLACED, orders[2].order_id, new_quantity=20, new_limit_price=98.5)
        v.report(K.REJECTED, orders[3].order_id, reason="venue closed")
        buy(oms, "big", qty=500)  # denied
        sell = oms.submit(
            account="acct",
            client_order_id="s",
            symbol="AAPL",
            side="SELL",
            quantity=30,
            limit_price=101.0,
        )
        v.report(K.FILL, sell.order_id, fill_id="e", fill_quantity=30, fill_price=101.0)
        buy(oms, "stop", type="STOP", limit_price=None, stop_price=110.0)
        oms.on_trade("AAPL", 111.0)
        oms.end_session()
        oms.kill_switch("acct")
        assert any(isinstance(e, LimitsSet) for e in log)
        fresh = rebuilt(copy.deepcopy(log), mode)
        assert snapshot(fresh) == snapshot(oms)
        assert fresh.exposure("acct") == oms.exposure("acct")
        assert fresh.controls.mode("acct") is TradingMode.HALTED
        assert fresh.controls.limits("acct").max_order_quantity == 100
        assert sum(isinstance(e, OrderCreated) for e in log) == len(fresh.orders())


def test_immediate_venue_round_trip() -> None:
    oms, _v, _log = make_oms(ImmediateVenue(), refs={"AAPL": 100.0})
    for i in range(5):
        order = buy(oms, f"c{i}", qty=1, price=100.0)
        assert order.status is S.FILLED
    market = buy(oms, "m", type="MARKET", limit_price=None, qty=5)
    assert market.status is S.FILLED and market.average_fill_price == 100.0
    assert oms.positions.net_quantity("acct", "AAPL") == 10
    with pytest.raises(OrderStateError):
        oms.cancel(market.order_id)


def test_hedging_mode_positions_per_order_or_named_position() -> None:
    oms, v, _ = make_oms(mode=PositionMode.HEDGING)
    long_ = buy(oms, "l")
    short = oms.submit(
        account="acct",
        client_order_id="s",
        symbol="AAPL",
        side="SELL",
        quantity=4,
        limit_price=100.0,
    )
    close = oms.submit(
        account="acct",
        client_order_id="x",
        symbol="AAPL",
        side="SELL",
        quantity=10,
        limit_price=101.0,
        position_id=long_.order_id,
    )
    v.report(K.FILL, long_.order_id, fill_id="1", fill_quantity=10, fill_price=100.0)
    v.report(K.FILL, short.order_id, fill_id="2", fill_quantity=4, fill_price=100.0)
    v.report(K.FILL, close.order_id, fill_id="3", fill_quantity=10, fill_price=101.0)
    p_long = oms.positions.get("acct", long_.order_id)
    p_short = oms.positions.get("acct", short.order_id)
    assert p_long is not None and p_short is not None
    assert (p_long.quantity, p_long.realized_pnl, p_short.quantity) == (0, 10.0, -4)


def test_unknown_order_commands_raise_order_not_found() -> None:
    oms, _, _ = make_oms()
    with pytest.raises(OrderNotFound):
        oms.cancel("O99")
    with pytest.raises(OrderNotFound):
        oms.order("O99")


def test_journal_failure_after_creation_is_finished_by_the_resubmission() -> None:
    v = ScriptedVenue()
    log: list[OmsEvent] = []
    fail = {"on": 2}

    def sink(event: OmsEvent) -> None:
        fail["on"] -= 1
        if fail["on"] == 0:
            raise OSError("journal unavailable")
        log.append(event)

    oms = OMS({v.name: v}, PreTradeControls(Refs(), lim()), Clock(), sink)
    with pytest.raises(OSError):
        buy(oms, "c1")  # OrderCreated journaled, OrderSubmitted not
    assert v.submitted == [] and oms.find("acct", "c1") is not None
    # the caller retries with the same client_order_id (here after a restart from the journal)
    restarted = OMS({v.name: v}, PreTradeControls(Refs(), lim()), Clock(), log.append)
    restarted.replay(list(log))
    order = buy(restarted, "c1")
    assert order.status is S.SUBMITTED and len(v.submitted) == 1
    assert buy(restarted, "c1") is order and len(v.submitted) == 1


def test_resume_after_restart_looks_up_unanswered_orders_before_sending() -> None:
    oms, v, log = make_oms()
    known = buy(oms, "known")
    lost = buy(oms, "lost", price=99.0)
    v.submitted.clear()
    v.known[known.order_id] = VenueEvent(K.ACCEPTED, known.order_id, 7, "VK")
    v.known.pop(lost.order_id, None)
    venue2 = v  # the same venue, seen by the restarted service
    restarted = OMS({venue2.name: venue2}, PreTradeControls(Refs(), lim()), Clock())
    restarted.replay(log)
    looked = restarted.resume()
    assert {o.order_id for o in looked} == {known.order_id, lost.order_id}
    assert restarted.order(known.order_id).status is S.ACCEPTED
    assert [o.order_id for o in v.submitted] == [lost.order_id]  # only the unknown one resent


def test_a_trade_never_triggers_a_stop_the_state_machine_refuses() -> None:
    oms, v, log = make_oms()
    stop = buy(oms, "s", type="STOP", limit_price=None, stop_price=101.0)
    stop.status = S.PENDING_CANCEL  # as if a cancel were in flight
    assert oms.on_trade("AAPL", 150.0) == []
    assert v.submitted == [] and not any(type(e).__name__ == "StopTriggered" for e in log)


def test_a_journal_failure_while_the_venue_reports_inside_submit_is_not_a_venue_rejection() -> None:
    # The venue fills inside submit; the journal fails on the fill: the order was taken by the
    # venue, so the failure must reach the caller (to retry or rebuild), never become REJECTED.
    v = ImmediateVenue()
    log: list[OmsEvent] = []

    def sink(event: OmsEvent) -> None:
        if type(event).__name__ == "OrderFilled":
            raise OSError("journal unavailable")
        log.append(event)

    oms = OMS({v.name: v}, PreTradeControls(Refs(), lim()), Clock(), sink)
    with pytest.raises(OSError, match="journal unavailable"):
        buy(oms, "c1", venue="NOW")
    assert "OrderRejected" not in [type(e).__name__ for e in log]
    order = oms.find("acct", "c1")
    assert order is not None and order.status is not S.REJECTED
