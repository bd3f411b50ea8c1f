"""The interface every venue implements (paper, Alpaca, ...).

A venue works orders and reports what happens to them as :class:`VenueEvent` values through the
callback given to :meth:`Venue.set_listener`. Requests never block on the venue's answer:
``submit``/``cancel``/``replace`` return at once and the outcome arrives as events (the
real-world races, e.g. a fill arriving after a cancel request, are therefore visible to the OMS
as they happen). ``lookup`` answers from the venue's own record of an order, so the OMS can ask
before retrying after a timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tradecore.oms.types import VenueEvent, VenueOrder

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
