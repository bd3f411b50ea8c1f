"""(b) Price round-trip latency (one contract): direct and through Envoy, against a bare gRPC
echo service (same payload size) measured in the same run.

The three paths are called in turn (echo, direct, Envoy, echo, ...) so that load from other
jobs on a shared machine falls on all three alike; p50/p99 and the ratios to echo (p50 and p99)
and the latency Envoy adds (p50) are in extra_info."""

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
PATHS = ("echo", "direct", "envoy")


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
    assert proc.stdout is not None
    with proc.stdout:
        assert proc.stdout.readline().strip() == "ready"
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def calls(mesh: Mesh, echo: str) -> Iterator[dict[str, Callable[[], object]]]:
    """One call of each path (its own channel each)."""
    channels = {
        "echo": grpc.insecure_channel(echo),
        "direct": grpc.insecure_channel(mesh.pricing),
        "envoy": grpc.insecure_channel(mesh.gateway),
    }
    payload = REQUEST.SerializeToString()
    echo_call = channels["echo"].unary_unary("/bench.Echo/Echo")
    out: dict[str, Callable[[], object]] = {"echo": lambda: echo_call(payload, timeout=5)}
    for via in ("direct", "envoy"):
        stub = pb_grpc.PricingServiceStub(channels[via])
        assert stub.Price(REQUEST, timeout=5).results[0].price > 0
        out[via] = lambda stub=stub: stub.Price(REQUEST, timeout=5)
    yield out
    for ch in channels.values():
        ch.close()


@pytest.fixture(scope="module")
def samples(calls: dict[str, Callable[[], object]]) -> dict[str, np.ndarray]:
    """Round-trip times in microseconds, CALLS per path, the paths interleaved call by call."""
    for _ in range(WARMUP):  # connections and code paths warm
        for name in PATHS:
            calls[name]()
    out = {name: np.empty(CALLS) for name in PATHS}
    clock = time.perf_counter_ns
    for i in range(CALLS):
        for name in PATHS:
            call = calls[name]
            t0 = clock()
            call()
            out[name][i] = (clock() - t0) / 1e3
    return out


def report(benchmark, name: str, samples: dict[str, np.ndarray], call) -> None:  # type: ignore[no-untyped-def]
    benchmark.pedantic(call, rounds=200, iterations=1)
    p50, p99 = (float(np.percentile(samples[name], q)) for q in (50, 99))
    e50, e99 = (float(np.percentile(samples["echo"], q)) for q in (50, 99))
    info: dict[str, float | int] = {"p50_us": p50, "p99_us": p99, "calls": CALLS}
    if name != "echo":
        info |= {"p50_over_echo": p50 / e50, "p99_over_echo": p99 / e99}
    if name == "envoy":
        d50 = float(np.percentile(samples["direct"], 50))
        info["envoy_added_p50_us"] = p50 - d50
    benchmark.extra_info.update(info)


@pytest.mark.benchmark(group="price-latency")
def test_echo_baseline(benchmark, samples, calls) -> None:  # type: ignore[no-untyped-def]
    report(benchmark, "echo", samples, calls["echo"])


@pytest.mark.benchmark(group="price-latency")
@pytest.mark.parametrize("via", ["direct", "envoy"])
def test_price_latency(benchmark, samples, calls, via: str) -> None:  # type: ignore[no-untyped-def]
    report(benchmark, via, samples, calls[via])
