"""MarketDataService process: gRPC on TRADECORE_PORT (default from
services/registry.py), the tick store in
ClickHouse (embedded chDB under the data directory unless TRADECORE_CLICKHOUSE_DSN is set), the
JetStream tick stream and its durable store consumer, the feeds (resumed after a restart), and
NATS request/reply on ``marketdata.v1.daily_closes`` (closes.py; queue group ``marketdata``).
Its health (grpc.health.v1, the service's name) is NOT_SERVING while NATS is unreachable.
TRADECORE_MD_RETENTION_DAYS (default 30; 0 keeps ticks forever) is the tick table's TTL, applied
at start."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client
from tradecore.subjects import MARKETDATA_DAILY_CLOSES, MARKETDATA_VOLUME_CURVE
from tradecore.ticks import TickBatch
from tradecore_api.events.v1 import market_pb2 as events
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb
from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as pb_grpc

from ..common import tracing
from ..common.bus import Bus
from ..common.cpu import CpuPool
from ..common.nats_rpc import unary_handler
from ..common.server import ServiceApp, main
from ..common.settings import ServiceSettings, env_int
from ..common.store_thread import StoreThread
from ..registry import by_name
from .books import Books
from .closes import daily_closes_reply, volume_curve_reply
from .feeds.manager import FeedManager
from .feeds.sources import FlowThread
from .pipeline import DURABLE, STREAM, Publisher, StoreConsumer, ensure_stream
from .servicer import INLINE_ROWS, MarketDataServicer
from .store import DEFAULT_RETENTION_DAYS, InsertResult, TickStore

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MarketDataService"].full_name
SPEC = by_name("marketdata")
BOOKS_SAVE_S = 2.0  # how often the books are saved while they change
log = logging.getLogger("tradecore.marketdata")
QUEUE_GROUP = "marketdata"  # replicas share the request/reply calls


class MarketDataApp:
    """The service's parts, each made once with its collaborators: the store thread, the books,
    the synthetic-flow thread, the NATS connection, the publisher and store consumer (moved onto
    every new connection), the feeds, the servicer. :meth:`start` starts them in order and
    :meth:`stop` stops them in reverse order, after the server has drained."""

    def __init__(self, settings: ServiceSettings, retention_days: int) -> None:
        self.settings = settings
        dsn = settings.clickhouse_dsn
        self.store = StoreThread(lambda: TickStore(dsn, retention_days), "tick store")
        self.books = Books(settings.data_dir / "marketdata" / "books.npz")
        self.generator = FlowThread()
        self.bus = Bus(settings.nats_url, "marketdata")
        self.publisher = Publisher()
        self.feeds = FeedManager(
            settings.data_dir, self.books, self.publisher, self._resume_points, self.generator
        )
        self.consumer = StoreConsumer(
            None, self._insert, self.feeds.on_stored, self.feeds.publishing
        )
        self.cpu = CpuPool("marketdata", 2, INLINE_ROWS)  # GetBars / QueryTicks responses
        self.servicer = MarketDataServicer(self.store, self.books, self.feeds, self.cpu)
        self._save_books: asyncio.Task[None] | None = None
        self._resumed = False
        self.bus.on_connect(self._on_nats)

    def service_app(self) -> ServiceApp:
        app = ServiceApp(
            settings=self.settings,
            register=lambda server: pb_grpc.add_MarketDataServiceServicer_to_server(
                self.servicer, server
            ),
            service_names=[SERVICE_NAME],
            on_start=[self.start],
            on_stop=[self.stop],
            dependencies=[self.bus.watch],  # feeds and the store consumer need NATS
        )
        self.consumer.backlog.register(app.registry, STREAM, DURABLE)
        # The stored daily closes for processes that cannot open the store (closes.py).
        on_closes = unary_handler(
            MARKETDATA_DAILY_CLOSES, events.DailyClosesRequest, self.daily_closes, app.metrics
        )
        self.bus.subscribe(MARKETDATA_DAILY_CLOSES, on_closes, queue=QUEUE_GROUP)
        # The stored intraday volume curve for the execution service's VWAP algos.
        on_curve = unary_handler(
            MARKETDATA_VOLUME_CURVE, events.VolumeCurveRequest, self.volume_curve, app.metrics
        )
        self.bus.subscribe(MARKETDATA_VOLUME_CURVE, on_curve, queue=QUEUE_GROUP)
        return app

    async def volume_curve(self, req: events.VolumeCurveRequest) -> events.VolumeCurve:
        return await self.store.call(lambda s: volume_curve_reply(s.store, req))

    async def daily_closes(self, req: events.DailyClosesRequest) -> events.DailyCloses:
        return await self.store.call(lambda s: daily_closes_reply(s.store, req))

    async def _insert(self, batches: list[TickBatch]) -> InsertResult:
        with tracing.stream_root(
            "clickhouse insert ticks", batches=len(batches), rows=sum(len(b) for b in batches)
        ):
            return await self.store.call(lambda s: s.insert(batches))

    async def _resume_points(self, feed: str, venue: str, symbols: list[str]) -> dict[str, int]:
        return await self.store.call(lambda s: s.resume_points(feed, venue, symbols))

    async def _on_nats(self, nc: Client) -> None:
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
        self.publisher.attach(nc, js)
        await self.consumer.attach(js)
        if not self._resumed:
            self._resumed = True
            await self.feeds.resume_all()
        log.info("marketdata: JetStream stream, store consumer and feeds ready")

    async def start(self) -> None:
        await self.store.start()
        self.feeds.count_stored(await self.store.call(lambda s: s.feed_counts()))
        await self.bus.start()
        self._save_books = asyncio.create_task(self._save_books_loop(), name="marketdata-books")

    async def _save_books_loop(self) -> None:
        books = self.books
        while True:  # cheap when nothing changed; a feed's end asks for a save at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(books.save_soon.wait(), BOOKS_SAVE_S)
            books.save_soon.clear()
            try:
                await asyncio.to_thread(books.save)
            except OSError as exc:
                log.warning("saving the books failed: %s", exc)

    async def stop(self) -> None:
        self.feeds.cancel_all()  # state stays RUNNING: the feeds resume on the next start
        await self.feeds.wait_cancelled()
        if self._save_books is not None:
            self._save_books.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._save_books
        await self.consumer.stop()
        await self.bus.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.generator.close)
        await self.cpu.close()
        with contextlib.suppress(OSError):
            self.books.save()
            self.feeds.save()  # what save_soon had not written yet
        await self.store.stop()


def build() -> ServiceApp:
    settings = ServiceSettings.from_env(SPEC.name, port=SPEC.port, metrics_port=SPEC.metrics_port)
    retention_days = env_int("TRADECORE_MD_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, minimum=0)
    return MarketDataApp(settings, retention_days).service_app()


def run() -> None:
    main(build)


if __name__ == "__main__":
    run()
