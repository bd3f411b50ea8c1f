"""PricingService logic: protobuf contracts ⇄ numpy batches ⇄ tradecore.pricing."""

from __future__ import annotations

import numpy as np
from tradecore import pricing
from tradecore_api.pricing.v1 import pricing_pb2 as pb

from ..common.errors import PreconditionError

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


_PHI_BUMP = 1e-4


def _price_american(
    rows: np.ndarray,
    spot: np.ndarray,
    strike: np.ndarray,
    expiry: np.ndarray,
    rate: np.ndarray,
    div: np.ndarray,
    vol: np.ndarray,
    codes: np.ndarray,
    out: dict[str, np.ndarray],
) -> None:
    """Overwrite the American rows of ``out`` with the ALO engine's price and Greeks.

    phi (dV/dq) is a central difference of the engine's price with a bump of 1e-4."""
    args = (spot[rows], strike[rows], expiry[rows], rate[rows])
    res = pricing.american(
        *args, div[rows], vol[rows], codes[rows], method="alo", greeks=True, unsupported="nan"
    )
    unsupported = np.flatnonzero(res["status"] != 0)
    if unsupported.size:
        i = int(rows[unsupported[0]])
        raise PreconditionError(
            f"contracts[{i}]: American exercise with rate={rate[i]!r} and "
            f"dividend_yield={div[i]!r} has two exercise boundaries, which the server's "
            "ALO engine does not price"
        )
    up = pricing.american(
        *args,
        div[rows] + _PHI_BUMP,
        vol[rows],
        codes[rows],
        method="alo",
        greeks=False,
        unsupported="nan",
    )["price"]
    dn = pricing.american(
        *args,
        div[rows] - _PHI_BUMP,
        vol[rows],
        codes[rows],
        method="alo",
        greeks=False,
        unsupported="nan",
    )["price"]
    for name in ("price", "delta", "gamma", "theta", "vega", "rho"):
        out[name][rows] = res[name]
    out["phi"][rows] = (up - dn) / (2 * _PHI_BUMP)


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
    american_rows = [i for i, c in enumerate(contracts) if c.style == pb.AMERICAN]
    try:
        out = pricing.european_arrays(spot, strike, expiry, rate, div, vol, codes, _GREEKS)
    except pricing.InvalidInputError as exc:
        bad = exc.invalid
        raise ValueError(
            f"contracts[{bad.index}].{_PROTO_FIELD[bad.field]} {bad.rule} (got {bad.value!r})"
        ) from None
    if american_rows:
        _price_american(np.asarray(american_rows), spot, strike, expiry, rate, div, vol, codes, out)
    cols = [out["price"].tolist(), *(out[g].tolist() for g in _GREEKS)]
    response = pb.PriceResponse()
    results = response.results
    for p, d, g, v, t, r, ph in zip(*cols, strict=True):
        results.add(price=p, delta=d, gamma=g, vega=v, theta=t, rho=r, phi=ph)
    return response
