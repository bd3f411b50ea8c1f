"""Portfolio Greeks: European positions against QuantLib's AnalyticEuropeanEngine, American
vanna/volga against finite differences of prices, sums, buckets and dollar units."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import QuantLib as ql
from tradecore.pricing import american
from tradecore.risk import Instrument, Market, Position, Underlying, book_arrays, portfolio_greeks
from tradecore.risk.greeks import DollarGreeks

MARKET = Market(
    rate=0.03,
    underlyings=(
        Underlying("AAPL", 190.0, 0.25, 0.005),
        Underlying("MSFT", 410.0, 0.22),
        Underlying("IBM", 150.0, 0.3),  # held by nobody
    ),
)


def _opt(sym: str, otype: str, strike: float, days: int, style: str = "european") -> Instrument:
    return Instrument(sym, "option", otype, style, strike, days / 365.0)  # type: ignore[arg-type]


POSITIONS = [
    Position(Instrument("AAPL"), 100),  # spot
    Position(_opt("AAPL", "call", 200.0, 10), -3),  # 0-30d
    Position(_opt("AAPL", "put", 180.0, 30), 2),  # 30-90d (30 days is the lower bound)
    Position(_opt("MSFT", "put", 400.0, 200, "american"), 4, multiplier=10),  # 90d-1y
    Position(_opt("MSFT", "call", 420.0, 365), -1),  # >1y (365 days)
    Position(_opt("MSFT", "call", 380.0, 89), 5),  # 30-90d
]
BOOK = book_arrays(POSITIONS, MARKET)


def _quantlib(p: Position, spot: float, vol: float, div: float, rate: float) -> dict[str, float]:
    """Per-unit price and Greeks of a European option from QuantLib's analytic engine."""
    ins = p.instrument
    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    days = round(ins.expiry_years * 365.0)
    dc = ql.Actual365Fixed()
    kind = ql.Option.Call if ins.option_type == "call" else ql.Option.Put
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(kind, ins.strike), ql.EuropeanExercise(today + days)
    )
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, div, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, rate, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, dc)),
    )
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return {
        "value": option.NPV(),
        "delta": option.delta(),
        "gamma": option.gamma(),
        "vega": option.vega(),
        "theta": option.theta(),
        "rho": option.rho(),
    }


def test_european_positions_match_quantlib() -> None:
    g = portfolio_greeks(BOOK)
    under = {u.symbol: u for u in MARKET.underlyings}
    checked = 0
    for p, got in zip(POSITIONS, g.positions, strict=True):
        if p.instrument.kind != "option" or p.instrument.style != "european":
            continue
        u = under[p.instrument.symbol]
        units = p.quantity * 100.0
        ref = _quantlib(p, u.spot, u.volatility, u.dividend_yield, MARKET.rate)
        for name in ("value", "delta", "gamma", "vega", "theta", "rho"):
            assert getattr(got, name) == pytest.approx(units * ref[name], rel=1e-8), name
        assert got.dollar_delta == pytest.approx(units * ref["delta"] * u.spot, rel=1e-8)
        assert got.dollar_gamma == pytest.approx(units * ref["gamma"] * u.spot**2 / 100, rel=1e-8)
        checked += 1
    assert checked == 4


def test_european_vanna_volga_match_quantlib_black_calculator() -> None:
    # QuantLib's BlackCalculator gives vanna and volga (d/dsigma of delta and vega), per unit.
    g = portfolio_greeks(BOOK)
    p, got = POSITIONS[4], g.positions[4]
    T = p.instrument.expiry_years
    S, v, r = 410.0, 0.22, 0.03
    calc = ql.BlackCalculator(
        ql.PlainVanillaPayoff(ql.Option.Call, 420.0),
        S * math.exp(r * T),
        v * math.sqrt(T),
        math.exp(-r * T),
    )
    assert got.vanna == pytest.approx(-100.0 * calc.vanna(S, T), rel=1e-8)
    assert got.volga == pytest.approx(-100.0 * calc.volga(T), rel=1e-8)


def test_american_greeks_and_their_differenced_vanna_volga() -> None:
    g = portfolio_greeks(BOOK).positions[3]
    args = (410.0, 400.0, 200 / 365.0, 0.03, 0.0)
    one = american(*args, 0.22, "put")
    assert g.value == pytest.approx(40.0 * float(one["price"]), rel=1e-12)
    assert g.delta == pytest.approx(40.0 * float(one["delta"]), rel=1e-12)
    assert g.theta == pytest.approx(40.0 * float(one["theta"]), rel=1e-12)
    # Independent check: second differences of the price (not of the engine's Greeks).
    h, dS = 1e-3, 0.5

    def price(S: float, v: float) -> float:
        return float(american(S, *args[1:], v, "put", greeks=False)["price"])

    volga = (price(410.0, 0.22 + h) - 2 * price(410.0, 0.22) + price(410.0, 0.22 - h)) / h**2
    vanna = (
        price(410 + dS, 0.22 + h)
        - price(410 + dS, 0.22 - h)
        - price(410 - dS, 0.22 + h)
        + price(410 - dS, 0.22 - h)
    ) / (4 * dS * h)
    assert g.volga == pytest.approx(40.0 * volga, rel=1e-3)
    assert g.vanna == pytest.approx(40.0 * vanna, rel=1e-3)


def test_sums_and_buckets() -> None:
    g = portfolio_greeks(BOOK)
    names = [f.name for f in dataclasses.fields(DollarGreeks)]
    for name in names:
        total = sum(getattr(p, name) for p in g.positions)
        assert getattr(g.total, name) == pytest.approx(total, rel=1e-12, abs=1e-9)
        for groups in (g.by_underlying, g.by_expiry):
            assert sum(getattr(b, name) for b in groups.values()) == pytest.approx(
                total, rel=1e-12, abs=1e-9
            )
    assert list(g.by_underlying) == ["AAPL", "MSFT"]  # IBM is not held
    assert list(g.by_expiry) == ["spot", "0-30d", "30-90d", "90d-1y", ">1y"]
    pos = g.positions
    assert g.by_expiry["spot"] == pos[0]
    assert g.by_expiry["0-30d"] == pos[1]
    assert g.by_expiry["30-90d"].delta == pytest.approx(pos[2].delta + pos[5].delta, rel=1e-12)
    assert g.by_expiry["90d-1y"] == pos[3]
    assert g.by_expiry[">1y"] == pos[4]
    aapl = g.by_underlying["AAPL"]
    assert aapl.delta == pytest.approx(pos[0].delta + pos[1].delta + pos[2].delta, rel=1e-12)
    assert aapl.dollar_delta == pytest.approx(aapl.delta * 190.0, rel=1e-12)


def test_equity_is_all_delta() -> None:
    g = portfolio_greeks(book_arrays([Position(Instrument("MSFT"), -7)], MARKET))
    assert g.total == DollarGreeks(delta=-7.0, dollar_delta=-7 * 410.0, value=-7 * 410.0)


def test_total_delta_adds_shares_but_dollar_delta_adds_currency() -> None:
    book = book_arrays([Position(Instrument("AAPL"), 10), Position(Instrument("MSFT"), 10)], MARKET)
    t = portfolio_greeks(book).total
    assert t.delta == 20.0
    assert t.dollar_delta == 10 * 190.0 + 10 * 410.0


def test_not_a_book() -> None:
    with pytest.raises(ValueError, match=r"^book: expected a Book"):
        portfolio_greeks(POSITIONS)  # type: ignore[arg-type]


def test_many_positions_vectorised() -> None:
    positions = [
        Position(_opt("AAPL", "call", 150.0 + i % 80, 5 + i % 700), 1) for i in range(20_000)
    ]
    g = portfolio_greeks(book_arrays(positions, MARKET))
    assert len(g.positions) == 20_000
    assert np.isfinite(g.total.vanna) and set(g.by_expiry) == {"0-30d", "30-90d", "90d-1y", ">1y"}
