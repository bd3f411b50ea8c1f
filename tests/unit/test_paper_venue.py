"""The paper venue: fills against independent plain-Python FIFO models (a seeded random L3
stream and the real LOBSTER GOOG day), marketable walks, IOC/FOK, icebergs, latency, fees,
cancel/replace races, the L2 queue model and determinism."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from tradecore import lobster
from tradecore.oms import (
    Liquidity,
    OrderType,
    Side,
    TimeInForce,
    VenueEvent,
    VenueEventKind,
    VenueOrder,
)
from tradecore.oms.paper import L3, PaperConfig, PaperVenue

from tests.unit.test_lobster import GOOG, MISSING, lobster_dir

SYM = "XYZ"
SCALE = 100  # ticks per dollar in the hand-made books
BUY, SELL = 1, -1


def order(
    oid: str,
    side: Side,
    qty: int,
    price: float | None = None,
    tif: TimeInForce = TimeInForce.DAY,
    display: int | None = None,
    symbol: str = SYM,
) -> VenueOrder:
    kind = OrderType.MARKET if price is None else OrderType.LIMIT
    return VenueOrder(oid, "acc", symbol, side, qty, kind, tif, price, None, display)


def venue(**kw: int | float) -> tuple[PaperVenue, list[VenueEvent]]:
    v = PaperVenue(PaperConfig(price_scale=SCALE, **kw))  # type: ignore[arg-type]
    events: list[VenueEvent] = []
    v.set_listener(events.append)
    return v, events


def fills(events: list[VenueEvent], oid: str | None = None) -> list[tuple[int, float, str]]:
    return [
        (e.fill_quantity, e.fill_price, str(e.liquidity))
        for e in events
        if e.kind is VenueEventKind.FILL and (oid is None or e.order_id == oid)
    ]


def kinds(events: list[VenueEvent], oid: str) -> list[str]:
    return [str(e.kind) for e in events if e.order_id == oid]


def book_of(v: PaperVenue, bids: list[tuple[int, int, int]], asks: list[tuple[int, int, int]]):  # type: ignore[no-untyped-def]
    """Adds market orders (id, price ticks, size) at ts 1."""
    for oid, p, q in bids:
        v.on_l3(SYM, L3.ADD, oid, BUY, p, q, 1)
    for oid, p, q in asks:
        v.on_l3(SYM, L3.ADD, oid, SELL, p, q, 1)


# ------------------------------------------------------------------ an independent FIFO model


@dataclass
class Marker:
    """Our order inside the model's level list."""

    oid: str
    leaves: int


class FifoModel:
    """A plain-Python book of the same rules, written without the venue's code: each level is one
    list holding market orders [id, size] and our orders (Marker) in arrival order; our orders'
    fills come from walking these lists."""

    def __init__(self) -> None:
        self.levels: dict[tuple[int, int], list[list[int] | Marker]] = {}
        self.where: dict[int, tuple[int, int]] = {}
        self.taken: dict[tuple[int, int], int] = {}
        self.fills: list[tuple[str, int, int, str]] = []  # (oid, qty, price ticks, liquidity)

    def _lvl(self, key: tuple[int, int]) -> list[list[int] | Marker]:
        return self.levels.setdefault(key, [])

    def _fill_markers(self, key: tuple[int, int], entries: list[Marker], q: int) -> int:
        """Fill ``entries`` front first with up to q; the ones reached were passed by the
        aggressor: they move to the front of their level (the filled ones leave)."""
        reached: list[Marker] = []
        for m in entries:
            if q == 0:
                break
            n = min(m.leaves, q)
            m.leaves -= n
            q -= n
            self.fills.append((m.oid, n, key[1], "MAKER"))
            reached.append(m)
        lvl = self.levels[key]
        rest = [e for e in lvl if not (isinstance(e, Marker) and e in reached)]
        self.levels[key] = [m for m in reached if m.leaves > 0] + rest
        return q

    def _through(self, side: int, price: int, q: int) -> int:
        better = sorted(
            (
                p
                for (s, p) in self.levels
                if s == side and (p > price if side == BUY else p < price)
            ),
            reverse=side == BUY,
        )
        for p in better:
            markers = [e for e in self.levels[(side, p)] if isinstance(e, Marker)]
            q = self._fill_markers((side, p), markers, q)
        return q

    def add(self, oid: int, side: int, price: int, size: int) -> None:
        self.taken.pop((side, price), None)
        # a market order that crosses our opposite orders trades with them first
        opp = -side
        crossed = sorted(
            (
                p
                for (s, p) in self.levels
                if s == opp and (price >= p if side == BUY else price <= p)
            ),
            reverse=opp == BUY,
        )
        q = size
        for p in crossed:
            markers = [e for e in self.levels[(opp, p)] if isinstance(e, Marker)]
            q = self._fill_markers((opp, p), markers, q)
        self._lvl((side, price)).append([oid, size])
        self.where[oid] = (side, price)

    def remove(self, oid: int, size: int, execution: bool) -> None:
        key = self.where[oid]
        self.taken.pop(key, None)
        side, price = key
        left = self._through(side, price, size) if execution else size
        lvl = self.levels[key]
        pos = next(i for i, e in enumerate(lvl) if not isinstance(e, Marker) and e[0] == oid)
        if execution:
            ahead = [e for e in lvl[:pos] if isinstance(e, Marker)]
            if ahead and left > 0:
                self._fill_markers(key, ahead, left)
                lvl = self.levels[key]
                pos = next(
                    i for i, e in enumerate(lvl) if not isinstance(e, Marker) and e[0] == oid
                )
        entry = lvl[pos]
        assert not isinstance(entry, Marker)
        entry[1] -= size
        if entry[1] <= 0:
            del lvl[pos]
            del self.where[oid]

    def rest(self, oid: str, side: int, price: int, qty: int) -> None:
        self._lvl((side, price)).append(Marker(oid, qty))

    def cancel_ours(self, oid: str) -> None:
        for lvl in self.levels.values():
            lvl[:] = [e for e in lvl if not (isinstance(e, Marker) and e.oid == oid)]

    def take(self, oid: str, side: int, limit: int, qty: int) -> int:
        """Our marketable IOC order: walk the opposite market orders (not ours)."""
        opp = -side
        prices = sorted(
            (
                p
                for (s, p) in self.levels
                if s == opp and (p <= limit if side == BUY else p >= limit)
            ),
            reverse=opp == BUY,
        )
        for p in prices:
            size = sum(e[1] for e in self.levels[(opp, p)] if not isinstance(e, Marker))
            avail = size - self.taken.get((opp, p), 0)
            n = min(avail, qty)
            if n > 0:
                self.taken[(opp, p)] = self.taken.get((opp, p), 0) + n
                self.fills.append((oid, n, p, "TAKER"))
                qty -= n
            if qty == 0:
                break
        return qty

    def ahead(self, oid: str) -> int | None:
        for lvl in self.levels.values():
            total = 0
            for e in lvl:
                if isinstance(e, Marker):
                    if e.oid == oid:
                        return total if e.leaves > 0 else None
                else:
                    total += e[1]
        return None

    def market_ids(self) -> list[int]:
        return list(self.where)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_fills_match_an_independent_fifo_model_on_a_random_l3_stream(seed: int) -> None:
    rng = random.Random(seed)
    v, events = venue()
    model = FifoModel()
    next_id = 1
    ours: list[str] = []
    ts = 0
    for step in range(3000):
        ts += rng.randint(0, 3)
        r = rng.random()
        ids = model.market_ids()
        if r < 0.40 or not ids:
            side = rng.choice((BUY, SELL))
            price = rng.randint(995, 1004) if side == BUY else rng.randint(1006, 1015)
            size = rng.randint(1, 60)
            v.on_l3(SYM, L3.ADD, next_id, side, price, size, ts)
            model.add(next_id, side, price, size)
            next_id += 1
        elif r < 0.62:
            oid = rng.choice(ids)
            side, price = model.where[oid]
            size = next(
                e[1]
                for e in model.levels[(side, price)]
                if not isinstance(e, Marker) and e[0] == oid
            )
            if rng.random() < 0.5:
                v.on_l3(SYM, L3.DELETE, oid, side, price, size, ts)
                model.remove(oid, size, execution=False)
            else:
                q = rng.randint(1, size)
                v.on_l3(SYM, L3.CANCEL, oid, side, price, q, ts)
                model.remove(oid, q, execution=False)
        elif r < 0.85:
            # executions mostly hit the front order of a level, sometimes any order
            oid = rng.choice(ids)
            side, price = model.where[oid]
            lvl = [e for e in model.levels[(side, price)] if not isinstance(e, Marker)]
            if rng.random() < 0.7:
                oid = lvl[0][0]
            size = next(e[1] for e in lvl if e[0] == oid)
            q = rng.randint(1, size)
            v.on_l3(SYM, L3.EXECUTE, oid, side, price, q, ts)
            model.remove(oid, q, execution=True)
        elif r < 0.93:
            side = rng.choice((BUY, SELL))
            price = rng.randint(997, 1004) if side == BUY else rng.randint(1006, 1013)
            qty = rng.randint(1, 50)
            oid = f"r{step}"
            v.submit(order(oid, Side.BUY if side == BUY else Side.SELL, qty, price / SCALE))
            model.rest(oid, side, price, qty)
            ours.append(oid)
        elif r < 0.97:
            side = rng.choice((BUY, SELL))
            limit = 1008 if side == BUY else 1002
            qty = rng.randint(1, 80)
            oid = f"t{step}"
            v.submit(
                order(
                    oid, Side.BUY if side == BUY else Side.SELL, qty, limit / SCALE, TimeInForce.IOC
                )
            )
            model.take(oid, side, limit, qty)
        elif ours:
            oid = rng.choice(ours)
            v.cancel(oid)
            model.cancel_ours(oid)
            ours.remove(oid)
        for oid in ours:
            assert v.queue_ahead(oid) == model.ahead(oid), (step, oid)
    got = [
        (e.order_id, e.fill_quantity, round(e.fill_price * SCALE), str(e.liquidity))
        for e in events
        if e.kind is VenueEventKind.FILL
    ]
    assert got == model.fills
    assert len(got) > 50  # the stream exercised both the walks and the queues
    assert {f[3] for f in got} == {"MAKER", "TAKER"}
    # the feed's book is untouched by our orders: it equals the model's market orders
    for (side, price), lvl in model.levels.items():
        size = sum(e[1] for e in lvl if not isinstance(e, Marker))
        assert v.book(SYM).level_size(side, price) == size


# ------------------------------------------------------------------ the LOBSTER day


@pytest.fixture(scope="module")
def goog() -> tuple[lobster.Messages, np.ndarray]:
    d = lobster_dir()
    if d is None or not (d / GOOG.format("message")).is_file():
        pytest.skip(MISSING)
    return (
        lobster.parse_messages(d / GOOG.format("message")),
        lobster.parse_book(Path(d / GOOG.format("orderbook")), 1),
    )


def lobster_queue_model(
    m: lobster.Messages, rows: np.ndarray, t: int, qty: int, horizon: int
) -> tuple[list[int | None], list[tuple[int, int]]]:
    """Independent model of one buy order placed at the best bid after message t, from the
    messages and the orderbook file alone, following only that price level from the start of
    the day. The level holds unknown quantity (orders the file never added) and the known
    orders in arrival order; everything there when we arrive is ahead of us, and the unknown
    quantity ahead of us is at most the level's unknown quantity. Quantity that leaves the level
    without a known id takes unknown quantity first, then the newest known orders. The file's
    level-1 row is the truth about the level whenever it shows it (and a best bid below the
    price means the level is gone). Returns the queue ahead after every message after t and
    the fills (time, qty)."""
    price = int(rows[t][2])
    known: dict[int, list[int]] = {}  # id -> [side, price, size], in arrival order
    anon = 0  # the level's unknown quantity
    unknown = 0  # the part of it ahead of us
    ahead: set[int] = set()  # the known orders ahead of us

    def at_price() -> list[int]:
        return [o for o, (d, p, _) in known.items() if d == BUY and p == price]

    def ahead_qty() -> int:
        return unknown + sum(known[o][2] for o in ahead if o in known)

    def remove_anonymously(q: int) -> None:
        nonlocal anon, unknown
        take = min(anon, q)
        anon -= take
        q -= take
        unknown = min(unknown, anon)
        for o in reversed(at_price()):
            if q == 0:
                break
            n = min(known[o][2], q)
            known[o][2] -= n
            q -= n
            if known[o][2] == 0:
                del known[o]

    def is_known(oid: int, p: int, d: int) -> bool:
        return oid in known and known[oid][1] == p and known[oid][0] == d

    def apply(k: int, oid: int, q: int, p: int, d: int) -> None:
        nonlocal anon
        ours = d == BUY and p == price
        if k == 1:
            if oid not in known:
                known[oid] = [d, p, q]
            elif ours:
                anon += q  # a reused id: its quantity joins the level
        elif k in (2, 3, 4) and is_known(oid, p, d):
            removed = known[oid][2] if k == 3 else min(q, known[oid][2])
            known[oid][2] -= removed
            if known[oid][2] == 0:
                del known[oid]
            if ours and q > removed:  # the message's size is what left the level
                remove_anonymously(q - removed)
            elif ours and q < removed:
                anon += removed - q
        elif k in (2, 3, 4) and ours:
            remove_anonymously(q)

    leaves = qty
    trail: list[int | None] = []
    got: list[tuple[int, int]] = []
    for i in range(min(len(m), t + 1 + horizon)):
        k, oid, q, p, d = (
            int(m.type[i]),
            int(m.order_id[i]),
            int(m.size[i]),
            int(m.price[i]),
            int(m.direction[i]),
        )
        fill = 0
        if i > t and d == BUY and p == price and k in (2, 3, 4):
            if is_known(oid, p, d):
                if k == 4 and oid not in ahead:
                    fill = min(leaves, q)  # the execution of an order behind us passed us
            elif k == 4 and unknown < q and ahead_qty() == unknown:
                fill = min(leaves, q - unknown)  # nothing else ahead: it went through us
            else:
                unknown -= min(unknown, q)
        elif i > t and d == BUY and k in (4, 5) and p < price:
            fill = min(leaves, q)  # traded through our price
        elif i > t and d == SELL and k == 1 and p <= price:
            fill = min(leaves, q)  # a sell order crossing our bid
        apply(k, oid, q, p, d)
        if fill:
            leaves -= fill
            got.append((int(m.time_ns[i]), fill))
            ahead.clear()
            unknown = 0
        total = anon + sum(known[o][2] for o in at_price())
        best, size = int(rows[i][2]), int(rows[i][3])
        if best < price or size == 0:
            remove_anonymously(total)  # the level is gone from the market
        elif best == price and size > total:
            anon += size - total
        elif best == price and size < total:
            remove_anonymously(total - size)
        if i == t:  # we arrive: everything at the level is ahead
            ahead = set(at_price())
            unknown = anon
        elif i > t:
            trail.append(ahead_qty() if leaves else None)
            if not leaves:
                break
    return trail, got


@pytest.mark.parametrize("t", [2_000, 5_000, 12_000, 22_000, 25_000, 29_500, 40_000])
def test_queue_position_on_the_lobster_day_follows_the_orders_ahead(
    goog: tuple[lobster.Messages, np.ndarray], t: int
) -> None:
    m, rows = goog
    horizon = 4_000
    trail, expected = lobster_queue_model(m, rows, t, 100, horizon)
    v = PaperVenue(PaperConfig(price_scale=10_000))
    events: list[VenueEvent] = []
    v.set_listener(events.append)
    v.feed_lobster("GOOG", m, rows, 1, 0, t + 1)
    price = int(rows[t][2])
    v.submit(order("q", Side.BUY, 100, price / 10_000, symbol="GOOG"))
    assert v.queue_ahead("q") == int(rows[t][3])  # behind the whole displayed level
    seen: list[int | None] = []
    for i in range(t + 1, t + 1 + len(trail)):
        v.feed_lobster("GOOG", m, rows, 1, i, i + 1)
        seen.append(v.queue_ahead("q"))
    assert seen == trail
    got = [(e.time_ns, e.fill_quantity) for e in events if e.kind is VenueEventKind.FILL]
    assert got == expected
    assert all(
        e.liquidity is Liquidity.MAKER and e.fill_price == price / 10_000
        for e in events
        if e.kind is VenueEventKind.FILL
    )


def test_a_lobster_order_fills_only_once_the_queue_ahead_is_executed(
    goog: tuple[lobster.Messages, np.ndarray],
) -> None:
    """Message 29,500's best bid: the order advances as the orders ahead execute and cancel,
    is never pushed back, and fills when an execution at its price reaches it with nothing
    ahead any more."""
    m, rows = goog
    t = 29_500
    v = PaperVenue(PaperConfig(price_scale=10_000))
    events: list[VenueEvent] = []
    v.set_listener(events.append)
    v.feed_lobster("GOOG", m, rows, 1, 0, t + 1)
    price = int(rows[t][2])
    v.submit(order("q", Side.BUY, 100, price / 10_000, symbol="GOOG"))
    assert v.queue_ahead("q") == 110
    advanced_by: dict[int, int] = {}
    i = t + 1
    while True:
        before = v.queue_ahead("q")
        assert before is not None
        n = len(events)
        v.feed_lobster("GOOG", m, rows, 1, i, i + 1)
        if len(events) > n:
            break
        after = v.queue_ahead("q")
        assert after is not None and after <= before  # never pushed back
        if after < before:
            advanced_by[int(m.type[i])] = advanced_by.get(int(m.type[i]), 0) + before - after
        i += 1
    assert int(m.type[i]) == L3.EXECUTE and int(m.price[i]) == price
    assert before == 0  # the queue ahead was exhausted when the execution reached us
    assert advanced_by.get(L3.EXECUTE, 0) > 0 and sum(advanced_by.values()) == 110
    assert events[-1].kind is VenueEventKind.FILL and events[-1].liquidity is Liquidity.MAKER
    assert events[-1].fill_quantity == min(100, int(m.size[i]))


def test_the_feed_book_is_not_changed_by_our_orders(
    goog: tuple[lobster.Messages, np.ndarray],
) -> None:
    m, rows = goog
    v = PaperVenue(PaperConfig(price_scale=10_000))
    v.feed_lobster("GOOG", m, rows, 1, 0, 10_000)
    bid, ask = v.book("GOOG").best_bid(), v.book("GOOG").best_ask()
    assert bid is not None and ask is not None
    v.submit(order("take", Side.BUY, 50, ask[0] / 10_000, TimeInForce.IOC, symbol="GOOG"))
    v.submit(order("rest", Side.SELL, 300, ask[0] / 10_000, symbol="GOOG"))
    v.feed_lobster("GOOG", m, rows, 1, 10_000, len(m))
    ref = lobster.replay(m, rows, 1).book
    for side in (BUY, SELL):
        assert v.book("GOOG").levels(side, 50)[0].tolist() == ref.levels(side, 50)[0].tolist()
        assert v.book("GOOG").levels(side, 50)[1].tolist() == ref.levels(side, 50)[1].tolist()


# ------------------------------------------------------------------ walks, IOC, FOK, icebergs


def test_a_marketable_order_walks_the_book_and_cannot_take_the_same_liquidity_twice() -> None:
    v, events = venue(taker_fee=0.003)
    book_of(v, [(1, 9_990, 100)], [(2, 10_001, 100), (3, 10_002, 100), (4, 10_003, 100)])
    v.submit(order("a", Side.BUY, 250, 100.03))
    assert fills(events, "a") == [
        (100, 100.01, "TAKER"),
        (100, 100.02, "TAKER"),
        (50, 100.03, "TAKER"),
    ]
    assert [round(e.fee, 6) for e in events if e.kind is VenueEventKind.FILL] == [0.3, 0.3, 0.15]
    # what we took stays taken until the feed updates those levels
    v.submit(order("b", Side.BUY, 100, 100.03, TimeInForce.IOC))
    assert fills(events, "b") == [(50, 100.03, "TAKER")]
    assert kinds(events, "b")[-1] == "CANCELED"
    v.on_l3(SYM, L3.CANCEL, 2, SELL, 10_001, 10, 2)  # the feed's next message for 100.01
    v.submit(order("c", Side.BUY, 500, None))
    assert fills(events, "c") == [(90, 100.01, "TAKER")]  # the feed's own size again
    # the market's book is the feed's
    assert (
        v.book(SYM).level_size(SELL, 10_001) == 90 and v.book(SYM).level_size(SELL, 10_002) == 100
    )


def test_ioc_cancels_its_remainder_and_fok_fills_completely_or_not_at_all() -> None:
    v, events = venue()
    book_of(v, [(1, 9_990, 100)], [(2, 10_001, 30), (3, 10_002, 30)])
    v.submit(order("fok1", Side.BUY, 61, 100.02, TimeInForce.FOK))
    assert fills(events, "fok1") == [] and kinds(events, "fok1") == ["ACCEPTED", "CANCELED"]
    v.submit(order("ioc", Side.BUY, 40, 100.01, TimeInForce.IOC))
    assert fills(events, "ioc") == [(30, 100.01, "TAKER")]
    assert (
        kinds(events, "ioc") == ["ACCEPTED", "FILL", "CANCELED"] and events[-1].leaves_quantity == 0
    )
    v.submit(order("fok2", Side.BUY, 30, 100.02, TimeInForce.FOK))
    assert fills(events, "fok2") == [(30, 100.02, "TAKER")] and kinds(events, "fok2")[-1] == "FILL"
    assert v.lookup("fok2") is not None and v.lookup("fok2").leaves_quantity == 0  # type: ignore[union-attr]


def test_an_iceberg_refill_goes_to_the_back_of_the_queue() -> None:
    v, events = venue(maker_fee=-0.002)
    v.on_l3(SYM, L3.ADD, 1, BUY, 10_000, 50, 1)  # A
    v.submit(order("ice", Side.BUY, 30, 100.00, display=10))
    v.submit(order("plain", Side.BUY, 10, 100.00))  # behind the iceberg's slice
    v.on_l3(SYM, L3.ADD, 2, BUY, 10_000, 20, 2)  # B, behind both
    v.on_l3(SYM, L3.ADD, 3, BUY, 10_000, 40, 3)  # C
    assert v.queue_ahead("ice") == 50 and v.queue_ahead("plain") == 50
    v.on_l3(SYM, L3.EXECUTE, 1, BUY, 10_000, 50, 4)  # A goes: nothing ahead
    assert v.queue_ahead("ice") == 0
    v.on_l3(SYM, L3.EXECUTE, 2, BUY, 10_000, 15, 5)  # B executes: it was behind us
    assert fills(events) == [(10, 100.0, "MAKER"), (5, 100.0, "MAKER")]
    assert [e.order_id for e in events if e.kind is VenueEventKind.FILL] == ["ice", "plain"]
    assert [round(e.fee, 6) for e in events if e.kind is VenueEventKind.FILL] == [-0.02, -0.01]
    # the next slice of 10 joined the back: behind B's 5 left and C's 40
    assert v.queue_ahead("ice") == 45
    assert v.queue_ahead("plain") == 0
    v.on_l3(SYM, L3.EXECUTE, 2, BUY, 10_000, 5, 6)  # B again: reaches "plain", not the slice
    assert fills(events)[-1] == (5, 100.0, "MAKER") and events[-1].order_id == "plain"
    assert v.queue_ahead("ice") == 40


def test_several_of_our_orders_at_one_price_share_one_fifo() -> None:
    v, events = venue()
    v.on_l3(SYM, L3.ADD, 1, SELL, 10_100, 10, 1)
    v.submit(order("first", Side.SELL, 5, 101.00))
    v.on_l3(SYM, L3.ADD, 2, SELL, 10_100, 10, 2)
    v.submit(order("second", Side.SELL, 5, 101.00))
    v.on_l3(SYM, L3.ADD, 3, SELL, 10_100, 10, 3)
    assert (v.queue_ahead("first"), v.queue_ahead("second")) == (10, 20)
    v.on_l3(SYM, L3.DELETE, 2, SELL, 10_100, 10, 4)  # between them: advances only "second"
    assert (v.queue_ahead("first"), v.queue_ahead("second")) == (10, 10)
    v.on_l3(SYM, L3.DELETE, 3, SELL, 10_100, 10, 4)  # behind both: advances nobody
    assert (v.queue_ahead("first"), v.queue_ahead("second")) == (10, 10)
    v.on_l3(SYM, L3.ADD, 4, SELL, 10_100, 10, 5)
    v.on_l3(SYM, L3.EXECUTE, 1, SELL, 10_100, 10, 6)
    v.on_l3(SYM, L3.EXECUTE, 4, SELL, 10_100, 7, 7)  # behind both: fills them in order
    assert [(e.order_id, e.fill_quantity) for e in events if e.kind is VenueEventKind.FILL] == [
        ("first", 5),
        ("second", 2),
    ]


def test_an_execution_through_our_price_and_a_crossing_order_fill_us() -> None:
    v, events = venue()
    v.on_l3(SYM, L3.ADD, 1, BUY, 10_000, 100, 1)
    v.submit(order("b", Side.BUY, 30, 100.01))  # better than the market's bid
    v.on_l3(SYM, L3.EXECUTE_HIDDEN, 0, BUY, 10_000, 10, 2)  # a hidden buy at 100.00 traded
    assert fills(events, "b") == [(10, 100.01, "MAKER")]
    v.on_l3(SYM, L3.ADD, 2, SELL, 10_001, 50, 3)  # a sell at our price would have hit us
    assert fills(events, "b")[-1] == (20, 100.01, "MAKER") and v.lookup("b").leaves_quantity == 0  # type: ignore[union-attr]
    assert v.book(SYM).level_size(SELL, 10_001) == 50  # the feed's order is still there


# ------------------------------------------------------------------ latency and races


def test_entry_latency_shifts_what_the_order_finds() -> None:
    results = {}
    for latency in (0, 1_000):
        v, events = venue(entry_latency_ns=latency)
        book_of(v, [(1, 9_990, 100)], [(2, 10_001, 100)])
        v.advance(10)
        v.submit(order("x", Side.BUY, 100, 100.01, TimeInForce.IOC))
        v.on_l3(SYM, L3.DELETE, 2, SELL, 10_001, 100, 500)  # someone else takes the ask
        v.advance(2_000)
        results[latency] = (fills(events, "x"), [e.time_ns for e in events if e.order_id == "x"])
    assert results[0] == ([(100, 100.01, "TAKER")], [10, 10])
    assert results[1_000] == ([], [1_010, 1_010])  # arrived after the ask was gone


def test_events_carry_venue_time_and_arrive_after_the_response_latency() -> None:
    v, events = venue(entry_latency_ns=100, response_latency_ns=50)
    book_of(v, [(1, 9_990, 100)], [(2, 10_001, 100)])
    v.advance(1_000)
    v.submit(order("x", Side.BUY, 10, 99.90))
    assert v.lookup("x") is None  # not at the venue yet
    v.advance(1_100)
    assert events == [] and v.lookup("x") is not None
    assert v.lookup("x").kind is VenueEventKind.ACCEPTED  # type: ignore[union-attr]
    v.advance(1_149)
    assert events == []
    v.advance(1_150)
    assert [(e.kind, e.time_ns) for e in events] == [(VenueEventKind.ACCEPTED, 1_100)]
    v.on_l3(SYM, L3.ADD, 3, BUY, 9_990, 5, 1_200)
    v.on_l3(SYM, L3.EXECUTE, 3, BUY, 9_990, 5, 1_300)  # behind us: fills 5 at 1_300
    assert len(events) == 1
    v.advance(1_350)
    assert [(e.kind, e.time_ns) for e in events][-1] == (VenueEventKind.FILL, 1_300)


def test_a_cancel_racing_a_fill_reports_the_real_sequence() -> None:
    # full fill while the cancel travels: FILL, then CANCEL_REJECTED
    v, events = venue(entry_latency_ns=100)
    v.on_l3(SYM, L3.ADD, 1, BUY, 10_000, 10, 0)
    v.submit(order("a", Side.BUY, 10, 100.00))
    v.advance(100)
    v.on_l3(SYM, L3.ADD, 2, BUY, 10_000, 40, 110)
    v.cancel("a")  # reaches the venue at 210
    v.on_l3(SYM, L3.EXECUTE, 1, BUY, 10_000, 10, 150)
    v.on_l3(SYM, L3.EXECUTE, 2, BUY, 10_000, 40, 200)
    v.advance(300)
    assert kinds(events, "a") == ["ACCEPTED", "FILL", "CANCEL_REJECTED"]
    assert v.lookup("a").kind is VenueEventKind.FILL  # type: ignore[union-attr]
    # partial fill first: FILL, then CANCELED of the rest
    v, events = venue(entry_latency_ns=100)
    v.on_l3(SYM, L3.ADD, 1, BUY, 10_000, 10, 0)
    v.submit(order("a", Side.BUY, 10, 100.00))
    v.advance(100)
    v.on_l3(SYM, L3.ADD, 2, BUY, 10_000, 40, 110)
    v.on_l3(SYM, L3.EXECUTE, 1, BUY, 10_000, 10, 120)
    v.cancel("a")
    v.on_l3(SYM, L3.EXECUTE, 2, BUY, 10_000, 4, 200)
    v.on_l3(SYM, L3.EXECUTE, 2, BUY, 10_000, 4, 230)  # after the cancel: no fill
    assert kinds(events, "a") == ["ACCEPTED", "FILL", "CANCELED"]
    assert fills(events, "a") == [(4, 100.0, "MAKER")] and events[-1].leaves_quantity == 0


def test_replace_keeps_priority_only_for_a_size_decrease() -> None:
    v, events = venue()
    v.on_l3(SYM, L3.ADD, 1, BUY, 10_000, 10, 1)
    v.submit(order("a", Side.BUY, 20, 100.00))
    v.on_l3(SYM, L3.ADD, 2, BUY, 10_000, 30, 2)
    v.replace("a", 15, None)
    assert v.queue_ahead("a") == 10 and events[-1].kind is VenueEventKind.REPLACED
    assert (events[-1].new_quantity, events[-1].leaves_quantity) == (15, 15)
    v.replace("a", 25, None)  # an increase: to the back
    assert v.queue_ahead("a") == 40
    v.replace("a", 25, 100.01)  # a new price: a new level
    assert v.queue_ahead("a") == 0 and events[-1].new_limit_price == 100.01
    v.replace("a", 25, 100.00)
    assert v.queue_ahead("a") == 40
    v.replace("a", 0, None)
    assert events[-1].kind is VenueEventKind.REPLACE_REJECTED and v.queue_ahead("a") == 40
    v.cancel("a")
    v.replace("a", 5, None)
    assert kinds(events, "a")[-2:] == ["CANCELED", "REPLACE_REJECTED"]
    assert v.lookup("a").kind is VenueEventKind.CANCELED  # type: ignore[union-attr]


def test_invalid_orders_are_rejected_events_and_lookup_keeps_the_first_order() -> None:
    v, events = venue()
    v.submit(order("a", Side.BUY, 10, 100.00))
    v.submit(order("a", Side.SELL, 5, 101.00))
    assert events[-1].kind is VenueEventKind.REJECTED and "duplicate" in events[-1].reason
    assert v.lookup("a").kind is VenueEventKind.ACCEPTED  # type: ignore[union-attr]
    v.submit(order("b0", Side.BUY, True, 100.00))  # type: ignore[arg-type]
    v.submit(order("b1", Side.BUY, 10, 100.00, display=0))
    assert [e.reason.split()[0] for e in events[-2:]] == ["quantity", "display_quantity"]
    v.submit(order("b", Side.BUY, 0, 100.00))
    v.submit(order("c", Side.BUY, 10, 100.005))
    v.submit(VenueOrder("d", "acc", SYM, Side.BUY, 10, OrderType.STOP, TimeInForce.DAY))
    assert [e.reason.split()[0] for e in events[-3:]] == ["quantity", "limit_price", "stop_price"]
    v.cancel("nope")
    assert events[-1].kind is VenueEventKind.CANCEL_REJECTED and v.lookup("nope") is None
    with pytest.raises(ValueError, match="ts"):
        v.on_l3(SYM, L3.ADD, 1, BUY, 10_000, 10, 5)
        v.advance(4)
    for bad, field in (
        (dict(kind=9), "kind"),
        (dict(side=0), "side"),
        (dict(size=0), "size"),
    ):
        args = {"kind": L3.ADD, "side": BUY, "size": 10} | bad
        with pytest.raises(ValueError, match=field):
            v.on_l3(SYM, args["kind"], 99, args["side"], 10_000, args["size"], 10)
    with pytest.raises(ValueError, match="side"):
        v.on_level(SYM, 2, 10_000, 5, 10)
    with pytest.raises(ValueError, match="size"):
        v.on_trade(SYM, 10_000, 0, BUY, 10)
    with pytest.raises(ValueError, match="entry_latency_ns"):
        PaperConfig(entry_latency_ns=-1)


def stop(oid: str, side: Side, qty: int, stop_px: float, limit: float | None = None) -> VenueOrder:
    kind = OrderType.STOP if limit is None else OrderType.STOP_LIMIT
    return VenueOrder(oid, "acc", SYM, side, qty, kind, TimeInForce.DAY, limit, stop_px)


def test_stop_orders_wait_for_a_trade_at_or_through_the_stop() -> None:
    v, events = venue()
    book_of(v, [(1, 9_995, 100), (2, 9_990, 100)], [(3, 10_006, 50), (4, 10_008, 100)])
    v.submit(stop("bs", Side.BUY, 80, 100.05))
    v.submit(stop("sl", Side.SELL, 250, 99.95, limit=99.92))
    v.submit(stop("gone", Side.SELL, 10, 99.00))
    assert v.queue_ahead("bs") is None and kinds(events, "bs") == ["ACCEPTED"]
    v.on_l3(SYM, L3.EXECUTE, 1, BUY, 9_995, 10, 2)  # a trade at 99.95 triggers the stop-limit
    # it sells what the bids at or above its 99.92 limit show (the execution left 90 at 99.95)
    assert fills(events, "sl") == [(90, 99.95, "TAKER")]
    assert v.queue_ahead("sl") == 0  # the rest rests at 99.92, alone
    assert fills(events, "bs") == []
    v.on_l3(SYM, L3.EXECUTE_HIDDEN, 0, SELL, 10_005, 5, 3)  # a hidden trade at 100.05
    assert fills(events, "bs") == [(50, 100.06, "TAKER"), (30, 100.08, "TAKER")]
    v.cancel("gone")
    assert kinds(events, "gone") == ["ACCEPTED", "CANCELED"]
    v.on_l3(SYM, L3.EXECUTE, 2, BUY, 9_990, 100, 4)  # it would have triggered: it is gone
    assert fills(events, "gone") == []


def test_day_orders_expire_at_the_end_of_the_day() -> None:
    v, events = venue()
    v.submit(order("d", Side.BUY, 10, 100.00))
    v.submit(order("g", Side.BUY, 10, 100.00, TimeInForce.GTC))
    v.end_of_day(100)
    assert kinds(events, "d")[-1] == "EXPIRED" and kinds(events, "g") == ["ACCEPTED"]


# ------------------------------------------------------------------ the L2 queue model


def test_l2_trades_eat_the_queue_ahead_then_fill_us() -> None:
    v, events = venue()
    v.on_level(SYM, BUY, 10_000, 100, 1)
    v.submit(order("a", Side.BUY, 30, 100.00))
    v.on_level(SYM, BUY, 10_000, 150, 2)  # joins behind us
    assert v.queue_ahead("a") == 100
    v.on_trade(SYM, 10_000, 80, BUY, 3)
    v.on_level(SYM, BUY, 10_000, 70, 3)  # the trade's decrease, not a cancel
    assert v.queue_ahead("a") == 20 and fills(events) == []
    v.on_trade(SYM, 10_000, 35, BUY, 4)
    assert fills(events) == [(15, 100.0, "MAKER")] and v.queue_ahead("a") == 0
    v.on_level(SYM, BUY, 10_000, 35, 4)
    v.on_level(SYM, BUY, 10_000, 0, 5)  # everything else cancelled
    v.on_trade(SYM, 9_999, 100, BUY, 6)  # a trade through our price
    assert fills(events)[-1] == (15, 100.0, "MAKER") and v.lookup("a").leaves_quantity == 0  # type: ignore[union-attr]


def test_l2_cancels_advance_us_by_the_share_ahead_on_average_and_deterministically() -> None:
    def run(seed: int) -> int:
        v = PaperVenue(PaperConfig(price_scale=SCALE, seed=seed))
        v.on_level(SYM, BUY, 10_000, 100, 1)
        v.submit(order("a", Side.BUY, 10, 100.00))
        v.on_level(SYM, BUY, 10_000, 300, 2)  # 100 ahead of us, 200 behind
        v.on_level(SYM, BUY, 10_000, 150, 3)  # 150 cancelled
        ahead = v.queue_ahead("a")
        assert ahead is not None
        return 100 - ahead

    advances = [run(seed) for seed in range(300)]
    assert [run(seed) for seed in range(20)] == advances[:20]  # same seed, same outcome
    assert len(set(advances)) > 5  # a real draw
    assert all(0 <= a <= 100 for a in advances)
    assert 45 <= sum(advances) / len(advances) <= 55  # 150 x 100/300 = 50 on average
    v = PaperVenue(PaperConfig(price_scale=SCALE))
    v.on_level(SYM, BUY, 10_000, 100, 1)
    v.submit(order("a", Side.BUY, 10, 100.00))
    v.on_level(SYM, BUY, 10_000, 0, 2)  # all of it cancelled: nothing can be ahead
    assert v.queue_ahead("a") == 0


def test_the_same_seeded_replay_gives_the_same_events() -> None:
    def run(seed: int) -> tuple[list[VenueEvent], list[int | None]]:
        rng = random.Random(7)
        v = PaperVenue(
            PaperConfig(price_scale=SCALE, seed=seed, entry_latency_ns=3, response_latency_ns=2)
        )
        out: list[VenueEvent] = []
        v.set_listener(out.append)
        size = {p: 0 for p in range(995, 1000)}
        trail: list[int | None] = []
        ids: list[str] = []
        for step in range(2_000):
            p = rng.randint(995, 999)
            if rng.random() < 0.3 and size[p] > 0:
                q = rng.randint(1, size[p])
                v.on_trade(SYM, p, q, BUY, step * 10)
                size[p] -= q
            else:
                size[p] = max(0, size[p] + rng.randint(-40, 40))
            v.on_level(SYM, BUY, p, size[p], step * 10)
            if step % 50 == 0:
                ids.append(f"o{step}")
                v.submit(order(ids[-1], Side.BUY, rng.randint(1, 30), p / SCALE))
            trail.extend(v.queue_ahead(oid) for oid in ids)
        v.advance(10**9)
        return out, trail

    first = run(11)
    assert first == run(11)
    assert sum(e.kind is VenueEventKind.FILL for e in first[0]) > 10
    assert first[1] != run(12)[1]  # the draws matter


def test_a_deeper_lobster_file_resyncs_like_the_cpp_replay() -> None:
    """Two recorded levels: a level entering from beyond the depth is taken from the file, and
    the venue's book equals `lobster.replay`'s after every message."""
    e_a, e_b = lobster.EMPTY_ASK, lobster.EMPTY_BID
    msgs = lobster.Messages(
        time_ns=np.array([1, 2, 3, 4], dtype=np.int64),
        type=np.array([1, 3, 4, 2], dtype=np.int8),
        order_id=np.array([1, 1, 77, 5], dtype=np.int64),
        size=np.array([40, 40, 20, 30], dtype=np.int64),
        price=np.array([10_000, 10_000, 9_900, 10_200], dtype=np.int64),
        direction=np.array([1, 1, 1, -1], dtype=np.int8),
    )
    rows = np.array(
        [
            [10_100, 50, 10_000, 40, 10_200, 30, 9_900, 20],
            [10_100, 50, 9_900, 20, 10_200, 30, 9_800, 70],  # 9,800 enters from beyond
            [10_100, 50, 9_800, 70, 10_200, 30, e_b, 0],  # an unknown order at 9,900 traded
            [10_100, 50, 9_800, 70, 10_300, 10, e_b, 0],  # 10,200 gone, 10,300 from beyond
        ],
        dtype=np.int64,
    )
    assert e_a > 0
    v = PaperVenue(PaperConfig(price_scale=SCALE))
    for i in range(len(msgs)):
        v.feed_lobster(SYM, msgs, rows, 2, i, i + 1)
        ref = lobster.replay(
            lobster.Messages(
                *(getattr(msgs, f)[: i + 1] for f in msgs.__dataclass_fields__ if f != "date")
            ),  # type: ignore[arg-type]
            rows[: i + 1],
            2,
        ).book
        for side in (BUY, SELL):
            got = [x.tolist() for x in v.book(SYM).levels(side, 5)]
            assert got == [x.tolist() for x in ref.levels(side, 5)], (i, side)


# ------------------------------------------------------------------ multi-leg orders

C1, C2 = "SPY250620C00500000", "SPY250620C00510000"


def combo(
    oid: str,
    side: Side,
    qty: int,
    net: float | None,
    legs: tuple[tuple[str, Side, int], ...] = ((C1, Side.BUY, 1), (C2, Side.SELL, 1)),
    tif: TimeInForce = TimeInForce.DAY,
) -> VenueOrder:
    kind = OrderType.MARKET if net is None else OrderType.LIMIT
    return VenueOrder(oid, "acc", "", side, qty, kind, tif, net, None, None, legs)


def leg_fills(events: list[VenueEvent], oid: str) -> list[tuple[str, int, float]]:
    return [
        (e.symbol, e.fill_quantity, e.fill_price)
        for e in events
        if e.kind is VenueEventKind.FILL and e.order_id == oid
    ]


def spread_books(v: PaperVenue) -> None:
    """C1 offered 100 @ 5.00 and 100 @ 5.10; C2 bid 50 @ 3.00 and 100 @ 2.90."""
    v.on_l3(C1, L3.ADD, 1, SELL, 500, 100, 1)
    v.on_l3(C1, L3.ADD, 2, SELL, 510, 100, 1)
    v.on_l3(C2, L3.ADD, 3, BUY, 300, 50, 1)
    v.on_l3(C2, L3.ADD, 4, BUY, 290, 100, 1)


def test_a_multi_leg_order_fills_whole_units_within_its_net_limit_and_waits_for_more() -> None:
    v, events = venue()
    spread_books(v)
    # unit k's net: 5.00-3.00 (k<=50), 5.00-2.90 (k<=100), 5.10-2.90 after: a 2.10 limit
    # fills 100 units, every leg at once
    v.submit(combo("s", Side.BUY, 120, 2.10))
    assert leg_fills(events, "s") == [(C1, 100, 5.00), (C2, 50, 3.00), (C2, 50, 2.90)]
    assert kinds(events, "s") == ["ACCEPTED", "FILL", "FILL", "FILL"]
    assert events[-1].leaves_quantity == 20
    # a better bid for C2 arrives: the rest fills at 5.10 - 3.05 = 2.05
    v.on_l3(C2, L3.ADD, 5, BUY, 305, 30, 2)
    assert leg_fills(events, "s")[3:] == [(C1, 20, 5.10), (C2, 20, 3.05)]
    assert kinds(events, "s")[-1] == "FILL" and events[-1].leaves_quantity == 0
    # the venue's record: fills by leg, positions per leg symbol
    snap = v.snapshot()
    assert {(p.symbol, p.quantity) for p in snap.positions} == {(C1, 120), (C2, -120)}
    assert all(f.side is (Side.BUY if f.symbol == C1 else Side.SELL) for f in snap.fills)


def test_no_leg_fills_without_the_others() -> None:
    v, events = venue()
    v.on_l3(C1, L3.ADD, 1, SELL, 500, 100, 1)  # C2 has no bid at all
    v.submit(combo("s", Side.BUY, 10, 3.00))
    assert leg_fills(events, "s") == [] and kinds(events, "s") == ["ACCEPTED"]
    v.submit(combo("ioc", Side.BUY, 10, 3.00, tif=TimeInForce.IOC))
    assert leg_fills(events, "ioc") == [] and kinds(events, "ioc") == ["ACCEPTED", "CANCELED"]
    v.on_l3(C2, L3.ADD, 2, BUY, 250, 4, 2)  # 4 units now possible at 5.00 - 2.50
    assert leg_fills(events, "s") == [(C1, 4, 5.00), (C2, 4, 2.50)]
    v.cancel("s")
    v.on_l3(C2, L3.ADD, 3, BUY, 260, 50, 3)
    assert leg_fills(events, "s") == [(C1, 4, 5.00), (C2, 4, 2.50)]  # canceled: no more
    assert kinds(events, "s")[-1] == "CANCELED"


def test_fok_ratio_and_selling_the_package() -> None:
    v, events = venue()
    spread_books(v)
    v.submit(combo("fok", Side.BUY, 151, None, tif=TimeInForce.FOK))  # C2 bids hold 150
    assert leg_fills(events, "fok") == [] and kinds(events, "fok")[-1] == "CANCELED"
    # 1 x C1 against 2 x C2: unit k sells C2 units 2k-1, 2k
    v.submit(combo("r", Side.BUY, 30, 0.0, legs=((C1, Side.BUY, 1), (C2, Side.SELL, 2))))
    assert leg_fills(events, "r") == [(C1, 30, 5.00), (C2, 50, 3.00), (C2, 10, 2.90)]
    # selling the spread sells C1 (no bid) and buys C2 (no offer): nothing, and it waits
    v.submit(combo("sell", Side.SELL, 5, 1.0))
    assert leg_fills(events, "sell") == []
    v.on_l3(C1, L3.ADD, 6, BUY, 480, 10, 2)
    v.on_l3(C2, L3.ADD, 7, SELL, 330, 10, 3)
    # receives 4.80 - 3.30 = 1.50 >= 1.00 per unit
    assert leg_fills(events, "sell") == [(C1, 5, 4.80), (C2, 5, 3.30)]


def test_invalid_multi_leg_orders_are_rejected_with_the_reason() -> None:
    v, events = venue()
    cases = {
        "one": ((C1, Side.BUY, 1),),
        "twice": ((C1, Side.BUY, 1), (C1, Side.SELL, 1)),
        "ratio": ((C1, Side.BUY, 1), (C2, Side.SELL, 0)),
    }
    for oid, legs in cases.items():
        v.submit(combo(oid, Side.BUY, 1, 1.0, legs=legs))
    stop = VenueOrder(
        "stop", "acc", "", Side.BUY, 1, OrderType.STOP, TimeInForce.DAY, None, 1.0, None,
        ((C1, Side.BUY, 1), (C2, Side.SELL, 1)),
    )  # fmt: skip
    v.submit(stop)
    reasons = {e.order_id: e.reason for e in events if e.kind is VenueEventKind.REJECTED}
    assert "at least 2 legs" in reasons["one"]
    assert "twice" in reasons["twice"]
    assert "ratio" in reasons["ratio"]
    assert "LIMIT or MARKET" in reasons["stop"]


def test_retain_forgets_the_orders_a_rebuilt_oms_does_not_know() -> None:
    """After a journal write failed, the OMS is rebuilt without the call's orders: the venue
    drops them too (off the book, in-flight requests and answers, fills out of its record),
    and keeps the others exactly as they were."""
    v, events = venue(entry_latency_ns=1_000)
    book_of(v, [(1, 9_900, 100)], [(2, 10_100, 100)])
    v.advance(10)
    v.submit(order("kept", Side.BUY, 5, 99.0))  # rests behind the market bid
    v.submit(order("lost-rest", Side.BUY, 7, 99.0))
    v.submit(order("lost-fill", Side.BUY, 10, 101.0))  # marketable
    v.advance(2_000)
    v.submit(order("lost-flight", Side.SELL, 3, 102.0))  # still on its way (entry latency)
    assert fills(events, "lost-fill") == [(10, 101.0, "TAKER")]
    assert {o.order_id for o in v.snapshot().orders} == {
        "kept",
        "lost-rest",
        "lost-fill",
        "lost-flight",
    }

    assert v.retain({"kept"}) == ["lost-fill", "lost-flight", "lost-rest"]
    snap = v.snapshot()
    assert [o.order_id for o in snap.orders] == ["kept"] and snap.fills == ()
    assert v.lookup("lost-rest") is None and v.lookup("kept") is not None
    assert v.queue_ahead("kept") == 100  # behind the market only: the lost order left the queue
    events.clear()
    v.advance(10_000)  # the forgotten order in flight never arrives
    assert [e.order_id for e in events] == []
    v.on_l3(SYM, L3.EXECUTE, 1, BUY, 9_900, 100, 10_001)  # the market bid trades away
    v.on_l3(SYM, L3.ADD, 3, SELL, 9_900, 50, 10_002)  # a seller crosses our level
    assert [e.order_id for e in events if e.kind is VenueEventKind.FILL] == ["kept"]
    assert v.retain({"kept"}) == []
