"""The risk book contract: validation names the field, the columnar form, PD repair."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tradecore.risk import Instrument, Market, Position, Underlying, book_arrays, cholesky_factor
from tradecore.risk.book import CALL, KIND_AMERICAN, KIND_EQUITY, KIND_EUROPEAN, PUT

MARKET = Market(
    rate=0.03,
    underlyings=(Underlying("AAPL", 190.0, 0.25, 0.005), Underlying("MSFT", 410.0, 0.22)),
    correlation=[[1.0, 0.6], [0.6, 1.0]],
)


def _option(sym: str = "AAPL", **kw: object) -> Instrument:
    args: dict[str, object] = {
        "kind": "option",
        "option_type": "call",
        "strike": 200.0,
        "expiry_years": 0.5,
    }
    args.update(kw)
    return Instrument(sym, **args)  # type: ignore[arg-type]


def test_columns() -> None:
    book = book_arrays(
        [
            Position(Instrument("MSFT"), 10),
            Position(_option(), -2),
            Position(_option("MSFT", option_type="put", style="american"), 3, multiplier=10),
            Position(
                Instrument(
                    "AAPL240621C00200000",
                    underlying="AAPL",
                    kind="option",
                    option_type="call",
                    strike=200.0,
                    expiry_years=0.1,
                ),
                1,
            ),
        ],
        MARKET,
    )
    assert book.symbols == ("AAPL", "MSFT")
    assert list(book.underlying) == [1, 0, 1, 0]
    assert list(book.kind) == [KIND_EQUITY, KIND_EUROPEAN, KIND_AMERICAN, KIND_EUROPEAN]
    assert list(book.option_type) == [0, CALL, PUT, CALL]
    assert list(book.units) == [10.0, -200.0, 30.0, 100.0]
    assert np.isnan(book.strike[0]) and book.strike[1] == 200.0
    assert book.correlation[0, 1] == 0.6 and book.n_underlyings == 2


@pytest.mark.parametrize(
    ("positions", "market", "field"),
    [
        ([Position(Instrument("TSLA"), 1)], MARKET, "positions[0].instrument.symbol"),
        ([Position(_option(strike=-1.0), 1)], MARKET, "positions[0].instrument.strike"),
        ([Position(_option(expiry_years=0.0), 1)], MARKET, "positions[0].instrument.expiry_years"),
        (
            [Position(_option(option_type="straddle"), 1)],
            MARKET,
            "positions[0].instrument.option_type",
        ),
        ([Position(_option(style="bermudan"), 1)], MARKET, "positions[0].instrument.style"),
        ([Position(Instrument("AAPL"), float("nan"))], MARKET, "positions[0].quantity"),
        (
            [Position(Instrument("AAPL", kind="bond"), 1)],  # type: ignore[arg-type]
            MARKET,
            "positions[0].instrument.kind",
        ),
        ([], MARKET, "positions"),
        (
            [Position(Instrument("AAPL"), 1)],
            Market(0.03, MARKET.underlyings, [1.0, 0.5, 0.5]),
            "market.correlation",
        ),
        (
            [Position(Instrument("AAPL"), 1)],
            Market(0.03, MARKET.underlyings, [[1.0, 0.5], [0.4, 1.0]]),
            "market.correlation[0][1]",
        ),
        (
            [Position(Instrument("AAPL"), 1)],
            Market(0.03, MARKET.underlyings, [[1.0, 1.5], [1.5, 1.0]]),
            "market.correlation[0][1]",
        ),
        (
            [Position(Instrument("AAPL"), 1)],
            Market(0.03, (Underlying("AAPL", 0.0, 0.2),)),
            "market.underlyings[0].spot",
        ),
        (
            [Position(Instrument("AAPL"), 1)],
            Market(0.03, (Underlying("AAPL", 1.0, float("nan")),)),
            "market.underlyings[0].volatility",
        ),
        (
            [Position(Instrument("AAPL"), 1)],
            Market(float("inf"), MARKET.underlyings),
            "market.rate",
        ),
    ],
)
def test_bad_input_names_the_field(positions: list[Position], market: Market, field: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(field) + ":"):
        book_arrays(positions, market)


def test_positive_definite_matrix_is_not_repaired() -> None:
    c = np.array([[1.0, 0.6], [0.6, 1.0]])
    f = cholesky_factor(c)
    assert not f.repaired and f.repair_distance == 0.0
    np.testing.assert_allclose(f.factor @ f.factor.T, c, atol=1e-15)


def test_not_positive_definite_matrix_is_repaired_to_a_correlation() -> None:
    c = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert np.linalg.eigvalsh(c)[0] < 0
    f = cholesky_factor(c)
    assert f.repaired and f.min_eigenvalue < 0 and f.repair_distance > 0
    got = f.factor @ f.factor.T
    np.testing.assert_allclose(np.diag(got), 1.0, atol=1e-9)
    assert np.linalg.eigvalsh(f.correlation)[0] > 0
    np.testing.assert_allclose(got, f.correlation, atol=1e-9)


def test_revalue_matches_the_pricing_kernels_and_intrinsic_at_expiry() -> None:
    from tradecore.pricing import american, european
    from tradecore.risk.valuation import revalue

    book = book_arrays(
        [
            Position(Instrument("MSFT"), 10),
            Position(_option(), -2),
            Position(_option("MSFT", option_type="put", style="american", strike=420.0), 3),
            Position(_option(expiry_years=0.01), 1),
        ],
        MARKET,
    )
    now = revalue(book)
    assert now.shape == (4,)
    assert now[0] == 4100.0
    e = european(190.0, 200.0, 0.5, 0.03, 0.005, 0.25, "call", "none")["price"]
    a = american(410.0, 420.0, 0.5, 0.03, 0.0, 0.22, "put", greeks=False)["price"]
    np.testing.assert_allclose(now[1:3], [-200.0 * e, 300.0 * a], rtol=1e-14)
    spots = np.array([[180.0, 400.0], [210.0, 430.0]])
    later = revalue(book, spots, horizon=0.02)
    assert later.shape == (2, 4)
    assert later[1, 3] == 100.0 * 10.0  # expired: intrinsic of the 200 call at 210
    e2 = european(180.0, 200.0, 0.48, 0.03, 0.005, 0.25, "call", "none")["price"]
    np.testing.assert_allclose(later[0, 1], -200.0 * e2, rtol=1e-14)


def test_var_es_of_a_sample() -> None:
    from scipy.stats import norm
    from tradecore.risk.result import tail_index, var_es

    assert tail_index(100, 0.99) == 98 and tail_index(1000, 0.95) == 949
    x = np.arange(1.0, 101.0)
    var, es, _, _ = var_es(x[::-1], 0.95)
    assert var == 95.0 and es == np.mean([95.0, 96, 97, 98, 99, 100])
    z = norm.ppf((np.arange(200_000) + 0.5) / 200_000)
    var, es, vse, ese = var_es(z, 0.99)
    assert abs(var - norm.ppf(0.99)) < 1e-3
    assert abs(es - norm.pdf(norm.ppf(0.99)) / 0.01) < 1e-3
    # Stated errors match the known asymptotics for N(0,1): sqrt(c(1-c)/N)/pdf(VaR).
    assert abs(vse / (np.sqrt(0.99 * 0.01 / 200_000) / norm.pdf(norm.ppf(0.99))) - 1) < 0.1
    assert 0 < ese < 0.05
    with pytest.raises(ValueError, match=r"^confidence:"):
        var_es(z, 1.0)
    with pytest.raises(ValueError, match=r"^losses:"):
        var_es([np.nan], 0.9)
