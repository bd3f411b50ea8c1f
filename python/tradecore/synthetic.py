"""A synthetic order flow for one symbol, realistic enough to exercise everything downstream.

Order arrivals, cancels and market orders around a mid price that follows a random walk are
generated in numpy, matched by the C++ :class:`~tradecore.orderbook.OrderBook`, and what the
book did is written out as LOBSTER-style messages (1 add, 3 delete, 4 execution of a resting
order, with the resting order's side). The same ``(seed, symbol)`` always gives the same
messages, so a generator can be re-run and skip what was already sent.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tradecore.orderbook import EventType, OpKind, OrderBook
from tradecore.ticks import ADD, DELETE, EXECUTE

TICK = 100  # one cent in price units (dollars x 10000)
_MARKET_BIT = np.uint64(1 << 62)
_WARMUP_OPS = 400


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

    ``rate`` is the mean number of order-entry operations per second of exchange time (adds,
    cancels and market orders arrive as a Poisson process); ``start_ns`` is the exchange time
    of the first one. The book is :attr:`book`."""

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
        self.symbol = symbol
        self.rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(symbol.encode())])
        self.mean_gap_ns = 1e9 / rate
        self.t = float(start_ns)
        self.mid = mid * 10_000.0
        self.drift = drift
        self.pressure = 0.0
        self.book = OrderBook(1 << 16)
        self.next_id = 1
        self.live_id = np.zeros(0, dtype=np.uint64)
        self.live_price = np.zeros(0, dtype=np.int64)
        self.live_size = np.zeros(0, dtype=np.int64)  # what is left of each resting order
        self.ops = 0

    def _ops(self, n: int) -> tuple[npt.NDArray[np.generic], ...]:
        rng = self.rng
        gaps = rng.exponential(self.mean_gap_ns, n)
        ts = (self.t + np.cumsum(gaps)).astype(np.int64)
        self.t += float(gaps.sum())
        bid, ask = self.book.best_bid(), self.book.best_ask()
        if bid is not None and ask is not None:
            self.mid = (bid[0] + ask[0]) / 2.0
        # Order flow pressure follows a bounded random walk: the mid trends, then turns.
        self.pressure = float(np.clip(self.pressure + rng.normal(0.0, self.drift), -0.3, 0.3))
        u = rng.random(n)
        if self.ops < _WARMUP_OPS or len(self.live_id) == 0:
            u[:] = 0.0  # the first operations fill the book
        is_cancel = (u >= 0.45) & (u < 0.85)
        is_market = u >= 0.85
        side = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
        buy = rng.random(n) < 0.5 + self.pressure
        side[is_market] = np.where(buy[is_market], 1, -1)
        offset = rng.geometric(0.2, n)  # levels away from the mid, 1 = at the touch
        lo = np.floor(self.mid / TICK) * TICK
        hi = max(np.ceil(self.mid / TICK) * TICK, lo + TICK)
        price = np.where(side > 0, lo - (offset - 1) * TICK, hi + (offset - 1) * TICK)
        price = price.astype(np.int64)
        size = (rng.integers(1, 10, n) * 100).astype(np.int64)
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.uint64)
        self.next_id += n
        kind = np.full(n, int(OpKind.POST_ONLY), dtype=np.uint8)
        kind[is_cancel] = int(OpKind.CANCEL)
        kind[is_market] = int(OpKind.MARKET)
        order_id = ids.copy()
        n_cancel = int(is_cancel.sum())
        if n_cancel and len(self.live_id):
            # Orders far from the mid are the likeliest to be cancelled, so the book stays
            # concentrated around the touch as the mid moves.
            far = np.abs(self.live_price - self.mid) > 4 * TICK
            w = np.where(far, 25.0, 1.0)
            pick = rng.choice(len(self.live_id), n_cancel, p=w / w.sum())
            order_id[is_cancel] = self.live_id[pick]
        order_id[is_market] |= _MARKET_BIT
        size[is_market] = rng.integers(1, 12, int(is_market.sum())) * 100
        self.ops += n
        return kind, order_id, side, price, size, ts

    def next(self, ops: int) -> Messages:
        """Generate ``ops`` operations and return the messages the book produced from them."""
        kind, order_id, side, price, size, ts = self._ops(ops)
        ev = self.book.apply_batch(kind, order_id, side, price, size, ts)
        etype = ev["type"]
        oid = ev["order_id"]
        market = (oid & _MARKET_BIT) != 0
        add = (etype == EventType.ACCEPTED) & ~market
        cancel = (etype == EventType.CANCELLED) & ~market
        trade = etype == EventType.TRADE
        keep = np.flatnonzero(add | cancel | trade)
        add, cancel, trade = add[keep], cancel[keep], trade[keep]
        # One gather per field (the event fields are already the message dtypes).
        oid, other = oid[keep], ev["other_id"][keep]
        eprice, esize, eside = ev["price"][keep], ev["size"][keep], ev["side"][keep]
        self._track(oid, other, eprice, esize, add, cancel, trade)
        mtype = np.full(len(keep), EXECUTE, dtype=np.uint8)
        mtype[add] = ADD
        mtype[cancel] = DELETE
        return Messages(
            ts=ev["ts"][keep],
            type=mtype,
            order_id=np.where(trade, other, oid),
            side=np.where(trade, -eside, eside).astype(np.int8),
            price=eprice,
            size=esize,
        )

    def _track(
        self,
        oid: npt.NDArray[np.uint64],
        other: npt.NDArray[np.uint64],
        price: npt.NDArray[np.int64],
        size: npt.NDArray[np.int64],
        add: npt.NDArray[np.bool_],
        cancel: npt.NDArray[np.bool_],
        trade: npt.NDArray[np.bool_],
    ) -> None:
        """Keep the ids, prices and remaining sizes of the resting orders (the cancel targets).

        Worked out from the book's events alone, in numpy: a post-only add rests with its
        whole size, each trade takes its size off the maker (``other``), and a maker with
        nothing left is gone, as is a cancelled order. Ids are handed out in increasing order
        and kept in that order, so the resting orders are found by binary search."""
        ids = np.concatenate([self.live_id, oid[add]])
        prices = np.concatenate([self.live_price, price[add]])
        sizes = np.concatenate([self.live_size, size[add]])
        alive = np.ones(len(ids), dtype=np.bool_)
        if trade.any():
            np.subtract.at(sizes, np.searchsorted(ids, other[trade]), size[trade])
            alive &= sizes > 0
        if cancel.any():
            alive[np.searchsorted(ids, oid[cancel])] = False
        self.live_id, self.live_price, self.live_size = ids[alive], prices[alive], sizes[alive]


__all__ = ["TICK", "Messages", "SyntheticFlow"]
