"""The trader's path across services: a market-data feed runs in the mesh, PricingService's
StreamGreeks reprices a chain on the quotes the MarketDataService publishes on NATS, and every
update equals the library's price at the mid of a quote that was really published."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import nats
import pytest
from tradecore import pricing
from tradecore.subjects import MdKind, md_subject
from tradecore_api.events.v1 import market_pb2
from tradecore_api.marketdata.v1 import marketdata_pb2 as md
from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as md_grpc
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SYMBOL = "FEEDGRK"
CHAIN = [(90.0, pb.PUT), (100.0, pb.CALL), (110.0, pb.CALL)]


def test_synthetic_feed_drives_stream_greeks(mesh: Mesh) -> None:
    quotes: dict[int, market_pb2.Quote] = {}
    subscribed = threading.Event()
    stop = threading.Event()

    async def record() -> None:  # every quote published, seen independently of the service
        nc = await nats.connect(mesh.nats_url)

        async def on_quote(m: Any) -> None:
            q = market_pb2.Quote.FromString(m.data)
            quotes[q.sequence] = q

        await nc.subscribe(md_subject("synthetic", SYMBOL, MdKind.QUOTE), cb=on_quote)
        await nc.flush()
        subscribed.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await nc.drain()

    recorder = threading.Thread(target=lambda: asyncio.run(record()), daemon=True)
    recorder.start()
    assert subscribed.wait(10)

    request = pb.StreamGreeksRequest(
        venue="synthetic",
        symbol=SYMBOL,
        contracts=[
            pb.StreamContract(strike=k, expiry_years=0.25, option_type=t, volatility=0.3, rate=0.02)
            for k, t in CHAIN
        ],
        greeks=pb.GREEKS_ALL,
        max_updates=6,
    )
    with mesh.channel() as ch:
        stream = pb_grpc.PricingServiceStub(ch).StreamGreeks(request, timeout=60)
        feeds = md_grpc.MarketDataServiceStub(ch)
        # The stream is subscribed once its call is accepted; give the subscription a moment.
        threading.Event().wait(0.5)
        status = feeds.StartFeed(
            md.StartFeedRequest(
                synthetic=md.SyntheticFeedSpec(symbols=[SYMBOL], rate=500, count=20000, speed=1)
            ),
            timeout=30,
        )
        try:
            updates = list(stream)
        finally:
            feeds.StopFeed(md.StopFeedRequest(id=status.id), timeout=30)
            stop.set()
            recorder.join(10)

    assert len(updates) == 6
    assert updates[0].full and len(updates[0].rows) == len(CHAIN)
    assert all(not u.full for u in updates[1:])
    assert [u.sequence for u in updates] == sorted({u.sequence for u in updates})
    current: dict[int, pb.PriceResult] = {}
    for u in updates:
        q = quotes[u.sequence]  # the update came from a quote the feed really published
        assert u.spot == pytest.approx((q.bid_price + q.ask_price) / 2, rel=1e-15)
        assert u.exchange_time_ns == q.exchange_time_ns
        for row in u.rows:
            current[row.index] = row.result
        for i, (k, t) in enumerate(CHAIN):
            ref = pricing.european(
                u.spot, k, 0.25, 0.02, 0.0, 0.3, "put" if t == pb.PUT else "call", greeks="all"
            )
            got = current[i]
            # rows left out of an update moved by less than the default tolerance (1e-9)
            assert got.price == pytest.approx(float(ref["price"]), abs=1e-8)
            if any(r.index == i for r in u.rows):
                assert got.delta == pytest.approx(float(ref["delta"]), rel=1e-14)
                assert got.speed == pytest.approx(float(ref["speed"]), rel=1e-12, abs=1e-300)
