"""Round-trip latency of one unary call by two paths (the service directly, the service through
Envoy) against a bare gRPC echo, in the same run: each path is paired with the echo and the two
are called in turn (echo, path, echo, path, ...), so that load from other jobs on a shared
machine falls on both alike and the ratio compares like with like; the paths get a pairing each
(the gateway's work after its calls, its access log and spans, stays out of the direct path's
samples). Used by test_bench_latency (Price) and test_bench_oip (ModelInfer)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import grpc
import numpy as np

from tests.conftest import free_port

PATHS = ("echo", "direct", "envoy")


def bare_envoy_config(port: int, admin_port: int, upstream: str) -> dict[str, object]:
    """The least an Envoy can be in front of a gRPC server: one listener, the router filter
    alone (no auth, limits, access log or tracer), one HTTP/2 cluster: the floor under any
    gateway's figures on this machine."""
    host, up_port = upstream.rsplit(":", 1)
    h2 = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
        ".v3.HttpConnectionManager",
        "stat_prefix": "bare",
        "codec_type": "AUTO",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    address = {"socket_address": {"address": "127.0.0.1", "port_value": port}}
    endpoint = {"address": {"socket_address": {"address": host, "port_value": int(up_port)}}}
    admin = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}
    return {
        "admin": admin,
        "static_resources": {
            "listeners": [
                {
                    "name": "bare",
                    "address": address,
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "upstream",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": h2,
                    "load_assignment": {
                        "cluster_name": "upstream",
                        "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
                    },
                }
            ],
        },
    }


@contextlib.contextmanager
def bare_envoy(upstream: str, workdir: Path) -> Iterator[str]:
    """An Envoy of :func:`bare_envoy_config` in front of ``upstream`` (``host:port``), as the
    gateway runs it (same binary, two workers on this machine): its address once a call
    through it succeeds."""
    from tradecore_services.mesh.components import envoy_path

    port, admin = free_port(), free_port()
    config = workdir / "bare-envoy.json"
    config.write_text(json.dumps(bare_envoy_config(port, admin, upstream)))
    proc = subprocess.Popen(
        [envoy_path(), "-c", str(config), "--log-level", "error", "--disable-hot-restart"],
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        call = echo_call(grpc.insecure_channel(address), b"")
        deadline = time.monotonic() + 30
        while True:
            try:
                call()
                break
            except grpc.RpcError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def echo_server() -> Iterator[str]:
    """bench/echo_server.py on a free loopback port: its address."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "echo_server.py"), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with proc.stdout:
            assert proc.stdout.readline().strip() == "ready"
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def echo_call(channel: grpc.Channel, payload: bytes) -> Callable[[], object]:
    """One echo of ``payload`` (send a request the size of the measured call's)."""
    call = channel.unary_unary("/bench.Echo/Echo")
    return lambda: call(payload, timeout=5)


def interleaved(
    calls: Mapping[str, Callable[[], object]], n: int, warmup: int
) -> dict[str, np.ndarray]:
    """Round-trip times in microseconds, ``n`` per path, the paths interleaved call by call
    after ``warmup`` rounds."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    out = {name: np.empty(n) for name in calls}
    clock = time.perf_counter_ns
    for i in range(n):
        for name, call in calls.items():
            t0 = clock()
            call()
            out[name][i] = (clock() - t0) / 1e3
    return out


def paired(
    calls: Mapping[str, Callable[[], object]], n: int, warmup: int
) -> dict[str, dict[str, np.ndarray]]:
    """For every path but the echo: its samples and the echo's, the two interleaved."""
    return {
        name: interleaved({"echo": calls["echo"], name: call}, n, warmup)
        for name, call in calls.items()
        if name != "echo"
    }


def report(benchmark, name: str, pairs: Mapping[str, Mapping[str, np.ndarray]], call) -> None:  # type: ignore[no-untyped-def]
    """pytest-benchmark's own rounds of ``call``, and in extra_info the paired p50/p99, their
    ratios to the echo's of the same pairing and (through Envoy) what Envoy adds at p50 (the
    echo's own figures: those of its pairing with the direct path)."""
    benchmark.pedantic(call, rounds=200, iterations=1)
    samples = pairs["direct" if name == "echo" else name]
    p50, p99 = (float(np.percentile(samples[name], q)) for q in (50, 99))
    e50, e99 = (float(np.percentile(samples["echo"], q)) for q in (50, 99))
    info: dict[str, float | int] = {"p50_us": p50, "p99_us": p99, "calls": len(samples[name])}
    if name != "echo":
        info |= {"p50_over_echo": p50 / e50, "p99_over_echo": p99 / e99}
    if name == "envoy":
        info["envoy_added_p50_us"] = p50 - float(np.percentile(pairs["direct"]["direct"], 50))
    if name == "echo_bare_envoy":
        info["bare_envoy_added_p50_us"] = p50 - e50
    benchmark.extra_info.update(info)
    print(f"\n{name}: " + ", ".join(f"{k}={v:.3g}" for k, v in info.items()))
