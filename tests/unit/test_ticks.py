"""Tick batches (pack/unpack) and the synthetic order flow."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tradecore import ticks
from tradecore.orderbook import OrderBook
from tradecore.synthetic import SyntheticFlow

START = 1_700_000_000_000_000_000


def _batch(n: int = 1000) -> ticks.TickBatch:
    rng = np.random.default_rng(3)
    return ticks.make_batch(
        "venue",
        "SYM",
        "feed-1",
        seq=np.arange(1, n + 1),
        ts=START + np.sort(rng.integers(0, 10**9, n)),
        recv_ts=START + 5,
        type=rng.integers(1, 6, n),
        order_id=rng.integers(0, 2**63, n, dtype=np.uint64),
        side=rng.choice([-1, 1], n),
        price=rng.integers(1, 10**7, n),
        size=rng.integers(1, 1000, n),
    )


def test_pack_unpack_round_trip() -> None:
    b = _batch()
    data = ticks.pack(b)
    assert len(data) < 1000 * ticks.BYTES_PER_TICK + 64
    u = ticks.unpack(data)
    assert (u.venue, u.symbol, u.feed) == ("venue", "SYM", "feed-1")
    for name, _ in ticks.COLUMNS:
        np.testing.assert_array_equal(u.column(name), b.column(name), err_msg=name)
    assert u.first_seq == 1 and u.last_seq == 1000
    assert (u.recv_ts == START + 5).all()


def _round_trip(b: ticks.TickBatch) -> bytes:
    data = ticks.pack(b)
    u = ticks.unpack(data)
    for name, dtype in ticks.COLUMNS:
        col = u.column(name)
        assert col.dtype == dtype, name
        np.testing.assert_array_equal(col, b.column(name), err_msg=name)
    return data


def test_pack_encodes_each_column_compactly_and_exactly() -> None:
    # A book chunk as a feed sends it: seq a range, recv_ts and the ask columns constant,
    # ts increasing by small steps, ids/prices/sizes that fit 4 bytes.
    n = 8192
    rng = np.random.default_rng(5)
    b = ticks.make_batch(
        "v",
        "s",
        "f",
        seq=np.arange(1, n + 1),
        ts=START + np.cumsum(rng.integers(0, 10**5, n)),
        recv_ts=START,
        type=rng.integers(1, 5, n),
        order_id=rng.integers(1, 2**30, n),
        side=rng.choice([-1, 1], n),
        price=rng.integers(10**6, 2 * 10**6, n),
        size=rng.integers(1, 10, n) * 100,
    )
    assert len(_round_trip(b)) < 19 * n < n * ticks.BYTES_PER_TICK // 3
    # Values at the edges of every encoding: 64-bit extremes, ranges that wrap, 4-byte limits.
    m = 60
    edges = ticks.make_batch(
        "v",
        "s",
        "f",
        seq=np.arange(m, dtype=np.uint64) * np.uint64(2**62),
        ts=np.arange(m) * -(2**62),
        type=1,
        order_id=np.array([2**64 - 1, 0, 2**32 - 1] * 20, dtype=np.uint64),
        side=0,
        price=np.array([2**63 - 1, -(2**63), 0] * 20),
        size=np.array([2**31 - 1, -(2**31), 5] * 20),
        ask_price=np.array([2**31, 0, 1] * 20),
        ask_size=START + np.arange(m) * (2**31 - 1),
    )
    _round_trip(edges)
    for n_rows in (0, 1, 2):
        _round_trip(b.take(slice(0, n_rows)))
    _round_trip(edges.take(slice(0, 2)))


def test_unpack_refuses_tck1() -> None:
    # TCK1 (every column whole) was written only before TCK2 replaced it on 2026-11-21; the
    # tick stream keeps messages 7 days and the store keeps columns, so none is left to read.
    b = _batch(20)
    head = struct.pack("<4sIHHH", b"TCK1", 20, 5, 3, 6)
    cols = b"".join(np.ascontiguousarray(b.column(n), dtype=d).tobytes() for n, d in ticks.COLUMNS)
    with pytest.raises(ValueError, match="bad magic b'TCK1'"):
        ticks.unpack(head + b"venueSYMfeed-1" + cols)


def test_session_travels_through_pack_take_and_concat() -> None:
    b = _batch(50)
    assert b.session == "" and ticks.pack(b)[:4] == b"TCK2"  # no session: TCK2 as before
    b.session = "2012-06-21"
    data = ticks.pack(b)
    assert data[:4] == b"TCK3"
    u = ticks.unpack(data)
    assert (u.venue, u.symbol, u.feed, u.session) == ("venue", "SYM", "feed-1", "2012-06-21")
    for name, _ in ticks.COLUMNS:
        np.testing.assert_array_equal(u.column(name), b.column(name), err_msg=name)
    assert b.take(slice(0, 3)).session == "2012-06-21"
    assert ticks.concat([b.take(slice(0, 3)), b.take(slice(3, 50))]).session == "2012-06-21"
    for cut in range(40):  # truncated headers and names are refused
        with pytest.raises(ValueError, match="tick batch"):
            ticks.unpack(data[:cut])


def test_take_and_concat() -> None:
    b = _batch(10)
    parts = [b.take(slice(0, 4)), b.take(slice(4, 10))]
    joined = ticks.concat(parts)
    np.testing.assert_array_equal(joined.price, b.price)
    assert len(b.take(b.seq > 7)) == 3
    with pytest.raises(ValueError, match="empty"):
        ticks.concat([])


def test_unpack_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="shorter"):
        ticks.unpack(b"TC")
    with pytest.raises(ValueError, match="magic"):
        ticks.unpack(b"XXXX" + bytes(100))
    data = ticks.pack(_batch(5))
    for cut in range(len(data)):  # every truncation is refused, none crashes
        with pytest.raises(ValueError, match="tick batch"):
            ticks.unpack(data[:cut])
    with pytest.raises(ValueError, match="expected"):
        ticks.unpack(data + b"\0")
    bad = bytearray(data)
    bad[14 + len(b"venueSYMfeed-1")] = 9  # the first column's encoding byte
    with pytest.raises(ValueError, match="seq has unknown encoding 9"):
        ticks.unpack(bytes(bad))


def test_make_batch_checks_lengths() -> None:
    with pytest.raises(ValueError, match="price"):
        ticks.make_batch("v", "s", "f", seq=[1, 2], ts=[1, 2], type=[1, 1], price=[1], size=[1, 1])


def _run(flow: SyntheticFlow, chunks: int, ops: int) -> list[np.ndarray]:
    cols: list[list[np.ndarray]] = [[] for _ in range(6)]
    for _ in range(chunks):
        m = flow.next(ops)
        for i, c in enumerate((m.ts, m.type, m.order_id, m.side, m.price, m.size)):
            cols[i].append(c)
    return [np.concatenate(c) for c in cols]


def test_synthetic_flow_is_deterministic_and_consistent() -> None:
    a = _run(SyntheticFlow("AAA", seed=7, rate=1e4, start_ns=START), 40, 500)
    b = _run(SyntheticFlow("AAA", seed=7, rate=1e4, start_ns=START), 40, 500)
    other = _run(SyntheticFlow("BBB", seed=7, rate=1e4, start_ns=START), 40, 500)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert len(other[0]) != len(a[0]) or not np.array_equal(other[4], a[4])
    ts, typ, _oid, side, price, size = a
    assert (np.diff(ts) >= 0).all() and ts[0] > START
    counts = np.bincount(typ, minlength=5)
    assert counts[ticks.ADD] > 0 and counts[ticks.DELETE] > 0 and counts[ticks.EXECUTE] > 0
    assert (size > 0).all() and (price > 0).all() and set(np.unique(side)) <= {-1, 1}
    # Replaying the messages as LOBSTER would (add/delete/execute by id) rebuilds a sane book:
    # every delete and execution names an order that was added before and is still there.
    book = OrderBook(1 << 16)
    live: dict[int, int] = {}
    for t, k, o, s, p, q in zip(*(c.tolist() for c in a), strict=True):
        if k == ticks.ADD:
            book.limit(o, s, p, q, t)
            live[o] = q
        elif k == ticks.DELETE:
            assert live.pop(o) == q
            book.cancel(o, t)
        else:
            assert live[o] >= q
            live[o] -= q
            if live[o] == 0:
                del live[o]
            book.reduce(o, q, t)
    book.check_invariants()
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is not None and ask is not None and bid[0] < ask[0]


def test_synthetic_messages_rebuild_the_flows_book() -> None:
    # Replaying the messages chunk by chunk must give exactly the flow's own book after every
    # chunk (same orders at the same prices with the same remaining sizes, same levels):
    # the messages say everything the book did, adds, cancels and partial fills included.
    flow = SyntheticFlow("TRK", seed=11, rate=1e4, start_ns=START)
    replay = OrderBook(1 << 12)
    live: dict[int, tuple[int, int]] = {}  # id -> (price, size left)
    partial = executions = 0
    for _ in range(60):
        m = flow.next(700)
        for t, k, o, s, p, q in zip(
            m.ts.tolist(),
            m.type.tolist(),
            m.order_id.tolist(),
            m.side.tolist(),
            m.price.tolist(),
            m.size.tolist(),
            strict=True,
        ):
            if k == ticks.ADD:
                assert o not in live
                replay.limit(o, s, p, q, t)
                live[o] = (p, q)
            elif k == ticks.DELETE:
                assert live.pop(o) == (p, q)
                replay.cancel(o, t)
            else:
                executions += 1
                price, left = live[o]
                assert price == p and left >= q
                replay.reduce(o, q, t)
                if left == q:
                    del live[o]
                else:
                    live[o] = (price, left - q)
                    partial += 1
        assert len(flow.book) == len(live) == len(replay)
        for o, (p, q) in live.items():
            found = flow.book.core.find(o)
            assert found is not None and found[1] == p and found[2] == q
        a, b = flow.book.snapshot(20), replay.snapshot(20)
        for name in ("bid_price", "bid_size", "ask_price", "ask_size"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert flow.book.core.check_invariants() == ""
    assert executions > 1000 and partial > 0


def test_synthetic_book_stays_bounded_at_high_rates() -> None:
    # Cancels grow with the book's depth: a long run at a high rate neither drains the book
    # nor lets it grow without bound, and keeps a two-sided market.
    flow = SyntheticFlow("DEEP", seed=3, rate=1e6, start_ns=START)
    sizes = []
    for _ in range(40):
        m = flow.next(32768)
        assert len(m) > 20000
        sizes.append(len(flow.book))
        assert flow.book.best_bid() is not None and flow.book.best_ask() is not None
    assert min(sizes) > 50 and max(sizes) < 5000


def test_synthetic_mid_moves() -> None:
    flow = SyntheticFlow("MOVE", seed=1, rate=1e4, start_ns=START)
    mids = []
    for _ in range(300):
        flow.next(100)
        bid, ask = flow.book.best_bid(), flow.book.best_ask()
        assert bid is not None and ask is not None
        mids.append((bid[0] + ask[0]) / 2)
    assert np.ptp(mids) >= 10 * 100  # at least ten cents of movement
    assert len(flow.book) < 5000  # cancels keep the book bounded


def test_synthetic_rejects_bad_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        SyntheticFlow("X", seed=0, rate=0.0, start_ns=START)


def test_synthetic_times_never_wrap_past_int64() -> None:
    # At 1e-300 operations per second the first gap is ≈ 1e309 ns: the flow refuses to go on
    # instead of casting it to -2**63.
    flow = SyntheticFlow("X", seed=0, rate=1e-300, start_ns=START)
    with pytest.raises(ValueError, match="int64 nanosecond range"):
        flow.next(10)
    slow = SyntheticFlow("X", seed=0, rate=1e-9, start_ns=START)  # gaps ≈ 1e18 ns
    with pytest.raises(ValueError, match="int64 nanosecond range"):
        for _ in range(200):
            assert (slow.next(1).ts > 0).all()
