"""The RiskService's request handling without a server: protobuf <-> library conversion
(services/risk/convert.py) and the stateless methods (services/risk/analytics.py)."""

from __future__ import annotations

import math

import pytest
from tradecore.risk.result import VaRResult
from tradecore_api.events.v1 import common_pb2 as events
from tradecore_api.risk.v1 import risk_pb2 as pb
from tradecore_services.risk import convert


def option(
    symbol: str = "AAA",
    strike: float = 100.0,
    expiry: float = 0.5,
    right: int = events.CALL,
    style: int = pb.EXERCISE_STYLE_UNSPECIFIED,
    quantity: float = 10.0,
) -> pb.RiskPosition:
    return pb.RiskPosition(
        instrument=pb.RiskInstrument(
            symbol=symbol,
            kind=events.OPTION,
            option_type=right,
            style=style,
            strike=strike,
            expiry_years=expiry,
        ),
        quantity=quantity,
    )


def equity(symbol: str = "AAA", quantity: float = 100.0) -> pb.RiskPosition:
    return pb.RiskPosition(
        instrument=pb.RiskInstrument(symbol=symbol, kind=events.EQUITY), quantity=quantity
    )


def market(n: int = 2, correlation: list[float] | None = None) -> pb.MarketState:
    symbols = ["AAA", "BBB", "CCC", "DDD"][:n]
    return pb.MarketState(
        rate=0.03,
        underlyings=[
            pb.UnderlyingMarket(symbol=s, spot=100.0 + 10 * i, volatility=0.2 + 0.05 * i)
            for i, s in enumerate(symbols)
        ],
        correlation=correlation or [],
    )


def test_positions_and_market_become_the_library_book() -> None:
    m = market(2, [1.0, 0.3, 0.3, 1.0])
    p = [option(), equity("BBB"), option("BBB", style=pb.AMERICAN, right=events.PUT)]
    p[2].multiplier = 10.0
    book = convert.book(p, m)
    assert book.symbols == ("AAA", "BBB")
    assert list(book.underlying) == [0, 1, 1]
    assert list(book.kind) == [1, 0, 2]  # European (unset style), equity, American
    assert list(book.option_type) == [1, 0, -1]
    assert list(book.units) == [1000.0, 100.0, 100.0]  # option multiplier: 100 unless set
    assert book.correlation[0, 1] == 0.3
    assert book.rate == 0.03


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p, m: setattr(p[1].instrument, "symbol", "ZZZ"), "positions[1].instrument.symbol"),
        (lambda p, m: setattr(p[1].instrument, "strike", -1.0), "positions[1].instrument.strike"),
        (
            lambda p, m: setattr(p[1].instrument, "expiry_years", 0.0),
            "positions[1].instrument.expiry_years",
        ),
        (lambda p, m: setattr(p[0], "quantity", math.nan), "positions[0].quantity"),
        (lambda p, m: setattr(p[1].instrument, "kind", 0), "positions[1].instrument.kind"),
        (
            lambda p, m: setattr(p[1].instrument, "kind", events.FUTURE),
            "positions[1].instrument.kind",
        ),
        (
            lambda p, m: setattr(p[1].instrument, "option_type", 0),
            "positions[1].instrument.option_type",
        ),
        (lambda p, m: p[1].ClearField("instrument"), "positions[1].instrument"),
        (lambda p, m: m.correlation.extend([1.0, 0.2, 0.2]), "market.correlation"),
        (lambda p, m: setattr(m.underlyings[1], "spot", math.inf), "market.underlyings[1].spot"),
        (lambda p, m: setattr(m, "rate", math.nan), "market.rate"),
    ],
)
def test_bad_input_names_the_field(change: object, field: str) -> None:
    p = [equity(), option("BBB")]
    m = market(2)
    change(p, m)  # type: ignore[operator]
    with pytest.raises(ValueError) as info:
        convert.book(p, m)
    assert str(info.value).startswith(field + ":") or str(info.value).startswith(field + "["), (
        info.value
    )


def test_a_batch_book_names_its_own_fields() -> None:
    with pytest.raises(ValueError, match=r"^books\[2\]\.positions\[0\]\.instrument\.strike: "):
        convert.book([option(strike=0.0)], market(1), at="books[2].positions")
    with pytest.raises(ValueError, match=r"^before\.underlyings\[0\]\.spot: "):
        m = market(1)
        m.underlyings[0].spot = -1.0
        convert.book([option()], m, market_at="before")


def test_a_var_result_becomes_the_response() -> None:
    result = VaRResult(
        method="delta_gamma",
        confidence=0.99,
        horizon_days=10.0,
        var=12.5,
        expected_shortfall=15.0,
        var_stderr=0.1,
        es_stderr=math.nan,
        value=1000.0,
        scenarios=100_000,
        device="cuda",
        details={
            "correlation_repaired": True,
            "repair_distance": 0.02,
            "note": "x",
            "bad": math.nan,
        },
    )
    r = convert.var_response(result)
    assert (r.var, r.expected_shortfall, r.var_stderr, r.es_stderr) == (12.5, 15.0, 0.1, 0.0)
    assert (r.value, r.paths, r.device, r.method) == (1000.0, 100_000, pb.GPU, pb.DELTA_GAMMA)
    assert (r.confidence, r.horizon_days, r.correlation_repaired) == (0.99, 10.0, True)
    assert dict(r.details) == {"correlation_repaired": 1.0, "repair_distance": 0.02}
