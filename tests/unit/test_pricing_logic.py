"""PricingService logic without a server: field/index error messages and result order."""

from __future__ import annotations

import numpy as np
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
        ("volatility", -0.2, r"contracts\[1\]\.volatility must be finite and in \[1e-08, 100\]"),
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


def test_american_rows_use_the_american_engine() -> None:
    req = pb.PriceRequest(
        contracts=[
            contract(option_type=pb.PUT, strike=110.0, rate=0.05),
            contract(option_type=pb.PUT, strike=110.0, rate=0.05, style=pb.AMERICAN),
        ]
    )
    eu, am = logic.price(req, 1000).results
    ref = pricing.american(100.0, 110.0, 1.0, 0.05, 0.0, 0.2, "put", method="alo")
    assert am.price == pytest.approx(float(ref["price"]), rel=1e-12)
    assert am.delta == pytest.approx(float(ref["delta"]), rel=1e-12)
    assert am.price > eu.price  # early exercise premium of a deep ITM put
    # phi by central difference of the engine's price
    up = pricing.american(100.0, 110.0, 1.0, 0.05, 1e-4, 0.2, "put", greeks=False)["price"]
    dn = pricing.american(100.0, 110.0, 1.0, 0.05, -1e-4, 0.2, "put", greeks=False)["price"]
    assert am.phi == pytest.approx(float((up - dn) / 2e-4), rel=1e-9)


def test_american_double_boundary_is_priced_by_the_library_default() -> None:
    req = pb.PriceRequest(
        contracts=[contract(option_type=pb.PUT, rate=-0.01, dividend_yield=-0.02, style=2)]
    )
    (row,) = logic.price(req, 1000).results
    c = req.contracts[0]
    args = (c.spot, c.strike, c.expiry_years, -0.01, -0.02, c.volatility, "put")
    ref = pricing.american(*args, method="alo")
    assert pricing.AMERICAN_ENGINES[int(ref["engine"])] == "lr_richardson"
    assert row.price == pytest.approx(float(ref["price"]), rel=1e-12)
    assert row.delta == pytest.approx(float(ref["delta"]), rel=1e-12)
    assert np.isfinite(row.phi)
