"""The order state machine, case by case, and order validation."""

from __future__ import annotations

import math
from datetime import date

import pytest
from tradecore.errors import TradecoreError
from tradecore.oms.order import (
    TRANSITIONS,
    Leg,
    Order,
    OrderStateError,
    OverfillError,
    Trigger,
    multiplier_of,
    parse_occ,
    validate_order,
)
from tradecore.oms.types import OrderStatus, OrderType, Side, TimeInForce

S = OrderStatus


def make(
    status: OrderStatus = S.INITIALIZED,
    quantity: int = 10,
    tif: TimeInForce = TimeInForce.DAY,
    type_: OrderType = OrderType.LIMIT,
    legs: tuple[Leg, ...] = (),
) -> Order:
    order = Order(
        "O1",
        "c1",
        "acct",
        "AAPL",
        Side.BUY,
        type_,
        tif,
        quantity,
        limit_price=100.0 if type_ in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        stop_price=99.0 if type_ in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        legs=legs,
    )
    path = {
        S.INITIALIZED: [],
        S.SUBMITTED: [Trigger.SUBMIT],
        S.ACCEPTED: [Trigger.SUBMIT, Trigger.ACCEPT],
        S.PENDING_CANCEL: [Trigger.SUBMIT, Trigger.ACCEPT, Trigger.CANCEL_REQUEST],
        S.PENDING_REPLACE: [Trigger.SUBMIT, Trigger.ACCEPT, Trigger.REPLACE_REQUEST],
    }[status]
    for t in path:
        order.transition(t, 1)
    return order


def fill(order: Order, qty: int, price: float = 100.0) -> None:
    order.apply_fill(order.symbol, qty, price, 1, 2)


def test_happy_path_submit_accept_partial_fill_filled() -> None:
    o = make(S.ACCEPTED)
    fill(o, 4, 100.0)
    assert (o.status, o.filled_quantity, o.leaves) == (S.PARTIALLY_FILLED, 4, 6)
    fill(o, 6, 101.0)
    assert (o.status, o.filled_quantity, o.leaves) == (S.FILLED, 10, 0)
    assert o.average_fill_price == pytest.approx(100.6)


def test_deny_from_initialized_only() -> None:
    o = make()
    o.transition(Trigger.DENY, 1, "MAX_ORDER_QUANTITY")
    assert o.status is S.DENIED and o.reason == "MAX_ORDER_QUANTITY"
    with pytest.raises(OrderStateError):
        make(S.ACCEPTED).transition(Trigger.DENY, 1)


def test_every_pair_outside_the_table_raises_and_changes_nothing() -> None:
    simple = [t for t in Trigger if t not in (Trigger.FILL, Trigger.REPLACE)]
    for status in (S.INITIALIZED, S.SUBMITTED, S.ACCEPTED, S.PENDING_CANCEL, S.PENDING_REPLACE):
        for trigger in simple:
            o = make(status)
            if trigger in TRANSITIONS[status]:
                continue
            before = (o.status, o.pending, o.updated_ns)
            with pytest.raises(OrderStateError) as info:
                o.transition(trigger, 99)
            assert isinstance(info.value, TradecoreError)
            assert (o.status, o.pending, o.updated_ns) == before, (status, trigger)


def test_done_states_take_no_fill() -> None:
    for terminal in (Trigger.REJECT, Trigger.CANCEL, Trigger.EXPIRE):
        o = make(S.SUBMITTED)
        o.transition(terminal, 1)
        assert o.status.done and o.leaves == 0
        with pytest.raises(OrderStateError):
            fill(o, 1)
    o = make()
    o.transition(Trigger.DENY, 1)
    with pytest.raises(OrderStateError):
        fill(o, 1)


def test_fill_before_the_acknowledgement() -> None:
    o = make(S.SUBMITTED)
    fill(o, 3)
    assert o.status is S.PARTIALLY_FILLED


def test_fill_after_cancel_request_then_cancel_applies_to_the_rest() -> None:
    o = make(S.PENDING_CANCEL)
    fill(o, 4)
    assert o.status is S.PARTIALLY_FILLED
    assert o.pending is S.PENDING_CANCEL  # the cancel is still outstanding
    o.transition(Trigger.CANCEL, 3, "user")
    assert (o.status, o.filled_quantity, o.leaves) == (S.CANCELED, 4, 0)
    assert o.pending is None


def test_fill_after_cancel_request_completes_the_order_then_cancel_rejected() -> None:
    o = make(S.PENDING_CANCEL)
    fill(o, 10)
    assert o.status is S.FILLED
    o.transition(Trigger.CANCEL_REJECT, 3, "too late to cancel")
    assert o.status is S.FILLED and o.pending is None
    # a CANCELED after FILLED contradicts the fills: refused
    with pytest.raises(OrderStateError):
        o.transition(Trigger.CANCEL, 4)


def test_cancel_rejected_returns_to_the_previous_working_state() -> None:
    o = make(S.PENDING_CANCEL)
    o.transition(Trigger.CANCEL_REJECT, 3)
    assert o.status is S.ACCEPTED and o.pending is None
    p = make(S.ACCEPTED)
    fill(p, 2)
    p.transition(Trigger.CANCEL_REQUEST, 3)
    p.transition(Trigger.CANCEL_REJECT, 4)
    assert p.status is S.PARTIALLY_FILLED
    # before the acknowledgement: back to SUBMITTED, and the late ack keeps it consistent
    q = make(S.SUBMITTED)
    q.transition(Trigger.CANCEL_REQUEST, 2)
    q.transition(Trigger.CANCEL_REJECT, 3)
    assert q.status is S.SUBMITTED
    q.transition(Trigger.ACCEPT, 4)
    assert q.status is S.ACCEPTED


def test_acknowledgement_after_cancel_request_keeps_the_cancel_pending() -> None:
    o = make(S.SUBMITTED)
    o.transition(Trigger.CANCEL_REQUEST, 2)
    o.transition(Trigger.ACCEPT, 3)
    assert o.status is S.PENDING_CANCEL
    o.transition(Trigger.CANCEL_REJECT, 4)
    assert o.status is S.ACCEPTED


def test_cancel_rejected_without_a_request_raises() -> None:
    o = make(S.ACCEPTED)
    fill(o, 1)
    with pytest.raises(OrderStateError, match="no PENDING_CANCEL request outstanding"):
        o.transition(Trigger.CANCEL_REJECT, 2)
    assert o.status is S.PARTIALLY_FILLED


def test_second_request_while_one_is_pending_raises() -> None:
    o = make(S.PENDING_CANCEL)
    fill(o, 1)
    with pytest.raises(OrderStateError, match="outstanding"):
        o.transition(Trigger.REPLACE_REQUEST, 2)


def test_replace_applied() -> None:
    o = make(S.ACCEPTED)
    o.request_replace(20, 101.0, 2)
    assert o.status is S.PENDING_REPLACE and o.pending_quantity == 20
    o.apply_replace(20, 101.0, 3)
    assert (o.status, o.quantity, o.limit_price, o.leaves) == (S.ACCEPTED, 20, 101.0, 20)


def test_fill_during_pending_replace_then_replace_applies() -> None:
    o = make(S.PENDING_REPLACE)
    fill(o, 4)
    assert o.status is S.PARTIALLY_FILLED and o.pending is S.PENDING_REPLACE
    o.apply_replace(8, 99.0, 3)
    assert (o.status, o.quantity, o.leaves, o.limit_price) == (S.PARTIALLY_FILLED, 8, 4, 99.0)


def test_replace_acknowledged_but_not_applied() -> None:
    o = make(S.PENDING_REPLACE)
    o.transition(Trigger.REPLACE_REJECT, 3, "order not replaceable")
    assert (o.status, o.quantity, o.limit_price) == (S.ACCEPTED, 10, 100.0)
    p = make(S.PENDING_REPLACE)
    fill(p, 10)
    p.transition(Trigger.REPLACE_REJECT, 3)
    assert p.status is S.FILLED


def test_replace_below_the_filled_quantity_raises() -> None:
    o = make(S.PENDING_REPLACE)
    fill(o, 6)
    with pytest.raises(OrderStateError, match="below the filled"):
        o.apply_replace(5, None, 3)
    assert o.quantity == 10


def test_replace_without_request_raises() -> None:
    with pytest.raises(OrderStateError):
        make(S.ACCEPTED).apply_replace(20, None, 2)


def test_overfill_raises_typed_error_and_leaves_the_order() -> None:
    o = make(S.ACCEPTED)
    fill(o, 8)
    with pytest.raises(OverfillError) as info:
        fill(o, 3)
    assert info.value.leaves == 2 and info.value.fill_quantity == 3
    assert (o.filled_quantity, o.leaves, o.status) == (8, 2, S.PARTIALLY_FILLED)
    fill(o, 2)
    with pytest.raises(OrderStateError):
        fill(o, 1)  # after FILLED
    assert o.leaves == 0


def test_expired_day_order_and_late_cancel_is_absorbed() -> None:
    o = make(S.ACCEPTED)
    fill(o, 2)
    o.transition(Trigger.EXPIRE, 5, "session end")
    assert (o.status, o.filled_quantity, o.leaves) == (S.EXPIRED, 2, 0)
    o.transition(Trigger.CANCEL, 6)  # the venue's answer to the OMS's cancel at session end
    assert o.status is S.EXPIRED and o.reason == "session end"


def test_ioc_partial_fill_then_rest_canceled() -> None:
    o = make(S.SUBMITTED, tif=TimeInForce.IOC)
    fill(o, 3)
    o.transition(Trigger.CANCEL, 3, "IOC remainder")
    assert (o.status, o.filled_quantity) == (S.CANCELED, 3)
    n = make(S.SUBMITTED, tif=TimeInForce.IOC)
    n.transition(Trigger.CANCEL, 3)  # nothing to trade
    assert n.status is S.CANCELED


def test_fok_all_or_nothing() -> None:
    o = make(S.SUBMITTED, tif=TimeInForce.FOK)
    with pytest.raises(OrderStateError, match="FOK"):
        fill(o, 9)
    assert o.filled_quantity == 0
    fill(o, 10)
    assert o.status is S.FILLED


def test_stop_is_armed_triggered_and_sent() -> None:
    o = make(type_=OrderType.STOP)
    o.transition(Trigger.ARM, 1)
    assert o.status is S.ACCEPTED and o.held
    o.transition(Trigger.TRIGGER, 2)
    assert o.status is S.SUBMITTED and o.triggered and not o.held
    venue_order = o.venue_order()
    assert venue_order.type is OrderType.MARKET and venue_order.limit_price is None
    sl = make(type_=OrderType.STOP_LIMIT)
    sl.transition(Trigger.ARM, 1)
    sl.transition(Trigger.TRIGGER, 2)
    assert sl.venue_order().type is OrderType.LIMIT and sl.venue_order().limit_price == 100.0
    with pytest.raises(OrderStateError):
        sl.transition(Trigger.TRIGGER, 3)  # only once


def test_multi_leg_fills_count_whole_units() -> None:
    legs = (Leg("SPY   250620C00500000", Side.BUY, 1), Leg("SPY   250620C00510000", Side.SELL, 2))
    o = make(S.ACCEPTED, quantity=3, legs=legs)
    o.apply_fill(legs[0].symbol, 3, 5.0, 1, 2)
    assert o.filled_quantity == 0 and o.status is S.ACCEPTED  # the other leg has not traded
    o.apply_fill(legs[1].symbol, 4, 2.0, -1, 2)
    assert o.filled_quantity == 2 and o.status is S.PARTIALLY_FILLED
    o.apply_fill(legs[1].symbol, 2, 2.0, -1, 2)
    assert o.status is S.FILLED
    assert o.average_fill_price == pytest.approx((3 * 5.0 - 6 * 2.0) / 3)
    with pytest.raises(OrderStateError, match="unknown leg"):
        make(S.ACCEPTED, legs=legs).apply_fill("QQQ", 1, 1.0, 1, 2)
    with pytest.raises(OverfillError):
        make(S.ACCEPTED, quantity=3, legs=legs).apply_fill(legs[1].symbol, 7, 1.0, -1, 2)


def test_occ_symbols() -> None:
    occ = parse_occ("AAPL  250117C00150000")
    assert occ is not None
    assert (occ.underlying, occ.expiry, occ.call, occ.strike) == (
        "AAPL",
        date(2025, 1, 17),
        True,
        150.0,
    )
    compact = parse_occ("SPY250620P00512500")
    assert compact is not None and not compact.call and compact.strike == 512.5
    assert parse_occ("AAPL") is None and parse_occ("AAPL  251317C00150000") is None
    assert multiplier_of("AAPL  250117C00150000") == 100 and multiplier_of("AAPL") == 1


GOOD = dict(
    account="a",
    client_order_id="c",
    symbol="AAPL",
    side="BUY",
    type="LIMIT",
    time_in_force="DAY",
    quantity=1,
    limit_price=1.0,
)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": 0}, "quantity"),
        ({"quantity": -5}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"limit_price": math.nan}, "limit_price"),
        ({"limit_price": math.inf}, "limit_price"),
        ({"limit_price": -1.0}, "limit_price"),
        ({"limit_price": None}, "limit_price"),
        ({"type": "MARKET"}, "limit_price"),  # a market order with a limit price
        ({"type": "PEGGED"}, "type"),
        ({"time_in_force": "GTD"}, "time_in_force"),
        ({"side": "SHORT"}, "side"),
        ({"type": "STOP", "limit_price": None}, "stop_price"),
        ({"type": "STOP_LIMIT"}, "stop_price"),
        ({"type": "STOP", "limit_price": None, "stop_price": math.nan}, "stop_price"),
        (
            {"type": "STOP", "limit_price": None, "stop_price": 1.0, "time_in_force": "IOC"},
            "time_in_force",
        ),
        ({"symbol": ""}, "symbol"),
        ({"account": ""}, "account"),
        ({"client_order_id": ""}, "client_order_id"),
        ({"legs": (Leg("X", Side.BUY),)}, "legs"),
        ({"legs": (Leg("X", Side.BUY), Leg("Y", Side.SELL, 0))}, r"legs\[1\].ratio"),
        ({"legs": (Leg("X", Side.BUY), Leg("X", Side.SELL))}, r"legs\[1\].symbol"),
    ],
)
def test_bad_input_names_the_field(change: dict[str, object], field: str) -> None:
    args = {**GOOD, **change}
    with pytest.raises(ValueError, match=field):
        validate_order(**args)  # type: ignore[arg-type]


def test_good_input_is_typed() -> None:
    assert validate_order(**GOOD) == (  # type: ignore[arg-type]
        Side.BUY,
        OrderType.LIMIT,
        TimeInForce.DAY,
        1,
        1.0,
        None,
    )
