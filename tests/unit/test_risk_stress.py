"""Stress tests: hypothetical, historical, spot x vol grid and reverse stress, against exact
repricing computed here per position (QuantLib's Black calculator for European options, scalar
tradecore.pricing.american calls for American ones)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import QuantLib as ql
from scipy import stats
from tradecore.pricing import american
from tradecore.risk import (
    Instrument,
    Market,
    Position,
    StressScenario,
    Underlying,
    book_arrays,
    historical_stress,
    portfolio_greeks,
    reverse_stress,
    spot_vol_grid,
    stress_test,
)
from tradecore.risk.stress import MAX_CELLS

MARKET = Market(
    rate=0.03,
    underlyings=(Underlying("AAPL", 190.0, 0.25, 0.005), Underlying("MSFT", 410.0, 0.22)),
    correlation=[[1.0, 0.6], [0.6, 1.0]],
)


def _opt(sym: str, otype: str, strike: float, expiry: float, style: str = "european") -> Instrument:
    return Instrument(sym, "option", otype, style, strike, expiry)  # type: ignore[arg-type]


POSITIONS = [
    Position(Instrument("AAPL"), 100),
    Position(_opt("AAPL", "call", 200.0, 0.5), -3),
    Position(_opt("AAPL", "put", 180.0, 0.02), 2),
    Position(_opt("MSFT", "put", 400.0, 0.75, "american"), 4, multiplier=10),
    Position(_opt("MSFT", "call", 420.0, 1.5), -1),
    Position(Instrument("MSFT"), -20),
]
BOOK = book_arrays(POSITIONS, MARKET)


def _ql_european(otype: str, S: float, K: float, T: float, r: float, q: float, v: float) -> float:
    if T <= 0.0:
        return max((S - K) if otype == "call" else (K - S), 0.0)
    kind = ql.Option.Call if otype == "call" else ql.Option.Put
    fwd = S * math.exp((r - q) * T)
    payoff = ql.PlainVanillaPayoff(kind, K)
    calc = ql.BlackCalculator(payoff, fwd, v * math.sqrt(T), math.exp(-r * T))
    return float(calc.value())


def _reference_values(
    spot: dict[str, float], vol: dict[str, float], rate: float, horizon: float
) -> np.ndarray:
    """Each position's value, priced one by one outside the library's repricing."""
    div = {u.symbol: u.dividend_yield for u in MARKET.underlyings}
    out = []
    for p in POSITIONS:
        ins = p.instrument
        S = spot[ins.symbol]
        if ins.kind == "equity":
            out.append(p.quantity * S)
            continue
        mult = 100.0 if p.multiplier is None else p.multiplier
        T = ins.expiry_years - horizon
        assert ins.option_type is not None
        if ins.style == "european":
            price = _ql_european(
                ins.option_type, S, ins.strike, T, rate, div[ins.symbol], vol[ins.symbol]
            )
        elif T <= 0.0:
            price = max(S - ins.strike if ins.option_type == "call" else ins.strike - S, 0.0)
        else:
            price = float(
                american(S, ins.strike, T, rate, div[ins.symbol], vol[ins.symbol], ins.option_type)[
                    "price"
                ]
            )
        out.append(p.quantity * mult * price)
    return np.array(out)


BASE_SPOT = {u.symbol: u.spot for u in MARKET.underlyings}
BASE_VOL = {u.symbol: u.volatility for u in MARKET.underlyings}


def _reference_pnl(sc: StressScenario) -> np.ndarray:
    spot = {s: x * (1.0 + sc.spot_shocks.get(s, 0.0)) for s, x in BASE_SPOT.items()}
    vol = {s: x + sc.vol_shocks.get(s, 0.0) for s, x in BASE_VOL.items()}
    after = _reference_values(spot, vol, MARKET.rate + sc.rate_shock, sc.horizon_days / 252.0)
    before = _reference_values(BASE_SPOT, BASE_VOL, MARKET.rate, 0.0)
    return np.asarray(after - before, dtype=np.float64)


SCENARIOS = [
    StressScenario("crash", {"AAPL": -0.2, "MSFT": -0.15}, {"AAPL": 0.15, "MSFT": 0.1}),
    StressScenario("rally", {"AAPL": 0.1}, {"MSFT": -0.05}, rate_shock=-0.005),
    StressScenario("rates", rate_shock=0.01),
    StressScenario("week", {"MSFT": 0.03}, horizon_days=5.0),
    StressScenario("past the short put's expiry", {"AAPL": -0.05}, horizon_days=10.0),
]


def test_stress_pnl_is_exact_repricing() -> None:
    results = stress_test(BOOK, SCENARIOS)
    assert [r.name for r in results] == [s.name for s in SCENARIOS]
    for sc, res in zip(SCENARIOS, results, strict=True):
        ref = _reference_pnl(sc)
        np.testing.assert_allclose(res.position_pnl, ref, rtol=1e-9, atol=1e-9)
        assert res.pnl == pytest.approx(ref.sum(), rel=1e-9)


def test_zero_shock_is_zero_pnl() -> None:
    (res,) = stress_test(BOOK, [StressScenario("nothing", {"AAPL": 0.0}, {"MSFT": 0.0})])
    assert res.pnl == 0.0 and not res.position_pnl.any()


def test_rate_shock_moves_a_rho_book_by_rho_dr() -> None:
    # Long deep in-the-money European calls: the value is almost all K e^{-rT} sensitivity.
    book = book_arrays([Position(_opt("MSFT", "call", 200.0, 3.0), 10)], MARKET)
    rho = portfolio_greeks(book).total.rho
    for dr in (0.0001, -0.0001):
        (res,) = stress_test(book, [StressScenario("r", rate_shock=dr)])
        assert res.pnl == pytest.approx(rho * dr, rel=2e-3)


def test_grid_equals_the_matching_scenarios() -> None:
    ds, dv = [-0.3, -0.05, 0.0, 0.1], [-0.1, 0.0, 0.2]
    grid = spot_vol_grid(BOOK, ds, dv, horizon_days=2.0)
    assert grid.shape == (4, 3)
    scenarios = [
        StressScenario(
            f"{i},{j}",
            {s: x for s in BOOK.symbols},
            {s: y for s in BOOK.symbols},
            horizon_days=2.0,
        )
        for i, x in enumerate(ds)
        for j, y in enumerate(dv)
    ]
    pnl = np.array([r.pnl for r in stress_test(BOOK, scenarios)]).reshape(4, 3)
    np.testing.assert_allclose(grid, pnl, rtol=1e-12, atol=1e-9)
    assert grid[2, 1] != 0.0  # two days of decay


def test_historical_stress_picks_the_worst_days() -> None:
    # A long AAPL / short MSFT equity book: a day's P&L is 100 * 190 (e^a - 1) - 20 * 410 (e^m - 1).
    book = book_arrays(
        [Position(Instrument("AAPL"), 100), Position(Instrument("MSFT"), -20)], MARKET
    )
    returns = np.array([[0.01, 0.0], [-0.03, 0.01], [0.0, 0.05], [0.02, -0.01]])
    # By hand: day 0 +190.95, day 1 -643.95, day 2 -420.42, day 3 +465.42.
    by_hand = 19000.0 * np.expm1(returns[:, 0]) - 8200.0 * np.expm1(returns[:, 1])
    assert by_hand == pytest.approx([190.95, -643.95, -420.42, 465.42], abs=0.01)
    res = historical_stress(book, returns, worst=2, labels=["d0", "d1", "d2", "d3"])
    assert [r.name for r in res] == ["historical:d1", "historical:d2"]
    assert [r.pnl for r in res] == pytest.approx([by_hand[1], by_hand[2]], rel=1e-12)
    assert res[0].position_pnl == pytest.approx(
        [19000.0 * math.expm1(-0.03), -8200.0 * math.expm1(0.01)]
    )
    every = historical_stress(book, returns, worst=10)
    assert [r.name for r in every] == [
        "historical:1",
        "historical:2",
        "historical:0",
        "historical:3",
    ]


def test_historical_stress_of_an_option_book_ages_it() -> None:
    returns = np.array([[0.0, 0.0], [-0.02, 0.01]])
    res = historical_stress(BOOK, returns, worst=2, horizon_days=1.0)
    by_name = {r.name: r.pnl for r in res}
    for day, (a, m) in enumerate(returns):
        sc = StressScenario("x", {"AAPL": math.expm1(a), "MSFT": math.expm1(m)}, horizon_days=1.0)
        assert by_name[f"historical:{day}"] == pytest.approx(_reference_pnl(sc).sum(), rel=1e-9)


# --- reverse stress ----------------------------------------------------------------------------


def test_reverse_stress_of_a_linear_book_is_closed_form() -> None:
    market = Market(0.02, (Underlying("X", 50.0, 0.3),))
    book = book_arrays([Position(Instrument("X"), 200)], market)  # V = 10,000
    loss, days = 1500.0, 10.0
    res = reverse_stress(book, loss, horizon_days=days)
    x = math.log(1.0 - loss / 10_000.0)
    distance = abs(x) / (0.3 * math.sqrt(days / 252.0))
    assert res.log_returns["X"] == pytest.approx(x, rel=1e-9)
    assert res.spot_shocks["X"] == pytest.approx(-loss / 10_000.0, rel=1e-9)
    assert res.mahalanobis_distance == pytest.approx(distance, rel=1e-9)
    assert res.pnl == pytest.approx(-loss, rel=1e-10)
    assert res.probability == pytest.approx(stats.chi2.sf(distance**2, 1), rel=1e-9)


def test_reverse_stress_with_a_supplied_covariance() -> None:
    market = Market(0.02, (Underlying("X", 50.0, 0.3), Underlying("Y", 20.0, 0.5)))
    book = book_arrays([Position(Instrument("X"), 200)], market)
    cov = [[0.04, 0.0], [0.0, 0.09]]
    res = reverse_stress(book, 1500.0, horizon_days=10.0, covariance=cov)
    x = math.log(0.85)
    assert res.mahalanobis_distance == pytest.approx(abs(x) / (0.2 * math.sqrt(10 / 252)), rel=1e-9)
    assert res.log_returns["Y"] == pytest.approx(0.0, abs=1e-12)  # uncorrelated: Y stays


def _linear_guess(book_positions: list[Position], loss: float, days: float) -> float:
    """The distance of the delta (linear) solution x = -L Sigma d / (d' Sigma d)."""
    book = book_arrays(book_positions, MARKET)
    g = portfolio_greeks(book)
    d = np.array([g.by_underlying[s].dollar_delta for s in book.symbols])
    vol = book.volatility * math.sqrt(days / 252.0)
    cov = book.correlation * np.outer(vol, vol)
    return loss / math.sqrt(float(d @ cov @ d))


def test_reverse_stress_of_an_option_book_hits_the_loss_exactly() -> None:
    # Short puts and a short call: short gamma, so the exact loss grows faster than the
    # linear one and the most likely shock is nearer than the linear guess.
    positions = [
        Position(_opt("AAPL", "put", 185.0, 0.25), -20),
        Position(_opt("MSFT", "put", 400.0, 0.5, "american"), -10),
        Position(_opt("MSFT", "call", 430.0, 0.5), -5),
        Position(Instrument("MSFT"), 300),
    ]
    book = book_arrays(positions, MARKET)
    loss = 40_000.0
    res = reverse_stress(book, loss, horizon_days=10.0)
    sc = StressScenario("rev", res.spot_shocks, horizon_days=10.0)
    (exact,) = stress_test(book, [sc])
    assert -exact.pnl == pytest.approx(loss, rel=1e-6)
    assert res.pnl == pytest.approx(-loss, rel=1e-9)
    assert res.mahalanobis_distance < _linear_guess(positions, loss, 10.0)
    assert res.probability == pytest.approx(stats.chi2.sf(res.mahalanobis_distance**2, 2), rel=1e-9)
    # No point of the same loss on nearby rays is closer (a local minimum of the distance).
    x = np.array([res.log_returns[s] for s in book.symbols])
    chol = np.linalg.cholesky(book.correlation) * (book.volatility * math.sqrt(10 / 252))[:, None]
    z = np.linalg.solve(chol, x)
    assert np.linalg.norm(z) == pytest.approx(res.mahalanobis_distance, rel=1e-9)
    for angle in (-0.05, 0.05):
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        direction = rot @ z / np.linalg.norm(z)

        def loss_at(t: float, direction: np.ndarray = direction) -> float:
            shocks = dict(zip(book.symbols, np.expm1(chol @ (t * direction)), strict=True))
            return -stress_test(book, [StressScenario("r", shocks, horizon_days=10.0)])[0].pnl

        lo, hi = 0.0, res.mahalanobis_distance
        while loss_at(hi) < loss:
            lo, hi = hi, hi * 1.5
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if loss_at(mid) < loss else (lo, mid)
        assert hi >= res.mahalanobis_distance * (1 - 1e-9)


def test_reverse_stress_of_a_delta_neutral_book() -> None:
    # A short straddle hedged to zero delta has no linear direction; the search starts on the axes.
    market = Market(0.0, (Underlying("X", 100.0, 0.2),))
    positions = [
        Position(_opt("X", "call", 100.0, 0.5), -10),
        Position(_opt("X", "put", 100.0, 0.5), -10),
    ]
    book = book_arrays(positions, market)
    delta = portfolio_greeks(book).total.delta
    book = book_arrays([*positions, Position(Instrument("X"), -delta)], market)
    res = reverse_stress(book, 3000.0, horizon_days=5.0)
    (exact,) = stress_test(book, [StressScenario("r", res.spot_shocks, horizon_days=5.0)])
    assert -exact.pnl == pytest.approx(3000.0, rel=1e-6)


def test_reverse_stress_finds_a_narrow_dip() -> None:
    # A short butterfly 99.5/100/100.5 expiring 0.1 day after the horizon, spot 120: worth ~0
    # now and ~0 tomorrow except in a dip around spot 100 half a point wide. The largest loss
    # sits in that dip far from the spot (found here by a fine scan); 95 % of it is reachable
    # only inside the dip, and a little more than all of it is not reachable at all.
    market = Market(0.0, (Underlying("X", 120.0, 0.2),))
    expiry = 1.1 / 252
    fly = [
        Position(_opt("X", "call", 99.5, expiry), -1),
        Position(_opt("X", "call", 100.0, expiry), 2),
        Position(_opt("X", "call", 100.5, expiry), -1),
    ]
    book = book_arrays(fly, market)
    S = np.linspace(98.0, 102.0, 40_001)
    values = [
        sum(
            p.quantity * 100.0 * _ql_european("call", x, p.instrument.strike, 0.1 / 252, 0, 0, 0.2)
            for p in fly
        )
        for x in S.tolist()
    ]
    now = sum(
        p.quantity * 100.0 * _ql_european("call", 120.0, p.instrument.strike, expiry, 0, 0, 0.2)
        for p in fly
    )
    largest = now - min(values)
    assert 20.0 < largest < 50.0
    res = reverse_stress(book, 0.95 * largest, horizon_days=1.0)
    assert res.pnl == pytest.approx(-0.95 * largest, rel=1e-9)
    assert 99.5 < 120.0 * (1 + res.spot_shocks["X"]) < 100.5
    with pytest.raises(ValueError, match=r"loss: .* not reachable"):
        reverse_stress(book, 1.001 * largest, horizon_days=1.0)


def test_reverse_stress_below_the_decay_of_a_long_straddle() -> None:
    # A long straddle loses ~1,396 over 5 days unshocked (its most likely outcome), and loses
    # less only when the spot moves: a loss of half the decay needs a move, the closest one.
    market = Market(0.0, (Underlying("X", 100.0, 0.3),))
    straddle = [
        Position(_opt("X", "call", 100.0, 10 / 252), 10),
        Position(_opt("X", "put", 100.0, 10 / 252), 10),
    ]
    book = book_arrays(straddle, market)
    (decay,) = stress_test(book, [StressScenario("decay", horizon_days=5.0)])
    res = reverse_stress(book, -0.5 * decay.pnl, horizon_days=5.0)
    assert res.pnl == pytest.approx(0.5 * decay.pnl, rel=1e-9)
    x = res.log_returns["X"]
    # The other direction's crossing is no closer: at -x the loss is still at least the target.
    (other,) = stress_test(book, [StressScenario("o", {"X": math.expm1(-x)}, horizon_days=5.0)])
    assert other.pnl <= res.pnl + 1e-9 * abs(res.pnl)
    with pytest.raises(ValueError, match=r"loss: .* not reachable"):
        reverse_stress(book, -1.01 * decay.pnl, horizon_days=5.0)


def test_unreachable_loss_is_an_error() -> None:
    # A long call cannot lose more than its premium (about 1,500 here).
    long_call = book_arrays([Position(_opt("AAPL", "call", 190.0, 0.5), 1)], MARKET)
    with pytest.raises(ValueError, match=r"loss: .* not reachable"):
        reverse_stress(long_call, 5_000.0)
    long_stock = book_arrays([Position(Instrument("AAPL"), 1)], MARKET)
    with pytest.raises(ValueError, match=r"loss: .* not reachable"):
        reverse_stress(long_stock, 190.0)
    res = reverse_stress(long_call, 1000.0)
    assert res.pnl == pytest.approx(-1000.0, rel=1e-9)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenarios", "field"),
    [
        ([], r"^scenarios: must not be empty"),
        ([StressScenario("x", {"IBM": 0.1})], r"^scenarios\[0\]\.spot_shocks\['IBM'\]: unknown"),
        (
            [StressScenario("x", {"AAPL": math.nan})],
            r"^scenarios\[0\]\.spot_shocks\['AAPL'\]: must be finite",
        ),
        (
            [StressScenario("ok"), StressScenario("x", {"AAPL": -1.0})],
            r"^scenarios\[1\]\.spot_shocks\['AAPL'\]: .*> -1",
        ),
        (
            [StressScenario("x", vol_shocks={"MSFT": -0.22})],
            r"^scenarios\[0\]\.vol_shocks\['MSFT'\]: the shocked volatility",
        ),
        (
            [StressScenario("x", vol_shocks={"NFLX": 0.1})],
            r"^scenarios\[0\]\.vol_shocks\['NFLX'\]: unknown",
        ),
        (
            [StressScenario("x", rate_shock=math.inf)],
            r"^scenarios\[0\]\.rate_shock: must be finite",
        ),
        ([StressScenario("x", rate_shock=5.0)], r"^scenarios\[0\]\.rate_shock: the shocked rate"),
        ([StressScenario("x", horizon_days=-1.0)], r"^scenarios\[0\]\.horizon_days: must be in"),
        ([StressScenario("", {"AAPL": 0.1})], r"^scenarios\[0\]\.name: "),
        (
            [StressScenario("x", {"AAPL": "0.1"})],  # type: ignore[dict-item]
            r"^scenarios\[0\]\.spot_shocks\['AAPL'\]: expected a number",
        ),
        ("crash", r"^scenarios: expected a list"),
    ],
)
def test_bad_scenarios_name_the_field(scenarios: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        stress_test(BOOK, scenarios)  # type: ignore[arg-type]


def test_bad_grid_historical_and_reverse_input() -> None:
    with pytest.raises(ValueError, match=r"^spot_shocks\[1\]: .*> -1"):
        spot_vol_grid(BOOK, [0.0, -1.5], [0.0])
    with pytest.raises(ValueError, match=r"^vol_shocks\[0\]: the shocked volatility"):
        spot_vol_grid(BOOK, [0.0], [-0.23])  # MSFT's vol is 0.22
    with pytest.raises(ValueError, match=r"^vol_shocks: must not be empty"):
        spot_vol_grid(BOOK, [0.0], [])
    with pytest.raises(ValueError, match=r"^spot_shocks\[0\]: must be finite"):
        spot_vol_grid(BOOK, [math.nan], [0.0])
    with pytest.raises(ValueError, match=r"^returns\[1\]\[0\]: must be finite"):
        historical_stress(BOOK, [[0.0, 0.0], [math.nan, 0.0]])
    with pytest.raises(ValueError, match=r"^returns: expected shape"):
        historical_stress(BOOK, [[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"^labels: expected one label per day"):
        historical_stress(BOOK, [[0.0, 0.0]], labels=["a", "b"])
    with pytest.raises(ValueError, match=r"^labels: expected one label per day"):
        historical_stress(BOOK, [[0.0, 0.0]], labels=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^labels\[0\]: expected a non-empty string"):
        historical_stress(BOOK, [[0.0, 0.0]], labels=[""])
    with pytest.raises(ValueError, match=r"^worst: must be an integer >= 1"):
        historical_stress(BOOK, [[0.0, 0.0]], worst=0)
    with pytest.raises(ValueError, match=r"^loss: must be > 0"):
        reverse_stress(BOOK, -5.0)
    with pytest.raises(ValueError, match=r"^loss: must be finite"):
        reverse_stress(BOOK, math.nan)
    with pytest.raises(ValueError, match=r"^horizon_days: must be > 0"):
        reverse_stress(BOOK, 100.0, horizon_days=0.0)
    with pytest.raises(ValueError, match=r"^covariance: expected 2 x 2"):
        reverse_stress(BOOK, 100.0, covariance=[[0.04]])
    with pytest.raises(ValueError, match=r"^covariance: must be positive definite"):
        reverse_stress(BOOK, 100.0, covariance=[[0.04, 0.04], [0.04, 0.04]])
    with pytest.raises(ValueError, match=r"^covariance\[0\]\[1\]: must equal"):
        reverse_stress(BOOK, 100.0, covariance=[[0.04, 0.01], [0.0, 0.04]])
    with pytest.raises(ValueError, match=r"^book: expected a Book"):
        stress_test(POSITIONS, SCENARIOS)  # type: ignore[arg-type]


def test_too_many_cells_is_refused_before_pricing() -> None:
    big = replace(BOOK, units=np.ones(MAX_CELLS // 10 + 1))
    with pytest.raises(ValueError, match=r"^scenarios: .*more than"):
        stress_test(big, [StressScenario(str(i)) for i in range(10)])
