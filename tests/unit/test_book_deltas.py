"""`.book` level updates: the deltas between two tops of a book, applied by a reader with
`tradecore.ticks.apply_book_update`, give exactly the newer top (snapshots, deltas, emptied
sides, levels leaving and entering the top)."""

from __future__ import annotations

import numpy as np
import pytest
from tradecore import ticks
from tradecore_services.marketdata.books import Levels, book_deltas


def _levels(rng: np.random.Generator, depth: int, seq: int) -> Levels:
    mid = int(rng.integers(9_900, 10_100)) * 100
    out = []
    for sign in (-1, 1):  # bids below the mid, asks above, best first
        n = int(rng.integers(0, depth + 1))
        steps = np.sort(rng.choice(np.arange(1, 40), n, replace=False))
        px = np.zeros(depth, dtype=np.int64)
        sz = np.zeros(depth, dtype=np.int64)
        px[:n] = mid + sign * steps * 100
        sz[:n] = rng.integers(1, 5, n) * 100
        out += [px, sz, n]
    bp, bs, nb, ap, as_, na = out
    return Levels(bp, bs, ap, as_, int(nb), int(na), seq, 1_000 + seq)


def _top(lv: Levels) -> tuple[dict[int, int], dict[int, int]]:
    nb, na = lv.bid_levels, lv.ask_levels
    bids = dict(zip(lv.bid_price[:nb].tolist(), lv.bid_size[:nb].tolist(), strict=True))
    asks = dict(zip(lv.ask_price[:na].tolist(), lv.ask_size[:na].tolist(), strict=True))
    return bids, asks


@pytest.mark.parametrize("seed", range(20))
def test_deltas_take_a_reader_from_one_top_to_the_next(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    prev = None
    for seq in range(1, 40):
        new = _levels(rng, 10, seq)
        msg = book_deltas("v", "S", prev, new, recv_ns=7)
        if msg is not None:
            # what goes on the wire is what the reader gets
            got = ticks.unpack(ticks.pack(msg))
            kind = ticks.LEVEL if prev is not None else ticks.LEVEL_SNAPSHOT
            assert set(got.type.tolist()) == {kind}
            assert set(got.seq.tolist()) == {seq} and set(got.recv_ts.tolist()) == {7}
            ticks.apply_book_update(bids, asks, got)
        else:
            assert prev is not None and _top(prev) == _top(new)
        assert (bids, asks) == _top(new)
        prev = new


def test_unchanged_and_empty_books() -> None:
    rng = np.random.default_rng(1)
    a = _levels(rng, 5, 1)
    assert book_deltas("v", "S", a, a, 0) is None
    empty = Levels(*(np.zeros(5, dtype=np.int64),) * 4, 0, 0, 2, 0)
    assert book_deltas("v", "S", None, empty, 0) is None
    # a snapshot replaces whatever the reader had
    bids, asks = {1: 100, 2: 200}, {999_999_999: 5}
    snap = book_deltas("v", "S", None, a, 0)
    assert snap is not None
    ticks.apply_book_update(bids, asks, snap)
    assert (bids, asks) == _top(a)
    gone = book_deltas("v", "S", a, empty, 0)
    assert gone is not None and (gone.size == 0).all()
    assert len(gone) == a.bid_levels + a.ask_levels
    # bids first, best (highest) first; then asks, best (lowest) first
    b = gone.price[gone.side > 0]
    s = gone.price[gone.side < 0]
    assert (np.diff(b) < 0).all() and (np.diff(s) > 0).all()


def test_books_are_saved_and_read_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tradecore_services.marketdata.books import Books

    path = tmp_path / "marketdata" / "books.npz"
    rng = np.random.default_rng(5)
    books = Books(path)
    books.save()
    assert not path.exists()  # nothing to save yet
    want = {("v", f"S{i}"): _levels(rng, 8, i + 1) for i in range(5)}
    for key, lv in want.items():
        books.update(key, lv, [])
    books.save()
    again = Books(path)
    assert set(again.levels) == set(want)
    for key, lv in want.items():
        got = again.levels[key]
        assert (got.sequence, got.exchange_time_ns) == (lv.sequence, lv.exchange_time_ns)
        assert _top(got) == _top(lv)
    # a file that cannot be read is ignored (the books start empty), not fatal
    path.write_bytes(b"not an npz")
    assert Books(path).levels == {}
