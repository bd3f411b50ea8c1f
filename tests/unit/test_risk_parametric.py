"""Delta-normal and Cornish-Fisher VaR: closed forms for linear books, the delta-gamma moments
against sampling of the quadratic P&L, the direction of the gamma correction, Greeks against
bumped repricing, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from tradecore.risk.book import Instrument, Market, Position, Underlying, book_arrays
from tradecore.risk.covariance import CovarianceEstimate
from tradecore.risk.parametric import (
    cornish_fisher_quantile,
    cornish_fisher_tail_mean,
    cornish_fisher_var,
    parametric_var,
    sensitivities,
)
from tradecore.risk.valuation import revalue

MARKET = Market(
    0.03,
    (Underlying("AAA", 100.0, 0.25), Underlying("BBB", 40.0, 0.4, 0.02)),
    [[1.0, 0.6], [0.6, 1.0]],
)


def _option(
    symbol: str, kind: str, strike: float, expiry: float, style: str = "european"
) -> Instrument:
    return Instrument(
        f"{symbol}-{kind}-{strike}",
        "option",
        kind,
        style,
        strike,
        expiry,
        underlying=symbol,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("c", "horizon"), [(0.99, 1.0), (0.95, 10.0)])
def test_one_stock_delta_normal_is_the_closed_form(c: float, horizon: float) -> None:
    book = book_arrays(
        [Position(Instrument("AAA"), 10.0)], Market(0.03, (Underlying("AAA", 100.0, 0.25),))
    )
    z = stats.norm.ppf(c)
    sigma = 1000.0 * 0.25 * math.sqrt(horizon / 252)
    res = parametric_var(book, confidence=c, horizon_days=horizon)
    assert res.var == pytest.approx(z * sigma, rel=1e-12)
    assert res.expected_shortfall == pytest.approx(stats.norm.pdf(z) / (1 - c) * sigma, rel=1e-12)
    assert res.method == "parametric" and res.value == 1000.0 and res.scenarios == 0
    cf = cornish_fisher_var(book, confidence=c, horizon_days=horizon)
    assert cf.var == pytest.approx(res.var, rel=1e-12)
    assert cf.expected_shortfall == pytest.approx(res.expected_shortfall, rel=1e-12)
    assert cf.details["skewness"] == 0.0 and cf.details["excess_kurtosis"] == 0.0


def test_two_stock_linear_book_uses_the_correlation_or_a_supplied_covariance() -> None:
    book = book_arrays(
        [Position(Instrument("AAA"), 10.0), Position(Instrument("BBB"), -30.0)], MARKET
    )
    d = np.array([1000.0, -1200.0])
    vol = np.array([0.25, 0.4])
    cov = np.array([[1.0, 0.6], [0.6, 1.0]]) * np.outer(vol, vol)
    sigma = math.sqrt(d @ cov @ d / 252)
    z = stats.norm.ppf(0.99)
    assert parametric_var(book).var == pytest.approx(z * sigma, rel=1e-12)
    assert cornish_fisher_var(book).var == pytest.approx(z * sigma, rel=1e-12)
    own = np.array([[0.09, -0.01], [-0.01, 0.04]])
    sigma2 = math.sqrt(d @ own @ d / 252)
    assert parametric_var(book, covariance=own).var == pytest.approx(z * sigma2, rel=1e-12)
    # An estimate with more symbols, in another order, is matched by symbol.
    est = CovarianceEstimate(
        ("ZZZ", "BBB", "AAA"),
        np.array([[1.0, 0.0, 0.0], [0.0, 0.04, -0.01], [0.0, -0.01, 0.09]]),
        np.eye(3),
        np.ones(3),
    )
    assert parametric_var(book, covariance=est).var == pytest.approx(z * sigma2, rel=1e-12)
    assert parametric_var(book, covariance=own).details["covariance"] == "supplied"


def _option_book(sign: float):  # type: ignore[no-untyped-def]
    """Long (sign +1) or short (-1) ATM straddles on both names, delta-hedged with stock."""
    pos = [
        Position(_option("AAA", "call", 100.0, 0.25), 10.0 * sign),
        Position(_option("AAA", "put", 100.0, 0.25), 10.0 * sign),
        Position(_option("BBB", "call", 40.0, 0.1, "american"), 20.0 * sign),
        Position(_option("BBB", "put", 40.0, 0.1, "american"), 20.0 * sign),
    ]
    s = sensitivities(book_arrays(pos, MARKET))
    hedge = -s.dollar_delta / np.array([100.0, 40.0])
    pos += [Position(Instrument("AAA"), hedge[0]), Position(Instrument("BBB"), hedge[1])]
    return book_arrays(pos, MARKET)


def test_gamma_moves_cornish_fisher_the_right_way() -> None:
    long_book, short_book = _option_book(1.0), _option_book(-1.0)
    for book, sign in ((long_book, 1.0), (short_book, -1.0)):
        dn = parametric_var(book, horizon_days=5.0)
        cf = cornish_fisher_var(book, horizon_days=5.0)
        assert cf.details["delta_normal_var"] == pytest.approx(dn.var)
        if sign > 0:  # long gamma: the loss is skewed left (bounded), VaR below delta-normal
            assert cf.details["skewness"] < -0.5
            assert cf.var < 0.8 * dn.var
        else:  # short gamma: a long right tail of losses
            assert cf.details["skewness"] > 0.5
            assert cf.var > 1.2 * dn.var
            assert cf.expected_shortfall > cf.var


def _quadratic_pnl(book, horizon_days: float, n: int, seed: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    s = sensitivities(book)
    vol = book.volatility
    cov = book.correlation * np.outer(vol, vol) * horizon_days / 252
    x = np.random.default_rng(seed).multivariate_normal(np.zeros(len(vol)), cov, size=n)
    return s.theta * horizon_days / 252 + x @ s.dollar_delta + 0.5 * (x * x) @ s.dollar_gamma


def test_delta_gamma_moments_match_sampling_of_the_quadratic_pnl() -> None:
    book = book_arrays(
        [
            Position(_option("AAA", "call", 105.0, 0.3), -15.0),
            Position(_option("BBB", "put", 38.0, 0.2), 25.0),
            Position(Instrument("AAA"), 400.0),
        ],
        MARKET,
    )
    cf = cornish_fisher_var(book, horizon_days=10.0)
    loss = -_quadratic_pnl(book, 10.0, 2_000_000, seed=1)
    sd = loss.std()
    assert cf.details["mean"] == pytest.approx(loss.mean(), abs=3 * sd / math.sqrt(len(loss)))
    assert cf.details["stdev"] == pytest.approx(sd, rel=2e-3)
    assert cf.details["skewness"] == pytest.approx(stats.skew(loss), abs=0.01)
    assert cf.details["excess_kurtosis"] == pytest.approx(stats.kurtosis(loss), abs=0.03)
    # And the expansion lands near the delta-gamma model's own quantile.
    assert cf.var == pytest.approx(np.quantile(loss, 0.99), rel=0.03)


def test_cornish_fisher_es_is_the_tail_integral_of_the_quantile() -> None:
    for c, s, k in ((0.99, 0.4, 0.8), (0.975, -0.3, 1.5), (0.95, 0.0, 0.0)):
        numeric = integrate.quad(
            lambda u, s=s, k=k: cornish_fisher_quantile(stats.norm.ppf(u), s, k),
            c,
            1.0,
            limit=200,
        )[0] / (1 - c)
        assert cornish_fisher_tail_mean(c, s, k) == pytest.approx(numeric, rel=1e-7)


def test_dollar_greeks_match_bumped_repricing() -> None:
    book = book_arrays(
        [
            Position(_option("AAA", "call", 110.0, 0.25), 10.0),
            Position(_option("AAA", "put", 95.0, 0.5), -4.0),
            Position(_option("BBB", "put", 42.0, 0.3, "american"), 20.0),
            Position(Instrument("BBB"), 100.0),
        ],
        MARKET,
    )
    s = sensitivities(book)
    for i in range(2):
        eps = 1e-3 * book.spot[i]
        up, dn = book.spot.copy(), book.spot.copy()
        up[i] += eps
        dn[i] -= eps
        v_up, v0, v_dn = (revalue(book, spot=x).sum() for x in (up, book.spot, dn))
        assert s.dollar_delta[i] == pytest.approx(
            (v_up - v_dn) / (2 * eps) * book.spot[i], rel=1e-4
        )
        gamma = (v_up - 2 * v0 + v_dn) / eps**2 * book.spot[i] ** 2
        assert s.dollar_gamma[i] == pytest.approx(gamma, rel=2e-3)
    h = 1.0 / 252
    assert s.theta * h == pytest.approx(revalue(book, horizon=h).sum() - s.value, rel=0.02)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"confidence": 1.0}, r"^confidence: must be in \(0, 1\)"),
        ({"confidence": "x"}, r"^confidence:"),
        ({"horizon_days": -1.0}, r"^horizon_days:"),
        ({"covariance": np.eye(3)}, r"^covariance: expected 2 x 2"),
        ({"covariance": [[0.1, math.nan], [0.0, 0.1]]}, r"^covariance\[0\]\[1\]: must be finite"),
        (
            {"covariance": [[0.1, 0.05], [0.0, 0.1]]},
            r"^covariance\[0\]\[1\]: must equal \[1\]\[0\]",
        ),
        (
            {"covariance": [[0.01, 0.5], [0.5, 0.01]]},
            r"^covariance: must be positive semi-definite",
        ),
        (
            {"covariance": CovarianceEstimate(("AAA",), np.eye(1), np.eye(1), np.ones(1))},
            r"^covariance.symbols: no entry for 'BBB'",
        ),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], message: str) -> None:
    book = book_arrays([Position(Instrument("AAA"), 1.0), Position(Instrument("BBB"), 1.0)], MARKET)
    for method in (parametric_var, cornish_fisher_var):
        with pytest.raises(ValueError, match=message):
            method(book, **kwargs)  # type: ignore[arg-type]


def test_a_correlation_that_is_not_positive_definite_is_repaired_and_said() -> None:
    m = Market(
        0.0,
        (Underlying("A", 10.0, 0.2), Underlying("B", 10.0, 0.2), Underlying("C", 10.0, 0.2)),
        [[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]],
    )
    book = book_arrays([Position(Instrument(s), 1.0) for s in "ABC"], m)
    res = parametric_var(book)
    assert res.details["correlation_repaired"] is True
    assert res.var > 0 and math.isfinite(res.expected_shortfall)
