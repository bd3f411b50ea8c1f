"""ExecutionService process: gRPC on TRADECORE_PORT (default from services/registry.py). Its
health (grpc.health.v1, the service's name) is NOT_SERVING while NATS, which holds its
journal, is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping

from nats.aio.client import Client
from prometheus_client import CollectorRegistry
from tradecore.oms.oms import OMS, OrderNotFound
from tradecore.oms.paper import PaperConfig, PaperVenue
from tradecore.oms.venue import Venue
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc

from ..common.bus import Bus
from ..common.errors import UnavailableError
from ..common.server import ServiceApp, main
from ..common.settings import ServiceSettings
from ..common.store_thread import StoreThread
from ..registry import by_name
from .alpaca_venue import AlpacaVenue, credentials
from .audit_trail import AuditTrail, log_dir, signer_for
from .engine import Engine
from .journal import STREAM, Journal
from .live import REBUILD_RETRY_S, Execution
from .paper_feed import PaperFeed
from .reconciliation import start_policy
from .servicer import ExecutionServicer
from .store import DURABLE, JournalStore, StoreConsumer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ExecutionService"].full_name
SPEC = by_name("execution")
log = logging.getLogger("tradecore.execution")


class ExecutionApp:
    """The service's parts, each made once with its collaborators: the metrics registry, the
    NATS connection, the journal, the execution state (made with the bus: it attaches the
    journal and replays it on connection), the ClickHouse copy of the journal (its store thread
    and durable consumer), the audit trail (every journal message appended to the tamper-evident
    log under the data directory, audit_trail.py), the servicer. :meth:`start` opens the store
    and the audit log, then starts NATS; :meth:`stop` stops them in reverse order after the
    server has drained."""

    def __init__(self, settings: ServiceSettings, venues: Mapping[str, Venue]) -> None:
        paper = venues.get("PAPER")
        self.settings = settings
        self.registry = CollectorRegistry()
        self.bus = Bus(settings.nats_url, "execution")
        self.journal = Journal()
        self.audit: AuditTrail | None = None
        feed = PaperFeed(paper) if isinstance(paper, PaperVenue) else None
        self.engine = Engine(self.journal, venues, feed.clock if feed else time.time_ns)
        self.execution = Execution(
            self.bus, self.journal, self.engine, feed, start_policy=start_policy()
        )
        self.store = StoreThread(
            lambda: JournalStore(settings.clickhouse_dsn), "execution journal store"
        )
        self.consumer = StoreConsumer(self.store)
        self.consumer.backlog.register(self.registry, STREAM, DURABLE)
        self.bus.on_connect(self._attach_consumer)  # after Execution's hook made the stream
        self.servicer = ExecutionServicer(self.execution)
        self.reports: VenueReports | None = None

    def service_app(self) -> ServiceApp:
        return ServiceApp(
            settings=self.settings,
            register=lambda server: pb_grpc.add_ExecutionServiceServicer_to_server(
                self.servicer, server
            ),
            service_names=[SERVICE_NAME],
            on_start=[self.start],
            on_stop=[self.stop],
            on_draining=[self.execution.close_streams],
            dependencies=[self.bus.watch],  # the journal
            registry=self.registry,
        )

    async def _attach_consumer(self, nc: Client) -> None:
        await self.consumer.attach(nc.jetstream())

    async def start(self) -> None:
        await self.store.start()
        loop = asyncio.get_running_loop()
        data_dir = self.settings.data_dir
        signer = await loop.run_in_executor(None, signer_for, data_dir)
        audit = AuditTrail(log_dir(data_dir), signer)
        await loop.run_in_executor(None, audit.open)
        self.audit = audit
        self.journal.follow(audit.offer)  # before the bus: the replay at start catches it up
        alpaca = self.engine.venues.get("ALPACA")
        if isinstance(alpaca, AlpacaVenue):  # its reports queued before the journal replays
            self.reports = VenueReports(self.execution, asyncio.get_running_loop())
            alpaca.set_dispatch(self.reports.dispatch)
            alpaca.account_of = booked_as(self.engine)
        await self.bus.start()
        if isinstance(alpaca, AlpacaVenue):
            alpaca.start()

    async def stop(self) -> None:
        alpaca = self.engine.venues.get("ALPACA")
        if isinstance(alpaca, AlpacaVenue):
            await asyncio.get_running_loop().run_in_executor(None, alpaca.stop)
        if self.reports is not None:
            await self.reports.close()
        await self.consumer.stop()
        await self.execution.stop()
        await self.bus.stop()
        await self.engine.close()
        if self.audit is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.audit.close)
        await self.store.stop()


class VenueReports:
    """A venue's reports from its own threads onto the OMS thread: one queue, applied one at a
    time in the order given, once the journal is replayed; each is journaled like any other
    venue event before it applies. A report whose journal write failed (NATS away) is applied
    again after the service has rebuilt from the journal, so none is lost; one the journal did
    store is then a repeat the OMS absorbs (fills by fill id; another repeat is an anomaly)."""

    def __init__(self, execution: Execution, loop: asyncio.AbstractEventLoop) -> None:
        self.execution = execution
        self.loop = loop
        self.queue: asyncio.Queue[Callable[[], None]] = asyncio.Queue()
        self.task = loop.create_task(self._run(), name="venue-reports")

    def dispatch(self, fn: Callable[[], None]) -> None:
        """Thread-safe: queue ``fn`` (it calls the OMS's venue listener)."""
        self.loop.call_soon_threadsafe(self.queue.put_nowait, fn)

    async def _run(self) -> None:
        while True:
            report = await self.queue.get()

            def apply(_oms: OMS, report: Callable[[], None] = report) -> None:
                report()

            while True:
                await self.execution.restored.wait()
                try:
                    await self.execution._oms(apply)
                    break
                except UnavailableError as exc:
                    log.warning("execution: venue report not journaled (%s); retrying", exc)
                    await asyncio.sleep(REBUILD_RETRY_S)
                except Exception:
                    log.exception("execution: a venue report was not applied")
                    break

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def booked_as(engine: Engine) -> Callable[[str], tuple[str, str] | None]:
    """Our order id -> (account, symbol) as the OMS books it (None when unknown): how a remote
    venue's snapshot attributes its orders (AlpacaVenue.account_of). Called on the OMS
    thread, where the snapshot runs."""

    def lookup(order_id: str) -> tuple[str, str] | None:
        try:
            order = engine.oms.order(order_id)
        except OrderNotFound:
            return None
        return order.account, order.symbol

    return lookup


def venues(env: Mapping[str, str] | None = None) -> dict[str, Venue]:
    """The venues this service runs, by name: the paper venue (prices in 1/10,000 of the
    currency, no latency, no fees), fed from the market-data service's quotes and trades; and
    Alpaca when its credentials are configured (alpaca_venue.py: settings or files). The paper
    venue's order and fill ids carry the process's start time (``P<hex ns>-<n>``), so the ids of
    a restarted service never repeat the journaled ones (the OMS drops a fill id it has seen)."""
    env = os.environ if env is None else env
    paper = PaperVenue(PaperConfig(id_prefix=f"{time.time_ns():x}-"))
    out: dict[str, Venue] = {"PAPER": paper}
    if credentials(None, None, env) is not None:
        out["ALPACA"] = AlpacaVenue(env=env)
    return out


def build() -> ServiceApp:
    settings = ServiceSettings.from_env(SPEC.name, port=SPEC.port, metrics_port=SPEC.metrics_port)
    return ExecutionApp(settings, venues()).service_app()


def run() -> None:
    main(build)


if __name__ == "__main__":
    run()
