"""NATS request/reply handlers and request ids (services/common/nats_rpc.py) against a real
nats-server: the same status mapping, metrics and request-id handling as the gRPC calls."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import nats
import pytest
from google.protobuf.message import Message
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry
from tradecore.subjects import MdKind, md_subject
from tradecore_api.events.v1 import market_pb2
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_services.common import nats_rpc
from tradecore_services.common.errors import NotFoundError
from tradecore_services.common.interceptors import RpcMetrics, cap_message
from tradecore_services.mesh.components import nats_server_path

from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SUBJECT = "test.v1.echo"
SUBJ = md_subject("X", "Y", MdKind.QUOTE)


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [nats_server_path(), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:  # until it accepts connections
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


def count(registry: CollectorRegistry, code: str) -> float:
    value = registry.get_sample_value(
        "tradecore_rpc_requests_total", {"service": "test", "method": SUBJECT, "code": code}
    )
    return value or 0.0


def serve(
    url: str,
    handle: Callable[[pb.PriceRequest], Message | Awaitable[Message]],
    body: Callable[[nats.NATS, CollectorRegistry], Awaitable[None]],
) -> CollectorRegistry:
    """Run ``body(client, registry)`` while ``handle`` serves SUBJECT."""
    registry = CollectorRegistry()
    metrics = RpcMetrics(registry, "test")

    async def go() -> None:
        server = await nats.connect(url)
        client = await nats.connect(url)
        try:
            await server.subscribe(
                SUBJECT, cb=nats_rpc.unary_handler(SUBJECT, pb.PriceRequest, handle, metrics)
            )
            await server.flush()
            await client.flush()
            await body(client, registry)
        finally:
            await client.close()
            await server.close()

    asyncio.run(go())
    return registry


def test_reply_carries_the_request_id_and_traceparent(nats_url: str) -> None:
    seen: list[str] = []
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    def handle(req: pb.PriceRequest) -> Message:
        seen.append(nats_rpc.current_request_id.get())
        return pb.PriceResponse(results=[pb.PriceResult() for _ in req.contracts])

    async def body(nc: nats.NATS, registry: CollectorRegistry) -> None:
        req = pb.PriceRequest(contracts=[pb.OptionContract(), pb.OptionContract()])
        msg = await nc.request(
            SUBJECT,
            req.SerializeToString(),
            timeout=5,
            headers={"X-Request-Id": "rid-42", "traceparent": trace},
        )
        assert len(pb.PriceResponse.FromString(msg.data).results) == 2
        assert msg.headers == {"x-request-id": "rid-42", "traceparent": trace}
        # without an id the handler makes one and sends it back
        msg = await nc.request(SUBJECT, req.SerializeToString(), timeout=5)
        assert msg.headers is not None and len(msg.headers["x-request-id"]) == 32
        assert seen == ["rid-42", msg.headers["x-request-id"]]
        # the client helper sends and returns the id
        data, rid = await nats_rpc.request(
            nc, SUBJECT, req.SerializeToString(), timeout=5, request_id="mine"
        )
        assert (len(pb.PriceResponse.FromString(data).results), rid) == (2, "mine")
        assert count(registry, "OK") == 3

    serve(nats_url, handle, body)


def test_errors_map_to_statuses_with_the_request_id(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def handle(req: pb.PriceRequest) -> Message:
        if req.model == 1:
            raise ValueError("contracts[3].strike must be > 0\r\nInjected: header")
        if req.model == 2:
            raise NotFoundError("surface 'x'")
        if req.model == 4:
            raise ValueError("x" * 5000)
        raise RuntimeError("secret detail")

    async def call(nc: nats.NATS, data: bytes, rid: str) -> dict[str, str]:
        msg = await nc.request(SUBJECT, data, timeout=5, headers={"x-request-id": rid})
        assert msg.data == b""
        assert msg.headers is not None
        return msg.headers

    async def body(nc: nats.NATS, registry: CollectorRegistry) -> None:
        h = await call(nc, pb.PriceRequest(model=1).SerializeToString(), "a")
        # one header line: the CR LF of the message cannot start a header of its own
        assert h == {
            "x-request-id": "a",
            "Tradecore-Error": (
                "INVALID_ARGUMENT: contracts[3].strike must be > 0  Injected: header"
            ),
        }
        h = await call(nc, pb.PriceRequest(model=2).SerializeToString(), "b")
        assert h["Tradecore-Error"] == "NOT_FOUND: surface 'x'"
        h = await call(nc, pb.PriceRequest(model=4).SerializeToString(), "f")
        # capped as a gRPC status message is
        assert h["Tradecore-Error"] == "INVALID_ARGUMENT: " + cap_message("x" * 5000)
        assert len(h["Tradecore-Error"]) < 1100
        h = await call(nc, pb.PriceRequest(model=3).SerializeToString(), "c")
        assert h["Tradecore-Error"] == "INTERNAL: internal error (request id c)"
        # bytes that are no PriceRequest: the caller's fault, not INTERNAL
        h = await call(nc, b"\xff\xff\xff", "d")
        assert h["Tradecore-Error"] == (
            f"INVALID_ARGUMENT: request is not a valid PriceRequest for {SUBJECT} (DecodeError)"
        )
        with pytest.raises(nats_rpc.NatsRpcError) as err:
            await nats_rpc.request(nc, SUBJECT, b"\xff", timeout=5, request_id="e")
        assert (err.value.code, err.value.request_id) == ("INVALID_ARGUMENT", "e")
        assert count(registry, "INVALID_ARGUMENT") == 4
        assert count(registry, "NOT_FOUND") == 1
        assert count(registry, "INTERNAL") == 1

    with caplog.at_level(logging.INFO, logger="tradecore.rpc"):
        serve(nats_url, handle, body)
    internal = [r for r in caplog.records if "request id c" in r.getMessage()]
    assert internal and internal[0].exc_info is not None  # the traceback is logged
    assert "secret detail" in caplog.text  # ... in the log, never in the reply
    assert f"{SUBJECT} INVALID_ARGUMENT (request id a)" in caplog.text


def test_async_handlers_and_long_request_ids(nats_url: str) -> None:
    async def handle(req: pb.PriceRequest) -> Message:
        await asyncio.sleep(0)
        return pb.PriceResponse()

    async def body(nc: nats.NATS, registry: CollectorRegistry) -> None:
        msg = await nc.request(SUBJECT, b"", timeout=5, headers={"x-request-id": "r" * 1000})
        assert msg.headers == {"x-request-id": "r" * 128}

    serve(nats_url, handle, body)


def test_the_requester_s_timeout_is_the_handler_s_deadline(nats_url: str) -> None:
    """request() sends its timeout as x-timeout-ms; the handler sees the time left of it
    (time_remaining), and None when the request carried none or a malformed one."""
    seen: list[float | None] = []

    def handle(req: pb.PriceRequest) -> Message:
        seen.append(nats_rpc.time_remaining())
        return pb.PriceResponse()

    async def body(nc: nats.NATS, registry: CollectorRegistry) -> None:
        await nats_rpc.request(nc, SUBJECT, b"", timeout=2.5)
        await nc.request(SUBJECT, b"", timeout=5)
        for bad in ("soon", "0", "-5", "1e3", "9" * 40, "\u0663"):
            await nc.request(SUBJECT, b"", timeout=5, headers={"x-timeout-ms": bad})
        await nc.request(SUBJECT, b"", timeout=5, headers={"X-Timeout-Ms": "700"})

    serve(nats_url, handle, body)
    first, *rest, last = seen
    assert first is not None and 0.0 < first <= 2.5
    assert rest == [None] * 7
    assert last is not None and 0.0 < last <= 0.7
    assert nats_rpc.time_remaining() is None  # outside a handler


def test_publish_sets_the_request_id_and_subscribers_read_it(nats_url: str) -> None:
    async def go() -> None:
        nc = await nats.connect(nats_url)
        got: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_msg(msg: Msg) -> None:
            await got.put(msg)

        try:
            await nc.subscribe(SUBJ, cb=on_msg)
            quote = market_pb2.Quote(venue="X", symbol="Y", bid_price=1.0).SerializeToString()
            rid = await nats_rpc.publish(nc, SUBJ, quote, request_id="feed-1")
            msg = await asyncio.wait_for(got.get(), 5)
            assert rid == "feed-1" and nats_rpc.request_id_of(msg) == "feed-1"
            assert market_pb2.Quote.FromString(msg.data).bid_price == 1.0
            # inside a handled request, the request's id is the default
            token = nats_rpc.current_request_id.set("outer")
            try:
                await nats_rpc.publish(nc, SUBJ, quote, headers={"Nats-Msg-Id": "m"})
            finally:
                nats_rpc.current_request_id.reset(token)
            msg = await asyncio.wait_for(got.get(), 5)
            assert msg.headers == {"Nats-Msg-Id": "m", "x-request-id": "outer"}
            # a message without an id: none read (or a new one when asked)
            await nc.publish(SUBJ, quote)
            msg = await asyncio.wait_for(got.get(), 5)
            assert nats_rpc.request_id_of(msg, new=False) == ""
            assert len(nats_rpc.request_id_of(msg)) == 32
        finally:
            await nc.close()

    asyncio.run(go())
