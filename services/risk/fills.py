"""The fills the RiskService applies, read from the JetStream stream ``EXEC_FILLS``.

The execution service makes ``EXEC_FILLS`` (subjects ``exec.fill.*``, file storage, no age or
count limit, message id = fill id) and publishes every fill into it. Because the stream covers
``exec.fill.*``, a plain core-NATS publish on that subject by any other producer is stored in it
as well, so once the stream exists it holds every fill and the risk service reads fills only
from it.

Positions built from fills live in memory, so the read position is kept in memory too: at
start the service replays the stream from its first message (:meth:`FillFeed.backlog`, before
the RPCs answer), then follows it live from the next sequence with an ordered consumer
(:meth:`FillFeed.follow`; after a new NATS connection it resumes from the sequence after the
last fill applied). A durable consumer's acknowledged position would outlive the in-memory
positions across a restart and skip the fills they were built from, so none is used; a fill
seen twice (replay overlap, a producer publishing it again) is applied once because
:class:`~.accounts.AccountBook` keeps the fill ids it applied.

When the stream does not exist (the execution service has not started yet, or does not run)
the feed logs so, subscribes to ``exec.fill.*`` on core NATS meanwhile (fills are then applied
but not replayed after a restart) and checks for the stream every :data:`RETRY_S` seconds;
once it exists the core subscription is dropped and the stream is read from its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from tradecore.subjects import ExecKind, exec_filter

from ..common import tracing
from .journal import stored_ns

log = logging.getLogger("tradecore.risk.fills")

STREAM = "EXEC_FILLS"
RETRY_S = 2.0
TIMEOUT_S = 5.0
FETCH_BATCH = 512

#: ``apply(subject, data, stored_ns)``: ``stored_ns`` is the stream's store time of the fill
#: (0 for a fill from core NATS).
Apply = Callable[[str, bytes, int], Awaitable[None]]


class FillFeed:
    """Feeds every fill of ``EXEC_FILLS`` to ``apply`` once per stream sequence, in order."""

    def __init__(self, apply: Apply, retry_s: float = RETRY_S) -> None:
        self._apply = apply
        self.retry_s = retry_s
        #: The stream sequence of the next fill to read.
        self.next_seq = 1
        self._task: asyncio.Task[None] | None = None
        self._core: Subscription | None = None
        self._live: Subscription | None = None

    async def _exists(self, js: JetStreamContext) -> bool:
        try:
            await js.stream_info(STREAM)
        except NotFoundError:
            return False
        return True

    async def backlog(self, nc: Client) -> bool:
        """Apply the fills stored from :attr:`next_seq` on (the whole stream at start); False
        when the stream does not exist."""
        js = nc.jetstream(timeout=TIMEOUT_S)
        if not await self._exists(js):
            return False
        sub = await js.pull_subscribe(
            exec_filter(ExecKind.FILL),
            stream=STREAM,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.next_seq,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=30.0,
            ),
        )
        n = 0
        try:
            info = await sub.consumer_info()
            pending = info.num_pending or 0
            while pending > 0:
                for m in await sub.fetch(min(FETCH_BATCH, pending), timeout=TIMEOUT_S):
                    md = m.metadata
                    await self._apply(m.subject, m.data, stored_ns(m.metadata.timestamp))
                    self.next_seq = md.sequence.stream + 1
                    pending = md.num_pending
                    n += 1
        finally:
            await sub.unsubscribe()
        log.info("risk fills: %d read back from %s", n, STREAM)
        return True

    async def follow(self, nc: Client) -> None:
        """Follow the stream on ``nc`` (each new connection) from :attr:`next_seq`, in the
        background; core NATS meanwhile when the stream does not exist."""
        await self.stop()
        self._task = asyncio.create_task(self._follow(nc), name="risk-fills")

    async def _follow(self, nc: Client) -> None:
        js = nc.jetstream(timeout=TIMEOUT_S)
        while True:
            try:
                if await self._exists(js):
                    await self._subscribe(nc, js)
                    return
                if self._core is None:
                    log.warning(
                        "risk fills: stream %s does not exist yet (the execution service "
                        "makes it); fills come from core NATS %s meanwhile and are not "
                        "replayed after a restart; checking for it every %.1fs",
                        STREAM,
                        exec_filter(ExecKind.FILL),
                        self.retry_s,
                    )
                    self._core = await nc.subscribe(exec_filter(ExecKind.FILL), cb=self._on_core)
            except Exception as exc:  # NATS unusable for now: try again
                log.warning("risk fills: %s not followed yet (%s); retrying", STREAM, exc)
            await asyncio.sleep(self.retry_s)

    async def _subscribe(self, nc: Client, js: JetStreamContext) -> None:
        if self._core is not None:
            # Fills stored before the stream existed are not in it: read it from its start
            # (a fill also seen on core NATS is applied once, by fill id).
            await self._core.unsubscribe()
            self._core = None
            log.info("risk fills: stream %s exists now; reading fills from it", STREAM)
        self._live = await js.subscribe(
            exec_filter(ExecKind.FILL),
            stream=STREAM,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.next_seq
            ),
            cb=self._on_stream,
        )

    async def _on_core(self, msg: Msg) -> None:
        with tracing.consume_span(f"consume {msg.subject}", msg.headers):
            await self._apply(msg.subject, msg.data, 0)

    async def _on_stream(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq < self.next_seq:  # already applied (the backlog read it)
            return
        with tracing.consume_span(f"consume {msg.subject}", msg.headers, stream_seq=seq):
            await self._apply(msg.subject, msg.data, stored_ns(msg.metadata.timestamp))
        self.next_seq = seq + 1

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sub in (self._core, self._live):
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        self._core = self._live = None


__all__ = ["RETRY_S", "STREAM", "FillFeed"]
