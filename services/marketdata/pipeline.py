"""NATS side of the market data: the JetStream tick stream, the publisher that feeds it (and the
realtime core-NATS subjects), and the durable consumer that stores ticks in ClickHouse.

Subjects: ``md.<venue>.<symbol>.ticks`` (JetStream stream ``MD_TICKS``; one message is a
packed :class:`~tradecore.ticks.TickBatch` of up to ``MAX_TICKS_PER_MESSAGE`` ticks, its
``Nats-Msg-Id`` ``<feed>/<venue>.<symbol>.<first sequence>``, so a re-publish of the same
batch is dropped by the stream), and on core NATS ``md.<venue>.<symbol>.quote`` (serialized
``Quote``: each top-of-book change, or only the chunk's last one when a replay is unpaced),
``.trade`` (``Trade`` per execution; not sent for unpaced replays), ``.trades`` (the chunk's
executions as one packed batch, always) and ``.book`` (a packed batch of level updates: the
top of the book's changes over the chunk, or a whole snapshot the first time this process
publishes the symbol; :func:`~.books.book_deltas`, :func:`tradecore.ticks.apply_book_update`).

The consumer is durable (``marketdata-store``), pulls many messages at once, inserts them in
one columnar insert (skipping sequences already stored) and only then acknowledges each of
them (explicit acks), so a crash at any point redelivers what was not stored and nothing is
stored twice.

NATS going away (a restart, a closed connection) loses nothing: a JetStream publish that
fails or is not acknowledged is sent again with the same ``Nats-Msg-Id`` until the stream
acknowledges it (a copy the stream already holds is dropped by its duplicate window), the
feed waiting meanwhile; a feed counts a message as published only once it is acknowledged,
in publish order. Core-NATS messages (``.quote``, ``.trade``, ``.trades``, ``.book``) are
realtime: the client buffers them while it reconnects and drops them when it cannot
(``.book`` then starts again from a snapshot). On a new connection :meth:`Publisher.attach`
and :meth:`StoreConsumer.attach` move both onto it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from nats import errors as nats_errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind
from tradecore.subjects import MdKind, md_filter, md_subject
from tradecore.ticks import TRADE_TYPES, TickBatch, pack, unpack

from ..common import tracing
from ..common.backlog import Backlog
from ..common.settings import jetstream_replicas
from .books import Levels, book_deltas
from .feeds.sources import Chunk
from .store import InsertResult

log = logging.getLogger("tradecore.marketdata.pipeline")

STREAM = "MD_TICKS"
TICK_SUBJECTS = md_filter(MdKind.TICKS)
DURABLE = "marketdata-store"
# A message holds up to MAX_TICKS_PER_MESSAGE ticks and at most MAX_MESSAGE_BYTES packed (under
# NATS's default 1 MiB payload limit): a chunk whose packed form is larger is split in halves.
# Packed synthetic ticks take ≈ 18 bytes (LOBSTER ≈ 22, at most 66), so a chunk of 32768 is
# usually one message of ≈ 0.6 MB; fewer, larger messages cut the per-message work (publish,
# JetStream ack, fetch, unpack, explicit ack, generator calls) to a quarter of 8192-tick ones.
MAX_TICKS_PER_MESSAGE = 32768
MAX_MESSAGE_BYTES = 960 * 1024
FETCH_MESSAGES = 16
MAX_GROUP_MESSAGES = 32  # at most ≈ 1M ticks per insert
# An insert waits for at least this many messages (≈ 256k ticks) or GROUP_WAIT_S after its
# first one: every insert makes a part that ClickHouse merges later, and merging many small
# parts costs more CPU than the inserts themselves (measured: 18-24 inserts per 3M ticks and
# ≈ 0.4 CPU s of merges per 1M, against 80-90 inserts and 0.5-1.5 s without the wait).
MIN_GROUP_MESSAGES = 8
GROUP_WAIT_S = 0.25
ACK_WAIT_S = 15.0  # a message fetched by a process that died is redelivered after this
PUBLISH_WINDOW = 8
# Flow control: the stream drops its oldest messages at max_bytes (8 GiB), stored or not, so
# a feed pauses while the store consumer has this many messages not yet stored (≤ 2 GiB of
# ≤ 960 KiB messages), checked every BACKLOG_CHECK_EVERY messages published.
MAX_BACKLOG_MESSAGES = 2048
BACKLOG_CHECK_EVERY = 16
BACKLOG_POLL_S = 0.1
# A JetStream publish that failed is sent again after RETRY_MIN_S, doubling to RETRY_MAX_S.
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0
# Failures a new attempt cannot fix: the feed fails.
PERMANENT_ERRORS = (nats_errors.BadSubjectError, nats_errors.MaxPayloadError)

PublishedFn = Callable[[str, int], None]


def subject(venue: str, symbol: str, kind: MdKind) -> str:
    """``md.<venue>.<symbol>.<kind>`` (ValueError naming a part that is no NATS token)."""
    return md_subject(venue, symbol, kind)


async def ensure_stream(js: JetStreamContext) -> None:
    config = StreamConfig(
        name=STREAM,
        subjects=[TICK_SUBJECTS],
        storage=StorageType.FILE,
        duplicate_window=120.0,
        max_age=7 * 24 * 3600.0,
        max_bytes=8 * 1024**3,
        num_replicas=jetstream_replicas(),
    )
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)


def packed_parts(b: TickBatch) -> list[tuple[TickBatch, bytes]]:
    """``b`` packed as messages of at most MAX_TICKS_PER_MESSAGE ticks and MAX_MESSAGE_BYTES."""
    if len(b) > MAX_TICKS_PER_MESSAGE:
        out: list[tuple[TickBatch, bytes]] = []
        for i in range(0, len(b), MAX_TICKS_PER_MESSAGE):
            out += packed_parts(b.take(slice(i, i + MAX_TICKS_PER_MESSAGE)))
        return out
    data = pack(b)
    if len(data) <= MAX_MESSAGE_BYTES or len(b) < 2:
        return [(b, data)]
    half = len(b) // 2
    return packed_parts(b.take(slice(0, half))) + packed_parts(b.take(slice(half, len(b))))


@dataclass(slots=True)
class _Outgoing:
    """One JetStream message of a feed, kept until the stream acknowledged it."""

    feed: str
    subject: str
    data: bytes
    msg_id: str
    ticks: int
    on_published: PublishedFn | None = None
    task: asyncio.Task[None] | None = None


class Publisher:
    """Publishes feed chunks. Realtime first (core NATS: ``.book`` level updates, ``.quote``,
    ``.trades`` and, per event, ``.trade``), then the ticks to JetStream. JetStream acks are
    awaited in a window of ``PUBLISH_WINDOW`` messages across chunks (so the feed does not
    stall on each ack round trip); each message is sent until the stream acknowledges it
    (same ``Nats-Msg-Id``: deduplicated) and the publisher's ``on_published(feed, ticks)`` is
    called for it once, in publish order; :meth:`flush` waits for the rest and raises if one
    failed for good (``PERMANENT_ERRORS``).

    Made without a connection (``nc``/``js`` None) it publishes from the first
    :meth:`attach` on; :attr:`attached` says whether that happened."""

    def __init__(
        self,
        nc: Client | None = None,
        js: JetStreamContext | None = None,
        *,
        max_backlog: int = MAX_BACKLOG_MESSAGES,
        check_every: int = BACKLOG_CHECK_EVERY,
    ) -> None:
        self.nc = nc
        self.js = js
        self.max_backlog = max_backlog
        self.check_every = check_every
        self._since_check = 0
        self.paused_s = 0.0  # time feeds spent waiting for the store (flow control)
        self.retries = 0  # JetStream publishes sent again
        self._pending: dict[str, deque[_Outgoing]] = {}
        # The top of each book as last sent on .book (a reader's state), per (venue, symbol).
        self._books: dict[tuple[str, str], Levels] = {}

    @property
    def attached(self) -> bool:
        return self.nc is not None and self.js is not None

    def _conn(self) -> tuple[Client, JetStreamContext]:
        if self.nc is None or self.js is None:
            raise RuntimeError("the publisher has no NATS connection yet (see attach)")
        return self.nc, self.js

    def attach(self, nc: Client, js: JetStreamContext) -> None:
        """Publish on a new connection from now on (retries included)."""
        self.nc = nc
        self.js = js
        self._books.clear()  # readers on the new connection start from a snapshot

    async def _realtime(self, subj: str, data: bytes, traceparent: str = "") -> bool:
        """A core-NATS publish: buffered by the client while it reconnects, dropped (False)
        when it cannot be sent. ``traceparent``: the sampled trace the message continues."""
        try:
            headers = {tracing.TRACEPARENT: traceparent} if traceparent else None
            await self._conn()[0].publish(subj, data, headers=headers)
        except PERMANENT_ERRORS:
            raise
        except nats_errors.Error as exc:
            log.debug("realtime message on %s dropped: %s", subj, exc)
            return False
        return True

    async def publish(
        self, feed: str, chunk: Chunk, on_published: PublishedFn | None = None
    ) -> None:
        """Publish a chunk; ``on_published(feed, ticks)`` for each of its messages once the
        stream acknowledged it."""
        self._conn()
        b = chunk.batch
        b.feed = feed
        if chunk.book is not None:
            key = (b.venue, b.symbol)
            recv = int(b.recv_ts[-1]) if len(b) else 0
            deltas = book_deltas(b.venue, b.symbol, self._books.get(key), chunk.book, recv)
            self._books[key] = chunk.book
            if deltas is not None and not await self._realtime(
                subject(b.venue, b.symbol, MdKind.BOOK), pack(deltas)
            ):
                del self._books[key]  # a reader missed this update: send a snapshot next
        quotes = chunk.quotes if chunk.per_event else chunk.quotes[-1:]
        if quotes:
            qs = subject(b.venue, b.symbol, MdKind.QUOTE)
            for q in quotes:
                # A sampled quote starts a trace that its consumers continue (tracing.py).
                with tracing.stream_root(f"publish {qs}", SpanKind.PRODUCER) as tp:
                    await self._realtime(qs, q.SerializeToString(), tp)
        if chunk.per_event:
            # Paced and live feeds: let the client's flusher put the deltas and quotes on the
            # wire now, before the rest of the chunk's work (trades, the JetStream publish):
            # tick -> subscriber p50 ≈ 0.8 -> 0.5 ms (docs/benchmarks_marketdata.md).
            await asyncio.sleep(0)
        is_trade = np.isin(b.type, TRADE_TYPES)
        if is_trade.any():
            await self._realtime(subject(b.venue, b.symbol, MdKind.TRADES), pack(b.take(is_trade)))
        if chunk.per_event and chunk.trades:
            ts = subject(b.venue, b.symbol, MdKind.TRADE)
            for t in chunk.trades:
                await self._realtime(ts, t.SerializeToString())
        subj = subject(b.venue, b.symbol, MdKind.TICKS)
        pending = self._pending.setdefault(feed, deque())
        for part, data in packed_parts(b):
            await self._flow_control()
            msg_id = f"{feed}/{part.venue}.{part.symbol}.{part.first_seq}"
            out = _Outgoing(feed, subj, data, msg_id, len(part), on_published)
            out.task = asyncio.ensure_future(self._send(out))
            pending.append(out)
            while len(pending) > PUBLISH_WINDOW:
                await self._settle(pending.popleft())

    async def _send(self, out: _Outgoing) -> None:
        """Publish ``out`` until JetStream acknowledges it (or a permanent error)."""
        delay = RETRY_MIN_S
        while True:
            js = self._conn()[1]
            try:
                await js.publish(out.subject, out.data, headers={"Nats-Msg-Id": out.msg_id})
                return
            except PERMANENT_ERRORS:
                raise
            except Exception as exc:
                self.retries += 1
                log.warning(
                    "JetStream publish of %s failed (%s: %s); sending it again in %.1fs",
                    out.msg_id,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                if isinstance(exc, nats_errors.NoRespondersError):
                    # JetStream not ready yet, or the stream is gone (a server that lost
                    # its store): make it again if it is missing.
                    with contextlib.suppress(Exception):
                        await ensure_stream(js)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _settle(self, out: _Outgoing) -> None:
        assert out.task is not None
        await out.task
        if out.on_published is not None:
            out.on_published(out.feed, out.ticks)

    async def _flow_control(self) -> None:
        """Every ``check_every`` messages, wait while ``max_backlog`` or more messages are
        not yet stored: not delivered to the store consumer, delivered and not acknowledged,
        or still on their way to the stream (publishes not yet acknowledged); and while NATS
        cannot tell."""
        self._since_check += 1
        if self._since_check < self.check_every:
            return
        self._since_check = 0
        t0 = 0.0
        loop = asyncio.get_running_loop()
        while True:
            # Counted before the request: a publish acknowledged while it is on its way is
            # then in one of the two figures, never in neither.
            in_flight = sum(
                1 for q in self._pending.values() for o in q if o.task and not o.task.done()
            )
            try:
                info = await self._conn()[1].consumer_info(STREAM, DURABLE)
            except NotFoundError:  # no store consumer (yet): nothing to wait for
                break
            except Exception as exc:  # NATS unreachable or slow: ask again
                log.debug("consumer info unavailable (%s); asking again", exc)
                await asyncio.sleep(BACKLOG_POLL_S)
                continue
            backlog = (info.num_pending or 0) + (info.num_ack_pending or 0) + in_flight
            if backlog < self.max_backlog:
                break
            if not t0:
                t0 = loop.time()
                log.warning("store backlog %d messages: feeds pause until it is stored", backlog)
            await asyncio.sleep(BACKLOG_POLL_S)
        if t0:
            self.paused_s += loop.time() - t0
            log.info("store backlog down: feeds resume after %.1f s", loop.time() - t0)

    async def flush(self, feed: str) -> None:
        """Wait until the stream acknowledged everything ``feed`` published (raises on a
        permanent failure)."""
        pending = self._pending.pop(feed, deque())
        try:
            while pending:
                await self._settle(pending.popleft())
        finally:
            for out in pending:
                if out.task is not None:
                    out.task.cancel()


InsertFn = Callable[[list[TickBatch]], Awaitable[InsertResult]]
StoredFn = Callable[[dict[str, int]], None]
PublishingFn = Callable[[], bool]


class StoreConsumer:
    """Durable pull consumer: fetch, insert, then ack; counts stored ticks per feed.

    Fetch and insert overlap: while one fetched group is inserted (on the store thread, which
    releases the GIL inside chDB), the next group is fetched, unpacked and grows. Inserts run
    one at a time and in order, and each message is acknowledged on its own (explicit acks)
    only after the insert holding it returned. (Ack-all is not safe here: after a crash, the
    first ack of a newer message would also acknowledge the messages the dead process had
    fetched but not stored, and they would never be redelivered.)"""

    def __init__(
        self,
        js: JetStreamContext | None,
        insert: InsertFn,
        on_stored: StoredFn,
        publishing: PublishingFn = lambda: True,
    ) -> None:
        self.js = js
        self.insert = insert
        self.on_stored = on_stored
        # Whether a feed of this service is still publishing: when none is, a group does not
        # wait for more messages (none are coming), so the last ticks of a feed are stored
        # at once instead of after GROUP_WAIT_S.
        self.publishing = publishing
        self.backlog = Backlog()  # the pending gauge (registered by the app)
        self._task: asyncio.Task[None] | None = None
        self._store_task: asyncio.Task[None] | None = None
        self._sub: JetStreamContext.PullSubscription | None = None

    async def _config(self) -> ConsumerConfig:
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ACK_WAIT_S,
            max_ack_pending=100_000,
        )
        try:
            assert self.js is not None
            info = await self.js.consumer_info(STREAM, DURABLE)
        except NotFoundError:
            return config
        if info.config.ack_policy == AckPolicy.EXPLICIT:
            return config
        # A consumer made by an earlier version (ack-all): the ack policy cannot be changed in
        # place, so it is made again from the first message it has not acknowledged.
        floor = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
        log.info("recreating consumer %s with explicit acks from stream seq %d", DURABLE, floor + 1)
        await self.js.delete_consumer(STREAM, DURABLE)
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = floor + 1
        return config

    async def start(self) -> None:
        if self.js is None:
            raise RuntimeError("the store consumer has no JetStream context yet (see attach)")
        await self.attach(self.js)

    async def attach(self, js: JetStreamContext) -> None:
        """Fetch through ``js`` (a new connection) from now on; starts the consumer loop the
        first time. Messages fetched on a closed connection cannot be acknowledged: the
        stream redelivers them after ACK_WAIT_S and the insert skips what it stored."""
        self.js = js
        self._sub = await js.pull_subscribe(
            TICK_SUBJECTS,
            durable=DURABLE,
            stream=STREAM,
            config=await self._config(),
            pending_bytes_limit=1024 * 1024 * 1024,
        )
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="marketdata-store-consumer")

    async def stop(self) -> None:
        for task in (self._task, self._store_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _run(self) -> None:
        # Messages fetched while an insert is in flight accumulate into the next group, so the
        # groups grow (up to MAX_GROUP_MESSAGES) when the store is the slower side, and a group
        # waits a little for more (MIN_GROUP_MESSAGES, GROUP_WAIT_S): fewer, larger inserts.
        msgs: list[Msg] = []
        batches: list[TickBatch] = []
        redelivered: set[str] = set()
        since = 0.0  # when the group's first message came
        loop = asyncio.get_running_loop()
        while True:
            busy = self._store_task is not None and not self._store_task.done()
            young = (
                len(msgs) < MIN_GROUP_MESSAGES
                and loop.time() - since < GROUP_WAIT_S
                and self.publishing()
            )
            if msgs and not busy and not young:
                if self._store_task is not None:
                    await self._store_task
                self._store_task = asyncio.create_task(
                    self._store(msgs, batches, redelivered), name="marketdata-store-insert"
                )
                msgs, batches, redelivered = [], [], set()
                busy = True
            if busy and len(msgs) >= MAX_GROUP_MESSAGES:
                assert self._store_task is not None
                await asyncio.wait({self._store_task})
                continue
            try:
                assert self._sub is not None
                got = await self._sub.fetch(FETCH_MESSAGES, timeout=0.02 if busy or msgs else 0.5)
                self.backlog.fetched(got)
            except TimeoutError:
                self.backlog.fetched([])
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("fetch from %s failed: %s; retrying", STREAM, exc)
                await asyncio.sleep(0.5)
                continue
            if not msgs:
                since = loop.time()
            for m in got:
                msgs.append(m)
                try:
                    b = unpack(m.data)
                except ValueError as exc:
                    log.error("dropping a malformed message on %s: %s", m.subject, exc)
                    continue
                batches.append(b)
                if m.metadata.num_delivered and m.metadata.num_delivered > 1:
                    redelivered.add(b.feed)

    async def _store(
        self, msgs: list[Msg], batches: list[TickBatch], redelivered: set[str]
    ) -> None:
        while True:
            try:
                result = await self.insert(batches)
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("insert of %d batches failed; retrying in 1s", len(batches))
                for m in msgs:  # keep them ours while retrying (no redelivery meanwhile)
                    with contextlib.suppress(Exception):
                        await m.in_progress()
                await asyncio.sleep(1.0)
        try:
            for m in msgs:
                await m.ack()
        except Exception as exc:  # NATS went away: the rest come back and are deduplicated
            log.warning("ack after an insert failed (%s); the messages will be redelivered", exc)
        counts = dict(result.inserted)
        # Rows the feed itself stored before (a message sent again or redelivered) were
        # counted when they were inserted (or from the table at start): never again. Rows
        # another feed stored (a second replay of the same data) count for this feed, once:
        # not when its message is a redelivery.
        for feed, n in result.duplicates.items():
            other = n - result.resent.get(feed, 0)
            if other and feed not in redelivered:
                counts[feed] = counts.get(feed, 0) + other
        self.on_stored(counts)
