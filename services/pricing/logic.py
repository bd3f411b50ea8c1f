"""PricingService logic: protobuf contracts ⇄ numpy batches ⇄ tradecore.pricing."""

from __future__ import annotations

import numpy as np
from tradecore import pricing
from tradecore_api.pricing.v1 import pricing_pb2 as pb

# Core field name → proto field name, for error messages.
_PROTO_FIELD = {
    "spot": "spot",
    "strike": "strike",
    "expiry": "expiry_years",
    "rate": "rate",
    "dividend": "dividend_yield",
    "volatility": "volatility",
    "option_type": "option_type",
}
_TYPE_CODE = {pb.CALL: 1, pb.PUT: -1}
_GREEKS = pricing.FIRST_ORDER_GREEKS


def price(request: pb.PriceRequest, max_contracts: int) -> pb.PriceResponse:
    """Price a batch; raises ValueError naming ``contracts[i].<field>`` for bad input."""
    contracts = request.contracts
    n = len(contracts)
    if n == 0:
        return pb.PriceResponse()
    if n > max_contracts:
        raise ValueError(f"contracts: {n} contracts exceed the limit of {max_contracts} per call")
    spot = np.empty(n)
    strike = np.empty(n)
    expiry = np.empty(n)
    rate = np.empty(n)
    div = np.empty(n)
    vol = np.empty(n)
    codes = np.empty(n, dtype=np.int8)
    for i, c in enumerate(contracts):
        spot[i] = c.spot
        strike[i] = c.strike
        expiry[i] = c.expiry_years
        rate[i] = c.rate
        div[i] = c.dividend_yield
        vol[i] = c.volatility
        code = _TYPE_CODE.get(c.option_type)
        if code is None:
            raise ValueError(f"contracts[{i}].option_type must be CALL or PUT")
        codes[i] = code
        if c.style == pb.AMERICAN:
            raise ValueError(
                f"contracts[{i}].style: AMERICAN is not supported by this server version"
            )
    try:
        out = pricing.european_arrays(spot, strike, expiry, rate, div, vol, codes, _GREEKS)
    except pricing.InvalidInputError as exc:
        bad = exc.invalid
        raise ValueError(
            f"contracts[{bad.index}].{_PROTO_FIELD[bad.field]} {bad.rule} (got {bad.value!r})"
        ) from None
    cols = [out["price"].tolist(), *(out[g].tolist() for g in _GREEKS)]
    response = pb.PriceResponse()
    results = response.results
    for p, d, g, v, t, r, ph in zip(*cols, strict=True):
        results.add(price=p, delta=d, gamma=g, vega=v, theta=t, rho=r, phi=ph)
    return response
