"""Order book: matching semantics case by case, features, and property tests of the
invariants against a plain-Python reference model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tradecore.orderbook import (
    EVENT_DTYPE,
    EventType,
    FeatureConfig,
    OpKind,
    OrderBook,
    OrderType,
    RejectReason,
    Side,
    Snapshot,
    trades,
)

BUY, SELL = Side.BUY, Side.SELL


def trade_list(events: np.ndarray) -> list[tuple[int, int, int, int]]:
    t = trades(events)
    return [(int(e["order_id"]), int(e["other_id"]), int(e["price"]), int(e["size"])) for e in t]


def types(events: np.ndarray) -> list[EventType]:
    return [EventType(int(t)) for t in events["type"]]


def test_limit_orders_rest_and_report_levels() -> None:
    b = OrderBook()
    ev = b.limit(1, BUY, 100, 10, ts=5)
    assert ev.dtype == EVENT_DTYPE
    assert types(ev) == [EventType.ACCEPTED, EventType.LEVEL_CHANGED]
    assert int(ev[1]["size"]) == 10 and int(ev[1]["ts"]) == 5
    b.limit(2, BUY, 100, 5)
    b.limit(3, SELL, 102, 7)
    assert b.best_bid() == (100, 15)
    assert b.best_ask() == (102, 7)
    assert b.order(2) is not None and b.order(2).size == 5  # type: ignore[union-attr]
    assert len(b) == 3
    b.check_invariants()


def test_price_time_priority_and_partial_fill() -> None:
    b = OrderBook()
    b.limit(1, SELL, 101, 5)
    b.limit(2, SELL, 101, 5)
    b.limit(3, SELL, 100, 2)
    ev = b.limit(9, BUY, 101, 8)
    # best price first (100), then time priority within 101
    assert trade_list(ev) == [(9, 3, 100, 2), (9, 1, 101, 5), (9, 2, 101, 1)]
    assert b.order(2).size == 4  # type: ignore[union-attr]
    assert b.order(1) is None and 9 not in b
    assert b.best_ask() == (101, 4)
    assert b.best_bid() is None
    # events come after the match: accepted first, trades, then level changes
    assert types(ev)[0] is EventType.ACCEPTED
    levels = ev[ev["type"] == EventType.LEVEL_CHANGED]
    assert [(int(e["price"]), int(e["size"])) for e in levels] == [(100, 0), (101, 4)]


def test_aggressive_limit_rests_remainder() -> None:
    b = OrderBook()
    b.limit(1, SELL, 100, 3)
    ev = b.limit(2, BUY, 101, 10)
    assert trade_list(ev) == [(2, 1, 100, 3)]
    assert b.best_bid() == (101, 7) and b.best_ask() is None


def test_market_sweeps_and_cancels_rest() -> None:
    b = OrderBook()
    b.limit(1, SELL, 100, 3)
    b.limit(2, SELL, 105, 4)
    ev = b.market(3, BUY, 10)
    assert trade_list(ev) == [(3, 1, 100, 3), (3, 2, 105, 4)]
    cancelled = ev[ev["type"] == EventType.CANCELLED]
    assert int(cancelled[0]["size"]) == 3
    assert b.best_ask() is None and b.best_bid() is None and len(b) == 0
    ev = b.market(4, SELL, 1)
    assert RejectReason(int(ev[0]["reason"])) is RejectReason.NO_LIQUIDITY


def test_ioc_fok_post_only() -> None:
    b = OrderBook()
    b.limit(1, SELL, 100, 5)
    b.limit(2, SELL, 101, 5)
    ev = b.submit(3, BUY, 100, 8, OrderType.IOC)
    assert trade_list(ev) == [(3, 1, 100, 5)]
    assert int(ev[ev["type"] == EventType.CANCELLED][0]["size"]) == 3
    assert b.best_bid() is None
    ev = b.submit(4, BUY, 101, 6, OrderType.FOK)
    assert types(ev) == [EventType.REJECTED]
    assert RejectReason(int(ev[0]["reason"])) is RejectReason.NOT_FILLABLE
    assert b.best_ask() == (101, 5)
    ev = b.submit(5, BUY, 101, 5, OrderType.FOK)
    assert trade_list(ev) == [(5, 2, 101, 5)]
    b.limit(6, SELL, 103, 5)
    ev = b.submit(7, BUY, 103, 1, OrderType.POST_ONLY)
    assert RejectReason(int(ev[0]["reason"])) is RejectReason.WOULD_CROSS
    ev = b.submit(8, BUY, 102, 1, OrderType.POST_ONLY)
    assert trade_list(ev) == [] and b.best_bid() == (102, 1)


def test_rejections() -> None:
    b = OrderBook()
    b.limit(1, BUY, 100, 1)
    for ev, reason in [
        (b.limit(1, BUY, 99, 1), RejectReason.DUPLICATE_ID),
        (b.limit(2, BUY, 99, 0), RejectReason.INVALID_SIZE),
        (b.cancel(42), RejectReason.UNKNOWN_ORDER),
        (b.reduce(42, 1), RejectReason.UNKNOWN_ORDER),
        (b.replace(42, 100, 1), RejectReason.UNKNOWN_ORDER),
        (b.reduce(1, 0), RejectReason.INVALID_SIZE),
        (b.replace(1, 100, -3), RejectReason.INVALID_SIZE),
    ]:
        assert types(ev) == [EventType.REJECTED]
        assert RejectReason(int(ev[0]["reason"])) is reason
    assert b.best_bid() == (100, 1)
    with pytest.raises(ValueError, match="side"):
        b.limit(3, 0, 100, 1)


def test_cancel_reduce_replace_priority() -> None:
    b = OrderBook()
    b.limit(1, SELL, 100, 5)
    b.limit(2, SELL, 100, 5)
    b.limit(3, SELL, 100, 5)
    b.reduce(1, 2)  # keeps priority
    b.replace(2, 100, 9)  # size increase: loses priority (now behind 3)
    ev = b.cancel(3)
    assert int(ev[ev["type"] == EventType.CANCELLED][0]["size"]) == 5
    b.limit(4, SELL, 100, 1)
    ev = b.limit(10, BUY, 100, 20)
    assert trade_list(ev) == [(10, 1, 100, 3), (10, 2, 100, 9), (10, 4, 100, 1)]
    b.replace(10, 100, 2)  # resting bid 10 (7 left): size decrease keeps the order
    assert b.order(10).size == 2  # type: ignore[union-attr]
    b.limit(11, SELL, 105, 4)
    ev = b.replace(11, 100, 4)  # price change that crosses: matches as a limit order
    assert trade_list(ev) == [(11, 10, 100, 2)]
    assert b.best_ask() == (100, 2) and b.best_bid() is None
    b.check_invariants()


def test_level_api_for_unknown_orders() -> None:
    b = OrderBook()
    assert b.add_level_size(BUY, 100, 7) == 7
    b.limit(1, BUY, 100, 3)
    assert b.level_size(BUY, 100) == 10
    # unknown quantity is removed first, then the newest orders
    assert b.remove_level_size(BUY, 100, 8) == 8
    assert b.order(1).size == 2  # type: ignore[union-attr]
    assert b.remove_level_size(BUY, 99, 1) == 0
    b.add_level_size(BUY, 100, 4)
    ev = b.market(5, SELL, 5)
    assert trade_list(ev) == [(5, 0, 100, 4), (5, 1, 100, 1)]  # maker 0: unknown order
    with pytest.raises(ValueError, match="cross"):
        b.add_level_size(SELL, 100, 1)
    with pytest.raises(ValueError):
        b.add_level_size(SELL, 101, 0)


def test_snapshot_writes_into_caller_arrays() -> None:
    b = OrderBook()
    for i, p in enumerate([100, 99, 98]):
        b.limit(i + 1, BUY, p, 10 + i)
    b.limit(10, SELL, 101, 4)
    buf = Snapshot.empty(4)
    snap = b.snapshot(4, out=buf)
    assert snap.bid_price is buf.bid_price  # no copy
    assert snap.bid_price.tolist() == [100, 99, 98, 0]
    assert snap.bid_size.tolist() == [10, 11, 12, 0]
    assert snap.ask_price.tolist() == [101, 0, 0, 0]
    assert (snap.bid_levels, snap.ask_levels) == (3, 1)
    px, sz = b.levels(BUY, 2)
    assert px.tolist() == [100, 99] and sz.tolist() == [10, 11]
    with pytest.raises(ValueError):
        b.snapshot(3, out=buf)


def test_apply_batch_matches_single_calls() -> None:
    ops = [
        (OpKind.LIMIT, 1, 1, 100, 5),
        (OpKind.LIMIT, 2, -1, 102, 5),
        (OpKind.IOC, 3, -1, 99, 7),
        (OpKind.REDUCE, 2, 0, 0, 1),
        (OpKind.REPLACE, 2, 0, 101, 6),
        (OpKind.MARKET, 4, 1, 0, 2),
        (OpKind.CANCEL, 2, 0, 0, 0),
    ]
    a, b = OrderBook(), OrderBook()
    cols = list(zip(*ops, strict=True))
    ev_batch = a.apply_batch(cols[0], cols[1], cols[2], cols[3], cols[4], np.arange(len(ops)))
    singles = []
    for ts, (k, oid, side, price, size) in enumerate(ops):
        if k == OpKind.CANCEL:
            singles.append(b.cancel(oid, ts))
        elif k == OpKind.REDUCE:
            singles.append(b.reduce(oid, size, ts))
        elif k == OpKind.REPLACE:
            singles.append(b.replace(oid, price, size, ts))
        else:
            singles.append(b.submit(oid, side, price, size, OrderType(int(k)), ts))
    assert ev_batch.tolist() == np.concatenate(singles).tolist()
    assert len(ev_batch) == 18
    with pytest.raises(ValueError, match="kind"):
        a.apply_batch([9], [1], [1], [1], [1], [0])


def test_features_follow_the_book() -> None:
    b = OrderBook(features=FeatureConfig(depth=2, vpin_bucket_volume=10, vpin_buckets=2))
    b.limit(1, BUY, 100, 30)
    b.limit(2, BUY, 99, 10)
    b.limit(3, SELL, 104, 10)
    f = b.features
    assert f["spread"] == 4.0 and f["mid"] == 102.0
    assert f["microprice"] == pytest.approx((100 * 10 + 104 * 30) / 40)
    assert f["imbalance"] == pytest.approx((40 - 10) / 50)
    b.limit(4, SELL, 103, 5)  # ask improves: OFI = -(new ask size) = -5
    assert b.features["ofi"] == -5.0
    b.limit(5, BUY, 100, 2)  # same bid price, size 30 -> 32: OFI = +2
    assert b.features["ofi"] == 2.0
    b.market(6, BUY, 12)  # buyer-initiated 5 @103 + 7 @104: one full bucket 10 buy / 0 sell
    f = b.features
    assert f["trade_imbalance"] == 1.0  # two trades, both buys
    assert f["vpin"] == pytest.approx(1.0)
    b.market(7, SELL, 8)  # bucket 2: 2 buy + 8 sell -> |2-8|/10 = 0.6 -> mean 0.8
    f = b.features
    assert f["vpin"] == pytest.approx(0.8)
    assert f["trade_imbalance"] == pytest.approx(1 / 3)
    assert f["realized_vol"] > 0.0


# ------------------------------------------------------------------ reference model


@dataclass
class RefOrder:
    side: int
    price: int
    qty: int
    seq: int


class RefBook:
    """The simplest possible book: a dict of orders, sorted on every match."""

    def __init__(self) -> None:
        self.orders: dict[int, RefOrder] = {}
        self.seq = 0
        self.trades: list[tuple[int, int, int, int]] = []

    def _queue(self, side: int) -> list[tuple[int, RefOrder]]:
        opp = [(i, o) for i, o in self.orders.items() if o.side == -side]
        return sorted(opp, key=lambda io: (io[1].price * side, io[1].seq))

    def _crosses(self, side: int, limit: int | None, price: int) -> bool:
        return limit is None or (price <= limit if side == 1 else price >= limit)

    def _match(self, taker: int, side: int, limit: int | None, qty: int) -> int:
        for mid, o in self._queue(side):
            if qty == 0 or not self._crosses(side, limit, o.price):
                break
            f = min(qty, o.qty)
            o.qty -= f
            qty -= f
            self.trades.append((taker, mid, o.price, f))
            if o.qty == 0:
                del self.orders[mid]
        return qty

    def _rest(self, oid: int, side: int, price: int, qty: int) -> None:
        self.seq += 1
        self.orders[oid] = RefOrder(side, price, qty, self.seq)

    def submit(self, oid: int, side: int, kind: int, price: int, qty: int) -> None:
        if qty <= 0 or oid in self.orders:
            return
        queue = self._queue(side)
        if kind == OrderType.POST_ONLY and queue and self._crosses(side, price, queue[0][1].price):
            return
        if kind == OrderType.FOK:
            avail = sum(o.qty for _, o in queue if self._crosses(side, price, o.price))
            if avail < qty:
                return
        if kind == OrderType.MARKET and not queue:
            return
        left = self._match(oid, side, None if kind == OrderType.MARKET else price, qty)
        if left and kind in (OrderType.LIMIT, OrderType.POST_ONLY):
            self._rest(oid, side, price, left)

    def cancel(self, oid: int) -> None:
        self.orders.pop(oid, None)

    def reduce(self, oid: int, by: int) -> None:
        o = self.orders.get(oid)
        if o is None or by <= 0:
            return
        if by >= o.qty:
            del self.orders[oid]
        else:
            o.qty -= by

    def replace(self, oid: int, price: int, qty: int) -> None:
        o = self.orders.get(oid)
        if o is None or qty <= 0:
            return
        if price == o.price and qty <= o.qty:
            o.qty = qty
            return
        del self.orders[oid]
        left = self._match(oid, o.side, price, qty)
        if left:
            self._rest(oid, o.side, price, left)

    def levels(self, side: int) -> list[tuple[int, int]]:
        agg: dict[int, int] = {}
        for o in self.orders.values():
            if o.side == side:
                agg[o.price] = agg.get(o.price, 0) + o.qty
        return sorted(agg.items(), key=lambda pq: -pq[0] * side)


op_strategy = st.tuples(
    st.integers(0, 7),  # OpKind
    st.integers(1, 25),  # order id
    st.sampled_from([1, -1]),
    st.integers(95, 105),
    st.integers(-1, 20),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op_strategy, min_size=1, max_size=120))
def test_book_matches_reference_model(ops: list[tuple[int, int, int, int, int]]) -> None:
    book, ref = OrderBook(16), RefBook()
    got: list[tuple[int, int, int, int]] = []
    submitted = traded = cancelled = 0
    for kind, oid, side, price, size in ops:
        if kind == OpKind.CANCEL:
            ev = book.cancel(oid)
            ref.cancel(oid)
        elif kind == OpKind.REDUCE:
            ev = book.reduce(oid, size)
            ref.reduce(oid, size)
        elif kind == OpKind.REPLACE:
            ev = book.replace(oid, price, size)
            ref.replace(oid, price, size)
        else:
            ev = book.submit(oid, side, price, size, OrderType(kind))
            ref.submit(oid, side, kind, price, size)
        got += trade_list(ev)
        book.check_invariants()  # never crossed, positive sizes, totals add up
        acc = ev[ev["type"] == EventType.ACCEPTED]
        submitted += int(acc["size"].sum())
        traded += int(trades(ev)["size"].sum())
        cancelled += int(ev[ev["type"] == EventType.CANCELLED]["size"].sum())
    assert got == ref.trades
    for side in (1, -1):
        px, sz = book.levels(side, 1000)
        assert list(zip(px.tolist(), sz.tolist(), strict=True)) == ref.levels(side)
    for oid, o in ref.orders.items():
        mine = book.order(oid)
        assert mine is not None and (mine.side, mine.price, mine.size) == (o.side, o.price, o.qty)
    assert len(book) == len(ref.orders)
    # conservation, counting replace/reduce through the reference's resting total
    resting = sum(o.qty for o in ref.orders.values())
    if not any(k in (OpKind.REDUCE, OpKind.REPLACE) for k, *_ in ops):
        assert submitted == 2 * traded + resting + cancelled


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from([1, -1]), st.integers(90, 110), st.integers(1, 9)),
        max_size=80,
    )
)
def test_level_api_never_goes_negative(ops: list[tuple[bool, int, int, int]]) -> None:
    book = OrderBook()
    model: dict[tuple[int, int], int] = {}
    for add, side, price, size in ops:
        if add:
            best = book.best_ask() if side == 1 else book.best_bid()
            if best is not None and (price >= best[0] if side == 1 else price <= best[0]):
                with pytest.raises(ValueError):
                    book.add_level_size(side, price, size)
                continue
            book.add_level_size(side, price, size)
            model[(side, price)] = model.get((side, price), 0) + size
        else:
            have = model.get((side, price), 0)
            assert book.remove_level_size(side, price, size) == min(have, size)
            if have > size:
                model[(side, price)] = have - size
            else:
                model.pop((side, price), None)
        book.check_invariants()
    for (side, price), q in model.items():
        assert book.level_size(side, price) == q


def test_level_queue_lists_unknown_quantity_then_orders_front_first() -> None:
    b = OrderBook()
    assert b.level_queue(Side.BUY, 100)[0] == 0 and len(b.level_queue(Side.BUY, 100)[1]) == 0
    b.add_level_size(Side.BUY, 100, 7)
    b.limit(1, Side.BUY, 100, 3)
    b.limit(2, Side.BUY, 100, 4)
    b.limit(3, Side.BUY, 99, 5)
    b.reduce(1, 1)  # keeps its place
    anon, ids, sizes = b.level_queue(Side.BUY, 100)
    assert anon == 7 and ids.tolist() == [1, 2] and sizes.tolist() == [2, 4]
    b.replace(1, 100, 6)  # a size increase goes to the back
    assert b.level_queue(Side.BUY, 100)[1].tolist() == [2, 1]
