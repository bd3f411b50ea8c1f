"""(b) Price round-trip latency (one contract): direct and through Envoy, against a bare gRPC
echo service (same payload size) measured in the same run. p50/p99 in extra_info."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_api.pricing.v1 import pricing_pb2_grpc as pb_grpc

from tests.conftest import free_port
from tests.mesh import Mesh

CALLS = 3000
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
P50: dict[str, float] = {}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    m = Mesh.with_free_ports(Path(tmp_path_factory.mktemp("bench-mesh")))
    assert m.run("up").returncode == 0
    yield m
    m.run("down")


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "echo_server.py"), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def measure(benchmark, name: str, call: Callable[[], object]) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):  # warm up connections and code paths
        call()
    samples = np.empty(CALLS)
    for i in range(CALLS):
        t0 = time.perf_counter_ns()
        call()
        samples[i] = (time.perf_counter_ns() - t0) / 1e3
    benchmark.pedantic(call, rounds=200, iterations=1)
    p50, p99 = float(np.percentile(samples, 50)), float(np.percentile(samples, 99))
    P50[name] = p50
    benchmark.extra_info.update({"p50_us": p50, "p99_us": p99, "calls": CALLS})
    if "echo" in P50 and name != "echo":
        benchmark.extra_info["p50_over_echo"] = p50 / P50["echo"]


@pytest.mark.benchmark(group="price-latency")
def test_echo_baseline(benchmark, echo: str) -> None:  # type: ignore[no-untyped-def]
    payload = REQUEST.SerializeToString()
    with grpc.insecure_channel(echo) as ch:
        call = ch.unary_unary("/bench.Echo/Echo")
        measure(benchmark, "echo", lambda: call(payload, timeout=5))


@pytest.mark.benchmark(group="price-latency")
@pytest.mark.parametrize("via", ["direct", "envoy"])
def test_price_latency(benchmark, mesh: Mesh, via: str) -> None:  # type: ignore[no-untyped-def]
    target = mesh.pricing if via == "direct" else mesh.gateway
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.PricingServiceStub(ch)
        assert stub.Price(REQUEST, timeout=5).results[0].price > 0
        measure(benchmark, via, lambda: stub.Price(REQUEST, timeout=5))
