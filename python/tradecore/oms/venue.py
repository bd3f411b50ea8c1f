"""The interface every venue implements (paper, Alpaca, ...).

A venue works orders and reports what happens to them as :class:`VenueEvent` values through the
callback given to :meth:`Venue.set_listener`. Requests never block on the venue's answer:
``submit``/``cancel``/``replace`` return at once and the outcome arrives as events (the
real-world races, e.g. a fill arriving after a cancel request, are therefore visible to the OMS
as they happen). ``lookup`` answers from the venue's own record of an order, so the OMS can ask
before retrying after a timeout.

A venue may also implement :class:`Reconcilable` (``snapshot``): its own record of our orders,
fills and positions, which :mod:`tradecore.oms.reconcile` compares with the OMS's journal-built
state. The method is optional; a venue without it is still a :class:`Venue` and cannot be
reconciled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tradecore.oms.types import (
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    VenueEvent,
    VenueOrder,
)

Listener = Callable[[VenueEvent], None]


class Venue(Protocol):
    #: "PAPER", "ALPACA", ...
    name: str

    def set_listener(self, listener: Listener) -> None: ...

    def submit(self, order: VenueOrder) -> None: ...

    def cancel(self, order_id: str) -> None: ...

    def replace(self, order_id: str, quantity: int, limit_price: float | None) -> None: ...

    def lookup(self, order_id: str) -> VenueEvent | None:
        """The venue's latest event of the order, or None when it does not know the order."""
        ...


@dataclass(frozen=True, slots=True)
class VenueOrderState:
    """One order as the venue records it."""

    order_id: str
    venue_order_id: str
    account: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    quantity: int
    filled_quantity: int
    #: SUBMITTED (on its way to the venue), ACCEPTED, PARTIALLY_FILLED, FILLED, CANCELED,
    #: EXPIRED or REJECTED.
    status: OrderStatus
    limit_price: float | None = None
    stop_price: float | None = None


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One execution as the venue records it (``fill_id`` unique per venue)."""

    fill_id: str
    order_id: str
    account: str
    symbol: str
    side: Side
    quantity: int
    price: float
    time_ns: int
    venue_order_id: str = ""
    liquidity: Liquidity | None = None
    fee: float = 0.0


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """The venue's net quantity of ``symbol`` for ``account`` (signed: short < 0)."""

    account: str
    symbol: str
    quantity: int


@dataclass(frozen=True, slots=True)
class VenueSnapshot:
    """The venue's record at ``time_ns`` (venue time): every order it knows, every fill of
    them, and its net positions from those fills."""

    venue: str
    time_ns: int
    orders: tuple[VenueOrderState, ...]
    fills: tuple[VenueFill, ...]
    positions: tuple[VenuePosition, ...]


@runtime_checkable
class Reconcilable(Protocol):
    """The optional query side of a venue (see :mod:`tradecore.oms.reconcile`)."""

    def snapshot(self) -> VenueSnapshot: ...
