"""Pre-trade controls: each one denies with its code and passes just inside its limit."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from tradecore.oms.oms import OMS, LimitsSet
from tradecore.oms.order import Leg, Order
from tradecore.oms.pretrade import (
    DenyReason,
    Exposure,
    Limits,
    MarketReference,
    PreTradeControls,
    TradingMode,
    short_option_margin,
)
from tradecore.oms.types import OrderType, Side, TimeInForce, VenueEvent, VenueOrder
from tradecore.oms.venue import Listener

T0 = 1_735_689_600_000_000_000  # 2025-01-01 00:00 UTC
OPT = "AAPL  250620C00150000"
PUT = "AAPL  250620P00150000"
R = DenyReason


class Refs:
    def __init__(self, **prices: float) -> None:
        self.prices = {k.replace("_", " "): v for k, v in prices.items()}

    def reference(self, symbol: str) -> float | None:
        return self.prices.get(symbol)


def order(
    qty: int = 10,
    price: float | None = 100.0,
    side: Side = Side.BUY,
    symbol: str = "AAPL",
    type_: OrderType = OrderType.LIMIT,
    stop: float | None = None,
    reduce_only: bool = False,
    legs: tuple[Leg, ...] = (),
) -> Order:
    return Order(
        "O1",
        "c1",
        "acct",
        symbol,
        side,
        type_,
        TimeInForce.DAY,
        qty,
        price,
        stop,
        reduce_only=reduce_only,
        legs=legs,
    )


def controls(refs: Refs | None = None, **limits: object) -> PreTradeControls:
    base: dict[str, object] = {"duplicate_window_ns": None, "collar": False}
    base.update(limits)
    return PreTradeControls(refs or Refs(AAPL=100.0), Limits(**base))  # type: ignore[arg-type]


def exposure(**net: int) -> Exposure:
    return Exposure(net=dict(net))


def code(c: PreTradeControls, o: Order, exp: Exposure | None = None, t: int = T0) -> R | None:
    return c.check(o, exp or exposure(), t)[0]


def test_no_limits_pass() -> None:
    assert code(controls(), order()) is None


def test_message_rate_token_bucket() -> None:
    c = controls(message_rate=10.0, message_burst=2)
    assert code(c, order(), t=T0) is None
    assert code(c, order(), t=T0) is None
    assert code(c, order(), t=T0) is R.MESSAGE_RATE
    assert code(c, order(), t=T0 + 99_000_000) is R.MESSAGE_RATE  # 0.99 of a token
    assert code(c, order(), t=T0 + 100_000_000) is None  # one token refilled
    # another account has its own bucket
    other = order()
    other.account = "other"
    assert code(c, other, t=T0 + 100_000_000) is None


def test_trading_states() -> None:
    c = controls()
    c.set_mode("acct", TradingMode.HALTED)
    assert code(c, order()) is R.TRADING_HALTED
    c.set_mode("acct", TradingMode.REDUCE_ONLY)
    long10 = exposure(AAPL=10)
    assert code(c, order(qty=10, side=Side.SELL), long10) is None
    assert code(c, order(qty=11, side=Side.SELL), long10) is R.TRADING_REDUCE_ONLY
    assert code(c, order(qty=1, side=Side.BUY), long10) is R.TRADING_REDUCE_ONLY
    # working sells count: 6 already working, 4 more reach the position exactly
    working = Exposure(net={"AAPL": 10}, open_sell={"AAPL": 6})
    assert code(c, order(qty=4, side=Side.SELL), working) is None
    assert code(c, order(qty=5, side=Side.SELL), working) is R.TRADING_REDUCE_ONLY
    c.set_mode("acct", TradingMode.ACTIVE)
    assert code(c, order(qty=1, side=Side.BUY), long10) is None


def test_restricted_and_allowed_lists() -> None:
    c = controls(restricted=frozenset({"GME"}))
    assert code(c, order(symbol="GME")) is R.RESTRICTED_INSTRUMENT
    assert code(c, order(symbol="AAPL")) is None
    a = controls(allowed=frozenset({"AAPL"}))
    assert code(a, order(symbol="AAPL")) is None
    assert code(a, order(symbol="MSFT")) is R.INSTRUMENT_NOT_ALLOWED
    legs = (Leg(OPT, Side.BUY), Leg(PUT, Side.SELL))
    r = controls(restricted=frozenset({PUT}))
    assert code(r, order(symbol="AAPL-RR", price=1.0, legs=legs)) is R.RESTRICTED_INSTRUMENT


def test_max_order_quantity() -> None:
    c = controls(max_order_quantity=100)
    assert code(c, order(qty=100)) is None
    assert code(c, order(qty=101)) is R.MAX_ORDER_QUANTITY


def test_max_order_notional_with_multiplier_and_market_orders() -> None:
    c = controls(Refs(AAPL=100.0, **{OPT.replace(" ", "_"): 5.0}), max_order_notional=10_000.0)
    assert code(c, order(qty=100, price=100.0)) is None
    assert code(c, order(qty=100, price=100.01)) is R.MAX_ORDER_NOTIONAL
    # an option: 20 contracts x 5.00 x 100 = 10,000
    assert code(c, order(qty=20, price=5.0, symbol=OPT)) is None
    assert code(c, order(qty=21, price=5.0, symbol=OPT)) is R.MAX_ORDER_NOTIONAL
    # a market order is valued at the reference
    assert code(c, order(qty=100, price=None, type_=OrderType.MARKET)) is None
    assert code(c, order(qty=101, price=None, type_=OrderType.MARKET)) is R.MAX_ORDER_NOTIONAL
    assert code(c, order(symbol="MSFT")) is R.NO_REFERENCE_PRICE


def test_equity_price_collar_aggressive_side_only() -> None:
    c = controls(collar=True, equity_collar=0.05)
    assert code(c, order(price=105.0)) is None
    assert code(c, order(price=105.01)) is R.PRICE_COLLAR
    assert code(c, order(price=95.0, side=Side.SELL)) is None
    assert code(c, order(price=94.99, side=Side.SELL)) is R.PRICE_COLLAR
    assert code(c, order(price=50.0)) is None  # a passive buy far below cannot trade there
    # a stop is collared at its stop price; a market order has no price to collar
    stop = order(price=None, type_=OrderType.STOP, stop=106.0)
    assert code(c, stop) is R.PRICE_COLLAR
    assert code(c, order(price=None, type_=OrderType.MARKET)) is None
    assert code(c, order(symbol="MSFT")) is R.NO_REFERENCE_PRICE


def _bs_call(s: float, k: float, t: float, r: float, v: float) -> float:
    n = lambda x: 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))  # noqa: E731
    d1 = (math.log(s / k) + (r + 0.5 * v * v) * t) / (v * math.sqrt(t))
    return s * n(d1) - k * math.exp(-r * t) * n(d1 - v * math.sqrt(t))


def test_option_collar_on_the_theoretical_value_with_a_wider_band() -> None:
    clock = lambda: T0  # noqa: E731
    refs = MarketReference(clock, rate=0.04)
    refs.quote("AAPL", 149.9, 150.1)
    refs.set_volatility("AAPL", 0.30)
    theo = refs.reference(OPT)
    years = (datetime(2025, 6, 20, 21, tzinfo=UTC).timestamp() * 1e9 - T0) / (365 * 86400e9)
    assert theo == pytest.approx(_bs_call(150.0, 150.0, years, 0.04, 0.30), rel=1e-9)
    assert theo is not None
    c = PreTradeControls(refs, Limits(duplicate_window_ns=None, option_collar=0.25))
    assert code(c, order(symbol=OPT, price=theo * 1.25 - 1e-9, qty=1)) is None
    assert code(c, order(symbol=OPT, price=theo * 1.25 + 0.01, qty=1)) is R.PRICE_COLLAR
    # the equity band (5 %) stays narrow
    assert code(c, order(price=150.0 * 1.05 + 0.01)) is R.PRICE_COLLAR
    # no volatility for the underlying: no theoretical value, no reference
    assert code(c, order(symbol="MSFT  250620C00150000", price=1.0)) is R.NO_REFERENCE_PRICE
    # a cheap option's band has a floor: 0.10 around a 0.02 value
    refs.quote("AAPL", 99.9, 100.1)
    cheap = refs.reference(OPT)
    assert cheap is not None and cheap < 0.4
    assert code(c, order(symbol=OPT, price=cheap + 0.10 - 1e-9, qty=1)) is None
    assert code(c, order(symbol=OPT, price=cheap + 0.11, qty=1)) is R.PRICE_COLLAR
    # a one-sided/crossed quote removes the reference
    refs.quote("AAPL", 0.0, 100.0)
    assert refs.reference(OPT) is None and refs.reference("AAPL") is None


def test_multi_leg_collar_on_the_net_price() -> None:
    refs = Refs(**{OPT.replace(" ", "_"): 6.0, PUT.replace(" ", "_"): 4.0})
    c = controls(refs, collar=True, option_collar=0.25)
    legs = (Leg(OPT, Side.BUY), Leg(PUT, Side.SELL))  # net reference 2.00, band 2.50
    assert code(c, order(symbol="RR", price=4.5, qty=1, legs=legs)) is None
    assert code(c, order(symbol="RR", price=4.51, qty=1, legs=legs)) is R.PRICE_COLLAR


def test_reduce_only_orders() -> None:
    c = controls()
    assert code(c, order(qty=5, side=Side.SELL, reduce_only=True), exposure(AAPL=5)) is None
    assert (
        code(c, order(qty=6, side=Side.SELL, reduce_only=True), exposure(AAPL=5)) is R.REDUCE_ONLY
    )
    assert code(c, order(qty=1, reduce_only=True), exposure(AAPL=5)) is R.REDUCE_ONLY
    assert code(c, order(qty=5, reduce_only=True), exposure(AAPL=-5)) is None


def test_position_limit_counts_working_orders() -> None:
    c = controls(max_position=100)
    assert code(c, order(qty=40), Exposure(net={"AAPL": 50}, open_buy={"AAPL": 10})) is None
    assert code(c, order(qty=41), Exposure(net={"AAPL": 50}, open_buy={"AAPL": 10})) is (
        R.POSITION_LIMIT
    )
    assert code(c, order(qty=150, side=Side.SELL), exposure(AAPL=50)) is None
    assert code(c, order(qty=151, side=Side.SELL), exposure(AAPL=50)) is R.POSITION_LIMIT


def test_credit_limit_open_plus_pending() -> None:
    c = controls(credit_limit=10_000.0)
    assert code(c, order(qty=50), Exposure(net={}, credit=5_000.0)) is None
    assert code(c, order(qty=51), Exposure(net={}, credit=5_000.0)) is R.CREDIT_LIMIT
    # a sell that closes a long reserves nothing
    reason, _, credit = c.check(order(qty=500, side=Side.SELL), exposure(AAPL=500), T0)
    assert reason is None and credit == 0.0
    # the part beyond the long opens a short and reserves its notional
    assert c.check(order(qty=10, side=Side.SELL), exposure(AAPL=6), T0)[2] == pytest.approx(40.0)


def test_short_option_margin_rule() -> None:
    # call 150 with the underlying at 140 (10 OTM), premium 2:
    # 2 + max(0.2 x 140 - 10, 0.1 x 140) = 2 + 18 = 20 per unit, x 100
    assert short_option_margin(True, 150.0, 140.0, 2.0) == pytest.approx(20.0)
    # deep OTM put: 0.1 x strike floor
    assert short_option_margin(False, 100.0, 200.0, 0.05) == pytest.approx(0.05 + 10.0)
    refs = Refs(AAPL=140.0, **{OPT.replace(" ", "_"): 2.0})
    c = controls(refs, credit_limit=4_000.0)
    # 2 contracts x 20 x 100 = 4,000: just inside; 3 are over
    reason, _, per_unit = c.check(
        order(qty=2, side=Side.SELL, symbol=OPT, price=2.0), exposure(), T0
    )
    assert reason is None and per_unit == pytest.approx(2_000.0)
    assert code(c, order(qty=3, side=Side.SELL, symbol=OPT, price=2.0)) is R.CREDIT_LIMIT
    no_spot = controls(Refs(**{OPT.replace(" ", "_"): 2.0}), credit_limit=4_000.0)
    assert code(no_spot, order(qty=1, side=Side.SELL, symbol=OPT, price=2.0)) is (
        R.NO_REFERENCE_PRICE
    )


def test_duplicate_orders_within_the_window() -> None:
    c = controls(duplicate_window_ns=1_000_000_000)
    assert code(c, order(), t=T0) is None
    assert code(c, order(), t=T0 + 999_999_999) is R.DUPLICATE_ORDER
    assert code(c, order(price=100.01), t=T0 + 1) is None  # another price
    assert code(c, order(qty=11), t=T0 + 1) is None
    assert code(c, order(), t=T0 + 1_000_000_000) is None  # the window passed


def test_repeated_execution_throttle() -> None:
    c = controls(max_executions=3, execution_window_ns=1_000_000_000)
    for i in range(2):
        c.record_execution("acct", "AAPL", Side.BUY, T0 + i)
    assert code(c, order(), t=T0 + 10) is None
    c.record_execution("acct", "AAPL", Side.BUY, T0 + 2)
    assert code(c, order(), t=T0 + 10) is R.REPEATED_EXECUTION
    assert code(c, order(side=Side.SELL, price=100.0), t=T0 + 10) is None  # the other side
    assert code(c, order(), t=T0 + 1_000_000_000) is None  # the first left the window


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"max_order_quantity": 0}, "max_order_quantity"),
        ({"max_order_quantity": 1.5}, "max_order_quantity"),
        ({"max_order_notional": math.nan}, "max_order_notional"),
        ({"credit_limit": -1.0}, "credit_limit"),
        ({"equity_collar": math.inf}, "equity_collar"),
        ({"message_rate": 0.0}, "message_rate"),
        ({"message_burst": None}, "message_burst"),
        ({"collar": "yes"}, "collar"),
        ({"max_executions": True}, "max_executions"),
    ],
)
def test_bad_limits_name_the_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**kw)  # type: ignore[arg-type]


class Sink:
    """A venue that takes orders and reports nothing (they stay working)."""

    name = "SINK"

    def set_listener(self, listener: Listener) -> None:
        self.listener = listener

    def submit(self, order: VenueOrder) -> None:
        pass

    def cancel(self, order_id: str) -> None:
        pass

    def replace(self, order_id: str, quantity: int, limit_price: float | None) -> None:
        pass

    def lookup(self, order_id: str) -> VenueEvent | None:
        return None


def test_oms_counts_working_orders_and_limits_change_at_run_time() -> None:
    log: list[object] = []
    oms = OMS(
        {"SINK": Sink()},
        PreTradeControls(Refs(AAPL=100.0), Limits(duplicate_window_ns=None, collar=False)),
        lambda: T0,
        log.append,
    )
    oms.set_limits(
        "acct",
        Limits(credit_limit=3_000.0, max_position=25, collar=False, duplicate_window_ns=None),
    )
    assert isinstance(log[-1], LimitsSet)
    kw = dict(account="acct", symbol="AAPL", side="BUY", limit_price=100.0)
    assert oms.submit(client_order_id="a", quantity=20, **kw).reason == ""  # type: ignore[arg-type]
    # 20 working: 10 more would make a position of 30 > 25, and 3,000 of credit...
    denied = oms.submit(client_order_id="b", quantity=10, **kw)  # type: ignore[arg-type]
    assert denied.reason == R.POSITION_LIMIT
    denied = oms.submit(
        client_order_id="c",
        quantity=5,
        limit_price=201.0,
        account="acct",
        symbol="AAPL",
        side="BUY",
    )
    assert denied.reason == R.CREDIT_LIMIT
    assert oms.exposure("acct").credit == pytest.approx(2_000.0)
    oms.set_limits("acct", Limits(collar=False, duplicate_window_ns=None))
    assert oms.submit(client_order_id="d", quantity=10, **kw).reason == ""  # type: ignore[arg-type]
