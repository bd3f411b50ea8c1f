"""Order-by-order (L3) limit order book with price-time priority matching.

Prices are integer ticks, sizes integer quantities and timestamps int64 nanoseconds. Every
operation returns the events it produced, collected while the match ran and handed over after
it, as a numpy structured array of dtype :data:`EVENT_DTYPE`::

    ts  order_id  other_id  price  size  type  side  reason

``type`` is an :class:`EventType`; for trades ``order_id`` is the taker and ``other_id`` the
maker (0 for resting quantity whose order is unknown, see :meth:`OrderBook.add_level_size`);
for ``LEVEL_CHANGED`` ``size`` is the level's new total (0: the level is gone); rejected
operations carry a :class:`RejectReason`. Failures of an order are events, never exceptions;
invalid arguments (a side that is not +1/-1) raise ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from tradecore import _core

IntArray = npt.NDArray[np.int64]
Events = npt.NDArray[np.void]
EVENT_DTYPE: np.dtype[np.void] = _core.BOOK_EVENT_DTYPE
FEATURE_NAMES: tuple[str, ...] = tuple(_core.feature_names())


class Side(IntEnum):
    BUY = 1
    SELL = -1


class OrderType(IntEnum):
    LIMIT = 0
    MARKET = 1
    IOC = 2  # immediate or cancel
    FOK = 3  # fill or kill
    POST_ONLY = 4


class OpKind(IntEnum):
    """Operation codes of :meth:`OrderBook.apply_batch` (0..4 submit with that order type)."""

    LIMIT = 0
    MARKET = 1
    IOC = 2
    FOK = 3
    POST_ONLY = 4
    CANCEL = 5
    REDUCE = 6  # size: quantity to remove, priority kept
    REPLACE = 7  # new price and size, priority lost unless it is a pure size decrease


class EventType(IntEnum):
    ACCEPTED = 0
    REJECTED = 1
    TRADE = 2
    LEVEL_CHANGED = 3
    CANCELLED = 4
    MODIFIED = 5


class RejectReason(IntEnum):
    NONE = 0
    INVALID_SIZE = 1
    DUPLICATE_ID = 2
    UNKNOWN_ORDER = 3
    WOULD_CROSS = 4
    NOT_FILLABLE = 5
    NO_LIQUIDITY = 6


@dataclass(frozen=True, slots=True)
class Order:
    """A resting order."""

    order_id: int
    side: Side
    price: int
    size: int
    ts: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Top-N of both sides, best first; slots past ``bid_levels``/``ask_levels`` hold 0."""

    bid_price: IntArray
    bid_size: IntArray
    ask_price: IntArray
    ask_size: IntArray
    bid_levels: int
    ask_levels: int

    @classmethod
    def empty(cls, depth: int) -> Snapshot:
        """Buffers for :meth:`OrderBook.snapshot` to fill again and again."""
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        z = [np.zeros(depth, dtype=np.int64) for _ in range(4)]
        return cls(z[0], z[1], z[2], z[3], 0, 0)


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """Windows of the microstructure features (see :mod:`tradecore.orderbook`)."""

    depth: int = 5  # levels 1..depth in the depth imbalance
    vpin_bucket_volume: int = 1000  # volume per VPIN bucket
    vpin_buckets: int = 50  # VPIN averages over this many full buckets
    trade_window: int = 100  # trades in the trade-sign imbalance
    rv_window: int = 100  # mid log returns in the realised volatility

    def engine(self) -> _core.FeatureEngine:
        return _core.FeatureEngine(
            self.depth,
            self.vpin_bucket_volume,
            self.vpin_buckets,
            self.trade_window,
            self.rv_window,
        )


def trades(events: Events) -> Events:
    """The trade events of an event array."""
    selected: Events = events[events["type"] == EventType.TRADE]
    return selected


class OrderBook:
    """One instrument's book. With ``features`` given, the microstructure features
    (:data:`FEATURE_NAMES`) are updated in C++ after every operation (:attr:`features`)."""

    __slots__ = ("_book", "_features")

    def __init__(self, expected_orders: int = 1024, *, features: FeatureConfig | None = None):
        if expected_orders < 1:
            raise ValueError(f"expected_orders must be >= 1, got {expected_orders}")
        self._book = _core.OrderBook(expected_orders)
        self._features = features.engine() if features is not None else None

    @property
    def core(self) -> _core.OrderBook:
        """The compiled book (for kernels that take one, such as the LOBSTER replay)."""
        return self._book

    def _events(self) -> Events:
        if self._features is not None:
            self._features.update(self._book)
        return self._book.take_events()

    # ---------------------------------------------------------------- order entry
    def submit(
        self,
        order_id: int,
        side: Side | int,
        price: int,
        size: int,
        order_type: OrderType = OrderType.LIMIT,
        ts: int = 0,
    ) -> Events:
        """Submit an order; ``price`` is ignored for market orders."""
        self._book.submit(order_id, int(side), int(order_type), price, size, ts)
        return self._events()

    def limit(self, order_id: int, side: Side | int, price: int, size: int, ts: int = 0) -> Events:
        return self.submit(order_id, side, price, size, OrderType.LIMIT, ts)

    def market(self, order_id: int, side: Side | int, size: int, ts: int = 0) -> Events:
        return self.submit(order_id, side, 0, size, OrderType.MARKET, ts)

    def cancel(self, order_id: int, ts: int = 0) -> Events:
        self._book.cancel(order_id, ts)
        return self._events()

    def reduce(self, order_id: int, by: int, ts: int = 0) -> Events:
        """Remove ``by`` from a resting order keeping its time priority (all of it cancels)."""
        self._book.reduce(order_id, by, ts)
        return self._events()

    def replace(self, order_id: int, price: int, size: int, ts: int = 0) -> Events:
        """New price/size; the order loses priority unless only its size goes down."""
        self._book.replace(order_id, price, size, ts)
        return self._events()

    def apply_batch(
        self,
        kind: npt.ArrayLike,
        order_id: npt.ArrayLike,
        side: npt.ArrayLike,
        price: npt.ArrayLike,
        size: npt.ArrayLike,
        ts: npt.ArrayLike,
    ) -> Events:
        """Apply many operations (:class:`OpKind` codes) in one call with the GIL released."""
        self._book.apply_batch(
            np.ascontiguousarray(kind, dtype=np.uint8),
            np.ascontiguousarray(order_id, dtype=np.uint64),
            np.ascontiguousarray(side, dtype=np.int8),
            np.ascontiguousarray(price, dtype=np.int64),
            np.ascontiguousarray(size, dtype=np.int64),
            np.ascontiguousarray(ts, dtype=np.int64),
        )
        return self._events()

    @property
    def record_events(self) -> bool:
        return self._book.record_events

    @record_events.setter
    def record_events(self, on: bool) -> None:
        self._book.record_events = on

    # ---------------------------------------------------------------- level mutation
    def add_level_size(self, side: Side | int, price: int, size: int, ts: int = 0) -> int:
        """Add quantity of unknown orders at a level; returns the level's new total."""
        total = self._book.add_level_size(int(side), price, size, ts)
        self._events()
        return total

    def remove_level_size(self, side: Side | int, price: int, size: int, ts: int = 0) -> int:
        """Remove up to ``size`` at a level (unknown quantity first, then the newest orders);
        returns the quantity removed."""
        removed = self._book.remove_level_size(int(side), price, size, ts)
        self._events()
        return removed

    # ---------------------------------------------------------------- views
    def best_bid(self) -> tuple[int, int] | None:
        return self._book.best(1)

    def best_ask(self) -> tuple[int, int] | None:
        return self._book.best(-1)

    def levels(self, side: Side | int, depth: int) -> tuple[IntArray, IntArray]:
        """Prices and sizes of up to ``depth`` levels of one side, best first."""
        px, sz, _ = self._book.levels(int(side), depth)
        return px, sz

    def level_size(self, side: Side | int, price: int) -> int:
        return self._book.level_size(int(side), price)

    def snapshot(self, depth: int = 5, out: Snapshot | None = None) -> Snapshot:
        """Top ``depth`` levels written by C++ straight into numpy arrays (``out``'s, reused
        without allocation, when given)."""
        buf = out if out is not None else Snapshot.empty(depth)
        if out is not None and len(out.bid_price) != depth:
            raise ValueError(f"out holds {len(out.bid_price)} levels, not depth={depth}")
        nb, na = self._book.snapshot_into(buf.bid_price, buf.bid_size, buf.ask_price, buf.ask_size)
        return Snapshot(buf.bid_price, buf.bid_size, buf.ask_price, buf.ask_size, nb, na)

    def order(self, order_id: int) -> Order | None:
        found = self._book.find(order_id)
        if found is None:
            return None
        side, price, size, ts = found
        return Order(order_id, Side(side), price, size, ts)

    def level_queue(
        self, side: Side | int, price: int
    ) -> tuple[int, npt.NDArray[np.uint64], IntArray]:
        """One level's queue in priority order: (quantity of unknown orders, which comes first;
        the known orders' ids; their sizes), front first. An absent level gives (0, [], [])."""
        anon, ids, sizes = self._book.level_queue(int(side), price)
        return int(anon), ids, sizes

    @property
    def features(self) -> dict[str, float]:
        """The current feature values (raises when the book was built without features)."""
        if self._features is None:
            raise ValueError("this OrderBook was created without features=FeatureConfig(...)")
        return dict(zip(FEATURE_NAMES, self._features.current().tolist(), strict=True))

    def check_invariants(self) -> None:
        """Raise AssertionError naming the first broken invariant (crossed book, negative
        size, level totals that do not add up, index out of step)."""
        why = self._book.check_invariants()
        if why:
            raise AssertionError(why)

    def clear(self) -> None:
        self._book.clear()
        if self._features is not None:
            self._features.reset()

    def __len__(self) -> int:
        return self._book.order_count()

    def __contains__(self, order_id: object) -> bool:
        return isinstance(order_id, int) and self._book.find(order_id) is not None


__all__ = [
    "EVENT_DTYPE",
    "FEATURE_NAMES",
    "EventType",
    "Events",
    "FeatureConfig",
    "OpKind",
    "Order",
    "OrderBook",
    "OrderType",
    "RejectReason",
    "Side",
    "Snapshot",
    "trades",
]
