"""services/execution/convert.py and state.py without a server: order requests checked field by
field, the venue rule, enum maps, and the effective trading mode."""

from __future__ import annotations

import math
from typing import Any

import pytest
from tradecore.oms.types import OrderStatus, OrderType, Side, TimeInForce
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.events.v1 import risk_pb2 as risk_events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_services.execution import convert
from tradecore_services.execution.journal import kind_of
from tradecore_services.execution.state import TradingStates


def req(**kw: Any) -> pb.SubmitOrderRequest:
    base: dict[str, Any] = dict(
        account="A1",
        client_order_id="c-1",
        symbol="AAPL",
        side="BUY",
        quantity=100,
        type="LIMIT",
        limit_price=190.5,
    )
    base.update(kw)
    return pb.SubmitOrderRequest(**{k: v for k, v in base.items() if v is not None})


def test_a_limit_order_becomes_the_library_s_vocabulary() -> None:
    spec = convert.order_spec(req())
    assert spec == convert.OrderSpec(
        account="A1",
        client_order_id="c-1",
        symbol="AAPL",
        side=Side.BUY,
        quantity=100,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY,
        venue="PAPER",
        limit_price=190.5,
    )
    stop = convert.order_spec(
        req(type="STOP_LIMIT", stop_price=191.0, time_in_force="IOC", side="SELL")
    )
    assert (stop.stop_price, stop.time_in_force, stop.side) == (191.0, TimeInForce.IOC, Side.SELL)
    market = convert.order_spec(req(type="MARKET", limit_price=None))
    assert market.limit_price is None and market.type is OrderType.MARKET


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"account": ""}, "account"),
        ({"account": "a.b"}, "account"),
        ({"client_order_id": ""}, "client_order_id"),
        ({"client_order_id": "x" * 129}, "client_order_id"),
        ({"client_order_id": "a\nb"}, "client_order_id"),
        ({"symbol": ""}, "symbol"),
        ({"symbol": "A B"}, "symbol"),
        ({"side": "SIDE_UNSPECIFIED"}, "side"),
        ({"side": 7}, "side"),
        ({"type": "ORDER_TYPE_UNSPECIFIED"}, "type"),
        ({"time_in_force": 9}, "time_in_force"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": -5}, "quantity"),
        ({"limit_price": None}, "limit_price"),
        ({"limit_price": 0.0}, "limit_price"),
        ({"limit_price": -1.0}, "limit_price"),
        ({"limit_price": math.nan}, "limit_price"),
        ({"limit_price": math.inf}, "limit_price"),
        ({"stop_price": 10.0}, "stop_price"),
        ({"type": "MARKET"}, "limit_price"),
        ({"type": "STOP", "limit_price": None}, "stop_price"),
        ({"venue": 9}, "venue"),
    ],
)
def test_bad_orders_name_the_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}[: ]"):
        convert.order_spec(req(**kw))


def test_both_venues_convert() -> None:
    # Whether ALPACA runs is the service's to say (FAILED_PRECONDITION naming `venue`).
    assert convert.order_spec(req(venue="ALPACA")).venue == "ALPACA"
    assert convert.order_spec(req(venue="PAPER")).venue == "PAPER"


def test_multi_leg_orders() -> None:
    legs = [
        pb.Leg(symbol="AAPL240621C00190000", side="BUY", ratio=1),
        pb.Leg(symbol="AAPL240621C00200000", side="SELL", ratio=1),
    ]
    spec = convert.order_spec(req(symbol="", legs=legs))
    assert [(leg.symbol, leg.side, leg.ratio) for leg in spec.legs] == [
        ("AAPL240621C00190000", Side.BUY, 1),
        ("AAPL240621C00200000", Side.SELL, 1),
    ]
    for kw, field in [
        ({"legs": legs}, "symbol"),  # symbol given as well
        ({"symbol": "", "legs": legs[:1]}, "legs"),
        ({"symbol": "", "legs": [legs[0], legs[0]]}, r"legs\[1\].symbol"),
        ({"symbol": "", "legs": [legs[0], pb.Leg(symbol="X", side="BUY")]}, r"legs\[1\].ratio"),
        ({"symbol": "", "legs": [legs[0], pb.Leg(symbol="X", ratio=1)]}, r"legs\[1\].side"),
    ]:
        with pytest.raises(ValueError, match=f"^{field}[: ]"):
            convert.order_spec(req(**kw))


def test_every_library_status_has_an_event_status_and_back() -> None:
    assert set(convert.STATUSES) == set(OrderStatus)
    assert convert.STATUSES[OrderStatus.SUBMITTED] == events.PENDING_NEW
    assert all(convert.STATUS_OF[v] is k for k, v in convert.STATUSES.items())


def test_journal_entries_are_commands_or_events() -> None:
    cmd = pb.JournalEntry(account="A1", submit=req())
    evt = pb.JournalEntry(account="A1", fill=events.Fill(fill_id="f1"))
    assert (kind_of(cmd), kind_of(evt)) == ("command", "event")
    with pytest.raises(ValueError, match=r"^entry: "):
        kind_of(pb.JournalEntry(account="A1"))


def state(mode: str, seq: int = 1, account: str = "A1") -> risk_events.TradingState:
    return risk_events.TradingState(account=account, mode=mode, sequence=seq)  # type: ignore[arg-type]


def test_the_effective_mode_is_the_stricter_one() -> None:
    s = TradingStates()
    assert s.mode("A1") == risk_events.ENABLED
    assert s.set_risk(state("REDUCE_ONLY", 3))
    assert s.mode("A1") == risk_events.REDUCE_ONLY
    s.set_operator(state("HALTED"))
    assert s.mode("A1") == risk_events.HALTED
    s.set_operator(state("ENABLED", 2))
    assert s.mode("A1") == risk_events.REDUCE_ONLY  # the risk service still reduces
    # an older risk state (a replay racing the subscription) does not undo a newer one
    assert not s.set_risk(state("ENABLED", 2))
    assert s.mode("A1") == risk_events.REDUCE_ONLY
    assert s.set_risk(state("ENABLED", 4))
    got = s.get("A1")
    assert (got.effective, got.operator.sequence, got.risk.sequence) == (
        risk_events.ENABLED,
        2,
        4,
    )
    assert s.get("B2").effective == risk_events.ENABLED
    with pytest.raises(ValueError, match=r"^mode: "):
        convert.check_mode("mode", risk_events.TRADING_MODE_UNSPECIFIED)


def test_limits_both_ways() -> None:
    msg = pb.Limits(
        max_order_quantity=500, credit_limit=1e6, collar=False, message_rate=20.0,
        restricted_symbols=["GME"], allowed_symbols=["AAPL", "MSFT"],
    )  # fmt: skip
    lim = convert.limits_of(msg)
    assert (lim.max_order_quantity, lim.credit_limit, lim.collar) == (500, 1e6, False)
    assert lim.restricted == frozenset({"GME"}) and lim.allowed == frozenset({"AAPL", "MSFT"})
    assert lim.max_position is None and lim.equity_collar == 0.05  # left out: the default
    back = convert.limits_message("A1", lim)
    assert back.account == "A1" and not back.HasField("max_position")
    assert convert.limits_of(back) == lim
    assert list(convert.limits_message("A1", convert.limits_of(pb.Limits())).allowed_symbols) == []


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"max_order_quantity": 0}, "limits.max_order_quantity"),
        ({"equity_collar": -0.1}, "limits.equity_collar"),
        ({"message_rate": math.inf}, "limits.message_rate"),
        ({"restricted_symbols": ["A B"]}, r"limits.restricted_symbols\[0\]"),
    ],
)
def test_bad_limits_name_the_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field} "):
        convert.limits_of(pb.Limits(**kw))


def test_a_reader_too_far_behind_is_ended_not_left_with_holes() -> None:
    import asyncio

    from tradecore_services.common.bus import Bus
    from tradecore_services.common.errors import ResourceExhaustedError
    from tradecore_services.execution import live
    from tradecore_services.execution.engine import Engine
    from tradecore_services.execution.journal import Journal

    async def go() -> None:
        journal = Journal()
        ex = live.Execution(Bus("nats://127.0.0.1:1", "t"), journal, Engine(journal, {}))
        ex.restored.set()
        gen = ex.stream_order_updates(pb.StreamOrderUpdatesRequest(account="A1"))
        first = asyncio.ensure_future(gen.__anext__())
        while "A1" not in ex._watchers:  # registered
            await asyncio.sleep(0.001)
        ex._offer_update(events.OrderUpdate(account="A1", order_id="O0"))
        assert (await asyncio.wait_for(first, 5)).order_id == "O0"
        nxt = asyncio.ensure_future(gen.__anext__())
        for i in range(live.STREAM_BUFFER + 1):
            ex._offer_update(events.OrderUpdate(account="A1", order_id=f"O{i}"))
        with pytest.raises(ResourceExhaustedError, match="fell 1024 order updates behind"):
            await asyncio.wait_for(nxt, 5)
        assert "A1" not in ex._watchers
        await ex.engine.close()

    asyncio.run(go())


def test_fill_ids_are_prefixed_by_the_venue_once() -> None:
    from tradecore.oms.oms import OrderFilled
    from tradecore.oms.order import Order
    from tradecore_services.execution.engine import order_fill

    o = Order("O1", "c1", "A1", "AAPL", Side.BUY, OrderType.LIMIT, TimeInForce.DAY, 10, 1.0)
    for venue_id, want in (("PAPER-7", "PAPER-7"), ("F1", "PAPER-F1")):
        e = OrderFilled(1, "O1", "PAPER", venue_id, "AAPL", Side.BUY, 10, 1.0)
        assert events.Fill.FromString(order_fill(o, e)).fill_id == want
