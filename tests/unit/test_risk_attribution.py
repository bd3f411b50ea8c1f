"""P&L attribution: exact total, Taylor terms from the before-Greeks, the residual's order."""

from __future__ import annotations

import dataclasses
import math

import pytest
from tradecore.risk import (
    Instrument,
    Market,
    Position,
    Underlying,
    attribute_pnl,
    book_arrays,
    portfolio_greeks,
    stress_test,
)
from tradecore.risk.attribution import TERMS, Attribution
from tradecore.risk.stress import StressScenario

MARKET = Market(
    rate=0.03,
    underlyings=(Underlying("AAPL", 190.0, 0.25, 0.005), Underlying("MSFT", 410.0, 0.22)),
    correlation=[[1.0, 0.6], [0.6, 1.0]],
)


def _opt(sym: str, otype: str, strike: float, expiry: float, style: str = "european") -> Instrument:
    return Instrument(sym, "option", otype, style, strike, expiry)  # type: ignore[arg-type]


POSITIONS = [
    Position(Instrument("AAPL"), 100),
    Position(_opt("AAPL", "call", 200.0, 0.5), -30),
    Position(_opt("AAPL", "put", 180.0, 0.1), 12),
    Position(_opt("MSFT", "put", 400.0, 0.75, "american"), -20),
    Position(_opt("MSFT", "call", 420.0, 1.5), 5),
]
BOOK = book_arrays(POSITIONS, MARKET)


def _moved(ds: float, dv: float, dr: float = 0.0, reverse: bool = False) -> Market:
    """Every spot x (1 + ds), every vol + dv, rate + dr."""
    unders = tuple(
        Underlying(u.symbol, u.spot * (1 + ds), u.volatility + dv, u.dividend_yield)
        for u in MARKET.underlyings
    )
    return Market(MARKET.rate + dr, unders[::-1] if reverse else unders, MARKET.correlation)


def _explained(a: Attribution) -> float:
    total = 0.0
    for t in TERMS:
        total += getattr(a, t)
    return total


def test_terms_plus_unexplained_is_total_and_total_is_exact() -> None:
    a = attribute_pnl(BOOK, _moved(0.02, 0.01, 0.001, reverse=True), 3.0)
    assert _explained(a) + a.unexplained == pytest.approx(a.total, rel=1e-15, abs=1e-12)
    # total: the exact repricing of stress_test, the same moves as a scenario.
    sc = StressScenario(
        "m",
        {"AAPL": 0.02, "MSFT": 0.02},
        {"AAPL": 0.01, "MSFT": 0.01},
        rate_shock=0.001,
        horizon_days=3.0,
    )
    assert a.total == pytest.approx(stress_test(BOOK, [sc])[0].pnl, rel=1e-12)
    names = [f.name for f in dataclasses.fields(Attribution) if f.name != "by_underlying"]
    for name in names:
        parts = sum(getattr(b, name) for b in a.by_underlying.values())
        assert getattr(a, name) == pytest.approx(parts, rel=1e-12, abs=1e-9)
    assert set(a.by_underlying) == {"AAPL", "MSFT"}


def test_unexplained_is_third_order() -> None:
    # Halving every move divides the residual by about 2^3 (third-order terms; no time here).
    big = attribute_pnl(BOOK, _moved(0.02, 0.02), 0.0)
    small = attribute_pnl(BOOK, _moved(0.01, 0.01), 0.0)
    assert abs(small.unexplained) < 0.2 * abs(big.unexplained)
    assert abs(small.unexplained) > 0.08 * abs(big.unexplained)
    assert abs(small.unexplained) < 5e-3 * abs(small.total)


def test_each_term_is_its_greek_times_its_move() -> None:
    g = portfolio_greeks(BOOK).by_underlying
    a = attribute_pnl(BOOK, _moved(0.01, 0.02, 0.0005), 2.0)
    aapl = a.by_underlying["AAPL"]
    dS, dv = 1.9, 0.02
    assert aapl.delta == pytest.approx(g["AAPL"].delta * dS, rel=1e-12)
    assert aapl.gamma == pytest.approx(0.5 * g["AAPL"].gamma * dS**2, rel=1e-12)
    assert aapl.vega == pytest.approx(g["AAPL"].vega * dv, rel=1e-12)
    assert aapl.theta == pytest.approx(g["AAPL"].theta * 2.0 / 252.0, rel=1e-12)
    assert aapl.vanna == pytest.approx(g["AAPL"].vanna * dS * dv, rel=1e-12)
    assert aapl.volga == pytest.approx(0.5 * g["AAPL"].volga * dv**2, rel=1e-12)
    assert aapl.rho == pytest.approx(g["AAPL"].rho * 0.0005, rel=1e-9)


def test_a_linear_book_moved_in_spot_is_all_delta() -> None:
    book = book_arrays(
        [Position(Instrument("AAPL"), 100), Position(Instrument("MSFT"), -20)], MARKET
    )
    a = attribute_pnl(book, _moved(0.05, 0.03, 0.01), 1.0)
    assert a.total == pytest.approx(100 * 9.5 - 20 * 20.5, rel=1e-12)
    assert a.delta == pytest.approx(a.total, rel=1e-12)
    assert a.unexplained == pytest.approx(0.0, abs=1e-9)
    for t in ("gamma", "vega", "theta", "vanna", "volga", "rho"):
        assert getattr(a, t) == 0.0


def test_a_pure_time_step_is_theta() -> None:
    a = attribute_pnl(BOOK, MARKET, 1.0)
    assert a.theta == pytest.approx(portfolio_greeks(BOOK).total.theta / 252.0, rel=1e-12)
    assert a.total == pytest.approx(a.theta, rel=2e-2)
    assert a.delta == a.gamma == a.vega == a.rho == 0.0


def test_market_after_must_list_the_same_underlyings() -> None:
    extra = Market(0.03, (*MARKET.underlyings, Underlying("IBM", 150.0, 0.3)))
    with pytest.raises(ValueError, match=r"^market_after\.underlyings\[2\]\.symbol: 'IBM'"):
        attribute_pnl(BOOK, extra, 1.0)
    missing = Market(0.03, (MARKET.underlyings[1],))
    with pytest.raises(ValueError, match=r"^market_after\.underlyings: 'AAPL' is missing"):
        attribute_pnl(BOOK, missing, 1.0)
    renamed = Market(0.03, (Underlying("AAPL", 190.0, 0.25), Underlying("MSFT", -1.0, 0.2)))
    with pytest.raises(ValueError, match=r"^market_after\.underlyings\[1\]\.spot: must be > 0"):
        attribute_pnl(BOOK, renamed, 1.0)
    bad_vol = Market(0.03, (Underlying("AAPL", 190.0, math.nan), MARKET.underlyings[1]))
    with pytest.raises(ValueError, match=r"^market_after\.underlyings\[0\]\.volatility"):
        attribute_pnl(BOOK, bad_vol, 1.0)
    with pytest.raises(ValueError, match=r"^market_after\.rate"):
        attribute_pnl(BOOK, Market(math.inf, MARKET.underlyings), 1.0)


@pytest.mark.parametrize("days", [-1.0, math.nan, math.inf, "1"])
def test_bad_elapsed_days(days: object) -> None:
    with pytest.raises(ValueError, match=r"^elapsed_days: "):
        attribute_pnl(BOOK, MARKET, days)  # type: ignore[arg-type]


def test_not_a_book_or_market() -> None:
    with pytest.raises(ValueError, match=r"^book_before: expected a Book"):
        attribute_pnl(POSITIONS, MARKET, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^market_after: expected a Market"):
        attribute_pnl(BOOK, {"rate": 0.03}, 1.0)  # type: ignore[arg-type]
