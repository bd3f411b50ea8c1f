"""Feed control: the registry of feed kinds, the running feeds, their progress and their
persistence (``<data_dir>/marketdata/feeds.json``) so that a feed killed with the service
resumes, after a restart, after the last sequence it stored without a gap (what the stream
held but had not stored yet is published again and deduplicated by the store).

Counters: ``published`` is the ticks JetStream acknowledged (each message once, in publish
order), ``stored`` the ticks the store consumer inserted for the feed (a copy of a row the feed
had stored already is not counted again); a status never shows more stored than published
(the consumer can store a message before its publish acknowledgement reaches the feed).

Kinds: ``lobster``, ``synthetic``, and ``alpaca`` (``services/marketdata/feeds/alpaca.py``'s
``AlpacaFeed``, live or history). Any other :class:`~.base.EventFeed` is wired in by adding a
factory to :data:`EVENT_FEEDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import UTC
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import json_format
from tradecore.errors import quote
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb

from ...common.errors import NotFoundError, PreconditionError
from ..books import Books
from .base import EventFeed
from .sources import (
    Chunk,
    EventFeedSource,
    FlowThread,
    LobsterSource,
    Source,
    SyntheticSource,
    check_symbol,
)

log = logging.getLogger("tradecore.marketdata.feeds")

KINDS = {"lobster": pb.LOBSTER, "synthetic": pb.SYNTHETIC, "alpaca": pb.ALPACA}
MAX_FINISHED = 1000  # feeds that are over kept in the registry (ListFeeds), newest first
SAVE_DELAY_S = 0.2
# StopFeed waits this long for the feed's publishes in flight (NATS may be down), then drops them.
STOP_FLUSH_S = 15.0


def _alpaca(spec: Any) -> EventFeed:
    """``AlpacaFeedSpec`` -> :class:`~.alpaca.AlpacaFeed` (credentials from the environment)."""
    from .alpaca import AlpacaFeed

    history = spec.mode == pb.HISTORY
    if not history and (spec.HasField("start") or spec.HasField("end")):
        raise ValueError("alpaca.start/alpaca.end are for mode HISTORY only")
    feed: EventFeed = AlpacaFeed(
        list(spec.symbols),
        "history" if history else "live",
        feed=spec.feed or None,
        start=spec.start.ToDatetime(tzinfo=UTC) if spec.HasField("start") else None,
        end=spec.end.ToDatetime(tzinfo=UTC) if spec.HasField("end") else None,
        rest_url=spec.rest_url or None,
        stream_url=spec.stream_url or None,
    )
    return feed


# Event-feed kinds: proto spec -> adapter (any EventFeed is wired in by adding a factory).
EVENT_FEEDS: dict[str, Callable[[Any], EventFeed]] = {"alpaca": _alpaca}

Resume = Callable[[str, str, list[str]], Awaitable[dict[str, int]]]


class FeedPublisher(Protocol):
    """Where feeds publish (:class:`~..pipeline.Publisher`)."""

    @property
    def attached(self) -> bool: ...  # whether it has a NATS connection to publish on

    async def publish(
        self, feed: str, chunk: Chunk, on_published: Callable[[str, int], None] | None = None
    ) -> None: ...

    async def flush(self, feed: str) -> None: ...


@dataclass
class FeedRecord:
    id: str
    kind: str
    spec: dict[str, Any]
    venue: str
    symbols: list[str]
    state: str = "RUNNING"
    total: int = 0
    published: int = 0
    stored: int = 0
    error: str = ""
    created_ns: int = 0
    start_ns: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False, compare=False)

    def status(self) -> pb.FeedStatus:
        st = pb.FeedStatus(
            id=self.id,
            kind=KINDS[self.kind],
            state=pb.FeedState.Value(self.state),
            venue=self.venue,
            symbols=self.symbols,
            total=self.total,
            published=self.published,
            stored=min(self.stored, self.published),
            error=self.error,
        )
        st.created.FromNanoseconds(self.created_ns)
        return st

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "task"}


def build_source(kind: str, spec: Any, start_ns: int, generator: FlowThread) -> Source:
    if kind == "lobster":
        return LobsterSource(spec)
    if kind == "synthetic":
        return SyntheticSource(spec, start_ns, generator)
    factory = EVENT_FEEDS.get(kind)
    if factory is None:
        raise ValueError(f"feed kind {quote(kind)} is not one of {sorted(KINDS)}")
    for i, s in enumerate(spec.symbols):
        check_symbol(s, f"{kind}.symbols[{i}]")
    feed = factory(spec)
    return EventFeedSource(feed, list(getattr(feed, "symbols", spec.symbols)))


class FeedManager:
    """The feeds of a service: ``publisher`` (NATS/JetStream) publishes their chunks,
    ``resume_points`` (the store) says where a resumed feed continues, ``generator`` makes
    the synthetic flows, ``books`` take each chunk's book."""

    def __init__(
        self,
        data_dir: Path,
        books: Books,
        publisher: FeedPublisher,
        resume_points: Resume,
        generator: FlowThread,
    ) -> None:
        self.path = data_dir / "marketdata" / "feeds.json"
        self.books = books
        self.publisher = publisher
        self.resume_points = resume_points
        self.generator = generator
        self.feeds: dict[str, FeedRecord] = {}
        self.changed = asyncio.Event()
        self._save_handle: asyncio.TimerHandle | None = None
        self._state_changed = asyncio.Event()  # replaced after each set: one per change
        self._load()

    # ------------------------------------------------------------------ persistence
    def _load(self) -> None:
        try:
            docs = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        for d in docs:
            d.pop("task", None)
            rec = FeedRecord(**d)
            self.feeds[rec.id] = rec

    def save(self) -> None:
        """Write the registry now (feeds that start or stop: a crash must find them)."""
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        self._prune()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([r.to_json() for r in self.feeds.values()]))
        tmp.replace(self.path)

    def save_soon(self) -> None:
        """Write the registry shortly, once for all the changes made meanwhile (a feed that
        finished: were it lost in a crash, the feed would resume, publish nothing new and
        finish again)."""
        if self._save_handle is None:
            self._save_handle = asyncio.get_running_loop().call_later(SAVE_DELAY_S, self.save)

    def _prune(self) -> None:
        """Keep the newest MAX_FINISHED feeds that are over (DONE, STOPPED, FAILED)."""
        over = [r for r in self.feeds.values() if r.state != "RUNNING"]
        if len(over) > MAX_FINISHED:
            over.sort(key=lambda r: r.created_ns)
            for r in over[: len(over) - MAX_FINISHED]:
                del self.feeds[r.id]

    # ------------------------------------------------------------------ control
    def _notify(self) -> None:
        """A feed's state changed: wake the callers of :meth:`wait_over`."""
        self._state_changed.set()
        self._state_changed = asyncio.Event()

    async def wait_over(self, feed_id: str, timeout: float) -> FeedRecord:
        """The feed once it is no longer RUNNING, or as it is after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            rec = self.get(feed_id)
            left = deadline - loop.time()
            if rec.state != "RUNNING" or left <= 0:
                return rec
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._state_changed.wait(), left)

    def get(self, feed_id: str) -> FeedRecord:
        rec = self.feeds.get(feed_id)
        if rec is None:
            raise NotFoundError(f"id: no feed {quote(feed_id)}")
        return rec

    async def start(self, request: pb.StartFeedRequest) -> FeedRecord:
        kind = request.WhichOneof("spec")
        if kind is None:
            raise ValueError("spec: one of lobster, synthetic or alpaca is required")
        if not self.publisher.attached:
            raise PreconditionError("NATS is not connected yet: feeds cannot publish")
        spec = getattr(request, kind)
        now = time.time_ns()
        source = build_source(kind, spec, now, self.generator)
        if isinstance(source, LobsterSource):
            await asyncio.get_running_loop().run_in_executor(None, source.load)
        busy = {
            (r.venue, s): r.id
            for r in self.feeds.values()
            if r.state == "RUNNING"
            for s in r.symbols
        }
        for s in source.symbols:
            if (source.venue, s) in busy:
                raise PreconditionError(
                    f"{source.venue}/{s} is being fed by {busy[(source.venue, s)]}; stop it first"
                )
        feed_id = f"{kind}-{len(self.feeds) + 1}"
        rec = FeedRecord(
            id=feed_id,
            kind=kind,
            spec=json_format.MessageToDict(spec, preserving_proto_field_name=True),
            venue=source.venue,
            symbols=list(source.symbols),
            total=source.total,
            created_ns=now,
            start_ns=now,
        )
        self.feeds[feed_id] = rec
        try:
            self.save()
        except OSError as exc:  # a feed that cannot be recorded would not resume: not started
            del self.feeds[feed_id]
            raise PreconditionError(
                f"the feed registry {self.path} cannot be written ({exc.strerror}): "
                "the feed is not started"
            ) from None
        rec.task = asyncio.create_task(self._run(rec, source, {}), name=f"feed-{feed_id}")
        return rec

    async def stop(self, feed_id: str) -> FeedRecord:
        rec = self.get(feed_id)
        if rec.state == "RUNNING":
            rec.state = "STOPPED"
            self._notify()
            if rec.task is not None:
                rec.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await rec.task
            try:  # settle the feed's in-flight JetStream publishes
                await asyncio.wait_for(self.publisher.flush(rec.id), STOP_FLUSH_S)
            except Exception as exc:  # the feed is stopped either way; say what happened
                log.warning("feed %s: a publish failed while stopping: %s", rec.id, exc)
            self.save()
        return rec

    async def resume_all(self) -> None:
        """Restart the feeds that were running when the service stopped."""
        for rec in list(self.feeds.values()):
            if rec.state != "RUNNING" or rec.task is not None:
                continue
            try:
                spec_type = {
                    "lobster": pb.LobsterFeedSpec,
                    "synthetic": pb.SyntheticFeedSpec,
                    "alpaca": pb.AlpacaFeedSpec,
                }[rec.kind]
                spec = json_format.ParseDict(rec.spec, spec_type())
                source = build_source(rec.kind, spec, rec.start_ns, self.generator)
                resume = await self.resume_points(rec.id, rec.venue, rec.symbols)
            except Exception as exc:
                rec.state, rec.error = "FAILED", f"cannot resume: {exc}"
                self._notify()
                log.error("feed %s: %s", rec.id, rec.error)
                self.save()
                continue
            if rec.kind not in EVENT_FEEDS:  # sequences 1..n: the last one is the count
                rec.published = sum(resume.values())
            log.info("feed %s resumes after %s", rec.id, resume)
            rec.task = asyncio.create_task(self._run(rec, source, resume), name=f"feed-{rec.id}")

    def count_stored(self, counts: dict[str, int]) -> None:
        """The ticks each feed has in the store (read from it at start)."""
        for rec in self.feeds.values():
            rec.stored = counts.get(rec.id, 0)

    def cancel_all(self) -> None:
        """Cancel every running feed's task (at shutdown): its state stays RUNNING, so it
        resumes on the next start."""
        for rec in self.feeds.values():
            if rec.task is not None and not rec.task.done():
                rec.task.cancel()

    async def wait_cancelled(self) -> None:
        """Wait for the tasks :meth:`cancel_all` cancelled to end."""
        tasks = [r.task for r in self.feeds.values() if r.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def publishing(self) -> bool:
        """Whether any feed is still producing or publishing (its task has not ended)."""
        return any(r.task is not None and not r.task.done() for r in self.feeds.values())

    def on_published(self, feed_id: str, n: int) -> None:
        """JetStream acknowledged ``n`` more ticks of the feed."""
        rec = self.feeds.get(feed_id)
        if rec is not None:
            rec.published += n
            self.changed.set()

    def on_stored(self, counts: dict[str, int]) -> None:
        for feed_id, n in counts.items():
            rec = self.feeds.get(feed_id)
            if rec is not None:
                rec.stored += n
                self._maybe_done(rec)
        self.changed.set()

    def _maybe_done(self, rec: FeedRecord) -> None:
        if (
            rec.state == "RUNNING"
            and rec.task is not None
            and rec.task.done()
            and rec.total
            and rec.published >= rec.total
            and rec.stored >= rec.total
        ):
            rec.state = "DONE"
            self._notify()
            self.save_soon()
            log.info("feed %s done: %d published, %d stored", rec.id, rec.published, rec.stored)

    async def _run(self, rec: FeedRecord, source: Source, resume: dict[str, int]) -> None:
        speed = source.speed
        t0_wall = 0.0
        t0_feed = 0
        try:
            async for chunk in source.chunks(resume):
                b = chunk.batch
                if speed > 0:
                    if not t0_wall:
                        t0_wall, t0_feed = time.monotonic(), int(b.ts[0])
                    due = t0_wall + (int(b.ts[0]) - t0_feed) / 1e9 / speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                now = time.time_ns()
                if not b.recv_ts.any():
                    b.recv_ts[:] = now
                # counted in on_published once acknowledged
                await self.publisher.publish(rec.id, chunk, self.on_published)
                self.books.update((b.venue, b.symbol), chunk.book, chunk.quotes)
            await self.publisher.flush(rec.id)
        except asyncio.CancelledError:
            await source.close()
            raise
        except Exception as exc:
            log.exception("feed %s failed", rec.id)
            rec.state, rec.error = "FAILED", str(exc)
            self._notify()
            self.save()
            await source.close()
            return
        await source.close()
        if not rec.total:
            rec.total = rec.published
        self.save_soon()
        self.books.save_soon.set()  # the feed's final books, kept across a restart
        # Done once the consumer has stored everything (see on_stored).
        asyncio.get_running_loop().call_soon(self._maybe_done, rec)
