"""The MarketDataService tick table on embedded chDB: idempotent inserts and bars/VWAP
against numpy."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from tradecore import ticks
from tradecore.store import connect, default_dsn
from tradecore_services.marketdata.store import MIGRATIONS, TickStore

START = 1_700_000_000_000_000_000


def _batch(first: int, n: int, symbol: str = "AAA", feed: str = "f1") -> ticks.TickBatch:
    rng = np.random.default_rng(first)
    seq = np.arange(first, first + n)
    return ticks.make_batch(
        "test",
        symbol,
        feed,
        seq=seq,
        ts=START + seq * 7_000_000,  # 7 ms apart
        recv_ts=time.time_ns(),  # rows expire 30 days after they were received
        type=rng.choice([1, 3, 4, 5], n),
        side=rng.choice([-1, 1], n),
        price=rng.integers(990_000, 1_010_000, n),
        size=rng.integers(1, 500, n),
    )


def _numpy_bars(b: ticks.TickBatch, interval: int) -> dict[int, tuple[int, ...]]:
    m = np.isin(b.type, ticks.TRADE_TYPES)
    ts, px, sz = b.ts[m], b.price[m], b.size[m]
    out = {}
    for k in np.unique(ts // interval):
        sel = ts // interval == k
        p = px[sel]
        out[int(k * interval)] = (p[0], p.max(), p.min(), p[-1], sz[sel].sum(), sel.sum())
    return out


def test_insert_is_idempotent_and_bars_match_numpy(tmp_path: Path) -> None:
    s = TickStore(default_dsn(tmp_path, "marketdata"))
    try:
        b = ticks.concat([_batch(1, 3000), _batch(3001, 2000)])
        r = s.insert([_batch(1, 3000), _batch(3001, 2000), _batch(1, 50, symbol="BBB")])
        assert r.inserted == {"f1": 5050} and r.duplicates == {}
        # A redelivery (overlapping, partly new) stores only the new rows.
        again = _batch(4500, 1000)
        r = s.insert([again])
        assert r.inserted == {"f1": 499} and r.duplicates == {"f1": 501}
        r = s.insert([_batch(1, 10)])
        assert r.inserted == {} and r.duplicates == {"f1": 10}
        assert s.count() == (5549, 5549)
        assert s.max_seq[("test", "AAA", "")] == 5499
        full = ticks.concat([b, again.take(again.seq > 5000)])
        for interval in (1_000_000_000, 60_000_000_000, 3_300_000_000):
            bars = s.bars("AAA", "", START, START + 10**12, interval)
            expected = _numpy_bars(full, interval)
            assert bars.start_ns.tolist() == sorted(expected)
            for i, t in enumerate(bars.start_ns.tolist()):
                got = (bars.open[i], bars.high[i], bars.low[i], bars.close[i])
                assert (*got, bars.volume[i], bars.trades[i]) == expected[t]
        m = np.isin(full.type, ticks.TRADE_TYPES)
        vwap, volume, trades = s.vwap("AAA", "test", START, START + 10**12)
        assert volume == full.size[m].sum() and trades == m.sum()
        assert np.isclose(vwap, (full.price[m] * full.size[m]).sum() / volume, rtol=1e-12)
        # A range that cuts the data keeps only the ticks inside it.
        lo, hi = START + 1000 * 7_000_000, START + 2000 * 7_000_000
        cols = list(s.ticks("AAA", "", lo, hi, 400))
        seqs = np.concatenate([c["seq"] for c in cols])
        assert seqs.tolist() == list(range(1000, 2000)) and max(len(c["seq"]) for c in cols) <= 400
        assert s.symbols()[1][:3] == ("test", "BBB", 50)
        assert s.venues("AAA") == ["test"] and s.venues("ZZZ") == []
        assert s.feed_counts() == {"f1": 5549}
    finally:
        s.close()
    # Reopened: the highest stored sequences come back from the table.
    s = TickStore(default_dsn(tmp_path, "marketdata"))
    try:
        assert s.max_seq == {("test", "AAA", ""): 5499, ("test", "BBB", ""): 50}
        assert s.insert([_batch(5400, 200)]).inserted == {"f1": 100}
    finally:
        s.close()


def test_codec_migration_keeps_the_rows_of_an_existing_table(tmp_path: Path) -> None:
    # A store written by a version without the codecs (migration 1 only) opens with them,
    # keeps every row and takes new ones, including values at the ends of the int64 range.
    dsn = default_dsn(tmp_path, "marketdata")
    with connect(dsn, MIGRATIONS[:1]) as old:
        assert old.applied_migrations() == [1]
        assert not old.query_rows(
            "SELECT name FROM system.columns WHERE table = 'ticks' AND compression_codec != ''"
        )
    s = TickStore(dsn)
    b = _batch(1, 5000)
    s.insert([b])
    s.close()
    s = TickStore(dsn)
    try:
        assert s.store.applied_migrations() == [1, 2, 3]
        codecs = dict(
            s.store.query_rows(
                "SELECT name, compression_codec FROM system.columns "
                "WHERE table = 'ticks' AND compression_codec != ''"
            )
        )
        assert codecs["ts"].startswith("CODEC(Delta") and codecs["price"] == "CODEC(T64, LZ4)"
        edge = ticks.make_batch(
            "test",
            "AAA",
            "f1",
            seq=[5001, 5002],
            ts=[START, START + 1],
            recv_ts=time.time_ns(),
            type=4,
            order_id=[0, 2**64 - 1],
            price=[-(2**63), 2**63 - 1],
            size=[-(2**62), 2**62],
        )
        assert s.insert([edge]).inserted == {"f1": 2}
        rows = s.store.query_rows("SELECT seq, order_id, price, size FROM ticks ORDER BY seq")
        assert [r[0] for r in rows] == list(range(1, 5003))
        assert [r[2] for r in rows[:5000]] == b.price.tolist()
        assert [r[1:] for r in rows[5000:]] == [
            (0, -(2**63), -(2**62)),
            (2**64 - 1, 2**63 - 1, 2**62),
        ]
    finally:
        s.close()


def _day(session: str, n: int, feed: str) -> ticks.TickBatch:
    """A LOBSTER-like day: rows 1..n of one trading day (sequences restart every day)."""
    b = _batch(1, n, feed=feed)
    b.session = session
    day = int(np.datetime64(session, "ns").astype(np.int64))
    b.ts[:] = day + 14 * 3600 * 10**9 + np.arange(n) * 1_000_000
    return b


def test_sessions_keep_days_with_the_same_sequences_apart(tmp_path: Path) -> None:
    s = TickStore(default_dsn(tmp_path, "marketdata"))
    try:
        d1, d2 = _day("2012-06-21", 3000, "f1"), _day("2012-06-22", 3000, "f2")
        assert s.insert([d1]).inserted == {"f1": 3000}
        r = s.insert([d2])  # the same sequences on another day: new ticks
        assert r.inserted == {"f2": 3000} and r.duplicates == {}
        r = s.insert([_day("2012-06-22", 3000, "f3")])  # day 2 replayed again: all stored
        assert r.inserted == {} and r.duplicates == {"f3": 3000}
        assert s.count() == (6000, 6000)
        for d in (d1, d2):
            v = s.vwap("AAA", "", int(d.ts[0]), int(d.ts[-1]) + 1)
            m = np.isin(d.type, ticks.TRADE_TYPES)
            assert v[1:] == (int(d.size[m].sum()), int(m.sum()))
        pages = list(s.tick_pages("AAA", "", 0, 2**62, page_rows=1000))
        assert sum(len(p["seq"]) for p in pages) == 6000
        assert [str(x) for x in np.unique(np.concatenate([p["session"] for p in pages]))] == [
            "2012-06-21",
            "2012-06-22",
        ]
    finally:
        s.close()
    s = TickStore(default_dsn(tmp_path, "marketdata"))
    try:
        assert s.max_seq == {
            ("test", "AAA", "2012-06-21"): 3000,
            ("test", "AAA", "2012-06-22"): 3000,
        }
    finally:
        s.close()


def test_session_migration_gives_stored_rows_their_feeds_session(tmp_path: Path) -> None:
    # Rows stored before sessions (migrations 1-2): a LOBSTER row gets its trading day (the
    # New York date of its time), a synthetic row its feed id, any other none.
    dsn = default_dsn(tmp_path, "marketdata")
    day = "2012-06-21"
    t0 = int(np.datetime64(day, "ns").astype(np.int64)) + 4 * 3600 * 10**9  # NY midnight
    with connect(dsn, MIGRATIONS[:2]) as old:
        for venue, feed in (("lobster", "lobster-1"), ("synthetic", "synthetic-2"), ("alp", "a")):
            old.command(
                "INSERT INTO ticks (venue, symbol, feed, seq, ts, recv_ts, type, price, size) "
                f"SELECT '{venue}', 'GOOG', '{feed}', number + 1, "
                f"fromUnixTimestamp64Nano(toInt64({t0 + 10 * 3600 * 10**9} + number), 'UTC'), "
                "now64(9), 4, 100, 1 FROM numbers(100)"
            )
    s = TickStore(dsn)
    try:
        assert s.store.applied_migrations() == [1, 2, 3]
        assert s.max_seq == {
            ("lobster", "GOOG", day): 100,
            ("synthetic", "GOOG", "synthetic-2"): 100,
            ("alp", "GOOG", ""): 100,
        }
        replay = _day(day, 150, "lobster-9")
        replay.venue, replay.symbol = "lobster", "GOOG"
        r = s.insert([replay])  # the same day replayed after the upgrade: only rows 101..150
        assert r.inserted == {"lobster-9": 50} and r.duplicates == {"lobster-9": 100}
    finally:
        s.close()


def test_small_and_large_inserts_store_the_same_rows(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Small groups stream Arrow IPC bytes (send_insert), large ones go through Python():
    # both must store every column exactly, labels included.
    from tradecore_services.marketdata import store as store_mod

    s = TickStore(default_dsn(tmp_path, "marketdata"))
    try:
        rows = {}
        for symbol, limit in (("IPC", 10**9), ("PYT", 0)):
            monkeypatch.setattr(store_mod, "SMALL_INSERT_ROWS", limit)
            b = [_batch(1, 700, symbol=symbol, feed=f"feed-{symbol}"), _batch(701, 300, symbol)]
            b[1].venue = "other"
            r = s.insert(b)
            assert r.inserted == {f"feed-{symbol}": 700, "f1": 300}
            got = list(s.ticks(symbol, "", START, START + 10**13, 10_000))
            assert len(got) == 1
            rows[symbol] = got[0]
        a, p = rows["IPC"], rows["PYT"]
        assert set(a) == set(p)
        for name in a:
            if name != "recv_ts":  # the two inserts' batches were made at different times
                np.testing.assert_array_equal(a[name], p[name], err_msg=name)
        expect = ticks.concat([_batch(1, 700, "IPC"), _batch(701, 300, "IPC")])
        np.testing.assert_array_equal(a["price"], expect.price)
        np.testing.assert_array_equal(a["seq"], expect.seq)
        assert sorted(set(a["venue"].tolist())) == ["other", "test"]
        assert s.feed_counts() == {"feed-IPC": 700, "feed-PYT": 700, "f1": 600}
    finally:
        s.close()


def test_insert_handle_shares_the_engine_of_a_symlinked_dsn(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The insert handle is a second chDB connection: it must open the engine the store's
    # client has (a different spelling of the path would be refused or write elsewhere).
    from tradecore_services.marketdata import store as store_mod

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    s = TickStore(f"chdb://{tmp_path}/link/")
    try:
        assert s._chdb is not None
        for first, limit in ((1, 10**9), (101, 0)):  # Arrow IPC bytes, then Python()
            monkeypatch.setattr(store_mod, "SMALL_INSERT_ROWS", limit)
            assert s.insert([_batch(first, 100)]).inserted == {"f1": 100}
        assert s.store.query_rows("SELECT count(), max(seq) FROM ticks") == [(200, 200)]
    finally:
        s.close()


def test_retention_is_applied_at_open(tmp_path: Path) -> None:
    dsn = default_dsn(tmp_path, "marketdata")
    s = TickStore(dsn)
    try:
        assert s.retention_days() == 30
        old = _batch(1, 100)
        old.recv_ts[:] = time.time_ns() - 10 * 86_400 * 10**9  # received 10 days ago
        s.insert([old, _batch(101, 50)])
    finally:
        s.close()
    for days, left in ((0, 150), (30, 150), (7, 50)):
        s = TickStore(dsn, retention_days=days)
        try:
            assert s.retention_days() == days
            s.store.command("OPTIMIZE TABLE ticks FINAL")  # apply the TTL now, not at a merge
            assert s.count() == (left, left)
        finally:
            s.close()
    with pytest.raises(ValueError, match="retention_days"):
        TickStore(dsn, retention_days=-1)


def test_tick_pages_walk_a_range_in_order_without_gaps_or_repeats(tmp_path: Path) -> None:
    # Two venues with the same times and sequences: pages must break ties by (seq, venue)
    # and continue exactly after the last row of the page before, whatever the page size.
    s = TickStore(default_dsn(tmp_path, "marketdata"))
    try:
        a = _batch(1, 500)
        b = _batch(1, 500)
        b.venue = "other"
        b.ts[:] = a.ts  # same times and sequences on both venues
        a.ts[100:200] = a.ts[100]  # and a run of equal times within one venue
        b.ts[100:200] = a.ts[100]
        s.insert([a, b])
        lo, hi = START + 50 * 7_000_000, START + 450 * 7_000_000
        whole = next(s.tick_pages("AAA", "", lo, hi, page_rows=10**6))
        n = len(whole["seq"])
        assert n == 2 * int(((a.ts >= lo) & (a.ts < hi)).sum())
        cols = (whole["ts"].tolist(), whole["seq"].tolist(), whole["venue"].tolist())
        key = list(zip(*cols, strict=True))
        assert key == sorted(key) and len(set(key)) == n
        for page_rows in (13, 64, n - 1, n, n + 1):
            pages = list(s.tick_pages("AAA", "", lo, hi, page_rows=page_rows))
            assert all(len(p["seq"]) <= page_rows for p in pages)
            for name, col in whole.items():
                np.testing.assert_array_equal(np.concatenate([p[name] for p in pages]), col)
        # one venue only, and the batch cutting on top of the pages
        only = list(s.ticks("AAA", "other", lo, hi, 33))
        assert all(len(c["seq"]) <= 33 for c in only)
        assert set(np.concatenate([c["venue"] for c in only]).tolist()) == {"other"}
        assert sum(len(c["seq"]) for c in only) == n // 2
        assert list(s.tick_pages("AAA", "", hi + 1, hi + 2)) == []  # no tick in it
        with pytest.raises(ValueError, match="page_rows"):
            next(s.tick_pages("AAA", "", lo, hi, page_rows=0))
    finally:
        s.close()
