"""Monte-Carlo VaR (tradecore.risk.montecarlo): closed forms, independent references (QuantLib,
numpy/scipy with numpy's own RNG), the scenario stream, determinism, convergence, delta-gamma,
correlation repair, Student-t, volatility shocks, American grids, batches and bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import QuantLib as ql
from scipy import stats
from scipy.special import ndtr
from tradecore import _core
from tradecore.errors import TradecoreError
from tradecore.pricing import european
from tradecore.risk import (
    Instrument,
    Market,
    Position,
    Underlying,
    book_arrays,
    cholesky_factor,
    monte_carlo_var,
    monte_carlo_var_batch,
    normals,
    simulate_losses,
)
from tradecore.risk.book import Book
from tradecore.risk.montecarlo import MAX_PATHS
from tradecore.risk.result import var_es
from tradecore.risk.valuation import revalue

H1 = 1.0 / 252.0


def stock_book(spot: float = 100.0, vol: float = 0.25, qty: float = 1000.0) -> Book:
    market = Market(0.03, (Underlying("AAA", spot, vol, 0.01),))
    return book_arrays([Position(Instrument("AAA"), qty)], market)


def option(
    sym: str, kind: str, strike: float, expiry: float, style: str = "european"
) -> Instrument:
    return Instrument(sym, "option", kind, style, strike, expiry)  # type: ignore[arg-type]


def three_market(corr: Any = None) -> Market:
    return Market(
        0.03,
        (
            Underlying("AAA", 100.0, 0.25, 0.01),
            Underlying("BBB", 50.0, 0.40, 0.0),
            Underlying("CCC", 200.0, 0.18, 0.02),
        ),
        [[1.0, 0.5, 0.2], [0.5, 1.0, -0.3], [0.2, -0.3, 1.0]] if corr is None else corr,
    )


def option_book(style: str = "european") -> Book:
    positions = [
        Position(option("AAA", "call", 100.0, 0.5, style), 10),
        Position(option("AAA", "put", 90.0, 0.25, style), -5),
        Position(option("BBB", "put", 55.0, 1.0, style), 8),
        Position(option("BBB", "call", 45.0, 0.1, style), -4),
        Position(option("CCC", "call", 210.0, 0.75, style), 6),
        Position(option("CCC", "put", 190.0, 0.4, style), 7),
        Position(Instrument("CCC"), -300),
    ]
    return book_arrays(positions, three_market())


# ----------------------------------------------------------------------------- linear books


@pytest.mark.parametrize("qty", [1000.0, -700.0])
def test_one_stock_matches_the_lognormal_closed_form(qty: float) -> None:
    S, vol, c, days = 100.0, 0.25, 0.99, 10.0
    h = days / 252.0
    s = vol * math.sqrt(h)
    r = monte_carlo_var(stock_book(S, vol, qty), confidence=c, horizon_days=days, paths=400_000)
    if qty > 0:  # loss = qty S (1 - e^X), X ~ N(-s^2/2, s^2): large when X is low
        zq = stats.norm.ppf(1.0 - c)
        var = qty * S * (1.0 - math.exp(-0.5 * s * s + s * zq))
        es = qty * S * (1.0 - stats.norm.cdf(zq - s) / (1.0 - c))
    else:  # a short loses when X is high
        zq = stats.norm.ppf(c)
        var = -qty * S * (math.exp(-0.5 * s * s + s * zq) - 1.0)
        es = -qty * S * (stats.norm.cdf(s - zq) / (1.0 - c) - 1.0)
    assert abs(r.var - var) < 4 * r.var_stderr
    assert abs(r.expected_shortfall - es) < 4 * r.es_stderr
    assert r.method == "monte_carlo" and r.scenarios == 400_000
    assert r.value == pytest.approx(qty * S)
    assert r.details["correlation_repaired"] is False


def test_scenarios_are_the_philox_normals_times_the_cholesky_factor() -> None:
    units = np.array([300.0, -200.0, 150.0])
    m = three_market()
    book = book_arrays(
        [Position(Instrument(u.symbol), q) for u, q in zip(m.underlyings, units, strict=True)], m
    )
    paths, first = 5000, 123_456
    full, dg = simulate_losses(book, horizon_days=3.0, paths=paths, seed=77, first_path=first)
    h = 3.0 / 252.0
    Z = normals(77, paths, 3, first) @ cholesky_factor(book.correlation).factor.T
    Sh = book.spot * np.exp(-0.5 * book.volatility**2 * h + book.volatility * math.sqrt(h) * Z)
    expected = (book.spot - Sh) @ units
    np.testing.assert_allclose(full, expected, rtol=1e-12, atol=1e-9)
    # Linear book: delta-gamma (delta = units, gamma = 0, theta = 0) is the full revaluation.
    np.testing.assert_allclose(dg, full, rtol=1e-12, atol=1e-9)


# ------------------------------------------------------------------ independent references


def ql_price(w: int, S: float, K: float, tau: float, r: float, q: float, vol: float) -> float:
    """Black-Scholes-Merton by QuantLib's blackFormula (forward, std dev, discount)."""
    if tau <= 0.0:
        return max(w * (S - K), 0.0)
    kind = ql.Option.Call if w > 0 else ql.Option.Put
    fwd = S * math.exp((r - q) * tau)
    return float(ql.blackFormula(kind, K, fwd, vol * math.sqrt(tau), math.exp(-r * tau)))


def test_option_book_on_one_underlying_matches_quantlib() -> None:
    # Long calls and short puts: the value rises with the spot, so the loss is a decreasing
    # function of Z and VaR is the loss at the normal quantile z_{1-c}; ES integrates the loss
    # over the tail (Gauss-Legendre on QuantLib prices).
    S, vol, q, r, c, days = 100.0, 0.3, 0.01, 0.03, 0.99, 5.0
    legs = [
        (1, 100.0, 0.5, 10.0),
        (-1, 90.0, 0.25, -5.0),
        (1, 120.0, 1.0, 3.0),
        (1, 95.0, 0.01, 4.0),
    ]
    market = Market(r, (Underlying("AAA", S, vol, q),))
    book = book_arrays(
        [Position(option("AAA", "call" if w > 0 else "put", K, T), n) for w, K, T, n in legs],
        market,
    )
    h = days / 252.0

    def loss(z: float) -> float:
        Sh = S * math.exp(-0.5 * vol * vol * h + vol * math.sqrt(h) * z)
        now = sum(n * 100 * ql_price(w, S, K, T, r, q, vol) for w, K, T, n in legs)
        then = sum(n * 100 * ql_price(w, Sh, K, T - h, r, q, vol) for w, K, T, n in legs)
        return now - then

    zq = stats.norm.ppf(1.0 - c)
    var_ref = loss(zq)
    x, wts = np.polynomial.legendre.leggauss(200)
    a, b = -12.0, zq
    zs = 0.5 * (b - a) * x + 0.5 * (b + a)
    es_ref = (
        0.5
        * (b - a)
        * sum(wi * loss(zi) * stats.norm.pdf(zi) for zi, wi in zip(zs, wts, strict=True))
        / (1.0 - c)
    )
    res = monte_carlo_var(book, confidence=c, horizon_days=days, paths=1_000_000, seed=3)
    assert abs(res.var - var_ref) < 4 * res.var_stderr
    assert abs(res.var - var_ref) < 0.01 * var_ref
    assert abs(res.expected_shortfall - es_ref) < 4 * res.es_stderr
    assert abs(res.expected_shortfall - es_ref) < 0.01 * es_ref
    assert res.value == pytest.approx(
        sum(n * 100 * ql_price(w, S, K, T, r, q, vol) for w, K, T, n in legs), rel=1e-12
    )


def test_multi_underlying_book_matches_numpy_full_revaluation() -> None:
    # An independent implementation of the model with numpy's RNG (not Philox), numpy's
    # Cholesky and scipy's ndtr Black-Scholes, at 2M paths.
    book = option_book()
    c, days = 0.99, 2.0
    h = days / 252.0
    rng = np.random.default_rng(11)
    L = np.linalg.cholesky(book.correlation)
    u = book.underlying
    opt = book.kind != 0
    w = book.option_type.astype(float)

    def bsm(S: np.ndarray, tau: np.ndarray) -> np.ndarray:
        K, q, v = book.strike, book.dividend_yield[u], book.volatility[u]
        sd = v * np.sqrt(tau)
        d1 = (np.log(S / K) + (book.rate - q) * tau) / sd + 0.5 * sd
        d2 = d1 - sd
        return w * (
            S * np.exp(-q * tau) * ndtr(w * d1) - K * np.exp(-book.rate * tau) * ndtr(w * d2)
        )

    def values(S_und: np.ndarray, tau: np.ndarray) -> np.ndarray:
        S = S_und[..., u]
        out = np.where(opt, bsm(np.where(opt, S, 1.0), np.where(opt, tau, 1.0)), S)
        return np.asarray(out @ book.units)

    now = values(book.spot[None, :], book.expiry)[0]
    losses = []
    for _ in range(4):
        z = rng.standard_normal((500_000, 3)) @ L.T
        Sh = book.spot * np.exp(-0.5 * book.volatility**2 * h + book.volatility * math.sqrt(h) * z)
        losses.append(now - values(Sh, book.expiry - h))
    ref = var_es(np.concatenate(losses), c)
    res = monte_carlo_var(book, confidence=c, horizon_days=days, paths=1_000_000, seed=5)
    assert res.value == pytest.approx(now, rel=1e-10)
    assert abs(res.var - ref[0]) < 4 * math.hypot(res.var_stderr, ref[2])
    assert abs(res.expected_shortfall - ref[1]) < 4 * math.hypot(res.es_stderr, ref[3])
    assert abs(res.var - ref[0]) < 0.01 * ref[0]


def test_losses_equal_exact_repricing_path_by_path() -> None:
    book = option_book()
    days, paths = 3.0, 500
    full, _ = simulate_losses(book, horizon_days=days, paths=paths, seed=9)
    h = days / 252.0
    Z = normals(9, paths, 3) @ cholesky_factor(book.correlation).factor.T
    Sh = book.spot * np.exp(-0.5 * book.volatility**2 * h + book.volatility * math.sqrt(h) * Z)
    exact = revalue(book).sum() - revalue(book, Sh, horizon=h).sum(axis=-1)
    # The kernel's vectorised BSM is within a few ulp of the spots' scale of the accurate kernel.
    scale = float(np.sum(np.abs(book.units) * book.spot[book.underlying]))
    np.testing.assert_allclose(full, exact, rtol=0, atol=1e-14 * scale)


def test_an_option_expiring_within_the_horizon_is_worth_its_intrinsic_value() -> None:
    market = Market(0.02, (Underlying("AAA", 100.0, 0.3),))
    book = book_arrays([Position(option("AAA", "put", 101.0, 2.0 / 252.0), 10)], market)
    full, _ = simulate_losses(book, horizon_days=5.0, paths=1000, seed=1)
    h = 5.0 / 252.0
    Sh = 100.0 * np.exp(-0.5 * 0.09 * h + 0.3 * math.sqrt(h) * normals(1, 1000, 1)[:, 0])
    exact = revalue(book).sum() - 1000.0 * np.maximum(101.0 - Sh, 0.0)
    np.testing.assert_allclose(full, exact, rtol=1e-12, atol=1e-9)


# ------------------------------------------------------------ determinism and convergence


def test_same_seed_same_result_and_thread_count_does_not_matter() -> None:
    book = option_book()
    a = simulate_losses(book, paths=20_000, seed=42, threads=1)
    b = simulate_losses(book, paths=20_000, seed=42, threads=2)
    c = simulate_losses(book, paths=20_000, seed=42, threads=3)
    for x, y in ((a, b), (a, c)):
        assert np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
    r1 = monte_carlo_var(book, paths=20_000, seed=42, threads=1)
    r2 = monte_carlo_var(book, paths=20_000, seed=42, threads=2)
    assert r1 == r2
    assert monte_carlo_var(book, paths=20_000, seed=43).var != r1.var
    # A run split anywhere (not on a block or vector boundary) is the same run, bit for bit.
    tail = simulate_losses(book, paths=4_321, seed=42, first_path=15_679)
    assert np.array_equal(tail[0], a[0][15_679:]) and np.array_equal(tail[1], a[1][15_679:])
    mid = simulate_losses(book, paths=13, seed=42, first_path=1_001)
    assert np.array_equal(mid[0], a[0][1_001:1_014])


def test_the_reduction_matches_var_es() -> None:
    book = option_book()
    for c in (0.9, 0.975, 0.99):
        res = monte_carlo_var(book, paths=30_001, seed=8, confidence=c)
        full, dg = simulate_losses(book, paths=30_001, seed=8)
        np.testing.assert_allclose(
            [res.var, res.expected_shortfall, res.var_stderr, res.es_stderr],
            var_es(full, c),
            rtol=1e-12,
        )
        ref = var_es(dg, c)
        assert res.details["delta_gamma_var"] == pytest.approx(ref[0], rel=1e-12)
        assert res.details["delta_gamma_es"] == pytest.approx(ref[1], rel=1e-12)


def test_convergence_is_order_one_over_root_n() -> None:
    S, vol, qty, c = 100.0, 0.25, 1000.0, 0.99
    book = stock_book(S, vol, qty)
    s = vol * math.sqrt(H1)
    exact = qty * S * (1.0 - math.exp(-0.5 * s * s + s * stats.norm.ppf(1.0 - c)))
    small = [monte_carlo_var(book, paths=4_000, seed=k) for k in range(16)]
    large = [monte_carlo_var(book, paths=64_000, seed=k) for k in range(16)]
    ratio = np.mean([r.var_stderr for r in small]) / np.mean([r.var_stderr for r in large])
    assert 3.2 < ratio < 4.8
    rms_small = math.sqrt(np.mean([(r.var - exact) ** 2 for r in small]))
    rms_large = math.sqrt(np.mean([(r.var - exact) ** 2 for r in large]))
    assert rms_large < rms_small / 2.0
    # The reported standard error is the actual spread of the estimate.
    assert 0.5 < rms_large / np.mean([r.var_stderr for r in large]) < 2.0


# ------------------------------------------------------------------------- delta-gamma


def test_delta_gamma_is_close_to_full_revaluation_for_a_small_horizon() -> None:
    book = option_book()
    short = monte_carlo_var(book, horizon_days=0.05, paths=200_000, seed=2)
    long = monte_carlo_var(book, horizon_days=20.0, paths=200_000, seed=2)
    gap_short = abs(short.var - short.details["delta_gamma_var"]) / short.var
    gap_long = abs(long.var - long.details["delta_gamma_var"]) / long.var
    assert gap_short < 0.01
    assert gap_long > gap_short
    dg = monte_carlo_var(book, horizon_days=20.0, paths=200_000, seed=2, method="delta_gamma")
    assert dg.method == "delta_gamma"
    assert dg.var == long.details["delta_gamma_var"]
    assert dg.expected_shortfall == long.details["delta_gamma_es"]


@pytest.mark.parametrize("style", ["european", "american"])
def test_delta_gamma_theta_matches_the_mean_of_full_revaluation(style: str) -> None:
    # The delta term averages out; E[full loss] = -(theta h + gamma E[dS^2] / 2) + higher
    # orders, so the means agree far more closely than theta h (118 here): a sign or scale
    # error in theta or gamma would show.
    book = option_book(style)
    full, dg = simulate_losses(book, paths=200_000, seed=1, horizon_days=2.0)
    o = book.kind != 0
    u = book.underlying[o]
    greeks = european(
        book.spot[u],
        book.strike[o],
        book.expiry[o],
        book.rate,
        book.dividend_yield[u],
        book.volatility[u],
        book.option_type[o],
        "first",
    )
    theta_h = float(np.sum(greeks["theta"] * book.units[o])) * 2.0 / 252.0
    assert abs(theta_h) > 50.0
    assert abs(np.mean(full - dg)) < 0.01 * abs(theta_h)


# ---------------------------------------------------------- correlation, fat tails, vols


def test_a_correlation_that_is_not_positive_definite_is_repaired_and_reported() -> None:
    bad = [[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]
    m = three_market(bad)
    book = book_arrays([Position(Instrument(u.symbol), 100) for u in m.underlyings], m)
    res = monte_carlo_var(book, paths=10_000)
    assert res.details["correlation_repaired"] is True
    assert res.details["repair_distance"] > 0.1
    assert math.isfinite(res.var) and res.var > 0
    ok = monte_carlo_var(option_book(), paths=10_000)
    assert ok.details["correlation_repaired"] is False and ok.details["repair_distance"] == 0.0


def test_student_t_shocks_have_fat_tails_and_unit_variance() -> None:
    S, vol, qty = 100.0, 0.25, 1000.0
    book = stock_book(S, vol, qty)
    normal = monte_carlo_var(book, confidence=0.999, paths=400_000, seed=4)
    fat = monte_carlo_var(book, confidence=0.999, paths=400_000, seed=4, student_t_dof=4)
    assert fat.var > normal.var + 4 * math.hypot(fat.var_stderr, normal.var_stderr)
    assert fat.details["student_t_dof"] == 4
    full, _ = simulate_losses(book, paths=400_000, seed=4, student_t_dof=6)
    logret = np.log1p(-full / (qty * S)) + 0.5 * vol * vol * H1
    assert np.std(logret) == pytest.approx(vol * math.sqrt(H1), rel=0.02)
    # t with 6 degrees of freedom: excess kurtosis 6 / (6 - 4) = 3.
    assert stats.kurtosis(logret) > 2.0
    full_n, _ = simulate_losses(book, paths=400_000, seed=4)
    assert abs(stats.kurtosis(np.log1p(-full_n / (qty * S)))) < 0.1


def test_vol_shocks_change_option_var_but_not_equity_var() -> None:
    m = three_market()
    eq = book_arrays([Position(Instrument(u.symbol), 100) for u in m.underlyings], m)
    a = simulate_losses(eq, paths=20_000, seed=6)
    b = simulate_losses(eq, paths=20_000, seed=6, vol_of_vol=[1.5, 1.0, 2.0])
    np.testing.assert_array_equal(a[0], b[0])
    # A long straddle: its value rises with the volatility (and with the move either way).
    straddle = book_arrays(
        [
            Position(option("AAA", "call", 100.0, 0.25), 50),
            Position(option("AAA", "put", 100.0, 0.25), 50),
        ],
        m,
    )
    base = monte_carlo_var(straddle, paths=100_000, seed=6, horizon_days=5.0)
    shocked = monte_carlo_var(
        straddle, paths=100_000, seed=6, horizon_days=5.0, vol_of_vol=2.0, spot_vol_correlation=-0.7
    )
    assert shocked.var > base.var + 4 * math.hypot(shocked.var_stderr, base.var_stderr)
    assert shocked.details["vol_shocks"] is True
    # Path by path: the vol-shocked losses are exact repricing at the shocked vols.
    full, dg = simulate_losses(
        straddle, paths=300, seed=6, horizon_days=5.0, vol_of_vol=2.0, spot_vol_correlation=-0.7
    )
    h = 5.0 / 252.0
    z = normals(6, 300, 6)
    Z = z[:, :3] @ cholesky_factor(straddle.correlation).factor.T
    Sh = straddle.spot * np.exp(
        -0.5 * straddle.volatility**2 * h + straddle.volatility * math.sqrt(h) * Z
    )
    zv = -0.7 * Z + math.sqrt(1 - 0.49) * z[:, 3:]
    vh = straddle.volatility * np.exp(-0.5 * 4.0 * h + 2.0 * math.sqrt(h) * zv)
    exact = revalue(straddle).sum() - revalue(straddle, Sh, vh, horizon=h).sum(axis=-1)
    np.testing.assert_allclose(full, exact, rtol=0, atol=1e-7)
    # The delta-gamma-vega approximation follows the shocked value closely at this horizon.
    assert np.corrcoef(full, dg)[0, 1] > 0.95


@pytest.mark.parametrize("style", ["european", "american"])
def test_extreme_vol_shocks_and_horizons_stay_finite(style: str) -> None:
    # nu sqrt(h) ~ 30: shocked vols span e^{+-250}; they are clamped to the pricing domain, and
    # the American grids stay inside it, so every path has a finite loss.
    market = Market(0.02, (Underlying("AAA", 100.0, 5.0), Underlying("BBB", 50.0, 0.3)))
    book = book_arrays(
        [
            Position(option("AAA", "call", 100.0, 50.0, style), 3),
            Position(option("BBB", "put", 60.0, 40.0, style), -2),
            Position(Instrument("AAA"), 10),
        ],
        market,
    )
    full, dg = simulate_losses(book, paths=5_000, seed=3, horizon_days=2520.0, vol_of_vol=10.0)
    assert np.isfinite(full).all() and np.isfinite(dg).all()
    res = monte_carlo_var(book, paths=5_000, seed=3, horizon_days=2520.0, vol_of_vol=10.0)
    assert math.isfinite(res.var) and math.isfinite(res.details["interpolation_error"])


# ----------------------------------------------------------------------------- American


def test_american_grid_interpolation_is_within_the_reported_error() -> None:
    book = option_book("american")
    days, paths = 5.0, 400
    res = monte_carlo_var(book, horizon_days=days, paths=20_000, seed=12)
    err = res.details["interpolation_error"]
    assert 0.0 < err < 1e-3 * abs(res.value)
    full, _ = simulate_losses(book, horizon_days=days, paths=paths, seed=12)
    h = days / 252.0
    Z = normals(12, paths, 3) @ cholesky_factor(book.correlation).factor.T
    Sh = book.spot * np.exp(-0.5 * book.volatility**2 * h + book.volatility * math.sqrt(h) * Z)
    exact = revalue(book).sum() - revalue(book, Sh, horizon=h).sum(axis=-1)
    assert np.max(np.abs(full - exact)) <= err


# ------------------------------------------------------------------------------- batches


def test_a_batch_gives_each_book_its_own_result() -> None:
    m = three_market()
    base = option_book().positions
    books = [book_arrays(list(base[i : i + 4]), m) for i in range(4)]
    batch = monte_carlo_var_batch(books, paths=20_000, seed=3)
    assert len(batch) == 4
    for b, r in zip(books, batch, strict=True):
        alone = monte_carlo_var(b, paths=20_000, seed=3)
        assert r.var == pytest.approx(alone.var, rel=1e-12)
        assert r.expected_shortfall == pytest.approx(alone.expected_shortfall, rel=1e-12)
        assert r.details["delta_gamma_var"] == pytest.approx(
            alone.details["delta_gamma_var"], rel=1e-12
        )
        assert r.value == pytest.approx(alone.value, rel=1e-12)
    other = book_arrays(list(base[:2]), Market(0.04, m.underlyings, m.correlation))
    with pytest.raises(ValueError, match=r"books\[1\]: market differs"):
        monte_carlo_var_batch([books[0], other], paths=100)


def test_a_batch_is_thread_invariant_and_delta_gamma_only_matches() -> None:
    m = three_market()
    base = option_book("american").positions
    books = [book_arrays(list(base[i : i + 3]), m) for i in range(5)]
    one = monte_carlo_var_batch(books, paths=5_000, seed=9, threads=1)
    two = monte_carlo_var_batch(books, paths=5_000, seed=9, threads=2)
    assert one == two
    dg = monte_carlo_var_batch(books, paths=5_000, seed=9, method="delta_gamma")
    for full, d in zip(one, dg, strict=True):
        assert d.method == "delta_gamma"
        assert d.var == full.details["delta_gamma_var"]


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
        ({"confidence": math.nan}, "confidence"),
        ({"horizon_days": 0.0}, "horizon_days"),
        ({"horizon_days": 3000.0}, "horizon_days"),
        ({"horizon_days": math.inf}, "horizon_days"),
        ({"paths": 0}, "paths"),
        ({"paths": MAX_PATHS + 1}, "paths"),
        ({"paths": 1.5}, "paths"),
        ({"seed": -1}, "seed"),
        ({"seed": 1 << 64}, "seed"),
        ({"method": "exact"}, "method"),
        ({"student_t_dof": 2}, "student_t_dof"),
        ({"student_t_dof": -3}, "student_t_dof"),
        ({"vol_of_vol": [0.5, 0.5]}, "vol_of_vol"),
        ({"vol_of_vol": [0.5, -0.1, 0.5]}, r"vol_of_vol\[1\]"),
        ({"vol_of_vol": [0.5, math.nan, 0.5]}, r"vol_of_vol\[1\]"),
        ({"spot_vol_correlation": 0.5}, "spot_vol_correlation"),
        (
            {"vol_of_vol": 1.0, "spot_vol_correlation": [0.1, 2.0, 0.0]},
            r"spot_vol_correlation\[1\]",
        ),
        ({"device": "tpu"}, "device"),
        ({"threads": -1}, "threads"),
    ],
)
def test_bad_input_raises_value_error_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}"):
        monte_carlo_var(option_book(), **kwargs)


def test_bad_books_are_named() -> None:
    with pytest.raises(ValueError, match=r"^book:"):
        monte_carlo_var("not a book")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^books:"):
        monte_carlo_var_batch([])
    with pytest.raises(ValueError, match=r"^books: len\(books\) \* paths"):
        monte_carlo_var_batch([option_book()] * 2, paths=MAX_PATHS)


def test_american_grid_covers_student_t_tails() -> None:
    # Student-t(3) paths reach far beyond the normal grid's 8 sigma sqrt(h): the grid widens to
    # the t quantile at 1 - 1e-6, so they are interpolated like the others.
    book = option_book("american")
    days, paths = 5.0, 2000
    full, _ = simulate_losses(book, horizon_days=days, paths=paths, seed=12, student_t_dof=3)
    res = monte_carlo_var(book, horizon_days=days, paths=paths, seed=12, student_t_dof=3)
    h = days / 252.0
    z = normals(12, paths, 6)
    W = np.sum(z[:, 3:] ** 2, axis=1)
    Z = (z[:, :3] @ cholesky_factor(book.correlation).factor.T) * np.sqrt(1.0 / W)[:, None]
    Sh = book.spot * np.exp(-0.5 * book.volatility**2 * h + book.volatility * math.sqrt(h) * Z)
    exact = revalue(book).sum() - revalue(book, Sh, horizon=h).sum(axis=-1)
    assert np.max(np.abs(Z)) > 8.0  # some paths are far in the tails
    assert np.max(np.abs(full - exact)) <= res.details["interpolation_error"]


def test_american_spot_vol_grid_under_vol_shocks_is_within_the_reported_error() -> None:
    book = option_book("american")
    days, paths, nu, rho = 5.0, 300, np.array([1.5, 0.8, 2.5]), -0.6
    kw: dict[str, Any] = {"horizon_days": days, "vol_of_vol": nu, "spot_vol_correlation": rho}
    res = monte_carlo_var(book, paths=20_000, seed=13, **kw)
    err = res.details["interpolation_error"]
    spot_only = monte_carlo_var(book, paths=20_000, seed=13, horizon_days=days)
    assert 0.0 < err < 1e-3 * abs(res.value)
    assert res.var != spot_only.var  # the vol shocks reach the American options
    full, _ = simulate_losses(book, paths=paths, seed=13, **kw)
    h = days / 252.0
    z = normals(13, paths, 6)
    Z = z[:, :3] @ cholesky_factor(book.correlation).factor.T
    Sh = book.spot * np.exp(-0.5 * book.volatility**2 * h + book.volatility * math.sqrt(h) * Z)
    zv = rho * Z + math.sqrt(1 - rho * rho) * z[:, 3:]
    vh = book.volatility * np.exp(-0.5 * nu**2 * h + nu * math.sqrt(h) * zv)
    exact = revalue(book).sum() - revalue(book, Sh, vh, horizon=h).sum(axis=-1)
    assert np.max(np.abs(full - exact)) <= err


# ---------------------------------------------------------------------------------- CUDA


@pytest.mark.skipif(_core.cuda_available(), reason="checks the no-GPU error")
def test_cuda_without_a_device_raises_tradecore_error() -> None:
    with pytest.raises(TradecoreError):
        monte_carlo_var(option_book(), paths=100, device="cuda")


@pytest.mark.skipif(not _core.cuda_available(), reason="needs a CUDA device")
def test_cuda_losses_match_the_cpu() -> None:
    book = option_book()
    for kw in ({}, {"student_t_dof": 5}, {"vol_of_vol": 1.0, "spot_vol_correlation": -0.5}):
        cpu = simulate_losses(book, paths=50_000, seed=21, first_path=7, **kw)  # type: ignore[arg-type]
        gpu = simulate_losses(book, paths=50_000, seed=21, first_path=7, device="cuda", **kw)  # type: ignore[arg-type]
        scale = np.abs(cpu[0]).max()
        np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-12, atol=1e-12 * scale)
        np.testing.assert_allclose(gpu[1], cpu[1], rtol=1e-12, atol=1e-12 * scale)
    am = option_book("american")
    cpu = simulate_losses(am, paths=20_000, seed=2)
    gpu = simulate_losses(am, paths=20_000, seed=2, device="cuda")
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-12, atol=1e-12 * np.abs(cpu[0]).max())
    r_cpu = monte_carlo_var(book, paths=100_000, seed=4)
    r_gpu = monte_carlo_var(book, paths=100_000, seed=4, device="cuda")
    assert r_gpu.device == "cuda"
    assert r_gpu.var == pytest.approx(r_cpu.var, rel=1e-12)
