"""Order management: the order vocabulary, venues, pre-trade controls and the OMS core."""

from __future__ import annotations

from tradecore.oms.oms import OMS, AnomalyKind, ExecutionAnomaly, OmsEvent, OrderNotFound
from tradecore.oms.order import (
    Leg,
    Order,
    OrderStateError,
    OverfillError,
    Trigger,
    multiplier_of,
    parse_occ,
)
from tradecore.oms.paper import L3, PaperConfig, PaperVenue
from tradecore.oms.positions import Position, PositionBook, PositionMode
from tradecore.oms.pretrade import (
    DenyReason,
    Exposure,
    Limits,
    MarketReference,
    PreTradeControls,
    ReferencePrices,
    TradingMode,
)
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
    "L3",
    "OMS",
    "AnomalyKind",
    "DenyReason",
    "ExecutionAnomaly",
    "Exposure",
    "Leg",
    "Limits",
    "Liquidity",
    "Listener",
    "MarketReference",
    "OmsEvent",
    "Order",
    "OrderNotFound",
    "OrderStateError",
    "OrderStatus",
    "OrderType",
    "OverfillError",
    "PaperConfig",
    "PaperVenue",
    "Position",
    "PositionBook",
    "PositionMode",
    "PreTradeControls",
    "ReferencePrices",
    "Side",
    "TimeInForce",
    "TradingMode",
    "Trigger",
    "Venue",
    "VenueEvent",
    "VenueEventKind",
    "VenueOrder",
    "multiplier_of",
    "parse_occ",
]
