"""The contract between an external feed adapter (Alpaca, ...) and the MarketDataService.

An adapter normalises the venue's quotes and trades into ``tradecore.marketdata.v1`` ``Quote``
and ``Trade`` messages and hands them over in batches, in arrival order. It fills ``venue``,
``symbol``, both times (``receive_time_ns`` when the adapter received the event) and a
``sequence`` that is unique and increasing per (venue, symbol) and the same when the same
history is fetched again, so that the service can store every event exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, TypeAlias

from tradecore_api.events.v1 import market_pb2

Event: TypeAlias = market_pb2.Quote | market_pb2.Trade


class EventFeed(Protocol):
    """A source of normalised market-data events."""

    venue: str

    def events(self) -> AsyncIterator[list[Event]]:
        """Batches of events in arrival order; the iterator ends when the feed ends."""
        ...

    async def close(self) -> None:
        """Stop the feed and release its connections (idempotent)."""
        ...
