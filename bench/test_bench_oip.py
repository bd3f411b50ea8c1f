"""Open Inference Protocol ModelInfer (the InferenceService, a 4-8-2 ONNX MLP, batch 1):
round-trip latency direct and through Envoy against a bare gRPC echo service (same payload
size) measured in the same run, and throughput with 1-64 concurrent clients.

Each path is paired with the echo and the two called in turn (bench/rtt.py), so that load from
other jobs falls on both alike; p50/p99, the ratios to the echo and what Envoy adds are in
extra_info. Targets (issue 13): direct p99 <= 1.3x echo; through the gateway p99 < 1 ms. The
floor under the gateway's figure is measured beside it: the same echo through a bare Envoy
(the router filter alone, bench/rtt.py ``bare_envoy``)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from tradecore_api.inference import grpc_service_pb2 as pb
from tradecore_api.inference import grpc_service_pb2_grpc as pb_grpc

from bench.rtt import bare_envoy, echo_call, echo_server, paired, report
from tests.inference_models import small_mlp, write
from tests.mesh import Mesh

CALLS = 10_000
WARMUP = 300
X = np.linspace(-1, 1, 4, dtype=np.float32).reshape(1, 4)
REQUEST = pb.ModelInferRequest(
    model_name="mlp",
    inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[1, 4])],
    raw_input_contents=[X.tobytes()],
)
CONCURRENCY = (1, 4, 16, 64)
THROUGHPUT_SECONDS = 3.0


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    m = Mesh.with_free_ports(Path(tmp_path_factory.mktemp("bench-oip")))
    # A Triton-layout directory instead of the registry: the service's path without routing.
    write(m.data_dir / "models", "mlp", 1, small_mlp())  # loaded when the service starts
    m.env["TRADECORE_INFERENCE_MODEL_REPOSITORY"] = str(m.data_dir / "models")
    # TRADECORE_INFERENCE_INLINE_US=0 in the environment measures the always-threaded path.
    if "TRADECORE_INFERENCE_INLINE_US" in os.environ:
        m.env["TRADECORE_INFERENCE_INLINE_US"] = os.environ["TRADECORE_INFERENCE_INLINE_US"]
    up = m.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    yield m
    m.run("down")


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    with echo_server() as address:
        yield address


@pytest.fixture(scope="module")
def echo_via_bare_envoy(echo: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with bare_envoy(echo, Path(tmp_path_factory.mktemp("bare-envoy"))) as address:
        yield address


@pytest.fixture(scope="module")
def calls(
    mesh: Mesh, echo: str, echo_via_bare_envoy: str
) -> Iterator[dict[str, Callable[[], object]]]:
    """One call of each path; through Envoy with a viewer's token, as a client sends it."""
    channels = {
        "echo": grpc.insecure_channel(echo),
        "echo_bare_envoy": grpc.insecure_channel(echo_via_bare_envoy),
        "direct": grpc.insecure_channel(str(mesh.inference)),
        "envoy": grpc.insecure_channel(mesh.gateway),
    }
    token = {"direct": (), "envoy": mesh.metadata("viewer")}
    # The echo answers with the request: pad it to the size of a ModelInfer response too.
    payload = REQUEST.SerializeToString()
    out = {
        "echo": echo_call(channels["echo"], payload),
        "echo_bare_envoy": echo_call(channels["echo_bare_envoy"], payload),
    }
    for via in ("direct", "envoy"):
        stub = pb_grpc.GRPCInferenceServiceStub(channels[via])
        md = token[via]
        resp = stub.ModelInfer(REQUEST, timeout=5, metadata=md)
        assert np.frombuffer(resp.raw_output_contents[0], np.float32).shape == (2,)
        out[via] = lambda stub=stub, md=md: stub.ModelInfer(REQUEST, timeout=5, metadata=md)
    yield out
    for ch in channels.values():
        ch.close()


@pytest.fixture(scope="module")
def samples(calls: dict[str, Callable[[], object]]) -> dict[str, dict[str, np.ndarray]]:
    return paired(calls, CALLS, WARMUP)


@pytest.mark.benchmark(group="oip-latency")
def test_echo_baseline(benchmark, samples, calls) -> None:  # type: ignore[no-untyped-def]
    report(benchmark, "echo", samples, calls["echo"])


@pytest.mark.benchmark(group="oip-latency")
def test_echo_through_bare_envoy(benchmark, samples, calls) -> None:  # type: ignore[no-untyped-def]
    """The floor of any call through an Envoy here: the bare echo behind the router alone."""
    report(benchmark, "echo_bare_envoy", samples, calls["echo_bare_envoy"])


@pytest.mark.benchmark(group="oip-latency")
@pytest.mark.parametrize("via", ["direct", "envoy"])
def test_model_infer_latency(benchmark, samples, calls, via: str) -> None:  # type: ignore[no-untyped-def]
    report(benchmark, via, samples, calls[via])


async def _throughput(target: str, clients: int, seconds: float) -> tuple[int, np.ndarray]:
    """Calls completed by ``clients`` concurrent callers (one channel) in ``seconds``."""
    async with grpc.aio.insecure_channel(target) as ch:
        stub = pb_grpc.GRPCInferenceServiceStub(ch)
        await stub.ModelInfer(REQUEST, timeout=5)
        stop = time.perf_counter() + seconds
        latencies: list[float] = []

        async def caller() -> int:
            n = 0
            while time.perf_counter() < stop:
                t0 = time.perf_counter_ns()
                await stub.ModelInfer(REQUEST, timeout=10)
                latencies.append((time.perf_counter_ns() - t0) / 1e3)
                n += 1
            return n

        done = await asyncio.gather(*(caller() for _ in range(clients)))
        return sum(done), np.array(latencies)


@pytest.mark.benchmark(group="oip-throughput")
@pytest.mark.parametrize("clients", CONCURRENCY)
def test_model_infer_throughput(benchmark, mesh: Mesh, clients: int) -> None:  # type: ignore[no-untyped-def]
    result: dict[str, tuple[int, np.ndarray]] = {}

    def run() -> None:
        result["r"] = asyncio.run(_throughput(str(mesh.inference), clients, THROUGHPUT_SECONDS))

    benchmark.pedantic(run, rounds=1, iterations=1)
    calls, lat = result["r"]
    info = {
        "clients": clients,
        "calls_per_s": calls / THROUGHPUT_SECONDS,
        "p50_us": float(np.percentile(lat, 50)),
        "p99_us": float(np.percentile(lat, 99)),
    }
    benchmark.extra_info.update(info)
    print("\nthroughput: " + ", ".join(f"{k}={v:.4g}" for k, v in info.items()))
