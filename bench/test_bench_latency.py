"""(b) Price round-trip latency (one contract): direct and through Envoy, against a bare gRPC
echo service (same payload size) measured in the same run.

Each path is paired with the echo and the two called in turn (bench/rtt.py), so that load from
other jobs on a shared machine falls on both alike; p50/p99 and the ratios to the echo (p50 and
p99) and the latency Envoy adds (p50) are in extra_info."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from bench.rtt import echo_call, echo_server, paired, report
from tests.mesh import Mesh

CALLS = 3000
WARMUP = 300
REQUEST = pb.PriceRequest(
    contracts=[
        pb.OptionContract(
            spot=100,
            strike=105,
            expiry_years=0.5,
            rate=0.03,
            dividend_yield=0.01,
            volatility=0.25,
            option_type=pb.CALL,
            style=pb.EUROPEAN,
        )
    ]
)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    m = Mesh.with_free_ports(Path(tmp_path_factory.mktemp("bench-mesh")))
    assert m.run("up").returncode == 0
    yield m
    m.run("down")


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    with echo_server() as address:
        yield address


@pytest.fixture(scope="module")
def calls(mesh: Mesh, echo: str) -> Iterator[dict[str, Callable[[], object]]]:
    """One call of each path (its own channel each); through Envoy with a viewer's token, as a
    client of the gateway sends it."""
    channels = {
        "echo": grpc.insecure_channel(echo),
        "direct": grpc.insecure_channel(mesh.pricing),
        "envoy": grpc.insecure_channel(mesh.gateway),
    }
    token = {"direct": (), "envoy": mesh.metadata("viewer")}
    out = {"echo": echo_call(channels["echo"], REQUEST.SerializeToString())}
    for via in ("direct", "envoy"):
        stub = pb_grpc.PricingServiceStub(channels[via])
        md = token[via]
        assert stub.Price(REQUEST, timeout=5, metadata=md).results[0].price > 0
        out[via] = lambda stub=stub, md=md: stub.Price(REQUEST, timeout=5, metadata=md)
    yield out
    for ch in channels.values():
        ch.close()


@pytest.fixture(scope="module")
def samples(calls: dict[str, Callable[[], object]]) -> dict[str, dict[str, np.ndarray]]:
    return paired(calls, CALLS, WARMUP)


@pytest.mark.benchmark(group="price-latency")
def test_echo_baseline(benchmark, samples, calls) -> None:  # type: ignore[no-untyped-def]
    report(benchmark, "echo", samples, calls["echo"])


@pytest.mark.benchmark(group="price-latency")
@pytest.mark.parametrize("via", ["direct", "envoy"])
def test_price_latency(benchmark, samples, calls, via: str) -> None:  # type: ignore[no-untyped-def]
    report(benchmark, via, samples, calls[via])
