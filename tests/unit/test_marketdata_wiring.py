"""The MarketDataService's objects built from their collaborators, without a server: the app
object makes each part once, starts them in order and stops them in reverse order, leaving no
thread behind; the synthetic-flow thread is an object of the app, not module state."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from tradecore.store import default_dsn
from tradecore_api.marketdata.v1 import marketdata_pb2 as pb
from tradecore_services.common.errors import PreconditionError
from tradecore_services.common.settings import ServiceSettings
from tradecore_services.marketdata.books import Books
from tradecore_services.marketdata.feeds.manager import FeedManager
from tradecore_services.marketdata.feeds.sources import FlowThread, SyntheticSource
from tradecore_services.marketdata.main import MarketDataApp
from tradecore_services.marketdata.pipeline import Publisher

T0 = 1_700_000_000_000_000_000
SPEC = pb.SyntheticFeedSpec(symbols=["A", "B"], rate=1e5, count=30_000, seed=7)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ticks(source: SyntheticSource) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {}
    async for chunk in source.chunks({}):
        out.setdefault(chunk.batch.symbol, []).append(chunk.batch.price)
    return {s: np.concatenate(p) for s, p in out.items()}


def test_flow_threads_are_independent_and_close_their_thread() -> None:
    """Two generators (two apps) give the same flow for the same seed and start; each ends
    its own thread on close."""
    first, second = FlowThread(), FlowThread()
    try:
        a = asyncio.run(ticks(SyntheticSource(SPEC, T0, first)))
        b = asyncio.run(ticks(SyntheticSource(SPEC, T0, second)))
    finally:
        first.close()
    assert sorted(a) == ["A", "B"] and all(len(a[s]) == 30_000 for s in a)
    for s in a:
        np.testing.assert_array_equal(a[s], b[s])
    alive = [t.name for t in threading.enumerate() if t.name.startswith("synthetic-gen")]
    assert len(alive) == 1  # the second's
    second.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("synthetic-gen")]


def test_feeds_refuse_to_start_before_their_publisher_has_a_connection(tmp_path: Path) -> None:
    async def run() -> None:
        generator = FlowThread()

        async def resume(feed: str, venue: str, symbols: list[str]) -> dict[str, int]:
            return {}

        feeds = FeedManager(tmp_path, Books(None), Publisher(), resume, generator)
        try:
            with pytest.raises(PreconditionError, match="NATS is not connected yet"):
                await feeds.start(pb.StartFeedRequest(synthetic=SPEC))
            assert feeds.feeds == {}
        finally:
            generator.close()

    asyncio.run(run())


def test_the_app_stops_every_thread_it_started(tmp_path: Path) -> None:
    """Started against a NATS that is not there (the bus keeps trying in the background) and
    an embedded store, then stopped: the store thread, the generator thread and the CPU pool's
    threads are gone."""
    settings = ServiceSettings(
        service="marketdata",
        nats_url=f"nats://127.0.0.1:{free_port()}",
        data_dir=tmp_path,
        clickhouse_dsn=default_dsn(tmp_path, "marketdata"),
    )
    before = {t.ident for t in threading.enumerate()}

    async def run() -> list[str]:
        app = MarketDataApp(settings, retention_days=1)
        await app.start()
        assert await app.store.call(lambda s: s.symbols()) == []
        # the generator thread runs only once a synthetic feed asks it for a flow
        await ticks(
            SyntheticSource(
                pb.SyntheticFeedSpec(symbols=["A"], rate=1e5, count=10), T0, app.generator
            )
        )
        await app.cpu.off_loop(threading.current_thread)  # the pool for large responses
        await app.stop()
        return [
            t.name
            for t in threading.enumerate()
            if t.ident not in before and t.name.startswith(("marketdata-", "synthetic-gen"))
        ]

    assert asyncio.run(run()) == []
