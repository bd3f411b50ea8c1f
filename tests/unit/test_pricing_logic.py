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


def _random_rows(rng: np.random.Generator, n: int) -> list[pb.OptionContract]:
    return [
        contract(
            spot=float(rng.uniform(1.0, 500.0)),
            strike=float(rng.uniform(1.0, 500.0)),
            expiry_years=float(rng.choice([0.0, 1e-6, rng.uniform(0.01, 5.0), 30.0])),
            rate=float(rng.uniform(-0.05, 0.15)),
            dividend_yield=float(rng.choice([0.0, rng.uniform(-0.02, 0.1)])),
            volatility=float(rng.uniform(0.01, 2.0)),
            option_type=pb.CALL if rng.random() < 0.5 else pb.PUT,
            style=pb.EUROPEAN if rng.random() < 0.5 else pb.EXERCISE_STYLE_UNSPECIFIED,
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize(
    "greeks,names",
    [
        (pb.GREEK_SET_UNSPECIFIED, []),
        (pb.GREEKS_ALL, []),
        (pb.GREEKS_NONE, []),
        (pb.GREEK_SET_UNSPECIFIED, ["veta", "delta", "vanna"]),
    ],
)
@pytest.mark.parametrize("model", [pb.MODEL_BSM, pb.MODEL_BLACK76])
def test_one_contract_row_path_equals_the_batch_path_bit_for_bit(
    greeks: int, names: list[str], model: int
) -> None:
    rng = np.random.default_rng(20261121 + greeks + 7 * model)
    model_name = logic.model_name(model)
    wanted = logic.select_greeks(greeks, names, model_name)
    for c in _random_rows(rng, 300):
        if model == pb.MODEL_BLACK76:
            c.dividend_yield = 0.0
        req = pb.PriceRequest(contracts=[c], model=model, greeks=greeks, greek_names=names)
        assert logic.price_row(c, wanted, model_name) is not None  # the row path was taken
        fast = logic.price(req, 1000)
        batch = logic.price_batch(req, wanted, model_name, 1000)
        assert fast.SerializeToString() == batch.SerializeToString(), c


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("volatility", -0.2, r"contracts\[0\]\.volatility must be finite and in \[1e-08, 100\]"),
        ("spot", float("inf"), r"contracts\[0\]\.spot"),
        ("option_type", pb.OPTION_TYPE_UNSPECIFIED, r"contracts\[0\]\.option_type"),
        ("style", 7, r"contracts\[0\]\.style must be EUROPEAN or AMERICAN"),
    ],
)
def test_one_bad_contract_is_named_as_in_a_batch(field: str, value: object, message: str) -> None:
    req = pb.PriceRequest(contracts=[contract(**{field: value})])
    with pytest.raises(ValueError, match=message):
        logic.price(req, 1000)


def test_one_contract_rows_the_row_path_leaves_to_the_batch_path() -> None:
    american = contract(style=pb.AMERICAN)
    assert logic.price_row(american, list(logic.FIRST_ORDER), "bsm") is None
    assert logic.price(pb.PriceRequest(contracts=[american]), 10).results[0].price > 0
    b76 = pb.PriceRequest(contracts=[contract(dividend_yield=0.01)], model=pb.MODEL_BLACK76)
    with pytest.raises(ValueError, match=r"contracts\[0\]\.dividend_yield must be 0"):
        logic.price(b76, 10)
