"""The tick table in ClickHouse (through tradecore.store): idempotent batched inserts and the
queries behind GetBars, GetVWAP, QueryTicks and ListSymbols.

Every method blocks; the service calls them on its one store thread (chDB allows one process
per data path, and one thread keeps the client's use simple and ordered).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import chdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from tradecore.store import Migration, Store, connect
from tradecore.ticks import COLUMNS, TRADE_TYPES, TickBatch

TABLE = "ticks"
DEFAULT_RETENTION_DAYS = 30
PAGE_ROWS = 1 << 18  # rows per query when ticks are read back (QueryTicks)
_TTL_DAYS = re.compile(r"TTL toDateTime\(recv_ts\) \+ toIntervalDay\((\d+)\)")


def _ttl(days: int) -> str:
    return f"toDateTime(recv_ts) + INTERVAL {days} DAY"


SMALL_INSERT_ROWS = 20_000  # up to this many rows an embedded insert streams Arrow IPC bytes
MIGRATIONS = (
    Migration(
        1,
        "ticks",
        (
            f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                venue LowCardinality(String),
                symbol LowCardinality(String),
                feed LowCardinality(String),
                seq UInt64,
                ts DateTime64(9, 'UTC'),
                recv_ts DateTime64(9, 'UTC'),
                order_id UInt64,
                type UInt8,
                side Int8,
                price Int64,
                size Int64,
                ask_price Int64,
                ask_size Int64
            ) ENGINE = MergeTree
            ORDER BY (symbol, ts, seq)
            TTL toDateTime(recv_ts) + INTERVAL 30 DAY""",
        ),
    ),
    # Column codecs: sequences and times as deltas, narrow integers with T64, before LZ4.
    # Smaller parts cost less CPU to write and to merge (insert + background merges ≈ 0.49 →
    # 0.36 CPU s per 1M ticks, docs/benchmarks_marketdata.md). A codec change rewrites no data:
    # parts written before it keep theirs until they are merged.
    Migration(
        2,
        "ticks codecs",
        tuple(
            f"ALTER TABLE {TABLE} MODIFY COLUMN {col} CODEC({codec}, LZ4)"
            for col, codec in (
                ("seq", "Delta"),
                ("ts", "Delta"),
                ("recv_ts", "Delta"),
                ("order_id", "T64"),
                ("price", "T64"),
                ("size", "T64"),
            )
        ),
    ),
    # A tick's identity is (venue, symbol, session, seq): a LOBSTER file numbers its rows 1, 2,
    # ... every trading day, so without the day a second day of a symbol looked stored. Rows
    # written before get the session their feed gives now: a LOBSTER row its trading day (New
    # York date of its exchange time; the same as a replay of that day writes, so it still
    # deduplicates against them), a synthetic row its feed id (each feed its own flow).
    Migration(
        3,
        "ticks session",
        (
            f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS session LowCardinality(String) "
            "DEFAULT '' AFTER feed",
            f"ALTER TABLE {TABLE} UPDATE session = toString(toDate(ts, 'America/New_York')) "
            "WHERE venue = 'lobster' AND session = '' SETTINGS mutations_sync = 2",
            f"ALTER TABLE {TABLE} UPDATE session = toString(feed) "
            "WHERE venue = 'synthetic' AND session = '' SETTINGS mutations_sync = 2",
        ),
    ),
)
_TRADES = ", ".join(str(t) for t in TRADE_TYPES)
_ARROW_TYPES = {
    "seq": pa.uint64(),
    "ts": pa.timestamp("ns", tz="UTC"),
    "recv_ts": pa.timestamp("ns", tz="UTC"),
    "order_id": pa.uint64(),
    "type": pa.uint8(),
    "side": pa.int8(),
    "price": pa.int64(),
    "size": pa.int64(),
    "ask_price": pa.int64(),
    "ask_size": pa.int64(),
}


@dataclass(frozen=True, slots=True)
class InsertResult:
    inserted: dict[str, int]  # feed -> rows written
    duplicates: dict[str, int]  # feed -> rows already stored, skipped
    # feed -> the part of ``duplicates`` the same feed had stored (a re-sent or redelivered
    # message; the rest were stored by another feed, e.g. a second replay of a file)
    resent: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Bars:
    start_ns: npt.NDArray[np.int64]
    open: npt.NDArray[np.int64]
    high: npt.NDArray[np.int64]
    low: npt.NDArray[np.int64]
    close: npt.NDArray[np.int64]
    volume: npt.NDArray[np.int64]
    trades: npt.NDArray[np.int64]
    notional: npt.NDArray[np.float64]  # sum(price x size) in price units


def _where(symbol: str, venue: str, start_ns: int, end_ns: int) -> tuple[str, dict[str, Any]]:
    sql = (
        "symbol = {symbol:String} AND ts >= fromUnixTimestamp64Nano({start:Int64}, 'UTC') "
        "AND ts < fromUnixTimestamp64Nano({end:Int64}, 'UTC')"
    )
    params: dict[str, Any] = {"symbol": symbol, "start": start_ns, "end": end_ns}
    if venue:
        sql += " AND venue = {venue:String}"
        params["venue"] = venue
    return sql, params


class TickStore:
    """The service's tick table. A tick is identified by (venue, symbol, session, seq)
    (:class:`~tradecore.ticks.TickBatch`). ``max_seq`` remembers the highest stored sequence
    per (venue, symbol, session): a batch above it is new and is written without a look-up; a
    batch that overlaps it (a redelivery after a crash, a second replay of the same file) is
    checked against the stored sequences and only the missing rows are written."""

    def __init__(self, dsn: str, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        if retention_days < 0:
            raise ValueError(f"retention_days must be >= 0 (got {retention_days})")
        self.store: Store = connect(dsn, MIGRATIONS)
        self._retain(retention_days)
        self._chdb = _insert_handle(self.store)
        self.max_seq: dict[tuple[str, str, str], int] = {
            (str(v), str(s), str(x)): int(m)
            for v, s, x, m in self.store.query_rows(
                f"SELECT venue, symbol, session, max(seq) FROM {TABLE} "
                "GROUP BY venue, symbol, session"
            )
        }

    def retention_days(self) -> int:
        """The table's tick retention in days (0: kept forever)."""
        rows = self.store.query_rows(
            "SELECT create_table_query FROM system.tables "
            "WHERE database = currentDatabase() AND name = {t:String}",
            {"t": TABLE},
        )
        m = _TTL_DAYS.search(str(rows[0][0])) if rows else None
        return int(m.group(1)) if m else 0

    def _retain(self, days: int) -> None:
        """Make the table's TTL ``days`` (0 removes it). Expired rows go in the background
        (ClickHouse materializes a changed TTL as a mutation); nothing is done when the
        table has it already."""
        if days == self.retention_days():
            return
        if days == 0:
            self.store.command(f"ALTER TABLE {TABLE} REMOVE TTL")
        else:
            self.store.command(f"ALTER TABLE {TABLE} MODIFY TTL {_ttl(days)}")

    def close(self) -> None:
        if self._chdb is not None:
            self._chdb.close()
            self._chdb = None
        self.store.close()

    def insert_arrow(self, table: pa.Table) -> None:
        """One columnar insert. On embedded chDB, a large insert goes straight from the Arrow
        buffers into the engine (the ``Python()`` table function on a dedicated handle;
        clickhouse-connect's ``insert_arrow``, used for a server, writes a temporary Arrow
        file first and reads it back, ≈ 2.5× slower for 1M rows). A small one (a paced or
        live feed's group) is streamed as Arrow IPC bytes (``send_insert``): half the time of
        a ``Python()`` query at ≈ 100 rows and it holds the GIL in shorter stretches, which
        the event loop's tick latency feels (p99, docs/benchmarks_marketdata.md); for 1M rows
        it is ≈ 2× slower, hence the split."""
        if self._chdb is None:
            self.store.insert_arrow(TABLE, table)
            return
        if table.num_rows <= SMALL_INSERT_ROWS:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            with self._chdb.send_insert(f"INSERT INTO {TABLE} ({_NAMES})", "ArrowStream") as ins:
                ins.append(memoryview(sink.getvalue()))
                ins.finish()
            return
        _md_insert_rows = table  # chDB's Python() finds the table by this name
        self._chdb.query(
            f"INSERT INTO {TABLE} ({_NAMES}) SELECT {_NAMES} FROM Python(_md_insert_rows)"
        )

    def feed_counts(self) -> dict[str, int]:
        return {
            str(f): int(n)
            for f, n in self.store.query_rows(f"SELECT feed, count() FROM {TABLE} GROUP BY feed")
        }

    def resume_points(self, feed: str, venue: str, symbols: list[str]) -> dict[str, int]:
        """Per symbol, the last sequence ``s`` such that ``feed`` stored every one of 1..s
        (0 when it stored none, or not 1): where a feed numbered 1..n resumes."""
        out = dict.fromkeys(symbols, 0)
        where = "feed = {f:String} AND venue = {v:String} AND symbol = {s:String}"
        for sym in symbols:
            params = {"f": feed, "v": venue, "s": sym}
            (n, lo, hi), *_ = self.store.query_rows(
                f"SELECT count(), min(seq), max(seq) FROM {TABLE} WHERE {where}", params
            )
            if not n or int(lo) != 1:
                continue
            if int(n) == int(hi):  # sequences are stored once: 1..hi, no gap
                out[sym] = int(hi)
                continue
            (end,), *_ = self.store.query_rows(  # the first stored sequence with no successor
                f"SELECT min(seq) FROM {TABLE} WHERE {where} AND seq + 1 NOT IN "
                f"(SELECT seq FROM {TABLE} WHERE {where})",
                params,
            )
            out[sym] = int(end)
        return out

    def _stored_seqs(
        self, venue: str, symbol: str, session: str, feed: str, lo: int, hi: int
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
        """The stored sequences of the session in lo..hi, and whether ``feed`` stored each."""
        t = self.store.query_arrow(
            f"SELECT seq, feed = {{f:String}} AS own FROM {TABLE} "
            "WHERE venue = {v:String} AND symbol = {s:String} AND session = {x:String} "
            "AND seq BETWEEN {lo:UInt64} AND {hi:UInt64}",
            {"v": venue, "s": symbol, "x": session, "f": feed, "lo": lo, "hi": hi},
        )
        seq = np.asarray(t.column(0).to_numpy(), dtype=np.uint64)
        own = np.asarray(t.column(1).to_numpy(), dtype=bool)
        return seq, own

    def insert(self, batches: list[TickBatch]) -> InsertResult:
        """Write the rows of ``batches`` that are not stored yet, in one columnar insert.

        A sequence counts as stored when the table has it or an earlier batch of this call
        keeps it (two copies of a range can arrive in one group: a message redelivered from
        the stream and the same ticks published again by a resumed feed)."""
        inserted: dict[str, int] = defaultdict(int)
        duplicates: dict[str, int] = defaultdict(int)
        resent: dict[str, int] = defaultdict(int)
        keep: list[TickBatch] = []
        kept: dict[tuple[str, str, str], list[TickBatch]] = defaultdict(list)
        for b in batches:
            if len(b) == 0:
                continue
            key = (b.venue, b.symbol, b.session)
            top = self.max_seq.get(key, 0)
            if b.first_seq <= top:
                seq, own = self._stored_seqs(
                    b.venue, b.symbol, b.session, b.feed, b.first_seq, b.last_seq
                )
                earlier = kept.get(key, [])
                stored = np.concatenate([seq, *(k.seq for k in earlier)])
                own = np.concatenate([own, *(np.full(len(k), k.feed == b.feed) for k in earlier)])
                fresh = ~np.isin(b.seq, stored)
                resent[b.feed] += int(np.isin(b.seq, stored[own]).sum())
                # Within the batch too: a sequence must appear once.
                _, first = np.unique(b.seq, return_index=True)
                once = np.zeros(len(b), dtype=bool)
                once[first] = True
                fresh &= once
                duplicates[b.feed] += int(len(b) - fresh.sum())
                b = b.take(fresh)
                if len(b) == 0:
                    continue
            keep.append(b)
            kept[key].append(b)
            self.max_seq[key] = max(top, b.last_seq)
            inserted[b.feed] += len(b)
        if keep:
            self.insert_arrow(_to_arrow(keep))
        return InsertResult(dict(inserted), dict(duplicates), dict(resent))

    # ------------------------------------------------------------------ queries
    def venues(self, symbol: str) -> list[str]:
        return [
            str(r[0])
            for r in self.store.query_rows(
                f"SELECT DISTINCT venue FROM {TABLE} WHERE symbol = {{s:String}} ORDER BY venue",
                {"s": symbol},
            )
        ]

    def bars(self, symbol: str, venue: str, start_ns: int, end_ns: int, interval_ns: int) -> Bars:
        where, params = _where(symbol, venue, start_ns, end_ns)
        params["iv"] = interval_ns
        sql = (
            "SELECT intDiv(toUnixTimestamp64Nano(ts), {iv:Int64}) * {iv:Int64} AS b, "
            "argMin(price, (ts, seq)), max(price), min(price), argMax(price, (ts, seq)), "
            "sum(size), count(), sum(toFloat64(price) * size) "
            f"FROM {TABLE} WHERE {where} AND type IN ({_TRADES}) GROUP BY b ORDER BY b"
        )
        t = self.store.query_arrow(sql, params)
        cols = [np.asarray(t.column(i).to_numpy()) for i in range(t.num_columns)]
        i64 = [c.astype(np.int64) for c in cols[:7]]
        start, open_, high, low, close, volume, trades = i64
        return Bars(
            start, open_, high, low, close, volume, trades, notional=cols[7].astype(np.float64)
        )

    def vwap(self, symbol: str, venue: str, start_ns: int, end_ns: int) -> tuple[float, int, int]:
        where, params = _where(symbol, venue, start_ns, end_ns)
        rows = self.store.query_rows(
            "SELECT sum(toFloat64(price) * size), sum(size), count() "
            f"FROM {TABLE} WHERE {where} AND type IN ({_TRADES})",
            params,
        )
        notional, volume, trades = rows[0]
        volume = int(volume or 0)
        return (float(notional) / volume if volume else 0.0), volume, int(trades or 0)

    def tick_pages(
        self, symbol: str, venue: str, start_ns: int, end_ns: int, page_rows: int = PAGE_ROWS
    ) -> Iterator[dict[str, npt.NDArray[Any]]]:
        """The ticks of ``[start_ns, end_ns)`` in (ts, seq, venue, session) order as column dicts
        of at most ``page_rows`` rows (``ts``/``recv_ts`` in ns, plus ``venue`` and
        ``session``), one query per page:
        each page starts after the last row of the one before (keyset paging, which reads in
        the table's key order), so a range of any size is served in bounded memory."""
        if page_rows < 1:
            raise ValueError(f"page_rows must be >= 1 (got {page_rows})")
        where, params = _where(symbol, venue, start_ns, end_ns)
        names = [n for n, _ in COLUMNS]
        select = ", ".join(
            f"toUnixTimestamp64Nano({n}) AS {n}_ns" if n in ("ts", "recv_ts") else n for n in names
        )
        after = ""
        while True:
            t = self.store.query_arrow(
                f"SELECT venue, session, {select} FROM {TABLE} WHERE {where}{after} "
                f"ORDER BY ts, seq, venue, session LIMIT {int(page_rows)}",
                params,
            )
            page = {
                name: np.asarray(t.column(i).to_numpy(zero_copy_only=False))
                for i, name in enumerate(["venue", "session", *names])
            }
            if len(page["seq"]):
                yield page
            if len(page["seq"]) < page_rows:
                return
            after = (
                " AND (ts, seq, venue, session) > (fromUnixTimestamp64Nano({a_ts:Int64}, 'UTC'), "
                "{a_seq:UInt64}, {a_venue:String}, {a_session:String})"
            )
            params.update(
                a_ts=int(page["ts"][-1]),
                a_seq=int(page["seq"][-1]),
                a_venue=str(page["venue"][-1]),
                a_session=str(page["session"][-1]),
            )

    def ticks(
        self, symbol: str, venue: str, start_ns: int, end_ns: int, batch: int
    ) -> Iterator[dict[str, npt.NDArray[Any]]]:
        """:meth:`tick_pages` cut into column dicts of at most ``batch`` rows."""
        for page in self.tick_pages(symbol, venue, start_ns, end_ns):
            for i in range(0, len(page["seq"]), batch):
                yield {name: col[i : i + batch] for name, col in page.items()}

    def symbols(self) -> list[tuple[str, str, int, int, int]]:
        return [
            (str(v), str(s), int(n), int(a), int(b))
            for v, s, n, a, b in self.store.query_rows(
                "SELECT venue, symbol, count(), toUnixTimestamp64Nano(min(ts)), "
                f"toUnixTimestamp64Nano(max(ts)) FROM {TABLE} GROUP BY venue, symbol "
                "ORDER BY symbol, venue"
            )
        ]

    def count(self, feed: str = "") -> tuple[int, int]:
        """(rows, distinct (venue, symbol, session, seq)) of one feed or all."""
        where = "WHERE feed = {f:String}" if feed else ""
        rows = self.store.query_rows(
            f"SELECT count(), uniqExact(venue, symbol, session, seq) FROM {TABLE} {where}",
            {"f": feed},
        )
        return int(rows[0][0]), int(rows[0][1])


def _insert_handle(store: Store) -> Any:
    """A chDB connection of its own for inserts when the store is embedded (else None)."""
    path = store.chdb_path
    return None if path is None else chdb.connect(path)


_LABELS = ("venue", "symbol", "feed", "session")  # per-batch columns
_NAMES = ", ".join([*_LABELS, *(name for name, _ in COLUMNS)])


def _labels(values: list[str], sizes: npt.NDArray[np.int64]) -> pa.Array:
    """One label per batch, repeated over its rows, as a dictionary array (no per-row strings)."""
    uniq = sorted(set(values))
    codes = np.repeat(np.array([uniq.index(x) for x in values], dtype=np.int32), sizes)
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(uniq, pa.string()))


def _to_arrow(batches: list[TickBatch]) -> pa.Table:
    """The batches as one Arrow table; the numeric columns are zero-copy views of one
    concatenated numpy array each (the times reinterpreted as timestamp[ns, UTC])."""
    sizes = np.array([len(b) for b in batches], dtype=np.int64)
    n = int(sizes.sum())
    arrays: dict[str, pa.Array] = {
        name: _labels([getattr(b, name) for b in batches], sizes) for name in _LABELS
    }
    for name, dtype in COLUMNS:
        # One fresh (aligned) array: unpacked columns are views at odd offsets of a message.
        col = np.concatenate([b.column(name) for b in batches]).astype(dtype, copy=False)
        arrays[name] = pa.Array.from_buffers(_ARROW_TYPES[name], n, [None, pa.py_buffer(col)])
    return pa.table(arrays)
