"""ImpliedVol: a batch of European option prices → implied vols with a status per row."""

from __future__ import annotations

import numpy as np
from tradecore import pricing
from tradecore.pricing import DOMAIN
from tradecore_api.pricing.v1 import pricing_pb2 as pb

from .logic import TYPE_CODE, model_name
from .validate import check_count, check_rows

# tradecore.pricing.IVStatus → ImpliedVolStatus
_STATUS = {
    pricing.IVStatus.OK: pb.IV_OK,
    pricing.IVStatus.BELOW_INTRINSIC: pb.IV_BELOW_INTRINSIC,
    pricing.IVStatus.ABOVE_UPPER: pb.IV_ABOVE_UPPER,
    pricing.IVStatus.NON_POSITIVE: pb.IV_NON_POSITIVE,
}


def implied_vol(request: pb.ImpliedVolRequest, max_contracts: int) -> pb.ImpliedVolResponse:
    """Raises ValueError naming ``options[i].<field>`` for input no price could fix (non-finite
    numbers, spot/strike/expiry/rate/dividend outside tradecore.pricing.DOMAIN, a missing
    option type); prices outside the no-arbitrage
    bounds get a row status instead."""
    options = request.options
    n = len(options)
    model = model_name(request.model)
    check_count("options", n, max_contracts, "options")
    response = pb.ImpliedVolResponse()
    if n == 0:
        return response
    price = np.empty(n)
    spot = np.empty(n)
    strike = np.empty(n)
    expiry = np.empty(n)
    rate = np.empty(n)
    div = np.empty(n)
    codes = np.empty(n, dtype=np.int8)
    for i, o in enumerate(options):
        price[i] = o.price
        spot[i] = o.spot
        strike[i] = o.strike
        expiry[i] = o.expiry_years
        rate[i] = o.rate
        div[i] = o.dividend_yield
        code = TYPE_CODE.get(o.option_type)
        if code is None:
            raise ValueError(f"options[{i}].option_type must be CALL or PUT")
        codes[i] = code
    div_check = (
        ("dividend_yield", div, div == 0, "== 0 with MODEL_BLACK76")
        if model == "black76"
        else ("dividend_yield", div, DOMAIN.rate_ok(div), DOMAIN.rate_rule)
    )
    check_rows(
        "options",
        [
            ("price", price, None, "must be finite"),
            ("spot", spot, DOMAIN.spot_ok(spot), DOMAIN.spot_rule),
            ("strike", strike, DOMAIN.strike_ok(strike), DOMAIN.strike_rule),
            ("expiry_years", expiry, DOMAIN.expiry_ok(expiry), DOMAIN.expiry_rule),
            ("rate", rate, DOMAIN.rate_ok(rate), DOMAIN.rate_rule),
            div_check,
        ],
    )
    res = pricing.implied_vol(
        price,
        spot,
        strike,
        expiry,
        rate,
        div,
        codes,
        model="black76" if model == "black76" else "bsm",
    )
    status = res.status.tolist()
    vols = res.vol.tolist()
    add = response.results.add
    for i, (v, s) in enumerate(zip(vols, status, strict=True)):
        code = _STATUS.get(pricing.IVStatus(s))
        if code is None:  # INVALID_INPUT cannot pass the checks above
            raise ValueError(f"options[{i}] is not a valid option (row status {s})")
        if code == pb.IV_OK:
            add(volatility=v, status=code)
        else:
            add(status=code)
    counts = response.counts
    counts.ok = res.counts.get("ok", 0)
    counts.below_intrinsic = res.counts.get("below_intrinsic", 0)
    counts.above_upper = res.counts.get("above_upper", 0)
    counts.non_positive = res.counts.get("non_positive", 0)
    return response
