"""Order management: the order vocabulary, venues, pre-trade controls and the OMS core."""

from __future__ import annotations

from tradecore.oms.types import (
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    VenueEvent,
    VenueEventKind,
    VenueOrder,
)
from tradecore.oms.venue import Listener, Venue

__all__ = [
    "Liquidity",
    "Listener",
    "OrderStatus",
    "OrderType",
    "Side",
    "TimeInForce",
    "Venue",
    "VenueEvent",
    "VenueEventKind",
    "VenueOrder",
]
