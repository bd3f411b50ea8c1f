"""Historical, filtered historical and EVT VaR against hand computations: order statistics of
hand-built losses, a hand EWMA rescaling, option repricing by the pricing kernel directly, and
GPD fits recovering known tails."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from tradecore.pricing import european
from tradecore.risk.book import Instrument, Market, Position, Underlying, book_arrays
from tradecore.risk.historical import evt_tail, evt_var, filtered_returns, historical_var

MARKET = Market(0.02, (Underlying("AAA", 100.0, 0.25), Underlying("BBB", 40.0, 0.4, 0.01)))


def _stock_book(shares: float = 10.0, spot: float = 100.0):  # type: ignore[no-untyped-def]
    return book_arrays(
        [Position(Instrument("AAA"), shares)], Market(0.02, (Underlying("AAA", spot, 0.25),))
    )


def _hand_var_es(losses: np.ndarray, c: float) -> tuple[float, float]:
    x = sorted(losses.tolist())
    k = math.ceil(c * len(x)) - 1  # the ceil(cN)-th smallest, 0-based
    return x[k], sum(x[k:]) / len(x[k:])


@pytest.mark.parametrize(("c", "horizon"), [(0.95, 1.0), (0.99, 1.0), (0.975, 4.0)])
def test_one_stock_historical_var_is_the_order_statistic(c: float, horizon: float) -> None:
    rng = np.random.default_rng(1)
    r = rng.standard_t(5, 500) * 0.012
    book = _stock_book()
    res = historical_var(book, r[:, None], confidence=c, horizon_days=horizon)
    # Scenario: 100 exp(r sqrt(horizon)); loss of 10 shares = 10 (100 - that).
    losses = 10.0 * (100.0 - 100.0 * np.exp(r * math.sqrt(horizon)))
    var, es = _hand_var_es(losses, c)
    assert res.var == pytest.approx(var, rel=1e-12)
    assert res.expected_shortfall == pytest.approx(es, rel=1e-12)
    assert res.method == "historical" and res.scenarios == 500 and res.value == 1000.0
    assert res.var_stderr > 0 and res.es_stderr > 0


def test_option_book_scenarios_are_repriced_at_the_horizon() -> None:
    book = book_arrays(
        [
            Position(Instrument("AAA"), -30.0),
            Position(
                Instrument(
                    "C", "option", "call", strike=105.0, expiry_years=0.25, underlying="AAA"
                ),
                2.0,
            ),
            Position(
                Instrument("P", "option", "put", strike=38.0, expiry_years=0.1, underlying="BBB"),
                -3.0,
            ),
        ],
        MARKET,
    )
    rng = np.random.default_rng(2)
    r = rng.normal(0.0, 0.02, (300, 2))
    hd, h = 5.0, 5.0 / 252
    res = historical_var(book, r, confidence=0.99, horizon_days=hd)
    s = np.array([100.0, 40.0]) * np.exp(r * math.sqrt(hd))
    call = european(s[:, 0], 105.0, 0.25 - h, 0.02, 0.0, 0.25, "call", "none")["price"]
    put = european(s[:, 1], 38.0, 0.1 - h, 0.02, 0.01, 0.4, "put", "none")["price"]
    call0 = european(100.0, 105.0, 0.25, 0.02, 0.0, 0.25, "call", "none")["price"]
    put0 = european(40.0, 38.0, 0.1, 0.02, 0.01, 0.4, "put", "none")["price"]
    now = -30 * 100.0 + 200 * call0 - 300 * put0
    later = -30 * s[:, 0] + 200 * call - 300 * put
    var, es = _hand_var_es(now - later, 0.99)
    assert res.value == pytest.approx(now, rel=1e-12)
    assert res.var == pytest.approx(var, rel=1e-10)
    assert res.expected_shortfall == pytest.approx(es, rel=1e-10)


def test_filtered_historical_rescales_by_ewma_volatility() -> None:
    rng = np.random.default_rng(3)
    r = rng.normal(0.0, 0.01, (260, 2))
    r[-20:] *= 3.0  # a volatile last month
    lam = 0.94
    v = (r * r).mean(axis=0)
    scaled_by = []
    for t in range(len(r)):
        scaled_by.append(np.sqrt(v))
        v = lam * v + (1 - lam) * r[t] ** 2
    today = np.sqrt(v)
    expected = r * today / np.array(scaled_by)
    np.testing.assert_allclose(filtered_returns(r, lam), expected, rtol=1e-12)
    book = book_arrays(
        [Position(Instrument("AAA"), 5.0), Position(Instrument("BBB"), -8.0)], MARKET
    )
    res = historical_var(book, r, confidence=0.99, filtered=True, ewma_lambda=lam)
    spot = np.array([100.0, 40.0]) * np.exp(expected)
    losses = 5 * (100.0 - spot[:, 0]) - 8 * (40.0 - spot[:, 1])
    var, es = _hand_var_es(losses, 0.99)
    assert res.method == "filtered_historical"
    assert res.var == pytest.approx(var, rel=1e-10)
    assert res.expected_shortfall == pytest.approx(es, rel=1e-10)
    # The volatile present scales the calm past up.
    assert res.var > 1.5 * historical_var(book, r, confidence=0.99).var


def test_evt_recovers_a_generalised_pareto_tail() -> None:
    xi, beta = 0.3, 2.0
    x = stats.genpareto.rvs(xi, scale=beta, size=100_000, random_state=np.random.default_rng(5))
    var, es, d = evt_tail(x, confidence=0.999, threshold=0.5)
    assert d["shape"] == pytest.approx(xi, abs=0.05)
    assert d["exceedances"] == 50_000
    true_var = stats.genpareto.ppf(0.999, xi, scale=beta)
    true_es = (true_var + beta) / (1 - xi)  # ES of a GPD from 0
    assert var == pytest.approx(true_var, rel=0.05)
    assert es == pytest.approx(true_es, rel=0.08)
    # ES is the mean of the fitted tail's quantile beyond the VaR level.
    u, b, k, frac = d["threshold_loss"], d["scale"], d["shape"], d["exceedances"] / x.size

    def tail_quantile(p: float) -> float:
        return u + b / k * (((1 - p) / frac) ** (-k) - 1)

    assert tail_quantile(0.999) == pytest.approx(var, rel=1e-12)
    mean_beyond = integrate.quad(tail_quantile, 0.999, 1.0, limit=200)[0] / 0.001
    assert es == pytest.approx(mean_beyond, rel=1e-6)


def test_evt_var_of_student_t_losses() -> None:
    # Losses of 1 share at 1000 made exactly Student-t (df 4: tail index xi = 1/4) by choosing
    # the returns: 1000 (1 - exp(r)) = 10 t.
    t = stats.t.rvs(4, size=100_000, random_state=np.random.default_rng(6))
    r = np.log1p(-10.0 * t / 1000.0)
    book = _stock_book(1.0, 1000.0)
    res = evt_var(book, r[:, None], confidence=0.999, threshold=0.95)
    assert res.details["shape"] == pytest.approx(0.25, abs=0.1)
    assert res.details["exceedances"] == 5000
    assert res.var == pytest.approx(10 * stats.t.ppf(0.999, 4), rel=0.05)
    tail = stats.t.expect(lambda v: v, args=(4,), lb=stats.t.ppf(0.999, 4)) / 0.001
    assert res.expected_shortfall == pytest.approx(10 * tail, rel=0.08)
    assert res.method == "evt" and res.scenarios == 100_000
    assert res.details["historical_var"] == pytest.approx(_hand_var_es(10 * t, 0.999)[0], rel=1e-9)


def test_evt_exponential_tail_uses_the_xi_zero_limit() -> None:
    x = stats.expon.rvs(scale=3.0, size=50_000, random_state=np.random.default_rng(8))
    var, es, d = evt_tail(x, confidence=0.999, threshold=0.9)
    assert abs(d["shape"]) < 0.05
    assert var == pytest.approx(3.0 * math.log(1000.0), rel=0.04)
    assert es == pytest.approx(var + 3.0, rel=0.04)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"returns": [[0.01, 0.02]] * 200}, r"^returns: expected 1 columns"),
        ({"returns": [[math.nan]] + [[0.01]] * 199}, r"^returns\[0\]\[0\]: must be finite"),
        ({"returns": [[0.01]] * 50}, r"^returns: 50 days leave no loss beyond .*need at least 100"),
        ({"confidence": 1.0}, r"^confidence: must be in \(0, 1\)"),
        ({"confidence": -0.5}, r"^confidence:"),
        ({"horizon_days": 0.0}, r"^horizon_days:"),
        ({"horizon_days": math.inf}, r"^horizon_days:"),
        ({"returns": [[800.0]] * 200}, r"^returns: a return scaled to the horizon"),
        ({"filtered": True, "ewma_lambda": 1.2}, r"^ewma_lambda:"),
    ],
)
def test_historical_bad_input_names_the_field(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"returns": np.full((200, 1), 0.01), **kwargs}
    with pytest.raises(ValueError, match=message):
        historical_var(_stock_book(), **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("days", "kwargs", "message"),
    [
        (100, {}, r"^returns: 100 observations leave 10 losses .* at least 20 \(at least 200"),
        (500, {"confidence": 0.9}, r"^confidence: must be above the EVT threshold"),
        (500, {"threshold": 1.0}, r"^threshold: must be in \(0, 1\)"),
        (500, {"confidence": 2.0}, r"^confidence:"),
    ],
)
def test_evt_bad_input_names_the_field(days: int, kwargs: dict[str, object], message: str) -> None:
    r = np.random.default_rng(9).normal(0, 0.01, (days, 1))
    with pytest.raises(ValueError, match=message):
        evt_var(_stock_book(), r, **kwargs)  # type: ignore[arg-type]
    flat = np.zeros((500, 1))
    with pytest.raises(
        ValueError, match=r"^returns: the losses above the EVT threshold are all equal"
    ):
        evt_var(_stock_book(), flat)
