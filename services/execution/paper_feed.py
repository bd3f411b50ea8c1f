"""The paper venue fed from the market-data service's NATS events: every quote
(``md.<venue>.<symbol>.quote``) becomes the top levels of the venue's book for the symbol
(``PaperVenue.on_level``: the new bid and ask with their sizes, and a level the quote left
removed), every trade (``md.<venue>.<symbol>.trade``) a ``PaperVenue.on_trade`` against the side
it hit. The venue works our orders against that book with its L2 queue model. Market time is
the service's clock (never going back), so requests and market data share one time line.
Called on the OMS thread only (engine.py): what the venue reports is journaled there.
"""

from __future__ import annotations

import math
import time

from tradecore.oms.paper import BUY, SELL, PaperVenue


class PaperFeed:
    def __init__(self, venue: PaperVenue) -> None:
        self.venue = venue
        #: symbol -> (bid ticks, ask ticks) of the last quote taken.
        self._top: dict[str, tuple[int, int]] = {}

    def _ticks(self, price: float) -> int | None:
        if not math.isfinite(price) or price <= 0:
            return None
        return round(price * self.venue.config.price_scale)

    def _now(self) -> int:
        return max(time.time_ns(), self.venue.now)

    def clock(self) -> int:
        """The OMS's clock: the venue's (brought to now before every call), so an order's
        times and its venue's answers are on one time line."""
        return self.venue.now or time.time_ns()

    def tick(self) -> None:
        """Bring the venue's clock to now (before a request, so its events carry the time)."""
        self.venue.advance(self._now())

    def quote(self, symbol: str, bid: float, bid_size: int, ask: float, ask_size: int) -> None:
        """A two-sided, uncrossed quote with sizes replaces the symbol's top levels; any
        other quote is skipped."""
        b, a = self._ticks(bid), self._ticks(ask)
        if b is None or a is None or b >= a or bid_size <= 0 or ask_size <= 0:
            return
        ts = self._now()
        old = self._top.get(symbol)
        if old is not None:
            if old[0] != b:
                self.venue.on_level(symbol, BUY, old[0], 0, ts)
            if old[1] != a:
                self.venue.on_level(symbol, SELL, old[1], 0, ts)
        self.venue.on_level(symbol, BUY, b, int(bid_size), ts)
        self.venue.on_level(symbol, SELL, a, int(ask_size), ts)
        self._top[symbol] = (b, a)

    def trade(self, symbol: str, price: float, size: int, buyer_aggressed: bool | None) -> None:
        """A trade; the resting side is the aggressor's opposite, else inferred from the last
        quote (at or above the ask: a sell rested; at or below the bid: a buy). Skipped when it
        cannot be told."""
        p = self._ticks(price)
        if p is None or size <= 0:
            return
        if buyer_aggressed is None:
            top = self._top.get(symbol)
            if top is None:
                return
            if p >= top[1]:
                buyer_aggressed = True
            elif p <= top[0]:
                buyer_aggressed = False
            else:
                return
        self.venue.on_trade(symbol, p, int(size), SELL if buyer_aggressed else BUY, self._now())


__all__ = ["PaperFeed"]
