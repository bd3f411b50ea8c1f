"""PricingService logic: protobuf contracts ⇄ numpy batches ⇄ tradecore.pricing.

Shared by ``Price`` and ``StreamGreeks``: the Greek selection (:func:`select_greeks`), the batch
computation over European and American rows (:func:`compute`) and the result rows
(:func:`fill_result`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from tradecore import pricing
from tradecore.errors import quote
from tradecore_api.pricing.v1 import pricing_pb2 as pb

FloatArray = npt.NDArray[np.float64]

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
TYPE_CODE = {pb.CALL: 1, pb.PUT: -1}
FIRST_ORDER: tuple[str, ...] = pricing.FIRST_ORDER_GREEKS
# The library's Greeks that PriceResult carries: all but dual_delta, dual_gamma and elasticity.
API_GREEKS: tuple[str, ...] = tuple(
    g for g in pricing.ALL_GREEKS if g in pb.PriceResult.DESCRIPTOR.fields_by_name
)
# American rows: the ALO engine's Greeks, and phi by a central difference (_price_american).
AMERICAN_GREEKS: tuple[str, ...] = tuple(
    g for g in FIRST_ORDER if g in pricing.AMERICAN_GREEKS or g == "phi"
)
_MODEL = {
    pb.PRICING_MODEL_UNSPECIFIED: "bsm",
    pb.MODEL_BSM: "bsm",
    pb.MODEL_BLACK76: "black76",
}
_PHI_BUMP = 1e-4


def model_name(model: int) -> str:
    """``"bsm"`` or ``"black76"`` for a PricingModel value (ValueError naming ``model``)."""
    name = _MODEL.get(pb.PricingModel.ValueType(model))
    if name is None:
        raise ValueError(f"model must be MODEL_BSM or MODEL_BLACK76 (got {model})")
    return name


def select_greeks(greeks: int, names: Sequence[str], model: str) -> list[str]:
    """The Greeks a request asks for, in API order for a set and request order for names."""
    library = pricing.ALL_GREEKS if model == "bsm" else pricing.BLACK76_GREEKS
    available = [g for g in API_GREEKS if g in library]
    if names:
        if greeks != pb.GREEK_SET_UNSPECIFIED:
            raise ValueError("greeks: give either greeks or greek_names, not both")
        wanted: list[str] = []
        for i, name in enumerate(names):
            if name not in available:
                why = "does not exist for MODEL_BLACK76" if name == "phi" else "is not a Greek"
                raise ValueError(
                    f"greek_names[{i}] {quote(name)} {why}; choose from {', '.join(available)}"
                )
            if name not in wanted:
                wanted.append(name)
        return wanted
    if greeks in (pb.GREEK_SET_UNSPECIFIED, pb.GREEKS_FIRST_ORDER):
        return [g for g in FIRST_ORDER if g in available]
    if greeks == pb.GREEKS_ALL:
        return list(available)
    if greeks == pb.GREEKS_NONE:
        return []
    raise ValueError(f"greeks must be GREEKS_FIRST_ORDER, GREEKS_ALL or GREEKS_NONE (got {greeks})")


@dataclass(frozen=True, slots=True)
class Batch:
    """Contracts as 1-D columns; ``american`` holds the row numbers of American contracts."""

    spot: FloatArray
    strike: FloatArray
    expiry: FloatArray
    rate: FloatArray
    dividend: FloatArray
    vol: FloatArray
    codes: npt.NDArray[np.int8]
    american: npt.NDArray[np.intp]


def check_styles(
    batch: Batch, greeks: Sequence[str], model: str, list_name: str = "contracts"
) -> None:
    """American rows: BSM only, and only the Greeks the ALO engine gives."""
    if batch.american.size == 0:
        return
    i = int(batch.american[0])
    if model != "bsm":
        raise ValueError(f"{list_name}[{i}].style AMERICAN is priced with MODEL_BSM only")
    missing = [g for g in greeks if g not in AMERICAN_GREEKS]
    if missing:
        raise ValueError(
            f"greeks: {', '.join(missing)} not available for American contracts "
            f"({list_name}[{i}].style is AMERICAN; American rows give {', '.join(AMERICAN_GREEKS)})"
        )


def compute(
    batch: Batch, greeks: Sequence[str], model: str, list_name: str = "contracts"
) -> dict[str, FloatArray]:
    """Price and the requested Greeks of every row (columns keyed by name).

    Raises ValueError naming ``<list_name>[i].<field>`` for bad input."""
    b = batch
    try:
        if model == "bsm" and all(g in FIRST_ORDER for g in greeks):
            out = pricing.european_arrays(
                b.spot, b.strike, b.expiry, b.rate, b.dividend, b.vol, b.codes, tuple(greeks)
            )
        else:
            out = pricing.european(
                b.spot, b.strike, b.expiry, b.rate, b.dividend, b.vol, b.codes,
                list(greeks), model="black76" if model == "black76" else "bsm",
            )  # fmt: skip
    except pricing.InvalidInputError as exc:
        bad = exc.invalid
        raise ValueError(
            f"{list_name}[{bad.index}].{_PROTO_FIELD[bad.field]} {bad.rule} (got {bad.value!r})"
        ) from None
    if b.american.size:
        _price_american(b, greeks, out, list_name)
    return out


def _price_american(
    b: Batch, greeks: Sequence[str], out: dict[str, FloatArray], list_name: str
) -> None:
    """Overwrite the American rows of ``out`` with the ALO engine's price and Greeks (rows in
    the double-boundary regime, which ALO does not cover, by the library's extrapolated tree).

    phi (dV/dq) is a central difference of the engine's price with a bump of 1e-4."""
    rows = b.american
    args = (b.spot[rows], b.strike[rows], b.expiry[rows], b.rate[rows])
    res = pricing.american(
        *args,
        b.dividend[rows],
        b.vol[rows],
        b.codes[rows],
        method="alo",
        greeks=any(g != "phi" for g in greeks),
    )
    for name in ("price", *greeks):
        if name != "phi":
            out[name][rows] = res[name]
    if "phi" in greeks:
        bumped = [
            pricing.american(
                *args,
                b.dividend[rows] + bump,
                b.vol[rows],
                b.codes[rows],
                method="alo",
                greeks=False,
            )["price"]
            for bump in (_PHI_BUMP, -_PHI_BUMP)
        ]
        out["phi"][rows] = (bumped[0] - bumped[1]) / (2 * _PHI_BUMP)


def result_columns(
    names: Sequence[str], out: dict[str, FloatArray], rows: npt.NDArray[np.intp] | None = None
) -> list[dict[str, float]]:
    """One ``{name: value}`` dict per row (all rows, or the given ones), for PriceResult."""
    cols = [(out[n] if rows is None else out[n][rows]).tolist() for n in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*cols, strict=True)]


def type_and_style(i: int, c: Any) -> tuple[int, bool]:
    """The option-type code and whether ``contracts[i]`` is American (ValueError naming the
    field otherwise); shared by Price and StreamGreeks."""
    code = TYPE_CODE.get(c.option_type)
    if code is None:
        raise ValueError(f"contracts[{i}].option_type must be CALL or PUT")
    if c.style == pb.AMERICAN:
        return code, True
    if c.style not in (pb.EUROPEAN, pb.EXERCISE_STYLE_UNSPECIFIED):
        raise ValueError(f"contracts[{i}].style must be EUROPEAN or AMERICAN")
    return code, False


def price(request: pb.PriceRequest, max_contracts: int) -> pb.PriceResponse:
    """Price a batch; raises ValueError naming ``contracts[i].<field>`` for bad input.

    A request of one European contract takes :func:`price_row` (scalars through the kernel,
    no arrays); anything else, and a row that path refuses, :func:`price_batch`."""
    contracts = request.contracts
    model = model_name(request.model)
    greeks = select_greeks(request.greeks, request.greek_names, model)
    if len(contracts) == 1:
        response = price_row(contracts[0], greeks, model)
        if response is not None:
            return response
    return price_batch(request, greeks, model, max_contracts)


def price_row(c: pb.OptionContract, greeks: Sequence[str], model: str) -> pb.PriceResponse | None:
    """The response for one European contract, with the same values, bit for bit, as
    :func:`price_batch` (the same kernel on a batch of one); None for a row it leaves to
    :func:`price_batch`: an American one, a Black-76 one with a dividend yield, or one the kernel
    rejects (price_batch then names the field in its error)."""
    code = TYPE_CODE.get(c.option_type)
    if code is None or c.style == pb.AMERICAN:
        return None
    if c.style != pb.EUROPEAN and c.style != pb.EXERCISE_STYLE_UNSPECIFIED:
        return None
    q = c.dividend_yield
    if model == "black76" and q != 0.0:
        return None
    try:
        row = pricing.european_row(
            c.spot, c.strike, c.expiry_years, c.rate, q, c.volatility, code,
            _row_outputs(tuple(greeks)), "black76" if model == "black76" else "bsm",
        )  # fmt: skip
    except pricing.InvalidInputError:
        return None
    response = pb.PriceResponse()
    response.results.add(**row)
    return response


@functools.lru_cache(maxsize=64)
def _row_outputs(greeks: tuple[str, ...]) -> tuple[str, ...]:
    return ("price", *greeks)


def price_batch(
    request: pb.PriceRequest, greeks: Sequence[str], model: str, max_contracts: int
) -> pb.PriceResponse:
    """Price every contract of ``request`` as numpy columns (``greeks`` and ``model`` as
    :func:`select_greeks` and :func:`model_name` give them for the request)."""
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
    american: list[int] = []
    for i, c in enumerate(contracts):
        spot[i] = c.spot
        strike[i] = c.strike
        expiry[i] = c.expiry_years
        rate[i] = c.rate
        div[i] = c.dividend_yield
        vol[i] = c.volatility
        codes[i], is_american = type_and_style(i, c)
        if is_american:
            american.append(i)
    if model == "black76":
        nonzero = np.flatnonzero(div != 0.0)
        if nonzero.size:
            i = int(nonzero[0])
            raise ValueError(
                f"contracts[{i}].dividend_yield must be 0 with MODEL_BLACK76 (got {div[i]!r})"
            )
    batch = Batch(spot, strike, expiry, rate, div, vol, codes, np.array(american, np.intp))
    check_styles(batch, greeks, model)
    out = compute(batch, greeks, model)
    response = pb.PriceResponse()
    add = response.results.add
    if greeks == list(FIRST_ORDER):  # the default: explicit keywords, no dict per row
        cols = [out["price"].tolist(), *(out[g].tolist() for g in FIRST_ORDER)]
        for p, d, g, v, t, r, ph in zip(*cols, strict=True):
            add(price=p, delta=d, gamma=g, vega=v, theta=t, rho=r, phi=ph)
    else:
        for row in result_columns(["price", *greeks], out):
            add(**row)
    return response
