"""Protobuf <-> library for the RiskService: RiskPosition / MarketState -> the validated
:class:`tradecore.risk.book.Book`, and library results -> response messages.

Field names in error messages are the proto (and JSON) names: the library's
``positions[3].instrument.strike`` is what the caller wrote. Enum defaults follow the proto
comments: an unset style is EUROPEAN; an unset kind is an error (a position must say what it
holds); an option needs its option_type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from tradecore.risk.book import Book, Instrument, Market, Position, Underlying, book_arrays
from tradecore.risk.montecarlo import Device
from tradecore.risk.result import VaRResult
from tradecore_api.events.v1 import common_pb2 as events
from tradecore_api.risk.v1 import risk_pb2 as pb

_KINDS: dict[int, Literal["equity", "option"]] = {events.EQUITY: "equity", events.OPTION: "option"}
_TYPES: dict[int, Literal["call", "put"]] = {events.CALL: "call", events.PUT: "put"}
_STYLES: dict[int, Literal["european", "american"]] = {
    pb.EXERCISE_STYLE_UNSPECIFIED: "european",
    pb.EUROPEAN: "european",
    pb.AMERICAN: "american",
}
#: VaRMethod -> the library's method name (VaRResult.method); UNSPECIFIED is MONTE_CARLO.
METHODS: dict[pb.VaRMethod, str] = {
    pb.VAR_METHOD_UNSPECIFIED: "monte_carlo",
    pb.MONTE_CARLO: "monte_carlo",
    pb.DELTA_GAMMA: "delta_gamma",
    pb.HISTORICAL: "historical",
    pb.FILTERED_HISTORICAL: "filtered_historical",
    pb.PARAMETRIC: "parametric",
    pb.CORNISH_FISHER: "cornish_fisher",
    pb.EVT: "evt",
}
_METHOD_ENUM = {name: value for value, name in METHODS.items() if value}
#: Device -> the library's ``device`` argument; UNSPECIFIED is CPU.
DEVICES: dict[pb.Device, Device] = {
    pb.DEVICE_UNSPECIFIED: "cpu",
    pb.CPU: "cpu",
    pb.GPU: "cuda",
    pb.AUTO: "auto",
}
_DEVICE_ENUM = {"cpu": pb.CPU, "cuda": pb.GPU, "gpu": pb.GPU}


def enum_name(enum: object, value: int) -> str:
    try:
        return str(enum.Name(value))  # type: ignore[attr-defined]
    except ValueError:
        return str(value)


def instrument(msg: pb.RiskInstrument, at: str) -> Instrument:
    """A RiskInstrument as the library's Instrument (``at`` names it in errors)."""
    kind = _KINDS.get(msg.kind)
    if kind is None:
        raise ValueError(
            f"{at}.kind: must be EQUITY or OPTION, got {enum_name(events.InstrumentKind, msg.kind)}"
        )
    style = _STYLES.get(msg.style)
    if style is None:
        raise ValueError(f"{at}.style: must be EUROPEAN or AMERICAN, got {msg.style}")
    if kind == "equity":
        return Instrument(symbol=msg.symbol, kind="equity", underlying=msg.underlying)
    option_type = _TYPES.get(msg.option_type)
    if option_type is None:
        raise ValueError(
            f"{at}.option_type: must be CALL or PUT for an option, "
            f"got {enum_name(events.OptionRight, msg.option_type)}"
        )
    return Instrument(
        symbol=msg.symbol,
        kind="option",
        option_type=option_type,
        style=style,
        strike=msg.strike,
        expiry_years=msg.expiry_years,
        underlying=msg.underlying,
    )


def positions(msgs: Sequence[pb.RiskPosition], at: str = "positions") -> list[Position]:
    out = []
    for i, p in enumerate(msgs):
        where = f"{at}[{i}]"
        if not p.HasField("instrument"):
            raise ValueError(f"{where}.instrument: required")
        out.append(
            Position(
                instrument=instrument(p.instrument, f"{where}.instrument"),
                quantity=p.quantity,
                multiplier=p.multiplier if p.HasField("multiplier") else None,
            )
        )
    return out


def market(msg: pb.MarketState) -> Market:
    """A MarketState as the library's Market (an empty correlation: independent)."""
    return Market(
        rate=msg.rate,
        underlyings=tuple(
            Underlying(u.symbol, u.spot, u.volatility, u.dividend_yield) for u in msg.underlyings
        ),
        correlation=list(msg.correlation) if msg.correlation else None,
    )


def book(
    position_msgs: Sequence[pb.RiskPosition],
    market_msg: pb.MarketState,
    *,
    at: str = "positions",
    market_at: str = "market",
) -> Book:
    """The validated Book of a request's positions and market. The library names fields
    ``positions[...]`` and ``market...``; a request whose fields are called otherwise (a
    batch's ``books[2].positions``, attribution's ``before``) gets its own names back."""
    try:
        return book_arrays(positions(position_msgs, "positions"), market(market_msg))
    except ValueError as exc:
        text = str(exc)
        if at != "positions" and text.startswith("positions"):
            text = at + text[len("positions") :]
        elif market_at != "market" and text.startswith("market"):
            text = market_at + text[len("market") :]
        else:
            raise
        raise ValueError(text) from exc


def finite_or_zero(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def details(values: Mapping[str, object]) -> dict[str, float]:
    """The numeric (and boolean) details of a result, finite ones only (JSON has no NaN)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, bool | int | float) and math.isfinite(float(value)):
            out[str(key)] = float(value)
    return out


def var_response(result: VaRResult) -> pb.ComputeVaRResponse:
    """A VaRResult as the RPC's response (standard errors a method has none of are 0)."""
    d = result.details
    return pb.ComputeVaRResponse(
        var=result.var,
        expected_shortfall=result.expected_shortfall,
        var_stderr=finite_or_zero(result.var_stderr),
        es_stderr=finite_or_zero(result.es_stderr),
        value=finite_or_zero(result.value),
        paths=max(int(result.scenarios), 0),
        device=_DEVICE_ENUM.get(result.device, pb.CPU),
        method=_METHOD_ENUM.get(result.method, pb.VAR_METHOD_UNSPECIFIED),
        confidence=result.confidence,
        horizon_days=result.horizon_days,
        correlation_repaired=bool(d.get("correlation_repaired", False)),
        interpolation_error=finite_or_zero(float(d.get("interpolation_error", 0.0) or 0.0)),
        details=details(d),
    )


def instrument_msg(ins: Instrument) -> pb.RiskInstrument:
    """The library's Instrument as a RiskInstrument."""
    if ins.kind == "equity":
        return pb.RiskInstrument(symbol=ins.symbol, kind=events.EQUITY, underlying=ins.underlying)
    return pb.RiskInstrument(
        symbol=ins.symbol,
        kind=events.OPTION,
        option_type=events.CALL if ins.option_type == "call" else events.PUT,
        style=pb.AMERICAN if ins.style == "american" else pb.EUROPEAN,
        strike=ins.strike,
        expiry_years=ins.expiry_years,
        underlying=ins.underlying,
    )


def position_msg(p: Position) -> pb.RiskPosition:
    out = pb.RiskPosition(instrument=instrument_msg(p.instrument), quantity=p.quantity)
    if p.multiplier is not None:
        out.multiplier = p.multiplier
    return out
