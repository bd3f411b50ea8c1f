"""Tracing on the real mesh: an order sent as JSON through the gateway is one trace from Envoy's
span through the execution service's order path (pre-trade and OMS, journal writes, the paper
venue, the fill into EXEC_FILLS, the ClickHouse copy of the journal) to the risk service that
applies the fill; ``tradecore trace <id>`` shows it with per-hop latency. The trace id comes
back to the caller (``traceparent`` response header, ``x-trace-id`` trailer over gRPC). The
caller's sampled ``traceparent`` makes the trace whatever TRADECORE_TRACE_SAMPLE (0.01 by
default) says; test_trace_quote_mesh.py has Envoy start one at a ratio of 1."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

import grpc
import pytest
from tradecore_api.events.v1 import common_pb2, execution_pb2
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc

from tests.integration.test_execution_mesh import publish_quote
from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def post_order(mesh: Mesh, body: dict[str, Any], traceparent: str) -> tuple[dict[str, Any], str]:
    """The order and the ``traceparent`` response header of a JSON SubmitOrder sent with
    ``traceparent`` (a sampled one is traced whatever TRADECORE_TRACE_SAMPLE says)."""
    req = urllib.request.Request(
        f"http://{mesh.gateway}/v1/execution/orders",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "content-type": "application/json",
            "traceparent": traceparent,
            # Envoy's sampling decision is its own: a client trace id forces it
            # (client_sampling, 100 % by default).
            "x-client-trace-id": traceparent.split("-")[1],
            **mesh.auth_headers(),
        },
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read()), r.headers.get("traceparent", "")


def spans_of(mesh: Mesh, trace_id: str, ok: Any) -> list[dict[str, Any]]:
    """The trace's spans from ``tradecore trace --json``, once ``ok(spans)`` holds."""
    deadline = time.monotonic() + 30
    while True:
        out = mesh.run("trace", trace_id, "--json", "--wait", "5")
        spans = json.loads(out.stdout) if out.returncode == 0 else []
        if ok(spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)


def test_an_order_through_the_gateway_is_one_trace_from_gateway_to_risk(mesh: Mesh) -> None:
    acct, sym = "TR" + uuid.uuid4().hex[:10], "TRQ" + uuid.uuid4().hex[:6].upper()
    publish_quote(mesh, sym, 99.9, 100.1)
    body = {
        "account": acct, "symbol": sym, "side": "BUY", "quantity": 10, "type": "LIMIT",
        "limit_price": 100.1, "time_in_force": "IOC", "venue": "PAPER",
    }  # fmt: skip
    deadline = time.monotonic() + 20
    i = 0
    while True:  # an IOC at the ask fills once the quote reached the paper venue's book
        i += 1
        sent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
        order, traceparent = post_order(mesh, {**body, "client_order_id": f"t{i}"}, sent)
        if order["status"] == "FILLED":
            break
        assert time.monotonic() < deadline, order
        time.sleep(0.1)
    # Envoy continued the caller's trace with a span of its own, whose context it sent to the
    # service and returned to the caller.
    version, trace_id, gateway_span, flags = traceparent.split("-")
    assert (version, trace_id, flags) == ("00", sent.split("-")[1], "01"), traceparent
    assert gateway_span != sent.split("-")[2]

    def complete(spans: list[dict[str, Any]]) -> bool:
        names = {(s["service"], s["name"].split(" ")[0]) for s in spans}
        return {
            ("execution", "tradecore.execution.v1.ExecutionService/SubmitOrder"),
            ("execution", "execution.oms"),
            ("execution", "jetstream"),
            ("execution", "clickhouse"),
            ("risk", "consume"),
        } <= names

    spans = spans_of(mesh, trace_id, complete)
    assert complete(spans), [(s["service"], s["name"]) for s in spans]
    assert {s["trace_id"] for s in spans} == {trace_id}
    by_id = {s["span_id"]: s for s in spans}
    server = next(s for s in spans if s["name"].endswith("/SubmitOrder"))
    # The service's span is a child of the gateway's (not stored without an OTLP endpoint).
    assert server["parent_id"] == gateway_span and server["kind"] == "SERVER"
    assert server["attributes"]["rpc.grpc.status_code"] == "OK"

    def chain(s: dict[str, Any]) -> list[str]:
        out = []
        while s is not None:
            out.append(f"{s['service']}:{s['name'].split(' ')[0]}")
            s = by_id.get(s["parent_id"])  # type: ignore[assignment]
        return out

    # The fill reached the risk service as a child of the fill's publish in the order's call.
    fill = next(s for s in spans if s["service"] == "risk" and s["name"].startswith("consume"))
    assert fill["name"] == f"consume exec.fill.{acct}" and fill["kind"] == "CONSUMER"
    # (above the call, only the gateway's own span, once Envoy has flushed it)
    path = chain(fill)
    at = path.index("execution:tradecore.execution.v1.ExecutionService/SubmitOrder")
    assert path[at + 1 :] in ([], ["gateway:ingress"]), path
    journal = [s for s in spans if s["name"].startswith("jetstream exec.journal.")]
    assert journal and all(s["attributes"]["bytes"] > 0 for s in journal)
    # the call's journal write (its command and the OMS's events, one message with the
    # paper venue) is within the call's trace, under the OMS's span
    assert all("execution:execution.oms" in chain(s) for s in journal), journal
    assert server["start_ns"] <= fill["start_ns"]
    # The table: one line per span, the risk hop with its latency.
    text = mesh.run("trace", trace_id)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    # (spans may still arrive: the gateway's own is flushed every 5 s)
    head = lines[0].split()
    assert head[:2] == ["trace", f"{trace_id}:"] and int(head[2]) >= len(spans), lines[0]
    services = lines[0].split("services ", 1)[1].rsplit(",", 1)[0].split(", ")
    assert {"execution", "risk"} <= set(services), lines[0]
    hop = next(line for line in lines if f"consume exec.fill.{acct}" in line)
    assert float(hop.split()[2]) >= 0.0, hop  # start, duration, hop ms


def test_grpc_callers_get_the_trace_id_and_a_traceparent_is_followed(mesh: Mesh) -> None:
    trace_id = uuid.uuid4().hex
    parent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    with grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        _, call = stub.GetTradingState.with_call(
            pb.GetTradingStateRequest(account="TR" + uuid.uuid4().hex[:10]),
            metadata=(("traceparent", parent),),
            timeout=10,
        )
        assert dict(call.trailing_metadata())["x-trace-id"] == trace_id
        # unsampled (flags 00): no span, no trace id back
        _, call = stub.GetTradingState.with_call(
            pb.GetTradingStateRequest(account="TR" + uuid.uuid4().hex[:10]),
            metadata=(("traceparent", f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"),),
            timeout=10,
        )
        assert "x-trace-id" not in dict(call.trailing_metadata())
        # a failed call's span records its status
        with pytest.raises(grpc.RpcError):
            stub.SubmitOrder(
                pb.SubmitOrderRequest(account="a b", symbol="X", side=common_pb2.BUY, quantity=1,
                                      type=execution_pb2.MARKET, client_order_id="x"),
                metadata=(("traceparent", f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"),),
                timeout=10,
            )  # fmt: skip
    spans = spans_of(mesh, trace_id, lambda s: len(s) >= 2)
    codes = sorted(s["attributes"]["rpc.grpc.status_code"] for s in spans)
    assert codes == ["INVALID_ARGUMENT", "OK"], spans
    assert all(s["status"] == ("OK" if s["attributes"]["rpc.grpc.status_code"] == "OK" else
                               "ERROR") or s["status"] == "UNSET" for s in spans)  # fmt: skip


def test_trace_cli_refuses_a_bad_trace_id(mesh: Mesh) -> None:
    out = mesh.run("trace", "not-a-trace")
    assert out.returncode == 2 and "trace_id: 32 hex digits" in out.stderr
    out = mesh.run("trace", uuid.uuid4().hex)
    assert out.returncode == 1 and "no spans of trace" in out.stderr
