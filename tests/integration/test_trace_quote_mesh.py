"""Tracing from a quote, on a mesh of its own (every quote sampled, JSON logs): a quote the
market-data service publishes from a synthetic feed is a trace root that the execution service
(marks, paper venue, algos on the OMS thread) and the risk service (revaluing the account that
holds the symbol) continue; ``tradecore trace --recent`` finds it and ``tradecore trace <id>``
shows it. The services' JSON log lines carry the request id and the trace id."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from tradecore.subjects import MdKind, md_subject
from tradecore_api.events.v1 import common_pb2, execution_pb2, market_pb2
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc

from tests.integration.test_execution_mesh import publish_quote, submit
from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def tmesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    m = Mesh.with_free_ports(Path(tmp_path_factory.mktemp("trace-mesh")))
    m.env = {
        "TRADECORE_TRACE_STREAM_SAMPLE": "1",
        "TRADECORE_TRACE_SAMPLE": "1",
        "TRADECORE_LOG_FORMAT": "json",
    }
    up = m.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield m
    finally:
        down = m.run("down")
        assert down.returncode == 0, down.stdout + down.stderr


def test_a_quote_from_the_market_data_service_is_traced_through_execution_and_risk(
    tmesh: Mesh,
) -> None:
    acct, sym = "TQ" + uuid.uuid4().hex[:10], "TQS" + uuid.uuid4().hex[:5].upper()
    # The account holds the symbol (a fill on the paper venue), so the risk service watches it.
    publish_quote(tmesh, sym, 99.9, 100.1)
    with grpc.insecure_channel(tmesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        for i in range(200):
            got = submit(stub, acct, f"q{i}", symbol=sym, limit_price=100.1, time_in_force=3)
            if got.status == execution_pb2.FILLED:
                break
        assert got.status == execution_pb2.FILLED, got
    out = tmesh.run(
        "feed", "synthetic", "--symbols", sym, "--rate", "200", "--count", "400", "--wait",
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr

    def journeys() -> list[dict[str, Any]]:
        r = tmesh.run("trace", "--recent", "500", "--since", "120", "--json")
        assert r.returncode in (0, 1), r.stderr
        rows = json.loads(r.stdout or "[]")
        return [
            row
            for row in rows
            if row["root"] == f"publish md.synthetic.{sym}.quote"
            and {"marketdata", "execution", "risk"} <= set(row["services"])
        ]

    found: list[dict[str, Any]] = []
    for _ in range(40):
        found = journeys()
        if found:
            break
        tmesh.run("trace", uuid.uuid4().hex, "--wait", "0.5")  # a pause that reads nothing
    assert found, "no quote trace reached both the execution and the risk service"
    trace_id = found[0]["trace_id"]
    r = tmesh.run("trace", trace_id, "--json")
    spans = json.loads(r.stdout)
    by_id = {s["span_id"]: s for s in spans}
    root = spans[0]
    assert root["service"] == "marketdata" and root["kind"] == "PRODUCER" and not root["parent_id"]
    consumers = {s["service"]: s for s in spans if s["kind"] == "CONSUMER"}
    for service in ("execution", "risk"):
        s = consumers[service]
        assert s["name"] == f"consume md.synthetic.{sym}.quote"
        assert by_id[s["parent_id"]] is root  # the hop: publish -> consume
    assert any(s["name"] == "execution.oms" for s in spans)
    text = tmesh.run("trace", trace_id).stdout
    assert "marketdata" in text.splitlines()[0] and "consume md.synthetic." in text


def test_the_gateway_starts_a_trace_and_returns_its_context(tmesh: Mesh) -> None:
    """At TRADECORE_TRACE_SAMPLE=1 Envoy samples a request that came without a traceparent:
    the service's span is its child, the caller gets the context back, and Envoy's own span is
    stored beside it (sent by OTLP to the pricing service's receiver)."""
    req = urllib.request.Request(
        f"http://{tmesh.gateway}/v1/execution/accounts/TG{uuid.uuid4().hex[:8]}/state",
        headers=tmesh.auth_headers(),
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
        version, trace_id, gateway_span, flags = r.headers["traceparent"].split("-")
    assert (version, flags, len(trace_id), len(gateway_span)) == ("00", "01", 32, 16)
    spans: list[dict[str, Any]] = []
    for _ in range(20):  # Envoy flushes its spans every 5 s
        out = tmesh.run("trace", trace_id, "--json", "--wait", "2")
        spans = json.loads(out.stdout) if out.returncode == 0 else []
        if len(spans) >= 2:
            break
    assert [(s["service"], s["depth"]) for s in spans] == [("gateway", 0), ("execution", 1)], spans
    gateway, service = spans
    assert gateway["span_id"] == gateway_span and gateway["kind"] == "SERVER"
    assert not gateway["parent_id"] and gateway["end_ns"] >= service["end_ns"]
    assert service["name"] == "tradecore.execution.v1.ExecutionService/GetTradingState"
    assert service["parent_id"] == gateway_span
    text = tmesh.run("trace", trace_id).stdout.splitlines()
    assert text[0].startswith(f"trace {trace_id}: 2 spans, services execution, gateway")


def test_json_logs_carry_the_request_id_and_the_trace_id(tmesh: Mesh) -> None:
    trace_id, rid = uuid.uuid4().hex, "rid-" + uuid.uuid4().hex[:8]
    with grpc.insecure_channel(tmesh.execution) as ch, pytest.raises(grpc.RpcError) as err:
        pb_grpc.ExecutionServiceStub(ch).SubmitOrder(
            pb.SubmitOrderRequest(account="bad account", symbol="X", side=common_pb2.BUY,
                                  quantity=1, type=execution_pb2.MARKET, client_order_id="x"),
            metadata=(("traceparent", f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"),
                      ("x-request-id", rid)),
            timeout=10,
        )  # fmt: skip
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    log = Path(tmesh.data_dir) / "logs" / "execution-service.log"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message", "service"} <= set(x) for x in lines)
    mine = [x for x in lines if x.get("request_id") == rid]
    assert mine and mine[0]["trace_id"] == trace_id and mine[0]["service"] == "execution"
    assert "INVALID_ARGUMENT" in mine[0]["message"] and mine[0]["level"] == "INFO"


def test_a_quote_a_client_acts_on_is_one_trace_through_the_order_to_risk(tmesh: Mesh) -> None:
    """The journey quote → decision → order: a client receives a quote the market-data service
    published (its ``traceparent`` in the message headers), decides, and sends its order
    through the gateway with that context. One trace then holds the quote's publish, the
    order's pre-trade controls and journal writes on the OMS, the fill, and the risk service
    taking the fill, with per-hop latency in ``tradecore trace``."""
    acct, sym = "TJ" + uuid.uuid4().hex[:10], "TJQ" + uuid.uuid4().hex[:5].upper()
    got: dict[str, Any] = {}

    async def first_quote() -> None:
        nc = await nats.connect(tmesh.nats_url)
        done = asyncio.Event()

        async def on(msg: Any) -> None:  # the latest quote is the one the client acts on
            if (msg.headers or {}).get("traceparent"):
                q = market_pb2.Quote.FromString(msg.data)
                got.update(traceparent=msg.headers["traceparent"], ask=q.ask_price)
                done.set()

        await nc.subscribe(md_subject("synthetic", sym, MdKind.QUOTE), cb=on)
        await nc.flush()
        feed = await asyncio.to_thread(
            tmesh.run, "feed", "synthetic", "--symbols", sym, "--rate", "200", "--count",
            "400", "--wait", timeout=120,
        )  # fmt: skip
        assert feed.returncode == 0, feed.stderr
        await asyncio.wait_for(done.wait(), 30)
        await asyncio.sleep(0.5)  # the last quotes delivered
        await nc.close()

    asyncio.run(first_quote())
    # The decision: buy at the quote's ask, as a marketable IOC, in the quote's trace.
    trace_id = got["traceparent"].split("-")[1]
    body = {
        "account": acct, "symbol": sym, "side": "BUY", "quantity": 1, "type": "LIMIT",
        "limit_price": got["ask"], "time_in_force": "IOC", "venue": "PAPER",
        "client_order_id": "from-quote",
    }  # fmt: skip
    req = urllib.request.Request(
        f"http://{tmesh.gateway}/v1/execution/orders",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "content-type": "application/json",
            "traceparent": got["traceparent"],
            "x-client-trace-id": trace_id,
            **tmesh.auth_headers(),
        },
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        order = json.loads(r.read())
    assert order["status"] == "FILLED", order
    spans: list[dict[str, Any]] = []
    for _ in range(30):
        out = tmesh.run("trace", trace_id, "--json", "--wait", "1")
        spans = json.loads(out.stdout) if out.returncode == 0 else []
        names = {(s["service"], s["name"]) for s in spans}
        if ("risk", f"consume exec.fill.{acct}") in names:
            break
    names = {(s["service"], s["name"].split(" ")[0]) for s in spans}
    assert {
        ("marketdata", "publish"),
        ("execution", "tradecore.execution.v1.ExecutionService/SubmitOrder"),
        ("execution", "execution.oms"),
        ("risk", "consume"),
    } <= names, sorted(names)
    assert {s["trace_id"] for s in spans} == {trace_id}
    root = spans[0]
    assert root["service"] == "marketdata" and root["name"] == f"publish md.synthetic.{sym}.quote"
    text = tmesh.run("trace", trace_id).stdout.splitlines()
    assert text[0].startswith(f"trace {trace_id}:") and "risk" in text[0]
    assert any(f"consume exec.fill.{acct}" in line for line in text)
