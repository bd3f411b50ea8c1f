"""Between the execution API (tradecore.execution.v1, events.v1 enums) and the library's order
vocabulary (``tradecore.oms.types``): enum maps both ways, and the checks of an order request,
each error naming the field as the caller wrote it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from tradecore.errors import quote
from tradecore.oms.pretrade import Limits
from tradecore.oms.types import OrderStatus, OrderType, Side, TimeInForce
from tradecore.subjects import validate_token
from tradecore_api.events.v1 import common_pb2
from tradecore_api.events.v1 import execution_pb2 as events
from tradecore_api.events.v1 import risk_pb2 as risk_events
from tradecore_api.execution.v1 import execution_pb2 as pb

#: The venues an order may name; one this service does not run (ALPACA without credentials)
#: is FAILED_PRECONDITION naming `venue` (live.py).
VENUES: dict[int, str] = {pb.PAPER: "PAPER", pb.ALPACA: "ALPACA"}
MAX_CLIENT_ORDER_ID = 128
MAX_LEGS = 4
MAX_QUANTITY = 10**12
#: The client order ids of algo children (algos.py) begin with it; SubmitOrder refuses it.
ALGO_CHILD_PREFIX = "ALGO-"

SIDES: dict[int, Side] = {common_pb2.BUY: Side.BUY, common_pb2.SELL: Side.SELL}
TYPES: dict[int, OrderType] = {
    events.MARKET: OrderType.MARKET,
    events.LIMIT: OrderType.LIMIT,
    events.STOP: OrderType.STOP,
    events.STOP_LIMIT: OrderType.STOP_LIMIT,
}
TIFS: dict[int, TimeInForce] = {
    events.DAY: TimeInForce.DAY,
    events.GTC: TimeInForce.GTC,
    events.IOC: TimeInForce.IOC,
    events.FOK: TimeInForce.FOK,
}
SIDE_OF: dict[Side, common_pb2.Side] = {
    Side.BUY: common_pb2.BUY,
    Side.SELL: common_pb2.SELL,
}
TYPE_OF: dict[OrderType, events.OrderType] = {
    OrderType.MARKET: events.MARKET,
    OrderType.LIMIT: events.LIMIT,
    OrderType.STOP: events.STOP,
    OrderType.STOP_LIMIT: events.STOP_LIMIT,
}
TIF_OF: dict[TimeInForce, events.TimeInForce] = {
    TimeInForce.DAY: events.DAY,
    TimeInForce.GTC: events.GTC,
    TimeInForce.IOC: events.IOC,
    TimeInForce.FOK: events.FOK,
}
VENUE_OF: dict[str, pb.Venue] = {"PAPER": pb.PAPER, "ALPACA": pb.ALPACA}
#: The library's states to the events' (SUBMITTED is the events' PENDING_NEW).
STATUSES: dict[OrderStatus, events.OrderStatus] = {
    OrderStatus.INITIALIZED: events.INITIALIZED,
    OrderStatus.DENIED: events.DENIED,
    OrderStatus.SUBMITTED: events.PENDING_NEW,
    OrderStatus.ACCEPTED: events.ACCEPTED,
    OrderStatus.REJECTED: events.REJECTED,
    OrderStatus.PARTIALLY_FILLED: events.PARTIALLY_FILLED,
    OrderStatus.FILLED: events.FILLED,
    OrderStatus.PENDING_CANCEL: events.PENDING_CANCEL,
    OrderStatus.CANCELED: events.CANCELED,
    OrderStatus.PENDING_REPLACE: events.PENDING_REPLACE,
    OrderStatus.REPLACED: events.REPLACED,
    OrderStatus.EXPIRED: events.EXPIRED,
}
STATUS_OF: dict[int, OrderStatus] = {v: k for k, v in STATUSES.items()}

#: Trading modes from least to most strict.
_STRICTNESS: dict[int, int] = {
    risk_events.ENABLED: 0,
    risk_events.REDUCE_ONLY: 1,
    risk_events.HALTED: 2,
}


@dataclass(frozen=True, slots=True)
class LegSpec:
    symbol: str
    side: Side
    ratio: int


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """A checked SubmitOrderRequest in the library's vocabulary."""

    account: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: int
    type: OrderType
    time_in_force: TimeInForce
    venue: str
    limit_price: float | None = None
    stop_price: float | None = None
    legs: tuple[LegSpec, ...] = ()


def _enum(name: str, value: int, values: Mapping[int, object], what: str) -> None:
    if value not in values:
        raise ValueError(f"{name}: must be {what}, got {quote(value)}")


def _price(name: str, value: float) -> float:
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name}: must be a finite number > 0, got {quote(value)}")
    return float(value)


def account(name: str, value: str) -> str:
    return validate_token(name, value)


def venue(value: int) -> str:
    """The venue's name (PAPER when unspecified)."""
    if value == pb.VENUE_UNSPECIFIED:
        return VENUES[pb.PAPER]
    if value in VENUES:
        return VENUES[value]
    raise ValueError(f"venue: must be PAPER or ALPACA, got {quote(value)}")


def order_spec(req: pb.SubmitOrderRequest) -> OrderSpec:
    """``req`` checked field by field (ValueError naming the first bad field)."""
    account("account", req.account)
    if not req.client_order_id:
        raise ValueError("client_order_id: must not be empty (it makes the submission idempotent)")
    if len(req.client_order_id) > MAX_CLIENT_ORDER_ID:
        raise ValueError(
            f"client_order_id: at most {MAX_CLIENT_ORDER_ID} characters, "
            f"got {len(req.client_order_id)}"
        )
    if not req.client_order_id.isprintable():
        raise ValueError(f"client_order_id: must be printable, got {quote(req.client_order_id)}")
    if req.client_order_id.startswith(ALGO_CHILD_PREFIX):
        raise ValueError(
            f"client_order_id: the prefix {ALGO_CHILD_PREFIX} is reserved for the children of "
            "execution algorithms"
        )
    _enum("side", req.side, SIDES, "BUY or SELL")
    _enum("type", req.type, TYPES, "MARKET, LIMIT, STOP or STOP_LIMIT")
    if req.time_in_force != events.TIME_IN_FORCE_UNSPECIFIED:
        _enum("time_in_force", req.time_in_force, TIFS, "DAY, GTC, IOC or FOK")
    if not 0 < req.quantity <= MAX_QUANTITY:
        raise ValueError(f"quantity: must be in 1..{MAX_QUANTITY}, got {quote(req.quantity)}")
    kind = TYPES[req.type]
    needs_limit = kind in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
    limit = stop = None
    if needs_limit:
        if not req.HasField("limit_price"):
            raise ValueError(f"limit_price: required for a {kind} order")
        limit = _price("limit_price", req.limit_price)
    elif req.HasField("limit_price"):
        raise ValueError(f"limit_price: must be absent for a {kind} order")
    if needs_stop:
        if not req.HasField("stop_price"):
            raise ValueError(f"stop_price: required for a {kind} order")
        stop = _price("stop_price", req.stop_price)
    elif req.HasField("stop_price"):
        raise ValueError(f"stop_price: must be absent for a {kind} order")
    legs: list[LegSpec] = []
    if req.legs:
        if req.symbol:
            raise ValueError("symbol: must be empty for a multi-leg order (the legs name theirs)")
        if not 2 <= len(req.legs) <= MAX_LEGS:
            raise ValueError(f"legs: a multi-leg order has 2..{MAX_LEGS} legs, got {len(req.legs)}")
        seen: set[str] = set()
        for i, leg in enumerate(req.legs):
            validate_token(f"legs[{i}].symbol", leg.symbol)
            if leg.symbol in seen:
                raise ValueError(f"legs[{i}].symbol: {quote(leg.symbol)} is in two legs")
            seen.add(leg.symbol)
            _enum(f"legs[{i}].side", leg.side, SIDES, "BUY or SELL")
            if not 1 <= leg.ratio <= 1000:
                raise ValueError(f"legs[{i}].ratio: must be in 1..1000, got {quote(leg.ratio)}")
            legs.append(LegSpec(leg.symbol, SIDES[leg.side], int(leg.ratio)))
    else:
        validate_token("symbol", req.symbol)
    return OrderSpec(
        account=req.account,
        client_order_id=req.client_order_id,
        symbol=req.symbol,
        side=SIDES[req.side],
        quantity=int(req.quantity),
        type=kind,
        time_in_force=TIFS.get(req.time_in_force, TimeInForce.DAY),
        venue=venue(req.venue),
        limit_price=limit,
        stop_price=stop,
        legs=tuple(legs),
    )


_LIMIT_FIELDS = (
    "max_order_quantity",
    "max_order_notional",
    "max_position",
    "credit_limit",
    "equity_collar",
    "option_collar",
    "option_collar_min",
    "collar",
    "duplicate_window_ns",
    "message_rate",
    "message_burst",
    "max_executions",
    "execution_window_ns",
    "short_option_margin",
    "short_option_min_margin",
)


def limits_of(msg: pb.Limits) -> Limits:
    """The library's limits of ``msg`` (ValueError naming ``limits.<field>``)."""
    kwargs: dict[str, object] = {f: getattr(msg, f) for f in _LIMIT_FIELDS if msg.HasField(f)}
    for name, symbols in (
        ("restricted_symbols", msg.restricted_symbols),
        ("allowed_symbols", msg.allowed_symbols),
    ):
        for i, sym in enumerate(symbols):
            validate_token(f"limits.{name}[{i}]", sym)
    kwargs["restricted"] = frozenset(msg.restricted_symbols)
    if msg.allowed_symbols:
        kwargs["allowed"] = frozenset(msg.allowed_symbols)
    try:
        return Limits(**kwargs)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"limits.{exc}") from None


def limits_message(account_: str, lim: Limits) -> pb.Limits:
    out = pb.Limits(account=account_)
    for f in _LIMIT_FIELDS:
        value = getattr(lim, f)
        if value is not None:
            setattr(out, f, value)
    out.restricted_symbols.extend(sorted(lim.restricted))
    if lim.allowed is not None:
        out.allowed_symbols.extend(sorted(lim.allowed))
    return out


def check_mode(name: str, mode: int) -> int:
    """``mode`` if it is ENABLED, REDUCE_ONLY or HALTED, else ValueError naming ``name``."""
    if mode not in _STRICTNESS:
        raise ValueError(f"{name}: must be ENABLED, REDUCE_ONLY or HALTED, got {quote(mode)}")
    return mode


def stricter(a: int, b: int) -> int:
    """The stricter of two trading modes (UNSPECIFIED counts as ENABLED)."""
    sa, sb = _STRICTNESS.get(a, 0), _STRICTNESS.get(b, 0)
    if max(sa, sb) == 0:
        return risk_events.ENABLED
    return a if sa >= sb else b


__all__ = [
    "STATUSES",
    "STATUS_OF",
    "LegSpec",
    "OrderSpec",
    "account",
    "check_mode",
    "limits_message",
    "limits_of",
    "order_spec",
    "stricter",
    "venue",
]
