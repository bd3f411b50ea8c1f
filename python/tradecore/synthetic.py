"""A synthetic order flow for one symbol, realistic enough to exercise everything downstream.

Order-entry operations arrive as a Poisson process in exchange time: post-only adds at a
geometric number of ticks from the mid, cancels that favour orders far from the mid (so the
book stays concentrated at the touch as the mid moves), and market orders whose side follows
an order-flow pressure that wanders (the mid trends, then turns). They are matched by the C++
:class:`~tradecore.orderbook.OrderBook`, and what the book did is written out as LOBSTER-style
messages (1 add, 3 delete, 4 execution of a resting order, with the resting order's side).

Everything runs in C++ (``tradecore::book::SyntheticFlow``, its own xoshiro256** generator and
distributions, the GIL released): ≈ 0.1 s per million messages. The same ``(seed, symbol)``,
rate and start time always give the same messages, so a generator can be re-run and skip what
was already sent.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tradecore import _core
from tradecore.orderbook import OrderBook

TICK = 100  # one cent in price units (dollars x 10000)


@dataclass(frozen=True, slots=True)
class Messages:
    """LOBSTER-style message columns (times are nanoseconds since the Unix epoch)."""

    ts: npt.NDArray[np.int64]
    type: npt.NDArray[np.uint8]
    order_id: npt.NDArray[np.uint64]
    side: npt.NDArray[np.int8]
    price: npt.NDArray[np.int64]
    size: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.ts)


class SyntheticFlow:
    """The message stream of one symbol, produced chunk by chunk (:meth:`next`).

    ``rate`` is the mean number of order-entry operations per second of exchange time;
    ``start_ns`` is the exchange time before the first one; ``mid`` the starting mid in
    dollars; ``drift`` the size of the order-flow pressure's random-walk steps. The book is
    :attr:`book` (do not change it between calls: the flow's view of it would be wrong)."""

    def __init__(
        self,
        symbol: str,
        *,
        seed: int,
        rate: float,
        start_ns: int,
        mid: float = 100.0,
        drift: float = 0.02,
    ) -> None:
        if not rate > 0 or not np.isfinite(rate):
            raise ValueError(f"rate must be finite and > 0 (got {rate!r})")
        if not mid > 0 or not np.isfinite(mid):
            raise ValueError(f"mid must be finite and > 0 (got {mid!r})")
        if not drift >= 0 or not np.isfinite(drift):
            raise ValueError(f"drift must be finite and >= 0 (got {drift!r})")
        self.symbol = symbol
        self.book = OrderBook(1 << 16)
        self._flow = _core.SyntheticFlow(
            self.book.core,
            seed=seed & 0xFFFFFFFFFFFFFFFF,
            stream=zlib.crc32(symbol.encode()),
            rate=float(rate),
            start_ns=int(start_ns),
            mid=round(mid * 10_000 / TICK) * TICK,
            tick=TICK,
            drift=float(drift),
        )

    @property
    def ops(self) -> int:
        """Operations generated so far."""
        return int(self._flow.operations)

    def next(self, ops: int) -> Messages:
        """Generate ``ops`` operations and return the messages the book produced from them."""
        if ops < 0:
            raise ValueError(f"ops must be >= 0 (got {ops})")
        ts, typ, oid, side, price, size = self._flow.next(ops)
        return Messages(ts=ts, type=typ, order_id=oid, side=side, price=price, size=size)


__all__ = ["TICK", "Messages", "SyntheticFlow"]
