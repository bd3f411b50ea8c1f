"""ExecutionService in the mesh: the trading state over JSON and gRPC, the RiskService's state
reaching it over NATS, bad input naming the field, and acknowledged changes surviving a SIGKILL
of the service mid-stream (journal before acknowledgement)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import grpc
import nats
import pytest
from tradecore.subjects import MdKind, md_subject
from tradecore_api.events.v1 import common_pb2, execution_pb2, market_pb2
from tradecore_api.events.v1 import risk_pb2 as events
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc
from tradecore_api.risk.v1 import risk_pb2 as risk_pb
from tradecore_api.risk.v1 import risk_pb2_grpc as risk_grpc

from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def account() -> str:
    return "EX" + uuid.uuid4().hex[:10]


def http(mesh: Mesh, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(
        f"http://{mesh.gateway}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json", **mesh.auth_headers()},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def until_state(stub: pb_grpc.ExecutionServiceStub, acct: str, ok: Any) -> pb.TradingState:
    deadline = time.monotonic() + 30
    while True:
        try:
            got = stub.GetTradingState(pb.GetTradingStateRequest(account=acct), timeout=5)
            if ok(got):
                return got
        except grpc.RpcError as exc:  # restarting: UNAVAILABLE until the journal is replayed
            assert time.monotonic() < deadline, exc
        assert time.monotonic() < deadline, "state not reached"
        time.sleep(0.1)


def test_trading_state_over_json_grpc_and_from_the_risk_service(mesh: Mesh) -> None:
    acct = account()
    status, out = http(
        mesh,
        "POST",
        f"/v1/execution/accounts/{acct}/state",
        {"mode": "HALTED", "reason": "kill switch", "changedBy": "op-1"},
    )
    assert status == 200, out
    assert out["effective"] == "HALTED" and out["operator"]["changed_by"] == "op-1", out
    with grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        got = stub.GetTradingState(pb.GetTradingStateRequest(account=acct), timeout=10)
        assert got.effective == events.HALTED and got.operator.reason == "kill switch"
        # The RiskService reduces another account: the execution service follows over NATS.
        other = account()
        with grpc.insecure_channel(mesh.risk) as rch:
            risk_grpc.RiskServiceStub(rch).SetTradingState(
                risk_pb.SetTradingStateRequest(account=other, mode=events.REDUCE_ONLY),
                timeout=10,
            )
        got = until_state(stub, other, lambda s: s.effective == events.REDUCE_ONLY)
        assert got.risk.mode == events.REDUCE_ONLY and got.operator.mode == events.ENABLED
    status, out = http(mesh, "GET", f"/v1/execution/accounts/{other}/state")
    assert status == 200 and out["effective"] == "REDUCE_ONLY", out


@pytest.mark.parametrize(
    "path, body, needle",
    [
        ("/v1/execution/accounts/A1/state", {"mode": "HALT"}, "mode"),
        ("/v1/execution/accounts/A1/state", {}, "mode:"),
        ("/v1/execution/accounts/a%20b/state", {"mode": "HALTED"}, "account"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    mesh: Mesh, path: str, body: dict[str, Any], needle: str
) -> None:
    status, out = http(mesh, "POST", path, body)
    assert status == 400 and needle in out["message"], out


def execution_pid(mesh: Mesh) -> int | None:
    pid = mesh.state()["components"]["execution"]["pid"]  # type: ignore[index]
    return None if pid is None else int(pid)


def test_acknowledged_changes_survive_a_sigkill_mid_stream(mesh: Mesh) -> None:
    """SetTradingState calls one after another; the service is SIGKILLed while they run. After
    the restart the account's operator state is the journal's: its sequence counts every
    acknowledged call exactly once (plus at most the one in flight at the kill, journaled
    but not answered), and its reason is that of the call with that sequence."""
    acct = account()
    acked: list[int] = []
    stop = threading.Event()

    def submit() -> None:
        with grpc.insecure_channel(mesh.execution) as ch:
            stub = pb_grpc.ExecutionServiceStub(ch)
            for i in range(1, 10_000):
                if stop.is_set():
                    return
                mode = events.HALTED if i % 2 else events.ENABLED
                req = pb.SetTradingStateRequest(account=acct, mode=mode, reason=f"r{i}")
                try:
                    got = stub.SetTradingState(req, timeout=5)
                except grpc.RpcError:
                    return  # the service died: i may or may not be journaled
                assert got.operator.sequence == i
                acked.append(i)

    t = threading.Thread(target=submit)
    t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 20:
        assert time.monotonic() < deadline and t.is_alive(), "no changes acknowledged"
        time.sleep(0.01)
    old = execution_pid(mesh)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    t.join(30)
    stop.set()
    n = len(acked)
    assert acked == list(range(1, n + 1))
    deadline = time.monotonic() + 60
    while execution_pid(mesh) in (None, old):
        assert time.monotonic() < deadline, "the supervisor did not restart the service"
        time.sleep(0.1)
    with grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        got = until_state(stub, acct, lambda s: True)
        seq = got.operator.sequence
        assert seq in (n, n + 1), (seq, n)
        assert got.operator.reason == f"r{seq}"
        assert got.operator.mode == (events.HALTED if seq % 2 else events.ENABLED)


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"side": "BUY", "quantity": 0}, "quantity"),
        ({"side": "BUY", "limit_price": -1}, "limit_price"),
        ({"side": "HOLD"}, "side"),
        ({"side": "BUY", "type": "MARKET"}, "limit_price"),
        ({"side": "BUY", "symbol": "A.B"}, "symbol"),
        ({"side": "BUY", "client_order_id": ""}, "client_order_id"),
        ({"side": "BUY", "venue": "ALPACA"}, "venue: ALPACA is not enabled"),
    ],
)
def test_bad_orders_are_400_naming_the_field(mesh: Mesh, body: dict[str, Any], needle: str) -> None:
    order = {
        "account": account(), "client_order_id": "c1", "symbol": "AAPL", "quantity": 100,
        "type": "LIMIT", "limit_price": 190.5, "time_in_force": "DAY", "venue": "PAPER",
    }  # fmt: skip
    status, out = http(mesh, "POST", "/v1/execution/orders", {**order, **body})
    assert status == 400 and needle in out["message"], out


def publish_quote(mesh: Mesh, symbol: str, bid: float, ask: float, size: int = 100) -> None:
    async def go() -> None:
        nc = await nats.connect(mesh.nats_url)
        q = market_pb2.Quote(
            venue="XNAS", symbol=symbol, bid_price=bid, ask_price=ask, bid_size=size, ask_size=size
        )
        await nc.publish(md_subject("XNAS", symbol, MdKind.QUOTE), q.SerializeToString())
        await nc.flush()
        await nc.close()

    asyncio.run(go())


def submit(stub: pb_grpc.ExecutionServiceStub, acct: str, coid: str, **kw: Any) -> pb.Order:
    fields: dict[str, Any] = dict(
        account=acct, client_order_id=coid, symbol="AAPL", side=common_pb2.BUY, quantity=10,
        type=execution_pb2.LIMIT, limit_price=99.0,
    )  # fmt: skip
    fields.update(kw)
    return stub.SubmitOrder(pb.SubmitOrderRequest(**fields), timeout=10)  # type: ignore[no-any-return]


def test_orders_and_positions_over_grpc_json_and_the_cli(mesh: Mesh) -> None:
    acct, sym = account(), "EXQ" + uuid.uuid4().hex[:6].upper()
    path = f"/v1/execution/accounts/{acct}/limits"
    status, out = http(mesh, "PUT", path, {"limits": {"max_order_quantity": 0}})
    assert status == 400 and out["message"].startswith("limits.max_order_quantity "), out
    status, out = http(mesh, "PUT", path, {"limits": {"max_order_quantity": 1000}})
    assert status == 200 and out["max_order_quantity"] == "1000", out
    assert http(mesh, "GET", path) == (200, out)
    with grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        # no quote yet: the price collar has no reference
        denied = submit(stub, acct, "d1", symbol=sym)
        assert (denied.status, denied.reason_code) == (execution_pb2.DENIED, "NO_REFERENCE_PRICE")
        publish_quote(mesh, sym, 99.9, 100.1)
        deadline = time.monotonic() + 20
        i = 0
        while True:  # an IOC at the ask fills once the quote reached the paper venue's book
            i += 1
            got = submit(stub, acct, f"f{i}", symbol=sym, limit_price=100.1, time_in_force=3)
            if got.status == execution_pb2.FILLED:
                break
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        assert (got.filled_quantity, got.average_price) == (10, 100.1)
        resting = submit(stub, acct, "r1", symbol=sym, limit_price=99.5)
        assert resting.status == execution_pb2.ACCEPTED and resting.leaves_quantity == 10
        # the venue's answer carries the time (the paper venue's clock is brought to now)
        assert resting.updated_time_ns >= resting.created_time_ns > 0
        assert submit(stub, acct, "r1", symbol=sym, limit_price=99.5) == resting  # idempotent
        with pytest.raises(grpc.RpcError) as err:
            submit(stub, acct, "a1", symbol=sym, venue=pb.ALPACA)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.RpcError) as err:
            stub.GetOrder(pb.GetOrderRequest(order_id="O999999999"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    body = {
        "account": acct, "client_order_id": "r1", "symbol": sym, "side": "BUY", "quantity": 10,
        "type": "LIMIT", "limit_price": 99.5, "time_in_force": "DAY", "venue": "PAPER",
    }  # fmt: skip
    status, out = http(mesh, "POST", "/v1/execution/orders", body)
    assert status == 200 and out["order_id"] == resting.order_id, out
    status, out = http(mesh, "GET", f"/v1/execution/orders/{resting.order_id}")
    assert status == 200 and out["status"] == "ACCEPTED", out
    status, out = http(mesh, "DELETE", f"/v1/execution/orders/{resting.order_id}")
    assert status == 200 and out["status"] == "CANCELED", out
    status, out = http(mesh, "DELETE", "/v1/execution/orders/O999999999")
    assert status == 404, out
    status, out = http(mesh, "GET", f"/v1/execution/accounts/{acct}/positions")
    assert status == 200, out
    assert [(p["symbol"], p["quantity"], p["average_cost"]) for p in out["positions"]] == [
        (sym, "10", 100.1)
    ]
    status, out = http(mesh, "GET", f"/v1/execution/accounts/{acct}/orders?open_only=true")
    assert status == 200 and out.get("orders", []) == [], out
    cli = mesh.run("positions", "--account", acct)
    assert cli.returncode == 0 and json.loads(cli.stdout)["quantity"] == "10", cli.stderr
    cli = mesh.run("order", "list", "--account", acct)
    assert cli.returncode == 0, cli.stderr
    assert [json.loads(line)["client_order_id"] for line in cli.stdout.splitlines()][:1] == ["r1"]
    cli = mesh.run(
        "order", "submit", "--account", acct, "--client-order-id", "c9", "--symbol", sym,
        "--side", "BUY", "--quantity", "10", "--limit-price", "99.4",
    )  # fmt: skip
    assert cli.returncode == 0 and json.loads(cli.stdout)["status"] == "ACCEPTED", cli.stderr
    cli = mesh.run("order", "cancel", json.loads(cli.stdout)["order_id"])
    assert cli.returncode == 0 and json.loads(cli.stdout)["status"] == "CANCELED", cli.stderr
    cli = mesh.run("order", "submit", "--account", "a.b", "--client-order-id", "c1",
                   "--symbol", "AAPL", "--side", "BUY", "--quantity", "10")  # fmt: skip
    assert cli.returncode == 2 and "account" in cli.stderr, cli.stderr


def price(i: int) -> float:
    return round(10.0 + 0.01 * i, 2)


def test_acknowledged_orders_survive_a_sigkill_exactly_once(mesh: Mesh) -> None:
    """Resting orders submitted one after another while the service is SIGKILLed: after the
    restart every acknowledged order is there once, with its order id, and resubmitting its
    client_order_id returns it (the one in flight at the kill is there at most once)."""
    acct, sym = account(), "EXK" + uuid.uuid4().hex[:6].upper()
    status, out = http(
        mesh, "PUT", f"/v1/execution/accounts/{acct}/limits", {"limits": {"collar": False}}
    )
    assert status == 200, out
    acked: dict[str, str] = {}

    def run() -> None:
        with grpc.insecure_channel(mesh.execution) as ch:
            stub = pb_grpc.ExecutionServiceStub(ch)
            for i in range(100_000):
                try:
                    # a price per order: the duplicate-order control denies repeats
                    got = submit(stub, acct, f"k{i}", symbol=sym, limit_price=price(i))
                except grpc.RpcError:
                    return
                assert got.status == execution_pb2.ACCEPTED, got
                acked[got.client_order_id] = got.order_id

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 20:
        assert time.monotonic() < deadline and t.is_alive(), "no orders acknowledged"
        time.sleep(0.01)
    old = execution_pid(mesh)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    t.join(30)
    deadline = time.monotonic() + 60
    while execution_pid(mesh) in (None, old):
        assert time.monotonic() < deadline, "the supervisor did not restart the service"
        time.sleep(0.1)
    with grpc.insecure_channel(mesh.execution) as ch:
        stub = pb_grpc.ExecutionServiceStub(ch)
        until_state(stub, acct, lambda s: True)  # serving again
        listed = stub.ListOrders(pb.ListOrdersRequest(account=acct), timeout=10).orders
        coids = [o.client_order_id for o in listed]
        assert len(coids) == len(set(coids))  # nothing doubled
        have = {o.client_order_id: o.order_id for o in listed}
        assert {c: have.get(c) for c in acked} == acked  # nothing acknowledged lost
        assert len(have) - len(acked) in (0, 1)  # at most the one in flight
        for coid, oid in list(acked.items())[-3:]:
            again = submit(stub, acct, coid, symbol=sym, limit_price=price(int(coid[1:])))
            assert again.order_id == oid
