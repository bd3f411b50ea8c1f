"""Tick batches (pack/unpack) and the synthetic order flow."""

from __future__ import annotations

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
    with pytest.raises(ValueError, match="expected"):
        ticks.unpack(data[:-1])


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
