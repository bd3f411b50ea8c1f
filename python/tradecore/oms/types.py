"""The order vocabulary shared by the OMS, the pre-trade controls and the venues.

Names match the event contracts (proto/tradecore/events/v1/execution.proto) so the service maps
them one to one; the OMS's own states (``INITIALIZED``, ``DENIED``, ``PENDING_REPLACE``) are
additions the events carry too. Quantities are whole units (shares or contracts); prices are per
unit, before the multiplier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(StrEnum):
    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    INITIALIZED = "INITIALIZED"  # created, not yet through pre-trade controls
    DENIED = "DENIED"  # refused by pre-trade controls (never reached a venue)
    SUBMITTED = "SUBMITTED"  # sent to the venue, not acknowledged (events: PENDING_NEW)
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"  # refused by the venue
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    PENDING_REPLACE = "PENDING_REPLACE"
    REPLACED = "REPLACED"
    EXPIRED = "EXPIRED"

    @property
    def done(self) -> bool:
        """No further fills can arrive (a terminal state)."""
        return self in _DONE


_DONE = frozenset(
    {
        OrderStatus.DENIED,
        OrderStatus.REJECTED,
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REPLACED,
        OrderStatus.EXPIRED,
    }
)


class Liquidity(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """What a venue is asked to work: one order (or one leg of a multi-leg order)."""

    order_id: str
    account: str
    symbol: str
    side: Side
    quantity: int
    type: OrderType
    time_in_force: TimeInForce
    limit_price: float | None = None
    stop_price: float | None = None
    #: Visible size of an iceberg (None: fully displayed).
    display_quantity: int | None = None
    #: Multi-leg orders: the legs (symbol, side, ratio) filled atomically; empty for one leg.
    legs: tuple[tuple[str, Side, int], ...] = ()


class VenueEventKind(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    FILL = "FILL"
    CANCELED = "CANCELED"
    CANCEL_REJECTED = "CANCEL_REJECTED"
    REPLACED = "REPLACED"
    REPLACE_REJECTED = "REPLACE_REJECTED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True, slots=True)
class VenueEvent:
    """Something a venue reports about one of our orders."""

    kind: VenueEventKind
    order_id: str
    time_ns: int
    venue_order_id: str = ""
    #: FILL: the venue's execution id (unique per venue: a fill seen twice is one fill).
    fill_id: str = ""
    fill_quantity: int = 0
    fill_price: float = 0.0
    #: FILL of a multi-leg order: the leg's symbol (empty for a single-leg order).
    symbol: str = ""
    liquidity: Liquidity | None = None
    fee: float = 0.0
    #: Quantity still working after this event.
    leaves_quantity: int = 0
    #: REJECTED / CANCEL_REJECTED / REPLACE_REJECTED / EXPIRED: why.
    reason: str = ""
    #: REPLACED: the new quantity and limit price now in force.
    new_quantity: int = 0
    new_limit_price: float | None = None
    extra: dict[str, str] = field(default_factory=dict)
