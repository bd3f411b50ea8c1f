"""The journal in ClickHouse: every entry of ``EXEC_JOURNAL`` copied into the table
``exec_journal`` by a durable JetStream consumer (explicit acks after the insert), for queries
and audit. The stream stays the record the service rebuilds from; the table follows it.

One row per journal entry: a message holding a batch (journal.py) gives a row per entry of it,
numbered by ``batch_index`` (0 for a message holding one entry). A message redelivered after a
crash between the insert and its acknowledgement is inserted again; the table is a
ReplacingMergeTree keyed by (stream sequence, batch index), so it holds one row per entry (reads
use ``FINAL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError
from tradecore.store import Migration, Store, connect
from tradecore.subjects import exec_journal_filter
from tradecore_api.execution.v1 import execution_pb2 as pb

from ..common import tracing
from ..common.backlog import Backlog
from ..common.store_thread import StoreThread
from .journal import STREAM, entries_of, kind_of

log = logging.getLogger("tradecore.execution.store")

TABLE = "exec_journal"
DURABLE = "exec-journal-store"
FETCH_BATCH = 1024
FETCH_WAIT_S = 1.0
#: Least time between two inserts of a batch that was not full: a chDB insert costs milliseconds
#: of CPU whatever its size, so under a stream of orders the copy takes what accumulated.
INSERT_INTERVAL_S = 0.2
ACK_WAIT_S = 30.0
RETRY_S = 1.0

MIGRATIONS = (
    Migration(
        1,
        "exec_journal",
        (
            f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                stream_seq UInt64,
                account String,
                kind LowCardinality(String),
                entry LowCardinality(String),
                request_id String,
                time_ns Int64,
                data String
            ) ENGINE = ReplacingMergeTree ORDER BY stream_seq""",
        ),
    ),
    Migration(
        2,
        "exec_journal_batch_index",
        (
            f"""ALTER TABLE {TABLE}
                ADD COLUMN IF NOT EXISTS batch_index UInt32 AFTER stream_seq,
                MODIFY ORDER BY (stream_seq, batch_index)""",
        ),
    ),
)

Row = tuple[int, int, str, str, str, str, int, bytes]
COLUMNS = ["stream_seq", "batch_index", "account", "kind", "entry", "request_id", "time_ns", "data"]


def rows(stream_seq: int, data: bytes) -> list[Row]:
    """The table rows of one journal message: one per entry it holds (``data``: the entry
    alone, a ``JournalEntry``)."""
    out: list[Row] = []
    for i, entry in enumerate(entries_of(pb.JournalEntry.FromString(data))):
        out.append(
            (
                stream_seq,
                i,
                entry.account,
                kind_of(entry).value,
                entry.WhichOneof("entry") or "",
                entry.request_id,
                entry.time_ns,
                entry.SerializeToString(),
            )
        )
    return out


class JournalStore:
    """The ``exec_journal`` table; blocking calls (run them on :class:`StoreThread`)."""

    def __init__(self, dsn: str) -> None:
        self.store: Store = connect(dsn, MIGRATIONS)

    def insert(self, rows: list[Row]) -> None:
        if rows:
            self.store.insert(TABLE, rows, COLUMNS)

    def count(self, account: str = "") -> int:
        where, params = ("WHERE account = {a:String}", {"a": account}) if account else ("", {})
        rows = self.store.query_rows(f"SELECT count() FROM {TABLE} FINAL {where}", params)
        return int(rows[0][0])

    def entries(self, account: str) -> list[tuple[int, pb.JournalEntry]]:
        """(stream sequence, entry) of an account, in journal order."""
        rows = self.store.query_rows(
            f"SELECT stream_seq, data FROM {TABLE} FINAL WHERE account = {{a:String}} "
            "ORDER BY stream_seq, batch_index",
            {"a": account},
        )
        return [(int(s), pb.JournalEntry.FromString(_bytes(d))) for s, d in rows]

    def close(self) -> None:
        self.store.close()


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("latin-1")


class StoreConsumer:
    """Durable pull consumer of ``EXEC_JOURNAL``: fetch, insert, then acknowledge each message
    (explicit acks: a message fetched but not stored by a process that died is delivered
    again). After a batch that was not full it waits until :data:`INSERT_INTERVAL_S` has passed
    since that insert began, so the table trails the stream by at most about that long and the
    inserts do not take the CPU the orders need (one insert per journal write otherwise)."""

    def __init__(self, store: StoreThread[JournalStore]) -> None:
        self.store = store
        self.backlog = Backlog()  # the pending gauge (registered by the app)
        self._sub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def attach(self, js: JetStreamContext) -> None:
        """Fetch through ``js`` (a new connection) from now on; starts the loop the first
        time."""
        self._sub = await js.pull_subscribe(
            exec_journal_filter(),
            durable=DURABLE,
            stream=STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=ACK_WAIT_S,
            ),
        )
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="execution-store-consumer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        # No interest left in the pending pull request: the server delivers nothing more here
        # (what it delivered and nobody acknowledged comes again after ACK_WAIT_S).
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sub = self._sub
            if sub is None:
                await asyncio.sleep(RETRY_S)
                continue
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S)
                self.backlog.fetched(msgs)
            except (FetchTimeoutError, TimeoutError):
                self.backlog.fetched([])
                continue
            except Exception as exc:  # a closed connection: wait for the next attach
                log.warning("journal store fetch failed: %s", exc)
                await asyncio.sleep(RETRY_S)
                continue
            began = loop.time()
            await self._store(msgs)
            if len(msgs) < FETCH_BATCH:
                await asyncio.sleep(max(0.0, began + INSERT_INTERVAL_S - loop.time()))

    async def _store(self, msgs: list[Msg]) -> None:
        found: list[Row] = []
        for m in msgs:
            try:
                found += rows(m.metadata.sequence.stream, m.data)
            except Exception as exc:  # not a journal entry: logged, acknowledged, not stored
                log.error("%s: not stored: %s", m.subject, exc)
        try:
            with tracing.batch_span(
                "clickhouse insert exec_journal", [m.headers for m in msgs], rows=len(found)
            ):
                await self.store.call(lambda s: s.insert(found))
        except Exception:
            log.exception("journal store insert failed; the messages are delivered again")
            await asyncio.sleep(RETRY_S)
            return
        for m in msgs:
            with contextlib.suppress(Exception):
                await m.ack()


__all__ = ["MIGRATIONS", "TABLE", "JournalStore", "StoreConsumer", "rows"]
