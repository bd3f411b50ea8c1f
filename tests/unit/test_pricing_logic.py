"""PricingService logic without a server: field/index error messages and result order."""

from __future__ import annotations

import pytest
from tradecore import pricing
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_services.pricing import logic


def contract(**kw: object) -> pb.OptionContract:
    base = dict(
        spot=100.0,
        strike=100.0,
        expiry_years=1.0,
        rate=0.01,
        dividend_yield=0.0,
        volatility=0.2,
        option_type=pb.CALL,
        style=pb.EUROPEAN,
    )
    base.update(kw)
    return pb.OptionContract(**base)  # type: ignore[arg-type]


def test_results_in_order() -> None:
    req = pb.PriceRequest(contracts=[contract(strike=k) for k in (90.0, 100.0, 110.0)])
    res = logic.price(req, 1000)
    expect = pricing.european(100.0, [90.0, 100.0, 110.0], 1.0, 0.01, 0.0, 0.2, "call")
    assert [r.price for r in res.results] == expect["price"].tolist()
    assert [r.phi for r in res.results] == expect["phi"].tolist()


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("volatility", -0.2, r"contracts\[1\]\.volatility must be finite and > 0"),
        ("spot", 0.0, r"contracts\[1\]\.spot"),
        ("expiry_years", -1.0, r"contracts\[1\]\.expiry_years"),
        ("dividend_yield", float("nan"), r"contracts\[1\]\.dividend_yield"),
        ("option_type", pb.OPTION_TYPE_UNSPECIFIED, r"contracts\[1\]\.option_type"),
    ],
)
def test_errors_name_field_and_index(field: str, value: object, message: str) -> None:
    req = pb.PriceRequest(contracts=[contract(), contract(**{field: value})])
    with pytest.raises(ValueError, match=message):
        logic.price(req, 1000)


def test_limit() -> None:
    req = pb.PriceRequest(contracts=[contract()] * 11)
    with pytest.raises(ValueError, match="contracts: 11 contracts exceed the limit of 10"):
        logic.price(req, 10)
    assert len(logic.price(pb.PriceRequest(), 10).results) == 0
