"""services/common/tracing.py against a real nats-server with JetStream: spans of a NATS
request/reply call and of a consumed message, linked by ``traceparent`` headers, stored in
``TELEMETRY_SPANS`` by the batching exporter and read back by ``tradecore trace``'s reader."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_services.common import nats_rpc, tracing
from tradecore_services.common.interceptors import RpcMetrics
from tradecore_services.mesh.components import nats_server_path
from tradecore_services.mesh.trace_cli import read_spans, render, tree

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def js_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [nats_server_path(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TRADECORE_TRACE_SAMPLE", "1")
    monkeypatch.delenv("TRADECORE_OTLP_ENDPOINT", raising=False)
    tracing.configure("unit")
    yield
    tracing.shutdown()


def test_a_request_and_a_message_are_one_trace_in_the_span_stream(
    js_url: str, provider: None
) -> None:
    async def go() -> tuple[list[dict[str, Any]], str]:
        nc = await nats.connect(js_url)
        await tracing.attach(nc)
        metrics = RpcMetrics(CollectorRegistry(), "unit")
        consumed = asyncio.Event()

        async def on_event(msg: Msg) -> None:
            with (
                tracing.consume_span(f"consume {msg.subject}", msg.headers),
                tracing.child_span("kernel unit.work", rows=3),
            ):
                pass
            consumed.set()

        async def handle(req: pb.PriceRequest) -> pb.PriceResponse:
            # work done for the request publishes an event that carries its trace
            await nats_rpc.publish(nc, "unit.event", b"x")
            return pb.PriceResponse()

        await nc.subscribe("unit.v1.price", cb=nats_rpc.unary_handler(
            "unit.v1.price", pb.PriceRequest, handle, metrics))  # fmt: skip
        await nc.subscribe("unit.event", cb=on_event)
        with tracing.root_span("client call") as root:
            trace_id = f"{root.get_span_context().trace_id:032x}"
            await nats_rpc.request(nc, "unit.v1.price", b"", timeout=5)
        await asyncio.wait_for(consumed.wait(), 5)
        await nc.flush()
        spans: list[dict[str, Any]] = []
        for _ in range(50):  # the exporter sends every EXPORT_DELAY_MS
            await asyncio.sleep(0.1)
            spans = await read_spans(js_url, tracing.spans_subject(trace_id))
            if len(spans) >= 5:
                break
        await nc.close()
        return spans, trace_id

    spans, trace_id = asyncio.run(go())
    names = [s["name"] for _, s in tree(spans)]
    assert names == [
        "client call",
        "request unit.v1.price",
        "unit.v1.price",
        "publish unit.event",
        "consume unit.event",
        "kernel unit.work",
    ], names
    depth = {s["name"]: d for d, s in tree(spans)}
    assert depth["consume unit.event"] == depth["publish unit.event"] + 1
    by_name = {s["name"]: s for s in spans}
    assert by_name["unit.v1.price"]["kind"] == "SERVER"
    assert by_name["unit.v1.price"]["attributes"]["rpc.grpc.status_code"] == "OK"
    assert by_name["kernel unit.work"]["attributes"] == {"rows": 3}
    assert {s["service"] for s in spans} == {"unit"}
    assert render(trace_id, spans).startswith(f"trace {trace_id}: 6 spans, services unit")


def test_messages_outside_a_sampled_trace_carry_no_traceparent(js_url: str, provider: None) -> None:
    async def go() -> dict[str, str]:
        nc = await nats.connect(js_url)
        got: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()

        async def on(msg: Msg) -> None:
            got.set_result(dict(msg.headers or {}))

        await nc.subscribe("unit.plain", cb=on)
        await nats_rpc.publish(nc, "unit.plain", b"x", request_id="r1")
        headers = await asyncio.wait_for(got, 5)
        await nc.close()
        return headers

    assert asyncio.run(go()) == {"x-request-id": "r1"}
