"""StreamGreeks quote-to-update latency over a 100-contract chain: a Quote published on the
mesh's NATS until the GreeksUpdate carrying its sequence arrives at a gRPC client (direct), one
quote at a time. Peer in the same run: the Price RPC round trip for the same 100 contracts
(first-order Greeks, direct). p50/p99 in extra_info; ``p50_over_price`` is the ratio."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import numpy as np
import pytest
from tradecore.subjects import MdKind, md_subject
from tradecore_api.events.v1 import market_pb2
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from tests.integration.test_pricing_analytics_mesh import wait_subscribers
from tests.mesh import Mesh

SAMPLES = 2000
STRIKES = np.linspace(60.0, 140.0, 50)
P50: dict[str, float] = {}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    m = Mesh.with_free_ports(Path(tmp_path_factory.mktemp("bench-stream-mesh")))
    assert m.run("up").returncode == 0
    yield m
    m.run("down")


def chain_request() -> pb.StreamGreeksRequest:
    req = pb.StreamGreeksRequest(venue="XBEN", symbol="CHAIN", tolerance=0.0)
    for k in STRIKES:
        for typ in (pb.CALL, pb.PUT):
            req.contracts.add(
                strike=k, expiry_years=0.5, option_type=typ, volatility=0.25, rate=0.03,
                dividend_yield=0.01,
            )  # fmt: skip
    return req


def price_request() -> pb.PriceRequest:
    req = pb.PriceRequest()
    for c in chain_request().contracts:
        req.contracts.add(
            spot=100.0, strike=c.strike, expiry_years=c.expiry_years, option_type=c.option_type,
            volatility=c.volatility, rate=c.rate, dividend_yield=c.dividend_yield,
        )  # fmt: skip
    return req


def record(benchmark, name: str, samples: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    p50, p99 = float(np.percentile(samples, 50)), float(np.percentile(samples, 99))
    P50[name] = p50
    benchmark.extra_info.update({"p50_us": p50, "p99_us": p99, "samples": int(samples.size)})
    if name != "price" and "price" in P50:
        benchmark.extra_info["p50_over_price"] = p50 / P50["price"]


@pytest.mark.benchmark(group="stream-greeks")
@pytest.mark.peer
def test_price_round_trip_100(benchmark, mesh: Mesh) -> None:  # type: ignore[no-untyped-def]
    req = price_request()
    with grpc.insecure_channel(mesh.pricing) as ch:
        stub = pb_grpc.PricingServiceStub(ch)
        assert len(stub.Price(req, timeout=5).results) == 100
        for _ in range(200):
            stub.Price(req, timeout=5)
        samples = np.empty(SAMPLES)
        for i in range(SAMPLES):
            t0 = time.perf_counter_ns()
            stub.Price(req, timeout=5)
            samples[i] = (time.perf_counter_ns() - t0) / 1e3
        benchmark.pedantic(lambda: stub.Price(req, timeout=5), rounds=200, iterations=1)
    record(benchmark, "price", samples)


@pytest.mark.benchmark(group="stream-greeks")
def test_stream_greeks_quote_to_update(benchmark, mesh: Mesh) -> None:  # type: ignore[no-untyped-def]
    subject = md_subject("XBEN", "CHAIN", MdKind.QUOTE)
    loop = asyncio.new_event_loop()

    async def open_stream() -> tuple[object, object, object]:
        nc = await nats.connect(mesh.nats_url)
        ch = grpc.aio.insecure_channel(mesh.pricing)
        call = pb_grpc.PricingServiceStub(ch).StreamGreeks(chain_request())
        return nc, ch, call

    nc, ch, call = loop.run_until_complete(open_stream())
    seq = 0

    async def one() -> float:
        """Publish a quote that moves the mid; wait for its update; microseconds."""
        nonlocal seq
        seq += 1
        mid = 100.0 + 0.01 * (seq % 2)
        data = market_pb2.Quote(
            venue="XBEN", symbol="CHAIN", bid_price=mid - 0.005, ask_price=mid + 0.005,
            sequence=seq,
        ).SerializeToString()  # fmt: skip
        t0 = time.perf_counter_ns()
        await nc.publish(subject, data)  # type: ignore[attr-defined]
        while True:
            update = await call.read()  # type: ignore[attr-defined]
            if update.sequence == seq:
                assert len(update.rows) == 100
                return (time.perf_counter_ns() - t0) / 1e3

    async def first() -> None:
        """Once the service has subscribed: one quote, and the full chain arrives."""
        nonlocal seq
        await wait_subscribers(mesh, subject, 1)
        seq += 1
        data = market_pb2.Quote(bid_price=99.0, ask_price=100.0, sequence=seq).SerializeToString()
        await nc.publish(subject, data)  # type: ignore[attr-defined]
        update = await call.read()  # type: ignore[attr-defined]
        assert update.full and len(update.rows) == 100

    try:
        loop.run_until_complete(first())
        for _ in range(200):
            loop.run_until_complete(one())
        samples = np.array([loop.run_until_complete(one()) for _ in range(SAMPLES)])
        benchmark.pedantic(lambda: loop.run_until_complete(one()), rounds=200, iterations=1)
        record(benchmark, "stream", samples)
    finally:
        call.cancel()  # type: ignore[attr-defined]
        loop.run_until_complete(ch.close())  # type: ignore[attr-defined]
        loop.run_until_complete(nc.close())  # type: ignore[attr-defined]
        loop.close()
