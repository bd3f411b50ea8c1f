"""AccountBook (services/risk/accounts.py) and limits (services/risk/limits.py): positions from
fills and SetPositions, cached Greeks, the fast delta-gamma VaR, day P&L, limits, breaches and
the trading mode, all without NATS or a server."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from tradecore.pricing import american, european
from tradecore.risk import normals
from tradecore_api.events.v1 import common_pb2, execution_pb2
from tradecore_api.events.v1 import risk_pb2 as events
from tradecore_api.risk.v1 import risk_pb2 as pb
from tradecore_services.risk import limits as lim
from tradecore_services.risk.accounts import (
    DAY_NS,
    YEAR_NS,
    AccountBook,
    AccountConfig,
)

T0 = 1_780_000_000 * 1_000_000_000  # an instant in 2026 (ns)
EXPIRY = T0 + YEAR_NS // 2


def fill(
    fill_id: str,
    symbol: str,
    side: common_pb2.Side,
    qty: int,
    price: float,
    *,
    fee: float = 0.0,
    option: tuple[str, common_pb2.OptionRight, float, int] | None = None,
    t: int = T0,
) -> execution_pb2.Fill:
    f = execution_pb2.Fill(
        fill_id=fill_id, account="A1", side=side, quantity=qty, price=price, fee=fee,
        exchange_time_ns=t,
    )  # fmt: skip
    f.instrument.symbol = symbol
    if option is None:
        f.instrument.kind = common_pb2.EQUITY
    else:
        underlying, right, strike, expiry = option
        f.instrument.kind = common_pb2.OPTION
        f.instrument.underlying = underlying
        f.instrument.right = right
        f.instrument.strike = strike
        f.instrument.expiry_time_ns = expiry
        f.instrument.multiplier = 100
    return f


BUY, SELL = common_pb2.BUY, common_pb2.SELL


def equity(symbol: str) -> pb.RiskInstrument:
    return pb.RiskInstrument(symbol=symbol, kind=common_pb2.EQUITY)


def test_fills_build_positions_average_price_and_realized_pnl() -> None:
    book = AccountBook("A1")
    assert book.apply_fill(fill("f1", "XYZ", BUY, 100, 10.0, fee=1.0))
    assert book.apply_fill(fill("f2", "XYZ", BUY, 100, 12.0))
    h = book.holdings["XYZ"]
    assert h.quantity == 200 and h.average_price == pytest.approx(11.0)
    assert book.apply_fill(fill("f3", "XYZ", SELL, 150, 13.0, fee=0.5))
    assert h.quantity == 50 and h.average_price == pytest.approx(11.0)
    assert h.realized_pnl == pytest.approx(2.0 * 150 - 1.5)
    # The same fill again is the same fill.
    assert not book.apply_fill(fill("f3", "XYZ", SELL, 150, 13.0, fee=0.5))
    assert h.quantity == 50
    # Cash: -1000 - 1 - 1200 + 1950 - 0.5
    assert book.cash == pytest.approx(-251.5)


def test_a_short_flipped_to_long_realizes_the_short_and_opens_at_the_fill() -> None:
    book = AccountBook("A1")
    book.apply_fill(fill("f1", "XYZ", SELL, 100, 10.0))
    book.apply_fill(fill("f2", "XYZ", BUY, 150, 8.0))
    h = book.holdings["XYZ"]
    assert h.quantity == 50
    assert h.realized_pnl == pytest.approx(200.0)
    assert h.average_price == 8.0


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"fill_id": ""}, "fill_id"),
        ({"side": common_pb2.SIDE_UNSPECIFIED}, "side"),
        ({"quantity": 0}, "quantity"),
        ({"price": math.nan}, "price"),
        ({"fee": math.inf}, "fee"),
    ],
)
def test_a_bad_fill_names_its_field(bad: dict[str, object], field: str) -> None:
    f = fill("f1", "XYZ", BUY, 10, 5.0)
    for k, v in bad.items():
        setattr(f, k, v)
    with pytest.raises(ValueError, match=f"^{field}"):
        AccountBook("A1").apply_fill(f)


def test_an_option_fill_without_its_fields_names_the_field() -> None:
    f = fill("f1", "XYZ260101C00100000", BUY, 1, 5.0, option=("XYZ", common_pb2.CALL, 100, EXPIRY))
    f.instrument.ClearField("expiry_time_ns")
    with pytest.raises(ValueError, match=r"instrument\.expiry_time_ns"):
        AccountBook("A1").apply_fill(f)


def test_option_greeks_are_the_pricing_kernels_with_expiry_from_the_event_time() -> None:
    cfg = AccountConfig(volatility=0.3, rate=0.02)
    book = AccountBook("A1", cfg)  # equity options from fills are American by default
    book.apply_fill(fill("f1", "XYZP", BUY, 3, 4.0, option=("XYZ", common_pb2.PUT, 95.0, EXPIRY)))
    assert book.on_quote("XYZ", 100.0)
    t = T0 + DAY_NS // 2
    snap = book.evaluate(t).snapshot
    ref = american(100.0, 95.0, (EXPIRY - t) / YEAR_NS, 0.02, 0.0, 0.3, "put", greeks=True)
    (u,) = snap.underlyings
    assert u.underlying == "XYZ" and u.spot == 100.0
    assert u.greeks.delta == pytest.approx(300 * float(ref["delta"]), rel=1e-12)
    assert u.greeks.gamma == pytest.approx(300 * float(ref["gamma"]), rel=1e-12)
    assert snap.total.vega == pytest.approx(300 * float(ref["vega"]), rel=1e-12)

    eu = AccountBook("A1", AccountConfig(volatility=0.3, rate=0.02, option_style="european"))
    eu.apply_fill(fill("f1", "XYZP", BUY, 3, 4.0, option=("XYZ", common_pb2.PUT, 95.0, EXPIRY)))
    eu.on_quote("XYZ", 100.0)
    ref_eu = european(100.0, 95.0, (EXPIRY - t) / YEAR_NS, 0.02, 0.0, 0.3, "put")
    assert eu.evaluate(t).snapshot.total.delta == pytest.approx(
        300 * float(ref_eu["delta"]), rel=1e-12
    )


def test_an_expired_option_is_worth_its_intrinsic_value() -> None:
    book = AccountBook("A1")
    book.apply_fill(fill("f1", "C", BUY, 1, 1.0, option=("XYZ", common_pb2.CALL, 90.0, T0 + 10)))
    book.on_quote("XYZ", 100.0)
    snap = book.evaluate(T0 + DAY_NS).snapshot
    assert snap.total.delta == pytest.approx(100.0)
    assert snap.total.gamma == 0.0
    assert snap.unrealized_pnl == pytest.approx((10.0 - 1.0) * 100)


def test_a_quote_reprices_only_the_underlying_that_moved() -> None:
    book = AccountBook("A1")
    book.apply_fill(fill("f1", "A", BUY, 1, 1.0, option=("AAA", common_pb2.CALL, 100.0, EXPIRY)))
    book.apply_fill(fill("f2", "B", BUY, 1, 1.0, option=("BBB", common_pb2.CALL, 50.0, EXPIRY)))
    book.on_quote("AAA", 100.0)
    book.on_quote("BBB", 50.0)
    book.evaluate(T0)
    cached_b = book.legs["BBB"].greeks
    cached_a = book.legs["AAA"].greeks
    assert book.on_quote("AAA", 101.0)
    assert not book.on_quote("AAA", 101.0)  # the same mid changes nothing
    assert not book.on_quote("CCC", 10.0)  # not held
    book.evaluate(T0 + 1000)
    assert book.legs["BBB"].greeks is cached_b
    assert book.legs["AAA"].greeks is not cached_a


def test_an_underlying_without_a_spot_adds_nothing_until_its_first_quote() -> None:
    book = AccountBook("A1")
    book.apply_fill(fill("f1", "A", BUY, 1, 1.0, option=("AAA", common_pb2.CALL, 100.0, EXPIRY)))
    snap = book.evaluate(T0).snapshot
    assert snap.total.delta == 0.0 and snap.underlyings[0].spot == 0.0
    assert book.var == 0.0


def test_fast_var_of_shares_is_the_lognormal_quantile() -> None:
    """100 shares at 100, vol 20 %: the 99 % 1-day loss of S (1 - exp(-s^2 h/2 + s sqrt(h) z))
    at z = the 1 % normal quantile (within the sampling error of 20k paths)."""
    book = AccountBook("A1", AccountConfig(paths=20_000, volatility=0.2))
    book.apply_fill(fill("f1", "XYZ", BUY, 100, 100.0))
    book.evaluate(T0)
    h = 1 / 252
    exact = 100 * 100 * -math.expm1(-0.02 * h + 0.2 * math.sqrt(h) * norm.ppf(0.01))
    assert book.var == pytest.approx(exact, rel=0.03)
    assert book.es > book.var


def test_fast_var_is_delta_gamma_theta_on_correlated_scenarios() -> None:
    """Two underlyings with correlation -0.5 (SetPositions): the VaR equals the order
    statistic of the delta-gamma-theta P&L computed here scenario by scenario."""
    paths = 2_000
    book = AccountBook("A2", AccountConfig(paths=paths))
    req = pb.SetPositionsRequest(account="A2")
    req.positions.add(
        instrument=pb.RiskInstrument(
            symbol="A_C", kind=common_pb2.OPTION, option_type=common_pb2.CALL, strike=100,
            expiry_years=0.25, underlying="AAA",
        ),
        quantity=-10,
    )  # fmt: skip
    req.positions.add(instrument=equity("BBB"), quantity=500)
    req.market.rate = 0.01
    req.market.underlyings.add(symbol="AAA", spot=100, volatility=0.3)
    req.market.underlyings.add(symbol="BBB", spot=40, volatility=0.5)
    req.market.correlation.extend([1, -0.5, -0.5, 1])
    book.set_positions(req, T0)
    snap = book.evaluate(T0).snapshot
    g = european(100.0, 100.0, 0.25, 0.01, 0.0, 0.3, "call")
    a_delta, a_gamma, a_theta = (-1000 * float(g[k]) for k in ("delta", "gamma", "theta"))
    by = {u.underlying: u for u in snap.underlyings}
    assert by["AAA"].greeks.delta == pytest.approx(a_delta, rel=1e-12)
    assert by["BBB"].greeks.delta == 500
    z = normals(book._seed, paths, 2)
    c = np.array([[1, -0.5], [-0.5, 1]])
    zc = z @ np.linalg.cholesky(c).T
    h = 1 / 252
    losses = []
    for i in range(paths):
        da = 100 * math.expm1(-0.045 * h + 0.3 * math.sqrt(h) * zc[i, 0])
        db = 40 * math.expm1(-0.125 * h + 0.5 * math.sqrt(h) * zc[i, 1])
        pnl = a_delta * da + 0.5 * a_gamma * da**2 + 500 * db + a_theta * h
        losses.append(-pnl)
    losses.sort()
    k = math.ceil(0.99 * paths) - 1
    assert book.var == pytest.approx(losses[k], rel=1e-9)
    assert book.es == pytest.approx(float(np.mean(losses[k:])), rel=1e-9)


def test_day_pnl_runs_from_the_first_mark_of_the_utc_day() -> None:
    book = AccountBook("A1")
    book.apply_fill(fill("f1", "XYZ", BUY, 100, 10.0))
    day0 = (T0 // DAY_NS) * DAY_NS
    book.evaluate(day0 + 1)
    assert book.day_pnl == 0.0
    book.on_quote("XYZ", 11.0)
    book.evaluate(day0 + 2)
    assert book.day_pnl == pytest.approx(100.0)
    book.on_quote("XYZ", 10.5)
    book.evaluate(day0 + DAY_NS + 1)  # a new day: its first mark is the reference
    assert book.day_pnl == 0.0
    book.on_quote("XYZ", 10.0)
    book.evaluate(day0 + DAY_NS + 2)
    assert book.day_pnl == pytest.approx(-50.0)


def limits(**kw: object) -> pb.Limits:
    return pb.Limits(**kw)  # type: ignore[arg-type]


def test_a_delta_breach_alerts_and_moves_the_mode_within_the_same_update() -> None:
    book = AccountBook("A1")
    book.set_limits(limits(max_delta_per_underlying=150))
    book.apply_fill(fill("f1", "XYZ", BUY, 100, 10.0))
    first = book.evaluate(T0)
    assert not first.alerts and first.state is None and book.mode == lim.ENABLED
    book.apply_fill(fill("f2", "XYZ", BUY, 100, 10.0))
    up = book.evaluate(T0 + 1)
    (alert,) = up.alerts
    assert (alert.code, alert.symbol, alert.value, alert.limit) == ("limit.delta", "XYZ", 200, 150)
    assert alert.severity == events.CRITICAL
    assert up.state is not None and up.state.mode == lim.REDUCE_ONLY
    assert up.state.reason == "breach: limit.delta" and up.state.sequence == 1
    # Still breached: no second alert, no second state change.
    book.on_quote("XYZ", 10.1)
    again = book.evaluate(T0 + 2)
    assert not again.alerts and again.state is None
    # Cleared: the mode stays REDUCE_ONLY until an operator changes it.
    book.apply_fill(fill("f3", "XYZ", SELL, 150, 10.0))
    cleared = book.evaluate(T0 + 3)
    assert not cleared.breaches and book.mode == lim.REDUCE_ONLY
    st = book.set_mode(lim.ENABLED, "reduced", "op1", T0 + 4)
    assert (st.mode, st.changed_by, st.sequence) == (lim.ENABLED, "op1", 2)


def test_an_operator_enable_while_the_breach_persists_is_escalated_again() -> None:
    book = AccountBook("A1")
    book.set_limits(limits(max_delta=50, breach_mode=lim.HALTED))
    book.apply_fill(fill("f1", "XYZ", BUY, 100, 10.0))
    first = book.evaluate(T0).state
    assert first is not None and first.mode == lim.HALTED
    book.set_mode(lim.ENABLED, "try", "op1", T0 + 1)
    book.on_quote("XYZ", 10.2)
    up = book.evaluate(T0 + 2)
    assert up.state is not None and up.state.mode == lim.HALTED


def test_a_day_loss_breach_always_halts() -> None:
    book = AccountBook("A1")
    book.set_limits(limits(max_day_loss=50, max_var=1e9))  # breach_mode defaults REDUCE_ONLY
    book.apply_fill(fill("f1", "XYZ", BUY, 100, 10.0))
    book.evaluate(T0)
    book.on_quote("XYZ", 9.0)
    up = book.evaluate(T0 + 1)
    assert [a.code for a in up.alerts] == ["limit.day_loss"]
    assert up.state is not None and up.state.mode == lim.HALTED


def test_limits_adjusted_at_run_time_take_effect_at_the_next_update() -> None:
    book = AccountBook("A1")
    book.apply_fill(fill("f1", "XYZ", BUY, 100, 100.0))
    book.evaluate(T0)
    var = book.var
    assert book.set_limits(limits(max_var=var * 2)).version == 1
    book.on_quote("XYZ", 100.5)
    assert not book.evaluate(T0 + 1).breaches
    assert book.set_limits(limits(max_var=var / 2)).version == 2
    book.on_quote("XYZ", 100.0)
    up = book.evaluate(T0 + 2)
    assert [b.code for b in up.breaches] == ["limit.var"]
    assert up.state is not None and up.state.mode == lim.REDUCE_ONLY


def test_concentration_is_the_largest_share_of_gross_delta_notional() -> None:
    book = AccountBook("A1")
    book.set_limits(limits(max_concentration=0.7))
    book.apply_fill(fill("f1", "AAA", BUY, 100, 10.0))  # 1,000
    book.apply_fill(fill("f2", "BBB", SELL, 100, 30.0))  # 3,000 short
    up = book.evaluate(T0)
    (b,) = up.breaches
    assert (b.code, b.symbol, b.value) == ("limit.concentration", "BBB", pytest.approx(0.75))


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"max_var": -1.0}, "limits.max_var"),
        ({"max_delta": math.nan}, "limits.max_delta"),
        ({"max_vega_per_underlying": math.inf}, "limits.max_vega_per_underlying"),
        ({"max_concentration": 1.5}, "limits.max_concentration"),
        ({"breach_mode": lim.ENABLED}, "limits.breach_mode"),
    ],
)
def test_bad_limits_name_the_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        AccountBook("A1").set_limits(limits(**kw))


def test_a_bad_mode_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"^mode:"):
        AccountBook("A1").set_mode(0, "", "op", T0)


def test_a_bad_account_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"^account"):
        AccountBook("A.1")


def test_set_positions_replaces_the_book_and_marks_at_the_market_until_a_quote() -> None:
    book = AccountBook("A1")
    book.apply_fill(fill("f1", "OLD", BUY, 100, 10.0))
    req = pb.SetPositionsRequest(account="A1")
    req.positions.add(instrument=equity("XYZ"), quantity=-20)
    req.market.underlyings.add(symbol="XYZ", spot=50, volatility=0.4)
    book.set_positions(req, T0)
    assert list(book.holdings) == ["XYZ"]
    snap = book.evaluate(T0).snapshot
    assert snap.total.delta == -20 and snap.underlyings[0].spot == 50
    assert snap.unrealized_pnl == 0.0  # the cost is the first mark
    book.on_quote("XYZ", 49.0)
    snap = book.evaluate(T0 + 1).snapshot
    assert snap.unrealized_pnl == pytest.approx(20.0)
    (p,) = book.account_risk(T0 + 1).positions
    assert (p.instrument.symbol, p.quantity, p.multiplier) == ("XYZ", -20, 1)


def test_set_positions_names_the_bad_field() -> None:
    req = pb.SetPositionsRequest(account="A1")
    req.positions.add(instrument=equity("XYZ"), quantity=1)
    req.positions.add(
        instrument=pb.RiskInstrument(
            symbol="XYZ_C", kind=common_pb2.OPTION, option_type=common_pb2.CALL, strike=-1,
            expiry_years=0.5, underlying="XYZ",
        ),
        quantity=1,
    )  # fmt: skip
    req.market.underlyings.add(symbol="XYZ", spot=50, volatility=0.4)
    with pytest.raises(ValueError, match=r"^positions\[1\]\.instrument\.strike"):
        AccountBook("A1").set_positions(req, T0)
    req.positions[1].instrument.strike = 50
    req.positions[1].instrument.underlying = "NOPE"
    with pytest.raises(ValueError, match=r"^positions\[1\]\.instrument\.underlying"):
        AccountBook("A1").set_positions(req, T0)
