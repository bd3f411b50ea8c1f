"""An order and its checked state machine.

:data:`TRANSITIONS` is the one table of what may happen to an order: for each
:class:`~tradecore.oms.types.OrderStatus` and each :class:`Trigger`, the statuses the order may
move to. :meth:`Order.transition` looks the pair up and raises :class:`OrderStateError` for
anything not in the table (a transition is never silently applied). The real-world races are
rows of the table:

* a fill after a cancel (or replace) request: ``PENDING_CANCEL`` + ``FILL`` goes to
  ``PARTIALLY_FILLED`` or ``FILLED``; the request stays outstanding (:attr:`Order.pending`), so
  a later ``CANCELED`` applies to the rest and a later ``CANCEL_REJECTED`` is still expected;
* ``CANCEL_REJECTED`` / ``REPLACE_REJECTED``: back to the working state the order is in now
  (``ACCEPTED`` with nothing filled, else ``PARTIALLY_FILLED``; the order may have been filled
  meanwhile); a rejected request that is not outstanding is an error;
* the venue's acknowledgement arriving after a cancel request (``PENDING_CANCEL`` + ``ACCEPT``);
* a fill for more than the order's leaves (an overfill), a partial fill of a FOK order, or a fill
  of a done order: :class:`OverfillError` / :class:`OrderStateError`, never a negative leaves;
* a venue repeating the terminal event of a done order (``CANCELED`` after the OMS expired the
  order at the session end): absorbed by explicit self-loops.

A replace amends the order in place (new quantity and limit price; the order keeps its id and
its fills). ``REPLACED`` is the status of an order superseded by another one; this OMS amends in
place, so none of its orders reaches it (the status is kept for the event contract).

Stop and stop-limit orders are held by the OMS (status ``ACCEPTED``, :attr:`Order.triggered`
False) until the trade price reaches the stop price (a buy at or above it, a sell at or below);
then ``TRIGGER`` moves them to ``SUBMITTED`` and they go to the venue as a market (stop) or limit
(stop-limit) order. Every venue therefore sees only market and limit orders.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from tradecore.errors import TradecoreError, quote
from tradecore.oms.types import OrderStatus, OrderType, Side, TimeInForce, VenueOrder

__all__ = [
    "TRANSITIONS",
    "Leg",
    "OccSymbol",
    "Order",
    "OrderStateError",
    "OverfillError",
    "Trigger",
    "multiplier_of",
    "parse_occ",
    "validate_order",
]


class OrderStateError(TradecoreError):
    """A transition the table does not allow (the order is left unchanged)."""

    def __init__(self, order_id: str, status: OrderStatus, trigger: Trigger, detail: str = ""):
        self.order_id = order_id
        self.status = status
        self.trigger = trigger
        msg = f"order {order_id}: {trigger.value} is not allowed in {status.value}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class OverfillError(OrderStateError):
    """A fill for more than the order's leaves quantity (the order is left unchanged)."""

    def __init__(self, order_id: str, status: OrderStatus, fill_quantity: int, leaves: int):
        self.fill_quantity = fill_quantity
        self.leaves = leaves
        super().__init__(
            order_id,
            status,
            Trigger.FILL,
            f"overfill: fill of {fill_quantity} with {leaves} leaves",
        )


class Trigger(StrEnum):
    """What happens to an order (a command of ours or a venue's report)."""

    DENY = "DENY"  # pre-trade controls refused it
    SUBMIT = "SUBMIT"  # passed the controls, sent to the venue
    ARM = "ARM"  # passed the controls, a stop held by the OMS
    TRIGGER = "TRIGGER"  # a held stop's price was reached, sent to the venue
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    FILL = "FILL"
    CANCEL_REQUEST = "CANCEL_REQUEST"
    CANCEL_REJECT = "CANCEL_REJECT"
    CANCEL = "CANCEL"
    REPLACE_REQUEST = "REPLACE_REQUEST"
    REPLACE_REJECT = "REPLACE_REJECT"
    REPLACE = "REPLACE"
    EXPIRE = "EXPIRE"


S = OrderStatus
T = Trigger
_FILLED = frozenset({S.PARTIALLY_FILLED, S.FILLED})
_WORKING = frozenset({S.ACCEPTED, S.PARTIALLY_FILLED})
#: Neither INITIALIZED nor done: what ``Order.is_open`` tests (a set lookup: it runs several
#: times per event).
_OPEN = frozenset(s for s in S if s is not S.INITIALIZED and not s.done)

#: status -> trigger -> the statuses the order may move to. Nothing else is allowed.
TRANSITIONS: dict[OrderStatus, dict[Trigger, frozenset[OrderStatus]]] = {
    S.INITIALIZED: {
        T.DENY: frozenset({S.DENIED}),
        T.SUBMIT: frozenset({S.SUBMITTED}),
        T.ARM: frozenset({S.ACCEPTED}),
    },
    S.SUBMITTED: {
        T.ACCEPT: frozenset({S.ACCEPTED}),
        T.REJECT: frozenset({S.REJECTED}),
        # a fill may overtake the acknowledgement
        T.FILL: _FILLED,
        T.CANCEL_REQUEST: frozenset({S.PENDING_CANCEL}),
        # an IOC/FOK order that found nothing to trade
        T.CANCEL: frozenset({S.CANCELED}),
        T.EXPIRE: frozenset({S.EXPIRED}),
    },
    S.ACCEPTED: {
        T.TRIGGER: frozenset({S.SUBMITTED}),
        T.FILL: _FILLED,
        T.CANCEL_REQUEST: frozenset({S.PENDING_CANCEL}),
        T.REPLACE_REQUEST: frozenset({S.PENDING_REPLACE}),
        # unsolicited cancel (IOC rest, venue's own reasons) or a held stop canceled by the OMS
        T.CANCEL: frozenset({S.CANCELED}),
        T.EXPIRE: frozenset({S.EXPIRED}),
        # a duplicate acknowledgement
        T.ACCEPT: frozenset({S.ACCEPTED}),
    },
    S.PARTIALLY_FILLED: {
        T.FILL: _FILLED,
        T.CANCEL_REQUEST: frozenset({S.PENDING_CANCEL}),
        T.REPLACE_REQUEST: frozenset({S.PENDING_REPLACE}),
        T.CANCEL: frozenset({S.CANCELED}),
        T.EXPIRE: frozenset({S.EXPIRED}),
        # the answer to a request that a fill overtook (guarded: the request must be pending)
        T.CANCEL_REJECT: frozenset({S.PARTIALLY_FILLED}),
        T.REPLACE_REJECT: frozenset({S.PARTIALLY_FILLED}),
        T.REPLACE: frozenset({S.PARTIALLY_FILLED, S.FILLED}),
    },
    S.PENDING_CANCEL: {
        T.ACCEPT: frozenset({S.PENDING_CANCEL}),
        T.FILL: _FILLED,
        T.CANCEL: frozenset({S.CANCELED}),
        T.CANCEL_REJECT: _WORKING | {S.SUBMITTED},
        T.EXPIRE: frozenset({S.EXPIRED}),
    },
    S.PENDING_REPLACE: {
        T.FILL: _FILLED,
        T.REPLACE: _WORKING | {S.FILLED},
        T.REPLACE_REJECT: _WORKING,
        T.CANCEL: frozenset({S.CANCELED}),
        T.EXPIRE: frozenset({S.EXPIRED}),
    },
    S.FILLED: {
        # the answer to a request that the last fill overtook
        T.CANCEL_REJECT: frozenset({S.FILLED}),
        T.REPLACE_REJECT: frozenset({S.FILLED}),
    },
    S.CANCELED: {T.CANCEL: frozenset({S.CANCELED}), T.EXPIRE: frozenset({S.CANCELED})},
    S.EXPIRED: {T.CANCEL: frozenset({S.EXPIRED}), T.EXPIRE: frozenset({S.EXPIRED})},
    S.DENIED: {},
    S.REJECTED: {},
    S.REPLACED: {},
}
del S, T

#: Triggers that answer a pending request; legal only while that request is outstanding.
_ANSWERS = {
    Trigger.CANCEL_REJECT: OrderStatus.PENDING_CANCEL,
    Trigger.REPLACE_REJECT: OrderStatus.PENDING_REPLACE,
    Trigger.REPLACE: OrderStatus.PENDING_REPLACE,
}


@dataclass(frozen=True, slots=True)
class Leg:
    """One leg of a multi-leg order: ``ratio`` units of ``symbol`` per unit of the order, on
    ``side`` when the order buys (the opposite side when it sells)."""

    symbol: str
    side: Side
    ratio: int = 1


@dataclass(frozen=True, slots=True)
class OccSymbol:
    underlying: str
    expiry: date
    call: bool
    strike: float


# OCC: root (1-6 chars, space padded to 6 in the full form), YYMMDD, C/P, strike x 1000 (8 digits).
_OCC = re.compile(r"^([A-Z][A-Z0-9.]{0,5}) *(\d{2})(\d{2})(\d{2})([CP])(\d{8})$")


@functools.lru_cache(maxsize=65536)
def parse_occ(symbol: str) -> OccSymbol | None:
    """The OCC option symbol's parts, or None when ``symbol`` is not an OCC option symbol."""
    m = _OCC.match(symbol)
    if m is None:
        return None
    try:
        expiry = date(2000 + int(m[2]), int(m[3]), int(m[4]))
    except ValueError:
        return None
    return OccSymbol(m[1], expiry, m[5] == "C", int(m[6]) / 1000.0)


def multiplier_of(symbol: str) -> int:
    """100 for an OCC option symbol (a contract is 100 shares), 1 otherwise."""
    return 100 if parse_occ(symbol) is not None else 1


def _finite_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {quote(value)}")
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {quote(value)}")
    return float(value)


def validate_order(
    *,
    account: str,
    client_order_id: str,
    symbol: str,
    side: object,
    type: object,
    time_in_force: object,
    quantity: object,
    limit_price: object = None,
    stop_price: object = None,
    legs: tuple[Leg, ...] = (),
) -> tuple[Side, OrderType, TimeInForce, int, float | None, float | None]:
    """Check an order's fields; return side, type, time in force, quantity, limit and stop price
    in their types. Raises ValueError naming the first bad field."""
    for name, text in (
        ("account", account),
        ("client_order_id", client_order_id),
        ("symbol", symbol),
    ):
        if name == "symbol" and legs and text == "":
            continue  # a multi-leg order may go by its legs alone
        if not isinstance(text, str) or not text or len(text) > 128:
            raise ValueError(f"{name} must be a non-empty string of at most 128 characters")
    try:
        side_v = Side(side)  # type: ignore[arg-type]  # any value: checked here
    except ValueError:
        raise ValueError(f"side must be one of BUY, SELL, got {quote(side)}") from None
    try:
        type_v = OrderType(type)  # type: ignore[arg-type]
    except ValueError:
        names = ", ".join(OrderType)
        raise ValueError(f"type must be one of {names}, got {quote(type)}") from None
    try:
        tif = TimeInForce(time_in_force)  # type: ignore[arg-type]
    except ValueError:
        names = ", ".join(TimeInForce)
        raise ValueError(
            f"time_in_force must be one of {names}, got {quote(time_in_force)}"
        ) from None
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise ValueError(f"quantity must be a whole number > 0, got {quote(quantity)}")
    limit: float | None = None
    stop: float | None = None
    if type_v in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        if limit_price is None:
            raise ValueError(f"limit_price is required for a {type_v.value} order")
        limit = _finite_positive("limit_price", limit_price)
    elif limit_price is not None:
        raise ValueError(f"limit_price must be unset for a {type_v.value} order")
    if type_v in (OrderType.STOP, OrderType.STOP_LIMIT):
        if stop_price is None:
            raise ValueError(f"stop_price is required for a {type_v.value} order")
        stop = _finite_positive("stop_price", stop_price)
        if tif in (TimeInForce.IOC, TimeInForce.FOK):
            raise ValueError(f"time_in_force {tif.value} is not allowed for a stop order")
    elif stop_price is not None:
        raise ValueError(f"stop_price must be unset for a {type_v.value} order")
    if legs:
        if type_v in (OrderType.STOP, OrderType.STOP_LIMIT):
            raise ValueError("legs: a multi-leg order must be a MARKET or LIMIT order")
        if len(legs) < 2:
            raise ValueError("legs: a multi-leg order needs at least 2 legs")
        seen: set[str] = set()
        for i, leg in enumerate(legs):
            if not isinstance(leg.symbol, str) or not leg.symbol or leg.symbol in seen:
                raise ValueError(f"legs[{i}].symbol must be a non-empty, distinct symbol")
            seen.add(leg.symbol)
            if not isinstance(leg.side, Side):
                raise ValueError(f"legs[{i}].side must be BUY or SELL, got {quote(leg.side)}")
            if isinstance(leg.ratio, bool) or not isinstance(leg.ratio, int) or leg.ratio <= 0:
                raise ValueError(f"legs[{i}].ratio must be a whole number > 0")
    return side_v, type_v, tif, quantity, limit, stop


@dataclass(slots=True)
class Order:
    """One order and what has happened to it. Change it only through :meth:`transition` and
    :meth:`apply_fill` (the OMS does so from its events)."""

    order_id: str
    client_order_id: str
    account: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    quantity: int
    limit_price: float | None = None
    stop_price: float | None = None
    venue: str = ""
    venue_order_id: str = ""
    status: OrderStatus = OrderStatus.INITIALIZED
    filled_quantity: int = 0
    #: Sum of fill price x quantity (per order unit; for multi-leg, net of the legs' sides).
    filled_value: float = 0.0
    reason: str = ""
    replaced_by: str = ""
    created_ns: int = 0
    updated_ns: int = 0
    legs: tuple[Leg, ...] = ()
    #: Only reduce an existing position (checked by the pre-trade controls).
    reduce_only: bool = False
    #: Hedging mode: the position the fills go to ("" = a position of this order's own).
    position_id: str = ""
    #: The outstanding cancel or replace request (PENDING_CANCEL / PENDING_REPLACE), if any.
    pending: OrderStatus | None = None
    #: The status the outstanding request found the order in.
    before_pending: OrderStatus | None = None
    #: A replace request's new quantity and limit price, while it is pending.
    pending_quantity: int = 0
    pending_limit_price: float | None = None
    #: Stop orders: whether the stop price was reached (False while the OMS holds it).
    triggered: bool = False
    #: Credit the pre-trade controls reserved per unit of leaves quantity.
    credit_per_unit: float = 0.0
    #: Multi-leg orders: quantity filled per leg symbol.
    leg_filled: dict[str, int] = field(default_factory=dict)

    @property
    def leaves(self) -> int:
        """Quantity still working (0 once the order is done)."""
        if self.status.done:
            return 0
        return self.quantity - self.filled_quantity

    @property
    def average_fill_price(self) -> float:
        return self.filled_value / self.filled_quantity if self.filled_quantity else 0.0

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    @property
    def held(self) -> bool:
        """A stop the OMS holds (not yet at the venue)."""
        return (
            self.type in (OrderType.STOP, OrderType.STOP_LIMIT)
            and not self.triggered
            and self.status
            in (OrderStatus.ACCEPTED, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE)
        )

    def _working(self) -> OrderStatus:
        if self.filled_quantity >= self.quantity:
            return OrderStatus.FILLED
        return OrderStatus.PARTIALLY_FILLED if self.filled_quantity else OrderStatus.ACCEPTED

    def _check(self, trigger: Trigger, target: OrderStatus) -> None:
        allowed = TRANSITIONS[self.status].get(trigger)
        if allowed is None or target not in allowed:
            raise OrderStateError(self.order_id, self.status, trigger)
        if (
            trigger is Trigger.CANCEL_REQUEST or trigger is Trigger.REPLACE_REQUEST
        ) and self.pending is not None:
            raise OrderStateError(
                self.order_id, self.status, trigger, f"a {self.pending.value} is outstanding"
            )
        needed = _ANSWERS.get(trigger)
        if needed is not None and self.pending is not needed:
            raise OrderStateError(
                self.order_id, self.status, trigger, f"no {needed.value} request outstanding"
            )

    def target(self, trigger: Trigger) -> OrderStatus:
        """The status ``trigger`` moves the order to (FILL and REPLACE: see :meth:`check_fill`
        and :meth:`apply_replace`); raises OrderStateError when the table does not allow it.
        Changes nothing."""
        if trigger is Trigger.FILL or trigger is Trigger.REPLACE:
            raise ValueError(f"trigger {trigger.value} needs apply_fill / apply_replace")
        status = self.status
        target: OrderStatus
        if trigger is Trigger.DENY:
            target = OrderStatus.DENIED
        elif trigger is Trigger.SUBMIT or trigger is Trigger.TRIGGER:
            target = OrderStatus.SUBMITTED
        elif trigger is Trigger.ARM:
            target = OrderStatus.ACCEPTED
        elif trigger is Trigger.ACCEPT:
            target = (
                OrderStatus.PENDING_CANCEL
                if status is OrderStatus.PENDING_CANCEL
                else (OrderStatus.ACCEPTED)
            )
        elif trigger is Trigger.REJECT:
            target = OrderStatus.REJECTED
        elif trigger is Trigger.CANCEL_REQUEST:
            target = OrderStatus.PENDING_CANCEL
        elif trigger is Trigger.REPLACE_REQUEST:
            target = OrderStatus.PENDING_REPLACE
        elif trigger is Trigger.CANCEL_REJECT or trigger is Trigger.REPLACE_REJECT:
            if status is OrderStatus.PENDING_CANCEL or status is OrderStatus.PENDING_REPLACE:
                # back to where the request found it: still unacknowledged, or working
                target = self.before_pending or self._working()
            else:
                target = status  # a fill moved the order on meanwhile; it stays there
        elif trigger is Trigger.CANCEL:
            target = OrderStatus.EXPIRED if status is OrderStatus.EXPIRED else OrderStatus.CANCELED
        else:  # EXPIRE
            target = (
                OrderStatus.CANCELED if status is OrderStatus.CANCELED else (OrderStatus.EXPIRED)
            )
        self._check(trigger, target)
        return target

    def target_allows(self, trigger: Trigger) -> bool:
        """Whether :meth:`transition` would accept ``trigger`` now."""
        try:
            self.target(trigger)
        except OrderStateError:
            return False
        return True

    def transition(self, trigger: Trigger, time_ns: int, reason: str = "") -> None:
        """Apply a trigger other than FILL (see :meth:`apply_fill`) and REPLACE (see
        :meth:`apply_replace`); raises OrderStateError when the table does not allow it."""
        status = self.status
        target = self.target(trigger)
        if trigger is Trigger.TRIGGER:
            self.triggered = True
        if trigger is Trigger.CANCEL_REQUEST or trigger is Trigger.REPLACE_REQUEST:
            self.pending = target
            self.before_pending = status
        elif trigger is Trigger.ACCEPT and status is OrderStatus.PENDING_CANCEL:
            self.before_pending = OrderStatus.ACCEPTED
        elif trigger in _ANSWERS or target.done:
            self.pending = None
            self.before_pending = None
            self.pending_quantity = 0
            self.pending_limit_price = None
        if reason:
            self.reason = reason
        self.status = target
        self.updated_ns = time_ns

    def request_replace(self, quantity: int, limit_price: float | None, time_ns: int) -> None:
        self.transition(Trigger.REPLACE_REQUEST, time_ns)
        self.pending_quantity = quantity
        self.pending_limit_price = limit_price

    def replace_target(self, quantity: int) -> OrderStatus:
        """The status a venue's REPLACED to ``quantity`` moves the order to; raises
        OrderStateError when not allowed. Changes nothing."""
        if quantity < self.filled_quantity:
            raise OrderStateError(
                self.order_id,
                self.status,
                Trigger.REPLACE,
                f"new quantity {quantity} below the filled {self.filled_quantity}",
            )
        if quantity == self.filled_quantity:
            target = OrderStatus.FILLED
        elif self.filled_quantity:
            target = OrderStatus.PARTIALLY_FILLED
        else:
            target = OrderStatus.ACCEPTED
        self._check(Trigger.REPLACE, target)
        return target

    def apply_replace(self, quantity: int, limit_price: float | None, time_ns: int) -> None:
        """The venue applied the replace: the new quantity and limit price are in force."""
        target = self.replace_target(quantity)
        self.quantity = quantity
        if limit_price is not None:
            self.limit_price = limit_price
        self.pending = None
        self.before_pending = None
        self.pending_quantity = 0
        self.pending_limit_price = None
        self.status = target
        self.updated_ns = time_ns

    def fill_units(self, symbol: str, quantity: int) -> int:
        """How many order units a fill of ``quantity`` (of leg ``symbol`` for a multi-leg order)
        completes; raises OrderStateError for an unknown leg."""
        if not self.legs:
            return quantity
        for leg in self.legs:
            if leg.symbol == symbol:
                done_before = min(self.leg_filled.get(x.symbol, 0) // x.ratio for x in self.legs)
                filled = dict(self.leg_filled)
                filled[symbol] = filled.get(symbol, 0) + quantity
                done_after = min(filled.get(x.symbol, 0) // x.ratio for x in self.legs)
                if filled[symbol] > leg.ratio * self.quantity:
                    raise OverfillError(
                        self.order_id,
                        self.status,
                        quantity,
                        leg.ratio * self.quantity - self.leg_filled.get(symbol, 0),
                    )
                return done_after - done_before
        raise OrderStateError(self.order_id, self.status, Trigger.FILL, f"unknown leg {symbol!r}")

    def check_fill(self, symbol: str, quantity: int) -> int:
        """Raise what :meth:`apply_fill` would raise, without changing the order; return the
        order units the fill completes."""
        if quantity <= 0:
            raise OrderStateError(self.order_id, self.status, Trigger.FILL, "quantity <= 0")
        if self.status is OrderStatus.FILLED:
            raise OverfillError(self.order_id, self.status, quantity, 0)
        allowed = TRANSITIONS[self.status].get(Trigger.FILL)
        if allowed is None:
            raise OrderStateError(self.order_id, self.status, Trigger.FILL)
        units = self.fill_units(symbol, quantity)
        leaves = self.quantity - self.filled_quantity
        if units > leaves or (not self.legs and quantity > leaves):
            raise OverfillError(self.order_id, self.status, quantity, leaves)
        if (
            self.time_in_force is TimeInForce.FOK
            and not self.legs
            and self.filled_quantity + units < self.quantity
        ):
            raise OrderStateError(
                self.order_id, self.status, Trigger.FILL, "partial fill of a FOK order"
            )
        return units

    def apply_fill(self, symbol: str, quantity: int, price: float, leg_sign: int, t: int) -> None:
        """Book a fill of ``quantity`` at ``price`` (of leg ``symbol`` for a multi-leg order,
        ``leg_sign`` +1 when the leg's side equals the order's, -1 otherwise)."""
        units = self.check_fill(symbol, quantity)
        if self.legs:
            self.leg_filled[symbol] = self.leg_filled.get(symbol, 0) + quantity
            self.filled_value += leg_sign * price * quantity
        else:
            self.filled_value += price * quantity
        self.filled_quantity += units
        self.status = self._working() if self.filled_quantity else self.status
        self.updated_ns = t

    def venue_order(self) -> VenueOrder:
        """What the venue is asked to work: a triggered stop goes as a market (stop) or limit
        (stop-limit) order."""
        type_ = self.type
        if type_ is OrderType.STOP:
            type_ = OrderType.MARKET
        elif type_ is OrderType.STOP_LIMIT:
            type_ = OrderType.LIMIT
        return VenueOrder(
            order_id=self.order_id,
            account=self.account,
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            type=type_,
            time_in_force=self.time_in_force,
            limit_price=self.limit_price,
            legs=tuple((leg.symbol, leg.side, leg.ratio) for leg in self.legs),
        )
