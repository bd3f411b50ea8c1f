"""MarketDataService process: gRPC on TRADECORE_PORT (default from
services/registry.py), the tick store in
ClickHouse (embedded chDB under the data directory unless TRADECORE_CLICKHOUSE_DSN is set), the
JetStream tick stream and its durable store consumer, and the feeds (resumed after a restart).
Its health (grpc.health.v1, the service's name) is NOT_SERVING while NATS is unreachable.
TRADECORE_MD_RETENTION_DAYS (default 30; 0 keeps ticks forever) is the tick table's TTL, applied
at start."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client
from tradecore.ticks import TickBatch
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb
from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as pb_grpc

from ..common.bus import Bus
from ..common.server import ServiceApp, main
from ..common.settings import ServiceSettings, env_int
from ..registry import by_name
from .books import Books
from .feeds.manager import FeedManager
from .pipeline import Publisher, StoreConsumer, ensure_stream
from .servicer import MarketDataServicer, StoreThread
from .store import DEFAULT_RETENTION_DAYS, InsertResult, TickStore

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MarketDataService"].full_name
SPEC = by_name("marketdata")
BOOKS_SAVE_S = 2.0  # how often the books are saved while they change
log = logging.getLogger("tradecore.marketdata")


def build() -> ServiceApp:
    settings = ServiceSettings.from_env(SPEC.name, port=SPEC.port, metrics_port=SPEC.metrics_port)
    retention_days = env_int("TRADECORE_MD_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, minimum=0)
    books = Books(settings.data_dir / "marketdata" / "books.npz")
    feeds = FeedManager(settings.data_dir, books)
    store = StoreThread()
    servicer = MarketDataServicer(store, books, feeds)
    bus = Bus(settings.nats_url, "marketdata")
    consumer: list[StoreConsumer] = []
    publisher: list[Publisher] = []
    tasks: list[asyncio.Task[None]] = []

    async def insert(batches: list[TickBatch]) -> InsertResult:
        return await store.call(lambda s: s.insert(batches))

    async def resume(feed: str, venue: str, symbols: list[str]) -> dict[str, int]:
        return await store.call(lambda s: s.resume_points(feed, venue, symbols))

    feeds.resume_points = resume

    async def on_nats(nc: Client) -> None:
        """Every new NATS connection: the stream, then the publisher and the store consumer
        move onto it; the first one also resumes the feeds that were running."""
        js = nc.jetstream(timeout=10.0)
        while True:
            try:
                await ensure_stream(js)
                break
            except Exception as exc:
                if nc.is_closed:
                    raise
                log.warning("JetStream not ready (%s); retrying", exc)
                await asyncio.sleep(0.5)
        if publisher:
            publisher[0].attach(nc, js)
        else:
            publisher.append(Publisher(nc, js, on_published=feeds.on_published))
            feeds.publish = publisher[0].publish
            feeds.flush = publisher[0].flush
        if consumer:
            await consumer[0].attach(js)
        else:
            c = StoreConsumer(js, insert, feeds.on_stored, feeds.publishing)
            await c.start()
            consumer.append(c)
            await feeds.resume_all()
        log.info("marketdata: JetStream stream, store consumer and feeds ready")

    bus.on_connect(on_nats)

    async def on_start() -> None:
        loop = asyncio.get_running_loop()
        ticks = await loop.run_in_executor(
            store.pool, TickStore, settings.clickhouse_dsn, retention_days
        )
        store.store = ticks
        counts = await store.call(lambda s: s.feed_counts())
        for rec in feeds.feeds.values():
            rec.stored = counts.get(rec.id, 0)
        await bus.start()
        tasks.append(asyncio.create_task(save_books(), name="marketdata-books"))

    async def save_books() -> None:
        while True:  # cheap when nothing changed; a feed's end asks for a save at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(books.save_soon.wait(), BOOKS_SAVE_S)
            books.save_soon.clear()
            try:
                await asyncio.to_thread(books.save)
            except OSError as exc:
                log.warning("saving the books failed: %s", exc)

    async def on_stop() -> None:
        for rec in feeds.feeds.values():
            if rec.task is not None and not rec.task.done():
                rec.task.cancel()  # state stays RUNNING: the feed resumes on the next start
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for c in consumer:
            await c.stop()
        await bus.stop()
        with contextlib.suppress(OSError):
            books.save()
            feeds.save()  # what save_soon had not written yet
        if store.store is not None:
            await store.call(lambda s: s.close())
        store.pool.shutdown(wait=True)

    return ServiceApp(
        settings=settings,
        register=lambda server: pb_grpc.add_MarketDataServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        on_start=[on_start],
        on_stop=[on_stop],
        dependencies=[bus.watch],  # feeds and the store consumer need NATS
    )


def run() -> None:
    main(build)


if __name__ == "__main__":
    run()
